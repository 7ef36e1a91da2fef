//! FAW (frequency-based adaptive weight) and FAM (frequency-based alignment modulation): per-sample
//! weights of each layer's loss, both under stop-gradient.

use burn::tensor::{Tensor, activation::relu, backend::Backend};

const EPS: f64 = 1e-9;

/// Mean in-band magnitude per channel, averaged over channels (the reference's `E_band`):
/// `mean_c[ Σ_hw |X|·M / (Σ_hw M + 1e-9) ]`, for the low mask `M` and the high mask `1 − M`.
/// Computed without gradient (FAW is detached).
///
/// # Shapes
/// - `student`: `[B, S, D]` magnitudes, `D = C·H·W` (any fixed layout of the last two axes)
/// - `teacher`, `low`: `[B, D]`
/// - returns `([low, high] each [B, S], [low, high] each [B])`
pub fn band_energies<B: Backend>(
    student: Tensor<B, 3>,
    teacher: Tensor<B, 2>,
    low: Tensor<B, 2>,
    channels: usize,
) -> ([Tensor<B, 2>; 2], [Tensor<B, 1>; 2]) {
    let [b, s, d] = student.dims();
    let area = d / channels;
    let student = student.detach().reshape([b, s, channels, area]);
    let teacher = teacher.detach().reshape([b, 1, channels, area]);
    let low = low.detach().reshape([b, 1, channels, area]);
    let high = low.clone().neg().add_scalar(1.0);
    let energy = |mag: Tensor<B, 4>, mask: Tensor<B, 4>| {
        let rows = mag.dims()[1];
        let count = mask.clone().sum_dim(3).add_scalar(EPS);
        ((mag * mask).sum_dim(3) / count).mean_dim(2).reshape([b, rows])
    };
    let students = [energy(student.clone(), low.clone()), energy(student, high.clone())];
    let teachers = [
        energy(teacher.clone(), low).reshape([b]),
        energy(teacher, high).reshape([b]),
    ];
    (students, teachers)
}

/// FAW: `w = 1 / (1 + |E_teacher − E_student| / (E_student + 1e-9))`, detached.
///
/// # Shapes
/// - `student`: `[S, B]` band energies of the students ([`mean_band_energy`])
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
