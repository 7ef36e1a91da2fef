//! The peers on burn's collective: the all-gather of the InterCL keys, the gradient and value
//! averages, the agreement check, and the launcher of one thread per device (with burn's global
//! orchestrator on node 0 of a multi-node run).

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use burn::collective::{self, AllReduceStrategy, CollectiveConfig, PeerId, ReduceOperation};
use burn::module::{AutodiffModule, Module};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use framer::{BatchGather, Framed, FramerError};
use sha2::{Digest, Sha256};

use super::StepSync;
use crate::engine::{EngineError, PairSource, RunSummary, SrModel, Trainer};
use crate::schedule::{Coordinator, DistributedConfig, Experiment, KeyScope};

/// Which collective operation a peer is blocked in, and since when: the launcher stops the run
/// when a peer has waited longer than `[distributed] timeout_seconds` (another node stopped or
/// cannot be reached).
#[derive(Debug, Default)]
pub struct PeerWatch {
    waiting: Mutex<Option<(Instant, String)>>,
}

impl PeerWatch {
    /// The operation and how long the peer has been in it, once that is over `timeout`.
    pub fn stalled(&self, timeout: Duration) -> Option<(Duration, String)> {
        let w = self.waiting.lock().ok()?;
        let (since, what) = w.as_ref()?;
        let waited = since.elapsed();
        (waited > timeout).then(|| (waited, what.clone()))
    }

    /// Runs the collective operation `op`, marked as waiting in `what` while it runs.
    fn watch<T>(&self, what: &str, op: impl FnOnce() -> T) -> T {
        let set = |state| {
            if let Ok(mut w) = self.waiting.lock() {
                *w = state;
            }
        };
        set(Some((Instant::now(), what.to_string())));
        let out = op();
        set(None);
        out
    }
}

/// One peer of a data-parallel run on burn's collective: the devices of this machine, one thread
/// each, and with `nodes > 1` the other machines through burn's global orchestrator. Registered
/// by [`CollectivePeer::register`]; its collective operations run on `B::InnerBackend` (nothing
/// of them is differentiated).
pub struct CollectivePeer<B: AutodiffBackend> {
    id: PeerId,
    rank: usize,
    world: usize,
    global_keys: bool,
    watch: Arc<PeerWatch>,
    _backend: PhantomData<B>,
}

/// The collective's configuration of one node: its devices, and with several nodes the
/// orchestrator's address, this node's tensor service and the global strategy (a tree: burn's
/// ring cannot reduce tensors with fewer rows than nodes, such as a bias of one channel).
fn collective_config(config: &DistributedConfig) -> Result<CollectiveConfig, EngineError> {
    let local = CollectiveConfig::default().with_num_devices(config.devices);
    if config.nodes <= 1 {
        return Ok(local);
    }
    let coordinator = coordinator(config)?;
    let data_port = data_port(config)?;
    let node = Coordinator {
        host: match &config.node_host {
            Some(h) => h.clone(),
            None => route_address(coordinator).unwrap_or_else(|| "127.0.0.1".into()),
        },
        port: data_port,
    };
    Ok(local
        .with_num_nodes(config.nodes as u32)
        .with_global_address(format!("ws://{coordinator}").parse().map_err(EngineError::Distributed)?)
        .with_node_address(format!("ws://{node}").parse().map_err(EngineError::Distributed)?)
        .with_data_service_port(data_port)
        .with_global_all_reduce_strategy(AllReduceStrategy::Tree(2)))
}

/// The environment variable that lets `nodes > 1` through despite burn-collective 0.21.0's
/// global level (for trying a patched burn-collective).
pub const GLOBAL_LEVEL_OVERRIDE: &str = "FRAMER_UNSTABLE_GLOBAL_COLLECTIVE";

/// Whether several nodes may train: burn-collective 0.21.0's global level completes one
/// operation per process and then hangs. Its node sync (`src/global/node/sync.rs`, `sync`)
/// clears a copy of the list of peers it has heard from instead of the list, so the barrier
/// that ends every global operation never passes again; and its strategies reuse the transfer
/// ids 0 and 1 for every operation (tracel-ai/burn#4549). A training step needs dozens of
/// operations, so framer refuses `nodes > 1` with this explanation unless
/// [`GLOBAL_LEVEL_OVERRIDE`] is `1`.
///
/// # Errors
/// [`EngineError::Distributed`] with the reason.
pub fn check_global_level(config: &DistributedConfig) -> Result<(), EngineError> {
    if config.nodes <= 1 || std::env::var(GLOBAL_LEVEL_OVERRIDE).is_ok_and(|v| v == "1") {
        return Ok(());
    }
    Err(EngineError::Distributed(format!(
        "{} nodes need burn-collective's global level, which in burn-collective 0.21.0 (the \
         version burn 0.21.0 pins) hangs at its second operation: its node sync never forgets \
         the peers of the previous operation (src/global/node/sync.rs) and its strategies reuse \
         transfer ids (tracel-ai/burn#4549). Train on the devices of one machine (--devices) \
         until the pinned burn has the fix; {GLOBAL_LEVEL_OVERRIDE}=1 tries it anyway",
        config.nodes
    )))
}

/// The coordinator of a multi-node run (`with_launch` requires one when `nodes > 1`; a
/// configuration built by hand may lack it).
fn coordinator(config: &DistributedConfig) -> Result<&Coordinator, EngineError> {
    config.coordinator.as_ref().ok_or_else(|| {
        EngineError::Distributed(format!(
            "{} nodes need the coordinator's address (--coordinator host:port)",
            config.nodes
        ))
    })
}

/// The port of this node's tensor service: the coordinator's port + 1 + the node rank.
fn data_port(config: &DistributedConfig) -> Result<u16, EngineError> {
    let port = coordinator(config)?.port;
    u16::try_from(port as usize + 1 + config.node_rank).map_err(|_| {
        EngineError::Distributed(format!(
            "node {}'s tensor port (coordinator port {port} + 1 + rank) is past 65535: choose a \
             lower coordinator port",
            config.node_rank
        ))
    })
}

/// This machine's address on its route to the coordinator (no packet is sent).
fn route_address(coordinator: &Coordinator) -> Option<String> {
    let socket = std::net::UdpSocket::bind(("0.0.0.0", 0)).ok()?;
    socket.connect((coordinator.host.as_str(), coordinator.port)).ok()?;
    Some(socket.local_addr().ok()?.ip().to_string())
}

/// Fails with a clear message when `port` cannot be listened on (in use, or not allowed).
fn check_port_free(port: u16, what: &str) -> Result<(), EngineError> {
    std::net::TcpListener::bind(("0.0.0.0", port))
        .map(drop)
        .map_err(|e| {
            EngineError::Distributed(format!(
                "{what} cannot listen on port {port}: {e} (another run may be using it: choose \
             another coordinator port, --coordinator host:PORT, the same on every node)"
            ))
        })
}

/// Starts burn's global orchestrator on `port` in a thread of this process (node 0). It takes
/// over Ctrl-C and SIGTERM; when it stops on one, the process exits as the signal would have
/// made it.
fn start_coordinator(port: u16) -> Result<(), EngineError> {
    check_port_free(port, "the coordinator")?;
    std::thread::Builder::new()
        .name("framer-coordinator".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(burn_collective::start_global_orchestrator(port)),
                Err(e) => eprintln!("error: the coordinator cannot start a runtime: {e}"),
            }
            eprintln!(
                "error: the coordinator on port {port} stopped (interrupted); stopping this node"
            );
            std::process::exit(130);
        })
        .map(drop)
        .map_err(|e| EngineError::Distributed(format!("cannot start the coordinator: {e}")))
}

impl<B: AutodiffBackend> CollectivePeer<B> {
    /// Registers the peer of device `local_rank` of this node with burn's collective; returns
    /// once every peer of every node has registered. Its global rank is
    /// `node_rank · devices + local_rank`.
    ///
    /// # Errors
    /// [`EngineError::Distributed`] with the collective's error.
    pub fn register(
        local_rank: usize,
        config: &DistributedConfig,
        device: &B::Device,
        watch: Arc<PeerWatch>,
    ) -> Result<Self, EngineError> {
        let rank = config.global_rank(local_rank);
        let id = PeerId(rank as u32);
        let collective_config = collective_config(config)?;
        watch
            .watch("registering with the other peers", || {
                collective::register::<B::InnerBackend>(id, device.clone(), collective_config)
            })
            .map_err(|e| {
                let hint = match &e {
                    collective::CollectiveError::Global(_) if config.nodes > 1 => {
                        " (is every node started with the same --nodes?)"
                    }
                    _ => "",
                };
                EngineError::Distributed(format!("peer {rank}: registering: {e:?}{hint}"))
            })?;
        Ok(Self {
            id,
            rank,
            world: config.world_size(),
            global_keys: config.negatives == KeyScope::Global,
            watch,
            _backend: PhantomData,
        })
    }

    fn all_reduce<const D: usize>(
        &self,
        tensor: Tensor<B::InnerBackend, D>,
        op: ReduceOperation,
        what: &str,
    ) -> Result<Tensor<B::InnerBackend, D>, String> {
        let reduced = self
            .watch
            .watch(&format!("the all-reduce of {what}"), || {
                collective::all_reduce::<B::InnerBackend>(
                    self.id,
                    tensor.into_primitive().tensor(),
                    op,
                )
            })
            .map_err(|e| format!("peer {}: all-reduce of {what}: {e:?}", self.rank))?;
        Ok(Tensor::from_primitive(TensorPrimitive::Float(reduced)))
    }

    /// The element-wise sum of `values` over the peers.
    fn sum_values(&self, values: Vec<f32>, what: &str) -> Result<Vec<f32>, EngineError> {
        let n = values.len();
        let tensor = Tensor::<B::InnerBackend, 1>::from_data(
            TensorData::new(values, [n]),
            &Default::default(),
        );
        let summed = self
            .all_reduce(tensor, ReduceOperation::Sum, what)
            .map_err(EngineError::Distributed)?;
        summed.into_data().convert::<f32>().into_vec().map_err(|e| {
            EngineError::Distributed(format!("peer {}: reading {what}: {e:?}", self.rank))
        })
    }
}

impl<B: AutodiffBackend> BatchGather<B> for CollectivePeer<B> {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world
    }

    /// burn-collective has no all-gather: each peer puts its rows into its own slot of a zero
    /// `[world·rows, n]` tensor and the slots are summed (exact: every entry is one value plus
    /// zeros).
    fn gather_rows(&self, local: Tensor<B, 2>) -> Result<Tensor<B, 2>, FramerError> {
        let [rows, width] = local.dims();
        let local = local.inner();
        let device = local.device();
        let zeros = |n: usize| Tensor::<B::InnerBackend, 2>::zeros([n, width], &device);
        let mut slots = Vec::with_capacity(3);
        if self.rank > 0 {
            slots.push(zeros(self.rank * rows));
        }
        slots.push(local);
        if self.rank + 1 < self.world {
            slots.push(zeros((self.world - self.rank - 1) * rows));
        }
        let gathered = self
            .all_reduce(Tensor::cat(slots, 0), ReduceOperation::Sum, "the InterCL keys")
            .map_err(FramerError::Gather)?;
        Ok(Tensor::from_inner(gathered))
    }
}

impl<B: AutodiffBackend> StepSync<B> for CollectivePeer<B> {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world
    }

    fn key_gather(&self) -> Option<&dyn BatchGather<B>> {
        self.global_keys.then_some(self as &dyn BatchGather<B>)
    }

    fn average_gradients(&self, grads: GradientsParams) -> Result<GradientsParams, EngineError> {
        self.watch
            .watch("the all-reduce of the gradients", || {
                grads.all_reduce::<B::InnerBackend>(self.id, ReduceOperation::Mean)
            })
            .map_err(|e| {
                EngineError::Distributed(format!(
                    "peer {}: all-reduce of the gradients: {e:?}",
                    self.rank
                ))
            })
    }

    /// One sum over the peers of `[one-hot rank (world) | the fingerprint's SHA-256, 8 bytes |
    /// their squares]`. Every peer sees the same counts, so each rank must be counted once
    /// everywhere; and with sums `Σx` and `Σx²` of a byte `x` over `N` peers, `Σx = N·x_j` and
    /// `Σx² = N·x_j²` hold on peer `j` only when all bytes are equal (Cauchy–Schwarz), so every
    /// peer finds a difference, not only some of them. Integers below 2^24: exact in f32 up to
    /// 256 peers. One operation: the check needs nothing of the peers after it.
    fn agree(&self, fingerprint: &str) -> Result<(), EngineError> {
        let digest = Sha256::digest(fingerprint.as_bytes());
        let bytes: Vec<f32> = digest[..8].iter().map(|&b| f32::from(b)).collect();
        let world = self.world;
        let mut values = vec![0.0; world + 2 * bytes.len()];
        values[self.rank] = 1.0;
        for (i, &b) in bytes.iter().enumerate() {
            values[world + i] = b;
            values[world + bytes.len() + i] = b * b;
        }
        let summed = self.sum_values(values, "the agreement check")?;
        let counts = &summed[..world];
        if counts.iter().any(|&c| c != 1.0) {
            return Err(EngineError::Distributed(format!(
                "the {world} peers do not take the ranks 0..{world} once each (counts {:?}): start \
                 each node with its own --node-rank (0 to nodes - 1) and the same --devices",
                counts.iter().map(|&c| c as u32).collect::<Vec<_>>()
            )));
        }
        let n = world as f32;
        let same = bytes.iter().enumerate().all(|(i, &b)| {
            summed[world + i] == n * b && summed[world + bytes.len() + i] == n * b * b
        });
        if !same {
            return Err(EngineError::Distributed(format!(
                "the peers do not start the same run (peer {}: fingerprint {}): every node needs \
                 the same schedule (its resolved form, schedule.resolved.toml), the same \
                 --devices, and the same run folder to resume from",
                self.rank,
                digest[..8]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )));
        }
        Ok(())
    }

    fn finish(&self) {
        let _ = collective::finish_collective::<B::InnerBackend>(self.id);
    }

    fn average_values(&self, values: &[f64]) -> Result<Vec<f64>, EngineError> {
        let summed = self.sum_values(values.iter().map(|&v| v as f32).collect(), "the losses")?;
        Ok(summed
            .into_iter()
            .map(|s| f64::from(s) / self.world as f64)
            .collect())
    }
}

/// The pair source of each peer, made in the peer's thread from its rank.
pub type PeerSources = Arc<dyn Fn(usize) -> Result<Box<dyn PairSource>, EngineError> + Send + Sync>;

/// The device of peer `rank`: the device with index `first + rank` of `first`'s kind (CUDA
/// devices `0..N`; the one CPU device for every peer on Flex).
fn peer_device<D: burn::tensor::backend::DeviceOps>(first: &D, rank: usize) -> D {
    let id = first.to_id();
    D::from_id(burn::tensor::backend::DeviceId::new(id.type_id, id.index_id + rank as u16))
}

/// Trains `experiment` on `[distributed] devices` peers of this node, one thread per device, each
/// starting from `model` (the same initial weights everywhere; on resume, the same checkpoint).
/// With `nodes > 1` this is one node of a multi-node run, and node 0 starts the coordinator.
/// Node 0's peer 0 writes the run folder `out_dir`. Returns this node's first peer's summary and
/// trained model.
///
/// # Errors
/// The first error of any peer of this node, naming the peer; when a peer stops and the others
/// do not finish within `[distributed] timeout_seconds` (they wait on it in a collective
/// operation), or a peer waits longer than that in one collective operation (another node
/// stopped), an [`EngineError::Distributed`] saying so. The abandoned threads stay blocked until
/// the process exits.
pub fn run_data_parallel<B, M>(
    experiment: &Experiment,
    model: Framed<B, M>,
    sources: PeerSources,
    out_dir: &Path,
    device: &B::Device,
) -> Result<(RunSummary, Framed<B, M>), EngineError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SrModel<B> + Send + 'static,
    M::InnerModule: SrModel<B::InnerBackend>,
{
    let config = &experiment.distributed;
    let (devices, world, timeout) = (config.devices, config.world_size(), config.timeout);
    check_global_level(config)?;
    if config.nodes > 1 {
        if config.node_rank == 0 {
            start_coordinator(coordinator(config)?.port)?;
        }
        check_port_free(
            data_port(config)?,
            &format!("node {}'s tensor service", config.node_rank),
        )?;
    }
    let first_rank = config.global_rank(0);
    let experiment = Arc::new(experiment.clone());
    let watches: Vec<Arc<PeerWatch>> = (0..devices).map(|_| Arc::default()).collect();
    let (tx, rx) = mpsc::channel::<(usize, Result<(RunSummary, Framed<B, M>), EngineError>)>();
    for local in 0..devices {
        let (experiment, sources, tx, watch) = (
            experiment.clone(),
            sources.clone(),
            tx.clone(),
            watches[local].clone(),
        );
        let (model, out_dir): (Framed<B, M>, PathBuf) = (model.clone(), out_dir.to_path_buf());
        let device = peer_device(device, local);
        let rank = first_rank + local;
        let spawned = std::thread::Builder::new()
            .name(format!("framer-peer-{rank}"))
            .spawn(move || {
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_peer(
                        &experiment,
                        model,
                        &sources,
                        &out_dir,
                        &device,
                        local,
                        watch,
                    )
                }))
                .unwrap_or_else(|panic| {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(EngineError::Distributed(format!(
                        "peer {rank} panicked: {message}"
                    )))
                });
                let _ = tx.send((local, run));
            });
        if let Err(e) = spawned {
            return Err(EngineError::Distributed(format!(
                "cannot start peer {rank}: {e}"
            )));
        }
    }
    drop(tx);
    let mut results: Vec<Option<Result<(RunSummary, Framed<B, M>), EngineError>>> =
        (0..devices).map(|_| None).collect();
    let mut failed_at: Option<Instant> = None;
    let mut stalled = None;
    let mut pending = devices;
    while pending > 0 {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((local, result)) => {
                if result.is_err() && failed_at.is_none() {
                    failed_at = Some(Instant::now());
                }
                results[local] = Some(result);
                pending -= 1;
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if failed_at.is_some_and(|at| at.elapsed() >= timeout) {
            break;
        }
        if failed_at.is_none()
            && let Some(found) = watches
                .iter()
                .enumerate()
                .find_map(|(local, w)| Some((local, w.stalled(timeout)?)))
        {
            stalled = Some(found);
            break;
        }
    }
    // the first error in rank order names the run's failure
    let waiting: Vec<usize> = (0..devices)
        .filter(|&l| results[l].is_none())
        .map(|l| first_rank + l)
        .collect();
    if let Some((local, Some(Err(e)))) = results
        .iter()
        .enumerate()
        .find(|(_, r)| matches!(r, Some(Err(_))))
    {
        let rank = first_rank + local;
        let message = if waiting.is_empty() {
            format!("peer {rank} of {world} stopped: {e}")
        } else {
            format!(
                "peer {rank} of {world} stopped: {e}; peers {waiting:?} did not finish within {} s \
                 (they were waiting on it in a collective operation) and were abandoned",
                timeout.as_secs()
            )
        };
        return Err(EngineError::Distributed(message));
    }
    if let Some((local, (waited, what))) = stalled {
        let where_ = match (config.nodes, &config.coordinator) {
            (1, _) | (_, None) => String::new(),
            (n, Some(c)) => format!(" of node {} ({n} nodes, coordinator {c})", config.node_rank),
        };
        return Err(EngineError::Distributed(format!(
            "peer {}{where_} waited {} s in {what} for the other peers (timeout_seconds = {}): a \
             peer on another node stopped or cannot be reached; this node stops",
            first_rank + local,
            waited.as_secs(),
            timeout.as_secs()
        )));
    }
    match results.swap_remove(0) {
        Some(Ok(run)) => Ok(run),
        _ => Err(EngineError::Distributed(format!(
            "peer {first_rank} of {world} ended without a result"
        ))),
    }
}

fn run_peer<B, M>(
    experiment: &Experiment,
    model: Framed<B, M>,
    sources: &PeerSources,
    out_dir: &Path,
    device: &B::Device,
    local: usize,
    watch: Arc<PeerWatch>,
) -> Result<(RunSummary, Framed<B, M>), EngineError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SrModel<B>,
    M::InnerModule: SrModel<B::InnerBackend>,
{
    let config = &experiment.distributed;
    let peer = CollectivePeer::<B>::register(local, config, device, watch)?;
    let rank = peer.rank;
    let model = model.fork(device);
    let source = sources(rank)?;
    let mut trainer =
        Trainer::new(experiment, model, source, out_dir, device)?.with_peers(Box::new(peer));
    let summary = trainer.run(None)?;
    // one node alone leaves the local group (a later run in this process registers again); the
    // nodes of a multi-node run end with their process, and the last all-reduce has synced them
    if config.nodes <= 1 {
        trainer.finish_peers();
    }
    Ok((summary, trainer.model().clone()))
}
