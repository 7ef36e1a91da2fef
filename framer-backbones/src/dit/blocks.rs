//! MMDiT building blocks with the DiT4SR control stream (diffusers `normalization.py`,
//! `attention.py`'s `JointTransformerBlock`/`FeedForward`, and DiT4SR's `AttentionZero` /
//! `FeedForwardControl`).
//!
//! Hidden states are `[batch, 2N, dim]`: the first `N` tokens are the image (noisy input) stream,
//! the last `N` the LR control stream, both on the same `h × w` token grid (`N = h·w`).

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d, RmsNorm, RmsNormConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::{gelu_approximate, silu};
use burn::tensor::backend::Backend;

use crate::unet::scaled_dot_product_attention;

/// Layer norm over the last dimension without affine parameters
/// (`nn.LayerNorm(dim, elementwise_affine=False, eps)`).
pub fn layer_norm_no_affine<B: Backend>(x: Tensor<B, 3>, eps: f64) -> Tensor<B, 3> {
    let (var, mean) = x.clone().var_mean_bias(2);
    (x - mean).div(var.add_scalar(eps).sqrt())
}

/// `x · (1 + scale) + shift` with per-sample `scale, shift: [batch, dim]` broadcast over tokens.
fn modulate<B: Backend>(x: Tensor<B, 3>, shift: Tensor<B, 2>, scale: Tensor<B, 2>) -> Tensor<B, 3> {
    x * (scale.unsqueeze_dim::<3>(1).add_scalar(1.0)) + shift.unsqueeze_dim::<3>(1)
}

/// Adaptive layer norm with six modulation vectors, diffusers `AdaLayerNormZero`:
/// `linear(silu(temb))` is split into `shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp,
/// gate_mlp`.
#[derive(Module, Debug)]
pub struct AdaLayerNormZero<B: Backend> {
    /// `dim → 6·dim`.
    pub linear: Linear<B>,
}

/// The six modulation vectors of one block, each `[batch, dim]`.
pub struct Modulation<B: Backend> {
    shift_msa: Tensor<B, 2>,
    scale_msa: Tensor<B, 2>,
    gate_msa: Tensor<B, 2>,
    shift_mlp: Tensor<B, 2>,
    scale_mlp: Tensor<B, 2>,
    gate_mlp: Tensor<B, 2>,
}

impl<B: Backend> AdaLayerNormZero<B> {
    fn new(dim: usize, device: &B::Device) -> Self {
        Self { linear: LinearConfig::new(dim, 6 * dim).init(device) }
    }

    /// `temb: [batch, dim]` → the six modulation vectors.
    pub fn modulation(&self, temb: Tensor<B, 2>) -> Modulation<B> {
        let mut c = self.linear.forward(silu(temb)).chunk(6, 1).into_iter();
        let mut next = || c.next().expect("six chunks");
        Modulation {
            shift_msa: next(),
            scale_msa: next(),
            gate_msa: next(),
            shift_mlp: next(),
            scale_mlp: next(),
            gate_mlp: next(),
        }
    }
}

/// Adaptive layer norm with scale and shift, diffusers `AdaLayerNormContinuous`
/// (`elementwise_affine = False`, ε = 1e-6): `LN(x)·(1 + scale) + shift` with
/// `[scale, shift] = linear(silu(temb))` (scale first).
#[derive(Module, Debug)]
pub struct AdaLayerNormContinuous<B: Backend> {
    /// `dim → 2·dim`.
    pub linear: Linear<B>,
}

impl<B: Backend> AdaLayerNormContinuous<B> {
    pub(crate) fn new(dim: usize, device: &B::Device) -> Self {
        Self { linear: LinearConfig::new(dim, 2 * dim).init(device) }
    }

    /// `x: [batch, tokens, dim]`, `temb: [batch, dim]` → `[batch, tokens, dim]`.
    pub fn forward(&self, x: Tensor<B, 3>, temb: Tensor<B, 2>) -> Tensor<B, 3> {
        let mut c = self.linear.forward(silu(temb)).chunk(2, 1).into_iter();
        let scale = c.next().expect("two chunks");
        let shift = c.next().expect("two chunks");
        modulate(layer_norm_no_affine(x, 1e-6), shift, scale)
    }
}

/// Joint attention over the image and control streams, DiT4SR's `AttentionZero` with the
/// `JointAttnProcessor2_0` path without text tokens.
///
/// Image stream: `q, k, v = to_q(x), to_k(x), to_v(x)`. Control stream:
/// `q_c = to_q_control(to_q(c))` (likewise `k_c`, `v_c`). Optional RMS norms on queries and keys.
/// One softmax attention over all `2N` tokens, then `to_out` on the image half and
/// `to_out_control(attn_c + c)` on the control half.
///
/// With RMS key norms, the reference computes `key = norm_k(key)` and then
/// `key_control = norm_k(key)`: the control tokens' keys are the *image* keys normalised twice,
/// and `to_k_control` has no effect (an apparent slip). That is the default here
/// ([`Self::control_keys_from_image`] = `true`), so that weights trained with the reference compute
/// the same thing; `false` (the DiT's `fixed_control_norm_k`) normalises each stream's own keys, a
/// documented departure.
#[derive(Module, Debug)]
pub struct JointAttention<B: Backend> {
    /// Image query projection.
    pub to_q: Linear<B>,
    /// Image key projection.
    pub to_k: Linear<B>,
    /// Image value projection.
    pub to_v: Linear<B>,
    /// Image output projection (diffusers `to_out.0`).
    pub to_out: Linear<B>,
    /// Control query projection, applied after `to_q`.
    pub to_q_control: Linear<B>,
    /// Control key projection, applied after `to_k`.
    pub to_k_control: Linear<B>,
    /// Control value projection, applied after `to_v`.
    pub to_v_control: Linear<B>,
    /// Control output projection.
    pub to_out_control: Linear<B>,
    /// RMS norm of each query head (`qk_norm = "rms_norm"`).
    pub norm_q: Option<RmsNorm<B>>,
    /// RMS norm of each key head.
    pub norm_k: Option<RmsNorm<B>>,
    /// Number of heads.
    pub heads: usize,
    /// The reference's control keys: `norm_k(norm_k(image keys))` (default `true`; only with
    /// `norm_k`).
    pub control_keys_from_image: bool,
}

/// A copy of `l` with fresh parameter ids (so an optimizer treats it as a separate parameter).
fn copy_linear<B: Backend>(l: &Linear<B>) -> Linear<B> {
    Linear {
        weight: Param::from_tensor(l.weight.val()),
        bias: l.bias.as_ref().map(|b| Param::from_tensor(b.val())),
    }
}

impl<B: Backend> JointAttention<B> {
    pub(crate) fn new(dim: usize, heads: usize, qk_norm: bool, zero_control: bool, device: &B::Device) -> Self {
        let lin = || LinearConfig::new(dim, dim).init(device);
        let control = || {
            let config = LinearConfig::new(dim, dim);
            if zero_control { config.with_initializer(Initializer::Zeros) } else { config }.init(device)
        };
        let norm = || qk_norm.then(|| RmsNormConfig::new(dim / heads).with_epsilon(1e-6).init(device));
        Self {
            to_q: lin(),
            to_k: lin(),
            to_v: lin(),
            to_out: lin(),
            to_out_control: lin(),
            to_q_control: control(),
            to_k_control: control(),
            to_v_control: control(),
            norm_q: norm(),
            norm_k: norm(),
            heads,
            control_keys_from_image: true,
        }
    }

    /// Sets `to_out_control` to a copy of `to_out` (DiT4SR's initialisation of the control output;
    /// call it after loading a checkpoint without control weights).
    pub fn copy_out_to_control(mut self) -> Self {
        self.to_out_control = copy_linear(&self.to_out);
        self
    }

    fn norm(norm: &Option<RmsNorm<B>>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match norm {
            Some(n) => n.forward(x),
            None => x,
        }
    }

    /// `x: [batch, 2N, dim]` (image then control tokens) → `[batch, 2N, dim]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        use crate::unet::attention::{merge_heads, split_heads};
        let [b, n2, dim] = x.dims();
        let n = n2 / 2;
        let xs = x.clone().slice([0..b, 0..n, 0..dim]);
        let cs = x.slice([0..b, n..n2, 0..dim]);
        let h = self.heads;
        let q = split_heads(self.to_q.forward(xs.clone()), h);
        let k = split_heads(self.to_k.forward(xs.clone()), h);
        let v = split_heads(self.to_v.forward(xs), h);
        let qc = split_heads(self.to_q_control.forward(self.to_q.forward(cs.clone())), h);
        let kc = split_heads(self.to_k_control.forward(self.to_k.forward(cs.clone())), h);
        let vc = split_heads(self.to_v_control.forward(self.to_v.forward(cs.clone())), h);
        let q = Self::norm(&self.norm_q, Tensor::cat(vec![q, qc], 2));
        let k = match &self.norm_k {
            Some(norm) if self.control_keys_from_image => {
                let k = norm.forward(k);
                let kc = norm.forward(k.clone());
                Tensor::cat(vec![k, kc], 2)
            }
            _ => Self::norm(&self.norm_k, Tensor::cat(vec![k, kc], 2)),
        };
        let v = Tensor::cat(vec![v, vc], 2);
        let o = merge_heads(scaled_dot_product_attention(q, k, v));
        let ox = o.clone().slice([0..b, 0..n, 0..dim]);
        let oc = o.slice([0..b, n..n2, 0..dim]);
        Tensor::cat(vec![self.to_out.forward(ox), self.to_out_control.forward(oc + cs)], 1)
    }
}

/// Feed-forward with the DiT4SR control convolution, `FeedForwardControl`:
/// `u = gelu_tanh(net_0(x))`; the control half of `u`, laid out on the `h × w` grid, goes through
/// the depthwise 3×3 `control_conv` and is added to the image half scaled by
/// [`Self::control_scale`] (the reference's `1.2 ·`); `net_2` then maps both halves (the control
/// half unchanged) back to `dim`.
#[derive(Module, Debug)]
pub struct FeedForward<B: Backend> {
    /// `dim → 4·dim`, GELU (tanh) after it (diffusers `net.0.proj`).
    pub net_0: Linear<B>,
    /// `4·dim → dim` (diffusers `net.2`).
    pub net_2: Linear<B>,
    /// Depthwise 3×3 convolution on the control half (`groups = 4·dim`).
    pub control_conv: Conv2d<B>,
    /// Factor of the control signal added to the image half (the reference: 1.2).
    pub control_scale: f64,
}

/// The reference's factor of the control signal in `FeedForwardControl`.
pub const REFERENCE_CONTROL_SCALE: f64 = 1.2;

impl<B: Backend> FeedForward<B> {
    pub(crate) fn new(dim: usize, zero_control: bool, device: &B::Device) -> Self {
        let inner = 4 * dim;
        let conv = Conv2dConfig::new([inner, inner], [3, 3])
            .with_groups(inner)
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
        let conv = if zero_control { conv.with_initializer(Initializer::Zeros) } else { conv };
        Self {
            net_0: LinearConfig::new(dim, inner).init(device),
            net_2: LinearConfig::new(inner, dim).init(device),
            control_conv: conv.init(device),
            control_scale: REFERENCE_CONTROL_SCALE,
        }
    }

    /// `x: [batch, 2N, dim]` with `N = grid[0]·grid[1]` → `[batch, 2N, dim]`.
    pub fn forward(&self, x: Tensor<B, 3>, grid: [usize; 2]) -> Tensor<B, 3> {
        let u = gelu_approximate(self.net_0.forward(x));
        let [b, n2, inner] = u.dims();
        let n = n2 / 2;
        let ux = u.clone().slice([0..b, 0..n, 0..inner]);
        let uc = u.slice([0..b, n..n2, 0..inner]);
        let conv_in = uc.clone().swap_dims(1, 2).reshape([b, inner, grid[0], grid[1]]);
        let conv_out = self.control_conv.forward(conv_in).reshape([b, inner, n]).swap_dims(1, 2);
        self.net_2.forward(Tensor::cat(vec![ux + conv_out.mul_scalar(self.control_scale), uc], 1))
    }
}

/// One MMDiT block with the control stream, DiT4SR's `JointTransformerBlock` without the text
/// stream: adaLN-Zero modulated joint attention and feed-forward, both gated residuals.
#[derive(Module, Debug)]
pub struct JointTransformerBlock<B: Backend> {
    /// Modulation of both sub-layers.
    pub norm1: AdaLayerNormZero<B>,
    /// Joint attention.
    pub attn: JointAttention<B>,
    /// Feed-forward with the control convolution.
    pub ff: FeedForward<B>,
}

impl<B: Backend> JointTransformerBlock<B> {
    /// A block of width `dim` with `heads` heads, optional RMS q/k norms, and (optionally)
    /// zero-initialised control projections and convolution.
    pub fn new(dim: usize, heads: usize, qk_norm: bool, zero_control: bool, device: &B::Device) -> Self {
        Self {
            norm1: AdaLayerNormZero::new(dim, device),
            attn: JointAttention::new(dim, heads, qk_norm, zero_control, device),
            ff: FeedForward::new(dim, zero_control, device),
        }
    }

    /// `x: [batch, 2N, dim]`, `temb: [batch, dim]` → `[batch, 2N, dim]`.
    pub fn forward(&self, x: Tensor<B, 3>, temb: Tensor<B, 2>, grid: [usize; 2]) -> Tensor<B, 3> {
        let m = self.norm1.modulation(temb);
        let h = modulate(layer_norm_no_affine(x.clone(), 1e-6), m.shift_msa, m.scale_msa);
        let x = x + self.attn.forward(h) * m.gate_msa.unsqueeze_dim::<3>(1);
        let h = modulate(layer_norm_no_affine(x.clone(), 1e-6), m.shift_mlp, m.scale_mlp);
        x + self.ff.forward(h, grid) * m.gate_mlp.unsqueeze_dim::<3>(1)
    }
}
