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

mod crops;
mod layers;
mod model;
mod state_dict;
mod swin;
mod vit;

use std::path::Path;

use crate::error::{IqaError, Result};

pub use crops::uniform_crops;
use layers::PreNormBlock;
pub use model::Maniqa;
use state_dict::Source;
pub use state_dict::{expected_tensors, required_tensors};

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
    /// [`IqaError::InvalidArgument`] naming the field that does not fit.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(IqaError::InvalidArgument(format!("MANIQA config: {m}")));
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
