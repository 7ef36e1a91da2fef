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
        let middle = |x| self.mid.forward(x);
        let mut x = middle(x);
        for block in &self.blocks {
            x = [1, 2].iter().fold(x, |x, _| block.forward(x));
        }
        x
    }
}

fn main() {}
