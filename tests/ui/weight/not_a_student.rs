#![allow(unused_imports)]
use burn::nn::Linear;
use burn::prelude::*;
use framer::framer;

#[framer]
#[derive(Module, Debug)]
pub struct OnTeacher<B: Backend> {
    #[framer(student)]
    blocks: Vec<Linear<B>>,
    #[framer(teacher, weight = 2.0)]
    head: Linear<B>,
}

#[framer]
#[derive(Module, Debug)]
pub struct WithoutRole<B: Backend> {
    #[framer(student)]
    blocks: Vec<Linear<B>>,
    #[framer(weight = 2.0)]
    head: Linear<B>,
}

fn main() {}
