//! What the engine needs from a backbone: a final prediction and, through the generated taps, the
//! predictions of the student layers. Nothing here names a particular backbone's layers.

use burn::module::Module;

use super::EngineError;
use burn::tensor::{Tensor, backend::Backend};

/// A super-resolution denoiser with FRAMER student taps.
///
/// # Shapes
/// - `x_t`: `[batch, channels, height, width]`, the noisy HR sample
/// - `timesteps`: `[batch]` in `[0, 1]`: σ for rectified flow, `t / T` for DDPM step `t` of `T`
/// - `condition`: `[batch, channels, height, width]`, the LR image upsampled to the HR size
/// - predictions: `[batch, channels, height, width]`
pub trait Denoiser<B: Backend>: Module<B> {
    /// Number of student taps the backbone generates.
    fn num_taps(&self) -> usize;

    /// The final prediction only (training without FRAMER, and inference).
    fn predict(
        &self,
        x_t: Tensor<B, 4>,
        timesteps: Tensor<B, 1>,
        condition: Tensor<B, 4>,
    ) -> Tensor<B, 4>;

    /// The final prediction (the teacher) and the predictions of the taps listed in `students`
    /// (indices `< num_taps()`, in that order), each already read out into the teacher's space.
    fn predict_with_students(
        &self,
        x_t: Tensor<B, 4>,
        timesteps: Tensor<B, 1>,
        condition: Tensor<B, 4>,
        students: &[usize],
    ) -> Result<(Tensor<B, 4>, Vec<Tensor<B, 4>>), EngineError>;
}
