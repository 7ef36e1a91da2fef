#![allow(unused_imports)]
use burn::nn::Linear;
use burn::prelude::*;
use framer::{framer, framer_forward};

// A misspelt loss setting, a value of the wrong type and out of range, and two masks at once.
#[framer(loss(cutof = 0.2, faw = 1, tau = 0.0, cutoff = 0.3, radius = 0.2))]
#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    #[framer(student)]
    blocks: Vec<Linear<B>>,
}

fn main() {}
