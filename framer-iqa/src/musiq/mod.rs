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

mod layers;
mod model;
mod patches;

use crate::error::{IqaError, Result};

pub use model::Musiq;
pub use patches::{MultiscalePatches, multiscale_patches};

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
    /// [`IqaError::InvalidArgument`] naming the setting: a zero size, a patch size that is not
    /// a multiple of 4, heads that do not divide the width, fewer scale-embedding rows than
    /// scales, a zero longer-side length.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(IqaError::InvalidArgument(format!("MUSIQ config: {m}")));
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

/// The usual file names of pyiqa's MUSIQ checkpoints (`default_model_urls` of
/// `pyiqa.archs.musiq_arch`), by pyiqa metric name.
pub const CHECKPOINTS: [(&str, &str); 4] = [
    ("musiq", "musiq_koniq_ckpt-e95806b9.pth"),
    ("musiq-spaq", "musiq_spaq_ckpt-358bb6af.pth"),
    ("musiq-paq2piq", "musiq_paq2piq_ckpt-364c0c84.pth"),
    ("musiq-ava", "musiq_ava_ckpt-e8d3f067.pth"),
];
