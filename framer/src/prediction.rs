//! Conversions from a raw network prediction to a clean-sample (x0) estimate.
//!
//! FRAMER compares layers in the space of clean estimates: every tap (teacher and students) is
//! first mapped with the same per-sample affine relation `x0 = a·x_t + b·pred`.

use burn::tensor::{Tensor, backend::Backend};

use crate::FramerError;

/// What the network predicts, and the noise level of each sample needed to turn it into x0.
///
/// The per-sample levels are tensors on the loss's device, as the training step draws them.
///
/// # Shapes
/// - `sigmas`, `alphas_cumprod`: `[batch]`
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use framer::Parameterization;
///
/// let device = Default::default();
/// let param = Parameterization::<Flex>::RectifiedFlow { sigmas: Tensor::from_floats([0.3, 0.8], &device) };
/// assert_eq!(param.levels(2).unwrap(), Some(vec![0.3, 0.8]));
/// ```
#[derive(Debug, Clone)]
pub enum Parameterization<B: Backend> {
    /// Rectified flow / flow matching (SD3, the FRAMER reference): the network predicts the velocity
    /// `v = ε − x0` and `x_t = (1 − σ)·x0 + σ·ε`, so `x0 = x_t − σ·v`.
    #[doc(alias = "flow_matching")]
    RectifiedFlow {
        /// σ ∈ [0, 1] per sample, `[batch]`.
        sigmas: Tensor<B, 1>,
    },
    /// DDPM ε-prediction: `x_t = √ᾱ·x0 + √(1−ᾱ)·ε`, so `x0 = (x_t − √(1−ᾱ)·ε) / √ᾱ`.
    Epsilon {
        /// ᾱ_t ∈ (0, 1] per sample, `[batch]`.
        alphas_cumprod: Tensor<B, 1>,
    },
    /// DDPM v-prediction (`v = √ᾱ·ε − √(1−ᾱ)·x0`): `x0 = √ᾱ·x_t − √(1−ᾱ)·v`.
    Velocity {
        /// ᾱ_t ∈ [0, 1] per sample, `[batch]`.
        alphas_cumprod: Tensor<B, 1>,
    },
    /// The network predicts x0 directly.
    Sample,
}

impl<B: Backend> Parameterization<B> {
    /// The per-sample levels (σ or ᾱ) copied to the host and checked: `batch` entries, each in the
    /// range its parameterization allows. `None` for [`Self::Sample`], which has none.
    ///
    /// This reads `batch` values back from the device (a synchronisation, negligible next to a
    /// training step).
    pub fn levels(&self, batch: usize) -> Result<Option<Vec<f32>>, FramerError> {
        let (name, levels) = match self {
            Self::RectifiedFlow { sigmas } => ("sigmas", sigmas),
            Self::Epsilon { alphas_cumprod } | Self::Velocity { alphas_cumprod } => {
                ("alphas_cumprod", alphas_cumprod)
            }
            Self::Sample => return Ok(None),
        };
        let [len] = levels.dims();
        if len != batch {
            return Err(FramerError::InvalidSchedule(format!(
                "`{name}` has {len} entries, the batch has {batch}"
            )));
        }
        let values: Vec<f32> = levels.to_data().convert::<f32>().into_vec().unwrap_or_default();
        let bad = |pred: fn(f32) -> bool| values.iter().copied().find(|&v| !pred(v));
        match self {
            Self::RectifiedFlow { .. } => {
                if let Some(s) = bad(f32::is_finite) {
                    return Err(FramerError::InvalidSchedule(format!("sigma {s} is not finite")));
                }
            }
            Self::Epsilon { .. } => {
                if let Some(a) = bad(|a| a > 0.0 && a <= 1.0) {
                    return Err(FramerError::InvalidSchedule(format!(
                        "ε-prediction needs ᾱ in (0, 1], got {a}"
                    )));
                }
            }
            Self::Velocity { .. } => {
                if let Some(a) = bad(|a| (0.0..=1.0).contains(&a)) {
                    return Err(FramerError::InvalidSchedule(format!(
                        "v-prediction needs ᾱ in [0, 1], got {a}"
                    )));
                }
            }
            Self::Sample => {}
        }
        Ok(Some(values))
    }

    /// The per-sample coefficients `(a, b)` of `x0 = a·x_t + b·pred` on the host, for a batch of
    /// `batch` (checked as in [`Self::levels`]).
    pub fn host_coefficients(&self, batch: usize) -> Result<(Vec<f32>, Vec<f32>), FramerError> {
        let Some(levels) = self.levels(batch)? else {
            return Ok((vec![0.0; batch], vec![1.0; batch]));
        };
        Ok(match self {
            Self::RectifiedFlow { .. } => (vec![1.0; batch], levels.iter().map(|s| -s).collect()),
            Self::Epsilon { .. } => levels
                .iter()
                .map(|a| (1.0 / a.sqrt(), -(1.0 - a).sqrt() / a.sqrt()))
                .unzip(),
            Self::Velocity { .. } => levels.iter().map(|a| (a.sqrt(), -(1.0 - a).sqrt())).unzip(),
            Self::Sample => unreachable!("`levels` is None for x0-prediction"),
        })
    }

    /// The per-sample coefficients `(a, b)` of `x0 = a·x_t + b·pred`, computed on the device from
    /// the levels (checked as in [`Self::levels`]).
    ///
    /// # Shapes
    /// - returns `([batch], [batch])`
    pub fn coefficients(
        &self,
        batch: usize,
        device: &B::Device,
    ) -> Result<(Tensor<B, 1>, Tensor<B, 1>), FramerError> {
        self.levels(batch)?;
        let full = |value: f32| Tensor::<B, 1>::full([batch], value, device);
        Ok(match self {
            Self::RectifiedFlow { sigmas } => (full(1.0), sigmas.clone().neg()),
            Self::Epsilon { alphas_cumprod: a } => {
                let root = a.clone().sqrt();
                (root.clone().recip(), a.clone().neg().add_scalar(1.0).sqrt().neg() / root)
            }
            Self::Velocity { alphas_cumprod: a } => {
                (a.clone().sqrt(), a.clone().neg().add_scalar(1.0).sqrt().neg())
            }
            Self::Sample => (full(0.0), full(1.0)),
        })
    }

    /// Maps raw predictions to clean estimates.
    ///
    /// # Shapes
    /// - `prediction`: `[..., batch, channels, height, width]` (`D` = 4, or 5 for stacked layers
    ///   `[layers, batch, channels, height, width]`)
    /// - `x_t`: `[batch, channels, height, width]`
    /// - returns the shape of `prediction`.
    pub fn clean_estimate<const D: usize>(
        &self,
        prediction: Tensor<B, D>,
        x_t: Tensor<B, 4>,
    ) -> Result<Tensor<B, D>, FramerError> {
        let batch = x_t.dims()[0];
        let (a, b) = self.coefficients(batch, &x_t.device())?;
        let mut shape = [1usize; D];
        shape[D - 4] = batch;
        let x_t: Tensor<B, D> = x_t.unsqueeze();
        Ok(x_t.mul(a.reshape(shape)) + prediction.mul(b.reshape(shape)))
    }
}
