//! MMDiT building blocks with the DiT4SR control stream (diffusers `normalization.py`,
//! `attention.py`'s `JointTransformerBlock`/`FeedForward`, and DiT4SR's `AttentionZero` /
//! `FeedForwardControl`).
//!
//! Hidden states are `[batch, 2N, dim]`: the first `N` tokens are the image (noisy input) stream,
//! the last `N` the LR control stream, both on the same `h × w` token grid (`N = h·w`); without
//! the control stream (plain SD3), `[batch, N, dim]`. The text tokens of SD3's text stream travel
//! beside them as `[batch, M, dim]`.

use framer::conv::conv2d;
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

/// Adaptive layer norm of the image stream, diffusers `AdaLayerNormZero` (six modulation vectors)
/// or, in SD3.5's dual-attention blocks, `SD35AdaLayerNormZeroX` (nine):
/// `linear(silu(temb))` is split into `shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp,
/// gate_mlp` and, with nine, `shift_msa2, scale_msa2, gate_msa2` for the second attention. The
/// number of vectors is the width of `linear` over its input width.
///
/// The text stream's `norm1_context` is this module too (six vectors), except in the last block
/// (`context_pre_only`), where it is an `AdaLayerNormContinuous` (see
/// [`JointTransformerBlock`]).
#[derive(Module, Debug)]
pub struct AdaLayerNormZero<B: Backend> {
    /// `dim → 6·dim` (or `9·dim`).
    pub linear: Linear<B>,
}

/// The modulation vectors of one block, each `[batch, dim]`.
pub struct Modulation<B: Backend> {
    shift_msa: Tensor<B, 2>,
    scale_msa: Tensor<B, 2>,
    gate_msa: Tensor<B, 2>,
    shift_mlp: Tensor<B, 2>,
    scale_mlp: Tensor<B, 2>,
    gate_mlp: Tensor<B, 2>,
    /// `shift_msa2, scale_msa2, gate_msa2` (nine-vector modulation only).
    msa2: Option<[Tensor<B, 2>; 3]>,
}

impl<B: Backend> AdaLayerNormZero<B> {
    fn new(dim: usize, vectors: usize, device: &B::Device) -> Self {
        Self { linear: LinearConfig::new(dim, vectors * dim).init(device) }
    }

    /// `temb: [batch, dim]` → the six (or nine) modulation vectors.
    pub fn modulation(&self, temb: Tensor<B, 2>) -> Modulation<B> {
        let [dim, width] = self.linear.weight.dims();
        let mut c = self.linear.forward(silu(temb)).chunk(width / dim, 1).into_iter();
        let mut next = || c.next().expect("six or nine chunks");
        let [shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp] = std::array::from_fn(|_| next());
        let msa2 = (width == 9 * dim).then(|| std::array::from_fn(|_| next()));
        Modulation { shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp, msa2 }
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
        continuous_norm(&self.linear, x, temb)
    }
}

/// `AdaLayerNormContinuous` with the projection `linear` (`dim → 2·dim`): `LN(x)·(1 + scale) +
/// shift`, `[scale, shift] = linear(silu(temb))`. Also the last block's `norm1_context`.
fn continuous_norm<B: Backend>(linear: &Linear<B>, x: Tensor<B, 3>, temb: Tensor<B, 2>) -> Tensor<B, 3> {
    let mut c = linear.forward(silu(temb)).chunk(2, 1).into_iter();
    let scale = c.next().expect("two chunks");
    let shift = c.next().expect("two chunks");
    modulate(layer_norm_no_affine(x, 1e-6), shift, scale)
}

/// Joint attention over the image, control and text streams, DiT4SR's `AttentionZero` with its
/// `JointAttnProcessor2_0`; without the control stream it is SD3's `Attention` with
/// `JointAttnProcessor2_0`, and without the text stream as well, SD3.5's plain self-attention
/// (`attn2`).
///
/// Image stream: `q, k, v = to_q(x), to_k(x), to_v(x)`. Control stream:
/// `q_c = to_q_control(to_q(c))` (likewise `k_c`, `v_c`). Text stream:
/// `add_{q,k,v}_proj(e)`. Optional RMS norms on each head's queries and keys (`norm_q`, `norm_k`;
/// `norm_added_q`, `norm_added_k` for the text). One softmax attention over all tokens, in the
/// order image, control, text; then `to_out` on the image part, `to_out_control(attn_c + c)` on
/// the control part, and `to_add_out` on the text part (absent in the last block, whose text
/// output is unused).
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
    /// Text query projection (SD3's `add_q_proj`; only with a text stream).
    pub add_q_proj: Option<Linear<B>>,
    /// Text key projection.
    pub add_k_proj: Option<Linear<B>>,
    /// Text value projection.
    pub add_v_proj: Option<Linear<B>>,
    /// Text output projection (absent in the last block: `context_pre_only`).
    pub to_add_out: Option<Linear<B>>,
    /// RMS norm of each text query head.
    pub norm_added_q: Option<RmsNorm<B>>,
    /// RMS norm of each text key head.
    pub norm_added_k: Option<RmsNorm<B>>,
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

/// Which part of SD3's text stream a block carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextStream {
    /// No text stream (the DiT without `joint_attention_dim`, and SD3.5's `attn2`).
    None,
    /// The text tokens are attended to and updated (every block but the last).
    Full,
    /// The text tokens are attended to but not updated (the last block: `context_pre_only`).
    PreOnly,
}

fn apply_norm<B: Backend>(norm: &Option<RmsNorm<B>>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    match norm {
        Some(n) => n.forward(x),
        None => x,
    }
}

impl<B: Backend> JointAttention<B> {
    pub(crate) fn new(dim: usize, heads: usize, qk_norm: bool, zero_control: bool, device: &B::Device) -> Self {
        Self::with_text(dim, heads, qk_norm, zero_control, TextStream::None, device)
    }

    pub(crate) fn with_text(
        dim: usize,
        heads: usize,
        qk_norm: bool,
        zero_control: bool,
        text: TextStream,
        device: &B::Device,
    ) -> Self {
        let lin = || LinearConfig::new(dim, dim).init(device);
        let control = || {
            let config = LinearConfig::new(dim, dim);
            if zero_control { config.with_initializer(Initializer::Zeros) } else { config }.init(device)
        };
        let norm = || qk_norm.then(|| RmsNormConfig::new(dim / heads).with_epsilon(1e-6).init(device));
        let has_text = text != TextStream::None;
        let text_lin = || has_text.then(lin);
        let text_norm = || if has_text { norm() } else { None };
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
            add_q_proj: text_lin(),
            add_k_proj: text_lin(),
            add_v_proj: text_lin(),
            to_add_out: (text == TextStream::Full).then(lin),
            norm_added_q: text_norm(),
            norm_added_k: text_norm(),
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

    /// `x: [batch, N or 2N, dim]` (the `n_image = N` image tokens, then as many control tokens or
    /// none) and the text tokens `context: [batch, M, dim]` (with a text stream) →
    /// (`[batch, N or 2N, dim]`, the text output `[batch, M, dim]` when there is a text stream).
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        context: Option<Tensor<B, 3>>,
        n_image: usize,
    ) -> (Tensor<B, 3>, Option<Tensor<B, 3>>) {
        use crate::unet::attention::{merge_heads, split_heads};
        let [b, tokens, dim] = x.dims();
        let h = self.heads;
        let xs = x.clone().slice([0..b, 0..n_image, 0..dim]);
        let mut q = vec![apply_norm(&self.norm_q, split_heads(self.to_q.forward(xs.clone()), h))];
        let k_image = split_heads(self.to_k.forward(xs.clone()), h);
        let mut v = vec![split_heads(self.to_v.forward(xs), h)];
        let mut k = vec![apply_norm(&self.norm_k, k_image.clone())];
        let control = (tokens > n_image).then(|| x.slice([0..b, n_image..tokens, 0..dim]));
        if let Some(cs) = &control {
            let qc = split_heads(self.to_q_control.forward(self.to_q.forward(cs.clone())), h);
            q.push(apply_norm(&self.norm_q, qc));
            let kc = split_heads(self.to_k_control.forward(self.to_k.forward(cs.clone())), h);
            k.push(match &self.norm_k {
                Some(norm) if self.control_keys_from_image => norm.forward(k[0].clone()),
                _ => apply_norm(&self.norm_k, kc),
            });
            v.push(split_heads(self.to_v_control.forward(self.to_v.forward(cs.clone())), h));
        }
        let text = match (&context, &self.add_q_proj, &self.add_k_proj, &self.add_v_proj) {
            (Some(e), Some(aq), Some(ak), Some(av)) => {
                q.push(apply_norm(&self.norm_added_q, split_heads(aq.forward(e.clone()), h)));
                k.push(apply_norm(&self.norm_added_k, split_heads(ak.forward(e.clone()), h)));
                v.push(split_heads(av.forward(e.clone()), h));
                Some(e.dims()[1])
            }
            _ => None,
        };
        let o = merge_heads(scaled_dot_product_attention(Tensor::cat(q, 2), Tensor::cat(k, 2), Tensor::cat(v, 2)));
        let mut out = vec![self.to_out.forward(o.clone().slice([0..b, 0..n_image, 0..dim]))];
        if let Some(cs) = control {
            out.push(self.to_out_control.forward(o.clone().slice([0..b, n_image..tokens, 0..dim]) + cs));
        }
        let text_out = text.map(|m| {
            let e = o.slice([0..b, tokens..tokens + m, 0..dim]);
            match &self.to_add_out {
                Some(proj) => proj.forward(e),
                None => e,
            }
        });
        (Tensor::cat(out, 1), text_out)
    }
}

/// Feed-forward, diffusers `FeedForward` (`gelu-approximate`), with DiT4SR's control convolution
/// (`FeedForwardControl`) when `control_conv` is present and the input has control tokens:
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
    /// Depthwise 3×3 convolution on the control half (`groups = 4·dim`; absent in the text
    /// stream's `ff_context`).
    pub control_conv: Option<Conv2d<B>>,
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
        let plain = Self::plain(dim, device);
        Self { control_conv: Some(conv.init(device)), ..plain }
    }

    /// The feed-forward without a control convolution (the text stream's `ff_context`).
    pub(crate) fn plain(dim: usize, device: &B::Device) -> Self {
        let inner = 4 * dim;
        Self {
            net_0: LinearConfig::new(dim, inner).init(device),
            net_2: LinearConfig::new(inner, dim).init(device),
            control_conv: None,
            control_scale: REFERENCE_CONTROL_SCALE,
        }
    }

    /// `x: [batch, N or 2N, dim]` with `N = grid[0]·grid[1]` → the same shape. The second half is
    /// the control stream when there are `2N` tokens and a `control_conv`; otherwise every token is
    /// mapped alike (the text stream passes `grid = None`).
    pub fn forward(&self, x: Tensor<B, 3>, grid: Option<[usize; 2]>) -> Tensor<B, 3> {
        let u = gelu_approximate(self.net_0.forward(x));
        let [b, tokens, inner] = u.dims();
        let (conv, [gh, gw]) = match (&self.control_conv, grid) {
            (Some(conv), Some([gh, gw])) if tokens == 2 * gh * gw => (conv, [gh, gw]),
            _ => return self.net_2.forward(u),
        };
        let n = gh * gw;
        let ux = u.clone().slice([0..b, 0..n, 0..inner]);
        let uc = u.slice([0..b, n..tokens, 0..inner]);
        let conv_in = uc.clone().swap_dims(1, 2).reshape([b, inner, gh, gw]);
        let conv_out = conv2d(conv, conv_in).reshape([b, inner, n]).swap_dims(1, 2);
        self.net_2.forward(Tensor::cat(vec![ux + conv_out.mul_scalar(self.control_scale), uc], 1))
    }
}

/// One MMDiT block, diffusers' `JointTransformerBlock` with DiT4SR's control stream:
/// adaLN-Zero modulated joint attention and feed-forward, both gated residuals; with a text
/// stream, its tokens get their own modulation (`norm1_context`) and feed-forward (`ff_context`);
/// with dual attention (SD3.5), a second, image-only attention `attn2` adds its own gated
/// residual.
///
/// The last block of SD3 is `context_pre_only`: its `norm1_context` is an
/// `AdaLayerNormContinuous` (two vectors, `scale` then `shift`), it has no `ff_context`, and its
/// text output is dropped.
#[derive(Module, Debug)]
pub struct JointTransformerBlock<B: Backend> {
    /// Modulation of both sub-layers (nine vectors with `attn2`).
    pub norm1: AdaLayerNormZero<B>,
    /// Joint attention.
    pub attn: JointAttention<B>,
    /// SD3.5's second attention, on the image and control tokens only (DiT4SR gives it control
    /// projections too).
    pub attn2: Option<JointAttention<B>>,
    /// Feed-forward with the control convolution.
    pub ff: FeedForward<B>,
    /// The text tokens' modulation (six vectors; two in the last block).
    pub norm1_context: Option<AdaLayerNormZero<B>>,
    /// The text tokens' feed-forward (absent in the last block).
    pub ff_context: Option<FeedForward<B>>,
}

impl<B: Backend> JointTransformerBlock<B> {
    /// A block of width `dim` with `heads` heads, optional RMS q/k norms, and (optionally)
    /// zero-initialised control projections and convolution; no text stream, no `attn2`.
    pub fn new(dim: usize, heads: usize, qk_norm: bool, zero_control: bool, device: &B::Device) -> Self {
        Self::with_streams(dim, heads, qk_norm, zero_control, TextStream::None, false, device)
    }

    /// A block with the given text stream and, with `dual_attention`, SD3.5's `attn2`.
    pub fn with_streams(
        dim: usize,
        heads: usize,
        qk_norm: bool,
        zero_control: bool,
        text: TextStream,
        dual_attention: bool,
        device: &B::Device,
    ) -> Self {
        Self {
            norm1: AdaLayerNormZero::new(dim, if dual_attention { 9 } else { 6 }, device),
            attn: JointAttention::with_text(dim, heads, qk_norm, zero_control, text, device),
            attn2: dual_attention.then(|| JointAttention::new(dim, heads, qk_norm, zero_control, device)),
            ff: FeedForward::new(dim, zero_control, device),
            norm1_context: match text {
                TextStream::None => None,
                TextStream::Full => Some(AdaLayerNormZero::new(dim, 6, device)),
                TextStream::PreOnly => Some(AdaLayerNormZero::new(dim, 2, device)),
            },
            ff_context: (text == TextStream::Full).then(|| FeedForward::plain(dim, device)),
        }
    }

    /// `x: [batch, N or 2N, dim]` (image tokens, then control tokens if any, `N = grid[0]·grid[1]`),
    /// the text tokens `context: [batch, M, dim]` if the block has a text stream, and
    /// `temb: [batch, dim]` → (`x` updated, the updated text tokens: `None` without a text stream
    /// and in the last block).
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        context: Option<Tensor<B, 3>>,
        temb: Tensor<B, 2>,
        grid: [usize; 2],
    ) -> (Tensor<B, 3>, Option<Tensor<B, 3>>) {
        let n_image = grid[0] * grid[1];
        let m = self.norm1.modulation(temb.clone());
        let normed = layer_norm_no_affine(x.clone(), 1e-6);
        let h = modulate(normed.clone(), m.shift_msa, m.scale_msa);
        let context = context.filter(|_| self.norm1_context.is_some());
        let (context_in, context_mod) = match (&context, &self.norm1_context) {
            (Some(e), Some(norm)) => {
                let [dim, width] = norm.linear.weight.dims();
                if width == 2 * dim {
                    (Some(continuous_norm(&norm.linear, e.clone(), temb)), None)
                } else {
                    let cm = norm.modulation(temb);
                    let normed = layer_norm_no_affine(e.clone(), 1e-6);
                    (Some(modulate(normed, cm.shift_msa.clone(), cm.scale_msa.clone())), Some(cm))
                }
            }
            _ => (None, None),
        };
        let (attn_out, context_attn) = self.attn.forward(h, context_in, n_image);
        let mut x = x + attn_out * m.gate_msa.unsqueeze_dim::<3>(1);
        if let (Some(attn2), Some([shift, scale, gate])) = (&self.attn2, m.msa2) {
            let (out2, _) = attn2.forward(modulate(normed, shift, scale), None, n_image);
            x = x + out2 * gate.unsqueeze_dim::<3>(1);
        }
        let h = modulate(layer_norm_no_affine(x.clone(), 1e-6), m.shift_mlp, m.scale_mlp);
        let x = x + self.ff.forward(h, Some(grid)) * m.gate_mlp.unsqueeze_dim::<3>(1);
        let context = match (context, context_attn, context_mod, &self.ff_context) {
            (Some(e), Some(attn), Some(cm), Some(ff)) => {
                let e = e + attn * cm.gate_msa.unsqueeze_dim::<3>(1);
                let h = modulate(layer_norm_no_affine(e.clone(), 1e-6), cm.shift_mlp, cm.scale_mlp);
                Some(e + ff.forward(h, None) * cm.gate_mlp.unsqueeze_dim::<3>(1))
            }
            _ => None,
        };
        (x, context)
    }
}
