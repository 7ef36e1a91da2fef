//! The timm ViT inside MANIQA (`vit_base_patch8_224`: patch-embedding convolution, class
//! token, learned position embedding, pre-norm blocks with fused `qkv`, LayerNorm ε 1e-6,
//! exact-erf GELU), run up to block 9, whose outputs 6–9 MANIQA uses.

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use super::{FEATURE_BLOCKS, ManiqaConfig, PreNormBlock, Source};
use crate::error::Result;

/// timm's ViT LayerNorm ε.
const VIT_LN_EPS: f64 = 1e-6;

#[derive(Clone, Debug)]
struct Block<B: Backend> {
    weights: PreNormBlock<B>,
    heads: usize,
}

impl<B: Backend> Block<B> {
    fn load(src: &Source<'_>, p: &str, c: &ManiqaConfig, device: &B::Device) -> Result<Self> {
        let weights =
            PreNormBlock::load(src, p, c.embed_dim, c.vit_mlp_hidden, VIT_LN_EPS, device)?;
        Ok(Self {
            weights,
            heads: c.vit_heads,
        })
    }

    /// `[N, T, E]` → `[N, T, E]`.
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [n, t, e] = x.dims();
        let w = &self.weights;
        let d = e / self.heads;
        let [q, k, v] = w.split_qkv(w.norm1.forward(x.clone()), self.heads);
        let attn = softmax(
            q.matmul(k.swap_dims(2, 3))
                .mul_scalar((d as f64).powf(-0.5)),
            3,
        );
        let o = attn.matmul(v).swap_dims(1, 2).reshape([n, t, e]);
        w.mlp_residual(x.add(w.proj.forward(o)))
    }
}

/// The ViT blocks 0–9 with the embeddings.
#[derive(Clone, Debug)]
pub(super) struct Vit<B: Backend> {
    patch_weight: Tensor<B, 4>,
    patch_bias: Tensor<B, 1>,
    cls_token: Tensor<B, 3>,
    pos_embed: Tensor<B, 3>,
    blocks: Vec<Block<B>>,
    patch: usize,
}

impl<B: Backend> Vit<B> {
    pub(super) fn load(src: &Source<'_>, c: &ManiqaConfig, device: &B::Device) -> Result<Self> {
        let e = c.embed_dim;
        let g = c.grid();
        let blocks = (0..=FEATURE_BLOCKS[3])
            .map(|b| Block::load(src, &format!("vit.blocks.{b}"), c, device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cls_token: src.tensor("vit.cls_token", [1, 1, e], device)?,
            pos_embed: src.tensor("vit.pos_embed", [1, g * g + 1, e], device)?,
            patch_weight: src.tensor(
                "vit.patch_embed.proj.weight",
                [e, 3, c.patch_size, c.patch_size],
                device,
            )?,
            patch_bias: src.tensor("vit.patch_embed.proj.bias", [e], device)?,
            blocks,
            patch: c.patch_size,
        })
    }

    /// Crops `[N, 3, 224, 224]` → the outputs of blocks 6, 7, 8, 9 without the class token,
    /// concatenated on channels: `[N, L, 4E]`.
    pub(super) fn features(&self, x: Tensor<B, 4>) -> Tensor<B, 3> {
        let n = x.dims()[0];
        let p = self.patch;
        let y = conv2d(
            x,
            self.patch_weight.clone(),
            Some(self.patch_bias.clone()),
            ConvOptions::new([p, p], [0, 0], [1, 1], 1),
        );
        let [_, e, gh, gw] = y.dims();
        let tokens = y.reshape([n, e, gh * gw]).swap_dims(1, 2);
        let cls = self.cls_token.clone().expand([n, 1, e]);
        let mut x = Tensor::cat(vec![cls, tokens], 1).add(self.pos_embed.clone());
        let mut outs = Vec::with_capacity(FEATURE_BLOCKS.len());
        for (b, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if FEATURE_BLOCKS.contains(&b) {
                outs.push(x.clone().narrow(1, 1, gh * gw));
            }
        }
        Tensor::cat(outs, 2)
    }
}
