//! Data-parallel training: `[distributed] devices = N` peers on each of `nodes` machines, one
//! thread per device, with burn's collective (`burn::collective`, feature `distributed`).
//!
//! # Launching on several machines
//! **Refused for now** (`check_global_level`): burn-collective 0.21.0's global level hangs at
//! its second operation. What follows is wired and checked up to that point (registration
//! through node 0's orchestrator and the first global all-reduce, the agreement check).
//!
//! Every machine runs the same schedule with its own rank:
//!
//! ```text
//! node 0$ framer train run.toml --nodes 2 --node-rank 0 --coordinator 10.0.0.1:29500
//! node 1$ framer train run.toml --nodes 2 --node-rank 1 --coordinator 10.0.0.1:29500
//! ```
//!
//! (or `FRAMER_NODES`, `FRAMER_NODE_RANK`, `FRAMER_COORDINATOR`). Node 0 starts burn's global
//! orchestrator on the coordinator's port in its own process; each node serves its tensors on
//! the coordinator's port + 1 + its rank, at the address of its route to the coordinator
//! (`--node-host` to choose another). Peer `r` of node `n` has the global rank `n·devices + r`.
//! Before the first step the peers check that they run the same resolved schedule with the same
//! devices per node from the same step, and that every rank is taken once; otherwise every peer
//! stops with an error saying so. Node 0 writes the run folder. To resume, every node needs the
//! run folder (a shared file system, or a copy of node 0's): a node that would start from
//! another step is refused by the same check.
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
//!   the peer. A peer that waits longer than `timeout_seconds` in one collective operation (a
//!   node was killed or cannot be reached) stops the run of its node with an error naming the
//!   operation.

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

    /// Checks that every peer starts the same run: the same `fingerprint` (the resolved schedule,
    /// the devices per node and the step it resumes from) and each rank exactly once.
    ///
    /// # Errors
    /// [`EngineError::Distributed`] on every peer when they disagree.
    fn agree(&self, fingerprint: &str) -> Result<(), EngineError> {
        let _ = fingerprint;
        Ok(())
    }

    /// Leaves the group at the end of a run.
    fn finish(&self) {}
}

#[cfg(feature = "distributed")]
pub use collective::{
    CollectivePeer, GLOBAL_LEVEL_OVERRIDE, PeerSources, PeerWatch, check_global_level,
    run_data_parallel,
};

#[cfg(feature = "distributed")]
mod collective;
