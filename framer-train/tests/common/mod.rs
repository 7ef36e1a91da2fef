//! A small convolutional denoiser with taps, for engine tests that must not wait on a real
//! backbone. Input: `[x_t, condition, t]` stacked on channels.

#![allow(dead_code)]

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Tensor, backend::Backend};
use framer_train::engine::{Denoiser, EngineError};

/// `depth` residual 3×3 blocks of width `hidden`; tap `i` is a 1×1 readout of block `i`.
#[derive(Module, Debug)]
pub struct Toy<B: Backend> {
    input: Conv2d<B>,
    blocks: Vec<Conv2d<B>>,
    heads: Vec<Conv2d<B>>,
    output: Conv2d<B>,
}

impl<B: Backend> Toy<B> {
    pub fn new(depth: usize, hidden: usize, device: &B::Device) -> Self {
        let conv = |i, o, k| {
            Conv2dConfig::new([i, o], [k, k])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        Self {
            input: conv(7, hidden, 3),
            blocks: (0..depth).map(|_| conv(hidden, hidden, 3)).collect(),
            heads: (0..depth).map(|_| conv(hidden, 3, 1)).collect(),
            output: conv(hidden, 3, 1),
        }
    }

    fn trunk(
        &self,
        x_t: Tensor<B, 4>,
        t: Tensor<B, 1>,
        cond: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Vec<Tensor<B, 4>>) {
        let [b, _, h, w] = x_t.dims();
        let plane = t.reshape([b, 1, 1, 1]).expand([b, 1, h, w]);
        let mut x = silu(self.input.forward(Tensor::cat(vec![x_t, cond, plane], 1)));
        let mut taps = Vec::new();
        for block in &self.blocks {
            x = x.clone() + silu(block.forward(x));
            taps.push(x.clone());
        }
        (self.output.forward(x), taps)
    }
}

impl<B: Backend> Denoiser<B> for Toy<B> {
    fn num_taps(&self) -> usize {
        self.blocks.len()
    }

    fn predict(&self, x_t: Tensor<B, 4>, t: Tensor<B, 1>, cond: Tensor<B, 4>) -> Tensor<B, 4> {
        self.trunk(x_t, t, cond).0
    }

    fn predict_with_students(
        &self,
        x_t: Tensor<B, 4>,
        t: Tensor<B, 1>,
        cond: Tensor<B, 4>,
        students: &[usize],
    ) -> Result<(Tensor<B, 4>, Vec<Tensor<B, 4>>), EngineError> {
        let (out, taps) = self.trunk(x_t, t, cond);
        let students = students
            .iter()
            .map(|&i| self.heads[i].forward(taps[i].clone()))
            .collect();
        Ok((out, students))
    }
}

/// A schedule for engine tests: tiny steps, no progress bar, everything else from `extra`.
pub fn schedule(extra: &str) -> framer_train::schedule::Experiment {
    let src = if extra.contains("[logging]") {
        format!(
            "[model]\nbackbone = \"unet\"\n{}\n",
            extra.replace("[logging]", "[logging]\nprogress = false")
        )
    } else {
        format!("[model]\nbackbone = \"unet\"\n[logging]\nprogress = false\n{extra}\n")
    };
    framer_train::schedule::parse(&src, "test.toml", std::path::Path::new(".")).unwrap()
}

/// A fresh, empty folder under the system temp dir.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("framer-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
