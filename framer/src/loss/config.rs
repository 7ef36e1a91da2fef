//! The settings of the FRAMER loss and where it runs.

use std::any::TypeId;

use burn::config::Config;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use super::FramerLoss;
use crate::{BandMaskKind, FramerError};

/// Settings of the FRAMER loss. The defaults are the reference's (`--cutoff 0.2`, `--tau_high 1.0`,
/// FAW and FAM on). The outer weight λ (`--lambda_framer`) is applied by the caller.
///
/// Built with [`FramerLossConfig::new`] and the `with_*` setters, or deserialised (burn's
/// [`Config`]: JSON files through [`Config::load`], any serde format such as a TOML table). The
/// serialised form names every field:
///
/// ```toml
/// temperature = 1.0
/// adaptive_weight = true
/// alignment_modulation = true
/// execution = "auto"            # or "tensor", "host"
/// mask = { kind = "quantile", cutoff = 0.2 }   # or { kind = "radial", radius = 0.3 }
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct FramerLossConfig {
    /// How the teacher spectrum is split into bands.
    #[config(default = "BandMaskKind::Quantile { cutoff: 0.2 }")]
    pub mask: BandMaskKind,
    /// Temperature τ of both contrastive losses (`--tau_high`).
    #[config(default = 1.0)]
    pub temperature: f64,
    /// Frequency-based Adaptive Weight (FAW) on; when off, the weight is 1.
    #[config(default = true)]
    pub adaptive_weight: bool,
    /// Frequency-based Alignment Modulation (FAM) on; when off, the gate is 1.
    #[config(default = true)]
    pub alignment_modulation: bool,
    /// Where the loss is computed; [`LossExecution::Auto`] by default.
    #[config(default = "LossExecution::Auto")]
    pub execution: LossExecution,
}

impl Default for FramerLossConfig {
    /// The reference settings, as [`FramerLossConfig::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl FramerLossConfig {
    /// Validates the settings and builds the loss. Cheap: no buffer is allocated before the first
    /// evaluation.
    pub fn init(&self) -> Result<FramerLoss, FramerError> {
        self.mask.validate()?;
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(FramerError::NonPositiveTemperature(self.temperature));
        }
        Ok(FramerLoss::from_config(self.clone()))
    }
}

/// Where [`FramerLoss::forward`] computes the loss. Both give the same values and gradients (up to
/// f32 rounding; the golden tests run both). Serialised in lower case (`"auto"`, `"tensor"`,
/// `"host"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossExecution {
    /// [`Self::Host`] where [`host_path_applies`] says so (the CPU backends `flex` and `ndarray`,
    /// with or without autodiff), [`Self::Tensor`] elsewhere.
    #[default]
    Auto,
    /// Tensor operations on the backend's device (dense DFT matrix products, gradients by
    /// autodiff). Works on every backend.
    Tensor,
    /// On the host: FFTs (rustfft), fused per-band sums and a closed-form gradient, in parallel
    /// over planes and students; the gradient enters the autodiff graph through a linear term
    /// `Σᵢ ⟨studentᵢ, gᵢ⟩` whose value is cancelled. The data is copied to the host and back, so
    /// this pays off on CPU backends only. `x_t` receives its gradient only when it is a leaf that
    /// requires one (noisy inputs normally need none). The spectrum buffers (about 1.5× the
    /// students' size, up to eight buffers) are kept by the [`FramerLoss`] for its next call: fresh
    /// pages cost more than the transforms that fill them.
    Host,
}

impl LossExecution {
    /// Whether this setting runs the loss on the host for backend `B`.
    pub fn runs_on_host<B: Backend>(self) -> bool {
        match self {
            Self::Tensor => false,
            Self::Host => true,
            Self::Auto => host_path_applies::<B>(),
        }
    }
}

/// Whether [`LossExecution::Auto`] computes the loss on the host for backend `B`: when the
/// backend's tensors live in host memory and its kernels run on the CPU, so that copying them to
/// the FFT path costs little.
///
/// Decided by the backend's device type, which every wrapper shares with the backend it wraps
/// (`Autodiff<Flex>` has `Flex`'s device): the host path applies to
/// [`burn::backend::flex::FlexDevice`] and, with the `ndarray` feature, to burn's `NdArrayDevice`.
/// Every other backend (CUDA, wgpu, ...) gets the tensor path.
pub fn host_path_applies<B: Backend>() -> bool {
    host_devices().contains(&TypeId::of::<B::Device>())
}

/// The device types of the CPU backends.
fn host_devices() -> [TypeId; 2] {
    let flex = TypeId::of::<burn::backend::flex::FlexDevice>();
    #[cfg(feature = "ndarray")]
    let ndarray = TypeId::of::<burn::backend::ndarray::NdArrayDevice>();
    #[cfg(not(feature = "ndarray"))]
    let ndarray = flex;
    [flex, ndarray]
}
