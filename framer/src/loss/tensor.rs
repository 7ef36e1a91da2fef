//! The tensor path: the loss as tensor operations on the backend's device (dense DFT matrix
//! products, gradients by autodiff). Works on every backend; GPU backends take it by default.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use super::{
    FramerInput, FramerLossConfig, FramerOutput, LayerTerms, band_energies, frequency_adaptive_weight,
    frequency_alignment_modulation, inter_contrastive_loss, intra_contrastive_loss,
};
use crate::{FramerError, dft};

/// The loss as tensor operations; `full_spectrum` works on the full spectrum even when the half
/// would do.
pub(super) fn forward<B: Backend>(
    config: &FramerLossConfig,
    input: FramerInput<B>,
    [batch, channels, height, width]: [usize; 4],
    full_spectrum: bool,
) -> Result<FramerOutput<B>, FramerError> {
    let num_students = input.students.len();
    let device = input.teacher.device();
    let weights = input.effective_weights().map(<[f64]>::to_vec);
    let queries = input.queries(batch);

    // Clean estimates, laid out [S+1, B·C·H·W] (teacher first): per-sample factors become rows
    // broadcast over the leading axis, the fast path of every backend. The teacher is under
    // stop-gradient (`pred_hidden_states[-1].detach()`).
    let plane = channels * height * width;
    let (a, b) = input.parameterization.coefficients(batch, &device)?;
    let per_sample_row =
        |v: Tensor<B, 1>| v.reshape([batch, 1]).expand([batch, plane]).reshape([1, batch * plane]);
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
        None => config.mask.low_mask(teacher_full.clone()),
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

    let terms = terms(
        config,
        student_mag,
        teacher_mag,
        low,
        multiplicity,
        &input.negatives,
        [batch, channels],
    );
    let weight_low = terms.fam_low.clone() * terms.faw_low.clone();
    let weight_high = terms.fam_high.clone() * terms.faw_high.clone();
    // [S, B] → per layer mean over the query samples → mean over layers (Σ_i w_i·layer_i / S when the
    // students are weighted)
    let per_sample = weight_low * terms.intra.clone() + weight_high * terms.inter.clone();
    let per_layer = per_sample
        .narrow(1, queries.start, queries.len())
        .mean_dim(1)
        .reshape([num_students]);
    let loss = match weights.clone() {
        None => per_layer.clone().mean(),
        Some(w) => {
            let w = w.into_iter().map(|x| x as f32).collect();
            let w = Tensor::<B, 1>::from_data(TensorData::new(w, [num_students]), &device);
            (per_layer.clone() * w).sum().div_scalar(num_students as f64)
        }
    };

    Ok(FramerOutput {
        loss,
        terms: LayerTerms {
            layer: per_layer.detach(),
            intra: terms.intra.detach(),
            inter: terms.inter.detach(),
            ..terms
        },
        low_mask,
        student_weights: weights,
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
    config: &FramerLossConfig,
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
    let tau = config.temperature;
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
    let (fam_low, fam_high) = if config.alignment_modulation {
        (
            frequency_alignment_modulation(positive_low),
            frequency_alignment_modulation(positive_high),
        )
    } else {
        (ones(), ones())
    };
    let (faw_low, faw_high) = if config.adaptive_weight {
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
