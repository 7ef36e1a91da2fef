//! # framer
//!
//! FRAMER (frequency-aligned self-distillation with adaptive modulation, CVPR 2026) for Burn: a
//! training-only loss for diffusion super-resolution models in which the final layer's prediction
//! teaches every intermediate layer, separately in a low and a high frequency band.
//!
//! - [`dft`]: a differentiable 2-D DFT for any `H × W`, on every backend.
//! - [`BandMaskKind`]: the reference's magnitude-quantile masks and the paper's radial rings.
//! - [`FramerLoss`]: IntraCL + InterCL with FAW and FAM, exact to the reference implementation;
//!   on CPU backends computed with FFTs and a closed-form gradient ([`LossExecution`]).
//! - [`Parameterization`]: rectified flow, ε-, v- and x0-prediction to clean estimates.
//! - [`NegativeSampler`]: seeded random-layer negatives.
//! - `golden` (feature `golden`): reader and checker for reference cases.
//!
//! ```no_run
//! use burn::backend::{Autodiff, Flex};
//! use burn::tensor::{Distribution, Tensor};
//! use framer::{FramerInput, FramerLossConfig, NegativeSampler, Parameterization};
//!
//! type B = Autodiff<Flex>;
//! let device = Default::default();
//! let shape = [2, 4, 16, 16]; // [batch, channels, height, width]
//! let students: Vec<Tensor<B, 4>> = (0..4)
//!     .map(|_| Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad())
//!     .collect();
//! let teacher = Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device);
//! let x_t = Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device);
//! let loss = FramerLossConfig::new().init()?;
//! let negatives = NegativeSampler::seeded(0).sample(0, students.len())?;
//! let param = Parameterization::RectifiedFlow { sigmas: Tensor::from_floats([0.3, 0.8], &device) };
//! let out = loss.forward(FramerInput::new(students, teacher, x_t, param, negatives))?;
//! let grads = out.loss.backward();
//! # Ok::<(), framer::FramerError>(())
//! ```

pub mod band;
pub mod conv;
pub mod dft;
mod error;
mod framed;
mod gather;
#[cfg(feature = "golden")]
pub mod golden;
mod loss;
mod negatives;
mod prediction;
pub mod taps;
#[cfg(test)]
mod testing;
#[doc(hidden)]
pub mod __private;

pub use band::BandMaskKind;
pub use error::FramerError;
pub use framed::{FramedOutput, Framed, FramerForward, FramerStep, StudentSelection};
pub use gather::{BatchGather, gather_batch};
pub use loss::*;
pub use negatives::{NegativeSampler, splitmix64, validate_negatives};
pub use prediction::Parameterization;
pub use framer_macros::{framer, framer_forward};
pub use taps::*;

/// Re-exports of burn for code that needs the exact version framer is built against.
pub use burn;
