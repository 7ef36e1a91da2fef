#![allow(unused_imports)]
use burn::nn::Linear;
use burn::prelude::*;
use framer::{framer, framer_forward};

#[framer]
#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    #[framer(student)]
    blocks: Vec<Linear<B>>,
    extra: Vec<Linear<B>>,
    #[framer(student, tap = .0)]
    pairs: Vec<Pair<B>>,
}

#[derive(Module, Debug)]
pub struct Pair<B: Backend> {
    a: Linear<B>,
}

impl<B: Backend> Pair<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        (self.a.forward(x.clone()), x)
    }
}

#[framer_forward]
impl<B: Backend> Model<B> {
    pub fn forward(&self, mut x: Tensor<B, 4>) -> Tensor<B, 4> {
        // Chained with a collection that is not a student.
        for block in self.blocks.iter().chain(&self.extra) {
            x = block.forward(x);
        }
        // A pair not taken apart: framer cannot name its elements.
        for pair in self.pairs.iter().zip(&self.extra) {
            x = pair.0.forward(x).0;
        }
        x
    }
}

fn main() {}
