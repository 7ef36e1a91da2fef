#![allow(unused_imports)]
use burn::nn::Linear;
use burn::prelude::*;
use framer::{framer, framer_forward};

#[framer]
pub enum Model {
    Small,
    Large,
}

fn main() {}
