//! FRAMER's analyses of a trained model.
//!
//! # Per-layer spectra over the denoising steps (the paper's Fig. 2 and Fig. 7)
//!
//! For each denoising step the caller runs the model with its student heads and hands over the
//! clean-image estimates of every student layer and of the final layer (the teacher), all
//! `[batch, channels, H, W]`. [`SpectralAnalyzer`] computes, per layer, with FRAMER's band masks
//! built from the teacher's spectrum ([`framer::BandMaskKind`]: the reference's magnitude
//! quantile, or the paper's radial rings):
//!
//! - the **band energy** `E = mean_c[ Σ_hw |X|·M / (Σ_hw M + 1e-9) ]`, the mean DFT magnitude in
//!   the band, exactly FAW's `E_band` (optionally of `log(1 + |X|)`, as the Fig. 2 caption);
//! - the **cosine similarity** of the flattened band magnitudes `|X|·M` (all `C·H·W`
//!   coefficients) to the final layer's, as FAM's alignment score before the ReLU.
//!
//! Values are averaged over the samples of the batch and over every call for the same step
//! (so several images can be added one at a time). [`SpectralAnalysis`] writes a CSV and PNG
//! plots: each quantity against the layer index with one line per step, and against the step
//! with one line per layer.
//!
//! # FAW and FAM over training (the paper's Fig. 9)
//!
//! [`read_training_weights`] reads the training engine's metrics log, **JSON Lines** (one JSON
//! object per line). The schema this module expects:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `step` | non-negative integer | optimiser step of the record (required when any field below is present) |
//! | `faw_low`, `faw_high` | array of numbers, one per student layer | FAW weight of each layer, mean over the batch |
//! | `fam_low`, `fam_high` | array of numbers, one per student layer | FAM gate of each layer, mean over the batch |
//!
//! - Other fields (`loss`, `lr`, …) are ignored; records with none of the four weight fields
//!   (validation lines, for example) and blank lines are skipped.
//! - A record may carry any non-empty subset of the four (e.g. only `fam_*` when FAW is off).
//! - Every array has the same length in every record. `null` elements (how `serde_json` writes
//!   non-finite numbers) are read as NaN.
//!
//! The training engine writes these fields (its own log type, `framer_train::engine::metrics`);
//! this module only reads them. Per-layer arrays need the JSON Lines log: a CSV log cannot carry
//! them.
//!
//! [`TrainingWeights`] writes a CSV and, per field and for the effective weights `faw·fam`, a
//! heat map (layer × step) and a line plot (a few layers over the steps).

use std::path::{Path, PathBuf};

use crate::error::{EvalError, Result};

mod spectra;
mod weights;

pub use spectra::{
    ENERGY_EPS, LayerBands, MAX_LINES, NORM_EPS, SpectralAnalysis, SpectralAnalyzer,
    SpectralConfig, StepBands, layer_band_statistics, spectra_comparison_plots, spread_indices,
};
pub use weights::{
    TrainingWeights, WEIGHT_FIELDS, WeightRecord, parse_training_weights, read_training_weights,
};

/// Writes `text` to `dir/name`, creating `dir`; the file's path.
///
/// # Errors
/// [`EvalError::Write`] naming the folder or the file.
fn write_csv(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|source| EvalError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let csv = dir.join(name);
    std::fs::write(&csv, text).map_err(|source| EvalError::Write {
        path: csv.clone(),
        source,
    })?;
    Ok(csv)
}

#[cfg(test)]
mod tests;
