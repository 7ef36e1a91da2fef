//! The FRAMER distillation loss: IntraCL on the low band, InterCL on the high band, each weighted
//! per sample by FAW and gated by FAM, averaged over the batch and then over the student layers.
//!
//! - [`config`]: the settings ([`FramerLossConfig`]) and the choice of path ([`LossExecution`]);
//! - [`input`]: what one step feeds the loss ([`FramerInput`]) and its checks;
//! - [`contrastive`] (IntraCL, InterCL) and [`modulation`] (band energies, FAW, FAM): the terms as
//!   tensor functions;
//! - [`tensor`]: the loss as tensor operations, on any backend;
//! - `host`: the same loss with FFTs and a closed-form gradient, on CPU backends;
//! - [`output`]: what an evaluation returns.

mod config;
mod contrastive;
mod host;
mod input;
mod modulation;
mod output;
mod tensor;

pub use config::{FramerLossConfig, LossExecution, host_path_applies};
pub use contrastive::{inter_contrastive_loss, intra_contrastive_loss, l2_normalize};
pub use input::FramerInput;
pub use modulation::{band_energies, frequency_adaptive_weight, frequency_alignment_modulation};
pub use output::{FramerDiagnostics, FramerOutput, LayerDiagnostics, LayerTerms};

use burn::tensor::backend::Backend;

use crate::FramerError;

/// The FRAMER distillation loss (built by [`FramerLossConfig::init`]).
///
/// It keeps the host path's scratch buffers for its next evaluation (see
/// [`LossExecution::Host`]); clones start with none. It can be shared between threads.
#[doc(alias = "framer_distillation_loss")]
#[derive(Debug)]
pub struct FramerLoss {
    config: FramerLossConfig,
    scratch: host::Scratch,
}

impl Clone for FramerLoss {
    fn clone(&self) -> Self {
        Self::from_config(self.config.clone())
    }
}

impl PartialEq for FramerLoss {
    /// Losses with the same settings are equal, whatever their scratch holds.
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
    }
}

impl FramerLoss {
    /// A loss with validated settings and no scratch yet.
    fn from_config(config: FramerLossConfig) -> Self {
        Self { config, scratch: host::Scratch::default() }
    }

    /// The settings this loss was built with.
    pub fn config(&self) -> &FramerLossConfig {
        &self.config
    }

    /// Evaluates the loss at one step.
    ///
    /// Per student `i` and sample `b` (bands `low`/`high`, `q` the L2-normalised masked magnitude
    /// spectrum of the student's clean estimate, `k` the teacher's, `n` the negative student's):
    /// `layer_i = mean_b[ fam_low·faw_low·IntraCL + fam_high·faw_high·InterCL ]`, and the loss is
    /// `mean_i layer_i`, or `Σ_i w_i·layer_i / S` with the student weights `w_i` of
    /// [`FramerInput::with_student_weights`] (all 1: exactly the mean). Gradients reach the students only through `q`: the teacher, the negatives,
    /// FAW and FAM are detached, as in the reference. Each layer is transformed once.
    ///
    /// Where it runs follows [`FramerLossConfig::execution`]: by default on the host (FFTs and a
    /// closed-form gradient) for CPU backends ([`host_path_applies`]), as tensor operations
    /// elsewhere.
    ///
    /// # Shapes
    /// - `input`: see [`FramerInput`]
    /// - returns the loss `[1]` with its detached per-layer terms (see [`FramerOutput`])
    pub fn forward<B: Backend>(&self, input: FramerInput<B>) -> Result<FramerOutput<B>, FramerError> {
        self.forward_with(input, false)
    }

    /// [`Self::forward`], optionally on the full spectrum even when the half would do.
    fn forward_with<B: Backend>(
        &self,
        input: FramerInput<B>,
        full_spectrum: bool,
    ) -> Result<FramerOutput<B>, FramerError> {
        let shape = input.validate()?;
        if self.config.execution.runs_on_host::<B>() {
            host::forward(&self.config, &self.scratch, input, shape, full_spectrum)
        } else {
            tensor::forward(&self.config, input, shape, full_spectrum)
        }
    }
}

#[cfg(test)]
mod tests;
