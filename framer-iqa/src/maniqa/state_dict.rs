//! MANIQA's state dict: every entry of pyiqa's `MANIQA().state_dict()` with its shape, and the
//! lookup of the tensors a network needs, with errors that name the file and the tensor.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::layers::Linear;
use super::{FEATURE_BLOCKS, ManiqaConfig, swin};
use crate::error::Result;
use crate::weight_file::{HostTensor, StateDict};

/// One entry of `MANIQA(...).state_dict()`.
pub(super) struct Entry {
    pub(super) name: String,
    pub(super) shape: Vec<usize>,
    /// Whether the port reads it (not the unused ViT blocks, norm and head, the unused Swin
    /// `downsample` convolution or the buffers).
    pub(super) used: bool,
}

/// The state-dict listing under construction.
#[derive(Default)]
pub(super) struct Entries(Vec<Entry>);

impl Entries {
    pub(super) fn add(&mut self, name: String, shape: Vec<usize>, used: bool) {
        self.0.push(Entry { name, shape, used });
    }

    /// `tablock{stage}.*`: `num_tab` TABlocks of three `[L, L]` linear layers.
    pub(super) fn tablocks(&mut self, c: &ManiqaConfig, stage: usize) {
        let tokens = c.grid() * c.grid();
        for i in 0..c.num_tab {
            for l in ["c_q", "c_k", "c_v"] {
                let p = format!("tablock{stage}.{i}.{l}");
                self.add(format!("{p}.weight"), vec![tokens, tokens], true);
                self.add(format!("{p}.bias"), vec![tokens], true);
            }
        }
    }

    /// `swintransformer{stage}.*` of width `dim`.
    pub(super) fn swin(&mut self, c: &ManiqaConfig, stage: usize, dim: usize) {
        let p = format!("swintransformer{stage}");
        self.add(
            format!("{p}.downsample.weight"),
            vec![dim, dim, 3, 3],
            false,
        );
        self.add(format!("{p}.downsample.bias"), vec![dim], false);
        for (l, (&depth, &heads)) in c.depths.iter().zip(&c.num_heads).enumerate() {
            self.add(
                format!("{p}.layers.{l}.conv.weight"),
                vec![dim, dim, 3, 3],
                true,
            );
            self.add(format!("{p}.layers.{l}.conv.bias"), vec![dim], true);
            for b in 0..depth {
                let w = swin::Window::new(c.grid(), c.window_size, b);
                let q = format!("{p}.layers.{l}.blocks.{b}");
                let n = w.size * w.size;
                let table = (2 * w.size - 1) * (2 * w.size - 1);
                if w.shift > 0 {
                    self.add(format!("{q}.attn_mask"), vec![w.count(), n, n], false);
                }
                for (name, shape, used) in [
                    ("norm1.weight", vec![dim], true),
                    ("norm1.bias", vec![dim], true),
                    (
                        "attn.relative_position_bias_table",
                        vec![table, heads],
                        true,
                    ),
                    ("attn.relative_position_index", vec![n, n], false),
                    ("attn.qkv.weight", vec![3 * dim, dim], true),
                    ("attn.qkv.bias", vec![3 * dim], true),
                    ("attn.proj.weight", vec![dim, dim], true),
                    ("attn.proj.bias", vec![dim], true),
                    ("norm2.weight", vec![dim], true),
                    ("norm2.bias", vec![dim], true),
                    ("mlp.fc1.weight", vec![c.dim_mlp, dim], true),
                    ("mlp.fc1.bias", vec![c.dim_mlp], true),
                    ("mlp.fc2.weight", vec![dim, c.dim_mlp], true),
                    ("mlp.fc2.bias", vec![dim], true),
                ] {
                    self.add(format!("{q}.{name}"), shape, used);
                }
            }
        }
    }
}

pub(super) fn state_dict_entries(c: &ManiqaConfig) -> Vec<Entry> {
    let mut out = Entries::default();
    let e = c.embed_dim;
    let tokens = c.grid() * c.grid();
    out.add("vit.cls_token".into(), vec![1, 1, e], true);
    out.add("vit.pos_embed".into(), vec![1, tokens + 1, e], true);
    let patch = vec![e, 3, c.patch_size, c.patch_size];
    out.add("vit.patch_embed.proj.weight".into(), patch, true);
    out.add("vit.patch_embed.proj.bias".into(), vec![e], true);
    for b in 0..c.vit_depth {
        let used = b <= FEATURE_BLOCKS[3];
        for (n, s) in [
            ("norm1.weight", vec![e]),
            ("norm1.bias", vec![e]),
            ("attn.qkv.weight", vec![3 * e, e]),
            ("attn.qkv.bias", vec![3 * e]),
            ("attn.proj.weight", vec![e, e]),
            ("attn.proj.bias", vec![e]),
            ("norm2.weight", vec![e]),
            ("norm2.bias", vec![e]),
            ("mlp.fc1.weight", vec![c.vit_mlp_hidden, e]),
            ("mlp.fc1.bias", vec![c.vit_mlp_hidden]),
            ("mlp.fc2.weight", vec![e, c.vit_mlp_hidden]),
            ("mlp.fc2.bias", vec![e]),
        ] {
            out.add(format!("vit.blocks.{b}.{n}"), s, used);
        }
    }
    out.add("vit.norm.weight".into(), vec![e], false);
    out.add("vit.norm.bias".into(), vec![e], false);
    if c.vit_classes > 0 {
        out.add("vit.head.weight".into(), vec![c.vit_classes, e], false);
        out.add("vit.head.bias".into(), vec![c.vit_classes], false);
    }
    out.tablocks(c, 1);
    out.add("conv1.weight".into(), vec![e, 4 * e, 1, 1], true);
    out.add("conv1.bias".into(), vec![e], true);
    out.swin(c, 1, e);
    out.tablocks(c, 2);
    out.add("conv2.weight".into(), vec![e / 2, e, 1, 1], true);
    out.add("conv2.bias".into(), vec![e / 2], true);
    out.swin(c, 2, e / 2);
    for head in ["fc_score", "fc_weight"] {
        out.add(format!("{head}.0.weight"), vec![e / 2, e / 2], true);
        out.add(format!("{head}.0.bias"), vec![e / 2], true);
        out.add(format!("{head}.3.weight"), vec![1, e / 2], true);
        out.add(format!("{head}.3.bias"), vec![1], true);
    }
    out.0
}

/// The names and shapes of `MANIQA(...).state_dict()` for `config`, in state-dict order: the
/// keys of pyiqa's checkpoints (for the default configuration, the 316 entries of
/// `ckpt_koniq10k.pt`), buffers included (`relative_position_index` is an integer tensor).
pub fn expected_tensors(config: &ManiqaConfig) -> Vec<(String, Vec<usize>)> {
    state_dict_entries(config)
        .into_iter()
        .map(|e| (e.name, e.shape))
        .collect()
}

/// The subset of [`expected_tensors`] that the port reads (every float parameter except the
/// ViT's blocks past 9, its `norm` and `head`, and the Swin stages' `downsample`).
pub fn required_tensors(config: &ManiqaConfig) -> Vec<(String, Vec<usize>)> {
    state_dict_entries(config)
        .into_iter()
        .filter(|e| e.used)
        .map(|e| (e.name, e.shape))
        .collect()
}

/// Named tensors with the file they came from, for error messages.
pub(super) struct Source<'a>(pub(super) StateDict<'a>);

impl<'a> Source<'a> {
    pub(super) fn new(
        path: &'a Path,
        tensors: &'a BTreeMap<String, HostTensor>,
        names: &'a [String],
    ) -> Self {
        Self(StateDict {
            path,
            tensors,
            names,
            network: "MANIQA",
        })
    }

    /// `name` under any of the state-dict prefixes, checked against `shape`.
    pub(super) fn host(&self, name: &str, shape: &[usize]) -> Result<&'a HostTensor> {
        self.0.get(name, shape)
    }

    pub(super) fn tensor<B: Backend, const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        let t = self.host(name, &shape)?;
        Ok(Tensor::from_data(
            TensorData::new(t.data.clone(), shape),
            device,
        ))
    }

    /// A PyTorch `Linear` (`weight [out, in]`, `bias [out]`) as `[in, out]` for burn.
    pub(super) fn linear<B: Backend>(
        &self,
        name: &str,
        input: usize,
        output: usize,
        device: &B::Device,
    ) -> Result<Linear<B>> {
        self.dense(name, input, output, &[output, input], device)
    }

    /// A 1×1 convolution (`weight [out, in, 1, 1]`) as a linear layer over channels.
    pub(super) fn pointwise<B: Backend>(
        &self,
        name: &str,
        input: usize,
        output: usize,
        device: &B::Device,
    ) -> Result<Linear<B>> {
        self.dense(name, input, output, &[output, input, 1, 1], device)
    }

    pub(super) fn dense<B: Backend>(
        &self,
        name: &str,
        input: usize,
        output: usize,
        weight_shape: &[usize],
        device: &B::Device,
    ) -> Result<Linear<B>> {
        let w = self.host(&format!("{name}.weight"), weight_shape)?;
        Ok(Linear {
            weight: Tensor::from_data(
                TensorData::new(transpose(&w.data, output, input), [input, output]),
                device,
            ),
            bias: self.tensor(&format!("{name}.bias"), [output], device)?,
        })
    }
}

/// `[rows, cols]` row-major to `[cols, rows]` row-major.
pub(super) fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}
