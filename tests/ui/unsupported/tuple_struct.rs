#![allow(unused_imports)]
use burn::nn::Linear;
use burn::prelude::*;
use framer::{framer, framer_forward};

#[framer]
pub struct Model<B: Backend>(#[framer(student)] Vec<Linear<B>>);

fn main() {}
