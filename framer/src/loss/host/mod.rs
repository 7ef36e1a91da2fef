//! The FRAMER loss and its gradient computed on the host, for CPU backends.
//!
//! The tensor path ([`super::tensor`], any backend) builds the loss from dense DFT matrix products
//! and lets autodiff differentiate it. On a CPU most of that time goes into the dense transform
//! and into dozens of elementwise passes over `[S, B, C, H, W]` tensors. This path computes exactly
//! the same quantities with FFTs (rustfft, two real planes packed into one complex transform),
//! fuses the per-band sums into one pass per student, and writes the gradient with respect to
//! every student in closed form (the adjoint of the FFT is an inverse FFT), in parallel over
//! planes and students:
//! - [`spectra`]: the transforms and the band masks;
//! - [`terms`]: keys, band energies, IntraCL, InterCL, FAW and FAM per student and sample;
//! - [`gradient`]: the closed-form gradient.

mod gradient;
mod spectra;
mod terms;

use std::sync::Mutex;

use burn::tensor::{Tensor, TensorData, backend::Backend};
use rayon::prelude::*;

use self::gradient::GradientCoefficients;
use self::spectra::{BandMasks, Geometry, Plans, Spectra};
use self::terms::{Bands, TermSettings, TermsBuilder, sample_terms};
use super::{FramerInput, FramerLossConfig, FramerOutput, LayerTerms};
use crate::{BandMaskKind, FramerError, dft};

/// Scratch buffers kept between calls by one [`super::FramerLoss`]: the spectra of a step are as
/// large as the students, and fresh pages cost more than the transforms on a CPU. At most
/// [`Scratch::SIZE`] buffers are kept; they hold whatever the largest recent problem needed.
#[derive(Default)]
pub(crate) struct Scratch {
    pool: Mutex<Vec<Vec<f32>>>,
}

impl Scratch {
    const SIZE: usize = 8;

    /// A buffer of `len` values with unspecified contents (every caller overwrites all of them).
    fn take(&self, len: usize) -> Vec<f32> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let best = (0..pool.len()).filter(|&i| pool[i].capacity() >= len).min_by_key(|&i| pool[i].capacity());
        match best {
            Some(i) => {
                let mut v = pool.swap_remove(i);
                v.resize(len, 0.0);
                v.truncate(len);
                v
            }
            None => vec![0.0; len],
        }
    }

    /// Returns buffers to the pool, keeping the largest.
    fn give(&self, buffers: impl IntoIterator<Item = Vec<f32>>) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.extend(buffers);
        pool.sort_by_key(|v| std::cmp::Reverse(v.capacity()));
        pool.truncate(Self::SIZE);
    }

    /// How many values the kept buffers hold.
    pub(crate) fn capacity(&self) -> usize {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).iter().map(Vec::capacity).sum()
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scratch {{ values: {} }}", self.capacity())
    }
}

/// Everything the host computation reads. Plain row-major layouts.
pub(crate) struct HostInput<'a> {
    /// `[batch, channels, height, width]`.
    shape: [usize; 4],
    /// `S` raw student predictions, each `B·C·H·W` values.
    students: &'a [Vec<f32>],
    /// The raw teacher prediction, `B·C·H·W`.
    teacher: &'a [f32],
    /// The noisy input, `B·C·H·W`.
    x_t: &'a [f32],
    /// Per sample: clean = `scale·raw + offset·x_t`.
    offset: &'a [f32],
    /// Per sample scale of the raw prediction.
    scale: &'a [f32],
    /// The random-layer negative of each student.
    negatives: &'a [usize],
    /// The weight of each student in the loss; `None`: all 1.
    weights: Option<&'a [f64]>,
    /// An injected low mask `B·C·H·W`, if any.
    low_mask: Option<&'a [f32]>,
    /// How to compute the mask when none is injected.
    mask: BandMaskKind,
    /// τ, FAW, FAM.
    settings: TermSettings,
    /// The samples that are queries (the loss averages over them; the others are keys only).
    queries: std::ops::Range<usize>,
    /// Work on the full spectrum even when the half would do.
    full_spectrum: bool,
    /// Also return the gradient with respect to `x_t`.
    want_x_t_gradient: bool,
}

/// The loss, its detached terms and the gradients.
struct HostOutput {
    /// The loss (mean over layers, `Σ_i w_i·layer_i / S` when weighted).
    loss: f32,
    /// `[S]` layer losses and the `[S, B]` terms (intra, inter, fam_low, fam_high, faw_low,
    /// faw_high).
    terms: terms::Terms,
    /// The low mask used, `B·C·H·W`, plain layout.
    low_mask: Vec<f32>,
    /// `∂loss/∂student_i` with respect to the raw predictions, `[S, B·C·H·W]` in one buffer
    /// (one large allocation is recycled by the allocator from call to call; many 1 MiB ones
    /// come back as fresh pages).
    student_gradients: Vec<f32>,
    /// `∂loss/∂x_t`, `B·C·H·W`, when asked for.
    x_t_gradient: Option<Vec<f32>>,
}

/// The loss on the host; its gradient enters the graph as
/// `loss + Σᵢ⟨sᵢ, gᵢ⟩ − detach(Σᵢ⟨sᵢ, gᵢ⟩)`, whose value is the loss and whose gradient with
/// respect to student `i` is `gᵢ`.
pub(super) fn forward<B: Backend>(
    config: &FramerLossConfig,
    scratch: &Scratch,
    input: FramerInput<B>,
    shape: [usize; 4],
    full_spectrum: bool,
) -> Result<FramerOutput<B>, FramerError> {
    let [batch, ..] = shape;
    let num_students = input.students.len();
    let device = input.teacher.device();
    let student_weights = input.effective_weights().map(<[f64]>::to_vec);
    let to_host = |t: &Tensor<B, 4>| -> Vec<f32> { t.to_data().convert::<f32>().into_vec().unwrap_or_default() };
    let (offset, scale) = input.parameterization.host_coefficients(batch)?;
    let students: Vec<Vec<f32>> = input.students.iter().map(to_host).collect();
    let teacher = to_host(&input.teacher);
    let x_t = to_host(&input.x_t);
    let low_mask = input.low_mask.as_ref().map(to_host);
    let tracked = B::ad_enabled(&device);
    // `is_require_grad` is true for leaves only. A gathered input's `x_t` is not a leaf (this
    // peer's rows inside the global batch), so its gradient is formed whenever the input has
    // query rows; otherwise only for a leaf `x_t` that requires it (the training engine's needs
    // none, and the extra pass over the gradients costs ≈ 10 % of the loss)
    let want_x_t_gradient = tracked && (input.x_t.is_require_grad() || input.query_rows.is_some());
    let out = compute(
        &HostInput {
            shape,
            students: &students,
            teacher: &teacher,
            x_t: &x_t,
            offset: &offset,
            scale: &scale,
            negatives: &input.negatives,
            weights: input.effective_weights(),
            low_mask: low_mask.as_deref(),
            mask: config.mask,
            settings: TermSettings {
                temperature: config.temperature,
                adaptive_weight: config.adaptive_weight,
                alignment_modulation: config.alignment_modulation,
            },
            queries: input.queries(batch),
            full_spectrum,
            want_x_t_gradient,
        },
        scratch,
    );

    let tensor4 = |v: Vec<f32>| Tensor::<B, 4>::from_data(TensorData::new(v, shape), &device);
    let terms2 = |v: Vec<f32>| Tensor::<B, 2>::from_data(TensorData::new(v, [num_students, batch]), &device);
    let mut loss = Tensor::<B, 1>::from_data(TensorData::new(vec![out.loss], [1]), &device);
    if tracked {
        // ⟨t, g⟩ as [1, n]·[n, 1] products: no temporary as large as the students
        let numel = shape.iter().product::<usize>();
        let gradients =
            Tensor::<B, 2>::from_data(TensorData::new(out.student_gradients, [num_students * numel, 1]), &device);
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
    let [intra, inter, fam_low, fam_high, faw_low, faw_high] = out.terms.values;
    Ok(FramerOutput {
        loss,
        terms: LayerTerms {
            layer: Tensor::from_data(TensorData::new(out.terms.layer, [num_students]), &device),
            intra: terms2(intra),
            inter: terms2(inter),
            fam_low: terms2(fam_low),
            fam_high: terms2(fam_high),
            faw_low: terms2(faw_low),
            faw_high: terms2(faw_high),
        },
        low_mask: tensor4(out.low_mask),
        student_weights,
    })
}

/// The loss, its terms and its gradients on host buffers.
fn compute(input: &HostInput<'_>, scratch: &Scratch) -> HostOutput {
    let [batch, channels, h, w] = input.shape;
    let num_students = input.students.len();

    // the injected mask decides whether the half spectrum suffices
    let symmetric = !input.full_spectrum && input.low_mask.is_none_or(|m| dft::is_conjugate_symmetric_values(m, h, w));
    let f = if symmetric { dft::half_width(w) } else { w };
    let geo = Geometry { batch, channels, h, w, f };
    let multiplicity: Vec<f32> = if symmetric { dft::half_multiplicity(w) } else { vec![1.0; w] };
    let plans = Plans::new(h, w);

    let spectra = Spectra::transform(input, geo, &plans, scratch);
    let masks = BandMasks::new(input.low_mask, input.mask, &spectra, geo);
    let teacher_mag = spectra.teacher_magnitude(geo);
    let bands = Bands::new(geo, &multiplicity, &masks, teacher_mag, scratch);
    let teacher_energy: Vec<[f64; 2]> = (0..batch).map(|b| bands.band_energies(teacher_mag, b)).collect();

    // pass 1: every student's norms, dots and energies
    let stats: Vec<Vec<terms::SampleStats>> = (0..num_students)
        .into_par_iter()
        .map(|i| {
            let m = spectra.student_magnitude(geo, i);
            let n = spectra.student_magnitude(geo, input.negatives[i]);
            (0..batch).map(|b| bands.statistics(m, n, b)).collect()
        })
        .collect();

    // the terms and the scalar coefficients of the gradient; student i's terms weigh
    // w_i/(S·B_q) in the loss for the B_q query samples, 0 for the others (keys only)
    let tau = input.settings.temperature;
    let queries = input.queries.clone();
    let unit = 1.0 / (num_students * queries.len()) as f64;
    let mut out = TermsBuilder::new(num_students, batch, queries.clone());
    let mut coefficients: Vec<Vec<GradientCoefficients>> = Vec::with_capacity(num_students);
    for (i, student) in stats.iter().enumerate() {
        let negative = &stats[input.negatives[i]];
        let scale = match input.weights {
            Some(w) => unit * w[i],
            None => unit,
        };
        let row = student
            .iter()
            .enumerate()
            .map(|(b, st)| {
                let t = sample_terms(st, negative, b, teacher_energy[b], input.settings);
                out.push(i, b, &t);
                let scale = if queries.contains(&b) { scale } else { 0.0 };
                GradientCoefficients::new(st, &t, negative, b, tau, scale)
            })
            .collect();
        coefficients.push(row);
    }
    let (loss, terms) = out.finish(input.weights);

    // pass 2: the gradients
    let mut student_gradients = gradient::student_gradients(input, &spectra, &bands, &coefficients, &plans);
    bands.recycle(scratch);
    spectra.recycle(scratch);
    let x_t_gradient = input.want_x_t_gradient.then(|| gradient::x_t_gradient(input, &mut student_gradients, geo));

    HostOutput { loss, terms, low_mask: masks.plain, student_gradients, x_t_gradient }
}
