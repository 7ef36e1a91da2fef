//! The inference and evaluation commands of `framer`: [`sr`] (super-resolve with a trained run),
//! [`eval`] (PSNR/SSIM/NIQE against ground truths, one run or several side by side) and
//! [`analyze`] (per-layer band energies over the denoising steps, FAW/FAM over training).
//!
//! A run folder written by `framer train` (or the main job) holds `schedule.resolved.toml`, the
//! metrics log and `checkpoints/step-NNNNNNNN/` with `model.mpk` (and `ema.mpk` when the run keeps
//! an EMA); [`RunFiles::from_run_dir`] finds them and [`with_model`] rebuilds the model of
//! `[model]` with those weights.

use std::path::{Path, PathBuf};

use crate::engine::{ExperimentModel, build_model};
use burn::module::Module;
use burn::tensor::backend::Backend;

use crate::engine::{Denoiser, EngineError, checkpoint};
use crate::schedule::{self, Experiment};

pub mod analyze;
pub mod eval;
pub mod sr;

/// An error of a command, with the file or folder it concerns in its message.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad input: a missing file or folder, a run without checkpoint, a bad argument.
    #[error("{0}")]
    Invalid(String),
    /// From the inference / evaluation helpers.
    #[error(transparent)]
    Eval(#[from] framer_eval::EvalError),
    /// From the engine (checkpoint decoding, model building).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The files of a trained run that inference needs.
#[derive(Debug, Clone)]
pub struct RunFiles {
    /// The run's experiment, from its resolved schedule.
    pub experiment: Experiment,
    /// The schedule file read.
    pub schedule: PathBuf,
    /// The weights file: `ema.mpk` when the checkpoint has one, else `model.mpk`.
    pub weights: PathBuf,
}

impl RunFiles {
    /// The newest checkpoint of the run folder `run_dir` and its `schedule.resolved.toml`.
    ///
    /// # Errors
    /// [`CommandError::Invalid`] naming the path if the folder, the schedule or a checkpoint is
    /// missing; the schedule's own located error if it does not parse.
    pub fn from_run_dir(run_dir: &Path) -> Result<Self, CommandError> {
        if !run_dir.is_dir() {
            return Err(CommandError::Invalid(format!(
                "run folder {} does not exist (expected a folder written by `framer train`)",
                run_dir.display()
            )));
        }
        let schedule_path = run_dir.join("schedule.resolved.toml");
        let experiment = load_schedule(&schedule_path)?;
        let dir = run_dir.join(&experiment.checkpoint.dir);
        let latest = checkpoint::latest(&dir)?.ok_or_else(|| {
            CommandError::Invalid(format!("no checkpoint found in {}", dir.display()))
        })?;
        Ok(Self {
            weights: weights_in(&latest)?,
            experiment,
            schedule: schedule_path,
        })
    }

    /// An explicit checkpoint (a `step-NNNNNNNN` folder or one `.mpk` file) and schedule.
    ///
    /// # Errors
    /// As [`RunFiles::from_run_dir`].
    pub fn from_checkpoint(checkpoint: &Path, schedule: &Path) -> Result<Self, CommandError> {
        let experiment = load_schedule(schedule)?;
        let weights = if checkpoint.is_dir() {
            weights_in(checkpoint)?
        } else if checkpoint.is_file() {
            checkpoint.to_path_buf()
        } else {
            return Err(CommandError::Invalid(format!(
                "checkpoint {} does not exist",
                checkpoint.display()
            )));
        };
        Ok(Self {
            experiment,
            schedule: schedule.to_path_buf(),
            weights,
        })
    }
}

fn load_schedule(path: &Path) -> Result<Experiment, CommandError> {
    if !path.is_file() {
        return Err(CommandError::Invalid(format!(
            "schedule {} does not exist",
            path.display()
        )));
    }
    schedule::load(path).map_err(|e| CommandError::Invalid(e.to_string()))
}

fn weights_in(checkpoint_dir: &Path) -> Result<PathBuf, CommandError> {
    for name in ["ema.mpk", "model.mpk"] {
        let p = checkpoint_dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(CommandError::Invalid(format!(
        "checkpoint {} has neither ema.mpk nor model.mpk",
        checkpoint_dir.display()
    )))
}

/// Something to do with a loaded model, whatever its backbone (see [`with_model`]).
pub trait ModelTask<B: Backend> {
    /// What the task returns.
    type Output;
    /// Runs the task with `model`.
    ///
    /// # Errors
    /// The task's own.
    fn run<M: Denoiser<B>>(self, model: M) -> Result<Self::Output, CommandError>;
}

/// Builds the backbone of `experiment`'s `[model]` (with its student heads) on `device`, loads
/// the weights file `weights` (a record written by the engine's checkpoints), and runs `task`.
///
/// # Errors
/// [`CommandError::Engine`] if the preset is unknown or the file cannot be read or decoded as
/// that model (e.g. a checkpoint of another backbone), naming the file.
pub fn with_model<B: Backend, T: ModelTask<B>>(
    experiment: &Experiment,
    weights: &Path,
    device: &B::Device,
    task: T,
) -> Result<T::Output, CommandError> {
    match build_model::<B>(experiment, device)? {
        ExperimentModel::UNet(model) => task.run(load_weights(model, weights, device)?),
        ExperimentModel::DiT(model) => task.run(load_weights(model, weights, device)?),
    }
}

/// Loads the record in `path` (the checkpoint recorder's format) into `model`.
///
/// # Errors
/// [`EngineError::Checkpoint`] naming the file if it cannot be read or decoded.
pub fn load_weights<B: Backend, M: Module<B>>(
    model: M,
    path: &Path,
    device: &B::Device,
) -> Result<M, EngineError> {
    let record = checkpoint::read_record::<B, M::Record>(path, device)?;
    Ok(model.load_record(record))
}

/// Seeded standard-normal noise of `shape`.
pub(crate) fn normal_noise<B: Backend>(
    shape: [usize; 4],
    seed: u64,
    device: &B::Device,
) -> burn::tensor::Tensor<B, 4> {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let values: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| rand_distr::StandardNormal.sample(&mut rng))
        .collect();
    burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(values, shape), device)
}
