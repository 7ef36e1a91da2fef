//! The FRAMER distillation loss: IntraCL on the low band, InterCL on the high band, each weighted
//! per sample by FAW and gated by FAM, averaged over the batch and then over the student layers.

mod contrastive;
mod host;
mod modulation;
mod output;

pub use contrastive::{inter_contrastive_loss, intra_contrastive_loss, l2_normalize};
pub use modulation::{band_energies, frequency_adaptive_weight, frequency_alignment_modulation};
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
    /// Where the loss is computed; [`LossExecution::Auto`] by default.
    pub execution: LossExecution,
}

/// Where [`FramerLoss::forward`] computes the loss. Both give the same values and gradients (up to
/// f32 rounding; the golden tests run both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LossExecution {
    /// [`Self::Host`] on the CPU backends (`flex`, `ndarray`, with or without autodiff),
    /// [`Self::Tensor`] elsewhere.
    #[default]
    Auto,
    /// Tensor operations on the backend's device (dense DFT matrix products, gradients by
    /// autodiff). Works on every backend.
    Tensor,
    /// On the host: FFTs (rustfft), fused per-band sums and a closed-form gradient, in parallel
    /// over planes and students; the gradient enters the autodiff graph through a linear term
    /// `Σᵢ ⟨studentᵢ, gᵢ⟩` whose value is cancelled. The data is copied to the host and back, so
    /// this pays off on CPU backends only. `x_t` receives its gradient only when it is a leaf that
    /// requires one (noisy inputs normally need none). The spectrum buffers (about 1.5× the
    /// students' size, up to eight buffers) are kept for the next call: fresh pages cost more than
    /// the transforms that fill them.
    Host,
}

impl Default for FramerLossConfig {
    fn default() -> Self {
        Self {
            mask: BandMaskKind::default(),
            temperature: 1.0,
            adaptive_weight: true,
            alignment_modulation: true,
            execution: LossExecution::Auto,
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

    /// Chooses where the loss is computed.
    pub fn with_execution(mut self, execution: LossExecution) -> Self {
        self.execution = execution;
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
    /// Where it runs follows [`FramerLossConfig::execution`]: by default on the host (FFTs and a
    /// closed-form gradient) for CPU backends, as tensor operations elsewhere.
    ///
    /// Returns the loss `[1]` with its detached per-layer terms.
    pub fn forward<B: Backend>(&self, input: FramerInput<B>) -> Result<FramerOutput<B>, FramerError> {
        self.forward_with(input, false)
    }

    /// [`Self::forward`], optionally on the full spectrum even when the half would do.
    fn forward_with<B: Backend>(
        &self,
        input: FramerInput<B>,
        full_spectrum: bool,
    ) -> Result<FramerOutput<B>, FramerError> {
        let [batch, channels, height, width] = input.validate()?;
        let num_students = input.students.len();
        let device = input.teacher.device();
        if self.runs_on_host::<B>(&device) {
            return self.forward_host(input, [batch, channels, height, width], full_spectrum);
        }

        // Clean estimates, laid out [S+1, B·C·H·W] (teacher first): per-sample factors become rows
        // broadcast over the leading axis, the fast path of every backend. The teacher is under
        // stop-gradient (`pred_hidden_states[-1].detach()`).
        let plane = channels * height * width;
        let (a, b) = input.parameterization.coefficients(batch)?;
        let per_sample_row = |v: Vec<f32>| {
            let row: Vec<f32> = v.iter().flat_map(|&c| std::iter::repeat_n(c, plane)).collect();
            Tensor::<B, 2>::from_data(TensorData::new(row, [1, batch * plane]), &device)
        };
        let x_t = input.x_t.reshape([1, batch * plane]);
        let offset = x_t * per_sample_row(a);
        let raw = Tensor::cat(
            vec![input.teacher.detach().unsqueeze::<5>(), Tensor::stack(input.students, 0)],
            0,
        )
        .reshape([num_students + 1, batch * plane]);
        let clean = raw * per_sample_row(b) + offset;

        // One transform for the teacher and all students: [(S+1)·B·C, H, W] → |X| for the width
        // frequencies 0..=W/2 (the rest mirror them).
        let half = dft::half_width(width);
        let half_mag = dft::half_magnitude(clean.reshape([
            (num_students + 1) * batch * channels,
            height,
            width,
        ]));
        let teacher_full = dft::mirror_full(half_mag.clone().narrow(0, 0, batch * channels).detach(), width)
            .reshape([batch, channels, height, width]);

        // Masks, shared by students and negatives.
        let symmetric =
            !full_spectrum && input.low_mask.as_ref().is_none_or(dft::is_conjugate_symmetric);
        let low_mask = match input.low_mask {
            Some(mask) => mask,
            None => self.config.mask.low_mask(teacher_full.clone()),
        }
        .detach();
        // Every term is a sum over coefficients of products that are conjugate-symmetric when the
        // mask is, so the half spectrum weighted by its multiplicity gives the full sums. Injected
        // masks need not be symmetric: they get the full spectrum.
        let (student_mag, teacher_mag, low, multiplicity) = if symmetric {
            let plane = channels * height * half;
            let mag = half_mag.reshape([num_students + 1, batch * plane]);
            let low = low_mask.clone().narrow(3, 0, half).reshape([1, batch * plane]);
            let row: Vec<f32> = dft::half_multiplicity(width)
                .into_iter()
                .cycle()
                .take(batch * plane)
                .collect();
            let multiplicity = Tensor::<B, 2>::from_data(TensorData::new(row, [1, batch * plane]), &device);
            (mag.clone().narrow(0, 1, num_students), mag.narrow(0, 0, 1).detach(), low, multiplicity)
        } else {
            let plane = channels * height * width;
            let mag = dft::mirror_full(half_mag, width).reshape([num_students + 1, batch * plane]);
            let low = low_mask.clone().reshape([1, batch * plane]);
            let ones = Tensor::<B, 2>::ones([1, batch * plane], &device);
            (mag.clone().narrow(0, 1, num_students), mag.narrow(0, 0, 1).detach(), low, ones)
        };

        let terms = self.terms(
            student_mag,
            teacher_mag,
            low,
            multiplicity,
            &input.negatives,
            [batch, channels],
        );
        let weight_low = terms.fam_low.clone() * terms.faw_low.clone();
        let weight_high = terms.fam_high.clone() * terms.faw_high.clone();
        // [S, B] → per layer mean over the batch → mean over layers
        let per_layer = (weight_low * terms.intra.clone() + weight_high * terms.inter.clone())
            .mean_dim(1)
            .reshape([num_students]);
        let loss = per_layer.clone().mean();

        Ok(FramerOutput {
            loss,
            terms: LayerTerms {
                layer: per_layer.detach(),
                intra: terms.intra.detach(),
                inter: terms.inter.detach(),
                ..terms
            },
            low_mask,
        })
    }

    /// Whether this evaluation goes through [`host`].
    fn runs_on_host<B: Backend>(&self, device: &B::Device) -> bool {
        match self.config.execution {
            LossExecution::Tensor => false,
            LossExecution::Host => true,
            LossExecution::Auto => {
                let name = B::name(device);
                let mut inner = name.as_str();
                while let Some(rest) = inner.strip_prefix("autodiff<") {
                    inner = rest;
                }
                inner.starts_with("flex") || inner.starts_with("ndarray")
            }
        }
    }

    /// The loss through [`host::compute`]; its gradient enters the graph as
    /// `loss + Σᵢ⟨sᵢ, gᵢ⟩ − detach(Σᵢ⟨sᵢ, gᵢ⟩)`, whose value is the loss and whose gradient with
    /// respect to student `i` is `gᵢ`.
    fn forward_host<B: Backend>(
        &self,
        input: FramerInput<B>,
        shape: [usize; 4],
        full_spectrum: bool,
    ) -> Result<FramerOutput<B>, FramerError> {
        let [batch, ..] = shape;
        let num_students = input.students.len();
        let device = input.teacher.device();
        let to_host = |t: &Tensor<B, 4>| -> Vec<f32> {
            t.to_data().convert::<f32>().into_vec().unwrap_or_default()
        };
        let (offset, scale) = input.parameterization.coefficients(batch)?;
        let students: Vec<Vec<f32>> = input.students.iter().map(to_host).collect();
        let teacher = to_host(&input.teacher);
        let x_t = to_host(&input.x_t);
        let low_mask = input.low_mask.as_ref().map(to_host);
        let tracked = B::ad_enabled(&device);
        let want_x_t_gradient = tracked && input.x_t.is_require_grad();
        let out = host::compute(&host::HostInput {
            shape,
            students: &students,
            teacher: &teacher,
            x_t: &x_t,
            offset: &offset,
            scale: &scale,
            negatives: &input.negatives,
            low_mask: low_mask.as_deref(),
            mask: self.config.mask,
            temperature: self.config.temperature,
            adaptive_weight: self.config.adaptive_weight,
            alignment_modulation: self.config.alignment_modulation,
            full_spectrum,
            want_x_t_gradient,
        });

        let tensor4 = |v: Vec<f32>| Tensor::<B, 4>::from_data(TensorData::new(v, shape), &device);
        let terms2 = |v: Vec<f32>| Tensor::<B, 2>::from_data(TensorData::new(v, [num_students, batch]), &device);
        let mut loss = Tensor::<B, 1>::from_data(TensorData::new(vec![out.loss], [1]), &device);
        if tracked {
            // ⟨t, g⟩ as [1, n]·[n, 1] products: no temporary as large as the students
            let numel = shape.iter().product::<usize>();
            let gradients = Tensor::<B, 2>::from_data(
                TensorData::new(out.student_gradients, [num_students * numel, 1]),
                &device,
            );
            let mut linear: Option<Tensor<B, 1>> = None;
            let mut add = |t: Tensor<B, 4>, g: Tensor<B, 2>| {
                let term = t.reshape([1, numel]).matmul(g).reshape([1]);
                linear = Some(match linear.take() {
                    Some(sum) => sum + term,
                    None => term,
                });
            };
            for (i, s) in input.students.into_iter().enumerate() {
                add(s, gradients.clone().narrow(0, i * numel, numel));
            }
            if let Some(g) = out.x_t_gradient {
                add(input.x_t, Tensor::from_data(TensorData::new(g, [numel, 1]), &device));
            }
            if let Some(linear) = linear {
                loss = loss + (linear.clone() - linear.detach());
            }
        }
        Ok(FramerOutput {
            loss,
            terms: LayerTerms {
                layer: Tensor::from_data(TensorData::new(out.layer, [num_students]), &device),
                intra: terms2(out.intra),
                inter: terms2(out.inter),
                fam_low: terms2(out.fam_low),
                fam_high: terms2(out.fam_high),
                faw_low: terms2(out.faw_low),
                faw_high: terms2(out.faw_high),
            },
            low_mask: tensor4(out.low_mask),
        })
    }

    /// Every per-layer, per-sample term, `[S, B]` each.
    ///
    /// `student_mag` is `[S, B·D]` (tracked); `teacher_mag`, `low` and `multiplicity` are
    /// `[1, B·D]` (detached), with `D = C·H·W'` over the coefficients kept (`W' = W/2 + 1` with
    /// multiplicities 1 or 2, or `W` with multiplicity 1). With `m = |X|·M` the masked magnitudes
    /// of a band, the cosines are `Σ c·m·k̂ / ‖m‖`; the in-batch InterCL logits are one matmul
    /// against every sample's key.
    fn terms<B: Backend>(
        &self,
        student_mag: Tensor<B, 2>,
        teacher_mag: Tensor<B, 2>,
        low: Tensor<B, 2>,
        multiplicity: Tensor<B, 2>,
        negatives: &[usize],
        [batch, channels]: [usize; 2],
    ) -> LayerTerms<B> {
        let [num_students, width] = student_mag.dims();
        let dim = width / batch;
        let device = student_mag.device();
        let tau = self.config.temperature;
        let high = low.clone().neg().add_scalar(1.0);
        let per_sample = |t: Tensor<B, 2>| -> Tensor<B, 2> {
            let rows = t.dims()[0];
            t.reshape([rows, batch, dim]).sum_dim(2).reshape([rows, batch])
        };
        let c = multiplicity;
        let normalize = |t: Tensor<B, 2>| -> (Tensor<B, 2>, Tensor<B, 2>) {
            // max(‖t‖, 1e-12) as √max(‖t‖², 1e-24): an empty band gets a zero gradient, not
            // 0·∞ = NaN through the square root (PyTorch's norm has a zero subgradient at 0)
            let norm = per_sample(t.clone() * t.clone() * c.clone()).clamp_min(1e-24).sqrt(); // [rows, B]
            (t, norm)
        };

        // teacher keys k̂ (detached), [1, B·D] and [B, D]
        let (key_low, key_low_norm) = normalize(teacher_mag.clone() * low.clone());
        let key_low = (key_low.reshape([batch, dim]) / key_low_norm.reshape([batch, 1]))
            .reshape([1, width])
            * c.clone();
        let (key_high, key_high_norm) = normalize(teacher_mag.clone() * high.clone());
        let key_high = (key_high * c.clone()).reshape([batch, dim]) / key_high_norm.reshape([batch, 1]);

        // the random-layer negatives, detached (`.detach()` on `n` and `H` in the reference)
        let index = Tensor::<B, 1, Int>::from_data(
            TensorData::new(negatives.iter().map(|&j| j as i64).collect(), [num_students]),
            &device,
        );
        let negative_mag = student_mag.clone().detach().select(0, index);

        // low band: IntraCL
        let (student_low, norm_low) = normalize(student_mag.clone() * low.clone());
        let (negative_low, negative_norm_low) = normalize(negative_mag.clone() * low.clone());
        let positive_low = per_sample(student_low.clone() * key_low) / norm_low.clone();
        let negative_low =
            per_sample(student_low * negative_low * c.clone()) / (norm_low * negative_norm_low);
        let intra = intra_contrastive_loss(positive_low.clone(), negative_low, tau);

        // high band: InterCL against every sample's teacher and every sample's negative
        let (student_high, norm_high) = normalize(student_mag.clone() * high.clone());
        let (negative_high, negative_norm_high) = normalize(negative_mag * high.clone());
        let negative_high = negative_high * c.clone();
        let student_high = student_high.reshape([num_students, batch, dim]);
        let to_teachers = student_high
            .clone()
            .reshape([num_students * batch, dim])
            .matmul(key_high.transpose())
            .reshape([num_students, batch, batch]);
        let to_negatives = student_high.matmul(negative_high.reshape([num_students, batch, dim]).swap_dims(1, 2))
            / negative_norm_high.unsqueeze_dim::<3>(1); // [S, B, B'] / [S, 1, B']
        let logits =
            Tensor::cat(vec![to_teachers, to_negatives], 2) / norm_high.clone().unsqueeze_dim::<3>(2);
        let eye = Tensor::<B, 2>::eye(batch, &device).unsqueeze::<3>(); // [1, B, B']
        let positive_high = (logits.clone().narrow(2, 0, batch) * eye).sum_dim(2).reshape([num_students, batch]);
        let inter = inter_contrastive_loss(logits, positive_high.clone(), tau);

        let ones = || Tensor::<B, 2>::ones([num_students, batch], &device);
        let (fam_low, fam_high) = if self.config.alignment_modulation {
            (
                frequency_alignment_modulation(positive_low),
                frequency_alignment_modulation(positive_high),
            )
        } else {
            (ones(), ones())
        };
        let (faw_low, faw_high) = if self.config.adaptive_weight {
            let (student, teacher) =
                band_energies(student_mag, teacher_mag, low, c, batch, channels);
            let [student_low, student_high] = student;
            (
                frequency_adaptive_weight(student_low, teacher[0].clone()),
                frequency_adaptive_weight(student_high, teacher[1].clone()),
            )
        } else {
            (ones(), ones())
        };
        LayerTerms {
            layer: Tensor::zeros([num_students], &device),
            intra,
            inter,
            fam_low,
            fam_high,
            faw_low,
            faw_high,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::Distribution;

    /// The half spectrum weighted by multiplicities must give the full-spectrum sums exactly (up to
    /// rounding), gradients included, for even and odd widths and both mask kinds.
    #[test]
    fn half_spectrum_equals_full_spectrum() {
        type A = Autodiff<Flex>;
        let device = Default::default();
        for (shape, mask) in [
            ([2, 3, 8, 10], BandMaskKind::Quantile { cutoff: 0.3 }),
            ([3, 2, 7, 9], BandMaskKind::Quantile { cutoff: 0.2 }),
            ([2, 2, 6, 5], BandMaskKind::Radial { radius: 0.4 }),
        ] {
            let random = || Tensor::<A, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let students: Vec<Tensor<A, 4>> = (0..3).map(|_| random().require_grad()).collect();
            let input = FramerInput::new(
                students.clone(),
                random(),
                random(),
                Parameterization::RectifiedFlow { sigmas: vec![0.5; shape[0]] },
                vec![2, 0, 1],
            );
            let loss = FramerLossConfig::new()
                .with_mask(mask)
                .with_execution(LossExecution::Tensor)
                .init()
                .unwrap();
            let run = |full: bool| {
                let out = loss.forward_with(input.clone(), full).unwrap();
                let value: f32 = out.loss.clone().into_scalar();
                let grads = out.loss.backward();
                let g: Vec<f32> = students[0].grad(&grads).unwrap().into_data().to_vec().unwrap();
                (value, g)
            };
            let (half, half_grad) = run(false);
            let (full, full_grad) = run(true);
            assert!((half - full).abs() < 1e-5 * full.abs(), "{shape:?}: {half} vs {full}");
            let scale = full_grad.iter().fold(0f32, |m, g| m.max(g.abs()));
            for (a, b) in half_grad.iter().zip(&full_grad) {
                assert!((a - b).abs() < 1e-4 * scale, "{shape:?}: gradient {a} vs {b}");
            }
        }
    }

    /// Host path against tensor path: values, every term, the mask and the gradients with
    /// respect to the students and to `x_t`, on shapes with odd sizes, an odd number of planes,
    /// both mask kinds, an injected asymmetric mask, FAW/FAM off and three parameterizations.
    #[test]
    fn host_path_equals_tensor_path() {
        type A = Autodiff<Flex>;
        let device = Default::default();
        struct Case {
            shape: [usize; 4],
            students: usize,
            config: FramerLossConfig,
            param: Parameterization,
            asymmetric_mask: bool,
        }
        let base = FramerLossConfig::new();
        let cases = [
            Case { shape: [2, 3, 8, 10], students: 3, config: base.clone(), param: Parameterization::RectifiedFlow { sigmas: vec![0.3, 0.9] }, asymmetric_mask: false },
            Case { shape: [1, 3, 7, 9], students: 4, config: base.clone().with_temperature(0.5), param: Parameterization::Sample, asymmetric_mask: false },
            Case { shape: [3, 2, 6, 5], students: 2, config: base.clone().with_mask(BandMaskKind::Radial { radius: 0.4 }), param: Parameterization::Epsilon { alphas_cumprod: vec![0.9, 0.5, 0.2] }, asymmetric_mask: false },
            Case { shape: [2, 2, 8, 8], students: 3, config: base.clone().with_adaptive_weight(false), param: Parameterization::RectifiedFlow { sigmas: vec![0.5, 0.1] }, asymmetric_mask: true },
            Case { shape: [2, 1, 1, 5], students: 2, config: base.clone(), param: Parameterization::RectifiedFlow { sigmas: vec![0.4, 0.6] }, asymmetric_mask: false },
            Case { shape: [1, 3, 5, 1], students: 3, config: base.clone().with_mask(BandMaskKind::Radial { radius: 0.5 }), param: Parameterization::RectifiedFlow { sigmas: vec![0.4] }, asymmetric_mask: false },
            Case { shape: [2, 1, 5, 4], students: 3, config: base.clone().with_alignment_modulation(false).with_mask(BandMaskKind::Quantile { cutoff: 0.6 }), param: Parameterization::RectifiedFlow { sigmas: vec![0.7, 0.2] }, asymmetric_mask: false },
        ];
        // deterministic inputs (the backend's generator is shared by concurrent tests)
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        for case in cases {
            let shape = case.shape;
            let numel = shape.iter().product::<usize>();
            let mut random = || {
                // sums of uniforms: roughly normal
                let values: Vec<f32> = (0..numel).map(|_| next() + next() + next() - 1.5).collect();
                Tensor::<A, 4>::from_data(TensorData::new(values, shape), &device)
            };
            let students: Vec<Tensor<A, 4>> = (0..case.students).map(|_| random().require_grad()).collect();
            let x_t = random().require_grad();
            let negatives: Vec<usize> = (0..case.students).map(|i| (i + 1) % case.students).collect();
            let mut input =
                FramerInput::new(students.clone(), random(), x_t.clone(), case.param.clone(), negatives);
            if case.asymmetric_mask {
                let values: Vec<f32> = (0..numel).map(|_| if next() < 0.3 { 1.0 } else { 0.0 }).collect();
                let mask = Tensor::<A, 4>::from_data(TensorData::new(values, shape), &device);
                assert!(!dft::is_conjugate_symmetric(&mask));
                input = input.with_low_mask(mask);
            }
            let run = |execution: LossExecution| {
                let loss = case.config.clone().with_execution(execution).init().unwrap();
                let out = loss.forward(input.clone()).unwrap();
                let diag = out.diagnostics();
                let mask: Vec<f32> = out.low_mask().into_data().to_vec().unwrap();
                let grads = out.loss.backward();
                let host = |t: &Tensor<A, 4>| -> Vec<f32> { t.grad(&grads).unwrap().into_data().to_vec().unwrap() };
                let mut g: Vec<Vec<f32>> = students.iter().map(host).collect();
                g.push(host(&x_t));
                (diag, mask, g)
            };
            let (host_diag, host_mask, host_grads) = run(LossExecution::Host);
            let (tensor_diag, tensor_mask, tensor_grads) = run(LossExecution::Tensor);
            let what = format!("{shape:?} {:?}", case.config);
            assert_eq!(host_mask, tensor_mask, "{what}: masks");
            let close = |a: f32, b: f32, scale: f32, tol: f32, name: &str| {
                assert!((a - b).abs() <= tol * scale.max(1e-6), "{what}: {name}: host {a} vs tensor {b}");
            };
            close(host_diag.loss, tensor_diag.loss, tensor_diag.loss.abs(), 2e-5, "loss");
            close(host_diag.avg_weight_low, tensor_diag.avg_weight_low, 1.0, 2e-5, "avg_weight_low");
            close(host_diag.avg_weight_high, tensor_diag.avg_weight_high, 1.0, 2e-5, "avg_weight_high");
            for (h, t) in host_diag.layers.iter().zip(&tensor_diag.layers) {
                close(h.loss, t.loss, t.loss.abs(), 2e-5, "layer");
                for (name, hv, tv) in [
                    ("intra", &h.intra, &t.intra),
                    ("inter", &h.inter, &t.inter),
                    ("fam_low", &h.fam_low, &t.fam_low),
                    ("fam_high", &h.fam_high, &t.fam_high),
                    ("faw_low", &h.faw_low, &t.faw_low),
                    ("faw_high", &h.faw_high, &t.faw_high),
                ] {
                    for (a, b) in hv.iter().zip(tv) {
                        close(*a, *b, b.abs(), 2e-5, name);
                    }
                }
            }
            for (k, (h, t)) in host_grads.iter().zip(&tensor_grads).enumerate() {
                let scale = t.iter().fold(0f32, |m, g| m.max(g.abs()));
                // x_t (the last) has no influence under x0-prediction
                let x0 = matches!(case.param, Parameterization::Sample);
                assert!(scale > 0.0 || (k == case.students && x0), "{what}: gradient {k} is zero");
                for (a, b) in h.iter().zip(t) {
                    close(*a, *b, scale, 2e-4, &format!("gradient {k}"));
                }
            }
        }
    }

    /// An empty band (here an injected all-zero low mask) has a zero-norm student vector: the
    /// reference's `F.normalize` gives it a finite gradient, and so must both paths (the tensor
    /// path once produced 0·∞ = NaN through the square root of the norm).
    #[test]
    fn empty_band_gives_finite_gradients() {
        type A = Autodiff<Flex>;
        let device = Default::default();
        let shape = [2, 2, 4, 6];
        let random = || Tensor::<A, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let students: Vec<Tensor<A, 4>> = (0..3).map(|_| random().require_grad()).collect();
        let input = FramerInput::new(
            students.clone(),
            random(),
            random(),
            Parameterization::RectifiedFlow { sigmas: vec![0.5, 0.5] },
            vec![1, 2, 0],
        )
        .with_low_mask(Tensor::zeros(shape, &device));
        let mut results = Vec::new();
        for execution in [LossExecution::Tensor, LossExecution::Host] {
            let loss = FramerLossConfig::new().with_execution(execution).init().unwrap();
            let out = loss.forward(input.clone()).unwrap();
            let value: f32 = out.loss.clone().into_scalar();
            let grads = out.loss.backward();
            let g: Vec<f32> = students[0].grad(&grads).unwrap().into_data().to_vec().unwrap();
            assert!(value.is_finite(), "{execution:?}: loss {value}");
            assert!(g.iter().all(|v| v.is_finite()), "{execution:?}: non-finite gradient");
            assert!(g.iter().any(|&v| v != 0.0), "{execution:?}: the high band still has a gradient");
            results.push((value, g));
        }
        let (tensor, host) = (&results[0], &results[1]);
        assert!((tensor.0 - host.0).abs() < 1e-5 * tensor.0.abs());
        let scale = tensor.1.iter().fold(0f32, |m, g| m.max(g.abs()));
        for (a, b) in tensor.1.iter().zip(&host.1) {
            assert!((a - b).abs() < 2e-4 * scale, "{a} vs {b}");
        }
    }

    /// A NaN or infinity in a student reaches the loss as a non-finite value (which the engine's
    /// guard catches) on both paths; it does not panic in the mask selection or the FFTs.
    #[test]
    fn non_finite_students_give_a_non_finite_loss_not_a_panic() {
        type A = Autodiff<Flex>;
        let device = Default::default();
        let shape = [2, 2, 6, 6];
        for bad in [f32::NAN, f32::INFINITY] {
            let mut values = vec![0.25f32; 2 * 2 * 6 * 6];
            values[7] = bad;
            let broken = Tensor::<A, 4>::from_data(TensorData::new(values, shape), &device).require_grad();
            let random = || Tensor::<A, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let input = FramerInput::new(
                vec![broken, random().require_grad(), random().require_grad()],
                random(),
                random(),
                Parameterization::RectifiedFlow { sigmas: vec![0.5, 0.5] },
                vec![1, 2, 0],
            );
            for execution in [LossExecution::Tensor, LossExecution::Host] {
                let loss = FramerLossConfig::new().with_execution(execution).init().unwrap();
                let value: f32 = loss.forward(input.clone()).unwrap().loss.into_scalar();
                assert!(!value.is_finite(), "{execution:?} with {bad}: loss {value}");
            }
        }
    }
}
