//! The layers MANIQA shares between its stages: linear layers, LayerNorm, the pre-norm
//! transformer block of the ViT and the Swin stages, the transposed (channel) attention of the
//! TABlocks, and the score and weight head.

use burn::tensor::Tensor;
use burn::tensor::activation::{gelu, relu, softmax};
use burn::tensor::backend::Backend;

use super::state_dict::Source;
use crate::error::Result;

/// A linear layer, `y = x·W + b` with `W` of shape `[in, out]`.
#[derive(Clone, Debug)]
pub(super) struct Linear<B: Backend> {
    pub(super) weight: Tensor<B, 2>,
    pub(super) bias: Tensor<B, 1>,
}

impl<B: Backend> Linear<B> {
    pub(super) fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        burn::tensor::module::linear(x, self.weight.clone(), Some(self.bias.clone()))
    }
}

/// The weights of a pre-norm transformer block as timm's ViT and the Swin blocks name them
/// (`norm1`, `attn.qkv`, `attn.proj`, `norm2`, `mlp.fc1`, `mlp.fc2`); the attention between the
/// two is each block's own.
#[derive(Clone, Debug)]
pub(super) struct PreNormBlock<B: Backend> {
    pub(super) norm1: LayerNorm<B>,
    pub(super) qkv: Linear<B>,
    pub(super) proj: Linear<B>,
    pub(super) norm2: LayerNorm<B>,
    pub(super) fc1: Linear<B>,
    pub(super) fc2: Linear<B>,
}

impl<B: Backend> PreNormBlock<B> {
    /// Channels `dim`, MLP width `hidden`, LayerNorm ε `eps`, names under `p`.
    pub(super) fn load(
        src: &Source<'_>,
        p: &str,
        dim: usize,
        hidden: usize,
        eps: f64,
        device: &B::Device,
    ) -> Result<Self> {
        Ok(Self {
            norm1: LayerNorm::load(src, &format!("{p}.norm1"), dim, eps, device)?,
            qkv: src.linear(&format!("{p}.attn.qkv"), dim, 3 * dim, device)?,
            proj: src.linear(&format!("{p}.attn.proj"), dim, dim, device)?,
            norm2: LayerNorm::load(src, &format!("{p}.norm2"), dim, eps, device)?,
            fc1: src.linear(&format!("{p}.mlp.fc1"), dim, hidden, device)?,
            fc2: src.linear(&format!("{p}.mlp.fc2"), hidden, dim, device)?,
        })
    }

    /// The fused projection of `y` (`[M, T, C]`, already normalised) split into queries, keys
    /// and values of `heads` heads, each `[M, heads, T, C / heads]`.
    pub(super) fn split_qkv(&self, y: Tensor<B, 3>, heads: usize) -> [Tensor<B, 4>; 3] {
        let [m, t, c] = y.dims();
        let d = c / heads;
        let qkv = self
            .qkv
            .forward(y)
            .reshape([m, t, 3, heads, d])
            .permute([2, 0, 3, 1, 4]);
        [0, 1, 2].map(|i| qkv.clone().narrow(0, i, 1).reshape([m, heads, t, d]))
    }

    /// `x + fc2(gelu(fc1(norm2(x))))`, `[N, T, C]` → `[N, T, C]`.
    pub(super) fn mlp_residual(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let m = self
            .fc2
            .forward(gelu(self.fc1.forward(self.norm2.forward(x.clone()))));
        x.add(m)
    }
}

/// A LayerNorm over the last axis.
#[derive(Clone, Debug)]
pub(super) struct LayerNorm<B: Backend> {
    pub(super) weight: Tensor<B, 1>,
    pub(super) bias: Tensor<B, 1>,
    pub(super) eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    pub(super) fn load(
        src: &Source<'_>,
        name: &str,
        dim: usize,
        eps: f64,
        device: &B::Device,
    ) -> Result<Self> {
        Ok(Self {
            weight: src.tensor(&format!("{name}.weight"), [dim], device)?,
            bias: src.tensor(&format!("{name}.bias"), [dim], device)?,
            eps,
        })
    }

    pub(super) fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let (var, mean) = x.clone().var_mean_bias(D - 1);
        let y = x.sub(mean).div(var.add_scalar(self.eps).sqrt());
        let mut shape = [1usize; D];
        shape[D - 1] = self.weight.dims()[0];
        y.mul(self.weight.clone().reshape(shape))
            .add(self.bias.clone().reshape(shape))
    }
}

/// MANIQA's transposed-attention block over `[N, C, L]` (linear layers act on the `L` tokens,
/// attention is between channels).
#[doc(alias = "TABlock")]
#[derive(Clone, Debug)]
pub(super) struct TokenAttention<B: Backend> {
    pub(super) q: Linear<B>,
    pub(super) k: Linear<B>,
    pub(super) v: Linear<B>,
}

impl<B: Backend> TokenAttention<B> {
    pub(super) fn load(
        src: &Source<'_>,
        name: &str,
        tokens: usize,
        device: &B::Device,
    ) -> Result<Self> {
        Ok(Self {
            q: src.linear(&format!("{name}.c_q"), tokens, tokens, device)?,
            k: src.linear(&format!("{name}.c_k"), tokens, tokens, device)?,
            v: src.linear(&format!("{name}.c_v"), tokens, tokens, device)?,
        })
    }

    /// `x`: `[N, C, L]` → `[N, C, L]`.
    pub(super) fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [n, c, l] = x.dims();
        let q = self.q.forward(x.clone());
        let k = self.k.forward(x.clone());
        let v = self.v.forward(x.clone());
        let attn = softmax(
            q.matmul(k.swap_dims(1, 2))
                .mul_scalar((l as f64).powf(-0.5)),
            2,
        );
        // pyiqa: `(attn @ v).transpose(1, 2).reshape(B, C, N)`: the [N, L, C] values read
        // back in row-major order as [N, C, L] (a reinterpretation, not a transpose back).
        let y = attn.matmul(v).swap_dims(1, 2).reshape([n, c, l]);
        y.add(x)
    }
}

/// A head: `Linear → ReLU → Linear` then ReLU (score) or sigmoid (weight).
#[derive(Clone, Debug)]
pub(super) struct Head<B: Backend> {
    pub(super) fc0: Linear<B>,
    pub(super) fc3: Linear<B>,
}

impl<B: Backend> Head<B> {
    pub(super) fn load(
        src: &Source<'_>,
        name: &str,
        dim: usize,
        device: &B::Device,
    ) -> Result<Self> {
        Ok(Self {
            fc0: src.linear(&format!("{name}.0"), dim, dim, device)?,
            fc3: src.linear(&format!("{name}.3"), dim, 1, device)?,
        })
    }

    /// `[N, L, dim]` → `[N, L, 1]` before the final activation.
    pub(super) fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.fc3.forward(relu(self.fc0.forward(x)))
    }
}
