//! `[init]`: loading pretrained weights into the model before training.

use burn::module::Module;
use burn::tensor::backend::Backend;
use framer_backbones::{LoadOptions, LoadReport, load_safetensors};

use super::EngineError;
use crate::schedule::{InitConfig, WeightLayout, glob_matches};

/// How many uncovered names an error lists before it counts the rest.
const MAX_LISTED: usize = 20;

/// Loads `init.weights` into `model`: strictly, except for the parameters `allow_missing` covers
/// (they keep their current values) and the file tensors `allow_unused` covers.
///
/// # Errors
/// [`EngineError::Model`] naming the file: the loader's own error (unreadable or truncated file,
/// tensors of the wrong shape with expected and found shapes, missing and unused keys with
/// near-miss suggestions), or the missing parameters and unused file tensors no glob covers.
pub fn load_initial_weights<B: Backend, M: Module<B>>(
    model: &mut M,
    init: &InitConfig,
) -> Result<LoadReport, EngineError> {
    let options = LoadOptions {
        pytorch_layout: init.layout == WeightLayout::Diffusers,
        allow_missing: !init.allow_missing.is_empty(),
        allow_unused: !init.allow_unused.is_empty(),
    };
    let report = load_safetensors(model, &init.weights, &options)
        .map_err(|e| EngineError::Model(format!("[init] {e}")))?;
    let uncovered = |names: &[String], globs: &[String]| -> Vec<String> {
        names.iter().filter(|n| !globs.iter().any(|g| glob_matches(g, n))).cloned().collect()
    };
    let mut problems = Vec::new();
    for (what, key, names) in [
        ("model parameter(s) missing from the file", "allow_missing", uncovered(&report.missing, &init.allow_missing)),
        ("file tensor(s) that match no model parameter", "allow_unused", uncovered(&report.unused, &init.allow_unused)),
    ] {
        if names.is_empty() {
            continue;
        }
        problems.push(format!("{} {what}, not covered by `init.{key}`:", names.len()));
        problems.extend(names.iter().take(MAX_LISTED).map(|n| format!("  `{n}`")));
        if names.len() > MAX_LISTED {
            problems.push(format!("  … and {} more", names.len() - MAX_LISTED));
        }
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(EngineError::Model(format!(
            "[init] {}:\n{}",
            init.weights.display(),
            problems.join("\n")
        )))
    }
}
