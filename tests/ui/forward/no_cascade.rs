#![allow(unused_imports)]
use burn::nn::Linear;
use burn::prelude::*;
use framer::{framer, framer_forward};

#[framer(readuot = early_exit)]
#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    #[framer(student)]
    blocks: Vec<Linear<B>>,
}

#[framer_forward]
impl<B: Backend> Model<B> {
    pub fn forward(&self, mut x: Tensor<B, 4>) -> Tensor<B, 4> {
        for block in &self.blocks {
            x = block.forward(x);
        }
        x
    }
}

pub fn use_it<B: Backend>(model: &Model<B>, x: Tensor<B, 4>) -> usize {
    let (_, taps) = model.forward_with_taps(x);
    taps.len()
}

fn main() {}
