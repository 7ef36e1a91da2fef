//! Stable-Diffusion-2-style U-Net for super-resolution, with diffusers names.
//!
//! The layout is diffusers' `UNet2DModel` (the U-Net of the latent-diffusion super-resolution
//! pipeline): `conv_in`, `time_proj`, `time_embedding`, `down_blocks`, `mid_block`, `up_blocks`,
//! `conv_norm_out`, `conv_out`, with `DownBlock2D`/`AttnDownBlock2D` levels. SR conditioning is by
//! channel concatenation: `conv_in` sees `cat([x_t, lr_upsampled], dim = 1)`.
//!
//! Presets ([`UNetConfig::tiny`], [`UNetConfig::small`], [`UNetConfig::sd2`]) fix the widths; the
//! `sd2` preset has the channel widths, depths and attention placement of Stable Diffusion 2's
//! `UNet2DConditionModel` (320/640/1280/1280, two ResNets per level, attention on the three upper
//! levels, 64-wide heads), with group-normed self-attention in place of the text cross-attention
//! transformer (there is no text encoder in this setting), so an SD2 checkpoint's ResNet,
//! sampler, time-embedding and in/out convolution weights map onto it but its transformer
//! weights do not.
//!
//! FRAMER students are the outputs of every down block, the mid block and every up block, read out
//! by generated [`FramerHeads`](framer::FramerHeads) (a learned 1×1 convolution to `out_channels`, then a bilinear
//! resize to the output resolution; `#[framer(heads = conv1x1)]`), the U-Net recipe of the paper;
//! the teacher is the model output.

pub(crate) mod attention;
mod blocks;
pub mod condition;
pub(crate) mod resnet;
mod transformer2d;

pub use attention::{Attention, scaled_dot_product_attention};
pub use blocks::{DownBlock2D, UNetMidBlock2D, UpBlock2D};
pub use condition::{UNet2DConditionConfig, UNet2DConditionModel};
pub use resnet::{Downsample2D, ResnetBlock2D, Upsample2D};

use framer::conv::conv2d;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use framer::{framer, framer_forward};

use crate::embeddings::{TimestepEmbedding, timestep_embedding};
use crate::{BackboneError, SrBackbone};
use blocks::BlockDims;
use resnet::{conv3x3, conv3x3_zeros};

/// Encoder level type, named as in diffusers' `down_block_types`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DownBlockType {
    /// ResNet blocks only.
    DownBlock2D,
    /// ResNet blocks, each followed by self-attention.
    AttnDownBlock2D,
}

/// Decoder level type, named as in diffusers' `up_block_types`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpBlockType {
    /// ResNet blocks only.
    UpBlock2D,
    /// ResNet blocks, each followed by self-attention.
    AttnUpBlock2D,
}

/// Configuration of [`UNet`]; field names follow diffusers' `UNet2DModel` where they exist.
///
/// Timestep convention: the model takes `t ∈ [0, 1]` per sample (σ for rectified flow, or the
/// DDPM index divided by the number of training steps) and multiplies it by `timestep_scale`
/// (1000, so a DDPM model sees its usual integer index) before the sinusoidal projection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UNetConfig {
    /// Channels of the noisy input `x_t` (3 for RGB pixels, 4 for SD latents).
    pub in_channels: usize,
    /// Channels of the upsampled low-resolution condition concatenated to `x_t`.
    pub lr_channels: usize,
    /// Channels of the prediction.
    pub out_channels: usize,
    /// Width of each level, from the input resolution down.
    pub block_out_channels: Vec<usize>,
    /// One entry per level.
    pub down_block_types: Vec<DownBlockType>,
    /// One entry per level, from the deepest up.
    pub up_block_types: Vec<UpBlockType>,
    /// Whether the mid block has self-attention.
    pub mid_block_attention: bool,
    /// ResNet blocks per encoder level (decoder levels have one more).
    pub layers_per_block: usize,
    /// Width of one attention head; `heads = channels / attention_head_dim`.
    pub attention_head_dim: usize,
    /// Group-norm groups; must divide every level width.
    pub norm_num_groups: usize,
    /// Group-norm ε.
    pub norm_eps: f64,
    /// `[cos, sin]` instead of `[sin, cos]` in the timestep projection (true for SD).
    pub flip_sin_to_cos: bool,
    /// `downscale_freq_shift` of the timestep projection (0 for SD2).
    pub freq_shift: f64,
    /// Factor from `t ∈ [0, 1]` to model timestep units.
    pub timestep_scale: f64,
    /// Training resolution (pixels or latents) the preset is meant for.
    pub sample_size: usize,
    /// Zero-initialise `conv_out` (weight and bias), as guided diffusion's U-Net (ADM) does with
    /// its output convolution: a freshly built model predicts exactly zero, so a residual host
    /// (`x̂0 = LR↑ − σ·v̂`) starts at the upsampled LR image. Default `false` (the diffusers
    /// initialisation); the main job turns it on.
    #[serde(default)]
    pub zero_init_out: bool,
}

impl UNetConfig {
    /// Names accepted by [`UNetConfig::preset`].
    pub const PRESETS: [&'static str; 3] = ["tiny", "small", "sd2"];

    /// CPU preset: RGB pixels at 64×64, three levels (8/8/64 channels, one ResNet each, 4 norm
    /// groups), attention (2 heads of 32) on the 16×16 level and in the mid block. About 0.53 M
    /// parameters. The two upper levels are kept narrow because convolution backward passes at
    /// 64×64 and 32×32 dominate the CPU step time; the capacity sits at 16×16.
    pub fn tiny() -> Self {
        Self {
            in_channels: 3,
            lr_channels: 3,
            out_channels: 3,
            block_out_channels: vec![8, 8, 64],
            down_block_types: vec![
                DownBlockType::DownBlock2D,
                DownBlockType::DownBlock2D,
                DownBlockType::AttnDownBlock2D,
            ],
            up_block_types: vec![
                UpBlockType::AttnUpBlock2D,
                UpBlockType::UpBlock2D,
                UpBlockType::UpBlock2D,
            ],
            mid_block_attention: true,
            layers_per_block: 1,
            attention_head_dim: 32,
            norm_num_groups: 4,
            norm_eps: 1e-5,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
            timestep_scale: 1000.0,
            sample_size: 64,
            zero_init_out: false,
        }
    }

    /// GPU preset: RGB pixels at 128×128, four levels (64/128/256/256, two ResNets each),
    /// attention on the two deepest levels.
    pub fn small() -> Self {
        Self {
            in_channels: 3,
            lr_channels: 3,
            out_channels: 3,
            block_out_channels: vec![64, 128, 256, 256],
            down_block_types: vec![
                DownBlockType::DownBlock2D,
                DownBlockType::DownBlock2D,
                DownBlockType::AttnDownBlock2D,
                DownBlockType::AttnDownBlock2D,
            ],
            up_block_types: vec![
                UpBlockType::AttnUpBlock2D,
                UpBlockType::AttnUpBlock2D,
                UpBlockType::UpBlock2D,
                UpBlockType::UpBlock2D,
            ],
            mid_block_attention: true,
            layers_per_block: 2,
            attention_head_dim: 64,
            norm_num_groups: 32,
            norm_eps: 1e-5,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
            timestep_scale: 1000.0,
            sample_size: 128,
            zero_init_out: false,
        }
    }

    /// Stable Diffusion 2 shapes on 4-channel latents (64×64 for 512-pixel crops): 320/640/1280/1280,
    /// two ResNets per level, attention on the three upper levels, 64-wide heads, 32 groups.
    /// Documentation and GPU use only (about 0.64 G parameters, 2.6 GB at f32); its parameters are
    /// lazy, so only a forward pass allocates them.
    pub fn sd2() -> Self {
        Self {
            in_channels: 4,
            lr_channels: 4,
            out_channels: 4,
            block_out_channels: vec![320, 640, 1280, 1280],
            down_block_types: vec![
                DownBlockType::AttnDownBlock2D,
                DownBlockType::AttnDownBlock2D,
                DownBlockType::AttnDownBlock2D,
                DownBlockType::DownBlock2D,
            ],
            up_block_types: vec![
                UpBlockType::UpBlock2D,
                UpBlockType::AttnUpBlock2D,
                UpBlockType::AttnUpBlock2D,
                UpBlockType::AttnUpBlock2D,
            ],
            mid_block_attention: true,
            layers_per_block: 2,
            attention_head_dim: 64,
            norm_num_groups: 32,
            norm_eps: 1e-5,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
            timestep_scale: 1000.0,
            sample_size: 64,
            zero_init_out: false,
        }
    }

    /// The preset called `name` (one of [`UNetConfig::PRESETS`]).
    pub fn preset(name: &str) -> Result<Self, BackboneError> {
        match name {
            "tiny" => Ok(Self::tiny()),
            "small" => Ok(Self::small()),
            "sd2" => Ok(Self::sd2()),
            other => Err(BackboneError::UnknownPreset {
                model: "unet",
                name: other.to_string(),
                known: Self::PRESETS.join(", "),
            }),
        }
    }

    fn invalid(field: &'static str, reason: impl Into<String>) -> BackboneError {
        BackboneError::InvalidConfig { model: "unet", field, reason: reason.into() }
    }

    /// Checks every constraint [`UNetConfig::init`] relies on.
    pub fn validate(&self) -> Result<(), BackboneError> {
        let levels = self.block_out_channels.len();
        if levels == 0 {
            return Err(Self::invalid("block_out_channels", "is empty"));
        }
        for (field, n) in [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("layers_per_block", self.layers_per_block),
            ("attention_head_dim", self.attention_head_dim),
            ("norm_num_groups", self.norm_num_groups),
        ] {
            if n == 0 {
                return Err(Self::invalid(field, "must be positive"));
            }
        }
        if self.down_block_types.len() != levels {
            return Err(Self::invalid(
                "down_block_types",
                format!("has {} entries but block_out_channels has {levels}", self.down_block_types.len()),
            ));
        }
        if self.up_block_types.len() != levels {
            return Err(Self::invalid(
                "up_block_types",
                format!("has {} entries but block_out_channels has {levels}", self.up_block_types.len()),
            ));
        }
        for &c in &self.block_out_channels {
            if c == 0 || c % self.norm_num_groups != 0 {
                return Err(Self::invalid(
                    "block_out_channels",
                    format!("entry {c} is not a positive multiple of norm_num_groups = {}", self.norm_num_groups),
                ));
            }
        }
        let attn_levels = self
            .down_block_types
            .iter()
            .zip(&self.block_out_channels)
            .filter(|(t, _)| **t == DownBlockType::AttnDownBlock2D)
            .map(|(_, c)| *c)
            .chain(
                self.up_block_types
                    .iter()
                    .zip(self.block_out_channels.iter().rev())
                    .filter(|(t, _)| **t == UpBlockType::AttnUpBlock2D)
                    .map(|(_, c)| *c),
            )
            .chain(self.mid_block_attention.then(|| *self.block_out_channels.last().unwrap_or(&0)));
        for c in attn_levels {
            if c % self.attention_head_dim != 0 {
                return Err(Self::invalid(
                    "attention_head_dim",
                    format!("{} does not divide the attention width {c}", self.attention_head_dim),
                ));
            }
        }
        if !self.block_out_channels[0].is_multiple_of(2) {
            return Err(Self::invalid(
                "block_out_channels",
                "first entry must be even (it is the sinusoidal timestep projection width)",
            ));
        }
        if self.norm_eps.is_nan() || self.norm_eps <= 0.0 || !self.norm_eps.is_finite() {
            return Err(Self::invalid("norm_eps", format!("must be finite and positive, got {}", self.norm_eps)));
        }
        if !self.timestep_scale.is_finite() {
            return Err(Self::invalid("timestep_scale", "must be finite"));
        }
        Ok(())
    }

    /// Spatial divisor the input height and width must be a multiple of (`2^(levels−1)`).
    pub fn spatial_multiple(&self) -> usize {
        level_multiple(self.block_out_channels.len())
    }

    /// Validates the config and builds a freshly initialised model on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<UNet<B>, BackboneError> {
        self.validate()?;
        let ch = &self.block_out_channels;
        let temb_dim = ch[0] * 4;
        let dims = BlockDims {
            temb_dim,
            groups: self.norm_num_groups,
            eps: self.norm_eps,
            head_dim: self.attention_head_dim,
        };
        let levels = ch.len();
        let mut down_blocks = Vec::with_capacity(levels);
        let mut out = ch[0];
        for (i, ty) in self.down_block_types.iter().enumerate() {
            let cin = out;
            out = ch[i];
            down_blocks.push(DownBlock2D::new(
                cin,
                out,
                self.layers_per_block,
                *ty == DownBlockType::AttnDownBlock2D,
                i + 1 < levels,
                dims,
                device,
            ));
        }
        let mid_block = UNetMidBlock2D::new(ch[levels - 1], self.mid_block_attention, dims, device);
        let rev: Vec<usize> = ch.iter().rev().copied().collect();
        let mut up_blocks = Vec::with_capacity(levels);
        let mut out = rev[0];
        for (i, ty) in self.up_block_types.iter().enumerate() {
            let prev = out;
            out = rev[i];
            let cin = rev[(i + 1).min(levels - 1)];
            up_blocks.push(UpBlock2D::new(
                cin,
                prev,
                out,
                self.layers_per_block + 1,
                *ty == UpBlockType::AttnUpBlock2D,
                i + 1 < levels,
                dims,
                device,
            ));
        }
        Ok(UNet {
            conv_in: conv3x3(self.in_channels + self.lr_channels, ch[0], device),
            time_embedding: TimestepEmbedding::new(ch[0], temb_dim, device),
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out: GroupNormConfig::new(self.norm_num_groups, ch[0])
                .with_epsilon(self.norm_eps)
                .init(device),
            conv_out: if self.zero_init_out {
                conv3x3_zeros(ch[0], self.out_channels, device)
            } else {
                conv3x3(ch[0], self.out_channels, device)
            },
            config: self.clone(),
        })
    }
}

/// The SR U-Net (see the [module docs](self)).
///
/// `#[framer(heads = conv1x1)]` marks the students; `#[framer_forward]` generates
/// [`UNet::forward_with_taps`], which runs `forward` while recording every down block's hidden
/// output (`down_blocks.{i}`), the mid block and every up block, plus the output as teacher.
#[doc(alias = "UNet2DModel")]
#[doc(alias = "FRAMER_U")]
#[framer(heads = conv1x1)]
#[derive(Module, Debug)]
pub struct UNet<B: Backend> {
    /// 3×3 convolution `in_channels + lr_channels → block_out_channels[0]`.
    pub conv_in: Conv2d<B>,
    /// MLP on the sinusoidal timestep projection (`time_proj` in diffusers, parameter-free here).
    pub time_embedding: TimestepEmbedding<B>,
    /// Encoder levels (students: their hidden output, element 0 of `forward`'s tuple).
    #[framer(student, tap = .0)]
    pub down_blocks: Vec<DownBlock2D<B>>,
    /// Bottleneck (student).
    #[framer(student)]
    pub mid_block: UNetMidBlock2D<B>,
    /// Decoder levels (students).
    #[framer(student)]
    pub up_blocks: Vec<UpBlock2D<B>>,
    /// Final group norm.
    pub conv_norm_out: GroupNorm<B>,
    /// 3×3 convolution to `out_channels`.
    pub conv_out: Conv2d<B>,
    /// The configuration the model was built from.
    #[module(skip)]
    pub config: UNetConfig,
}

#[framer_forward]
impl<B: Backend> UNet<B> {
    /// The prediction for noisy input `x_t: [batch, in_channels, H, W]`, timesteps `t: [batch]`
    /// in `[0, 1]` and the upsampled LR image `lr: [batch, lr_channels, H, W]`; returns
    /// `[batch, out_channels, H, W]`. `H` and `W` must be multiples of
    /// [`UNetConfig::spatial_multiple`] (see [`SrBackbone::check_inputs`]).
    pub fn forward(&self, x_t: Tensor<B, 4>, timesteps: Tensor<B, 1>, lr: Tensor<B, 4>) -> Tensor<B, 4> {
        let temb = self.time_embed(timesteps);
        let mut x = conv2d(&self.conv_in, Tensor::cat(vec![x_t, lr], 1));
        let mut skips = vec![x.clone()];
        for block in &self.down_blocks {
            let (hidden, block_skips) = block.forward(x, temb.clone());
            skips.extend(block_skips);
            x = hidden;
        }
        x = self.mid_block.forward(x, temb.clone());
        for block in &self.up_blocks {
            x = block.forward(x, &mut skips, temb.clone());
        }
        conv2d(&self.conv_out, silu(self.conv_norm_out.forward(x)))
    }
}

impl<B: Backend> UNet<B> {
    /// Timestep embedding `temb: [batch, 4·block_out_channels[0]]` of `t: [batch]` in `[0, 1]`.
    pub fn time_embed(&self, timesteps: Tensor<B, 1>) -> Tensor<B, 2> {
        let c = &self.config;
        let t = timesteps.mul_scalar(c.timestep_scale);
        let t_proj = timestep_embedding(t, c.block_out_channels[0], c.flip_sin_to_cos, c.freq_shift);
        self.time_embedding.forward(t_proj)
    }

    /// Shape `[batch, C_i, H_i, W_i]` of each raw student (before the heads) for an input of
    /// `height × width`, in tap order (`down_blocks.{i}`, `mid_block`, `up_blocks.{i}`).
    pub fn student_shapes(&self, batch: usize, height: usize, width: usize) -> Vec<[usize; 4]> {
        let ch = &self.config.block_out_channels;
        let levels = ch.len();
        let size = |level: usize| [height.div_ceil(1 << level), width.div_ceil(1 << level)];
        let mut shapes = Vec::with_capacity(2 * levels + 1);
        for (i, &c) in ch.iter().enumerate() {
            let [h, w] = size((i + 1).min(levels - 1));
            shapes.push([batch, c, h, w]);
        }
        let [h, w] = size(levels - 1);
        shapes.push([batch, ch[levels - 1], h, w]);
        for (i, &c) in ch.iter().rev().enumerate() {
            let [h, w] = size((levels - 1).saturating_sub(i + 1));
            shapes.push([batch, c, h, w]);
        }
        shapes
    }
}

/// The side multiple a U-Net of `levels` levels needs: `2^(levels − 1)` (one downsampler between
/// levels).
pub(crate) fn level_multiple(levels: usize) -> usize {
    1 << levels.saturating_sub(1)
}

impl<B: Backend> SrBackbone<B> for UNet<B> {
    fn in_channels(&self) -> usize {
        self.config.in_channels
    }

    fn lr_channels(&self) -> usize {
        self.config.lr_channels
    }

    fn out_channels(&self) -> usize {
        self.config.out_channels
    }

    fn spatial_multiple(&self) -> usize {
        self.config.spatial_multiple()
    }
}
