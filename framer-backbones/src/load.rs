//! Loading diffusers-named safetensors files with burn's store.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::backend::Backend;

use crate::BackboneError;

mod header;

/// Regex key rewrites from diffusers state-dict keys to this crate's module paths, applied in
/// order. Only heterogeneous `ModuleList`s of diffusers differ: `to_out.0` (a Linear followed by
/// Dropout) is the field `to_out`, and the feed-forward's `net.0.proj` / `net.2` are the fields
/// `net_0` / `net_2`; and the norms' `weight`/`bias` are burn's `gamma`/`beta` (the U-Nets' group
/// and layer norms `norm`, `norm1`, `norm2`, `norm3`, `group_norm`, `conv_norm_out`, the DiT's
/// query/key RMS norms `norm_q`, `norm_k`, `norm_added_q`, `norm_added_k`). Everything else (`conv_in`, `down_blocks.0.resnets.1.conv1`,
/// `transformer_blocks.3.attn.to_q_control`, …) is identical.
pub const DIFFUSERS_KEY_REMAP: &[(&str, &str)] = &[
    (r"^(.*)\.to_out\.0\.(weight|bias)$", "$1.to_out.$2"),
    (r"^(.*)\.net\.0\.proj\.(weight|bias)$", "$1.net_0.$2"),
    (r"^(.*)\.net\.2\.(weight|bias)$", "$1.net_2.$2"),
    (r"^(.*)\.(norm_q|norm_k|norm_added_q|norm_added_k)\.weight$", "$1.$2.gamma"),
    (r"^(.*\.)?(norm|norm1|norm2|norm3|group_norm|conv_norm_out)\.weight$", "${1}${2}.gamma"),
    (r"^(.*\.)?(norm|norm1|norm2|norm3|group_norm|conv_norm_out)\.bias$", "${1}${2}.beta"),
];

/// Shape (or dtype) errors listed one by one; a file for another model size would otherwise list
/// every tensor. Missing and unused keys are always listed in full.
const MAX_TENSOR_ERRORS: usize = 5;

/// How strict [`load_safetensors`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// The file uses PyTorch layouts and names (diffusers files): Linear weights are
    /// `[out, in]` and norms have `weight`/`bias`. `false` reads burn's own layout (files written
    /// by `save_into` with a plain `SafetensorsStore`).
    pub pytorch_layout: bool,
    /// Accept model parameters that the file does not provide (they keep their current values).
    pub allow_missing: bool,
    /// Accept file tensors that match no model parameter (e.g. the text stream of an SD3 checkpoint).
    pub allow_unused: bool,
}

impl Default for LoadOptions {
    /// Strict loading of a diffusers (PyTorch-layout) file.
    fn default() -> Self {
        Self { pytorch_layout: true, allow_missing: false, allow_unused: false }
    }
}

/// What [`load_safetensors`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Model paths that received a tensor.
    pub applied: Vec<String>,
    /// Model paths the file did not provide.
    pub missing: Vec<String>,
    /// File keys (after [`DIFFUSERS_KEY_REMAP`]) that match no model parameter.
    pub unused: Vec<String>,
}

/// Loads `path` into `model`, mapping diffusers keys with [`DIFFUSERS_KEY_REMAP`].
///
/// Fails with [`BackboneError::Load`] naming the file when it cannot be read or is truncated (the
/// first tensor whose bytes lie past the end is named), and otherwise lists every problem
/// together, one per line: the tensors whose shape disagrees with the model (the first five: file
/// key, model path where it differs, expected and found shapes in the file's layout), every model parameter the file lacks
/// (with the closest unused file key as a suggestion when one is a near miss) and every file
/// tensor that matches no parameter, the last two unless `options` allows them.
pub fn load_safetensors<B: Backend, M: Module<B>>(
    model: &mut M,
    path: impl AsRef<Path>,
    options: &LoadOptions,
) -> Result<LoadReport, BackboneError> {
    let path = path.as_ref();
    let fail = |reason: String| BackboneError::Load { path: PathBuf::from(path), reason };
    if !path.is_file() {
        return Err(fail("no such file".into()));
    }
    let header = header::read(path).map_err(fail)?;
    let mut store = SafetensorsStore::from_file(path).allow_partial(true).validate(false);
    for (from, to) in DIFFUSERS_KEY_REMAP {
        store = store.with_key_remapping(*from, *to);
    }
    if options.pytorch_layout {
        store = store.with_from_adapter(PyTorchToBurnAdapter);
    }
    let result = model.load_from(&mut store).map_err(|e| fail(shorten(e.to_string())))?;
    let file_key = header::FileKeys::new(&header);
    let mut problems: Vec<String> =
        result.errors.iter().take(MAX_TENSOR_ERRORS).map(|e| file_key.describe(e)).collect();
    if result.errors.len() > MAX_TENSOR_ERRORS {
        problems.push(format!("… and {} more tensor(s) that could not be applied", result.errors.len() - MAX_TENSOR_ERRORS));
    }
    let report = LoadReport {
        applied: result.applied,
        missing: result.missing.into_iter().map(|(p, _)| p).collect(),
        unused: result.unused,
    };
    if !options.allow_missing && !report.missing.is_empty() {
        problems.push(format!("{} model parameter(s) missing from the file:", report.missing.len()));
        for missing in &report.missing {
            let hint = header::near_miss(missing, &report.unused)
                .map(|k| format!(" (did you mean file key `{}`?)", file_key.original(k)))
                .unwrap_or_default();
            problems.push(format!("  `{missing}`{hint}"));
        }
    }
    if !options.allow_unused && !report.unused.is_empty() {
        problems.push(format!("{} file tensor(s) match no model parameter:", report.unused.len()));
        problems.extend(report.unused.iter().map(|k| format!("  `{}`", file_key.original(k))));
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(fail(format!("\n{}", problems.join("\n"))))
    }
}

/// Keeps error messages readable when burn lists every mismatched tensor.
fn shorten(mut message: String) -> String {
    const MAX: usize = 600;
    if message.len() > MAX {
        let mut cut = MAX;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str(" …");
    }
    message
}
