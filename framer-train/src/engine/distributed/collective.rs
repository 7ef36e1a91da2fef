//! The peers on burn's collective: the all-gather of the InterCL keys, the gradient and value
//! averages, and the launcher of one thread per device.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Instant;

use burn::collective::{self, CollectiveConfig, PeerId, ReduceOperation};
use burn::module::{AutodiffModule, Module};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use framer::{BatchGather, Framed, FramerError};

use super::StepSync;
use crate::engine::{EngineError, PairSource, RunSummary, SrModel, Trainer};
use crate::schedule::{Experiment, KeyScope};

/// One peer of a data-parallel run on burn's collective (local level: the devices of this
/// machine, one thread each). Registered by [`CollectivePeer::register`]; its collective
/// operations run on `B::InnerBackend` (nothing of them is differentiated).
pub struct CollectivePeer<B: AutodiffBackend> {
    id: PeerId,
    rank: usize,
    world: usize,
    global_keys: bool,
    _backend: PhantomData<B>,
}

impl<B: AutodiffBackend> CollectivePeer<B> {
    /// Registers peer `rank` of `world` on `device` with burn's collective; returns once every
    /// peer has registered.
    ///
    /// # Errors
    /// [`EngineError::Distributed`] with the collective's error.
    pub fn register(
        rank: usize,
        world: usize,
        device: &B::Device,
        negatives: KeyScope,
    ) -> Result<Self, EngineError> {
        let id = PeerId(rank as u32);
        let config = CollectiveConfig::default().with_num_devices(world);
        collective::register::<B::InnerBackend>(id, device.clone(), config)
            .map_err(|e| EngineError::Distributed(format!("peer {rank}: registering: {e:?}")))?;
        Ok(Self {
            id,
            rank,
            world,
            global_keys: negatives == KeyScope::Global,
            _backend: PhantomData,
        })
    }


    fn all_reduce<const D: usize>(
        &self,
        tensor: Tensor<B::InnerBackend, D>,
        op: ReduceOperation,
        what: &str,
    ) -> Result<Tensor<B::InnerBackend, D>, String> {
        let reduced = collective::all_reduce::<B::InnerBackend>(self.id, tensor.into_primitive().tensor(), op)
            .map_err(|e| format!("peer {}: all-reduce of {what}: {e:?}", self.rank))?;
        Ok(Tensor::from_primitive(TensorPrimitive::Float(reduced)))
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
        grads
            .all_reduce::<B::InnerBackend>(self.id, ReduceOperation::Mean)
            .map_err(|e| EngineError::Distributed(format!("peer {}: all-reduce of the gradients: {e:?}", self.rank)))
    }

    fn finish(&self) {
        let _ = collective::finish_collective::<B::InnerBackend>(self.id);
    }

    fn average_values(&self, values: &[f64]) -> Result<Vec<f64>, EngineError> {
        let device = Default::default();
        let data = TensorData::new(values.iter().map(|&v| v as f32).collect::<Vec<_>>(), [values.len()]);
        let averaged = self
            .all_reduce(Tensor::<B::InnerBackend, 1>::from_data(data, &device), ReduceOperation::Mean, "the losses")
            .map_err(EngineError::Distributed)?;
        let out: Vec<f32> = averaged
            .into_data()
            .convert::<f32>()
            .into_vec()
            .map_err(|e| EngineError::Distributed(format!("peer {}: reading the averaged losses: {e:?}", self.rank)))?;
        Ok(out.into_iter().map(f64::from).collect())
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

/// Trains `experiment` on `[distributed] devices` peers, one thread per device, each starting
/// from `model` (the same initial weights everywhere; on resume, the same checkpoint). Peer 0
/// writes the run folder `out_dir`. Returns peer 0's summary and trained model.
///
/// # Errors
/// The first error of any peer, naming the peer; when a peer stops and the others do not finish
/// within `[distributed] timeout_seconds` (they wait on it in a collective operation), an
/// [`EngineError::Distributed`] saying so. The abandoned threads stay blocked until the process
/// exits.
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
    let world = experiment.distributed.devices;
    let timeout = experiment.distributed.timeout;
    let experiment = Arc::new(experiment.clone());
    let (tx, rx) = mpsc::channel::<(usize, Result<(RunSummary, Framed<B, M>), EngineError>)>();
    for rank in 0..world {
        let (experiment, sources, tx) = (experiment.clone(), sources.clone(), tx.clone());
        let (model, out_dir): (Framed<B, M>, PathBuf) = (model.clone(), out_dir.to_path_buf());
        let device = peer_device(device, rank);
        let spawned = std::thread::Builder::new()
            .name(format!("framer-peer-{rank}"))
            .spawn(move || {
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_peer(&experiment, model, &sources, &out_dir, &device, rank)
                }))
                .unwrap_or_else(|panic| {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(EngineError::Distributed(format!("peer {rank} panicked: {message}")))
                });
                let _ = tx.send((rank, run));
            });
        if let Err(e) = spawned {
            return Err(EngineError::Distributed(format!("cannot start peer {rank}: {e}")));
        }
    }
    drop(tx);
    let mut results: Vec<Option<Result<(RunSummary, Framed<B, M>), EngineError>>> =
        (0..world).map(|_| None).collect();
    let mut failed_at: Option<Instant> = None;
    for _ in 0..world {
        let received = match failed_at {
            None => rx.recv().ok(),
            Some(at) => rx.recv_timeout(timeout.saturating_sub(at.elapsed())).ok(),
        };
        let Some((rank, result)) = received else { break };
        if result.is_err() && failed_at.is_none() {
            failed_at = Some(Instant::now());
        }
        results[rank] = Some(result);
    }
    // the first error in rank order names the run's failure
    let waiting: Vec<usize> = (0..world).filter(|&r| results[r].is_none()).collect();
    if let Some((rank, Some(Err(e)))) = results.iter().enumerate().find(|(_, r)| matches!(r, Some(Err(_)))) {
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
    match results.swap_remove(0) {
        Some(Ok(run)) => Ok(run),
        _ => Err(EngineError::Distributed(format!("peer 0 of {world} ended without a result"))),
    }
}

fn run_peer<B, M>(
    experiment: &Experiment,
    model: Framed<B, M>,
    sources: &PeerSources,
    out_dir: &Path,
    device: &B::Device,
    rank: usize,
) -> Result<(RunSummary, Framed<B, M>), EngineError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SrModel<B>,
    M::InnerModule: SrModel<B::InnerBackend>,
{
    let world = experiment.distributed.devices;
    let peer = CollectivePeer::<B>::register(rank, world, device, experiment.distributed.negatives)?;
    let model = model.fork(device);
    let source = sources(rank)?;
    let mut trainer = Trainer::new(experiment, model, source, out_dir, device)?.with_peers(Box::new(peer));
    let summary = trainer.run(None)?;
    trainer.finish_peers();
    Ok((summary, trainer.model().clone()))
}
