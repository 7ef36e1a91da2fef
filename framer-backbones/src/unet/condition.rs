//! Stable Diffusion 2's text-conditioned U-Net, diffusers `UNet2DConditionModel`, with its names
//! and layouts: `conv_in`, `time_proj` (parameter-free), `time_embedding`, `down_blocks`
//! (`DownBlock2D` / `CrossAttnDownBlock2D`), `mid_block` (`UNetMidBlock2DCrossAttn`), `up_blocks`
//! (`CrossAttnUpBlock2D` / `UpBlock2D`), `conv_norm_out`, `conv_out`. The attention levels hold
//! `Transformer2DModel`s whose `BasicTransformerBlock`s do self-attention, cross-attention to the
//! text tokens and a GEGLU feed-forward.
//!
//! A diffusers checkpoint loads unchanged through [`crate::load_safetensors`]; the model's output
//! equals diffusers' (checked against diffusers itself in `tests/diffusers.rs`, through
//! [`UNet2DConditionModel::forward_text`]). The ResNet blocks, samplers and time embedding are
//! those of [`crate::UNet`].
//!
//! It is also a trainable SR model (`[model] backbone = "unet2d_condition"`): its training
//! contract [`UNet2DConditionModel::forward`] `(x_t, t, lr)` concatenates the upsampled LR image
//! (or its latent) to `x_t` into `conv_in` (`lr_channels` more input channels, as the SD ×4
//! upscaler does) and attends to the prompt set by [`UNet2DConditionModel::with_prompt`] (the
//! engine sets it from `[prompts]`), or, without one, to a single zero token. The FRAMER students
//! are, as in [`crate::UNet`], the outputs of every down block, the mid block and every up block,
//! read out by generated 1×1 heads; the teacher is the output.

use framer::conv::conv2d;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::GroupNorm;
use burn::nn::GroupNormConfig;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use framer::{framer, framer_forward};

pub use super::transformer2d::{BasicTransformerBlock, CrossAttention, GegluFeedForward, Transformer2DModel};
use super::transformer2d::SpatialTransformerDims;
use super::resnet::{Downsample2D, ResnetBlock2D, Upsample2D, conv3x3};
use crate::{BackboneError, SrBackbone, TextCondition};
use crate::embeddings::{TimestepEmbedding, timestep_embedding};

/// Encoder level type of the text-conditioned U-Net (diffusers `down_block_types`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CrossAttnDownType {
    /// ResNet blocks only.
    DownBlock2D,
    /// ResNet blocks, each followed by a `Transformer2DModel`.
    CrossAttnDownBlock2D,
}

/// Decoder level type of the text-conditioned U-Net (diffusers `up_block_types`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CrossAttnUpType {
    /// ResNet blocks only.
    UpBlock2D,
    /// ResNet blocks, each followed by a `Transformer2DModel`.
    CrossAttnUpBlock2D,
}

/// Configuration of [`UNet2DConditionModel`]; the fields are diffusers' config keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UNet2DConditionConfig {
    /// Channels of the noisy input (4 for SD2 latents).
    pub in_channels: usize,
    /// Channels of the LR condition concatenated to the input in [`UNet2DConditionModel::forward`]
    /// (`conv_in` takes `in_channels + lr_channels`; 0, the default, is diffusers' model, whose
    /// `in_channels` already counts any concatenated condition: 7 for the ×4 upscaler).
    #[serde(default)]
    pub lr_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Width of each level, from the input resolution down.
    pub block_out_channels: Vec<usize>,
    /// One entry per level.
    pub down_block_types: Vec<CrossAttnDownType>,
    /// One entry per level, from the deepest up.
    pub up_block_types: Vec<CrossAttnUpType>,
    /// ResNet blocks per encoder level (decoder levels have one more).
    pub layers_per_block: usize,
    /// Heads per level (SD2 writes head counts under this diffusers name: `[5, 10, 20, 20]`); a
    /// level's head width is its channels over its head count. The mid block uses the last entry.
    pub attention_head_dim: Vec<usize>,
    /// Width of the text tokens (1024 for SD2).
    pub cross_attention_dim: usize,
    /// Group-norm groups of the ResNets and the transformers' input norm.
    pub norm_num_groups: usize,
    /// Group-norm ε of the ResNets and the output norm (the transformers' input norm uses 1e-6).
    pub norm_eps: f64,
    /// Linear `proj_in` / `proj_out` in the transformers (SD2). Must be `true`: SD1's 1×1
    /// convolutions are not modelled.
    pub use_linear_projection: bool,
    /// Factor from the engine's timesteps in `[0, 1]` to the model's units (1000 for the SR
    /// presets; the default 1 leaves diffusers' own timesteps as they are).
    #[serde(default = "unit_scale")]
    pub timestep_scale: f64,
}

fn unit_scale() -> f64 {
    1.0
}

impl UNet2DConditionConfig {
    /// The preset names.
    pub const PRESETS: [&'static str; 2] = ["tiny", "sd2"];

    /// CPU preset: RGB pixels, two levels (16/32 channels, one ResNet each, 4 norm groups), a
    /// cross-attention transformer (2 heads) on each level and in the mid block, text tokens of
    /// width 32.
    pub fn tiny() -> Self {
        Self {
            in_channels: 3,
            lr_channels: 3,
            out_channels: 3,
            block_out_channels: vec![16, 32],
            down_block_types: vec![CrossAttnDownType::CrossAttnDownBlock2D, CrossAttnDownType::CrossAttnDownBlock2D],
            up_block_types: vec![CrossAttnUpType::CrossAttnUpBlock2D, CrossAttnUpType::CrossAttnUpBlock2D],
            layers_per_block: 1,
            attention_head_dim: vec![2, 2],
            cross_attention_dim: 32,
            norm_num_groups: 4,
            norm_eps: 1e-5,
            use_linear_projection: true,
            timestep_scale: 1000.0,
        }
    }

    /// Stable Diffusion 2's `UNet2DConditionModel` (320/640/1280/1280, two ResNets per level,
    /// cross-attention on the three upper levels, 5/10/20/20 heads, text width 1024) on SD2 latents,
    /// with the LR latent concatenated (`conv_in` takes 8 channels, so an SD2 checkpoint's
    /// 4-channel `conv_in.weight` is a shape mismatch until it is widened).
    pub fn sd2() -> Self {
        Self {
            in_channels: 4,
            lr_channels: 4,
            out_channels: 4,
            block_out_channels: vec![320, 640, 1280, 1280],
            down_block_types: vec![
                CrossAttnDownType::CrossAttnDownBlock2D,
                CrossAttnDownType::CrossAttnDownBlock2D,
                CrossAttnDownType::CrossAttnDownBlock2D,
                CrossAttnDownType::DownBlock2D,
            ],
            up_block_types: vec![
                CrossAttnUpType::UpBlock2D,
                CrossAttnUpType::CrossAttnUpBlock2D,
                CrossAttnUpType::CrossAttnUpBlock2D,
                CrossAttnUpType::CrossAttnUpBlock2D,
            ],
            layers_per_block: 2,
            attention_head_dim: vec![5, 10, 20, 20],
            cross_attention_dim: 1024,
            norm_num_groups: 32,
            norm_eps: 1e-5,
            use_linear_projection: true,
            timestep_scale: 1000.0,
        }
    }

    /// The preset called `name` (one of [`UNet2DConditionConfig::PRESETS`]).
    pub fn preset(name: &str) -> Result<Self, BackboneError> {
        match name {
            "tiny" => Ok(Self::tiny()),
            "sd2" => Ok(Self::sd2()),
            _ => Err(BackboneError::UnknownPreset {
                model: "unet2d_condition",
                name: name.to_string(),
                known: Self::PRESETS.join(", "),
            }),
        }
    }

    /// `H` and `W` must be multiples of `2^(levels − 1)`.
    pub fn spatial_multiple(&self) -> usize {
        super::level_multiple(self.block_out_channels.len())
    }

    fn invalid(field: &'static str, reason: impl Into<String>) -> BackboneError {
        BackboneError::InvalidConfig { model: "unet2d_condition", field, reason: reason.into() }
    }

    /// Checks every constraint [`UNet2DConditionConfig::init`] relies on.
    pub fn validate(&self) -> Result<(), BackboneError> {
        let levels = self.block_out_channels.len();
        if levels == 0 {
            return Err(Self::invalid("block_out_channels", "is empty"));
        }
        for (field, n) in [
            ("down_block_types", self.down_block_types.len()),
            ("up_block_types", self.up_block_types.len()),
            ("attention_head_dim", self.attention_head_dim.len()),
        ] {
            if n != levels {
                return Err(Self::invalid(field, format!("has {n} entries but block_out_channels has {levels}")));
            }
        }
        for (&c, &heads) in self.block_out_channels.iter().zip(&self.attention_head_dim) {
            if self.norm_num_groups == 0 || c == 0 || c % self.norm_num_groups != 0 {
                return Err(Self::invalid(
                    "block_out_channels",
                    format!("entry {c} is not a positive multiple of norm_num_groups = {}", self.norm_num_groups),
                ));
            }
            if heads == 0 || c % heads != 0 {
                return Err(Self::invalid("attention_head_dim", format!("{heads} heads do not divide the width {c}")));
            }
        }
        if self.layers_per_block == 0 || self.in_channels == 0 || self.out_channels == 0 || self.cross_attention_dim == 0 {
            return Err(Self::invalid("layers_per_block", "layers and channel counts must be positive"));
        }
        if !self.block_out_channels[0].is_multiple_of(2) {
            return Err(Self::invalid("block_out_channels", "first entry must be even (the timestep projection width)"));
        }
        if !self.timestep_scale.is_finite() {
            return Err(Self::invalid("timestep_scale", "must be finite"));
        }
        if !self.use_linear_projection {
            return Err(Self::invalid(
                "use_linear_projection",
                "must be true: only SD2's linear projections are modelled, not SD1's 1×1 convolutions",
            ));
        }
        Ok(())
    }

    /// Validates the config and builds a freshly initialised model on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<UNet2DConditionModel<B>, BackboneError> {
        self.validate()?;
        let ch = &self.block_out_channels;
        let levels = ch.len();
        let temb_dim = 4 * ch[0];
        let spatial = |c: usize, heads: usize| SpatialTransformerDims {
            channels: c,
            heads,
            groups: self.norm_num_groups,
            context: self.cross_attention_dim,
        };
        let resnet = |cin, cout| ResnetBlock2D::new(cin, cout, temb_dim, self.norm_num_groups, self.norm_eps, device);
        let mut down_blocks = Vec::with_capacity(levels);
        let mut out = ch[0];
        for (i, ty) in self.down_block_types.iter().enumerate() {
            let cin = out;
            out = ch[i];
            let cross = *ty == CrossAttnDownType::CrossAttnDownBlock2D;
            down_blocks.push(CrossAttnDownBlock2D {
                resnets: (0..self.layers_per_block).map(|j| resnet(if j == 0 { cin } else { out }, out)).collect(),
                attentions: (0..if cross { self.layers_per_block } else { 0 })
                    .map(|_| Transformer2DModel::new(spatial(out, self.attention_head_dim[i]), device))
                    .collect(),
                downsamplers: (i + 1 < levels).then(|| Downsample2D::new(out, device)).into_iter().collect(),
            });
        }
        let deepest = ch[levels - 1];
        let mid_block = UNetMidBlock2DCrossAttn {
            resnets: vec![resnet(deepest, deepest), resnet(deepest, deepest)],
            attentions: vec![Transformer2DModel::new(spatial(deepest, self.attention_head_dim[levels - 1]), device)],
        };
        let rev: Vec<usize> = ch.iter().rev().copied().collect();
        let rev_heads: Vec<usize> = self.attention_head_dim.iter().rev().copied().collect();
        let mut up_blocks = Vec::with_capacity(levels);
        let mut out = rev[0];
        for (i, ty) in self.up_block_types.iter().enumerate() {
            let prev = out;
            out = rev[i];
            let cin = rev[(i + 1).min(levels - 1)];
            let layers = self.layers_per_block + 1;
            let cross = *ty == CrossAttnUpType::CrossAttnUpBlock2D;
            up_blocks.push(CrossAttnUpBlock2D {
                resnets: (0..layers)
                    .map(|j| {
                        let skip = if j == layers - 1 { cin } else { out };
                        resnet(if j == 0 { prev } else { out } + skip, out)
                    })
                    .collect(),
                attentions: (0..if cross { layers } else { 0 })
                    .map(|_| Transformer2DModel::new(spatial(out, rev_heads[i]), device))
                    .collect(),
                upsamplers: (i + 1 < levels).then(|| Upsample2D::new(out, device)).into_iter().collect(),
            });
        }
        Ok(UNet2DConditionModel {
            conv_in: conv3x3(self.in_channels + self.lr_channels, ch[0], device),
            time_embedding: TimestepEmbedding::new(ch[0], temb_dim, device),
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out: GroupNormConfig::new(self.norm_num_groups, ch[0]).with_epsilon(self.norm_eps).init(device),
            conv_out: conv3x3(ch[0], self.out_channels, device),
            config: self.clone(),
            prompt: None,
        })
    }
}

/// One encoder level: ResNet blocks, each followed by a [`Transformer2DModel`]
/// (`CrossAttnDownBlock2D`) or not (`DownBlock2D`: `attentions` is empty), and a downsampler on
/// every level but the deepest.
#[derive(Module, Debug)]
pub struct CrossAttnDownBlock2D<B: Backend> {
    /// The ResNet blocks.
    pub resnets: Vec<ResnetBlock2D<B>>,
    /// One transformer per ResNet block, or none.
    pub attentions: Vec<Transformer2DModel<B>>,
    /// Zero or one downsampler.
    pub downsamplers: Vec<Downsample2D<B>>,
}

impl<B: Backend> CrossAttnDownBlock2D<B> {
    /// `x: [batch, in, H, W]` → (`[batch, out, H', W']`, the skip activations in push order).
    pub fn forward(&self, x: Tensor<B, 4>, temb: Tensor<B, 2>, context: Tensor<B, 3>) -> (Tensor<B, 4>, Vec<Tensor<B, 4>>) {
        let mut x = x;
        let mut skips = Vec::with_capacity(self.resnets.len() + 1);
        for (i, resnet) in self.resnets.iter().enumerate() {
            x = resnet.forward(x, temb.clone());
            if let Some(attn) = self.attentions.get(i) {
                x = attn.forward(x, context.clone());
            }
            skips.push(x.clone());
        }
        for down in &self.downsamplers {
            x = down.forward(x);
            skips.push(x.clone());
        }
        (x, skips)
    }
}

/// The bottleneck, diffusers `UNetMidBlock2DCrossAttn`: ResNet, transformer, ResNet.
#[derive(Module, Debug)]
pub struct UNetMidBlock2DCrossAttn<B: Backend> {
    /// Two ResNet blocks at constant width.
    pub resnets: Vec<ResnetBlock2D<B>>,
    /// One transformer between them.
    pub attentions: Vec<Transformer2DModel<B>>,
}

impl<B: Backend> UNetMidBlock2DCrossAttn<B> {
    /// `[batch, C, H, W] → [batch, C, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>, temb: Tensor<B, 2>, context: Tensor<B, 3>) -> Tensor<B, 4> {
        let mut x = self.resnets[0].forward(x, temb.clone());
        for (attn, resnet) in self.attentions.iter().zip(&self.resnets[1..]) {
            x = resnet.forward(attn.forward(x, context.clone()), temb.clone());
        }
        x
    }
}

/// One decoder level: ResNet blocks fed the running activation and one popped skip, each followed
/// by a [`Transformer2DModel`] (`CrossAttnUpBlock2D`) or not (`UpBlock2D`), then an upsampler on
/// every level but the last.
#[derive(Module, Debug)]
pub struct CrossAttnUpBlock2D<B: Backend> {
    /// The ResNet blocks.
    pub resnets: Vec<ResnetBlock2D<B>>,
    /// One transformer per ResNet block, or none.
    pub attentions: Vec<Transformer2DModel<B>>,
    /// Zero or one upsampler.
    pub upsamplers: Vec<Upsample2D<B>>,
}

impl<B: Backend> CrossAttnUpBlock2D<B> {
    /// `x: [batch, prev, H, W]`; pops one skip per ResNet block from the end of `skips`.
    pub fn forward(
        &self,
        x: Tensor<B, 4>,
        skips: &mut Vec<Tensor<B, 4>>,
        temb: Tensor<B, 2>,
        context: Tensor<B, 3>,
    ) -> Tensor<B, 4> {
        let mut x = x;
        for (i, resnet) in self.resnets.iter().enumerate() {
            let skip = skips.pop().expect("the U-Net pushes one skip per up-block ResNet");
            x = resnet.forward(Tensor::cat(vec![x, skip], 1), temb.clone());
            if let Some(attn) = self.attentions.get(i) {
                x = attn.forward(x, context.clone());
            }
        }
        for up in &self.upsamplers {
            x = up.forward(x);
        }
        x
    }
}

/// Diffusers' `UNet2DConditionModel` (see the [module docs](self)).
///
/// `#[framer(heads = conv1x1)]` marks the students; `#[framer_forward]` generates
/// `forward_with_taps` for [`UNet2DConditionModel::forward`].
#[doc(alias = "SD2 U-Net")]
#[framer(heads = conv1x1)]
#[derive(Module, Debug)]
pub struct UNet2DConditionModel<B: Backend> {
    /// 3×3 convolution `in_channels + lr_channels → block_out_channels[0]`.
    pub conv_in: Conv2d<B>,
    /// MLP on the sinusoidal timestep projection.
    pub time_embedding: TimestepEmbedding<B>,
    /// Encoder levels (students: their hidden output, element 0 of `forward`'s tuple).
    #[framer(student, tap = .0)]
    pub down_blocks: Vec<CrossAttnDownBlock2D<B>>,
    /// Bottleneck (student).
    #[framer(student)]
    pub mid_block: UNetMidBlock2DCrossAttn<B>,
    /// Decoder levels (students).
    #[framer(student)]
    pub up_blocks: Vec<CrossAttnUpBlock2D<B>>,
    /// Final group norm.
    pub conv_norm_out: GroupNorm<B>,
    /// 3×3 convolution to `out_channels`.
    pub conv_out: Conv2d<B>,
    /// The configuration the model was built from.
    #[module(skip)]
    pub config: UNet2DConditionConfig,
    /// The prompt [`UNet2DConditionModel::forward`] attends to (set by
    /// [`UNet2DConditionModel::with_prompt`]; not a parameter and not saved).
    #[module(skip)]
    pub prompt: Option<TextCondition<B>>,
}

#[framer_forward]
impl<B: Backend> UNet2DConditionModel<B> {
    /// The SR prediction for noisy input `x_t: [batch, in_channels, H, W]`, timesteps
    /// `t: [batch]` in `[0, 1]` (times `timestep_scale`) and the upsampled LR condition
    /// `lr: [batch, lr_channels, H, W]`, concatenated to `x_t`. The text tokens are the prompt's
    /// (`[1 or batch, M, cross_attention_dim]`; a prompt of batch 1 serves every sample), or one
    /// zero token without a prompt. Returns `[batch, out_channels, H, W]`.
    pub fn forward(&self, x_t: Tensor<B, 4>, timesteps: Tensor<B, 1>, lr: Tensor<B, 4>) -> Tensor<B, 4> {
        let [batch, _, _, _] = x_t.dims();
        let context = self.context(batch, &x_t);
        let temb = self.time_embed(timesteps.mul_scalar(self.config.timestep_scale));
        let mut x = conv2d(&self.conv_in, Tensor::cat(vec![x_t, lr], 1));
        let mut skips = vec![x.clone()];
        for block in &self.down_blocks {
            let (hidden, block_skips) = block.forward(x, temb.clone(), context.clone());
            skips.extend(block_skips);
            x = hidden;
        }
        x = self.mid_block.forward(x, temb.clone(), context.clone());
        for block in &self.up_blocks {
            x = block.forward(x, &mut skips, temb.clone(), context.clone());
        }
        conv2d(&self.conv_out, silu(self.conv_norm_out.forward(x)))
    }
}

impl<B: Backend> UNet2DConditionModel<B> {
    /// The model with `prompt` as the prompt [`UNet2DConditionModel::forward`] attends to (its
    /// tokens `[batch or 1, M, cross_attention_dim]`; the pooled embedding is not used).
    pub fn with_prompt(mut self, prompt: Option<TextCondition<B>>) -> Self {
        self.prompt = prompt;
        self
    }

    /// The text tokens of [`UNet2DConditionModel::forward`]: the prompt's, repeated to `batch`
    /// if it has one row, or one zero token `[batch, 1, cross_attention_dim]`, in `like`'s float
    /// type.
    fn context(&self, batch: usize, like: &Tensor<B, 4>) -> Tensor<B, 3> {
        match &self.prompt {
            Some(p) => p.clone().broadcast(batch).tokens.cast(burn::tensor::FloatDType::from(like.dtype())),
            None => Tensor::zeros([batch, 1, self.config.cross_attention_dim], (&like.device(), like.dtype())),
        }
    }

    /// `temb: [batch, 4·block_out_channels[0]]` of timesteps in the model's own units.
    fn time_embed(&self, timesteps: Tensor<B, 1>) -> Tensor<B, 2> {
        let t = timestep_embedding(timesteps, self.config.block_out_channels[0], true, 0.0);
        self.time_embedding.forward(t)
    }

    /// Diffusers' own `forward`: the prediction for `sample: [batch, in_channels + lr_channels,
    /// H, W]` (any condition already concatenated), `timesteps: [batch]` in the model's own units
    /// (0 to 999 for SD2; `timestep_scale` is not applied) and the text tokens
    /// `context: [batch, M, cross_attention_dim]`; returns `[batch, out_channels, H, W]`. `H` and
    /// `W` must be multiples of `2^(levels − 1)`.
    pub fn forward_text(&self, sample: Tensor<B, 4>, timesteps: Tensor<B, 1>, context: Tensor<B, 3>) -> Tensor<B, 4> {
        let temb = self.time_embed(timesteps);
        let mut x = conv2d(&self.conv_in, sample);
        let mut skips = vec![x.clone()];
        for block in &self.down_blocks {
            let (hidden, block_skips) = block.forward(x, temb.clone(), context.clone());
            skips.extend(block_skips);
            x = hidden;
        }
        x = self.mid_block.forward(x, temb.clone(), context.clone());
        for block in &self.up_blocks {
            x = block.forward(x, &mut skips, temb.clone(), context.clone());
        }
        conv2d(&self.conv_out, silu(self.conv_norm_out.forward(x)))
    }
}

impl<B: Backend> SrBackbone<B> for UNet2DConditionModel<B> {
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
