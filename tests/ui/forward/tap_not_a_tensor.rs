#![allow(unused_imports)]
use burn::nn::Linear;
use burn::prelude::*;
use framer::{framer, framer_forward};

#[derive(Module, Debug)]
pub struct Pair<B: Backend> {
    linear: Linear<B>,
}

impl<B: Backend> Pair<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> (Tensor<B, 4>, usize) {
        (self.linear.forward(x), 0)
    }
}

#[framer]
#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    #[framer(student)]
    blocks: Vec<Pair<B>>,
}

#[framer_forward]
impl<B: Backend> Model<B> {
    pub fn forward(&self, mut x: Tensor<B, 4>) -> Tensor<B, 4> {
        for block in &self.blocks {
            x = block.forward(x).0;
        }
        x
    }
}

fn main() {}
