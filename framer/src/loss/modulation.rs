//! FAW (frequency-based adaptive weight) and FAM (frequency-based alignment modulation): per-sample
//! weights of each layer's loss, both under stop-gradient.

use burn::tensor::{Tensor, activation::relu, backend::Backend};

const EPS: f64 = 1e-9;

/// Mean in-band magnitude per channel, averaged over channels (the reference's `E_band`):
/// `mean_c[ Σ_hw |X|·M / (Σ_hw M + 1e-9) ]`, for the low mask `M` and the high mask `1 − M`.
/// Computed without gradient (FAW is detached).
///
/// # Shapes
/// - `student`: `[S, B·C·A]` magnitudes (`A` = area of one channel's spectrum, any layout)
/// - `teacher`, `low`, `multiplicity`: `[1, B·C·A]`; `multiplicity` counts how many coefficients
///   of the full spectrum each stored one stands for (see [`crate::dft::half_multiplicity`])
/// - returns `([low, high] each [S, B], [low, high] each [B])`
pub fn band_energies<B: Backend>(
    student: Tensor<B, 2>,
    teacher: Tensor<B, 2>,
    low: Tensor<B, 2>,
    multiplicity: Tensor<B, 2>,
    batch: usize,
    channels: usize,
) -> ([Tensor<B, 2>; 2], [Tensor<B, 1>; 2]) {
    let [_, width] = student.dims();
    let area = width / (batch * channels);
    let (student, teacher, low) = (student.detach(), teacher.detach(), low.detach());
    let high = low.clone().neg().add_scalar(1.0) * multiplicity.clone();
    let low = low * multiplicity;
    let energy = |mag: Tensor<B, 2>, mask: Tensor<B, 2>| {
        let rows = mag.dims()[0];
        let count = mask.clone().reshape([batch * channels, area]).sum_dim(1).add_scalar(EPS);
        let sums = (mag * mask).reshape([rows * batch * channels, area]).sum_dim(1);
        (sums.reshape([rows, batch * channels]) / count.reshape([1, batch * channels]))
            .reshape([rows, batch, channels])
            .mean_dim(2)
            .reshape([rows, batch])
    };
    let students = [energy(student.clone(), low.clone()), energy(student, high.clone())];
    let teachers = [
        energy(teacher.clone(), low).reshape([batch]),
        energy(teacher, high).reshape([batch]),
    ];
    (students, teachers)
}

/// FAW: `w = 1 / (1 + |E_teacher − E_student| / (E_student + 1e-9))`, detached.
///
/// # Shapes
/// - `student`: `[S, B]` band energies of the students ([`band_energies`])
/// - `teacher`: `[B]` band energy of the teacher
/// - returns `[S, B]`
#[doc(alias = "FAW")]
pub fn frequency_adaptive_weight<B: Backend>(
    student: Tensor<B, 2>,
    teacher: Tensor<B, 1>,
) -> Tensor<B, 2> {
    let student = student.detach();
    let delta = (teacher.detach().unsqueeze::<2>() - student.clone()).abs() / student.add_scalar(EPS);
    delta.add_scalar(1.0).recip()
}

/// FAM: `a = ReLU(cos(q, k))`, the student–teacher alignment of the band, detached.
///
/// # Shapes
/// - `cosine`: `[S, B]`; returns `[S, B]`
#[doc(alias = "FAM")]
pub fn frequency_alignment_modulation<B: Backend>(cosine: Tensor<B, 2>) -> Tensor<B, 2> {
    relu(cosine.detach())
}
