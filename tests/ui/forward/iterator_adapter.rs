#![allow(unused_imports)]
use burn::nn::Linear;
use burn::prelude::*;
use framer::{framer, framer_forward};

#[framer]
#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    #[framer(student)]
    blocks: Vec<Linear<B>>,
    #[framer(student)]
    mid: Linear<B>,
}

#[framer_forward]
impl<B: Backend> Model<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut x = self.mid.forward(x);
        for block in self.blocks.iter().skip(1).filter(|_| true) {
            x = block.forward(x);
        }
        self.blocks.iter().rev().fold(x, |x, block| block.forward(x))
    }
}

fn main() {}
