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
    pub fn forward(x: Tensor<B, 4>) {
        let _ = x;
    }
}

fn main() {}
