#![allow(unused_imports)]
use burn::nn::Linear;
use burn::prelude::*;
use framer::{framer, framer_forward};

#[framer]
#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    blocks: Vec<Linear<B>>,
    #[framer(teacher)]
    head: Linear<B>,
}

fn main() {}
