#![allow(unused_imports)]
use burn::nn::Linear;
use burn::prelude::*;
use framer::{framer, framer_forward};

#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    blocks: Vec<Linear<B>>,
}

#[framer]
impl<B: Backend> Model<B> {
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        x
    }
}

fn main() {}
