#![allow(unused_imports)]
use burn::nn::Linear;
use burn::prelude::*;
use framer::{framer, framer_forward};

#[framer]
#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    #[framer(student, indices = [1, 4, 1])]
    blocks: [Linear<B>; 4],
}

fn main() {}
