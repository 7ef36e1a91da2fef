//! Shared by the engine tests: a small convolutional denoiser with taps, for tests that must not
//! wait on a real backbone (input: `[x_t, condition, t]` stacked on channels), and the command
//! line's train-then-sample round trip.

#![allow(dead_code)]

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Tensor, backend::Backend};
use framer::{Framed, framer, framer_forward};

/// `depth` residual 3×3 blocks of width `hidden`; every block is a FRAMER student, read out by
/// generated 1×1-conv heads (the attributes alone: no training plumbing).
#[framer(heads = conv1x1)]
#[derive(Module, Debug)]
pub struct Toy<B: Backend> {
    input: Conv2d<B>,
    #[framer(student)]
    blocks: Vec<Conv2d<B>>,
    output: Conv2d<B>,
}

#[framer_forward]
impl<B: Backend> Toy<B> {
    /// `x_t`, `cond`: `[batch, 3, h, w]`; `t`: `[batch]`; returns `[batch, 3, h, w]`.
    pub fn forward(&self, x_t: Tensor<B, 4>, t: Tensor<B, 1>, cond: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, _, h, w] = x_t.dims();
        let plane = t.reshape([b, 1, 1, 1]).expand([b, 1, h, w]);
        let mut x = silu(self.input.forward(Tensor::cat(vec![x_t, cond, plane], 1)));
        for block in &self.blocks {
            let y = block.forward(x.clone());
            x = x + silu(y);
        }
        self.output.forward(x)
    }
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
            output: conv(hidden, 3, 1),
        }
    }

    /// [`Toy::new`] inside [`Framed`], with its heads built from an 8×8 sample, every parameter
    /// materialised (so that clones share their initial values).
    pub fn framed(depth: usize, hidden: usize, device: &B::Device) -> Framed<B, Self> {
        let x = Tensor::<B, 4>::zeros([1, 3, 8, 8], device);
        let t = Tensor::<B, 1>::from_floats([0.5], device);
        let framed = Framed::new(Self::new(depth, hidden, device), (x.clone(), t, x), device).unwrap();
        framer_train::engine::ema::materialize(&framed);
        framed
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

/// Every float parameter of `m`, flattened in visiting order.
pub fn weights<B: Backend>(m: &impl Module<B>) -> Vec<f32> {
    struct Collect<'a>(&'a mut Vec<f32>);
    impl<B: Backend> burn::module::ModuleVisitor<B> for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<B, D>>) {
            self.0.extend(p.val().into_data().to_vec::<f32>().unwrap());
        }
    }
    let mut v = Vec::new();
    m.visit(&mut Collect(&mut v));
    v
}

/// `framer train SCHEDULE --out dir/run`, then `framer sr` of an 8×8 `dir/lr.png` at ×4 (32 px
/// wide); returns the run folder and the LR image.
pub fn train_and_sample(dir: &std::path::Path, schedule: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let framer = |args: &[&str]| std::process::Command::new(env!("CARGO_BIN_EXE_framer")).args(args).output().unwrap();
    let run = dir.join("run");
    let out = framer(&["train", schedule.to_str().unwrap(), "--out", run.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lr = dir.join("lr.png");
    image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([(x * 30) as u8, (y * 30) as u8, 90])).save(&lr).unwrap();
    let sr = dir.join("sr.png");
    let out = framer(&["sr", "--run", run.to_str().unwrap(), lr.to_str().unwrap(), sr.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(image::open(&sr).unwrap().width(), 32);
    (run, lr)
}
