//! The VAE's latent distribution (diffusers `DiagonalGaussianDistribution`).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::BackboneError;

/// Lower and upper clamp of the log-variance, as diffusers applies them.
pub const LOGVAR_RANGE: (f64, f64) = (-30.0, 20.0);

/// A diagonal Gaussian over latents, `N(mean, exp(logvar))`, the encoder's posterior.
///
/// # Shapes
/// `mean` and `logvar`: `[batch, latent_channels, h, w]`.
#[doc(alias = "DiagonalGaussianDistribution")]
#[derive(Clone, Debug)]
pub struct DiagonalGaussian<B: Backend> {
    /// The posterior mean (diffusers `mode()`).
    pub mean: Tensor<B, 4>,
    /// The log-variance, clamped to [`LOGVAR_RANGE`].
    pub logvar: Tensor<B, 4>,
}

impl<B: Backend> DiagonalGaussian<B> {
    /// Splits the encoder's moments into mean (first half of the channels) and log-variance
    /// (second half), clamping the log-variance to [−30, 20] as diffusers does.
    ///
    /// # Shapes
    /// - `moments`: `[batch, 2·latent_channels, h, w]`
    pub fn from_moments(moments: Tensor<B, 4>) -> Self {
        let c = moments.dims()[1] / 2;
        let mean = moments.clone().narrow(1, 0, c);
        let logvar = moments.narrow(1, c, c).clamp(LOGVAR_RANGE.0, LOGVAR_RANGE.1);
        Self { mean, logvar }
    }

    /// `exp(logvar / 2)`.
    pub fn std(&self) -> Tensor<B, 4> {
        self.logvar.clone().mul_scalar(0.5).exp()
    }

    /// `exp(logvar)`.
    pub fn var(&self) -> Tensor<B, 4> {
        self.logvar.clone().exp()
    }

    /// The mean (diffusers `mode()`).
    pub fn mode(&self) -> Tensor<B, 4> {
        self.mean.clone()
    }

    /// `mean + std · noise`, a sample drawn with the caller's standard normal `noise` (diffusers
    /// `sample(generator)` draws that noise itself).
    ///
    /// # Shapes
    /// - `noise`: the shape of `mean`
    pub fn sample(&self, noise: Tensor<B, 4>) -> Result<Tensor<B, 4>, BackboneError> {
        if noise.dims() != self.mean.dims() {
            return Err(BackboneError::BadInput {
                input: "noise",
                reason: format!("has shape {:?}, the posterior has {:?}", noise.dims(), self.mean.dims()),
            });
        }
        Ok(self.mean.clone() + self.std() * noise)
    }
}
