#![allow(unused_imports)]
use burn::nn::Linear;
use burn::prelude::*;
use framer::{framer, framer_forward};

#[framer]
pub union Bits {
    float: f32,
    int: u32,
}

fn main() {}
