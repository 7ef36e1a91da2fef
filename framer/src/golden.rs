//! Reference cases of the FRAMER loss ("golden" files) and a checker for them.
//!
//! A case is a pair `CASE.json` (shapes, hyper-parameters, expected scalars and per-layer terms) +
//! `CASE.safetensors` (float32 tensors `x_t [B,C,H,W]`, `sigmas [B]`, `teacher [B,C,H,W]`,
//! `students [S,B,C,H,W]`, and optionally `grad_students [S,B,C,H,W]` and the reference's
//! `teacher_low_mask [B,C,H,W]` in the plain FFT layout). The expected values come from the
//! official implementation's `framer_distillation_loss` (rectified flow, `x0 = x_t − σ·pred`).

use std::fmt;
use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData, backend::AutodiffBackend};
use serde::Deserialize;

use crate::{
    BandMaskKind, FramerError, FramerInput, FramerLossConfig, LossExecution, Parameterization,
};

/// Expected per-layer terms of one student, one entry per sample.
#[derive(Debug, Clone, Deserialize)]
pub struct GoldenLayer {
    /// FAM gate, low band.
    pub fam_low: Vec<f32>,
    /// FAM gate, high band.
    pub fam_high: Vec<f32>,
    /// IntraCL.
    pub intra: Vec<f32>,
    /// InterCL.
    pub inter: Vec<f32>,
}

#[derive(Debug, Deserialize)]
struct GoldenShape {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    students: usize,
}

#[derive(Debug, Deserialize)]
struct GoldenJson {
    #[serde(default)]
    case: Option<String>,
    shape: GoldenShape,
    cutoff: f64,
    temperature: f64,
    negative_layer: Vec<usize>,
    loss: f32,
    avg_weight_low: f32,
    avg_weight_high: f32,
    per_layer: Vec<GoldenLayer>,
}

/// One reference case, loaded.
#[derive(Debug, Clone)]
pub struct GoldenCase {
    /// Case name (from the JSON, else the file stem).
    pub name: String,
    /// Path of the JSON file.
    pub path: PathBuf,
    /// `[S, B, C, H, W]`: students, batch, channels, height, width.
    pub shape: [usize; 5],
    /// Quantile cutoff of the masks.
    pub cutoff: f64,
    /// Contrastive temperature.
    pub temperature: f64,
    /// The random-layer negative of each student.
    pub negatives: Vec<usize>,
    /// Expected loss.
    pub loss: f32,
    /// Expected `mean(fam_low · faw_low)`.
    pub avg_weight_low: f32,
    /// Expected `mean(fam_high · faw_high)`.
    pub avg_weight_high: f32,
    /// Expected per-layer terms.
    pub per_layer: Vec<GoldenLayer>,
    /// `x_t`, `[B, C, H, W]` row-major.
    pub x_t: Vec<f32>,
    /// σ per sample, `[B]`.
    pub sigmas: Vec<f32>,
    /// Raw teacher prediction, `[B, C, H, W]`.
    pub teacher: Vec<f32>,
    /// Raw student predictions, `[S, B, C, H, W]`.
    pub students: Vec<f32>,
    /// Expected d loss / d students, `[S, B, C, H, W]`, if the case has it.
    pub grad_students: Option<Vec<f32>>,
    /// The reference's low mask, `[B, C, H, W]` plain layout, if the case has it.
    pub low_mask: Option<Vec<f32>>,
}

impl GoldenCase {
    /// Loads `path` (`CASE.json`) and the `CASE.safetensors` beside it.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, FramerError> {
        let path = path.as_ref().to_path_buf();
        let err = |p: &Path, message: String| FramerError::Golden {
            path: p.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e.to_string()))?;
        let json: GoldenJson = serde_json::from_str(&text).map_err(|e| err(&path, e.to_string()))?;
        let tensors_path = path.with_extension("safetensors");
        let bytes = std::fs::read(&tensors_path).map_err(|e| err(&tensors_path, e.to_string()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| err(&tensors_path, e.to_string()))?;
        let GoldenShape { batch: b, channels: c, height: h, width: w, students: s } = json.shape;
        let read = |name: &str, shape: &[usize], required: bool| -> Result<Option<Vec<f32>>, FramerError> {
            let view = match st.tensor(name) {
                Ok(v) => v,
                Err(_) if !required => return Ok(None),
                Err(e) => return Err(err(&tensors_path, format!("tensor `{name}`: {e}"))),
            };
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(err(&tensors_path, format!("tensor `{name}` is {:?}, expected F32", view.dtype())));
            }
            if view.shape() != shape {
                return Err(err(
                    &tensors_path,
                    format!("tensor `{name}` has shape {:?}, the JSON implies {shape:?}", view.shape()),
                ));
            }
            Ok(Some(
                view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            ))
        };
        let required = |name: &str, shape: &[usize]| read(name, shape, true).map(Option::unwrap_or_default);
        if json.per_layer.len() != s || json.negative_layer.len() != s {
            return Err(err(
                &path,
                format!(
                    "{} students, but {} per_layer entries and {} negatives",
                    s,
                    json.per_layer.len(),
                    json.negative_layer.len()
                ),
            ));
        }
        if let Some((i, _)) = json.per_layer.iter().enumerate().find(|(_, l)| {
            [&l.fam_low, &l.fam_high, &l.intra, &l.inter].iter().any(|v| v.len() != b)
        }) {
            return Err(err(&path, format!("per_layer[{i}] does not have {b} entries per term")));
        }
        Ok(Self {
            name: json.case.unwrap_or_else(|| {
                path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
            }),
            shape: [s, b, c, h, w],
            cutoff: json.cutoff,
            temperature: json.temperature,
            negatives: json.negative_layer,
            loss: json.loss,
            avg_weight_low: json.avg_weight_low,
            avg_weight_high: json.avg_weight_high,
            per_layer: json.per_layer,
            x_t: required("x_t", &[b, c, h, w])?,
            sigmas: required("sigmas", &[b])?,
            teacher: required("teacher", &[b, c, h, w])?,
            students: required("students", &[s, b, c, h, w])?,
            grad_students: read("grad_students", &[s, b, c, h, w], false)?,
            low_mask: read("teacher_low_mask", &[b, c, h, w], false)?,
            path,
        })
    }
}

/// Which low mask the check uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskSource {
    /// The reference's own mask, injected (isolates the loss from the mask computation).
    Reference,
    /// The mask framer computes from the teacher spectrum.
    Own,
}

/// Tolerances of a golden check (see the golden README).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    /// Relative error of the loss, average weights and per-layer terms with the reference mask.
    pub terms: f64,
    /// Relative error (max-abs of the difference / max-abs of the reference) of the gradients.
    pub gradients: f64,
    /// Relative error of the loss with framer's own mask.
    pub own_mask_loss: f64,
    /// Largest fraction of mask coefficients that may differ from the reference's.
    pub own_mask_fraction: f64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Self { terms: 1e-5, gradients: 1e-4, own_mask_loss: 1e-3, own_mask_fraction: 1e-3 }
    }
}

/// One line of a golden report.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldenRow {
    /// What is compared.
    pub quantity: String,
    /// framer's value (for vectors: the entry with the largest error).
    pub computed: f64,
    /// The reference's value.
    pub expected: f64,
    /// The error measure (relative unless the quantity says otherwise).
    pub error: f64,
    /// The largest error accepted.
    pub tolerance: f64,
}

impl GoldenRow {
    /// Whether the error is within tolerance (NaN fails).
    pub fn passed(&self) -> bool {
        self.error <= self.tolerance
    }
}

/// The result of checking one case.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldenReport {
    /// Case name.
    pub case: String,
    /// Which mask was used.
    pub mask: MaskSource,
    /// One row per compared quantity.
    pub rows: Vec<GoldenRow>,
}

impl GoldenReport {
    /// Whether every row is within tolerance.
    pub fn passed(&self) -> bool {
        self.rows.iter().all(GoldenRow::passed)
    }
}

impl fmt::Display for GoldenReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mask = match self.mask {
            MaskSource::Reference => "reference mask",
            MaskSource::Own => "framer's own mask",
        };
        writeln!(f, "case {} ({mask})", self.case)?;
        writeln!(
            f,
            "{:<40} {:>16} {:>16} {:>10} {:>9}  ok",
            "quantity", "computed", "expected", "error", "tolerance"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<40} {:>16.9} {:>16.9} {:>10.2e} {:>9.0e}  {}",
                r.quantity,
                r.computed,
                r.expected,
                r.error,
                r.tolerance,
                if r.passed() { "yes" } else { "NO" }
            )?;
        }
        Ok(())
    }
}

fn relative(computed: f64, expected: f64) -> f64 {
    let e = (computed - expected).abs() / expected.abs().max(1e-6);
    if e.is_nan() { f64::INFINITY } else { e }
}

/// Worst relative error of a vector, as a row (`computed`/`expected` are the worst entry).
fn vector_row(quantity: String, computed: &[f32], expected: &[f32], tolerance: f64) -> GoldenRow {
    let mut row = GoldenRow { quantity, computed: f64::NAN, expected: f64::NAN, error: 0.0, tolerance };
    for (&c, &e) in computed.iter().zip(expected) {
        let err = relative(c as f64, e as f64);
        if err >= row.error || row.computed.is_nan() {
            row = GoldenRow { error: err, computed: c as f64, expected: e as f64, ..row };
        }
    }
    if computed.len() != expected.len() {
        row.error = f64::INFINITY;
    }
    row
}

/// Evaluates framer's loss (and its gradients) on `case` and compares with the reference.
///
/// The loss runs where [`LossExecution::Auto`] puts it (on the host for CPU backends); see
/// [`check_case_with`] to choose.
pub fn check_case<B: AutodiffBackend>(
    case: &GoldenCase,
    mask: MaskSource,
    tolerances: Tolerances,
    device: &B::Device,
) -> Result<GoldenReport, FramerError> {
    check_case_with::<B>(case, mask, tolerances, LossExecution::Auto, device)
}

/// [`check_case`] with the loss computed where `execution` says.
pub fn check_case_with<B: AutodiffBackend>(
    case: &GoldenCase,
    mask: MaskSource,
    tolerances: Tolerances,
    execution: LossExecution,
    device: &B::Device,
) -> Result<GoldenReport, FramerError> {
    let [s, b, c, h, w] = case.shape;
    let tensor4 = |v: &[f32]| Tensor::<B, 4>::from_data(TensorData::new(v.to_vec(), [b, c, h, w]), device);
    let students_all =
        Tensor::<B, 5>::from_data(TensorData::new(case.students.clone(), [s, b, c, h, w]), device);
    let students: Vec<Tensor<B, 4>> = (0..s)
        .map(|i| students_all.clone().narrow(0, i, 1).reshape([b, c, h, w]).detach().require_grad())
        .collect();
    let config = FramerLossConfig::new()
        .with_mask(BandMaskKind::Quantile { cutoff: case.cutoff })
        .with_temperature(case.temperature)
        .with_execution(execution);
    let loss = config.init()?;
    let mut input = FramerInput::new(
        students.clone(),
        tensor4(&case.teacher),
        tensor4(&case.x_t),
        Parameterization::RectifiedFlow {
            sigmas: Tensor::from_data(TensorData::new(case.sigmas.clone(), [b]), device),
        },
        case.negatives.clone(),
    );
    if mask == MaskSource::Reference {
        let reference = case.low_mask.as_ref().ok_or_else(|| FramerError::Golden {
            path: case.path.display().to_string(),
            message: "the case has no `teacher_low_mask` to inject".into(),
        })?;
        input = input.with_low_mask(tensor4(reference));
    }
    let output = loss.forward(input)?;
    let diag = output.diagnostics();
    let mut rows = Vec::new();
    let tol = match mask {
        MaskSource::Reference => tolerances.terms,
        MaskSource::Own => tolerances.own_mask_loss,
    };
    rows.push(GoldenRow {
        quantity: "loss".into(),
        computed: diag.loss as f64,
        expected: case.loss as f64,
        error: relative(diag.loss as f64, case.loss as f64),
        tolerance: tol,
    });
    if mask == MaskSource::Own {
        if let Some(reference) = &case.low_mask {
            let ours: Vec<f32> = output.low_mask().inner().into_data().convert::<f32>().to_vec().unwrap_or_default();
            let differ = ours.iter().zip(reference).filter(|(a, b)| (**a > 0.5) != (**b > 0.5)).count();
            rows.push(GoldenRow {
                quantity: format!("mask coefficients differing (of {})", reference.len()),
                computed: differ as f64,
                expected: 0.0,
                error: differ as f64 / reference.len() as f64,
                tolerance: tolerances.own_mask_fraction,
            });
        }
        let report = GoldenReport { case: case.name.clone(), mask, rows };
        return Ok(report);
    }
    for (name, computed, expected) in [
        ("avg_weight_low", diag.avg_weight_low, case.avg_weight_low),
        ("avg_weight_high", diag.avg_weight_high, case.avg_weight_high),
    ] {
        rows.push(GoldenRow {
            quantity: name.into(),
            computed: computed as f64,
            expected: expected as f64,
            error: relative(computed as f64, expected as f64),
            tolerance: tol,
        });
    }
    for (i, (ours, theirs)) in diag.layers.iter().zip(&case.per_layer).enumerate() {
        for (term, computed, expected) in [
            ("fam_low", &ours.fam_low, &theirs.fam_low),
            ("fam_high", &ours.fam_high, &theirs.fam_high),
            ("intra", &ours.intra, &theirs.intra),
            ("inter", &ours.inter, &theirs.inter),
        ] {
            rows.push(vector_row(format!("layer {i:>2} {term}"), computed, expected, tol));
        }
    }
    if let Some(expected) = &case.grad_students {
        let grads = output.loss.backward();
        let mut computed = Vec::with_capacity(expected.len());
        for (i, student) in students.iter().enumerate() {
            let g = student.grad(&grads).ok_or_else(|| FramerError::Golden {
                path: case.path.display().to_string(),
                message: format!("no gradient reached students[{i}]"),
            })?;
            computed.extend(g.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default());
        }
        let max_ref = expected.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
        let (mut max_diff, mut worst) = (0f64, 0usize);
        for (k, (&a, &e)) in computed.iter().zip(expected).enumerate() {
            let d = (a as f64 - e as f64).abs();
            if d > max_diff || d.is_nan() {
                max_diff = d;
                worst = k;
            }
        }
        rows.push(GoldenRow {
            quantity: "grad students (max-abs rel)".into(),
            computed: computed.get(worst).copied().unwrap_or(f32::NAN) as f64,
            expected: expected[worst] as f64,
            error: if max_diff.is_nan() { f64::INFINITY } else { max_diff / max_ref.max(1e-30) },
            tolerance: tolerances.gradients,
        });
    }
    Ok(GoldenReport { case: case.name.clone(), mask, rows })
}
