//! MANIQA (Yang et al., CVPR Workshops 2022, "MANIQA: Multi-dimension Attention Network for
//! No-Reference Image Quality Assessment"), as `pyiqa` 0.1.16 computes it
//! (`pyiqa.archs.maniqa_arch.MANIQA` in eval mode), from a checkpoint the user supplies.
//!
//! # Checkpoints
//! No offline package ships the weights. [`Maniqa::load`] reads pyiqa's released files
//! (`default_model_urls` of `maniqa_arch.py`):
//!
//! - `ckpt_koniq10k.pt`: metric `maniqa` (KonIQ-10k, `scale` 0.8): [`ManiqaConfig::koniq`],
//!   the [`Default`];
//! - `ckpt_kadid10k.pt`: metric `maniqa-kadid` (KADID-10k, `scale` 0.8): [`ManiqaConfig::kadid`];
//! - `MANIQA_PIPAL-ae6d356b.pth`: metric `maniqa-pipal` (PIPAL, `scale` 0.13):
//!   [`ManiqaConfig::pipal`].
//!
//! [`ManiqaConfig::for_file`] picks the configuration from the file name. The files are state
//! dicts of `MANIQA(...)` (names as [`expected_tensors`] lists them), as `.pth`/`.pt` (zip or
//! legacy pickle) or `.safetensors`; names may carry a `module.` prefix or sit under a
//! `params` key, as pyiqa's `load_pretrained_network` accepts. The ViT's blocks 10–11, final
//! `norm` and classifier `head`, the Swin stages' unused `downsample` convolution and the
//! buffers (`relative_position_index`, `attn_mask`) may be present and are not read.
//!
//! # Computation
//! The image (`[3, H, W]` in `[0, 1]`) is normalised with the Inception mean and standard
//! deviation (0.5, 0.5), so `x ↦ 2x − 1`, and cut into `test_sample` crops of 224×224 by
//! pyiqa's `uniform_crop` ([`uniform_crops`]): an image whose shorter side is at most 224 is
//! first enlarged bilinearly by `225 / min(H, W)`. Each crop goes through a ViT (timm's
//! `vit_base_patch8_224`: 28×28 tokens of 768 channels); the outputs of blocks 6–9 without
//! the class token are concatenated (`[N, 784, 3072]`) and pass two stages of
//! transposed-attention blocks (TABlock), a 1×1 convolution and a Swin transformer stage
//! (window 4, shifted every second block); the second stage halves the channels. Two heads
//! give a score (ReLU) and a weight (sigmoid) per patch, and the result is
//! `Σ w·s / (Σ w + 1e-8)` over the patches of all crops of the image.
//!
//! # Score range
//! About 0 to 1, higher is better quality (pyiqa: `score_range '~0, ~1'`).
//!
//! # Cost
//! About 4.4 TFLOP per image with the default 20 crops (mostly the ViT-B/8 and the first
//! stage's channel attention over 3072 channels): about a minute per image on two CPU cores
//! with the Flex backend in a release build.

mod swin;
mod vit;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use burn::tensor::activation::{gelu, relu, sigmoid, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use framer_metrics::{Metric, MetricImage};

use crate::error::{EvalError, Result};
use crate::weight_file::{HostTensor, STATE_DICT_PREFIXES, StateDict, WeightFile};

use self::swin::SwinStage;
use self::vit::Vit;

/// Side of the square crops the network sees (pyiqa's `uniform_crop(x, 224, ...)`).
pub const CROP_SIZE: usize = 224;
/// Inception normalisation mean, per RGB channel (`IMAGENET_INCEPTION_MEAN`).
pub const MEAN: [f64; 3] = [0.5, 0.5, 0.5];
/// Inception normalisation standard deviation, per RGB channel (`IMAGENET_INCEPTION_STD`).
pub const STD: [f64; 3] = [0.5, 0.5, 0.5];
/// The ViT blocks whose outputs MANIQA concatenates (`extract_feature`).
pub const FEATURE_BLOCKS: [usize; 4] = [6, 7, 8, 9];
/// The largest `test_sample` accepted (each crop holds 3·224² values on the host).
pub const MAX_TEST_SAMPLE: usize = 1024;
/// The ε of the final weighted average `Σ w·s / (Σ w + ε)`.
pub const WEIGHT_EPS: f64 = 1e-8;

/// The architecture and options of a MANIQA network (pyiqa's `MANIQA(...)` arguments plus the
/// timm ViT's sizes). The defaults are pyiqa's metric `maniqa` (KonIQ-10k checkpoint).
#[derive(Clone, Debug, PartialEq)]
pub struct ManiqaConfig {
    /// Channels of the ViT and of the first MANIQA stage (768); the second stage has half.
    pub embed_dim: usize,
    /// ViT patch size (8): the network works on `(224 / patch_size)²` tokens.
    pub patch_size: usize,
    /// Number of ViT blocks in the checkpoint (12); blocks past 9 are not run.
    pub vit_depth: usize,
    /// ViT attention heads (12).
    pub vit_heads: usize,
    /// ViT MLP hidden width (3072 = 4 × 768).
    pub vit_mlp_hidden: usize,
    /// Classes of the ViT's (unused) classifier head in the checkpoint (1000; 0 for none).
    pub vit_classes: usize,
    /// Swin blocks per Swin layer (`depths`, `[2, 2]`).
    pub depths: Vec<usize>,
    /// Swin attention heads per Swin layer (`num_heads`, `[4, 4]`).
    pub num_heads: Vec<usize>,
    /// Swin window side (4); a window at least as large as the token grid becomes one
    /// unshifted window of the whole grid, as in pyiqa.
    pub window_size: usize,
    /// Hidden width of the Swin MLPs (`dim_mlp`, 768), in both stages.
    pub dim_mlp: usize,
    /// TABlocks per stage (`num_tab`, 2).
    pub num_tab: usize,
    /// Residual factor of each Swin layer, `x ← scale·layer(x) + x` (`scale`: 0.8 for the
    /// KonIQ and KADID checkpoints, 0.13 for PIPAL).
    pub scale: f64,
    /// Number of 224×224 crops per image (`test_sample`, 20).
    pub test_sample: usize,
    /// Crops run through the network at once (memory only, not the result; 4).
    pub crop_batch: usize,
}

impl Default for ManiqaConfig {
    fn default() -> Self {
        Self::koniq()
    }
}

impl ManiqaConfig {
    /// pyiqa's `maniqa` (checkpoint `ckpt_koniq10k.pt`, `scale` 0.8).
    pub fn koniq() -> Self {
        Self {
            embed_dim: 768,
            patch_size: 8,
            vit_depth: 12,
            vit_heads: 12,
            vit_mlp_hidden: 3072,
            vit_classes: 1000,
            depths: vec![2, 2],
            num_heads: vec![4, 4],
            window_size: 4,
            dim_mlp: 768,
            num_tab: 2,
            scale: 0.8,
            test_sample: 20,
            crop_batch: 4,
        }
    }

    /// pyiqa's `maniqa-kadid` (checkpoint `ckpt_kadid10k.pt`, `scale` 0.8).
    pub fn kadid() -> Self {
        Self::koniq()
    }

    /// pyiqa's `maniqa-pipal` (checkpoint `MANIQA_PIPAL-ae6d356b.pth`, the constructor's
    /// default `scale` 0.13).
    pub fn pipal() -> Self {
        Self {
            scale: 0.13,
            ..Self::koniq()
        }
    }

    /// The configuration for a checkpoint file: [`ManiqaConfig::pipal`] if its name contains
    /// `pipal` (any case), else [`ManiqaConfig::koniq`] (KonIQ and KADID share the
    /// architecture and `scale`).
    pub fn for_file(path: &Path) -> Self {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.contains("pipal") {
            Self::pipal()
        } else {
            Self::koniq()
        }
    }

    /// Tokens per side of a crop, `224 / patch_size` (28 by default).
    pub fn grid(&self) -> usize {
        CROP_SIZE / self.patch_size.max(1)
    }

    /// Checks that the sizes fit together.
    ///
    /// # Errors
    /// [`EvalError::InvalidArgument`] naming the field that does not fit.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(EvalError::InvalidArgument(format!("MANIQA config: {m}")));
        if self.patch_size == 0 || !CROP_SIZE.is_multiple_of(self.patch_size) {
            return bad(format!(
                "patch_size {} must divide the crop size {CROP_SIZE}",
                self.patch_size
            ));
        }
        if self.embed_dim < 2 || !self.embed_dim.is_multiple_of(2) {
            return bad(format!(
                "embed_dim {} must be even and positive (the second stage has half)",
                self.embed_dim
            ));
        }
        if self.vit_heads == 0 || !self.embed_dim.is_multiple_of(self.vit_heads) {
            return bad(format!(
                "vit_heads {} must divide embed_dim {}",
                self.vit_heads, self.embed_dim
            ));
        }
        if self.vit_depth <= FEATURE_BLOCKS[3] {
            return bad(format!(
                "vit_depth {} must be at least {} (the outputs of blocks 6–9 are used)",
                self.vit_depth,
                FEATURE_BLOCKS[3] + 1
            ));
        }
        if self.vit_mlp_hidden == 0 || self.dim_mlp == 0 {
            return bad("the MLP widths must be positive".into());
        }
        if self.depths.is_empty() || self.depths.len() != self.num_heads.len() {
            return bad(format!(
                "depths {:?} and num_heads {:?} must be non-empty and of the same length",
                self.depths, self.num_heads
            ));
        }
        for &h in &self.num_heads {
            if h == 0 || !(self.embed_dim / 2).is_multiple_of(h) {
                return bad(format!(
                    "Swin heads {h} must divide both stage widths {} and {}",
                    self.embed_dim,
                    self.embed_dim / 2
                ));
            }
        }
        let grid = self.grid();
        if self.window_size == 0
            || (grid > self.window_size && !grid.is_multiple_of(self.window_size))
        {
            return bad(format!(
                "window_size {} must divide the token grid side {grid} (or be at least {grid})",
                self.window_size
            ));
        }
        if self.test_sample == 0 || self.test_sample > MAX_TEST_SAMPLE || self.crop_batch == 0 {
            return bad(format!(
                "test_sample {} must be in 1..={MAX_TEST_SAMPLE} and crop_batch {} positive",
                self.test_sample, self.crop_batch
            ));
        }
        if !self.scale.is_finite() {
            return bad(format!("scale {} must be finite", self.scale));
        }
        Ok(())
    }
}

/// One entry of `MANIQA(...).state_dict()`.
struct Entry {
    name: String,
    shape: Vec<usize>,
    /// Whether the port reads it (not the unused ViT blocks, norm and head, the unused Swin
    /// `downsample` convolution or the buffers).
    used: bool,
}

/// The state-dict listing under construction.
#[derive(Default)]
struct Entries(Vec<Entry>);

impl Entries {
    fn add(&mut self, name: String, shape: Vec<usize>, used: bool) {
        self.0.push(Entry { name, shape, used });
    }

    /// `tablock{stage}.*`: `num_tab` TABlocks of three `[L, L]` linear layers.
    fn tablocks(&mut self, c: &ManiqaConfig, stage: usize) {
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
    fn swin(&mut self, c: &ManiqaConfig, stage: usize, dim: usize) {
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

fn state_dict_entries(c: &ManiqaConfig) -> Vec<Entry> {
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
struct Source<'a>(StateDict<'a>);

impl<'a> Source<'a> {
    fn new(path: &'a Path, tensors: &'a BTreeMap<String, HostTensor>, names: &'a [String]) -> Self {
        Self(StateDict {
            path,
            tensors,
            names,
            network: "MANIQA",
        })
    }

    /// `name` under any of the state-dict prefixes, checked against `shape`.
    fn host(&self, name: &str, shape: &[usize]) -> Result<&'a HostTensor> {
        self.0.get(name, shape)
    }

    fn tensor<B: Backend, const D: usize>(
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
    fn linear<B: Backend>(
        &self,
        name: &str,
        input: usize,
        output: usize,
        device: &B::Device,
    ) -> Result<Linear<B>> {
        self.dense(name, input, output, &[output, input], device)
    }

    /// A 1×1 convolution (`weight [out, in, 1, 1]`) as a linear layer over channels.
    fn pointwise<B: Backend>(
        &self,
        name: &str,
        input: usize,
        output: usize,
        device: &B::Device,
    ) -> Result<Linear<B>> {
        self.dense(name, input, output, &[output, input, 1, 1], device)
    }

    fn dense<B: Backend>(
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
fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// A linear layer, `y = x·W + b` with `W` of shape `[in, out]`.
#[derive(Clone, Debug)]
struct Linear<B: Backend> {
    weight: Tensor<B, 2>,
    bias: Tensor<B, 1>,
}

impl<B: Backend> Linear<B> {
    fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        burn::tensor::module::linear(x, self.weight.clone(), Some(self.bias.clone()))
    }
}

/// The weights of a pre-norm transformer block as timm's ViT and the Swin blocks name them
/// (`norm1`, `attn.qkv`, `attn.proj`, `norm2`, `mlp.fc1`, `mlp.fc2`); the attention between the
/// two is each block's own.
#[derive(Clone, Debug)]
struct PreNormBlock<B: Backend> {
    norm1: LayerNorm<B>,
    qkv: Linear<B>,
    proj: Linear<B>,
    norm2: LayerNorm<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
}

impl<B: Backend> PreNormBlock<B> {
    /// Channels `dim`, MLP width `hidden`, LayerNorm ε `eps`, names under `p`.
    fn load(
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
    fn split_qkv(&self, y: Tensor<B, 3>, heads: usize) -> [Tensor<B, 4>; 3] {
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
    fn mlp_residual(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let m = self
            .fc2
            .forward(gelu(self.fc1.forward(self.norm2.forward(x.clone()))));
        x.add(m)
    }
}

/// A LayerNorm over the last axis.
#[derive(Clone, Debug)]
struct LayerNorm<B: Backend> {
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    fn load(
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

    fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
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
struct TokenAttention<B: Backend> {
    q: Linear<B>,
    k: Linear<B>,
    v: Linear<B>,
}

impl<B: Backend> TokenAttention<B> {
    fn load(src: &Source<'_>, name: &str, tokens: usize, device: &B::Device) -> Result<Self> {
        Ok(Self {
            q: src.linear(&format!("{name}.c_q"), tokens, tokens, device)?,
            k: src.linear(&format!("{name}.c_k"), tokens, tokens, device)?,
            v: src.linear(&format!("{name}.c_v"), tokens, tokens, device)?,
        })
    }

    /// `x`: `[N, C, L]` → `[N, C, L]`.
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
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
struct Head<B: Backend> {
    fc0: Linear<B>,
    fc3: Linear<B>,
}

impl<B: Backend> Head<B> {
    fn load(src: &Source<'_>, name: &str, dim: usize, device: &B::Device) -> Result<Self> {
        Ok(Self {
            fc0: src.linear(&format!("{name}.0"), dim, dim, device)?,
            fc3: src.linear(&format!("{name}.3"), dim, 1, device)?,
        })
    }

    /// `[N, L, dim]` → `[N, L, 1]` before the final activation.
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.fc3.forward(relu(self.fc0.forward(x)))
    }
}

/// MANIQA with loaded weights, on backend `B`.
#[doc(alias = "multi-dimension attention network for image quality assessment")]
pub struct Maniqa<B: Backend> {
    config: ManiqaConfig,
    vit: Vit<B>,
    tab1: Vec<TokenAttention<B>>,
    conv1: Linear<B>,
    swin1: SwinStage<B>,
    tab2: Vec<TokenAttention<B>>,
    conv2: Linear<B>,
    swin2: SwinStage<B>,
    fc_score: Head<B>,
    fc_weight: Head<B>,
    device: B::Device,
}

impl<B: Backend> std::fmt::Debug for Maniqa<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maniqa")
            .field("config", &self.config)
            .finish()
    }
}

impl<B: Backend> Maniqa<B> {
    /// Loads a checkpoint (see the module documentation for the files and name forms). Only
    /// the tensors the network runs are decoded.
    ///
    /// # Errors
    /// [`EvalError::InvalidArgument`] for an inconsistent `config`, [`EvalError::Read`] for an
    /// unreadable file, [`EvalError::WeightFile`] naming the file and the missing tensor, the
    /// wrong shape (found vs expected) or what makes the file unreadable.
    pub fn load(path: &Path, config: ManiqaConfig, device: &B::Device) -> Result<Self> {
        config.validate()?;
        let wanted: HashSet<String> = required_tensors(&config)
            .into_iter()
            .flat_map(|(n, _)| STATE_DICT_PREFIXES.map(|p| format!("{p}{n}")))
            .collect();
        let file = WeightFile::read(path, &|name: &str| wanted.contains(name))?;
        Self::build(
            config,
            &Source::new(path, &file.tensors, &file.names),
            device,
        )
    }

    /// Builds the network from named tensors (names as in [`expected_tensors`], optionally
    /// with a `module.` or `params.` prefix); extra tensors are ignored.
    ///
    /// # Errors
    /// [`EvalError::InvalidArgument`] for an inconsistent `config`, [`EvalError::WeightFile`]
    /// (with the path `<tensors>`) naming a missing tensor or a wrong shape.
    pub fn from_tensors(
        config: ManiqaConfig,
        tensors: &BTreeMap<String, HostTensor>,
        device: &B::Device,
    ) -> Result<Self> {
        config.validate()?;
        let names: Vec<String> = tensors.keys().cloned().collect();
        let path = PathBuf::from("<tensors>");
        Self::build(config, &Source::new(&path, tensors, &names), device)
    }

    fn build(config: ManiqaConfig, src: &Source<'_>, device: &B::Device) -> Result<Self> {
        let e = config.embed_dim;
        let g = config.grid();
        let tokens = g * g;
        let vit = Vit::load(src, &config, device)?;
        let tabs = |stage: usize| -> Result<Vec<TokenAttention<B>>> {
            (0..config.num_tab)
                .map(|i| TokenAttention::load(src, &format!("tablock{stage}.{i}"), tokens, device))
                .collect()
        };
        let tab1 = tabs(1)?;
        let conv1 = src.pointwise("conv1", 4 * e, e, device)?;
        let swin1 = SwinStage::load(src, "swintransformer1", &config, e, device)?;
        let tab2 = tabs(2)?;
        let conv2 = src.pointwise("conv2", e, e / 2, device)?;
        let swin2 = SwinStage::load(src, "swintransformer2", &config, e / 2, device)?;
        let fc_score = Head::load(src, "fc_score", e / 2, device)?;
        let fc_weight = Head::load(src, "fc_weight", e / 2, device)?;
        Ok(Self {
            config,
            vit,
            tab1,
            conv1,
            swin1,
            tab2,
            conv2,
            swin2,
            fc_score,
            fc_weight,
            device: device.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ManiqaConfig {
        &self.config
    }

    /// Per-patch scores and weights for crops `[N, 3, 224, 224]` (already normalised, as
    /// [`uniform_crops`] makes them): two `[N, L]` tensors with `L = (224 / patch_size)²`
    /// patches per crop, the scores after the ReLU and the weights after the sigmoid.
    ///
    /// # Errors
    /// [`EvalError::InvalidShape`] if `crops` is not `[N, 3, 224, 224]` with `N ≥ 1`.
    pub fn patch_scores(&self, crops: Tensor<B, 4>) -> Result<(Tensor<B, 2>, Tensor<B, 2>)> {
        let [n, c, h, w] = crops.dims();
        if n == 0 || c != 3 || h != CROP_SIZE || w != CROP_SIZE {
            return Err(EvalError::InvalidShape(format!(
                "MANIQA needs crops of shape [N, 3, {CROP_SIZE}, {CROP_SIZE}] with N ≥ 1, got \
                 {:?}",
                crops.dims()
            )));
        }
        let e = self.config.embed_dim;
        let l = self.config.grid() * self.config.grid();
        // [N, L, 4E] → [N, 4E, L]
        let mut x = self.vit.features(crops).swap_dims(1, 2);
        for t in &self.tab1 {
            x = t.forward(x);
        }
        // 1×1 convolution over channels, tokens-major: [N, L, E]
        let x = self.conv1.forward(x.swap_dims(1, 2));
        let x = self.swin1.forward(x, self.config.scale);
        let mut x = x.swap_dims(1, 2);
        for t in &self.tab2 {
            x = t.forward(x);
        }
        let x = self.conv2.forward(x.swap_dims(1, 2));
        let x = self.swin2.forward(x, self.config.scale);
        debug_assert_eq!(x.dims(), [n, l, e / 2]);
        let score = relu(self.fc_score.forward(x.clone())).reshape([n, l]);
        let weight = sigmoid(self.fc_weight.forward(x)).reshape([n, l]);
        Ok((score, weight))
    }

    /// The MANIQA score of crops `[N, 3, 224, 224]` of one image: `Σ w·s / (Σ w + 1e-8)` over
    /// the patches of all crops (run `crop_batch` crops at a time).
    ///
    /// # Errors
    /// As [`Maniqa::patch_scores`]; [`EvalError::InvalidShape`] if the result is not finite.
    pub fn score_crops(&self, crops: Tensor<B, 4>) -> Result<f64> {
        let n = crops.dims()[0];
        if n == 0 {
            // reports the shape error
            self.patch_scores(crops)?;
            return Ok(0.0);
        }
        let mut num = 0.0f64;
        let mut den = 0.0f64;
        for start in (0..n).step_by(self.config.crop_batch) {
            let len = self.config.crop_batch.min(n - start);
            let (s, w) = self.patch_scores(crops.clone().narrow(0, start, len))?;
            let s = to_host(s)?;
            let w = to_host(w)?;
            for (s, w) in s.iter().zip(&w) {
                num += f64::from(*s) * f64::from(*w);
                den += f64::from(*w);
            }
        }
        let score = num / (den + WEIGHT_EPS);
        if !score.is_finite() {
            return Err(EvalError::InvalidShape(format!(
                "MANIQA: the score is not finite ({score}); check the checkpoint"
            )));
        }
        Ok(score)
    }

    /// The MANIQA score of an image `[3, H, W]` in `[0, 1]`, any size (see [`uniform_crops`]);
    /// about 0 to 1, higher is better.
    ///
    /// # Errors
    /// As [`Maniqa::score_crops`].
    pub fn score_image(&self, image: &MetricImage) -> Result<f64> {
        let crops = uniform_crops(image, self.config.test_sample);
        let crops =
            Tensor::<B, 4>::from_data(TensorData::new(crops.data, crops.shape), &self.device);
        self.score_crops(crops)
    }
}

fn to_host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .into_vec()
        .map_err(|e| EvalError::InvalidShape(format!("MANIQA: cannot read values back: {e:?}")))
}

impl<B: Backend> crate::compare::ImageMetric for Maniqa<B> {
    fn metric(&self) -> Metric {
        Metric::Maniqa
    }

    fn score(&self, image: &MetricImage) -> Result<f64> {
        self.score_image(image)
    }
}

/// `⌊√n⌋` and `⌈√n⌉` in integers.
fn isqrt_floor_ceil(n: usize) -> (usize, usize) {
    let mut f = (n as f64).sqrt() as usize;
    while f * f > n {
        f -= 1;
    }
    while (f + 1) * (f + 1) <= n {
        f += 1;
    }
    let c = if f * f == n { f } else { f + 1 };
    (f, c)
}

/// Source indices and weights of PyTorch's bilinear resize (`align_corners=False`) along one
/// axis, with the coordinate map of a given `scale_factor` (`src = (dst + ½)/scale − ½`,
/// clamped at 0), as `F.interpolate(..., scale_factor=s)` does without
/// `recompute_scale_factor`.
fn bilinear_axis(input: usize, dst: usize, inv_scale: f64) -> (usize, usize, f64) {
    let src = (inv_scale * (dst as f64 + 0.5) - 0.5).max(0.0);
    let i0 = (src.floor() as usize).min(input - 1);
    let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
    let l1 = (src - i0 as f64).clamp(0.0, 1.0);
    (i0, i1, l1)
}

/// The crops pyiqa's MANIQA scores, `[n, 3, 224, 224]` with `n = test_sample`, values
/// normalised to `(x − 0.5) / 0.5`.
///
/// As `uniform_crop(x, 224, n)`: if `min(H, W) ≤ 224` the image is first resized bilinearly
/// (`align_corners=False`) with `scale_factor = 225 / min(H, W)` to `⌊H·s⌋ × ⌊W·s⌋`; then
/// crop `k` (row-major on a `⌈√n⌉ × ⌈√n⌉` grid, the first `n` kept) starts at
/// `(i·step_h, j·step_w)` with `step = (side − 224) // ⌊√n⌋`. Any image of at least 1×1
/// pixel works (a small one is enlarged); only the crops' pixels are computed.
pub fn uniform_crops(image: &MetricImage, test_sample: usize) -> HostTensor {
    let (w, h) = (image.width(), image.height());
    let src = image.data();
    let norm =
        |y: usize, x: usize, c: usize| (f64::from(src[(c * h + y) * w + x]) - MEAN[c]) / STD[c];
    let m = h.min(w);
    // (output height, output width, 1 / scale) if resized
    let resize = (m <= CROP_SIZE).then(|| {
        let s = (CROP_SIZE + 1) as f64 / m as f64;
        let oh = (h as f64 * s).floor() as usize;
        let ow = (w as f64 * s).floor() as usize;
        (oh, ow, 1.0 / s)
    });
    let (oh, ow) = resize.map_or((h, w), |(oh, ow, _)| (oh, ow));
    let n = test_sample.max(1);
    let (fl, ce) = isqrt_floor_ceil(n);
    let step_h = oh.saturating_sub(CROP_SIZE) / fl;
    let step_w = ow.saturating_sub(CROP_SIZE) / fl;
    let starts: Vec<(usize, usize)> = (0..ce)
        .flat_map(|i| (0..ce).map(move |j| (i * step_h, j * step_w)))
        .take(n)
        .collect();
    let plane = CROP_SIZE * CROP_SIZE;
    let mut data = vec![0.0f32; n * 3 * plane];
    for (k, &(sh, sw)) in starts.iter().enumerate() {
        // per-axis source indices and weights of the crop's rows and columns
        let axis = |start: usize, input: usize| -> Vec<(usize, usize, f64)> {
            (start..start + CROP_SIZE)
                .map(|d| match resize {
                    Some((_, _, inv)) => bilinear_axis(input, d, inv),
                    None => (d.min(input - 1), d.min(input - 1), 0.0),
                })
                .collect()
        };
        let rows = axis(sh, h);
        let cols = axis(sw, w);
        for c in 0..3 {
            let out = &mut data[(k * 3 + c) * plane..(k * 3 + c + 1) * plane];
            for (y, &(y0, y1, ly)) in rows.iter().enumerate() {
                for (x, &(x0, x1, lx)) in cols.iter().enumerate() {
                    let top = (1.0 - lx) * norm(y0, x0, c) + lx * norm(y0, x1, c);
                    let bottom = (1.0 - lx) * norm(y1, x0, c) + lx * norm(y1, x1, c);
                    out[y * CROP_SIZE + x] = ((1.0 - ly) * top + ly * bottom) as f32;
                }
            }
        }
    }
    HostTensor {
        shape: vec![n, 3, CROP_SIZE, CROP_SIZE],
        data,
    }
}
