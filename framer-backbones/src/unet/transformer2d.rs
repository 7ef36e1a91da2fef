//! The text cross-attention transformer of [`super::UNet2DConditionModel`]'s attention levels:
//! diffusers' `Transformer2DModel` with linear projections, its `BasicTransformerBlock`
//! (self-attention, cross-attention to the text tokens, GEGLU feed-forward) and `Attention`.

use burn::module::Module;
use burn::nn::{GroupNorm, GroupNormConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::gelu;
use burn::tensor::backend::Backend;

use super::attention::{merge_heads, scaled_dot_product_attention, split_heads};

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

/// The sizes of one [`Transformer2DModel`].
#[derive(Clone, Copy)]
pub(super) struct SpatialTransformerDims {
    pub channels: usize,
    pub heads: usize,
    pub groups: usize,
    pub context: usize,
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
    pub(super) fn new(dims: SpatialTransformerDims, device: &B::Device) -> Self {
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
