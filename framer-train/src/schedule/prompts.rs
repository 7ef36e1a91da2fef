//! `[prompts]`: condition a text-conditioned model on precomputed prompt embeddings.
//!
//! ```toml
//! [prompts]
//! dir = "embeddings"                 # <photo file stem>.safetensors per training photo
//! null = "embeddings/null.safetensors"
//! null_text_ratio = 0.2              # the share of draws that see the null prompt instead
//! ```
//!
//! Each file holds the text encoders' output for one prompt as diffusers' `encode_prompt` returns
//! it, batch dimension dropped: `prompt_embeds` `[M, joint_attention_dim]` and
//! `pooled_prompt_embeds` `[pooled_projection_dim]` (f32), the reference's `make_embedding.py`
//! layout. `null` holds the empty prompt's embeddings; `framer sr` conditions on it. Every draw
//! of training sees its photo's prompt, or, with probability `null_text_ratio` (drawn from the
//! seed and the draw), the null prompt. See [`crate::engine::prompts`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::validate::{Ctx, Result};

/// `[prompts]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptsSection {
    /// Folder of per-photo embedding files.
    pub dir: Spanned<PathBuf>,
    /// The null (empty) prompt's embedding file.
    pub null: Spanned<PathBuf>,
    /// Probability that a draw sees the null prompt (default 0).
    #[serde(default)]
    pub null_text_ratio: Option<Spanned<f64>>,
}

/// `[prompts]`, resolved (absolute paths).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptsConfig {
    /// Folder of per-photo embedding files (`<photo file stem>.safetensors`).
    pub dir: PathBuf,
    /// The null prompt's embedding file.
    pub null: PathBuf,
    /// Probability in `[0, 1]` that a draw sees the null prompt.
    pub null_text_ratio: f64,
}

/// Checks that the folder and the null file exist and that the ratio is a probability.
pub(super) fn resolve(section: &PromptsSection, ctx: &Ctx<'_>) -> Result<PromptsConfig> {
    let help = "paths are relative to the schedule file's folder; `framer` reads `prompt_embeds` and \
                `pooled_prompt_embeds` from each file";
    let dir = ctx.existing("prompts.dir", &section.dir, true, help)?;
    let null = ctx.existing("prompts.null", &section.null, false, help)?;
    let null_text_ratio = match &section.null_text_ratio {
        Some(v) => {
            let x = ctx.finite("prompts.null_text_ratio", v)?;
            if !(0.0..=1.0).contains(&x) {
                return Err(ctx.err(
                    v.span(),
                    "prompts.null_text_ratio",
                    format!("expected `prompts.null_text_ratio` in [0, 1] (a probability), got {x}"),
                ));
            }
            x
        }
        None => 0.0,
    };
    Ok(PromptsConfig {
        dir: super::absolute(dir),
        null: super::absolute(null),
        null_text_ratio,
    })
}
