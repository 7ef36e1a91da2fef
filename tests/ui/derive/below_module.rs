#![allow(unused_imports)]
use burn::nn::Linear;
use burn::prelude::*;
use framer::{framer, framer_forward};

#[derive(Module, Debug)]
#[framer]
pub struct Model<B: Backend> {
    #[framer(student)]
    blocks: Vec<Linear<B>>,
}

fn main() {}
