//! FAW (frequency-based adaptive weight) and FAM (frequency-based alignment modulation): per-sample
//! weights of each layer's loss, both under stop-gradient.

use burn::tensor::{Tensor, activation::relu, backend::Backend};

const EPS: f64 = 1e-9;

/// Mean in-band magnitude per channel, averaged over channels (the reference's `E_band`):
/// `mean_c[ Σ_hw |X|·M / (Σ_hw M + 1e-9) ]`.
///
/// # Shapes
/// - `band`: `[S, B, C, H, W]`, the masked magnitudes `|X|·M`
/// - `mask`: `[B, C, H, W]`
/// - returns `[S, B]`
pub fn mean_band_energy<B: Backend>(band: Tensor<B, 5>, mask: Tensor<B, 4>) -> Tensor<B, 2> {
    let [s, b, c, _, _] = band.dims();
    let count = mask.sum_dim(3).sum_dim(2).reshape([1, b, c]).add_scalar(EPS);
    (band.sum_dim(4).sum_dim(3).reshape([s, b, c]) / count).mean_dim(2).reshape([s, b])
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
