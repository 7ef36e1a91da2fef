#![allow(unused_imports)]
use burn::nn::Linear;
use burn::prelude::*;
use framer::{framer, framer_forward};

#[framer(readout = early_exit(temb))]
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

    fn early_exit(&self, hidden: Tensor<B, 4>, temb: Tensor<B, 2>) -> Tensor<B, 4> {
        hidden + temb.unsqueeze()
    }
}

fn main() {}
