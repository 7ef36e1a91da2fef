//! Training from the library: [`train_schedule`] (what `framer train` runs) and
//! [`train_experiment`], for a model of any [`ModelRegistry`].

use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;

use super::check_schedule;
use crate::engine::{EngineError, ModelConfig, RunSummary};
use crate::registry::{ConfigTask, ModelRegistry};
use crate::schedule::{Experiment, Launch};

/// Trains `experiment` with the model `[model]` describes, on backend `B`.
struct TrainTask<'a, B: AutodiffBackend> {
    experiment: &'a Experiment,
    out: &'a Path,
    device: B::Device,
}

impl<B: AutodiffBackend> ConfigTask for TrainTask<'_, B> {
    type Output = Result<RunSummary, EngineError>;

    fn run<C: ModelConfig>(self, config: C) -> Self::Output {
        crate::engine::run_experiment::<B, C>(&config, self.experiment, self.out, &self.device)
    }
}

/// Trains the schedule at `path` with a model of the registry `R`: the library entry point of
/// `framer train` (the schedule is checked first, the model's students included).
///
/// # Errors
/// The schedule's located errors, then the engine's.
pub fn train_schedule<R: ModelRegistry, B: AutodiffBackend>(
    path: &Path,
    out: Option<&Path>,
    device: &B::Device,
) -> Result<RunSummary, String> {
    let experiment = check_schedule::<R>(path).map_err(|e| e.to_string())?.experiment;
    train_experiment::<R, B>(&experiment, &run_folder(out, &experiment), device)
}

/// The run folder: `out`, or `runs/<name>` by default.
fn run_folder(out: Option<&Path>, experiment: &Experiment) -> PathBuf {
    out.map_or_else(|| PathBuf::from("runs").join(&experiment.name), Path::to_path_buf)
}

/// Trains an already loaded `experiment` into `out` with a model of the registry `R`.
///
/// # Errors
/// The model table's located errors, then the engine's.
pub fn train_experiment<R: ModelRegistry, B: AutodiffBackend>(
    experiment: &Experiment,
    out: &Path,
    device: &B::Device,
) -> Result<RunSummary, String> {
    let task = TrainTask::<B> {
        experiment,
        out,
        device: device.clone(),
    };
    R::visit(experiment, task)
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// `framer train`: the schedule at `schedule`, with the launch flags (`--devices`, `--nodes`,
/// `--node-rank`, `--coordinator`, `--node-host`) replacing `[distributed]` values.
pub(super) fn train_command<R: ModelRegistry>(
    schedule: &Path,
    out: Option<&Path>,
    launch: Launch,
    device: super::backend::Device,
) -> Result<RunSummary, String> {
    struct Task<'a, R>(&'a Path, Option<&'a Path>, Launch, std::marker::PhantomData<R>);
    impl<R: ModelRegistry> super::backend::OnBackend for Task<'_, R> {
        type Output = RunSummary;
        fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<RunSummary, String> {
            if self.2 == Launch::default() {
                return train_schedule::<R, B>(self.0, self.1, device);
            }
            let mut experiment = check_schedule::<R>(self.0).map_err(|e| e.to_string())?.experiment;
            experiment.distributed = experiment
                .distributed
                .with_launch(&self.2, experiment.train.batch_size)?;
            train_experiment::<R, B>(&experiment, &run_folder(self.1, &experiment), device)
        }
    }
    device.run(Task::<R>(schedule, out, launch, std::marker::PhantomData))
}
