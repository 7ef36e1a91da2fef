//! `[init]`: start training from pretrained weights.
//!
//! ```toml
//! [init]
//! weights = "sd35/transformer/diffusion_pytorch_model.safetensors"
//! layout = "diffusers"            # PyTorch layouts and diffusers names; "burn" for burn's own files
//! allow_missing = ["*control*"]   # model parameters the file may lack: they keep their seeded draws
//! allow_unused = []               # file tensors that may match no parameter
//! ```
//!
//! The weights are loaded into the model of `[model]` right after it is built, before the FRAMER
//! heads are made and before training starts; a resumed run takes its checkpoint instead. Loading
//! is strict: a tensor of the wrong shape, a parameter the file lacks or a file tensor no parameter
//! takes is an error naming the file and the tensor, unless a glob of `allow_missing` /
//! `allow_unused` covers it (parameter paths as `framer check` prints them; file keys as written in
//! the file).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::validate::{Ctx, Result};

/// How the file names and lays out its tensors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightLayout {
    /// diffusers / PyTorch: Linear weights `[out, in]`, norms `weight`/`bias`, diffusers' key
    /// names ([`framer_backbones::DIFFUSERS_KEY_REMAP`]).
    #[default]
    Diffusers,
    /// burn's own layout and names (a file written by burn's `SafetensorsStore`).
    Burn,
}

/// `[init]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitSection {
    /// The safetensors file.
    #[serde(alias = "pretrained")]
    pub weights: Spanned<PathBuf>,
    /// `"diffusers"` (default) or `"burn"`.
    #[serde(default)]
    pub layout: WeightLayout,
    /// Globs over model parameter paths that the file may lack.
    #[serde(default)]
    pub allow_missing: Vec<String>,
    /// Globs over file keys that may match no parameter.
    #[serde(default)]
    pub allow_unused: Vec<String>,
}

/// `[init]`, resolved (absolute path).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InitConfig {
    /// The safetensors file.
    pub weights: PathBuf,
    /// Its layout.
    pub layout: WeightLayout,
    /// Globs over model parameter paths that the file may lack.
    pub allow_missing: Vec<String>,
    /// Globs over file keys that may match no parameter.
    pub allow_unused: Vec<String>,
}

/// Checks that `[init] weights` is a file.
pub(super) fn resolve(section: &InitSection, ctx: &Ctx<'_>) -> Result<InitConfig> {
    let help = "a .safetensors file; paths are relative to the schedule file's folder";
    let weights = ctx.existing("init.weights", &section.weights, false, help)?;
    Ok(InitConfig {
        weights: super::absolute(weights),
        layout: section.layout,
        allow_missing: section.allow_missing.clone(),
        allow_unused: section.allow_unused.clone(),
    })
}
