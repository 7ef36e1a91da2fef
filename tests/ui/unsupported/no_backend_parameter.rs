#![allow(unused_imports)]
use burn::nn::Linear;
use burn::prelude::*;
use framer::{framer, framer_forward};

#[framer]
pub struct Model {
    #[framer(student)]
    blocks: Vec<Block>,
}

pub struct Block;

fn main() {}
