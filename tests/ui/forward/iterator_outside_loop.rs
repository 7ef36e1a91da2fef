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
        let blocks = self.blocks.iter().rev();
        for block in blocks {
            x = block.forward(x);
        }
        x
    }
}

fn main() {}
