//! The FRAMER distillation loss: IntraCL on the low band, InterCL on the high band, each weighted
//! per sample by FAW and gated by FAM, averaged over the batch and then over the student layers.

mod contrastive;
mod modulation;
mod output;

pub use contrastive::{inter_contrastive_loss, intra_contrastive_loss, l2_normalize};
pub use modulation::{frequency_adaptive_weight, frequency_alignment_modulation, mean_band_energy};
pub use output::{FramerDiagnostics, FramerOutput, LayerDiagnostics, LayerTerms};

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use crate::{BandMaskKind, FramerError, Parameterization, dft, negatives::validate_negatives};

/// Settings of the FRAMER loss. The defaults are the reference's (`--cutoff 0.2`, `--tau_high 1.0`,
/// FAW and FAM on). The outer weight λ (`--lambda_framer`) is applied by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct FramerLossConfig {
    /// How the teacher spectrum is split into bands.
    pub mask: BandMaskKind,
    /// Temperature τ of both contrastive losses (`--tau_high`).
    pub temperature: f64,
    /// Frequency-based Adaptive Weight (FAW) on; when off, the weight is 1.
    pub adaptive_weight: bool,
    /// Frequency-based Alignment Modulation (FAM) on; when off, the gate is 1.
    pub alignment_modulation: bool,
}

impl Default for FramerLossConfig {
    fn default() -> Self {
        Self {
            mask: BandMaskKind::default(),
            temperature: 1.0,
            adaptive_weight: true,
            alignment_modulation: true,
        }
    }
}

impl FramerLossConfig {
    /// The reference settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the band mask.
    pub fn with_mask(mut self, mask: BandMaskKind) -> Self {
        self.mask = mask;
        self
    }

    /// Sets the contrastive temperature τ.
    pub fn with_temperature(mut self, temperature: f64) -> Self {
        self.temperature = temperature;
        self
    }

    /// Turns FAW on or off.
    pub fn with_adaptive_weight(mut self, on: bool) -> Self {
        self.adaptive_weight = on;
        self
    }

    /// Turns FAM on or off.
    pub fn with_alignment_modulation(mut self, on: bool) -> Self {
        self.alignment_modulation = on;
        self
    }

    /// Validates the settings and builds the loss.
    pub fn init(&self) -> Result<FramerLoss, FramerError> {
        self.mask.validate()?;
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(FramerError::NonPositiveTemperature(self.temperature));
        }
        Ok(FramerLoss { config: self.clone() })
    }
}

/// Everything the loss reads at one denoising step.
///
/// # Shapes
/// - `students`: `S ≥ 2` tensors `[batch, channels, height, width]`, raw predictions of the
///   intermediate layers in the teacher's space (after the readout)
/// - `teacher`: `[batch, channels, height, width]`, the final prediction (detached by the loss)
/// - `x_t`: `[batch, channels, height, width]`, the noisy input
/// - `negatives`: `S` indices, `negatives[i] ≠ i` (see [`crate::NegativeSampler`])
/// - `low_mask`: optional `[batch, channels, height, width]` low-band mask in the plain FFT layout,
///   replacing the mask the loss would compute (e.g. the reference's own masks)
#[derive(Debug, Clone)]
pub struct FramerInput<B: Backend> {
    /// Raw predictions of the student layers.
    pub students: Vec<Tensor<B, 4>>,
    /// Raw prediction of the final layer.
    pub teacher: Tensor<B, 4>,
    /// The noisy sample the predictions were made from.
    pub x_t: Tensor<B, 4>,
    /// How predictions become clean estimates.
    pub parameterization: Parameterization,
    /// The random-layer negative of each student.
    pub negatives: Vec<usize>,
    /// An injected low-band mask, if any.
    pub low_mask: Option<Tensor<B, 4>>,
}

impl<B: Backend> FramerInput<B> {
    /// An input with the mask computed by the loss.
    pub fn new(
        students: Vec<Tensor<B, 4>>,
        teacher: Tensor<B, 4>,
        x_t: Tensor<B, 4>,
        parameterization: Parameterization,
        negatives: Vec<usize>,
    ) -> Self {
        Self { students, teacher, x_t, parameterization, negatives, low_mask: None }
    }

    /// Injects a low-band mask `[batch, channels, height, width]` (plain FFT layout).
    pub fn with_low_mask(mut self, low_mask: Tensor<B, 4>) -> Self {
        self.low_mask = Some(low_mask);
        self
    }

    fn validate(&self) -> Result<[usize; 4], FramerError> {
        let shape = self.teacher.dims();
        if shape[0] == 0 {
            return Err(FramerError::EmptyBatch("teacher"));
        }
        if self.students.len() < 2 {
            return Err(FramerError::TooFewStudents(self.students.len()));
        }
        let mismatch = |name: String, got: [usize; 4]| FramerError::ShapeMismatch {
            name,
            expected: shape.to_vec(),
            got: got.to_vec(),
        };
        for (i, s) in self.students.iter().enumerate() {
            if s.dims() != shape {
                return Err(mismatch(format!("students[{i}]"), s.dims()));
            }
        }
        if self.x_t.dims() != shape {
            return Err(mismatch("x_t".into(), self.x_t.dims()));
        }
        if let Some(m) = &self.low_mask
            && m.dims() != shape
        {
            return Err(mismatch("low_mask".into(), m.dims()));
        }
        validate_negatives(&self.negatives, self.students.len())?;
        Ok(shape)
    }
}

/// The FRAMER distillation loss (built by [`FramerLossConfig::init`]).
#[doc(alias = "framer_distillation_loss")]
#[derive(Debug, Clone, PartialEq)]
pub struct FramerLoss {
    config: FramerLossConfig,
}

impl FramerLoss {
    /// The settings this loss was built with.
    pub fn config(&self) -> &FramerLossConfig {
        &self.config
    }

    /// Evaluates the loss at one step.
    ///
    /// Per student `i` and sample `b` (bands `low`/`high`, `q` the L2-normalised masked magnitude
    /// spectrum of the student's clean estimate, `k` the teacher's, `n` the negative student's):
    /// `layer_i = mean_b[ fam_low·faw_low·IntraCL + fam_high·faw_high·InterCL ]`, and the loss is
    /// `mean_i layer_i`. Gradients reach the students only through `q`: the teacher, the negatives,
    /// FAW and FAM are detached, as in the reference. Each layer is transformed once.
    ///
    /// Returns the loss `[1]` with its detached per-layer terms.
    pub fn forward<B: Backend>(&self, input: FramerInput<B>) -> Result<FramerOutput<B>, FramerError> {
        let [batch, channels, height, width] = input.validate()?;
        let num_students = input.students.len();
        let device = input.teacher.device();

        // Clean estimates; the teacher is under stop-gradient (`pred_hidden_states[-1].detach()`).
        let teacher = input.parameterization.clean_estimate(input.teacher.detach(), input.x_t.clone())?;
        let students: Tensor<B, 5> = Tensor::stack(input.students, 0);
        let students = input.parameterization.clean_estimate(students, input.x_t)?;

        // One transform for the teacher and all students: [(S+1)·B·C, H, W] → [.., W, H].
        let all = Tensor::cat(vec![teacher.detach().unsqueeze::<5>(), students], 0);
        let magnitude = dft::magnitude_transposed(all.reshape([
            (num_students + 1) * batch * channels,
            height,
            width,
        ]))
        .reshape([num_students + 1, batch, channels, width, height]);
        let teacher_mag: Tensor<B, 4> =
            magnitude.clone().narrow(0, 0, 1).reshape([batch, channels, width, height]).detach();
        let student_mag = magnitude.narrow(0, 1, num_students);

        // Masks in the transposed layout, shared by students and negatives.
        let low = match input.low_mask {
            Some(mask) => mask.swap_dims(2, 3),
            None => self.config.mask.low_mask(teacher_mag.clone()),
        }
        .detach();
        let high = low.clone().neg().add_scalar(1.0);

        let negatives = Tensor::<B, 1, Int>::from_data(
            TensorData::new(input.negatives.iter().map(|&j| j as i64).collect(), [num_students]),
            &device,
        );

        let band = |mask: Tensor<B, 4>, kind: Band| {
            self.band_terms(student_mag.clone(), teacher_mag.clone(), mask, kind, negatives.clone())
        };
        let (intra, fam_low, faw_low) = band(low.clone(), Band::Low);
        let (inter, fam_high, faw_high) = band(high, Band::High);

        let weight_low = fam_low.clone() * faw_low.clone();
        let weight_high = fam_high.clone() * faw_high.clone();
        let per_layer = (weight_low.clone() * intra.clone() + weight_high.clone() * inter.clone())
            .mean_dim(1)
            .reshape([num_students]);
        let loss = per_layer.clone().mean();

        Ok(FramerOutput {
            loss,
            terms: LayerTerms {
                layer: per_layer.detach(),
                intra: intra.detach(),
                inter: inter.detach(),
                fam_low,
                fam_high,
                faw_low,
                faw_high,
            },
            low_mask_transposed: low,
        })
    }

    /// The contrastive loss, FAM gate and FAW weight of one band, each `[S, B]`.
    ///
    /// `student_mag` is `[S, B, C, W, H]`, `teacher_mag` and `mask` `[B, C, W, H]`.
    fn band_terms<B: Backend>(
        &self,
        student_mag: Tensor<B, 5>,
        teacher_mag: Tensor<B, 4>,
        mask: Tensor<B, 4>,
        band: Band,
        negatives: Tensor<B, 1, Int>,
    ) -> (Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 2>) {
        let [num_students, batch, channels, width, height] = student_mag.dims();
        let device = student_mag.device();
        let student_band = student_mag * mask.clone().unsqueeze::<5>();
        let teacher_band = teacher_mag * mask.clone();
        let faw = if self.config.adaptive_weight {
            let student_energy = mean_band_energy(student_band.clone(), mask.clone());
            let teacher_energy =
                mean_band_energy(teacher_band.clone().unsqueeze::<5>(), mask).reshape([batch]);
            frequency_adaptive_weight(student_energy, teacher_energy)
        } else {
            Tensor::ones([num_students, batch], &device)
        };
        let dim = channels * width * height;
        let q = l2_normalize(student_band.reshape([num_students, batch, dim]));
        let k = l2_normalize(teacher_band.reshape([batch, dim]));
        // the random-layer negative is detached (`.detach()` on `n` / `H` in the reference)
        let n = q.clone().detach().select(0, negatives);
        let positive =
            (q.clone() * k.clone().unsqueeze::<3>()).sum_dim(2).reshape([num_students, batch]);
        let fam = if self.config.alignment_modulation {
            frequency_alignment_modulation(positive.clone())
        } else {
            Tensor::ones([num_students, batch], &device)
        };
        let tau = self.config.temperature;
        let loss = match band {
            Band::Low => intra_contrastive_loss(q, positive, n, tau),
            Band::High => inter_contrastive_loss(q, positive, k, n, tau),
        };
        (loss, fam, faw)
    }
}

#[derive(Debug, Clone, Copy)]
enum Band {
    Low,
    High,
}
