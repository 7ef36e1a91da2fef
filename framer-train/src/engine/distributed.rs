//! Data-parallel training: `[distributed] devices = N` peers on one machine, one thread per
//! device, with burn's collective (`burn::collective`, feature `distributed`).
//!
//! # What the peers compute
//! - `[train] batch_size` is the **global** batch. At step `s` every peer draws the same global
//!   batch, noise and levels from `(seed, s)` and keeps its rows `rank·b .. (rank + 1)·b`
//!   (`b = batch_size / N`). The data order therefore depends on the seed and the step only, not
//!   on `N`: a run resumes on any number of peers and sees the batches it would have seen.
//! - With `negatives = "global"` (the reference's `accelerator.gather`), the FRAMER loss of each
//!   peer sees the teacher and the students of all `N·b` samples as InterCL keys (gathered,
//!   detached) and averages over its own samples ([`framer::Framed::forward_framer_gathered`]).
//!   burn-collective has no all-gather: it is built from its all-reduce (sum) over zero-padded
//!   slots, exact in floating point (`x + 0 = x`).
//! - Gradients are averaged with [`GradientsParams::all_reduce`] (mean), so every peer takes the
//!   same AdamW step as one process on the global batch; the logged losses are the peers' mean.
//!   N peers × batch b match one process × batch N·b to float tolerance (summation order).
//! - Peer 0 writes the log, the plots and the checkpoints; the others write nothing.
//! - A peer that stops (an error, a panic) is reported by the launcher; the others, blocked in a
//!   collective operation, are given `timeout_seconds` and then abandoned with an error naming
//!   the peer.

use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use framer::BatchGather;

use super::EngineError;

/// What a [`super::Trainer`] needs from the other peers during a step.
pub trait StepSync<B: AutodiffBackend> {
    /// This peer's rank, `0..world_size`.
    fn rank(&self) -> usize;

    /// The number of peers.
    fn world_size(&self) -> usize;

    /// The gather of the InterCL keys (`negatives = "global"`); `None` keeps them per peer.
    fn key_gather(&self) -> Option<&dyn BatchGather<B>>;

    /// The gradients averaged over the peers.
    ///
    /// # Errors
    /// [`EngineError::Distributed`] naming the failed operation.
    fn average_gradients(&self, grads: GradientsParams) -> Result<GradientsParams, EngineError>;

    /// Each value averaged over the peers (the logged losses).
    ///
    /// # Errors
    /// [`EngineError::Distributed`] naming the failed operation.
    fn average_values(&self, values: &[f64]) -> Result<Vec<f64>, EngineError>;

    /// Leaves the group at the end of a run.
    fn finish(&self) {}
}

#[cfg(feature = "distributed")]
pub use collective::{CollectivePeer, PeerSources, run_data_parallel};

#[cfg(feature = "distributed")]
mod collective;
