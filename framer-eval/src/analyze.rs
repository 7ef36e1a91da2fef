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
//! [`LayerWeights`] serialises exactly the four arrays (flatten it into the engine's record) and
//! [`LayerWeights::from_diagnostics`] builds them from the loss's [`framer::FramerDiagnostics`];
//! [`WeightLogLine`] adds the step. Per-layer arrays need the JSON Lines log: a CSV log cannot
//! carry them.
//!
//! [`TrainingWeights`] writes a CSV and, per field and for the effective weights `faw·fam`, a
//! heat map (layer × step) and a line plot (a few layers over the steps).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, backend::Backend};
use framer::{BandMaskKind, FramerDiagnostics};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::plot::{Heatmap, LinePlot, Series};

/// The `ε` of FAW's band mean (`Σ M + 1e-9`).
pub const ENERGY_EPS: f64 = 1e-9;
/// The `ε` of `F.normalize` in the cosine similarity.
pub const NORM_EPS: f64 = 1e-12;
/// Most lines drawn in one plot; longer lists are subsampled evenly (first and last kept).
pub const MAX_LINES: usize = 8;

/// Settings of the spectral analysis; the default is the reference's quantile mask (0.2) on
/// plain magnitudes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SpectralConfig {
    /// How the teacher spectrum is split into bands (reference: quantile 0.2).
    pub mask: BandMaskKind,
    /// Use `log(1 + |X|)` instead of `|X|` for energies and cosines (the Fig. 2 caption). The
    /// mask is always built from `|X|`.
    pub log_magnitude: bool,
}

/// The band statistics of one layer (means over the samples added).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct LayerBands {
    /// Mean DFT magnitude in the low band (LF).
    pub energy_low: f64,
    /// Mean DFT magnitude in the high band (HF).
    pub energy_high: f64,
    /// Cosine similarity of the low-band magnitudes to the final layer's.
    pub cosine_low: f64,
    /// Cosine similarity of the high-band magnitudes to the final layer's.
    pub cosine_high: f64,
}

/// The band statistics of every layer at one denoising step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepBands {
    /// Index of the denoising step (0 = first step, the noisiest).
    pub step: usize,
    /// The model timestep or noise level of that step, as given by the caller.
    pub timestep: f64,
    /// Number of samples averaged.
    pub samples: usize,
    /// One entry per layer: the students in order, then the final layer.
    pub layers: Vec<LayerBands>,
}

/// Per-sample band statistics of all layers, computed on the device.
///
/// # Shapes
/// - `teacher`: `[B, C, H, W]`, the final layer's clean estimate
/// - `students`: each `[B, C, H, W]`
/// - returns `[L + 1][B]`: one row per student then one for the teacher, one entry per sample
///
/// # Errors
/// [`EvalError::InvalidShape`] if a student's shape differs from the teacher's or a dimension
/// is zero; [`EvalError::InvalidArgument`] for a mask cutoff outside (0, 1).
pub fn layer_band_statistics<B: Backend>(
    teacher: Tensor<B, 4>,
    students: &[Tensor<B, 4>],
    config: &SpectralConfig,
) -> Result<Vec<Vec<LayerBands>>> {
    config
        .mask
        .validate()
        .map_err(|e| EvalError::InvalidArgument(e.to_string()))?;
    let dims = teacher.dims();
    if dims.contains(&0) {
        return Err(EvalError::InvalidShape(format!(
            "teacher prediction has shape {dims:?}; every dimension must be at least 1"
        )));
    }
    for (i, s) in students.iter().enumerate() {
        if s.dims() != dims {
            return Err(EvalError::InvalidShape(format!(
                "student layer {i} has shape {:?}, the final layer {dims:?}",
                s.dims()
            )));
        }
    }
    let [b, c, h, w] = dims;
    let l = students.len() + 1;
    let mut all: Vec<Tensor<B, 4>> = students.to_vec();
    all.push(teacher);
    // one DFT for every layer: [L·B, C, H, W]
    let stacked = Tensor::cat(all, 0);
    let magnitude = framer::dft::magnitude_spectrum(stacked);
    let teacher_mag = magnitude.clone().narrow(0, (l - 1) * b, b);
    let low = config.mask.low_mask(teacher_mag);
    let high = low.clone().neg().add_scalar(1.0);
    let values = if config.log_magnitude {
        magnitude.add_scalar(1.0).log()
    } else {
        magnitude
    };
    let values = values.reshape([l, b, c, h, w]);
    let band = |mask: Tensor<B, 4>| -> Result<(Vec<f32>, Vec<f32>)> {
        let mask5 = mask.clone().unsqueeze_dim::<5>(0).expand([l, b, c, h, w]);
        let masked = values.clone() * mask5; // [L, B, C, H, W]
        // energy: per channel Σ_hw / (Σ_hw M + ε), mean over channels → [L, B]
        let count = mask
            .sum_dim(3)
            .sum_dim(2)
            .reshape([1, b, c])
            .add_scalar(ENERGY_EPS);
        let energy = (masked.clone().sum_dim(4).sum_dim(3).reshape([l, b, c]) / count)
            .mean_dim(2)
            .reshape([l * b]);
        // cosine to the teacher (the last layer) over all C·H·W coefficients → [L, B]
        let flat = masked.reshape([l, b, c * h * w]);
        let t = flat.clone().narrow(0, l - 1, 1);
        let dot = (flat.clone() * t.clone()).sum_dim(2).reshape([l, b]);
        let norm = flat
            .powi_scalar(2)
            .sum_dim(2)
            .sqrt()
            .clamp_min(NORM_EPS)
            .reshape([l, b]);
        let t_norm = t
            .powi_scalar(2)
            .sum_dim(2)
            .sqrt()
            .clamp_min(NORM_EPS)
            .reshape([1, b]);
        let cosine = (dot / (norm * t_norm)).reshape([l * b]);
        Ok((host(energy)?, host(cosine)?))
    };
    let (e_low, c_low) = band(low)?;
    let (e_high, c_high) = band(high)?;
    Ok((0..l)
        .map(|layer| {
            (0..b)
                .map(|s| {
                    let i = layer * b + s;
                    LayerBands {
                        energy_low: e_low[i] as f64,
                        energy_high: e_high[i] as f64,
                        cosine_low: c_low[i] as f64,
                        cosine_high: c_high[i] as f64,
                    }
                })
                .collect()
        })
        .collect())
}

fn host<B: Backend>(x: Tensor<B, 1>) -> Result<Vec<f32>> {
    x.into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| EvalError::InvalidShape(format!("cannot read tensor data: {e:?}")))
}

/// Accumulates per-layer band statistics over denoising steps and images.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::{Tensor, TensorData};
/// use framer_eval::analyze::{SpectralAnalyzer, SpectralConfig};
///
/// let device = Default::default();
/// let mut analyzer = SpectralAnalyzer::new(SpectralConfig::default());
/// for (step, t) in [(0, 1.0), (1, 0.5)] {
///     // the caller's model: clean estimates of two student layers and the final layer
///     let x = |k: usize| {
///         let v: Vec<f32> = (0..192).map(|i| ((i * 37 + k * 11) % 101) as f32 / 101.0).collect();
///         Tensor::<Flex, 4>::from_data(TensorData::new(v, [1, 3, 8, 8]), &device)
///     };
///     analyzer.add(step, t, x(0), &[x(1), x(2)])?;
/// }
/// let analysis = analyzer.finish()?;
/// assert_eq!(analysis.layers, ["layer 0", "layer 1", "final"]);
/// // the final layer with itself
/// assert!((analysis.steps[1].layers[2].cosine_high - 1.0).abs() < 1e-5);
/// # Ok::<(), framer_eval::EvalError>(())
/// ```
#[derive(Debug, Clone)]
pub struct SpectralAnalyzer {
    config: SpectralConfig,
    students: Option<usize>,
    steps: BTreeMap<usize, (f64, usize, Vec<LayerBands>)>,
}

impl SpectralAnalyzer {
    /// An empty analyzer.
    pub fn new(config: SpectralConfig) -> Self {
        Self {
            config,
            students: None,
            steps: BTreeMap::new(),
        }
    }

    /// Adds the predictions of one denoising step (see [`layer_band_statistics`] for shapes).
    /// The timestep of a step is the one given first.
    ///
    /// # Errors
    /// Those of [`layer_band_statistics`], and [`EvalError::InvalidShape`] if the number of
    /// student layers differs from an earlier call.
    pub fn add<B: Backend>(
        &mut self,
        step: usize,
        timestep: f64,
        teacher: Tensor<B, 4>,
        students: &[Tensor<B, 4>],
    ) -> Result<()> {
        if let Some(n) = self.students
            && n != students.len()
        {
            return Err(EvalError::InvalidShape(format!(
                "step {step}: {} student layers given, earlier calls gave {n}",
                students.len()
            )));
        }
        let stats = layer_band_statistics(teacher, students, &self.config)?;
        self.students = Some(students.len());
        let layers = stats.len();
        let entry = self
            .steps
            .entry(step)
            .or_insert_with(|| (timestep, 0, vec![LayerBands::default(); layers]));
        for (acc, per_sample) in entry.2.iter_mut().zip(&stats) {
            for s in per_sample {
                acc.energy_low += s.energy_low;
                acc.energy_high += s.energy_high;
                acc.cosine_low += s.cosine_low;
                acc.cosine_high += s.cosine_high;
            }
        }
        entry.1 += stats.first().map_or(0, Vec::len);
        Ok(())
    }

    /// The means per step and layer.
    ///
    /// # Errors
    /// [`EvalError::Empty`] if nothing was added.
    pub fn finish(self) -> Result<SpectralAnalysis> {
        let students = self
            .students
            .ok_or_else(|| EvalError::Empty("analyse: no denoising step was added".into()))?;
        let mut layers: Vec<String> = (0..students).map(|i| format!("layer {i}")).collect();
        layers.push("final".into());
        let steps = self
            .steps
            .into_iter()
            .map(|(step, (timestep, samples, sums))| {
                let n = samples.max(1) as f64;
                StepBands {
                    step,
                    timestep,
                    samples,
                    layers: sums
                        .into_iter()
                        .map(|s| LayerBands {
                            energy_low: s.energy_low / n,
                            energy_high: s.energy_high / n,
                            cosine_low: s.cosine_low / n,
                            cosine_high: s.cosine_high / n,
                        })
                        .collect(),
                }
            })
            .collect();
        Ok(SpectralAnalysis {
            config: self.config,
            layers,
            steps,
        })
    }
}

/// The result of a [`SpectralAnalyzer`].
#[derive(Debug, Clone, PartialEq)]
pub struct SpectralAnalysis {
    /// The settings used.
    pub config: SpectralConfig,
    /// Layer names: `layer 0`, …, then `final`.
    pub layers: Vec<String>,
    /// One entry per denoising step, in step order.
    pub steps: Vec<StepBands>,
}

/// The four quantities of a [`LayerBands`], with file stems and axis labels.
const QUANTITIES: [(&str, &str); 4] = [
    ("energy_low", "low-band (LF) energy"),
    ("energy_high", "high-band (HF) energy"),
    ("cosine_low", "LF cosine similarity to the final layer"),
    ("cosine_high", "HF cosine similarity to the final layer"),
];

fn quantity(b: &LayerBands, k: usize) -> f64 {
    [b.energy_low, b.energy_high, b.cosine_low, b.cosine_high][k]
}

/// At most `max` indices of `0..n`, evenly spread, first and last included.
pub fn spread_indices(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    if max < 2 {
        return if max == 1 { vec![0] } else { Vec::new() };
    }
    let mut out: Vec<usize> = (0..max)
        .map(|k| ((k as f64) * (n - 1) as f64 / (max - 1) as f64).round() as usize)
        .collect();
    out.dedup();
    out
}

impl SpectralAnalysis {
    /// The CSV, long format: header
    /// `step,timestep,samples,layer,layer_name,energy_low,energy_high,cosine_low,cosine_high`,
    /// one row per step and layer.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "step,timestep,samples,layer,layer_name,energy_low,energy_high,cosine_low,cosine_high\n",
        );
        for s in &self.steps {
            for (i, b) in s.layers.iter().enumerate() {
                out.push_str(&format!(
                    "{},{},{},{},{},{},{},{},{}\n",
                    s.step,
                    s.timestep,
                    s.samples,
                    i,
                    self.layers[i],
                    b.energy_low,
                    b.energy_high,
                    b.cosine_low,
                    b.cosine_high
                ));
            }
        }
        out
    }

    /// The plots, not yet drawn: for each quantity (`energy_low`, `energy_high`, `cosine_low`,
    /// `cosine_high`), `<quantity>_by_layer` (x = layer, one line per step, at most
    /// [`MAX_LINES`]) and `<quantity>_over_steps` (x = step, one line per layer, at most
    /// [`MAX_LINES`]). Returns `(file stem, plot)` pairs.
    pub fn plots(&self) -> Vec<(String, LinePlot)> {
        let mask = match self.config.mask {
            BandMaskKind::Quantile { cutoff } => format!("quantile mask {cutoff}"),
            BandMaskKind::Radial { radius } => format!("radial mask {radius}"),
        };
        let log = if self.config.log_magnitude {
            ", log(1+|F|)"
        } else {
            ""
        };
        let mut plots = Vec::new();
        for (k, (stem, label)) in QUANTITIES.iter().enumerate() {
            let by_layer: Vec<Series> = spread_indices(self.steps.len(), MAX_LINES)
                .into_iter()
                .map(|si| {
                    let s = &self.steps[si];
                    Series::new(
                        format!("step {} (t={:.3})", s.step, s.timestep),
                        s.layers
                            .iter()
                            .enumerate()
                            .map(|(i, b)| (i as f64, quantity(b, k)))
                            .collect(),
                    )
                })
                .collect();
            plots.push((
                format!("{stem}_by_layer"),
                LinePlot::new(
                    format!("{label} per layer ({mask}{log})"),
                    "layer (last = final)",
                    *label,
                )
                .with_series(by_layer)
                .with_markers(true),
            ));
            let over_steps: Vec<Series> = spread_indices(self.layers.len(), MAX_LINES)
                .into_iter()
                .map(|li| {
                    Series::new(
                        self.layers[li].clone(),
                        self.steps
                            .iter()
                            .map(|s| (s.step as f64, quantity(&s.layers[li], k)))
                            .collect(),
                    )
                })
                .collect();
            plots.push((
                format!("{stem}_over_steps"),
                LinePlot::new(
                    format!("{label} over denoising steps ({mask}{log})"),
                    "denoising step",
                    *label,
                )
                .with_series(over_steps)
                .with_markers(self.steps.len() <= 50),
            ));
        }
        plots
    }

    /// Writes `spectra.csv` and the PNGs of [`SpectralAnalysis::plots`] into `dir` (created if
    /// needed) and returns their paths.
    ///
    /// # Errors
    /// [`EvalError::Write`], [`EvalError::Plot`] naming the file.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|source| EvalError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let csv = dir.join("spectra.csv");
        std::fs::write(&csv, self.to_csv()).map_err(|source| EvalError::Write {
            path: csv.clone(),
            source,
        })?;
        let mut paths = vec![csv];
        for (stem, plot) in self.plots() {
            let path = dir.join(format!("{stem}.png"));
            plot.save_png(&path)?;
            paths.push(path);
        }
        Ok(paths)
    }
}

impl SpectralAnalysis {
    /// Each layer's statistics averaged over the steps (weighted equally).
    pub fn mean_over_steps(&self) -> Vec<LayerBands> {
        let n = self.steps.len().max(1) as f64;
        (0..self.layers.len())
            .map(|l| {
                let mut m = LayerBands::default();
                for s in &self.steps {
                    let b = &s.layers[l];
                    m.energy_low += b.energy_low / n;
                    m.energy_high += b.energy_high / n;
                    m.cosine_low += b.cosine_low / n;
                    m.cosine_high += b.cosine_high / n;
                }
                m
            })
            .collect()
    }
}

/// Several models side by side (the paper's Fig. 7: baseline vs FRAMER): for each quantity, a
/// plot of its mean over the steps against the layer index, one line per run. Returns
/// `(file stem, plot)` pairs named `<quantity>_runs`.
pub fn spectra_comparison_plots(runs: &[(String, SpectralAnalysis)]) -> Vec<(String, LinePlot)> {
    let means: Vec<(String, Vec<LayerBands>)> = runs
        .iter()
        .map(|(name, a)| (name.clone(), a.mean_over_steps()))
        .collect();
    QUANTITIES
        .iter()
        .enumerate()
        .map(|(k, (stem, label))| {
            let series = means
                .iter()
                .map(|(name, layers)| {
                    Series::new(
                        name.clone(),
                        layers
                            .iter()
                            .enumerate()
                            .map(|(i, b)| (i as f64, quantity(b, k)))
                            .collect(),
                    )
                })
                .collect();
            (
                format!("{stem}_runs"),
                LinePlot::new(
                    format!("{label} per layer, mean over steps"),
                    "layer (last = final)",
                    *label,
                )
                .with_series(series)
                .with_markers(true),
            )
        })
        .collect()
}

/// The names of the per-layer weight fields of the training log, in column order.
pub const WEIGHT_FIELDS: [&str; 4] = ["faw_low", "faw_high", "fam_low", "fam_high"];

/// The per-layer weight fields of a training-log record (see the module docs for the schema),
/// without the step: add it to the engine's own record with
/// `#[serde(flatten, default, skip_serializing_if = "Option::is_none")] weights: Option<LayerWeights>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerWeights {
    /// FAW weight per student layer, low band, mean over the batch.
    pub faw_low: Vec<f32>,
    /// FAW weight per student layer, high band.
    pub faw_high: Vec<f32>,
    /// FAM gate per student layer, low band.
    pub fam_low: Vec<f32>,
    /// FAM gate per student layer, high band.
    pub fam_high: Vec<f32>,
}

impl LayerWeights {
    /// The batch means of each layer's weights in `diagnostics` (the loss's host copies).
    pub fn from_diagnostics(diagnostics: &FramerDiagnostics) -> Self {
        let mean = |v: &[f32]| {
            if v.is_empty() {
                f32::NAN
            } else {
                (v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64) as f32
            }
        };
        let layers = &diagnostics.layers;
        Self {
            faw_low: layers.iter().map(|l| mean(&l.faw_low)).collect(),
            faw_high: layers.iter().map(|l| mean(&l.faw_high)).collect(),
            fam_low: layers.iter().map(|l| mean(&l.fam_low)).collect(),
            fam_high: layers.iter().map(|l| mean(&l.fam_high)).collect(),
        }
    }
}

/// A complete minimal training-log record: `step` and the [`LayerWeights`] fields, e.g.
/// `{"step":42,"faw_low":[…],"faw_high":[…],"fam_low":[…],"fam_high":[…]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightLogLine {
    /// Optimiser step.
    pub step: u64,
    /// The per-layer weights.
    #[serde(flatten)]
    pub weights: LayerWeights,
}

impl WeightLogLine {
    /// The record of `step` from the loss's diagnostics.
    pub fn from_diagnostics(step: u64, diagnostics: &FramerDiagnostics) -> Self {
        Self {
            step,
            weights: LayerWeights::from_diagnostics(diagnostics),
        }
    }
}

/// One record of FAW/FAM weights read from a log.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightRecord {
    /// Optimiser step.
    pub step: u64,
    /// The fields of [`WEIGHT_FIELDS`], in that order; `None` where the record lacks the field.
    pub fields: [Option<Vec<f64>>; 4],
}

/// FAW/FAM weights per layer over training.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingWeights {
    /// The log file.
    pub path: PathBuf,
    /// Number of student layers.
    pub layers: usize,
    /// The records, in file order.
    pub records: Vec<WeightRecord>,
}

/// Reads the FAW/FAM records of a JSON Lines training log (schema in the module docs).
///
/// # Errors
/// [`EvalError::Read`] if the file cannot be read; [`EvalError::Log`] naming the line for a line
/// that is not a JSON object, a missing or negative `step`, a weight field that is not an array
/// of numbers, or a layer count that differs from earlier records; [`EvalError::Empty`] if no
/// record has weights.
pub fn read_training_weights(path: &Path) -> Result<TrainingWeights> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_training_weights(&text, path)
}

/// [`read_training_weights`] on text already read; `path` is only used in messages.
///
/// # Errors
/// As [`read_training_weights`], without [`EvalError::Read`].
pub fn parse_training_weights(text: &str, path: &Path) -> Result<TrainingWeights> {
    let err = |line: usize, message: String| EvalError::Log {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut layers: Option<(usize, usize)> = None; // (count, first line)
    let mut records = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| err(line, format!("not valid JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| err(line, "expected a JSON object".into()))?;
        if WEIGHT_FIELDS.iter().all(|f| !obj.contains_key(*f)) {
            continue;
        }
        let step = obj
            .get("step")
            .ok_or_else(|| err(line, "record has weight fields but no `step`".into()))?
            .as_u64()
            .ok_or_else(|| err(line, "`step` must be a non-negative integer".into()))?;
        let mut fields: [Option<Vec<f64>>; 4] = Default::default();
        for (k, name) in WEIGHT_FIELDS.iter().enumerate() {
            let Some(v) = obj.get(*name) else { continue };
            let arr = v.as_array().ok_or_else(|| {
                err(
                    line,
                    format!("`{name}` must be an array with one number per layer"),
                )
            })?;
            let values = arr
                .iter()
                .enumerate()
                .map(|(j, x)| match x {
                    serde_json::Value::Null => Ok(f64::NAN),
                    x => x
                        .as_f64()
                        .ok_or_else(|| err(line, format!("`{name}[{j}]` is not a number: {x}"))),
                })
                .collect::<Result<Vec<f64>>>()?;
            match layers {
                None => layers = Some((values.len(), line)),
                Some((n, first)) if n != values.len() => {
                    return Err(err(
                        line,
                        format!(
                            "`{name}` has {} layers, but line {first} has {n}",
                            values.len()
                        ),
                    ));
                }
                Some(_) => {}
            }
            fields[k] = Some(values);
        }
        records.push(WeightRecord { step, fields });
    }
    let (layers, _) = layers.ok_or_else(|| {
        EvalError::Empty(format!(
            "plot: {} has no record with any of {}",
            path.display(),
            WEIGHT_FIELDS.join(", ")
        ))
    })?;
    Ok(TrainingWeights {
        path: path.to_path_buf(),
        layers,
        records,
    })
}

impl TrainingWeights {
    /// The CSV, long format: header `step,layer,faw_low,faw_high,fam_low,fam_high`, one row per
    /// record and layer, empty cells for missing fields.
    pub fn to_csv(&self) -> String {
        let mut out = format!("step,layer,{}\n", WEIGHT_FIELDS.join(","));
        for r in &self.records {
            for layer in 0..self.layers {
                let cells: Vec<String> = r
                    .fields
                    .iter()
                    .map(|f| {
                        f.as_ref()
                            .map_or_else(String::new, |v| v[layer].to_string())
                    })
                    .collect();
                out.push_str(&format!("{},{layer},{}\n", r.step, cells.join(",")));
            }
        }
        out
    }

    /// `(steps, values[layer][record])` of one quantity over the records that have it.
    /// `quantity` is one of [`WEIGHT_FIELDS`] or `weight_low` / `weight_high` (the effective
    /// weights `faw·fam`, where both are present).
    pub fn series(&self, quantity: &str) -> Option<(Vec<f64>, Vec<Vec<f64>>)> {
        let get = |r: &WeightRecord| -> Option<Vec<f64>> {
            match quantity {
                "weight_low" | "weight_high" => {
                    let (a, b) = if quantity == "weight_low" {
                        (0, 2)
                    } else {
                        (1, 3)
                    };
                    let (x, y) = (r.fields[a].as_ref()?, r.fields[b].as_ref()?);
                    Some(x.iter().zip(y).map(|(p, q)| p * q).collect())
                }
                name => r.fields[WEIGHT_FIELDS.iter().position(|f| *f == name)?].clone(),
            }
        };
        let rows: Vec<(u64, Vec<f64>)> = self
            .records
            .iter()
            .filter_map(|r| Some((r.step, get(r)?)))
            .collect();
        if rows.is_empty() {
            return None;
        }
        let steps = rows.iter().map(|(s, _)| *s as f64).collect();
        let values = (0..self.layers)
            .map(|l| rows.iter().map(|(_, v)| v[l]).collect())
            .collect();
        Some((steps, values))
    }

    /// Writes `weights.csv` and, for each of [`WEIGHT_FIELDS`] and `weight_low` / `weight_high`
    /// present in the log, `<field>_heatmap.png` (layer × step) and `<field>_layers.png`
    /// (a few layers over the steps) into `dir`; returns the paths.
    ///
    /// # Errors
    /// [`EvalError::Write`], [`EvalError::Plot`] naming the file.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|source| EvalError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let csv = dir.join("weights.csv");
        std::fs::write(&csv, self.to_csv()).map_err(|source| EvalError::Write {
            path: csv.clone(),
            source,
        })?;
        let mut paths = vec![csv];
        let names = WEIGHT_FIELDS
            .iter()
            .copied()
            .chain(["weight_low", "weight_high"]);
        for name in names {
            let Some((steps, values)) = self.series(name) else {
                continue;
            };
            let title = match name {
                "weight_low" => "effective LF weight FAW·FAM per layer".to_string(),
                "weight_high" => "effective HF weight FAW·FAM per layer".to_string(),
                other => {
                    let (name, band) = other.split_once('_').unwrap_or((other, ""));
                    format!("{} ({band} band) per layer", name.to_uppercase())
                }
            };
            let heatmap = Heatmap {
                title: title.clone(),
                x_label: "training step".into(),
                y_label: "student layer".into(),
                columns: steps.clone(),
                values: values.clone(),
                size: (960, 540),
            };
            let path = dir.join(format!("{name}_heatmap.png"));
            heatmap.save_png(&path)?;
            paths.push(path);
            let series = spread_indices(self.layers, MAX_LINES)
                .into_iter()
                .map(|l| {
                    Series::new(
                        format!("layer {l}"),
                        steps
                            .iter()
                            .copied()
                            .zip(values[l].iter().copied())
                            .collect(),
                    )
                })
                .collect();
            let plot = LinePlot::new(title, "training step", name).with_series(series);
            let path = dir.join(format!("{name}_layers.png"));
            plot.save_png(&path)?;
            paths.push(path);
        }
        Ok(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;
    use rustfft::{FftPlanner, num_complex::Complex};

    type B = Flex;

    fn tensor(data: Vec<f32>, shape: [usize; 4]) -> Tensor<B, 4> {
        Tensor::from_data(TensorData::new(data, shape), &Default::default())
    }

    fn pseudo(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104729) % 1000) as f32 / 1000.0 - 0.5) * 2.0)
            .collect()
    }

    /// |FFT2| of one `h×w` plane with rustfft, in f64.
    fn fft_mag(plane: &[f32], h: usize, w: usize) -> Vec<f64> {
        let mut planner = FftPlanner::<f64>::new();
        let (fw, fh) = (planner.plan_fft_forward(w), planner.plan_fft_forward(h));
        let mut data: Vec<Complex<f64>> =
            plane.iter().map(|&v| Complex::new(v as f64, 0.0)).collect();
        for row in data.chunks_mut(w) {
            fw.process(row);
        }
        for x in 0..w {
            let mut col: Vec<Complex<f64>> = (0..h).map(|y| data[y * w + x]).collect();
            fh.process(&mut col);
            for y in 0..h {
                data[y * w + x] = col[y];
            }
        }
        data.iter().map(|c| c.norm()).collect()
    }

    /// The oracle: rustfft magnitudes, then energies and cosines written out from their
    /// definitions. `low_mask(sample, magnitudes of the final layer)` gives the `C·H·W` mask.
    fn oracle(
        layers: &[&Vec<f32>],
        [b, c, h, w]: [usize; 4],
        low_mask: &dyn Fn(&[Vec<f64>]) -> Vec<f64>,
    ) -> Vec<Vec<[f64; 4]>> {
        let hw = h * w;
        let mags: Vec<Vec<Vec<f64>>> = layers
            .iter()
            .map(|x| {
                (0..b * c)
                    .map(|p| fft_mag(&x[p * hw..(p + 1) * hw], h, w))
                    .collect()
            })
            .collect();
        let last = layers.len() - 1;
        (0..layers.len())
            .map(|li| {
                (0..b)
                    .map(|s| {
                        let low = low_mask(&mags[last][s * c..(s + 1) * c]);
                        let high: Vec<f64> = low.iter().map(|m| 1.0 - m).collect();
                        let mut out = [0.0; 4];
                        for (k, mask) in [low, high].iter().enumerate() {
                            let (mut energy, mut dot, mut n1, mut n2) = (0.0, 0.0, 0.0, 0.0);
                            for ch in 0..c {
                                let m = &mask[ch * hw..(ch + 1) * hw];
                                let (a, t) = (&mags[li][s * c + ch], &mags[last][s * c + ch]);
                                let count: f64 = m.iter().sum();
                                let e: f64 = a.iter().zip(m).map(|(x, k)| x * k).sum();
                                energy += e / (count + ENERGY_EPS) / c as f64;
                                for ((x, y), k) in a.iter().zip(t).zip(m) {
                                    dot += x * k * y * k;
                                    n1 += (x * k).powi(2);
                                    n2 += (y * k).powi(2);
                                }
                            }
                            out[k] = energy;
                            out[2 + k] = dot / (n1.sqrt().max(NORM_EPS) * n2.sqrt().max(NORM_EPS));
                        }
                        out
                    })
                    .collect()
            })
            .collect()
    }

    fn check_against_oracle(config: SpectralConfig, low_mask: &dyn Fn(&[Vec<f64>]) -> Vec<f64>) {
        let shape = [2, 2, 6, 10];
        let n = shape.iter().product();
        let teacher = pseudo(n, 1);
        let students = [pseudo(n, 2), pseudo(n, 3)];
        let got = layer_band_statistics(
            tensor(teacher.clone(), shape),
            &students
                .iter()
                .map(|s| tensor(s.clone(), shape))
                .collect::<Vec<_>>(),
            &config,
        )
        .unwrap();
        let want = oracle(&[&students[0], &students[1], &teacher], shape, low_mask);
        for (li, layer) in want.iter().enumerate() {
            for (s, w) in layer.iter().enumerate() {
                let g = got[li][s];
                let have = [g.energy_low, g.energy_high, g.cosine_low, g.cosine_high];
                for q in 0..4 {
                    // f32 DFT on the device against f64 rustfft
                    let tol = 1e-4 * w[q].abs().max(1.0);
                    assert!(
                        (have[q] - w[q]).abs() < tol,
                        "layer {li} sample {s} q{q}: {} vs {}",
                        have[q],
                        w[q]
                    );
                }
            }
        }
        // the final layer's cosine with itself is 1
        assert!((got[2][0].cosine_low - 1.0).abs() < 1e-6);
        assert!((got[2][1].cosine_high - 1.0).abs() < 1e-6);
    }

    #[test]
    fn energies_and_cosines_match_a_rustfft_oracle_with_the_radial_mask() {
        let (c, h, w, radius) = (2, 6, 10, 0.4);
        let freq = |k: usize, n: usize| k.min(n - k) as f64 / n as f64;
        let plane: Vec<f64> = (0..h * w)
            .map(|i| {
                let r = (freq(i / w, h).powi(2) + freq(i % w, w).powi(2)).sqrt() / 0.5f64.sqrt();
                if r <= radius { 1.0 } else { 0.0 }
            })
            .collect();
        let mask = move |_: &[Vec<f64>]| plane.repeat(c);
        let config = SpectralConfig {
            mask: BandMaskKind::Radial { radius },
            log_magnitude: false,
        };
        check_against_oracle(config, &mask);
    }

    #[test]
    fn energies_and_cosines_match_a_rustfft_oracle_with_the_quantile_mask() {
        // torch.quantile with linear interpolation over the sample's C·H·W teacher magnitudes;
        // low = |X| < q
        let cutoff = 0.2;
        let mask = move |teacher: &[Vec<f64>]| {
            let all: Vec<f64> = teacher.iter().flatten().copied().collect();
            let mut sorted = all.clone();
            sorted.sort_by(f64::total_cmp);
            let rank = cutoff * (sorted.len() - 1) as f64;
            let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
            let q = sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64);
            all.iter().map(|&m| if m < q { 1.0 } else { 0.0 }).collect()
        };
        let config = SpectralConfig {
            mask: BandMaskKind::Quantile { cutoff },
            log_magnitude: false,
        };
        check_against_oracle(config, &mask);
    }

    #[test]
    fn hand_computed_energies_for_a_constant_and_an_impulse() {
        // a constant 2×2 plane of value a: |X| = 4a at DC and 0 elsewhere. Radial mask with a
        // small radius keeps only DC: E_low = 4a / 1, E_high = 0 / 3.
        // an impulse at (0, 0) of height a: |X| = a everywhere: E_low = a, E_high = a.
        let config = SpectralConfig {
            mask: BandMaskKind::Radial { radius: 0.1 },
            log_magnitude: false,
        };
        let teacher = tensor(vec![0.5; 4], [1, 1, 2, 2]);
        let impulse = tensor(vec![3.0, 0.0, 0.0, 0.0], [1, 1, 2, 2]);
        let got = layer_band_statistics(teacher, &[impulse], &config).unwrap();
        let (student, fin) = (got[0][0], got[1][0]);
        assert!(
            (fin.energy_low - 2.0).abs() < 1e-6 && fin.energy_high.abs() < 1e-5,
            "{fin:?}"
        );
        assert!(
            (student.energy_low - 3.0).abs() < 1e-5 && (student.energy_high - 3.0).abs() < 1e-5
        );
        // LF: both are a positive multiple of the DC indicator → cosine 1 (the HF cosine is
        // undefined here: the teacher's high band is zero)
        assert!((student.cosine_low - 1.0).abs() < 1e-6);
        // |DFT(2x)| = 2|DFT(x)|: twice the teacher has twice its energies and cosines 1
        let x = tensor(pseudo(2 * 8 * 6, 9), [1, 2, 8, 6]);
        let got = layer_band_statistics(
            x.clone(),
            &[x.clone().mul_scalar(2.0)],
            &SpectralConfig::default(),
        )
        .unwrap();
        let (student, fin) = (got[0][0], got[1][0]);
        assert!((student.energy_low - 2.0 * fin.energy_low).abs() < 1e-5 * fin.energy_low.max(1.0));
        assert!(
            (student.energy_high - 2.0 * fin.energy_high).abs() < 1e-5 * fin.energy_high.max(1.0)
        );
        assert!(
            (student.cosine_low - 1.0).abs() < 1e-5 && (student.cosine_high - 1.0).abs() < 1e-5
        );
        // log(1 + |X|): impulse 3 → log 4 everywhere
        let config = SpectralConfig {
            log_magnitude: true,
            ..config
        };
        let got = layer_band_statistics(
            tensor(vec![0.5; 4], [1, 1, 2, 2]),
            &[tensor(vec![3.0, 0.0, 0.0, 0.0], [1, 1, 2, 2])],
            &config,
        )
        .unwrap();
        assert!((got[0][0].energy_high - 4f64.ln()).abs() < 1e-5);
    }

    #[test]
    fn analyzer_averages_over_calls_and_rejects_bad_shapes() {
        let mut a = SpectralAnalyzer::new(SpectralConfig::default());
        let x = |seed| tensor(pseudo(48, seed), [1, 3, 4, 4]);
        a.add(0, 1.0, x(1), &[x(2)]).unwrap();
        a.add(0, 1.0, x(3), &[x(4)]).unwrap();
        let s1 = layer_band_statistics(x(1), &[x(2)], &SpectralConfig::default()).unwrap();
        let s2 = layer_band_statistics(x(3), &[x(4)], &SpectralConfig::default()).unwrap();
        let e = a.clone().add(1, 0.5, x(1), &[x(2), x(3)]).unwrap_err();
        assert!(e.to_string().contains("2 student layers"), "{e}");
        let bad = tensor(pseudo(27, 1), [1, 3, 3, 3]);
        let e = a.add(1, 0.5, x(1), &[bad]).unwrap_err();
        assert!(
            e.to_string().contains("[1, 3, 3, 3]") && e.to_string().contains("[1, 3, 4, 4]"),
            "{e}"
        );
        let out = a.finish().unwrap();
        assert_eq!(out.steps.len(), 1);
        assert_eq!(out.steps[0].samples, 2);
        let mean = (s1[0][0].energy_high + s2[0][0].energy_high) / 2.0;
        assert!((out.steps[0].layers[0].energy_high - mean).abs() < 1e-9);
        assert!(
            SpectralAnalyzer::new(SpectralConfig::default())
                .finish()
                .is_err()
        );
    }

    #[test]
    fn analysis_writes_a_csv_and_plots() {
        let mut a = SpectralAnalyzer::new(SpectralConfig::default());
        let x = |seed| tensor(pseudo(2 * 3 * 8 * 8, seed), [2, 3, 8, 8]);
        for step in 0..3 {
            a.add(
                step,
                1.0 - step as f64 / 3.0,
                x(10 + step),
                &[x(20 + step), x(30 + step), x(40 + step)],
            )
            .unwrap();
        }
        let out = a.finish().unwrap();
        let csv = out.to_csv();
        assert_eq!(csv.lines().count(), 1 + 3 * 4);
        assert!(csv.lines().nth(4).unwrap().starts_with("0,1,2,3,final,"));
        let tmp = tempfile::tempdir().unwrap();
        let files = out.write(tmp.path()).unwrap();
        assert_eq!(files.len(), 9);
        assert!(files.iter().all(|p| p.exists()));
    }

    #[test]
    fn runs_compare_on_the_step_means() {
        let x = |seed| tensor(pseudo(48, seed), [1, 3, 4, 4]);
        let run = |seeds: [usize; 4]| {
            let mut a = SpectralAnalyzer::new(SpectralConfig::default());
            a.add(0, 1.0, x(seeds[0]), &[x(seeds[1])]).unwrap();
            a.add(1, 0.5, x(seeds[2]), &[x(seeds[3])]).unwrap();
            a.finish().unwrap()
        };
        let (a, b) = (run([1, 2, 3, 4]), run([5, 6, 7, 8]));
        let m = a.mean_over_steps();
        let want = (a.steps[0].layers[0].cosine_high + a.steps[1].layers[0].cosine_high) / 2.0;
        assert!((m[0].cosine_high - want).abs() < 1e-12);
        let plots = spectra_comparison_plots(&[("baseline".into(), a), ("framer".into(), b)]);
        assert_eq!(plots.len(), 4);
        let (stem, plot) = &plots[3];
        assert_eq!(stem, "cosine_high_runs");
        assert_eq!(plot.series.len(), 2);
        assert_eq!(plot.series[0].points[0], (0.0, want));
        assert!(plot.render().is_ok());
    }

    #[test]
    fn training_log_schema_is_parsed_and_checked() {
        let log = r#"{"step": 0, "loss": 1.0, "faw_low": [0.5, 0.25], "faw_high": [1, 0.5], "fam_low": [0.2, 0.4], "fam_high": [null, 1.0]}
{"step": 5, "split": "valid", "loss": 0.9}

{"step": 10, "fam_low": [0.3, 0.6], "fam_high": [0.7, 0.8]}
"#;
        let w = parse_training_weights(log, Path::new("log.jsonl")).unwrap();
        assert_eq!(w.layers, 2);
        assert_eq!(w.records.len(), 2);
        assert!(w.records[0].fields[3].as_ref().unwrap()[0].is_nan());
        let (steps, values) = w.series("weight_low").unwrap();
        assert_eq!(steps, vec![0.0]); // only the first record has both FAW and FAM
        assert_eq!(values, vec![vec![0.1], vec![0.1]]);
        let (steps, values) = w.series("fam_low").unwrap();
        assert_eq!(
            (steps, values),
            (vec![0.0, 10.0], vec![vec![0.2, 0.3], vec![0.4, 0.6]])
        );
        let csv = w.to_csv();
        assert!(
            csv.starts_with("step,layer,faw_low,faw_high,fam_low,fam_high\n0,0,0.5,1,0.2,NaN\n"),
            "{csv}"
        );
        assert!(csv.contains("\n10,1,,,0.6,0.8\n"));

        for (bad, needle) in [
            (
                "{\"step\": 1, \"faw_low\": [1, 2]}\n{\"step\": 2, \"faw_low\": [1]}",
                "line 2",
            ),
            ("{\"faw_low\": [1]}", "no `step`"),
            ("{\"step\": -1, \"faw_low\": [1]}", "non-negative"),
            ("{\"step\": 1, \"faw_low\": 0.5}", "must be an array"),
            ("{\"step\": 1, \"faw_low\": [\"x\"]}", "faw_low[0]"),
            ("[1, 2]", "JSON object"),
            ("{oops", "not valid JSON"),
            ("{\"step\": 1, \"loss\": 2}", "no record"),
        ] {
            let e = parse_training_weights(bad, Path::new("run/log.jsonl"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        let e = read_training_weights(Path::new("/nonexistent/metrics.jsonl")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/metrics.jsonl"));
    }

    #[test]
    fn weight_log_line_round_trips_through_the_parser() {
        let diag = FramerDiagnostics {
            loss: 1.0,
            avg_weight_low: 0.0,
            avg_weight_high: 0.0,
            layers: (0..3)
                .map(|i| framer::LayerDiagnostics {
                    loss: 0.0,
                    intra: vec![0.0; 2],
                    inter: vec![0.0; 2],
                    fam_low: vec![0.1 * i as f32, 0.3],
                    fam_high: vec![1.0, 1.0],
                    faw_low: vec![0.5, 0.5],
                    faw_high: vec![0.25, 0.75],
                })
                .collect(),
        };
        let line = WeightLogLine::from_diagnostics(42, &diag);
        assert_eq!(line.weights.faw_high, vec![0.5; 3]);
        assert!((line.weights.fam_low[2] - 0.25).abs() < 1e-7);
        let text = serde_json::to_string(&line).unwrap();
        assert!(
            text.starts_with("{\"step\":42,\"faw_low\":[0.5,0.5,0.5],"),
            "{text}"
        );
        let w = parse_training_weights(&text, Path::new("x")).unwrap();
        assert_eq!(w.records[0].step, 42);
        assert_eq!(w.layers, 3);
        let tmp = tempfile::tempdir().unwrap();
        let files = w.write(tmp.path()).unwrap();
        // csv + 6 quantities × (heat map + line plot)
        assert_eq!(files.len(), 13);
    }

    #[test]
    fn spread_indices_keep_the_ends() {
        assert_eq!(spread_indices(3, 8), vec![0, 1, 2]);
        assert_eq!(spread_indices(25, 5), vec![0, 6, 12, 18, 24]);
        assert_eq!(spread_indices(0, 8), Vec::<usize>::new());
    }
}
