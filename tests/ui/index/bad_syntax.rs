#![allow(unused_imports)]
use burn::nn::Linear;
use burn::prelude::*;
use framer::{framer, framer_forward};

#[framer]
#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    #[framer(student, indices = 3)]
    blocks: Vec<Linear<B>>,
    #[framer(student, tap = 0)]
    more: Vec<Linear<B>>,
}

fn main() {}
