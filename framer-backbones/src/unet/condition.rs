//! Stable Diffusion 2's text-conditioned U-Net, diffusers `UNet2DConditionModel`, with its names
//! and layouts: `conv_in`, `time_proj` (parameter-free), `time_embedding`, `down_blocks`
//! (`DownBlock2D` / `CrossAttnDownBlock2D`), `mid_block` (`UNetMidBlock2DCrossAttn`), `up_blocks`
//! (`CrossAttnUpBlock2D` / `UpBlock2D`), `conv_norm_out`, `conv_out`. The attention levels hold
//! `Transformer2DModel`s whose `BasicTransformerBlock`s do self-attention, cross-attention to the
//! text tokens and a GEGLU feed-forward.
//!
//! A diffusers checkpoint loads unchanged through [`crate::load_safetensors`]; the model's output
//! equals diffusers' (checked against diffusers itself in `tests/diffusers.rs`). The ResNet blocks,
//! samplers and time embedding are those of [`crate::UNet`].

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, GroupNormConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::{gelu, silu};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use super::attention::{merge_heads, scaled_dot_product_attention, split_heads};
use super::resnet::{Downsample2D, ResnetBlock2D, Upsample2D, conv3x3};
use crate::BackboneError;
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
    /// Input channels (4 for SD2 latents; 7 for the x4 upscaler, which concatenates the LR image).
    pub in_channels: usize,
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
}

impl UNet2DConditionConfig {
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
            conv_in: conv3x3(self.in_channels, ch[0], device),
            time_embedding: TimestepEmbedding::new(ch[0], temb_dim, device),
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out: GroupNormConfig::new(self.norm_num_groups, ch[0]).with_epsilon(self.norm_eps).init(device),
            conv_out: conv3x3(ch[0], self.out_channels, device),
            config: self.clone(),
        })
    }
}

/// Multi-head attention, diffusers `Attention` as `BasicTransformerBlock` builds it: queries from
/// the tokens, keys and values from the tokens (`attn1`) or from the text tokens (`attn2`), no
/// bias on `to_q`, `to_k`, `to_v`, and a biased `to_out.0`.
#[derive(Module, Debug)]
pub struct CrossAttention<B: Backend> {
    /// `dim → dim`, no bias.
    pub to_q: Linear<B>,
    /// `context → dim`, no bias.
    pub to_k: Linear<B>,
    /// `context → dim`, no bias.
    pub to_v: Linear<B>,
    /// `dim → dim` (diffusers `to_out.0`).
    pub to_out: Linear<B>,
    /// Number of heads.
    pub heads: usize,
}

impl<B: Backend> CrossAttention<B> {
    fn new(dim: usize, context: usize, heads: usize, device: &B::Device) -> Self {
        let no_bias = |cin| LinearConfig::new(cin, dim).with_bias(false).init(device);
        Self {
            to_q: no_bias(dim),
            to_k: no_bias(context),
            to_v: no_bias(context),
            to_out: LinearConfig::new(dim, dim).init(device),
            heads,
        }
    }

    /// `x: [batch, N, dim]`, `context: [batch, M, context_dim]` → `[batch, N, dim]`.
    pub fn forward(&self, x: Tensor<B, 3>, context: Tensor<B, 3>) -> Tensor<B, 3> {
        let q = split_heads(self.to_q.forward(x), self.heads);
        let k = split_heads(self.to_k.forward(context.clone()), self.heads);
        let v = split_heads(self.to_v.forward(context), self.heads);
        self.to_out.forward(merge_heads(scaled_dot_product_attention(q, k, v)))
    }
}

/// GEGLU feed-forward, diffusers `FeedForward(activation_fn = "geglu")`:
/// `[h, g] = net_0(x)` (split in halves), `net_2(h · gelu(g))` with the exact (erf) GELU.
#[derive(Module, Debug)]
pub struct GegluFeedForward<B: Backend> {
    /// `dim → 2·4·dim` (diffusers `net.0.proj`).
    pub net_0: Linear<B>,
    /// `4·dim → dim` (diffusers `net.2`).
    pub net_2: Linear<B>,
}

impl<B: Backend> GegluFeedForward<B> {
    /// `[batch, N, dim] → [batch, N, dim]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let mut halves = self.net_0.forward(x).chunk(2, 2).into_iter();
        let hidden = halves.next().expect("two halves");
        let gate = halves.next().expect("two halves");
        self.net_2.forward(hidden * gelu(gate))
    }
}

/// Diffusers `BasicTransformerBlock` (`norm_type = "layer_norm"`): self-attention, cross-attention
/// to the text tokens and a GEGLU feed-forward, each after its own layer norm (ε = 1e-5) and
/// added back.
#[derive(Module, Debug)]
pub struct BasicTransformerBlock<B: Backend> {
    /// Norm before the self-attention.
    pub norm1: LayerNorm<B>,
    /// Self-attention.
    pub attn1: CrossAttention<B>,
    /// Norm before the cross-attention.
    pub norm2: LayerNorm<B>,
    /// Cross-attention to the text tokens.
    pub attn2: CrossAttention<B>,
    /// Norm before the feed-forward.
    pub norm3: LayerNorm<B>,
    /// GEGLU feed-forward.
    pub ff: GegluFeedForward<B>,
}

impl<B: Backend> BasicTransformerBlock<B> {
    /// `x: [batch, N, dim]`, `context: [batch, M, context_dim]` → `[batch, N, dim]`.
    pub fn forward(&self, x: Tensor<B, 3>, context: Tensor<B, 3>) -> Tensor<B, 3> {
        let h = self.norm1.forward(x.clone());
        let x = x + self.attn1.forward(h.clone(), h);
        let x = x.clone() + self.attn2.forward(self.norm2.forward(x), context);
        x.clone() + self.ff.forward(self.norm3.forward(x))
    }
}

#[derive(Clone, Copy)]
struct SpatialTransformerDims {
    channels: usize,
    heads: usize,
    groups: usize,
    context: usize,
}

/// Diffusers `Transformer2DModel` on a feature map, with one [`BasicTransformerBlock`]:
/// `x + unflatten(proj_out(blocks(proj_in(flatten(norm(x))))))` (`norm`: group norm, ε = 1e-6).
#[derive(Module, Debug)]
pub struct Transformer2DModel<B: Backend> {
    /// Group norm of the input.
    pub norm: GroupNorm<B>,
    /// Linear `C → C` on the tokens (`use_linear_projection`).
    pub proj_in: Linear<B>,
    /// The transformer blocks (one, as in SD2).
    pub transformer_blocks: Vec<BasicTransformerBlock<B>>,
    /// Linear `C → C` on the tokens.
    pub proj_out: Linear<B>,
}

impl<B: Backend> Transformer2DModel<B> {
    fn new(dims: SpatialTransformerDims, device: &B::Device) -> Self {
        let c = dims.channels;
        let norm = || LayerNormConfig::new(c).init(device);
        Self {
            norm: GroupNormConfig::new(dims.groups, c).with_epsilon(1e-6).init(device),
            proj_in: LinearConfig::new(c, c).init(device),
            transformer_blocks: vec![BasicTransformerBlock {
                norm1: norm(),
                attn1: CrossAttention::new(c, c, dims.heads, device),
                norm2: norm(),
                attn2: CrossAttention::new(c, dims.context, dims.heads, device),
                norm3: norm(),
                ff: GegluFeedForward {
                    net_0: LinearConfig::new(c, 8 * c).init(device),
                    net_2: LinearConfig::new(4 * c, c).init(device),
                },
            }],
            proj_out: LinearConfig::new(c, c).init(device),
        }
    }

    /// `x: [batch, C, H, W]`, `context: [batch, M, cross_attention_dim]` → `[batch, C, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>, context: Tensor<B, 3>) -> Tensor<B, 4> {
        let [b, c, h, w] = x.dims();
        let tokens = self.norm.forward(x.clone()).reshape([b, c, h * w]).swap_dims(1, 2);
        let mut tokens = self.proj_in.forward(tokens);
        for block in &self.transformer_blocks {
            tokens = block.forward(tokens, context.clone());
        }
        let out = self.proj_out.forward(tokens).swap_dims(1, 2).reshape([b, c, h, w]);
        out + x
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
#[derive(Module, Debug)]
pub struct UNet2DConditionModel<B: Backend> {
    /// 3×3 convolution `in_channels → block_out_channels[0]`.
    pub conv_in: Conv2d<B>,
    /// MLP on the sinusoidal timestep projection.
    pub time_embedding: TimestepEmbedding<B>,
    /// Encoder levels.
    pub down_blocks: Vec<CrossAttnDownBlock2D<B>>,
    /// Bottleneck.
    pub mid_block: UNetMidBlock2DCrossAttn<B>,
    /// Decoder levels.
    pub up_blocks: Vec<CrossAttnUpBlock2D<B>>,
    /// Final group norm.
    pub conv_norm_out: GroupNorm<B>,
    /// 3×3 convolution to `out_channels`.
    pub conv_out: Conv2d<B>,
    /// The configuration the model was built from.
    #[module(skip)]
    pub config: UNet2DConditionConfig,
}

impl<B: Backend> UNet2DConditionModel<B> {
    /// The prediction for `sample: [batch, in_channels, H, W]`, `timesteps: [batch]` in the
    /// model's own units (0 to 999 for SD2) and the text tokens
    /// `context: [batch, M, cross_attention_dim]`; returns `[batch, out_channels, H, W]`. `H` and
    /// `W` must be multiples of `2^(levels − 1)`.
    pub fn forward(&self, sample: Tensor<B, 4>, timesteps: Tensor<B, 1>, context: Tensor<B, 3>) -> Tensor<B, 4> {
        let t = timestep_embedding(timesteps, self.config.block_out_channels[0], true, 0.0);
        let temb = self.time_embedding.forward(t);
        let mut x = self.conv_in.forward(sample);
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
        self.conv_out.forward(silu(self.conv_norm_out.forward(x)))
    }
}
