//! Encoder and decoder of the VAE (diffusers `autoencoders/vae.py`: `Encoder`, `Decoder`, and
//! `unet_2d_blocks.py`: `DownEncoderBlock2D`, `UpDecoderBlock2D`), built from the U-Net's
//! [`ResnetBlock2D`], [`Downsample2D`], [`Upsample2D`] and [`UNetMidBlock2D`] without time
//! embedding.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;

use super::VaeConfig;
use crate::unet::resnet::conv3x3;
use crate::unet::{Downsample2D, ResnetBlock2D, UNetMidBlock2D, Upsample2D};

/// `GroupNorm`, SiLU, 3×3 convolution: the tail of both halves (`conv_norm_out`, `conv_out`).
fn norm_act_conv<B: Backend>(norm: &GroupNorm<B>, conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    conv.forward(silu(norm.forward(x)))
}

/// The mid block of either half: ResNet, single-head self-attention over all channels, ResNet.
fn mid_block<B: Backend>(channels: usize, config: &VaeConfig, device: &B::Device) -> UNetMidBlock2D<B> {
    let (groups, eps) = (config.norm_num_groups, config.norm_eps);
    UNetMidBlock2D::without_time_embedding(channels, config.mid_block_add_attention, groups, eps, channels, device)
}

/// One encoder level, diffusers `DownEncoderBlock2D`: `layers_per_block` ResNet blocks (no time
/// embedding) and, except on the deepest level, a stride-2 downsampler padded at the bottom and
/// right.
#[derive(Module, Debug)]
pub struct DownEncoderBlock2D<B: Backend> {
    /// The ResNet blocks, `in → out` then `out → out`.
    pub resnets: Vec<ResnetBlock2D<B>>,
    /// Zero or one downsampler.
    pub downsamplers: Vec<Downsample2D<B>>,
}

impl<B: Backend> DownEncoderBlock2D<B> {
    /// # Shapes
    /// `[batch, in, H, W] → [batch, out, H/2, W/2]` (`[batch, out, H, W]` on the deepest level).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = self.resnets.iter().fold(x, |x, r| r.forward_with(x, None));
        self.downsamplers.iter().fold(x, |x, d| d.forward(x))
    }
}

/// One decoder level, diffusers `UpDecoderBlock2D`: `layers_per_block + 1` ResNet blocks (no time
/// embedding, no skips) and, except on the last level, a nearest ×2 upsampler with a convolution.
#[derive(Module, Debug)]
pub struct UpDecoderBlock2D<B: Backend> {
    /// The ResNet blocks, `in → out` then `out → out`.
    pub resnets: Vec<ResnetBlock2D<B>>,
    /// Zero or one upsampler.
    pub upsamplers: Vec<Upsample2D<B>>,
}

impl<B: Backend> UpDecoderBlock2D<B> {
    /// # Shapes
    /// `[batch, in, H, W] → [batch, out, 2H, 2W]` (`[batch, out, H, W]` on the last level).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = self.resnets.iter().fold(x, |x, r| r.forward_with(x, None));
        self.upsamplers.iter().fold(x, |x, u| u.forward(x))
    }
}

fn resnets<B: Backend>(cin: usize, cout: usize, n: usize, config: &VaeConfig, device: &B::Device) -> Vec<ResnetBlock2D<B>> {
    (0..n)
        .map(|i| {
            let c = if i == 0 { cin } else { cout };
            ResnetBlock2D::without_time_embedding(c, cout, config.norm_num_groups, config.norm_eps, device)
        })
        .collect()
}

/// The VAE encoder, diffusers `Encoder` with `double_z = True`: `conv_in`, the down blocks, the
/// mid block, `conv_norm_out`, SiLU, `conv_out` to the posterior's `2·latent_channels` moments.
#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    /// 3×3 convolution `in_channels → block_out_channels[0]`.
    pub conv_in: Conv2d<B>,
    /// One [`DownEncoderBlock2D`] per entry of `block_out_channels`.
    pub down_blocks: Vec<DownEncoderBlock2D<B>>,
    /// ResNet, attention, ResNet at the deepest width.
    pub mid_block: UNetMidBlock2D<B>,
    /// Group norm over the deepest width.
    pub conv_norm_out: GroupNorm<B>,
    /// 3×3 convolution to `2·latent_channels` (mean and log-variance).
    pub conv_out: Conv2d<B>,
}

impl<B: Backend> Encoder<B> {
    pub(crate) fn new(config: &VaeConfig, device: &B::Device) -> Self {
        let ch = &config.block_out_channels;
        let levels = ch.len();
        let down_blocks = (0..levels)
            .map(|i| DownEncoderBlock2D {
                resnets: resnets(if i == 0 { ch[0] } else { ch[i - 1] }, ch[i], config.layers_per_block, config, device),
                downsamplers: if i + 1 < levels { vec![Downsample2D::asymmetric(ch[i], device)] } else { Vec::new() },
            })
            .collect();
        let deepest = ch[levels - 1];
        Self {
            conv_in: conv3x3(config.in_channels, ch[0], device),
            down_blocks,
            mid_block: mid_block(deepest, config, device),
            conv_norm_out: GroupNormConfig::new(config.norm_num_groups, deepest).with_epsilon(config.norm_eps).init(device),
            conv_out: conv3x3(deepest, 2 * config.latent_channels, device),
        }
    }

    /// # Shapes
    /// `[batch, in_channels, H, W] → [batch, 2·latent_channels, H/f, W/f]`, `f = 2^(levels − 1)`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = self.conv_in.forward(x);
        let x = self.down_blocks.iter().fold(x, |x, block| block.forward(x));
        let x = self.mid_block.forward_with(x, None);
        norm_act_conv(&self.conv_norm_out, &self.conv_out, x)
    }
}

/// The VAE decoder, diffusers `Decoder` (`norm_type = "group"`): `conv_in`, the mid block, the up
/// blocks (widths `block_out_channels` reversed), `conv_norm_out`, SiLU, `conv_out`.
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    /// 3×3 convolution `latent_channels → block_out_channels[last]`.
    pub conv_in: Conv2d<B>,
    /// ResNet, attention, ResNet at the deepest width.
    pub mid_block: UNetMidBlock2D<B>,
    /// One [`UpDecoderBlock2D`] per entry of `block_out_channels`, deepest first.
    pub up_blocks: Vec<UpDecoderBlock2D<B>>,
    /// Group norm over `block_out_channels[0]`.
    pub conv_norm_out: GroupNorm<B>,
    /// 3×3 convolution `block_out_channels[0] → out_channels`.
    pub conv_out: Conv2d<B>,
}

impl<B: Backend> Decoder<B> {
    pub(crate) fn new(config: &VaeConfig, device: &B::Device) -> Self {
        let rev: Vec<usize> = config.block_out_channels.iter().rev().copied().collect();
        let levels = rev.len();
        let up_blocks = (0..levels)
            .map(|i| UpDecoderBlock2D {
                resnets: resnets(if i == 0 { rev[0] } else { rev[i - 1] }, rev[i], config.layers_per_block + 1, config, device),
                upsamplers: if i + 1 < levels { vec![Upsample2D::new(rev[i], device)] } else { Vec::new() },
            })
            .collect();
        Self {
            conv_in: conv3x3(config.latent_channels, rev[0], device),
            mid_block: mid_block(rev[0], config, device),
            up_blocks,
            conv_norm_out: GroupNormConfig::new(config.norm_num_groups, rev[levels - 1]).with_epsilon(config.norm_eps).init(device),
            conv_out: conv3x3(rev[levels - 1], config.out_channels, device),
        }
    }

    /// # Shapes
    /// `[batch, latent_channels, h, w] → [batch, out_channels, h·f, w·f]`, `f = 2^(levels − 1)`.
    pub fn forward(&self, z: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = self.conv_in.forward(z);
        let x = self.mid_block.forward_with(x, None);
        let x = self.up_blocks.iter().fold(x, |x, block| block.forward(x));
        norm_act_conv(&self.conv_norm_out, &self.conv_out, x)
    }
}
