//! ResNet block, down- and up-samplers of the U-Net (diffusers `resnet.py`, `downsampling.py`,
//! `upsampling.py`).

use framer::conv::conv2d;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

pub(crate) fn conv3x3<B: Backend>(cin: usize, cout: usize, device: &B::Device) -> Conv2d<B> {
    conv3x3_config(cin, cout).init(device)
}

/// [`conv3x3`] with zero weight and bias.
pub(crate) fn conv3x3_zeros<B: Backend>(cin: usize, cout: usize, device: &B::Device) -> Conv2d<B> {
    conv3x3_config(cin, cout).with_initializer(Initializer::Zeros).init(device)
}

fn conv3x3_config(cin: usize, cout: usize) -> Conv2dConfig {
    Conv2dConfig::new([cin, cout], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
}

/// Residual block with an optional timestep-embedding bias, diffusers `ResnetBlock2D`
/// (`output_scale_factor = 1`, no up/down sampling inside the block):
///
/// `h = conv1(silu(norm1(x))) + time_emb_proj(silu(temb))`, `h = conv2(silu(norm2(h)))`,
/// output `conv_shortcut(x) + h` (the shortcut is the identity when the widths agree).
///
/// Built with `temb_channels = None` (the VAE's blocks, [`ResnetBlock2D::without_time_embedding`])
/// it has no `time_emb_proj` and adds no bias, as in diffusers.
#[derive(Module, Debug)]
pub struct ResnetBlock2D<B: Backend> {
    /// Group norm over the input channels.
    pub norm1: GroupNorm<B>,
    /// 3×3 convolution `in → out`.
    pub conv1: Conv2d<B>,
    /// Projection of the timestep embedding to a per-channel bias (none without a time embedding).
    pub time_emb_proj: Option<Linear<B>>,
    /// Group norm over the output channels.
    pub norm2: GroupNorm<B>,
    /// 3×3 convolution `out → out`.
    pub conv2: Conv2d<B>,
    /// 1×1 convolution `in → out`, present when `in ≠ out`.
    pub conv_shortcut: Option<Conv2d<B>>,
}

impl<B: Backend> ResnetBlock2D<B> {
    /// Builds a block `cin → cout` with `groups` norm groups and a `temb_dim` time embedding.
    pub fn new(
        cin: usize,
        cout: usize,
        temb_dim: usize,
        groups: usize,
        eps: f64,
        device: &B::Device,
    ) -> Self {
        Self::build(cin, cout, Some(temb_dim), groups, eps, device)
    }

    /// Builds a block `cin → cout` without time embedding (diffusers `temb_channels = None`).
    pub fn without_time_embedding(
        cin: usize,
        cout: usize,
        groups: usize,
        eps: f64,
        device: &B::Device,
    ) -> Self {
        Self::build(cin, cout, None, groups, eps, device)
    }

    pub(crate) fn build(
        cin: usize,
        cout: usize,
        temb_dim: Option<usize>,
        groups: usize,
        eps: f64,
        device: &B::Device,
    ) -> Self {
        Self {
            norm1: GroupNormConfig::new(groups, cin).with_epsilon(eps).init(device),
            conv1: conv3x3(cin, cout, device),
            time_emb_proj: temb_dim.map(|d| LinearConfig::new(d, cout).init(device)),
            norm2: GroupNormConfig::new(groups, cout).with_epsilon(eps).init(device),
            conv2: conv3x3(cout, cout, device),
            conv_shortcut: (cin != cout)
                .then(|| Conv2dConfig::new([cin, cout], [1, 1]).init(device)),
        }
    }

    /// `x: [batch, in, H, W]`, `temb: [batch, temb_dim]` → `[batch, out, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>, temb: Tensor<B, 2>) -> Tensor<B, 4> {
        self.forward_with(x, Some(temb))
    }

    /// As [`ResnetBlock2D::forward`]; the time bias is added only when both `temb` and
    /// `time_emb_proj` are present.
    ///
    /// # Shapes
    /// - `x`: `[batch, in, H, W]`; `temb`: `[batch, temb_dim]`
    /// - output: `[batch, out, H, W]`
    pub fn forward_with(&self, x: Tensor<B, 4>, temb: Option<Tensor<B, 2>>) -> Tensor<B, 4> {
        let mut h = conv2d(&self.conv1, silu(self.norm1.forward(x.clone())));
        if let (Some(proj), Some(temb)) = (&self.time_emb_proj, temb) {
            h = h + proj.forward(silu(temb)).unsqueeze_dims::<4>(&[2, 3]);
        }
        let h = conv2d(&self.conv2, silu(self.norm2.forward(h)));
        let shortcut = match &self.conv_shortcut {
            Some(conv) => conv2d(conv, x),
            None => x,
        };
        shortcut + h
    }
}

/// Stride-2 3×3 convolution, diffusers `Downsample2D(use_conv=True)`.
///
/// `padding = 1` (the U-Net's) pads one pixel on every side; `padding = 0` (the VAE encoder's,
/// [`Downsample2D::asymmetric`]) pads one zero row at the bottom and one zero column at the right
/// (diffusers `F.pad(x, (0, 1, 0, 1))`) before an unpadded convolution.
#[derive(Module, Debug)]
pub struct Downsample2D<B: Backend> {
    /// The strided convolution.
    pub conv: Conv2d<B>,
}

impl<B: Backend> Downsample2D<B> {
    /// Builds a `channels → channels` downsampler with symmetric padding 1.
    pub fn new(channels: usize, device: &B::Device) -> Self {
        Self::with_padding(channels, PaddingConfig2d::Explicit(1, 1, 1, 1), device)
    }

    /// Builds a `channels → channels` downsampler padded at the bottom and right only
    /// (diffusers `Downsample2D(padding=0)`, the VAE encoder's).
    pub fn asymmetric(channels: usize, device: &B::Device) -> Self {
        Self::with_padding(channels, PaddingConfig2d::Explicit(0, 0, 1, 1), device)
    }

    fn with_padding(channels: usize, padding: PaddingConfig2d, device: &B::Device) -> Self {
        Self {
            conv: Conv2dConfig::new([channels, channels], [3, 3])
                .with_stride([2, 2])
                .with_padding(padding)
                .init(device),
        }
    }

    /// `[batch, C, H, W] → [batch, C, H', W']`: `H' = ⌊(H − 1)/2⌋ + 1` with symmetric padding,
    /// `⌊H/2⌋` with the asymmetric one (both `H/2` for even `H`; the same for `W`).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        conv2d(&self.conv, x)
    }
}

/// Nearest ×2 upsampling followed by a 3×3 convolution, diffusers `Upsample2D(use_conv=True)`.
#[derive(Module, Debug)]
pub struct Upsample2D<B: Backend> {
    /// The convolution after upsampling.
    pub conv: Conv2d<B>,
}

impl<B: Backend> Upsample2D<B> {
    /// Builds a `channels → channels` upsampler.
    pub fn new(channels: usize, device: &B::Device) -> Self {
        Self { conv: conv3x3(channels, channels, device) }
    }

    /// `[batch, C, H, W] → [batch, C, 2H, 2W]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, h, w] = x.dims();
        let up = interpolate(x, [2 * h, 2 * w], InterpolateOptions::new(InterpolateMode::Nearest));
        conv2d(&self.conv, up)
    }
}
