//! `[distributed]`: data-parallel training on several devices of one machine.
//!
//! ```toml
//! [distributed]
//! devices = 2            # peers, one thread per device; [train] batch_size is the global batch
//! negatives = "global"   # InterCL keys of every peer's samples (the reference); or "per_peer"
//! timeout_seconds = 120  # how long the others wait once a peer has stopped
//! ```
//!
//! `devices` and `timeout_seconds` say how a run is launched, not what it computes: they are not
//! part of `schedule.resolved.toml`, so a run resumes on any number of peers (see
//! [`crate::engine::distributed`] for the data order). `negatives = "per_peer"` changes the loss
//! and is recorded.

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::sections::unspanned;
use super::validate::{Ctx, Result};

/// Which samples' high bands are InterCL keys on a data-parallel run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// Every peer's samples, gathered (the reference's `accelerator.gather`): N peers × batch b
    /// compute the loss of one process × batch N·b.
    #[default]
    Global,
    /// Each peer's own samples only (for comparison; with one peer both are the same).
    PerPeer,
}

/// `[distributed]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistributedSection {
    /// Number of peers on this machine (one thread per device: CUDA devices `0..devices`, or the
    /// CPU shared by all of them).
    #[serde(alias = "num_processes")]
    pub devices: Spanned<i64>,
    /// `"global"` or `"per_peer"`.
    pub negatives: KeyScope,
    /// Seconds the other peers are given to finish once one has stopped (with an error, or
    /// killed): past it the run stops with an error naming the peer, instead of waiting forever
    /// in a collective operation.
    pub timeout_seconds: Spanned<i64>,
}

impl Default for DistributedSection {
    fn default() -> Self {
        Self {
            devices: unspanned(1),
            negatives: KeyScope::Global,
            timeout_seconds: unspanned(120),
        }
    }
}

/// `[distributed]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributedConfig {
    /// Number of peers (1: the ordinary single-device run).
    pub devices: usize,
    /// Which samples are InterCL keys.
    pub negatives: KeyScope,
    /// How long the others wait once a peer has stopped.
    pub timeout: std::time::Duration,
}

impl Default for DistributedConfig {
    fn default() -> Self {
        Self {
            devices: 1,
            negatives: KeyScope::Global,
            timeout: std::time::Duration::from_secs(120),
        }
    }
}

impl DistributedConfig {
    /// The same settings on `devices` peers (e.g. `framer train --devices N`).
    ///
    /// # Errors
    /// A message when `devices` is 0 or does not divide the global batch `batch_size`.
    pub fn with_devices(self, devices: usize, batch_size: usize) -> std::result::Result<Self, String> {
        if devices == 0 || !batch_size.is_multiple_of(devices) {
            return Err(format!(
                "the global batch (`train.batch_size` = {batch_size}) must split evenly over the \
                 {devices} peers"
            ));
        }
        Ok(Self { devices, ..self })
    }

    /// Each peer's share of the global batch `batch_size`.
    pub fn local_batch(&self, batch_size: usize) -> usize {
        batch_size / self.devices.max(1)
    }
}

/// Checks `[distributed]` against the global batch.
pub(super) fn resolve(
    section: &DistributedSection,
    batch_size: usize,
    ctx: &Ctx<'_>,
) -> Result<DistributedConfig> {
    let devices = ctx.count("distributed.devices", &section.devices, 1)? as usize;
    if !batch_size.is_multiple_of(devices) {
        return Err(ctx
            .err(
                section.devices.span(),
                "distributed.devices",
                format!(
                    "`train.batch_size` ({batch_size}) is not a multiple of `distributed.devices` \
                     ({devices})"
                ),
            )
            .with_help("the batch size is the global batch: each peer takes batch_size / devices samples"));
    }
    let timeout = ctx.count("distributed.timeout_seconds", &section.timeout_seconds, 1)?;
    Ok(DistributedConfig {
        devices,
        negatives: section.negatives,
        timeout: std::time::Duration::from_secs(timeout),
    })
}
