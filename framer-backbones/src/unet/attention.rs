//! Spatial self-attention of the U-Net (diffusers `Attention` built by `AttnDownBlock2D`,
//! `UNetMidBlock2D` and `AttnUpBlock2D`, with `residual_connection = True`).

use burn::module::Module;
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;

/// Multi-head scaled dot-product attention on `[batch, heads, tokens, head_dim]` tensors:
/// `softmax(q·kᵀ / √head_dim)·v`.
pub fn scaled_dot_product_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let head_dim = q.dims()[3];
    let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (head_dim as f64).sqrt());
    softmax(scores, 3).matmul(v)
}

/// `[batch, tokens, heads·head_dim] → [batch, heads, tokens, head_dim]`.
pub fn split_heads<B: Backend>(x: Tensor<B, 3>, heads: usize) -> Tensor<B, 4> {
    let [b, n, c] = x.dims();
    x.reshape([b, n, heads, c / heads]).swap_dims(1, 2)
}

/// `[batch, heads, tokens, head_dim] → [batch, tokens, heads·head_dim]`.
pub fn merge_heads<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [b, h, n, d] = x.dims();
    x.swap_dims(1, 2).reshape([b, n, h * d])
}

/// Group-normed spatial self-attention with a residual connection:
/// `x + to_out(attention(to_q(n), to_k(n), to_v(n)))`, `n = group_norm(x)` flattened to tokens.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// Group norm over the channels.
    pub group_norm: GroupNorm<B>,
    /// Query projection `C → C`.
    pub to_q: Linear<B>,
    /// Key projection `C → C`.
    pub to_k: Linear<B>,
    /// Value projection `C → C`.
    pub to_v: Linear<B>,
    /// Output projection `C → C` (diffusers `to_out.0`).
    pub to_out: Linear<B>,
    /// Number of heads, `C / attention_head_dim`.
    pub heads: usize,
}

impl<B: Backend> Attention<B> {
    /// Builds the attention over `channels` with heads of width `head_dim`.
    pub fn new(channels: usize, head_dim: usize, groups: usize, eps: f64, device: &B::Device) -> Self {
        let lin = || LinearConfig::new(channels, channels).init(device);
        Self {
            group_norm: GroupNormConfig::new(groups, channels).with_epsilon(eps).init(device),
            to_q: lin(),
            to_k: lin(),
            to_v: lin(),
            to_out: lin(),
            heads: channels / head_dim,
        }
    }

    /// `[batch, C, H, W] → [batch, C, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, c, h, w] = x.dims();
        let n = self.group_norm.forward(x.clone()).reshape([b, c, h * w]).swap_dims(1, 2);
        let q = split_heads(self.to_q.forward(n.clone()), self.heads);
        let k = split_heads(self.to_k.forward(n.clone()), self.heads);
        let v = split_heads(self.to_v.forward(n), self.heads);
        let o = self.to_out.forward(merge_heads(scaled_dot_product_attention(q, k, v)));
        x + o.swap_dims(1, 2).reshape([b, c, h, w])
    }
}
