//! The inference and evaluation commands of `framer`: [`sr`] (super-resolve with a trained run),
//! [`eval`] (PSNR/SSIM/NIQE against ground truths, one run or several side by side) and
//! [`analyze`] (per-layer band energies over the denoising steps, FAW/FAM over training).
//!
//! A run folder written by `framer train` (or the main job) holds `schedule.resolved.toml`, the
//! metrics log, `model.toml` (the model's kind and configuration) and `checkpoints/step-NNNNNNNN/`
//! with `model.mpk` (and `ema.mpk` when the run keeps an EMA); [`RunFiles::from_run_dir`] finds
//! them and [`with_model`] rebuilds the model of `[model]` through the binary's model registry,
//! with those weights.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::backend::Backend;
use framer::Framed;

use crate::engine::{EngineError, ModelConfig, SrModel, checkpoint, run_record};
use crate::registry::{ConfigTask, ModelRegistry};
use crate::schedule::{self, Experiment};

pub mod analyze;
pub mod encode;
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
    /// The model's taps could not feed the analysis (heads that do not fit the checkpoint, …).
    #[error(transparent)]
    Taps(#[from] framer::TapsError),
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
    /// The model kind the run recorded in `model.toml` (`None` for an explicit checkpoint and
    /// schedule).
    pub kind: Option<String>,
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
        let kind = run_record::read(run_dir)?.kind;
        let dir = run_dir.join(&experiment.checkpoint.dir);
        let latest = checkpoint::latest(&dir)?.ok_or_else(|| {
            CommandError::Invalid(format!("no checkpoint found in {}", dir.display()))
        })?;
        Ok(Self {
            weights: weights_in(&latest)?,
            experiment,
            schedule: schedule_path,
            kind: Some(kind),
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
            kind: None,
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

/// Something to do with a loaded model, whatever its type (see [`with_model`]).
pub trait ModelTask<B: Backend> {
    /// What the task returns.
    type Output;
    /// Runs the task with `model` (the trained model with its generated heads, if any).
    ///
    /// # Errors
    /// The task's own.
    fn run<M: SrModel<B>>(self, model: Framed<B, M>) -> Result<Self::Output, CommandError>;
}

/// Rebuilds the model of `run`'s `[model]` through the registry `R` on `device`, loads the
/// weights of `run` (a record written by the engine's checkpoints, the generated heads included),
/// and runs `task`.
///
/// # Errors
/// [`CommandError::Invalid`] when the run's model kind is not one `R` knows (no fallback to
/// another model) or its `[model]` table does not describe one; [`CommandError::Engine`] when
/// the weights cannot be read or decoded as that model, naming the file.
pub fn with_model<R: ModelRegistry, B: Backend, T: ModelTask<B>>(
    run: &RunFiles,
    device: &B::Device,
    task: T,
) -> Result<T::Output, CommandError> {
    if let Some(kind) = &run.kind
        && !R::kinds().contains(&kind.as_str())
    {
        return Err(CommandError::Invalid(format!(
            "{} was trained with a model of kind `{kind}`, which this program does not know (it \
             knows: {}); run the command with the program that trained it",
            run.schedule.parent().unwrap_or(Path::new(".")).display(),
            R::kinds().join(", ")
        )));
    }
    let load = LoadWeights {
        run,
        device,
        task,
    };
    R::visit(&run.experiment, load).map_err(|e| CommandError::Invalid(e.to_string()))?
}

/// Builds the configured model, loads the run's weights and runs the task.
struct LoadWeights<'a, B: Backend, T> {
    run: &'a RunFiles,
    device: &'a B::Device,
    task: T,
}

impl<B: Backend, T: ModelTask<B>> ConfigTask for LoadWeights<'_, B, T> {
    type Output = Result<T::Output, CommandError>;

    fn run<C: ModelConfig>(self, config: C) -> Self::Output {
        if let Some(kind) = &self.run.kind
            && kind != C::KIND
        {
            return Err(CommandError::Invalid(format!(
                "{} records a model of kind `{kind}`, but its schedule's [model] describes `{}`",
                self.run.schedule.display(),
                C::KIND
            )));
        }
        let model = config
            .init::<B>(self.device)
            .map_err(|e| CommandError::Engine(EngineError::Model(e)))?;
        let sample = crate::engine::sample_args::<B>(&self.run.experiment, self.device);
        let framed = Framed::new(model, sample, self.device)
?;
        let framed = load_weights(framed, &self.run.weights, self.device)?;
        let framed = merge_lora(framed, self.run, self.device)?;
        let framed = match &self.run.experiment.prompts {
            // a `[prompts]` run super-resolves with the null prompt, as the reference samples
            // without a caption
            Some(prompts) => {
                let widths = crate::engine::prompts::model_widths(&config).map_err(EngineError::Model)?;
                let null = crate::engine::prompts::read_prompt(&prompts.null, widths)?;
                let null = crate::engine::prompts::null_condition(&null, widths, 1, self.device);
                Framed { model: C::with_prompt(framed.model, null), heads: framed.heads }
            }
            None => framed,
        };
        self.task.run(framed)
    }
}

/// For a `[lora]` run: the adapters of the checkpoint (`lora.mpk` beside the weights) merged into
/// the model's weights; other runs unchanged.
///
/// # Errors
/// [`CommandError::Invalid`] naming the missing adapters file; [`EngineError`] when it cannot be
/// decoded or its targets do not fit the model.
fn merge_lora<B: Backend, M: Module<B> + burn::module::ModuleDisplay>(
    framed: Framed<B, M>,
    run: &RunFiles,
    device: &B::Device,
) -> Result<Framed<B, M>, CommandError> {
    let Some(settings) = &run.experiment.lora else {
        return Ok(framed);
    };
    let file = run.weights.with_file_name(crate::engine::LORA_FILE);
    if !file.is_file() {
        return Err(CommandError::Invalid(format!(
            "{} does not exist: the run trains LoRA adapters (`[lora]`), which its checkpoints keep \
             in {}",
            file.display(),
            crate::engine::LORA_FILE
        )));
    }
    let adapters = settings
        .config()
        .init(&framed.model, device)
        .map_err(|e| EngineError::Model(format!("[lora] {e}")))?;
    let adapters = load_weights(adapters, &file, device)?;
    Ok(adapters.apply(framed))
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
