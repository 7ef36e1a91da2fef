//! Down, mid and up blocks of the U-Net (diffusers `unet_2d_blocks.py`: `DownBlock2D` /
//! `AttnDownBlock2D`, `UNetMidBlock2D`, `UpBlock2D` / `AttnUpBlock2D`).
//!
//! One struct serves both the plain and the attention variant of a level: `attentions` is empty
//! for the plain one, exactly as the diffusers state-dict keys are absent for it.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::attention::Attention;
use super::resnet::{Downsample2D, ResnetBlock2D, Upsample2D};

/// Widths and norms shared by the blocks of one U-Net.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockDims {
    pub temb_dim: usize,
    pub groups: usize,
    pub eps: f64,
    pub head_dim: usize,
}

/// One encoder level: `layers_per_block` ResNet blocks (each optionally followed by
/// self-attention) and, except on the deepest level, a stride-2 downsampler.
#[derive(Module, Debug)]
pub struct DownBlock2D<B: Backend> {
    /// The ResNet blocks, `in → out` then `out → out`.
    pub resnets: Vec<ResnetBlock2D<B>>,
    /// One attention per ResNet block (`AttnDownBlock2D`), or none (`DownBlock2D`).
    pub attentions: Vec<Attention<B>>,
    /// Zero or one downsampler.
    pub downsamplers: Vec<Downsample2D<B>>,
}

impl<B: Backend> DownBlock2D<B> {
    pub(crate) fn new(
        cin: usize,
        cout: usize,
        layers: usize,
        attention: bool,
        downsample: bool,
        dims: BlockDims,
        device: &B::Device,
    ) -> Self {
        let resnets = (0..layers)
            .map(|i| {
                let c = if i == 0 { cin } else { cout };
                ResnetBlock2D::new(c, cout, dims.temb_dim, dims.groups, dims.eps, device)
            })
            .collect();
        let attentions = if attention {
            (0..layers)
                .map(|_| Attention::new(cout, dims.head_dim, dims.groups, dims.eps, device))
                .collect()
        } else {
            Vec::new()
        };
        let downsamplers =
            if downsample { vec![Downsample2D::new(cout, device)] } else { Vec::new() };
        Self { resnets, attentions, downsamplers }
    }

    /// `x: [batch, in, H, W]` → (`[batch, out, H', W']`, the skip activations in push order).
    pub fn forward(&self, x: Tensor<B, 4>, temb: Tensor<B, 2>) -> (Tensor<B, 4>, Vec<Tensor<B, 4>>) {
        let mut x = x;
        let mut skips = Vec::with_capacity(self.resnets.len() + 1);
        for (i, resnet) in self.resnets.iter().enumerate() {
            x = resnet.forward(x, temb.clone());
            if let Some(attn) = self.attentions.get(i) {
                x = attn.forward(x);
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

/// The bottleneck: ResNet, self-attention, ResNet (diffusers `UNetMidBlock2D`). The VAE's mid
/// blocks are the same module without time embedding ([`UNetMidBlock2D::without_time_embedding`]).
#[derive(Module, Debug)]
pub struct UNetMidBlock2D<B: Backend> {
    /// Two ResNet blocks at constant width.
    pub resnets: Vec<ResnetBlock2D<B>>,
    /// One self-attention between them (none when disabled in the config).
    pub attentions: Vec<Attention<B>>,
}

impl<B: Backend> UNetMidBlock2D<B> {
    pub(crate) fn new(channels: usize, attention: bool, dims: BlockDims, device: &B::Device) -> Self {
        Self::build(channels, attention, Some(dims.temb_dim), dims, device)
    }

    fn build(
        channels: usize,
        attention: bool,
        temb_dim: Option<usize>,
        dims: BlockDims,
        device: &B::Device,
    ) -> Self {
        let res = || ResnetBlock2D::build(channels, channels, temb_dim, dims.groups, dims.eps, device);
        Self {
            resnets: vec![res(), res()],
            attentions: if attention {
                vec![Attention::new(channels, dims.head_dim, dims.groups, dims.eps, device)]
            } else {
                Vec::new()
            },
        }
    }

    /// A mid block of `channels` channels, with a `temb_dim` time embedding, `groups` norm groups
    /// (ε = `eps`) and attention heads of width `head_dim` when `attention`.
    pub fn with_dims(
        channels: usize,
        attention: bool,
        temb_dim: usize,
        groups: usize,
        eps: f64,
        head_dim: usize,
        device: &B::Device,
    ) -> Self {
        Self::new(channels, attention, BlockDims { temb_dim, groups, eps, head_dim }, device)
    }

    /// A mid block without time embedding (diffusers `temb_channels = None`, the VAE's): ResNets
    /// without `time_emb_proj`, `groups` norm groups (ε = `eps`) in the ResNets and the attention,
    /// attention heads of width `head_dim` when `attention`.
    pub fn without_time_embedding(
        channels: usize,
        attention: bool,
        groups: usize,
        eps: f64,
        head_dim: usize,
        device: &B::Device,
    ) -> Self {
        let dims = BlockDims { temb_dim: 0, groups, eps, head_dim };
        Self::build(channels, attention, None, dims, device)
    }

    /// `[batch, C, H, W] → [batch, C, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>, temb: Tensor<B, 2>) -> Tensor<B, 4> {
        self.forward_with(x, Some(temb))
    }

    /// As [`UNetMidBlock2D::forward`], with the time embedding optional (see
    /// [`ResnetBlock2D::forward_with`]).
    ///
    /// # Shapes
    /// - `x`: `[batch, C, H, W]`; `temb`: `[batch, temb_dim]`
    /// - output: `[batch, C, H, W]`
    pub fn forward_with(&self, x: Tensor<B, 4>, temb: Option<Tensor<B, 2>>) -> Tensor<B, 4> {
        let mut x = self.resnets[0].forward_with(x, temb.clone());
        for attn in &self.attentions {
            x = attn.forward(x);
        }
        self.resnets[1].forward_with(x, temb)
    }
}

/// One decoder level: `layers_per_block + 1` ResNet blocks, each fed the concatenation of the
/// running activation and one popped skip, optionally followed by self-attention, then (except on
/// the last level) a nearest ×2 upsampler.
#[derive(Module, Debug)]
pub struct UpBlock2D<B: Backend> {
    /// The ResNet blocks, `(prev + skip) → out` then `(out + skip) → out`.
    pub resnets: Vec<ResnetBlock2D<B>>,
    /// One attention per ResNet block (`AttnUpBlock2D`), or none (`UpBlock2D`).
    pub attentions: Vec<Attention<B>>,
    /// Zero or one upsampler.
    pub upsamplers: Vec<Upsample2D<B>>,
}

impl<B: Backend> UpBlock2D<B> {
    /// diffusers' channel arithmetic: resnet `j` takes `prev_out` (j = 0) or `out` plus the skip
    /// width, which is `cin` for the last resnet and `out` otherwise.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cin: usize,
        prev_out: usize,
        cout: usize,
        layers: usize,
        attention: bool,
        upsample: bool,
        dims: BlockDims,
        device: &B::Device,
    ) -> Self {
        let resnets = (0..layers)
            .map(|j| {
                let skip = if j == layers - 1 { cin } else { cout };
                let res_in = if j == 0 { prev_out } else { cout };
                ResnetBlock2D::new(res_in + skip, cout, dims.temb_dim, dims.groups, dims.eps, device)
            })
            .collect();
        let attentions = if attention {
            (0..layers)
                .map(|_| Attention::new(cout, dims.head_dim, dims.groups, dims.eps, device))
                .collect()
        } else {
            Vec::new()
        };
        let upsamplers = if upsample { vec![Upsample2D::new(cout, device)] } else { Vec::new() };
        Self { resnets, attentions, upsamplers }
    }

    /// `x: [batch, prev, H, W]`; pops one skip per ResNet block from the end of `skips`.
    /// Returns `[batch, out, 2H, 2W]` (or `[batch, out, H, W]` without upsampler).
    pub fn forward(
        &self,
        x: Tensor<B, 4>,
        skips: &mut Vec<Tensor<B, 4>>,
        temb: Tensor<B, 2>,
    ) -> Tensor<B, 4> {
        let mut x = x;
        for (i, resnet) in self.resnets.iter().enumerate() {
            let skip = skips.pop().expect("the U-Net pushes one skip per up-block ResNet");
            x = resnet.forward(Tensor::cat(vec![x, skip], 1), temb.clone());
            if let Some(attn) = self.attentions.get(i) {
                x = attn.forward(x);
            }
        }
        for up in &self.upsamplers {
            x = up.forward(x);
        }
        x
    }
}
