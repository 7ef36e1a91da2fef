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
        self.run_blocks(x)
    }

    fn run_blocks(&self, mut x: Tensor<B, 4>) -> Tensor<B, 4> {
        for block in &self.blocks {
            x = block.forward(x);
        }
        x
    }
}

fn main() {}
