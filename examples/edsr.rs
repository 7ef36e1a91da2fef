//! Bring your own model: an EDSR-style residual CNN (neither a U-Net nor a DiT), trained with
//! FRAMER through the attributes alone, with the whole `framer` command line.
//!
//! ```text
//! cargo run --release --example edsr -- check examples/edsr.toml
//! cargo run --release --example edsr -- train examples/edsr.toml --out runs/edsr
//! cargo run --release --example edsr -- sr --run runs/edsr photo.png photo_x4.png
//! cargo run --release --example edsr -- eval SR_DIR --gt GT_DIR
//! ```
//!
//! The model: a 3×3 head on `[x_t, lr_upsampled]`, a body of residual blocks (each modulated by
//! the timestep embedding) with a long skip, and a 3×3 tail. Every residual block is a FRAMER
//! student; its hidden state (`channels` wide) is read out into the prediction's space by the
//! generated 1×1-conv heads (`heads = conv1x1`), which are trained with the model and dropped at
//! inference.

use std::process::ExitCode;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::activation::{relu, silu};
use burn::tensor::backend::{AutodiffBackend, Backend};
use framer::{framer, framer_forward};
use framer_train::ModelConfig;
use serde::{Deserialize, Serialize};

/// `[model]` of an EDSR schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdsrConfig {
    /// Feature channels of the body.
    pub channels: usize,
    /// Residual blocks in the body (the FRAMER students).
    pub blocks: usize,
    /// Scale of each block's residual (EDSR's `res_scale`).
    pub res_scale: f64,
}

impl Default for EdsrConfig {
    fn default() -> Self {
        Self {
            channels: 32,
            blocks: 6,
            res_scale: 0.1,
        }
    }
}

/// One residual block: `x + s·conv(relu(conv(x) + emb(t)))`.
#[derive(Module, Debug)]
pub struct ResBlock<B: Backend> {
    conv1: Conv2d<B>,
    conv2: Conv2d<B>,
    time: Linear<B>,
    res_scale: f64,
}

impl<B: Backend> ResBlock<B> {
    /// `x`: `[batch, channels, h, w]`, `temb`: `[batch, channels]`; returns the shape of `x`.
    pub fn forward(&self, x: Tensor<B, 4>, temb: Tensor<B, 2>) -> Tensor<B, 4> {
        let [b, c, _, _] = x.dims();
        let h = self.conv1.forward(x.clone()) + self.time.forward(temb).reshape([b, c, 1, 1]);
        x + self.conv2.forward(relu(h)).mul_scalar(self.res_scale)
    }
}

/// The denoiser: `forward(x_t, timesteps, lr_upsampled) → prediction`, all `[batch, 3, H, W]`
/// (timesteps `[batch]` in `[0, 1]`).
#[framer(heads = conv1x1)]
#[derive(Module, Debug)]
pub struct Edsr<B: Backend> {
    head: Conv2d<B>,
    time_embed: Linear<B>,
    #[framer(student)]
    body: Vec<ResBlock<B>>,
    body_out: Conv2d<B>,
    tail: Conv2d<B>,
}

#[framer_forward]
impl<B: Backend> Edsr<B> {
    /// The prediction for `x_t`, `timesteps` and the upsampled LR image.
    pub fn forward(&self, x_t: Tensor<B, 4>, timesteps: Tensor<B, 1>, lr: Tensor<B, 4>) -> Tensor<B, 4> {
        let temb = silu(self.time_embed.forward(sinusoidal(timesteps.mul_scalar(1000.0), 32)));
        let features = self.head.forward(Tensor::cat(vec![x_t, lr], 1));
        let mut h = features.clone();
        for block in &self.body {
            h = block.forward(h, temb.clone());
        }
        self.tail.forward(self.body_out.forward(h) + features)
    }
}

/// `[batch]` timesteps → `[batch, dim]` sine/cosine features.
fn sinusoidal<B: Backend>(t: Tensor<B, 1>, dim: usize) -> Tensor<B, 2> {
    let half = dim / 2;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (-(10_000f32.ln()) * i as f32 / half as f32).exp())
        .collect();
    let freqs = Tensor::<B, 1>::from_floats(freqs.as_slice(), &t.device()).unsqueeze::<2>();
    let args = t.unsqueeze_dim::<2>(1) * freqs;
    Tensor::cat(vec![args.clone().sin(), args.cos()], 1)
}

impl EdsrConfig {
    fn build<B: Backend>(&self, device: &B::Device) -> Result<Edsr<B>, String> {
        if self.channels == 0 || self.blocks < 2 {
            return Err(format!(
                "EDSR needs channels ≥ 1 and blocks ≥ 2 (FRAMER distils between blocks), got \
                 channels = {}, blocks = {}",
                self.channels, self.blocks
            ));
        }
        let c = self.channels;
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        Ok(Edsr {
            head: conv(6, c),
            time_embed: LinearConfig::new(32, c).init(device),
            body: (0..self.blocks)
                .map(|_| ResBlock {
                    conv1: conv(c, c),
                    conv2: conv(c, c),
                    time: LinearConfig::new(c, c).init(device),
                    res_scale: self.res_scale,
                })
                .collect(),
            body_out: conv(c, c),
            tail: conv(c, 3),
        })
    }
}

impl ModelConfig for EdsrConfig {
    const KIND: &'static str = "edsr";
    type Model<B: Backend> = Edsr<B>;
    type TrainModel<B: AutodiffBackend> = Edsr<B>;

    fn init<B: Backend>(&self, device: &B::Device) -> Result<Edsr<B>, String> {
        self.build(device)
    }

    fn init_train<B: AutodiffBackend>(&self, device: &B::Device) -> Result<Edsr<B>, String> {
        self.build(device)
    }
}

fn main() -> ExitCode {
    framer_train::cli::main::<EdsrConfig>()
}
