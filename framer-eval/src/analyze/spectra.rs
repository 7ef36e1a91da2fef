//! Per-layer band energies and cosine similarities over the denoising steps (the paper's Fig. 2
//! and Fig. 7): [`SpectralAnalyzer`] accumulates them, [`SpectralAnalysis`] writes the CSV and
//! the plots. See [the module docs](super) for the definitions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, backend::Backend};
use framer::BandMaskKind;
use serde::Serialize;

use crate::error::{EvalError, Result};
use crate::plot::{LinePlot, Series};
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
        let mut paths = vec![super::write_csv(dir, "spectra.csv", &self.to_csv())?];
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
