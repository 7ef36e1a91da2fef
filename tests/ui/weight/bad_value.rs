#![allow(unused_imports)]
use burn::nn::Linear;
use burn::prelude::*;
use framer::framer;

#[framer]
#[derive(Module, Debug)]
pub struct NotANumber<B: Backend> {
    #[framer(student, weight = "half")]
    blocks: Vec<Linear<B>>,
}

#[framer]
#[derive(Module, Debug)]
pub struct Negative<B: Backend> {
    #[framer(student, weight = -0.5)]
    blocks: Vec<Linear<B>>,
}

#[framer]
#[derive(Module, Debug)]
pub struct NotFinite<B: Backend> {
    #[framer(student, weight = 1e999)]
    blocks: Vec<Linear<B>>,
}

fn main() {}
