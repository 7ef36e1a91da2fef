//! IntraCL (low band) and InterCL (high band), from cosine similarities.

use burn::tensor::{Tensor, activation::relu, backend::Backend};

/// `x / max(‖x‖₂, 1e-12)` along the last dimension (`torch.nn.functional.normalize`).
///
/// The norm is `√(max(Σx², 1e-24))`: the same value, and like PyTorch's a zero (not NaN) gradient
/// for an all-zero `x`.
///
/// # Shapes
/// - `x`: `[..., D]`; returns the same shape.
pub fn l2_normalize<B: Backend, const N: usize>(x: Tensor<B, N>) -> Tensor<B, N> {
    let norm = x.clone().powi_scalar(2).sum_dim(N - 1).clamp_min(1e-24).sqrt();
    x / norm
}

/// `log(1 + eˣ)`, stable for large `|x|`.
fn softplus<B: Backend, const N: usize>(x: Tensor<B, N>) -> Tensor<B, N> {
    relu(x.clone()) + x.abs().neg().exp().log1p()
}

/// IntraCL: a two-way InfoNCE with the teacher as the positive and a random other layer of the same
/// image as the only negative (no in-batch negatives):
/// `−log( e^{s₊/τ} / (e^{s₊/τ} + e^{s₋/τ}) ) = softplus((s₋ − s₊)/τ)`.
///
/// # Shapes
/// - `positive`: `[S, B]`, cosine of each student's low band to the (detached) teacher's
/// - `negative`: `[S, B]`, cosine to the low band of the student's random layer (detached)
/// - returns `[S, B]`
#[doc(alias = "IntraCL")]
pub fn intra_contrastive_loss<B: Backend>(
    positive: Tensor<B, 2>,
    negative: Tensor<B, 2>,
    temperature: f64,
) -> Tensor<B, 2> {
    softplus((negative - positive).div_scalar(temperature))
}

/// InterCL: InfoNCE over the keys `[teacher of every sample; random layer of every sample]` with
/// the sample's own teacher as the label (the reference's `inter_loss`):
/// `logsumexp_k(logits/τ) − s₊/τ`.
///
/// # Shapes
/// - `logits`: `[S, B, 2B]`, cosines of each student's high band to the `2B` keys
/// - `positive`: `[S, B]`, the cosine to the sample's own teacher (the label's logit)
/// - returns `[S, B]`
#[doc(alias = "InterCL")]
pub fn inter_contrastive_loss<B: Backend>(
    logits: Tensor<B, 3>,
    positive: Tensor<B, 2>,
    temperature: f64,
) -> Tensor<B, 2> {
    let [s, b, _] = logits.dims();
    let logits = logits.div_scalar(temperature);
    let max = logits.clone().max_dim(2).detach();
    let log_sum_exp = ((logits - max.clone()).exp().sum_dim(2).log() + max).reshape([s, b]);
    log_sum_exp - positive.div_scalar(temperature)
}
