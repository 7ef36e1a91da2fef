//! Conversions from a raw network prediction to a clean-sample (x0) estimate.
//!
//! FRAMER compares layers in the space of clean estimates: every tap (teacher and students) is
//! first mapped with the same per-sample affine relation `x0 = a·x_t + b·pred`.

use burn::tensor::{Tensor, TensorData, backend::Backend};

use crate::FramerError;

/// What the network predicts, and the noise level of each sample needed to turn it into x0.
///
/// All per-sample vectors have length `batch`.
#[derive(Debug, Clone, PartialEq)]
pub enum Parameterization {
    /// Rectified flow / flow matching (SD3, the FRAMER reference): the network predicts the velocity
    /// `v = ε − x0` and `x_t = (1 − σ)·x0 + σ·ε`, so `x0 = x_t − σ·v`.
    RectifiedFlow {
        /// σ ∈ [0, 1] per sample.
        sigmas: Vec<f32>,
    },
    /// DDPM ε-prediction: `x_t = √ᾱ·x0 + √(1−ᾱ)·ε`, so `x0 = (x_t − √(1−ᾱ)·ε) / √ᾱ`.
    Epsilon {
        /// ᾱ_t ∈ (0, 1] per sample.
        alphas_cumprod: Vec<f32>,
    },
    /// DDPM v-prediction (`v = √ᾱ·ε − √(1−ᾱ)·x0`): `x0 = √ᾱ·x_t − √(1−ᾱ)·v`.
    Velocity {
        /// ᾱ_t ∈ [0, 1] per sample.
        alphas_cumprod: Vec<f32>,
    },
    /// The network predicts x0 directly.
    Sample,
}

impl Parameterization {
    /// The per-sample coefficients `(a, b)` of `x0 = a·x_t + b·pred`, for a batch of `batch`.
    pub fn coefficients(&self, batch: usize) -> Result<(Vec<f32>, Vec<f32>), FramerError> {
        let check_len = |name: &str, v: &[f32]| {
            if v.len() != batch {
                return Err(FramerError::InvalidSchedule(format!(
                    "`{name}` has {} entries, the batch has {batch}",
                    v.len()
                )));
            }
            Ok(())
        };
        match self {
            Self::RectifiedFlow { sigmas } => {
                check_len("sigmas", sigmas)?;
                if let Some(s) = sigmas.iter().find(|s| !s.is_finite()) {
                    return Err(FramerError::InvalidSchedule(format!("sigma {s} is not finite")));
                }
                Ok((vec![1.0; batch], sigmas.iter().map(|s| -s).collect()))
            }
            Self::Epsilon { alphas_cumprod } => {
                check_len("alphas_cumprod", alphas_cumprod)?;
                if let Some(a) = alphas_cumprod.iter().find(|a| !(**a > 0.0 && **a <= 1.0)) {
                    return Err(FramerError::InvalidSchedule(format!(
                        "ε-prediction needs ᾱ in (0, 1], got {a}"
                    )));
                }
                Ok(alphas_cumprod
                    .iter()
                    .map(|a| (1.0 / a.sqrt(), -(1.0 - a).sqrt() / a.sqrt()))
                    .unzip())
            }
            Self::Velocity { alphas_cumprod } => {
                check_len("alphas_cumprod", alphas_cumprod)?;
                if let Some(a) = alphas_cumprod.iter().find(|a| !(0.0..=1.0).contains(*a)) {
                    return Err(FramerError::InvalidSchedule(format!(
                        "v-prediction needs ᾱ in [0, 1], got {a}"
                    )));
                }
                Ok(alphas_cumprod.iter().map(|a| (a.sqrt(), -(1.0 - a).sqrt())).unzip())
            }
            Self::Sample => Ok((vec![0.0; batch], vec![1.0; batch])),
        }
    }

    /// Maps raw predictions to clean estimates.
    ///
    /// # Shapes
    /// - `prediction`: `[..., batch, channels, height, width]` (`D` = 4, or 5 for stacked layers
    ///   `[layers, batch, channels, height, width]`)
    /// - `x_t`: `[batch, channels, height, width]`
    /// - returns the shape of `prediction`.
    pub fn clean_estimate<B: Backend, const D: usize>(
        &self,
        prediction: Tensor<B, D>,
        x_t: Tensor<B, 4>,
    ) -> Result<Tensor<B, D>, FramerError> {
        let batch = x_t.dims()[0];
        let (a, b) = self.coefficients(batch)?;
        let device = x_t.device();
        let mut shape = [1usize; D];
        shape[D - 4] = batch;
        let a = Tensor::<B, 1>::from_data(TensorData::new(a, [batch]), &device).reshape(shape);
        let b = Tensor::<B, 1>::from_data(TensorData::new(b, [batch]), &device).reshape(shape);
        let x_t: Tensor<B, D> = x_t.unsqueeze();
        Ok(x_t.mul(a) + prediction.mul(b))
    }
}
