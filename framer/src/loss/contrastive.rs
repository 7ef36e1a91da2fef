//! IntraCL (low band) and InterCL (high band), per student and sample.

use burn::tensor::{Tensor, activation::relu, backend::Backend};

/// `x / max(‖x‖₂, 1e-12)` along the last dimension (`torch.nn.functional.normalize`).
///
/// # Shapes
/// - `x`: `[..., D]`; returns the same shape.
pub fn l2_normalize<B: Backend, const N: usize>(x: Tensor<B, N>) -> Tensor<B, N> {
    let norm = x.clone().powi_scalar(2).sum_dim(N - 1).sqrt().clamp_min(1e-12);
    x / norm
}

/// `log(1 + eˣ)`, stable for large `|x|`.
fn softplus<B: Backend, const N: usize>(x: Tensor<B, N>) -> Tensor<B, N> {
    relu(x.clone()) + x.abs().neg().exp().log1p()
}

/// IntraCL: a two-way InfoNCE with the teacher as the positive and a random other layer of the same
/// image as the only negative (no in-batch negatives):
/// `−log( e^{q·k/τ} / (e^{q·k/τ} + e^{q·n/τ}) ) = softplus((q·n − q·k)/τ)`.
///
/// # Shapes
/// - `q`: `[S, B, D]` normalised student low band
/// - `positive`: `[S, B]`, `q·k` with the (detached) normalised teacher low band
/// - `negative`: `[S, B, D]` normalised low band of each student's random layer (detached)
/// - returns `[S, B]`
#[doc(alias = "IntraCL")]
pub fn intra_contrastive_loss<B: Backend>(
    q: Tensor<B, 3>,
    positive: Tensor<B, 2>,
    negative: Tensor<B, 3>,
    temperature: f64,
) -> Tensor<B, 2> {
    let [s, b, _] = q.dims();
    let negative = (q * negative).sum_dim(2).reshape([s, b]);
    softplus((negative - positive).div_scalar(temperature))
}

/// InterCL: InfoNCE over the keys `[teacher of every sample; random layer of every sample]`
/// (`2B` keys) with the sample's own teacher as the label, as the reference's `inter_loss`.
///
/// # Shapes
/// - `q`: `[S, B, D]` normalised student high band
/// - `positive`: `[S, B]`, `q·k` with the sample's own teacher key
/// - `teacher`: `[B, D]` normalised teacher high band (detached)
/// - `negative`: `[S, B, D]` normalised high band of each student's random layer (detached)
/// - returns `[S, B]`
#[doc(alias = "InterCL")]
pub fn inter_contrastive_loss<B: Backend>(
    q: Tensor<B, 3>,
    positive: Tensor<B, 2>,
    teacher: Tensor<B, 2>,
    negative: Tensor<B, 3>,
    temperature: f64,
) -> Tensor<B, 2> {
    let [s, b, d] = q.dims();
    let to_teachers = q.clone().reshape([s * b, d]).matmul(teacher.transpose()).reshape([s, b, b]);
    let to_negatives = q.matmul(negative.swap_dims(1, 2));
    let logits = Tensor::cat(vec![to_teachers, to_negatives], 2).div_scalar(temperature);
    let max = logits.clone().max_dim(2).detach();
    let log_sum_exp = ((logits - max.clone()).exp().sum_dim(2).log() + max).reshape([s, b]);
    log_sum_exp - positive.div_scalar(temperature)
}
