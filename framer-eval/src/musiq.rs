//! MUSIQ (Ke, Wang, Wang, Milanfar and Yang, ICCV 2021, "MUSIQ: Multi-scale Image Quality
//! Transformer"), a no-reference image quality metric, computed from the checkpoint files the
//! user supplies, as `pyiqa` 0.1.16 implements it (`pyiqa.archs.musiq_arch.MUSIQ` in eval mode).
//!
//! # Checkpoints
//!
//! [`Musiq::load`] reads pyiqa's released state dicts (PyTorch `.pth`, or `.safetensors` with the
//! same names, see [`crate::weight_file`]), whose names are those of `MUSIQ().state_dict()`
//! (listed by [`expected_tensors`]); a `module.` or `params.` prefix is accepted:
//!
//! | file                               | pyiqa metric     | head            | score range  |
//! |------------------------------------|------------------|-----------------|--------------|
//! | `musiq_koniq_ckpt-e95806b9.pth`    | `musiq`          | 1 output        | ~0 … ~100    |
//! | `musiq_spaq_ckpt-358bb6af.pth`     | `musiq-spaq`     | 1 output        | ~0 … ~100    |
//! | `musiq_paq2piq_ckpt-364c0c84.pth`  | `musiq-paq2piq`  | 1 output        | ~0 … ~100    |
//! | `musiq_ava_ckpt-e8d3f067.pth`      | `musiq-ava`      | 10-way softmax  | 1 … 10       |
//!
//! Higher is better. The head is recognised from the file (`head.weight` for a single output,
//! `head.0.weight` for pyiqa's `Linear` + `Softmax` head), so [`MusiqConfig::num_class`] need not
//! be set when loading. The score is pyiqa's `dist_to_mos`: `Σ_k q_k · k` (k = 1 … num_class) of
//! the head output `q`, i.e. the value itself for one output and the mean of the predicted
//! 1 … 10 distribution for AVA.
//!
//! # Preprocessing ([`multiscale_patches`])
//!
//! pyiqa's `get_multiscale_patches` with its defaults: the image (`[3, H, W]` in `[0, 1]`) is
//! mapped to `[-1, 1]` (`(x − 0.5)·2`); for each longer-side length `L` (224 and 384, sorted) it is
//! resized, keeping the aspect ratio, to `round(H·r) × round(W·r)` with `r = L / max(H, W)`
//! (Python's `round`: ties to even) by PyTorch's bicubic interpolation (`align_corners=False`,
//! `A = −0.75`, clamped border indices, no antialiasing even when shrinking). Each resized image,
//! and the original one, is cut into 32 × 32 patches after TensorFlow `SAME` zero padding
//! (`ceil(h/32) × ceil(w/32)` patches, row-major, each `[3, 32, 32]`). A patch's spatial position
//! is hashed to a 10 × 10 grid (`nearest` interpolation of the grid indices), its scale id is the
//! index of its scale (0, 1, then 2 for the original resolution). The patches of scale `L` are
//! padded with zero patches (attention mask 0) to `ceil(L/32)²` tokens; all patches of the
//! original resolution are kept.
//!
//! # Network
//!
//! Each patch goes through a ResNet stem with weight-standardised convolutions (`StdConv`: mean
//! and unbiased standard deviation over `(in, kh, kw)`, `+1e-5`, TensorFlow `SAME` padding): 7 × 7
//! stride-2 convolution, GroupNorm (32 groups, ε 1e-6), ReLU, 3 × 3 stride-2 max pool, and one
//! bottleneck (GroupNorm ε 1e-4, projection shortcut), giving `[256, 8, 8]`, flattened in
//! `(h, w, c)` order and embedded linearly. Hashed position and scale embeddings are added, a
//! class token is prepended, and a pre-norm transformer (LayerNorm ε 1e-6, masked multi-head
//! attention where masked pairs get the logit −1000, exact-erf GELU MLP) and a final LayerNorm
//! follow; the head reads the class token.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::activation::{gelu, relu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Int, Tensor, TensorData};
use framer_metrics::{Metric, MetricImage};

use crate::error::{EvalError, Result};
use crate::weight_file::{HostTensor, StateDict, WeightFile};

/// Channels of the ResNet stem (`resnet_token_dim` in pyiqa); the bottleneck outputs four times
/// as many.
pub const STEM_CHANNELS: usize = 64;
/// Groups of every GroupNorm.
pub const GROUPS: usize = 32;
/// The logit given to masked (padding) token pairs before the softmax.
pub const MASK_LOGIT: f32 = -1e3;
/// Name prefixes accepted in front of the state-dict names (`module.` from `DataParallel`,
/// `params.` from BasicSR-style checkpoints).
pub use crate::weight_file::STATE_DICT_PREFIXES as NAME_PREFIXES;

/// How many patches of the original (unresized) image enter the sequence
/// (pyiqa's `max_seq_len_from_original_res`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OriginalResolution {
    /// None: only the resized scales (`None` in pyiqa).
    Skip,
    /// All of them (`-1`, pyiqa's default).
    #[default]
    All,
    /// Exactly this many: cut, or padded with masked zero patches (`n ≥ 0`).
    Exactly(usize),
}

/// The sizes of a MUSIQ network and its preprocessing; [`Default`] is pyiqa's (the released
/// checkpoints).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MusiqConfig {
    /// Patch side in pixels (and stride between patches), 32; a multiple of 4.
    pub patch_size: usize,
    /// Outputs of the head: 1 (KonIQ, SPAQ, PaQ-2-PiQ) or 10 (AVA, with a softmax). Used by
    /// [`expected_tensors`]; [`Musiq::load`] and [`Musiq::from_tensors`] take it from the file.
    pub num_class: usize,
    /// Transformer width, 384.
    pub hidden_size: usize,
    /// Hidden width of the transformer MLPs, 1152.
    pub mlp_dim: usize,
    /// Attention heads, 6 (must divide `hidden_size`).
    pub num_heads: usize,
    /// Transformer blocks, 14.
    pub num_layers: usize,
    /// Rows of the scale embedding, 3 (at least the number of scales used).
    pub num_scales: usize,
    /// Side of the hashed spatial-position grid, 10.
    pub spatial_pos_grid_size: usize,
    /// Whether the scale embedding is added (true).
    pub use_scale_emb: bool,
    /// Longer-side lengths of the resized scales, `[224, 384]` (sorted before use).
    pub longer_side_lengths: Vec<usize>,
    /// Patches of the original resolution, [`OriginalResolution::All`].
    pub original_resolution: OriginalResolution,
}

impl Default for MusiqConfig {
    fn default() -> Self {
        Self {
            patch_size: 32,
            num_class: 1,
            hidden_size: 384,
            mlp_dim: 1152,
            num_heads: 6,
            num_layers: 14,
            num_scales: 3,
            spatial_pos_grid_size: 10,
            use_scale_emb: true,
            longer_side_lengths: vec![224, 384],
            original_resolution: OriginalResolution::All,
        }
    }
}

impl MusiqConfig {
    /// Checks that the sizes are consistent.
    ///
    /// # Errors
    /// [`EvalError::InvalidArgument`] naming the setting: a zero size, a patch size that is not
    /// a multiple of 4, heads that do not divide the width, fewer scale-embedding rows than
    /// scales, a zero longer-side length.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(EvalError::InvalidArgument(format!("MUSIQ config: {m}")));
        if self.patch_size == 0 || !self.patch_size.is_multiple_of(4) {
            return bad(format!(
                "patch_size {} must be a positive multiple of 4",
                self.patch_size
            ));
        }
        for (what, v) in [
            ("num_class", self.num_class),
            ("hidden_size", self.hidden_size),
            ("mlp_dim", self.mlp_dim),
            ("num_heads", self.num_heads),
            ("spatial_pos_grid_size", self.spatial_pos_grid_size),
            ("num_scales", self.num_scales),
        ] {
            if v == 0 {
                return bad(format!("{what} must be positive"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return bad(format!(
                "num_heads {} does not divide hidden_size {}",
                self.num_heads, self.hidden_size
            ));
        }
        if self.longer_side_lengths.contains(&0) {
            return bad("a longer-side length is 0".into());
        }
        let scales = self.longer_side_lengths.len()
            + usize::from(self.original_resolution != OriginalResolution::Skip);
        if scales == 0 {
            return bad("no scale: no longer-side length and no original resolution".into());
        }
        if self.use_scale_emb && scales > self.num_scales {
            return bad(format!(
                "{scales} scales but only {} scale embeddings (num_scales)",
                self.num_scales
            ));
        }
        Ok(())
    }

    fn token_dim(&self) -> usize {
        STEM_CHANNELS * 4 * (self.patch_size / 4).pow(2)
    }
}

/// The state-dict names and PyTorch shapes of a MUSIQ network with `config`, in pyiqa's
/// `state_dict()` order (the keys of the released checkpoints for the default configuration).
/// Linear weights are `[out, in]`, convolutions `[out, in, kh, kw]`; the head is `head.*` for
/// one output and `head.0.*` (a `Linear` + `Softmax` sequence) for several.
pub fn expected_tensors(config: &MusiqConfig) -> Vec<(String, Vec<usize>)> {
    let c = STEM_CHANNELS;
    let d = config.hidden_size;
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    let mut push = |name: &str, shape: &[usize]| out.push((name.to_string(), shape.to_vec()));
    let norm = |push: &mut dyn FnMut(&str, &[usize]), name: &str, n: usize| {
        push(&format!("{name}.weight"), &[n]);
        push(&format!("{name}.bias"), &[n]);
    };
    push("conv_root.weight", &[c, 3, 7, 7]);
    norm(&mut push, "gn_root", c);
    push("block1.conv1.weight", &[c, c, 1, 1]);
    norm(&mut push, "block1.gn1", c);
    push("block1.conv2.weight", &[c, c, 3, 3]);
    norm(&mut push, "block1.gn2", c);
    push("block1.conv3.weight", &[4 * c, c, 1, 1]);
    norm(&mut push, "block1.gn3", 4 * c);
    push("block1.conv_proj.weight", &[4 * c, c, 1, 1]);
    norm(&mut push, "block1.gn_proj", 4 * c);
    push("embedding.weight", &[d, config.token_dim()]);
    push("embedding.bias", &[d]);
    let te = "transformer_encoder";
    push(&format!("{te}.cls"), &[1, 1, d]);
    let g = config.spatial_pos_grid_size;
    push(&format!("{te}.posembed_input.position_emb"), &[1, g * g, d]);
    push(
        &format!("{te}.scaleembed_input.scale_emb"),
        &[config.num_scales, d],
    );
    norm(&mut push, &format!("{te}.encoder_norm"), d);
    for i in 0..config.num_layers {
        let b = format!("{te}.transformer.encoderblock_{i}");
        norm(&mut push, &format!("{b}.norm1"), d);
        for part in ["query", "key", "value", "out"] {
            push(&format!("{b}.attention.{part}.weight"), &[d, d]);
            push(&format!("{b}.attention.{part}.bias"), &[d]);
        }
        norm(&mut push, &format!("{b}.norm2"), d);
        push(&format!("{b}.mlp.fc1.weight"), &[config.mlp_dim, d]);
        push(&format!("{b}.mlp.fc1.bias"), &[config.mlp_dim]);
        push(&format!("{b}.mlp.fc2.weight"), &[d, config.mlp_dim]);
        push(&format!("{b}.mlp.fc2.bias"), &[d]);
    }
    let head = if config.num_class > 1 {
        "head.0"
    } else {
        "head"
    };
    push(&format!("{head}.weight"), &[config.num_class, d]);
    push(&format!("{head}.bias"), &[config.num_class]);
    out
}

// ---------------------------------------------------------------------------------------------
// Preprocessing
// ---------------------------------------------------------------------------------------------

/// The token sequence of one image: what pyiqa's `get_multiscale_patches` returns, split up.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiscalePatches {
    /// Patch side `p`.
    pub patch_size: usize,
    /// `[L, 3, p, p]` row-major: the patches (values in about `[-1, 1]`, zeros for padding).
    pub patches: Vec<f32>,
    /// `[L]`: hashed spatial position, in `0 .. grid²`.
    pub positions: Vec<usize>,
    /// `[L]`: scale id (0 for the smallest resized scale, …, then the original resolution).
    pub scales: Vec<usize>,
    /// `[L]`: false for padding tokens.
    pub mask: Vec<bool>,
}

impl MultiscalePatches {
    /// The number of tokens `L` (without the class token).
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether there is no token.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    fn push_scale(
        &mut self,
        planes: &[f64],
        (h, w): (usize, usize),
        grid: usize,
        scale_id: usize,
        max_len: Option<usize>,
    ) {
        let p = self.patch_size;
        let (ch, cw) = (h.div_ceil(p), w.div_ceil(p));
        let (top, left) = ((ch * p - h) / 2, (cw * p - w) / 2);
        let hash_h = hash_positions(grid, ch);
        let hash_w = hash_positions(grid, cw);
        let count = ch * cw;
        let keep = max_len.map_or(count, |m| m.min(count));
        for idx in 0..keep {
            let (i, j) = (idx / cw, idx % cw);
            for c in 0..3 {
                for ky in 0..p {
                    let y = (i * p + ky) as isize - top as isize;
                    for kx in 0..p {
                        let x = (j * p + kx) as isize - left as isize;
                        let v = if y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w {
                            planes[(c * h + y as usize) * w + x as usize]
                        } else {
                            0.0
                        };
                        self.patches.push(v as f32);
                    }
                }
            }
            self.positions.push(hash_h[i] * grid + hash_w[j]);
            self.scales.push(scale_id);
            self.mask.push(true);
        }
        if let Some(m) = max_len {
            for _ in keep..m {
                self.patches.extend(std::iter::repeat_n(0.0, 3 * p * p));
                self.positions.push(0);
                self.scales.push(0);
                self.mask.push(false);
            }
        }
    }
}

/// PyTorch's `F.interpolate(mode='nearest')` of `0 .. grid` to `n` entries (the scale is a
/// float32, as in PyTorch's kernel).
fn hash_positions(grid: usize, n: usize) -> Vec<usize> {
    if n == grid {
        return (0..n).collect();
    }
    let scale = grid as f32 / n as f32;
    (0..n)
        .map(|i| ((i as f32 * scale).floor() as usize).min(grid - 1))
        .collect()
}

/// Cubic convolution weights of PyTorch's bicubic kernel (`A = −0.75`) for fraction `t`.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Source indices (clamped) and weights of each output position of a 1-D bicubic resize from
/// `n_in` to `n_out` (`align_corners=False`).
fn cubic_taps(n_in: usize, n_out: usize) -> Vec<([usize; 4], [f64; 4])> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let src = scale * (o as f64 + 0.5) - 0.5;
            let f = src.floor();
            let w = cubic_weights(src - f);
            let base = f as isize;
            let idx = std::array::from_fn(|k| {
                (base - 1 + k as isize).clamp(0, n_in as isize - 1) as usize
            });
            (idx, w)
        })
        .collect()
}

/// PyTorch's `F.interpolate(mode='bicubic', align_corners=False)` (no antialiasing) of
/// `[3, h, w]` planes to `[3, oh, ow]`: horizontal taps first, then vertical, as PyTorch does.
fn resize_bicubic(src: &[f64], (h, w): (usize, usize), (oh, ow): (usize, usize)) -> Vec<f64> {
    let tx = cubic_taps(w, ow);
    let ty = cubic_taps(h, oh);
    let mut rows = vec![0.0; 3 * h * ow];
    for c in 0..3 {
        for y in 0..h {
            let line = &src[(c * h + y) * w..(c * h + y + 1) * w];
            let out = &mut rows[(c * h + y) * ow..(c * h + y + 1) * ow];
            for (o, (idx, wt)) in out.iter_mut().zip(&tx) {
                *o = (0..4).map(|k| line[idx[k]] * wt[k]).sum();
            }
        }
    }
    let mut out = vec![0.0; 3 * oh * ow];
    for c in 0..3 {
        for (oy, (idx, wt)) in ty.iter().enumerate() {
            for ox in 0..ow {
                out[(c * oh + oy) * ow + ox] = (0..4)
                    .map(|k| rows[(c * h + idx[k]) * ow + ox] * wt[k])
                    .sum();
            }
        }
    }
    out
}

/// The multi-scale token sequence of `image` (`[3, H, W]` in `[0, 1]`), as pyiqa's
/// `get_multiscale_patches` after `(x − 0.5)·2` (see the module documentation). With the
/// default configuration, `L = 49 + 144 + ceil(H/32)·ceil(W/32)`.
///
/// # Errors
/// [`EvalError::InvalidArgument`] for an inconsistent configuration,
/// [`EvalError::InvalidShape`] naming the size when a resized side would be 0 pixels (a very
/// elongated image).
pub fn multiscale_patches(image: &MetricImage, config: &MusiqConfig) -> Result<MultiscalePatches> {
    config.validate()?;
    let (h, w) = (image.height(), image.width());
    // planar [3, H, W], as the image
    let planes: Vec<f64> = image
        .data()
        .iter()
        .map(|&v| (f64::from(v) - 0.5) * 2.0)
        .collect();
    let p = config.patch_size;
    let grid = config.spatial_pos_grid_size;
    let mut out = MultiscalePatches {
        patch_size: p,
        patches: Vec::new(),
        positions: Vec::new(),
        scales: Vec::new(),
        mask: Vec::new(),
    };
    let mut lengths = config.longer_side_lengths.clone();
    lengths.sort_unstable();
    for (scale_id, &len) in lengths.iter().enumerate() {
        let ratio = len as f64 / h.max(w) as f64;
        let rh = (h as f64 * ratio).round_ties_even() as usize;
        let rw = (w as f64 * ratio).round_ties_even() as usize;
        if rh == 0 || rw == 0 {
            return Err(EvalError::InvalidShape(format!(
                "MUSIQ: a {w}x{h} image (width x height) resized to a longer side of {len} \
                 would be {rw}x{rh} pixels"
            )));
        }
        let resized = resize_bicubic(&planes, (h, w), (rh, rw));
        let max_len = len.div_ceil(p).pow(2);
        out.push_scale(&resized, (rh, rw), grid, scale_id, Some(max_len));
    }
    let original = match config.original_resolution {
        OriginalResolution::Skip => None,
        OriginalResolution::All => Some(None),
        OriginalResolution::Exactly(n) => Some(Some(n)),
    };
    if let Some(max_len) = original {
        out.push_scale(&planes, (h, w), grid, lengths.len(), max_len);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Network
// ---------------------------------------------------------------------------------------------

/// A linear layer: weight transposed to `[in, out]`, bias `[1, out]`.
struct Linear<B: Backend> {
    weight: Tensor<B, 2>,
    bias: Tensor<B, 2>,
}

impl<B: Backend> Linear<B> {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        x.matmul(self.weight.clone()).add(self.bias.clone())
    }
}

/// Scale and shift of a GroupNorm or LayerNorm, `[C]`.
struct Norm<B: Backend> {
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
}

/// A weight-standardised convolution (standardised once, when loading) with TensorFlow `SAME`
/// padding, and the GroupNorm after it.
struct StdConvNorm<B: Backend> {
    weight: Tensor<B, 4>,
    kernel: usize,
    stride: usize,
    norm: Norm<B>,
    eps: f64,
}

struct Block<B: Backend> {
    norm1: Norm<B>,
    query: Linear<B>,
    key: Linear<B>,
    value: Linear<B>,
    out: Linear<B>,
    norm2: Norm<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
}

/// MUSIQ with loaded weights, on backend `B`: scores an image (`[3, H, W]` in `[0, 1]`).
#[doc(alias = "multi-scale image quality transformer")]
#[doc(alias = "MUSIQ")]
pub struct Musiq<B: Backend> {
    config: MusiqConfig,
    root: StdConvNorm<B>,
    conv1: StdConvNorm<B>,
    conv2: StdConvNorm<B>,
    conv3: StdConvNorm<B>,
    proj: StdConvNorm<B>,
    embedding: Linear<B>,
    /// `[1, D]`.
    cls: Tensor<B, 2>,
    /// `[grid², D]`.
    position_emb: Tensor<B, 2>,
    /// `[num_scales, D]`.
    scale_emb: Tensor<B, 2>,
    blocks: Vec<Block<B>>,
    encoder_norm: Norm<B>,
    head: Linear<B>,
    /// Whether the head ends with a softmax (pyiqa's `head.0` form).
    head_softmax: bool,
    /// Threads sharing the stem's patches and the transformer's query rows
    /// ([`worker_threads`] when built on a CPU backend, else 1); the results do not depend on it.
    threads: usize,
    device: B::Device,
}

impl<B: Backend> std::fmt::Debug for Musiq<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Musiq")
            .field("config", &self.config)
            .field("head_softmax", &self.head_softmax)
            .finish()
    }
}

impl<B: Backend> Musiq<B> {
    /// Loads a pyiqa MUSIQ checkpoint (`.pth` or `.safetensors`). The head's form and output
    /// count come from the file (see the module documentation); the rest of `config` must match
    /// it (the default configuration for pyiqa's checkpoints).
    ///
    /// # Errors
    /// [`EvalError::Read`] for an unreadable file; [`EvalError::WeightFile`] naming the file and
    /// what is wrong (corrupt or truncated file, missing tensor, wrong shape, non-finite value);
    /// [`EvalError::InvalidArgument`] for an inconsistent `config`.
    pub fn load(path: &Path, config: MusiqConfig, device: &B::Device) -> Result<Self> {
        config.validate()?;
        let file = WeightFile::read(path, &|_| true)?;
        Self::build(config, &file.tensors, &file.names, &file.path, device)
    }

    /// Builds the network from tensors already read (names as in [`Musiq::load`]); the head's
    /// form and output count come from the tensors.
    ///
    /// # Errors
    /// As [`Musiq::load`], with `<tensors>` in place of a file name.
    pub fn from_tensors(
        config: MusiqConfig,
        tensors: &BTreeMap<String, HostTensor>,
        device: &B::Device,
    ) -> Result<Self> {
        config.validate()?;
        let names: Vec<String> = tensors.keys().cloned().collect();
        Self::build(config, tensors, &names, Path::new("<tensors>"), device)
    }

    fn build(
        mut config: MusiqConfig,
        tensors: &BTreeMap<String, HostTensor>,
        names: &[String],
        path: &Path,
        device: &B::Device,
    ) -> Result<Self> {
        let src = StateDict {
            path,
            tensors,
            names,
            network: "MUSIQ",
        };
        // The head: `head.0.weight` ([num_class, D], Linear + Softmax) or `head.weight`.
        let head_softmax = src.find("head.0.weight").is_some();
        let head_name = if head_softmax { "head.0" } else { "head" };
        if let Some(t) = src.find(&format!("{head_name}.weight"))
            && let [n, _] = t.shape[..]
        {
            config.num_class = n;
        }
        config.validate()?;
        let specs: BTreeMap<String, Vec<usize>> = expected_tensors(&config).into_iter().collect();
        let host = |name: &str| -> Result<&HostTensor> {
            let shape = specs
                .get(name)
                .ok_or_else(|| EvalError::InvalidArgument(format!("no MUSIQ tensor `{name}`")))?;
            src.get(name, shape)
        };
        let tensor1 = |name: &str| -> Result<Tensor<B, 1>> {
            let t = host(name)?;
            Ok(Tensor::from_data(
                TensorData::new(t.data.clone(), [t.data.len()]),
                device,
            ))
        };
        let matrix = |name: &str, rows: usize, cols: usize| -> Result<Tensor<B, 2>> {
            let t = host(name)?;
            Ok(Tensor::from_data(
                TensorData::new(t.data.clone(), [rows, cols]),
                device,
            ))
        };
        let norm = |name: &str| -> Result<Norm<B>> {
            Ok(Norm {
                weight: tensor1(&format!("{name}.weight"))?,
                bias: tensor1(&format!("{name}.bias"))?,
            })
        };
        let linear = |name: &str| -> Result<Linear<B>> {
            let t = host(&format!("{name}.weight"))?;
            let (out, inp) = (t.shape[0], t.shape[1]);
            let weight =
                Tensor::<B, 2>::from_data(TensorData::new(t.data.clone(), [out, inp]), device)
                    .transpose();
            let bias = tensor1(&format!("{name}.bias"))?.reshape([1, out]);
            Ok(Linear { weight, bias })
        };
        let std_conv = |conv: &str, gn: &str, stride: usize, eps: f64| -> Result<StdConvNorm<B>> {
            let t = host(&format!("{conv}.weight"))?;
            let shape: [usize; 4] = [t.shape[0], t.shape[1], t.shape[2], t.shape[3]];
            Ok(StdConvNorm {
                weight: Tensor::from_data(
                    TensorData::new(standardize(&t.data, shape[0]), shape),
                    device,
                ),
                kernel: shape[2],
                stride,
                norm: norm(gn)?,
                eps,
            })
        };
        let d = config.hidden_size;
        let te = "transformer_encoder";
        let g = config.spatial_pos_grid_size;
        let blocks = (0..config.num_layers)
            .map(|i| {
                let b = format!("{te}.transformer.encoderblock_{i}");
                Ok(Block {
                    norm1: norm(&format!("{b}.norm1"))?,
                    query: linear(&format!("{b}.attention.query"))?,
                    key: linear(&format!("{b}.attention.key"))?,
                    value: linear(&format!("{b}.attention.value"))?,
                    out: linear(&format!("{b}.attention.out"))?,
                    norm2: norm(&format!("{b}.norm2"))?,
                    fc1: linear(&format!("{b}.mlp.fc1"))?,
                    fc2: linear(&format!("{b}.mlp.fc2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            root: std_conv("conv_root", "gn_root", 2, 1e-6)?,
            conv1: std_conv("block1.conv1", "block1.gn1", 1, 1e-4)?,
            conv2: std_conv("block1.conv2", "block1.gn2", 1, 1e-4)?,
            conv3: std_conv("block1.conv3", "block1.gn3", 1, 1e-4)?,
            proj: std_conv("block1.conv_proj", "block1.gn_proj", 1, 1e-4)?,
            embedding: linear("embedding")?,
            cls: matrix(&format!("{te}.cls"), 1, d)?,
            position_emb: matrix(&format!("{te}.posembed_input.position_emb"), g * g, d)?,
            scale_emb: matrix(
                &format!("{te}.scaleembed_input.scale_emb"),
                config.num_scales,
                d,
            )?,
            blocks,
            encoder_norm: norm(&format!("{te}.encoder_norm"))?,
            head: linear(head_name)?,
            head_softmax,
            config,
            threads: if cpu_backend::<B>(device) {
                worker_threads()
            } else {
                1
            },
            device: device.clone(),
        })
    }

    /// The configuration, with `num_class` as found in the weights.
    pub fn config(&self) -> &MusiqConfig {
        &self.config
    }

    /// The same network splitting its stem's patches and its transformer's query rows between
    /// `threads` threads (at least 1) instead of the count chosen when it was built; the
    /// outputs do not depend on it.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The head output `q` (`[num_class]`, a distribution for a softmax head) for one image's
    /// token sequence (from [`multiscale_patches`] with this model's configuration).
    ///
    /// # Errors
    /// [`EvalError::InvalidShape`] if the sequence is empty, its arrays disagree in length, the
    /// patch size differs from the configuration's, or a position or scale id is out of range.
    pub fn forward_patches(&self, tokens: &MultiscalePatches) -> Result<Tensor<B, 1>> {
        let cfg = &self.config;
        let p = cfg.patch_size;
        let l = tokens.len();
        let g2 = cfg.spatial_pos_grid_size.pow(2);
        if l == 0
            || tokens.patch_size != p
            || tokens.patches.len() != l * 3 * p * p
            || tokens.scales.len() != l
            || tokens.mask.len() != l
        {
            return Err(EvalError::InvalidShape(format!(
                "MUSIQ: inconsistent token sequence: {l} positions, {} scales, {} mask entries, \
                 {} patch values of side {} (expected a non-empty sequence of [3, {p}, {p}] \
                 patches)",
                tokens.scales.len(),
                tokens.mask.len(),
                tokens.patches.len(),
                tokens.patch_size
            )));
        }
        if let Some(&bad) = tokens.positions.iter().find(|&&v| v >= g2) {
            return Err(EvalError::InvalidShape(format!(
                "MUSIQ: spatial position {bad} outside the {g2}-entry hash grid"
            )));
        }
        if let Some(&bad) = tokens.scales.iter().find(|&&v| v >= cfg.num_scales) {
            return Err(EvalError::InvalidShape(format!(
                "MUSIQ: scale id {bad} outside the {} scale embeddings",
                cfg.num_scales
            )));
        }
        let dev = &self.device;
        let x = self.stem_rows(&tokens.patches, l);
        let x = self.embedding.forward(x);
        let index = |v: &[usize]| {
            let v: Vec<i64> = v.iter().map(|&i| i as i64).collect();
            Tensor::<B, 1, Int>::from_data(TensorData::new(v, [l]), dev)
        };
        let mut x = x.add(
            self.position_emb
                .clone()
                .select(0, index(&tokens.positions)),
        );
        if cfg.use_scale_emb {
            x = x.add(self.scale_emb.clone().select(0, index(&tokens.scales)));
        }
        let mut x = Tensor::cat(vec![self.cls.clone(), x], 0);
        let n = l + 1;
        // Without padding tokens the mask keeps every pair: multiplying by 1 and adding 0 would
        // change no logit, so it is skipped.
        let mask = tokens.mask.contains(&false).then(|| {
            let mut m = Vec::with_capacity(n);
            m.push(1.0f32);
            m.extend(tokens.mask.iter().map(|&b| if b { 1.0 } else { 0.0 }));
            let m = Tensor::<B, 1>::from_data(TensorData::new(m, [n]), dev);
            // [1, n·n]: 1 where both tokens are real.
            let keep = m
                .clone()
                .reshape([n, 1])
                .mul(m.reshape([1, n]))
                .reshape([1, n * n]);
            let fill = keep.clone().neg().add_scalar(1.0).mul_scalar(MASK_LOGIT);
            AttentionMask { keep, fill }
        });
        for b in &self.blocks {
            x = b.forward(x, cfg.num_heads, mask.as_ref(), self.threads);
        }
        let x = layer_norm(x, &self.encoder_norm, 1e-6);
        let q = self.head.forward(x.narrow(0, 0, 1));
        let q = if self.head_softmax { softmax(q, 1) } else { q };
        Ok(q.reshape([cfg.num_class]))
    }

    /// The MUSIQ score of `image` (`[3, H, W]` in `[0, 1]`): `Σ_k q_k · k` of the head output
    /// (see the module documentation); higher is better.
    ///
    /// The sequence holds `49 + 144 + ceil(H/32)·ceil(W/32)` tokens with the default
    /// configuration and attention is quadratic in it, as in pyiqa: a 256 × 240 image takes
    /// about 0.25 s on two CPU cores with the `Flex` backend in release mode, a 12-megapixel
    /// photo (about 12 000 tokens) needs several GB for the attention matrices.
    ///
    /// The stem's patches and the transformer's query rows are split between
    /// `RAYON_NUM_THREADS` threads when that variable is set, else one thread per available
    /// core (read when the model is built; on a GPU backend nothing is split); the result does
    /// not depend on the split.
    ///
    /// # Errors
    /// As [`multiscale_patches`] (an image whose resized side would be 0 pixels).
    pub fn score_image(&self, image: &MetricImage) -> Result<f64> {
        let tokens = multiscale_patches(image, &self.config)?;
        let q = self.forward_patches(&tokens)?;
        let q: Vec<f32> = q.into_data().convert::<f32>().into_vec().map_err(|e| {
            EvalError::InvalidShape(format!("MUSIQ: cannot read the head output back: {e:?}"))
        })?;
        Ok(q.iter()
            .enumerate()
            .map(|(k, &v)| f64::from(v) * (k + 1) as f64)
            .sum())
    }
}

/// The attention mask of a sequence of `n` tokens (class token included) with padding tokens,
/// as pyiqa's `masked_fill(mask2d == 0, -1e3)`: `logit · keep + fill`.
struct AttentionMask<B: Backend> {
    /// `[1, n·n]`: 1 for a pair of real tokens, else 0.
    keep: Tensor<B, 2>,
    /// `[1, n·n]`: 0 for a pair of real tokens, else [`MASK_LOGIT`].
    fill: Tensor<B, 2>,
}

impl<B: Backend> Musiq<B> {
    /// The ResNet stem of `count` patches (`[count, 3, p, p]` row-major), each patch's output
    /// `[256, p/4, p/4]` flattened in TensorFlow's `(h, w, c)` order: `[count, 256·(p/4)²]`.
    ///
    /// The patches are independent: they are split into one run of consecutive patches per
    /// thread ([`rows_in_parallel`]), whose stems run at the same time.
    fn stem_rows(&self, patches: &[f32], count: usize) -> Tensor<B, 2> {
        let p = self.config.patch_size;
        let per = 3 * p * p;
        rows_in_parallel(self.threads, count, |first, n| {
            let x = Tensor::<B, 4>::from_data(
                TensorData::new(
                    patches[first * per..(first + n) * per].to_vec(),
                    [n, 3, p, p],
                ),
                &self.device,
            );
            self.stem(x)
        })
    }

    /// `[N, 3, p, p]` -> `[N, 256·(p/4)²]` (see [`Musiq::stem_rows`]).
    fn stem(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        // [N, 3, p, p] -> [N, 256, p/4, p/4]
        let x = max_pool_same(relu(self.root.forward(x)));
        let identity = self.proj.forward(x.clone());
        let y = relu(self.conv1.forward(x));
        let y = relu(self.conv2.forward(y));
        let y = self.conv3.forward(y);
        let x = relu(y.add(identity));
        // TensorFlow channel order: [N, h, w, c] flattened.
        channels_last_rows(x)
    }
}

/// `rows(first, count)` for consecutive runs of `0 .. total`, one run per thread (at most
/// `threads`) run at the same time, concatenated along the first axis. For work whose rows are
/// independent: the CPU backend runs element-wise operations on the calling thread.
fn rows_in_parallel<B, F>(threads: usize, total: usize, rows: F) -> Tensor<B, 2>
where
    B: Backend,
    F: Fn(usize, usize) -> Tensor<B, 2> + Sync,
{
    let parts = threads.clamp(1, total.max(1));
    if parts == 1 {
        return rows(0, total);
    }
    let chunk = total.div_ceil(parts);
    let pieces = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..total)
            .step_by(chunk)
            .map(|first| {
                let rows = &rows;
                scope.spawn(move || rows(first, chunk.min(total - first)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect::<Vec<_>>()
    });
    Tensor::cat(pieces, 0)
}

/// Whether `B` runs on the CPU (`flex`, `ndarray`), where [`Musiq`] splits work across threads
/// itself; a GPU backend gets all the work in one submission.
fn cpu_backend<B: Backend>(device: &B::Device) -> bool {
    let name = B::name(device);
    name.starts_with("flex") || name.starts_with("ndarray")
}

/// Threads for work split by [`Musiq`] itself: `RAYON_NUM_THREADS` when set to a positive number
/// (the size of the CPU backend's own thread pool), else the available parallelism.
fn worker_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
}

impl<B: Backend> Block<B> {
    /// `x`: `[n, D]`; `mask`: none when every token is real.
    ///
    /// Keys and values are computed for all tokens, then everything from the attention on is
    /// independent between query rows and runs on runs of rows in parallel
    /// ([`rows_in_parallel`]).
    fn forward(
        &self,
        x: Tensor<B, 2>,
        heads: usize,
        mask: Option<&AttentionMask<B>>,
        threads: usize,
    ) -> Tensor<B, 2> {
        let [n, d] = x.dims();
        let dh = d / heads;
        let y = layer_norm(x.clone(), &self.norm1, 1e-6);
        let split = |t: Tensor<B, 2>| {
            let [rows, _] = t.dims();
            t.reshape([rows, heads, dh]).swap_dims(0, 1)
        };
        // [heads, dh, n] and [heads, n, dh]
        let k = split(self.key.forward(y.clone())).swap_dims(1, 2);
        let v = split(self.value.forward(y.clone()));
        let q = self.query.forward(y);
        rows_in_parallel(threads, n, |first, m| {
            let attn = split(q.clone().narrow(0, first, m))
                .matmul(k.clone())
                .mul_scalar((dh as f64).powf(-0.5));
            // masked_fill(mask2d == 0, -1e3), on `[heads, m·n]` so that the mask is one row
            // shared by all heads (a contiguous sweep in the backend, where `[1, m, n]`
            // broadcast over `[heads, m, n]` is walked element by element).
            let attn = match mask {
                Some(mk) => attn
                    .reshape([heads, m * n])
                    .mul(mk.keep.clone().narrow(1, first * n, m * n))
                    .add(mk.fill.clone().narrow(1, first * n, m * n))
                    .reshape([heads, m, n]),
                None => attn,
            };
            let attn = softmax(attn, 2);
            let y = attn.matmul(v.clone()).swap_dims(0, 1).reshape([m, d]);
            let x = x.clone().narrow(0, first, m).add(self.out.forward(y));
            let y = layer_norm(x.clone(), &self.norm2, 1e-6);
            let y = self.fc2.forward(gelu(self.fc1.forward(y)));
            x.add(y)
        })
    }
}

impl<B: Backend> StdConvNorm<B> {
    /// `[N, C_in, H, W]` -> `[N, C_out, ceil(H/s), ceil(W/s)]`, convolution then GroupNorm.
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = same_pad(x, self.kernel, self.stride);
        let x = conv2d(
            x,
            self.weight.clone(),
            None,
            ConvOptions::new([self.stride; 2], [0, 0], [1, 1], 1),
        );
        group_norm(x, &self.norm, self.eps)
    }
}

/// TensorFlow `SAME` zero padding for a `kernel`/`stride` window (pyiqa's `exact_padding_2d`):
/// `pad = (ceil(n/s) − 1)·s + k − n`, the smaller half before.
fn same_pad<B: Backend>(x: Tensor<B, 4>, kernel: usize, stride: usize) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    let total = |n: usize| ((n.div_ceil(stride) - 1) * stride + kernel).saturating_sub(n);
    let (ph, pw) = (total(h), total(w));
    if ph == 0 && pw == 0 {
        return x;
    }
    x.pad(
        (pw / 2, pw - pw / 2, ph / 2, ph - ph / 2),
        PadMode::Constant(0.0),
    )
}

/// pyiqa's 3 × 3 stride-2 max pool after TensorFlow `SAME` zero padding, for `x ≥ 0` (the stem's
/// ReLU output) `[N, C, H, W]` -> `[N, C, ceil(H/2), ceil(W/2)]`.
///
/// When the padding is all after the image (even sides), the windows that reach into it are
/// cut short instead (`ceil_mode`): with `x ≥ 0` the zero padding never wins the maximum, so the
/// result is the same without building the padded copy.
fn max_pool_same<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    let (k, s) = (3, 2);
    let after_only = |n: usize| {
        let total = ((n.div_ceil(s) - 1) * s + k).saturating_sub(n);
        n >= k && total / 2 == 0 && (n - k).div_ceil(s) + 1 == n.div_ceil(s)
    };
    if after_only(h) && after_only(w) {
        max_pool2d(x, [k, k], [s, s], [0, 0], [1, 1], true)
    } else {
        max_pool2d(same_pad(x, k, s), [k, k], [s, s], [0, 0], [1, 1], false)
    }
}

/// `[N, C, H, W]` -> `[N, H·W·C]`: each image flattened in `(h, w, c)` order.
///
/// One `[C, H·W]` transpose per image, then one concatenation: the backend copies a permuted
/// 2-D view tile by tile, where a permuted `[N, C, H, W]` view is copied element by element.
fn channels_last_rows<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let [n, c, h, w] = x.dims();
    let x = x.reshape([n, c, h * w]);
    let rows = (0..n)
        .map(|i| {
            x.clone()
                .narrow(0, i, 1)
                .reshape([c, h * w])
                .transpose()
                .reshape([1, h * w * c])
        })
        .collect();
    Tensor::cat(rows, 0)
}

/// GroupNorm with [`GROUPS`] groups over `[N, C, H, W]` (biased variance).
fn group_norm<B: Backend>(x: Tensor<B, 4>, norm: &Norm<B>, eps: f64) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let g = x.reshape([n, GROUPS, (c / GROUPS) * h * w]);
    let mean = g.clone().mean_dim(2);
    let centered = g.sub(mean);
    let var = centered.clone().powi_scalar(2).mean_dim(2);
    let x = centered
        .div(var.add_scalar(eps).sqrt())
        .reshape([n * c, h * w]);
    // The scale and shift as one value per row of `[N·C, H·W]` (a `[N·C, 1]` column): the
    // backend's per-row broadcast is a contiguous sweep, where a `[1, C, 1, 1]` broadcast over
    // `[N, C, H, W]` is an element-by-element strided walk.
    let per_row = |v: &Tensor<B, 1>| {
        v.clone()
            .reshape([1, c])
            .repeat_dim(0, n)
            .reshape([n * c, 1])
    };
    x.mul(per_row(&norm.weight))
        .add(per_row(&norm.bias))
        .reshape([n, c, h, w])
}

/// LayerNorm over the last axis of `[n, D]` (biased variance).
fn layer_norm<B: Backend>(x: Tensor<B, 2>, norm: &Norm<B>, eps: f64) -> Tensor<B, 2> {
    let d = x.dims()[1];
    let mean = x.clone().mean_dim(1);
    let centered = x.sub(mean);
    let var = centered.clone().powi_scalar(2).mean_dim(1);
    centered
        .div(var.add_scalar(eps).sqrt())
        .mul(norm.weight.clone().reshape([1, d]))
        .add(norm.bias.clone().reshape([1, d]))
}

/// `StdConv`'s weight standardisation of `[out, in, kh, kw]` weights: per output channel,
/// `(w − mean) / (std + 1e-5)` with the unbiased standard deviation, computed in f64.
fn standardize(w: &[f32], out: usize) -> Vec<f32> {
    let per = w.len() / out;
    let mut res = Vec::with_capacity(w.len());
    for chunk in w.chunks(per) {
        let mean = chunk.iter().map(|&v| f64::from(v)).sum::<f64>() / per as f64;
        let var = chunk
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / (per as f64 - 1.0).max(1.0);
        let denom = var.sqrt() + 1e-5;
        res.extend(
            chunk
                .iter()
                .map(|&v| ((f64::from(v) - mean) / denom) as f32),
        );
    }
    res
}

impl<B: Backend> crate::compare::ImageMetric for Musiq<B> {
    fn metric(&self) -> Metric {
        Metric::Musiq
    }

    fn score(&self, image: &MetricImage) -> Result<f64> {
        self.score_image(image)
    }
}

/// The usual file names of pyiqa's MUSIQ checkpoints (`default_model_urls` of
/// `pyiqa.archs.musiq_arch`), by pyiqa metric name.
pub const CHECKPOINTS: [(&str, &str); 4] = [
    ("musiq", "musiq_koniq_ckpt-e95806b9.pth"),
    ("musiq-spaq", "musiq_spaq_ckpt-358bb6af.pth"),
    ("musiq-paq2piq", "musiq_paq2piq_ckpt-364c0c84.pth"),
    ("musiq-ava", "musiq_ava_ckpt-e8d3f067.pth"),
];

#[cfg(test)]
mod tests {
    use burn::backend::Flex;

    use super::*;

    #[test]
    fn flex_counts_as_a_cpu_backend() {
        assert!(cpu_backend::<Flex>(&Default::default()));
    }
}
