//! `[distributed]`: data-parallel training on several devices and machines.
//!
//! ```toml
//! [distributed]
//! devices = 2                     # peers on each machine, one thread per device
//! nodes = 2                       # machines (processes); 1: this machine only
//! coordinator = "10.0.0.1:29500"  # node 0 starts burn's global orchestrator on this port
//! negatives = "global"            # InterCL keys of every peer's samples (the reference); or "per_peer"
//! timeout_seconds = 120           # how long a peer waits in a collective operation
//! ```
//!
//! `[train] batch_size` is the global batch, split over `nodes × devices` peers. Each machine runs
//! `framer train SCHEDULE --node-rank R` (or `FRAMER_NODE_RANK=R`); `--nodes`, `--devices` and
//! `--coordinator` override the table. See [`crate::engine::distributed`]; `nodes > 1` is refused
//! for now (burn-collective 0.21.0's global level hangs at its second operation).
//!
//! `devices`, `nodes`, `coordinator` and `timeout_seconds` say how a run is launched, not what it
//! computes: they are not part of `schedule.resolved.toml`, so a run resumes on any number of
//! peers (see [`crate::engine::distributed`] for the data order). `negatives = "per_peer"` changes
//! the loss and is recorded.

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
    /// Number of machines (one process each, started by hand or by a cluster launcher).
    #[serde(alias = "num_machines")]
    pub nodes: Spanned<i64>,
    /// `"host:port"` of the global orchestrator, which node 0 starts (needed when `nodes > 1`).
    #[serde(alias = "main_process_address")]
    pub coordinator: Option<Spanned<String>>,
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
            nodes: unspanned(1),
            coordinator: None,
            negatives: KeyScope::Global,
            timeout_seconds: unspanned(120),
        }
    }
}

/// `[distributed]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributedConfig {
    /// Number of peers on this machine (1 with `nodes = 1`: the ordinary single-device run).
    pub devices: usize,
    /// Number of machines.
    pub nodes: usize,
    /// This machine's rank, `0..nodes` (`--node-rank`; node 0 starts the orchestrator and
    /// writes the run folder).
    pub node_rank: usize,
    /// The global orchestrator's address (`nodes > 1`).
    pub coordinator: Option<Coordinator>,
    /// The address the other machines reach this one at (`--node-host`; by default the local
    /// address of the route to the coordinator).
    pub node_host: Option<String>,
    /// Which samples are InterCL keys.
    pub negatives: KeyScope,
    /// How long a peer may wait in one collective operation (for the others) before the run
    /// stops with an error.
    pub timeout: std::time::Duration,
}

impl Default for DistributedConfig {
    fn default() -> Self {
        Self {
            devices: 1,
            nodes: 1,
            node_rank: 0,
            coordinator: None,
            node_host: None,
            negatives: KeyScope::Global,
            timeout: std::time::Duration::from_secs(120),
        }
    }
}

/// The global orchestrator's address, `host:port` (node 0 listens on `port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinator {
    /// The host name or IP address (IPv6 without brackets).
    pub host: String,
    /// The port, 1 to 65535.
    pub port: u16,
}

impl std::str::FromStr for Coordinator {
    type Err = String;

    /// `"host:port"` (`"[::1]:port"` for IPv6): a non-empty host and a port of 1 to 65535.
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("`{text}` is not host:port"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("`{port}` in `{text}` is not a port (1 to 65535)"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("`{text}` has no host"));
        }
        Ok(Self { host: host.to_string(), port })
    }
}

impl std::fmt::Display for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "[{}]:{}", self.host, self.port),
            false => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// How `framer train` was launched: flags that replace `[distributed]` values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Launch {
    /// `--devices`.
    pub devices: Option<usize>,
    /// `--nodes`.
    pub nodes: Option<usize>,
    /// `--node-rank`.
    pub node_rank: Option<usize>,
    /// `--coordinator host:port`.
    pub coordinator: Option<String>,
    /// `--node-host`.
    pub node_host: Option<String>,
}

impl DistributedConfig {
    /// The same settings on `devices` peers (e.g. `framer train --devices N`).
    ///
    /// # Errors
    /// A message when `devices` is 0 or does not divide the global batch `batch_size`.
    pub fn with_devices(self, devices: usize, batch_size: usize) -> std::result::Result<Self, String> {
        self.with_launch(&Launch { devices: Some(devices), ..Launch::default() }, batch_size)
    }

    /// These settings with the launch flags applied, checked together.
    ///
    /// # Errors
    /// A message naming the flag: a zero count, a node rank out of range, a global batch that
    /// does not split over `nodes × devices` peers, several nodes without a coordinator, or a
    /// coordinator that is not `host:port`.
    pub fn with_launch(self, launch: &Launch, batch_size: usize) -> std::result::Result<Self, String> {
        let devices = launch.devices.unwrap_or(self.devices);
        let nodes = launch.nodes.unwrap_or(self.nodes);
        let node_rank = launch.node_rank.unwrap_or(self.node_rank);
        let coordinator = match &launch.coordinator {
            Some(c) => Some(c.parse::<Coordinator>().map_err(|e| format!("--coordinator: {e}"))?),
            None => self.coordinator,
        };
        if devices == 0 {
            return Err("--devices must be at least 1".into());
        }
        if nodes == 0 {
            return Err("--nodes must be at least 1".into());
        }
        if node_rank >= nodes {
            return Err(format!(
                "--node-rank {node_rank} is not below the number of nodes ({nodes})"
            ));
        }
        if !batch_size.is_multiple_of(devices * nodes) {
            return Err(format!(
                "the global batch (`train.batch_size` = {batch_size}) must split evenly over the \
                 {} peers ({nodes} node(s) × {devices} device(s))",
                devices * nodes
            ));
        }
        if coordinator.is_none() && nodes > 1 {
            return Err(format!(
                "{nodes} nodes need the coordinator's address: --coordinator host:port (or \
                 `distributed.coordinator`), the same on every node"
            ));
        }
        Ok(Self {
            devices,
            nodes,
            node_rank,
            coordinator,
            node_host: launch.node_host.clone().or(self.node_host),
            ..self
        })
    }

    /// Peers in all: `nodes × devices`.
    pub fn world_size(&self) -> usize {
        self.nodes.max(1) * self.devices.max(1)
    }

    /// Each peer's share of the global batch `batch_size`.
    pub fn local_batch(&self, batch_size: usize) -> usize {
        batch_size / self.world_size()
    }

    /// The global rank of the peer on device `local_rank` of this node: `node_rank · devices +
    /// local_rank`.
    pub fn global_rank(&self, local_rank: usize) -> usize {
        self.node_rank * self.devices + local_rank
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
    let nodes = ctx.count("distributed.nodes", &section.nodes, 1)? as usize;
    if !batch_size.is_multiple_of(devices * nodes) {
        return Err(ctx
            .err(
                section.nodes.span(),
                "distributed.nodes",
                format!(
                    "`train.batch_size` ({batch_size}) is not a multiple of `distributed.nodes` × \
                     `distributed.devices` ({nodes} × {devices})"
                ),
            )
            .with_help("the batch size is the global batch: each peer takes batch_size / (nodes × devices) samples"));
    }
    let coordinator = match &section.coordinator {
        Some(c) => Some(
            c.get_ref()
                .parse::<Coordinator>()
                .map_err(|e| ctx.err(c.span(), "distributed.coordinator", e))?,
        ),
        None => None,
    };
    let timeout = ctx.count("distributed.timeout_seconds", &section.timeout_seconds, 1)?;
    Ok(DistributedConfig {
        devices,
        nodes,
        coordinator,
        negatives: section.negatives,
        timeout: std::time::Duration::from_secs(timeout),
        ..DistributedConfig::default()
    })
}
