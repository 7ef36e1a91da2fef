//! `[lora]`: train low-rank adapters instead of the model's weights.
//!
//! ```toml
//! [lora]
//! rank = 4                                    # r
//! alpha = 4.0                                 # ΔW is scaled by alpha / rank (default: alpha = rank)
//! targets = ["*.attn.to_q", "*.attn.to_v"]    # globs over Linear / Conv2d layer paths
//! ```
//!
//! The model's own weights are frozen (all of them, or all but `[train] trainable`'s selection
//! when it is given); the FRAMER heads train as always. See [`crate::lora`] for the adapters and
//! [`crate::engine`] for how a step uses them; checkpoints keep the adapters in `lora.mpk`, and
//! `sr` merges them into the weights.

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::validate::{Ctx, Result};

/// `[lora]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraSection {
    /// Rank `r` of every adapter.
    #[serde(alias = "r")]
    pub rank: Spanned<i64>,
    /// `ΔW` is scaled by `alpha / rank` (default: `alpha = rank`, scale 1).
    #[serde(default, alias = "lora_alpha")]
    pub alpha: Option<Spanned<f64>>,
    /// Globs over the adapted layers' paths (`*.to_q`) or their weights' (`*.to_q.weight`).
    #[serde(alias = "target_modules")]
    pub targets: Spanned<Vec<String>>,
}

/// `[lora]`, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoraSettings {
    /// Rank of every adapter.
    pub rank: usize,
    /// Scale numerator.
    pub alpha: f64,
    /// Globs over layer paths.
    pub targets: Vec<String>,
}

impl LoraSettings {
    /// The adapters' configuration.
    pub fn config(&self) -> crate::lora::LoraConfig {
        crate::lora::LoraConfig::new(self.rank, self.targets.clone()).with_alpha(self.alpha)
    }
}

/// Checks `[lora]`: a positive rank and alpha, at least one target, and no EMA (the EMA averages
/// the model's weights, which LoRA leaves frozen).
pub(super) fn resolve(section: &LoraSection, ema: bool, ctx: &Ctx<'_>) -> Result<LoraSettings> {
    let rank = ctx.count("lora.rank", &section.rank, 1)? as usize;
    let alpha = match &section.alpha {
        Some(a) => ctx.positive("lora.alpha", a)?,
        None => rank as f64,
    };
    if section.targets.get_ref().is_empty() {
        return Err(ctx
            .err(section.targets.span(), "lora.targets", "`lora.targets` is empty: no layer would be adapted")
            .with_help("globs over layer paths as `framer check` prints them, e.g. [\"*.attn.to_q\", \"*.attn.to_v\"]"));
    }
    if ema {
        return Err(ctx
            .err(section.rank.span(), "lora", "`[lora]` with `[train] ema_decay`: the EMA averages the model's weights, which LoRA keeps frozen")
            .with_help("remove `ema_decay` from [train]"));
    }
    Ok(LoraSettings { rank, alpha, targets: section.targets.get_ref().clone() })
}
