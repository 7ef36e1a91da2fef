//! The training engine: one loop, generic over the backend and over any [`SrModel`] (a model
//! annotated with `#[framer]` / `#[framer_forward]`), trained inside its [`Framed`] wrapper (the
//! model plus its generated heads: what the optimiser, the EMA and the checkpoints see).
//!
//! Per step `s` (every random draw derived from `(seed, s)`):
//! 1. the batch of step `s` from a [`PairSource`], noise ε and noise levels from the objective;
//! 2. one call, [`Framed::forward_framer`]: the prediction, and when λ(s) > 0 the FRAMER loss of
//!    the selected students (taps, heads, negatives) weighted by λ(s);
//! 3. `loss = base + λ(s)·L_FRAMER`, backward, the global gradient norm;
//! 4. the NaN/Inf guard: a non-finite loss or gradient rejects the step (no update); after
//!    `max_bad_steps` consecutive rejections the run stops with an error and no checkpoint is
//!    written;
//! 5. global-norm clipping, AdamW at lr(s), the EMA update;
//! 6. metrics, progress, plots, and atomic checkpoints from which a run resumes exactly.

pub mod checkpoint;
pub mod data;
pub mod ema;
pub mod fault;
pub mod grad;
pub mod metrics;
pub mod model;
pub mod objective;
pub mod photos;
pub mod rng;
pub mod run_record;
mod run_dir;
pub mod sampler;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use framer::{Framed, FramerStep, StudentSelection};
use rand_distr::{Distribution, StandardNormal};
use thiserror::Error;

pub use checkpoint::TrainingState;
pub use data::{FixedBatch, PairBatch, PairSource, SyntheticPairs};
pub use metrics::{MetricsLog, StepRecord};
pub use model::{ModelConfig, SrArgs, SrModel};
pub use photos::DegradedPhotos;
pub use objective::{NoiseLevels, Objective};
pub use sampler::{sample, sample_from};

use crate::schedule::Experiment;
use rng::{Stream, step_rng};

/// Everything that can stop a run.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The FRAMER loss rejected its input or settings.
    #[error("FRAMER loss: {0}")]
    Framer(#[from] framer::FramerError),
    /// The data source failed.
    #[error("data: {0}")]
    Data(String),
    /// A checkpoint could not be written or read.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A log or plot could not be written.
    #[error("i/o: {0}")]
    Io(String),
    /// The model does not fit the schedule (e.g. a student index beyond the taps).
    #[error("model: {0}")]
    Model(String),
    /// The model's taps could not feed the FRAMER loss (no teacher, heads that do not fit, …).
    #[error("FRAMER taps: {0}")]
    Taps(#[from] framer::TapsError),
    /// The schedule does not fit the model (a student pattern that matches no tap, …).
    #[error("{0}")]
    Schedule(#[from] crate::schedule::ScheduleError),
    /// Too many consecutive steps had a non-finite loss or gradient.
    #[error(
        "stopping at step {step}: {consecutive} consecutive steps had a non-finite loss or gradient \
         (last: loss {loss}, gradient norm {grad_norm}); no update was applied for them and the \
         last checkpoint was left untouched"
    )]
    NonFinite {
        /// The step that hit the limit.
        step: u64,
        /// How many steps in a row were rejected.
        consecutive: u64,
        /// The loss of the last rejected step.
        loss: f64,
        /// The gradient norm of the last rejected step.
        grad_norm: f64,
    },
}

/// What a finished (or stopped) run did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// Experiment name.
    pub experiment: String,
    /// First step run in this session (> 0 after a resume).
    pub start_step: u64,
    /// Steps completed in total.
    pub end_step: u64,
    /// Loss of the last step that was not skipped.
    pub final_loss: Option<f64>,
    /// Steps rejected by the NaN/Inf guard in this session.
    pub skipped_steps: u64,
    /// Wall-clock seconds of this session.
    pub seconds: f64,
    /// The metrics file.
    pub metrics: PathBuf,
    /// The loss-curve plot.
    pub plot: PathBuf,
    /// The newest checkpoint.
    pub checkpoint: Option<PathBuf>,
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "experiment {}: steps {}..{} in {:.1} s",
            self.experiment, self.start_step, self.end_step, self.seconds
        )?;
        match self.final_loss {
            Some(l) => writeln!(f, "  final loss {l:.6}")?,
            None => writeln!(f, "  no step completed")?,
        }
        if self.skipped_steps > 0 {
            writeln!(
                f,
                "  {} steps skipped by the NaN/Inf guard",
                self.skipped_steps
            )?;
        }
        writeln!(f, "  metrics    {}", self.metrics.display())?;
        writeln!(f, "  plot       {}", self.plot.display())?;
        if let Some(c) = &self.checkpoint {
            write!(f, "  checkpoint {}", c.display())?;
        }
        Ok(())
    }
}

/// The loss of one step and its logged parts.
struct Losses<B: AutodiffBackend> {
    total: Tensor<B, 1>,
    base: f64,
    framer: Option<framer::FramerDiagnostics>,
    lambda: f64,
    lr: f64,
}

/// The EMA copy of a trained model: `Framed<B::InnerBackend, M::InnerModule>`.
pub type EmaModule<B, M> = <Framed<B, M> as AutodiffModule<B>>::InnerModule;

/// A training run in progress, on the user's model `M` inside its [`Framed`] wrapper.
pub struct Trainer<'a, B, M>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SrModel<B>,
    M::InnerModule: SrModel<B::InnerBackend>,
{
    experiment: &'a Experiment,
    objective: Objective,
    model: Framed<B, M>,
    ema: Option<EmaModule<B, M>>,
    optim: OptimizerAdaptor<AdamW, Framed<B, M>, B>,
    source: Box<dyn PairSource + 'a>,
    device: B::Device,
    out_dir: PathBuf,
    state: TrainingState,
    students: StudentSelection,
    /// The schedule's `student_weights`, by selected student.
    student_weights: Vec<(String, f64)>,
    negatives: framer::NegativeSampler,
    framer_loss: std::sync::Mutex<Option<framer::FramerLoss>>,
    consecutive_bad: u64,
}

/// The model `config` describes, ready to train on `experiment`: initial weights drawn after
/// seeding the backend with `[train] seed` (the same schedule gives the same weights), inside
/// [`Framed`] with its generated heads (built from one run on a sample batch of the schedule's crop
/// size).
///
/// # Errors
/// [`EngineError::Model`] when the configuration does not build or does not fit the schedule's
/// crops; [`EngineError::Taps`] when the sample run records no usable taps.
pub fn build_framed<B: AutodiffBackend, C: ModelConfig>(
    config: &C,
    experiment: &Experiment,
    device: &B::Device,
) -> Result<Framed<B, C::TrainModel<B>>, EngineError> {
    config
        .check_data(3, experiment.data.crop_size)
        .map_err(EngineError::Model)?;
    B::seed(device, experiment.train.seed);
    let model = config.init_train::<B>(device).map_err(EngineError::Model)?;
    let framed = Framed::new(model, sample_args(experiment, device), device)?;
    // Parameters are lazy: draw every initial value now, while the seed is fresh.
    ema::materialize(&framed);
    Ok(framed)
}

/// A batch of one zero image of the schedule's crop size: `(x_t, t = ½, lr_upsampled)`.
pub fn sample_args<B: burn::tensor::backend::Backend>(
    experiment: &Experiment,
    device: &B::Device,
) -> SrArgs<B> {
    let size = experiment.data.crop_size;
    let image = Tensor::<B, 4>::zeros([1, 3, size, size], device);
    (
        image.clone(),
        Tensor::<B, 1>::from_floats([0.5], device),
        image,
    )
}

impl<'a, B, M> Trainer<'a, B, M>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SrModel<B>,
    M::InnerModule: SrModel<B::InnerBackend>,
{
    /// Prepares a run of `experiment` on `model` (see [`build_framed`]) in `out_dir`.
    ///
    /// With `[checkpoint] resume = true` and a checkpoint in `out_dir/<checkpoint.dir>`, the model,
    /// optimiser, EMA and step are restored from it, and the run continues exactly where it stopped.
    ///
    /// # Errors
    /// A [`EngineError::Schedule`] at `[framer] students` when it selects taps the model does not
    /// record; I/O and checkpoint errors naming the path.
    pub fn new(
        experiment: &'a Experiment,
        model: Framed<B, M>,
        source: Box<dyn PairSource + 'a>,
        out_dir: impl AsRef<Path>,
        device: &B::Device,
    ) -> Result<Self, EngineError> {
        let out_dir = out_dir.as_ref().to_path_buf();
        let (students, student_weights) = if experiment.framer.enabled {
            let available = model.student_names();
            let picked = crate::schedule::resolve_students(experiment, &available)?;
            let declared = framer::FramerModel::student_weights(&model.model);
            let weights = crate::schedule::resolve_student_weights(experiment, &available, &declared, &picked)?
                .into_iter()
                .filter(|w| w.source == crate::schedule::ValueSource::Schedule)
                .map(|w| (w.name, w.weight))
                .collect();
            let selection =
                if picked == available { StudentSelection::All } else { StudentSelection::Names(picked) };
            (selection, weights)
        } else {
            (StudentSelection::All, Vec::new())
        };
        std::fs::create_dir_all(&out_dir)
            .map_err(|e| EngineError::Io(format!("{}: {e}", out_dir.display())))?;
        let o = &experiment.optimizer;
        let optim = AdamWConfig::new()
            .with_beta_1(o.beta1 as f32)
            .with_beta_2(o.beta2 as f32)
            .with_epsilon(o.eps as f32)
            .with_weight_decay(o.weight_decay as f32)
            .init::<B, Framed<B, M>>();
        ema::materialize(&model);
        let ema = experiment.train.ema_decay.map(|_| model.valid());
        let mut trainer = Self {
            experiment,
            objective: Objective::new(&experiment.objective),
            model,
            ema,
            optim,
            source,
            device: device.clone(),
            out_dir,
            state: TrainingState {
                step: 0,
                seed: experiment.train.seed,
                experiment: experiment.name.clone(),
                ema_updates: 0,
                skipped_steps: 0,
            },
            students,
            student_weights,
            negatives: framer::NegativeSampler::seeded(experiment.train.seed),
            framer_loss: std::sync::Mutex::new(None),
            consecutive_bad: 0,
        };
        if experiment.checkpoint.resume
            && let Some(path) = checkpoint::latest(&trainer.checkpoint_dir())?
        {
            trainer.restore(&path)?;
        }
        Ok(trainer)
    }

    /// The folder of the checkpoints.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.out_dir.join(&self.experiment.checkpoint.dir)
    }

    /// Steps completed so far.
    pub fn step(&self) -> u64 {
        self.state.step
    }

    /// The trained module (the model and its generated heads).
    pub fn model(&self) -> &Framed<B, M> {
        &self.model
    }

    /// The EMA module, when `[train] ema_decay` is set.
    pub fn ema(&self) -> Option<&EmaModule<B, M>> {
        self.ema.as_ref()
    }

    /// The students that take part in the FRAMER loss.
    pub fn students(&self) -> &StudentSelection {
        &self.students
    }

    /// The objective.
    pub fn objective(&self) -> &Objective {
        &self.objective
    }

    fn restore(&mut self, path: &Path) -> Result<(), EngineError> {
        let saved = checkpoint::read_state_file(path)?;
        let state = saved.state;
        if state.seed != self.experiment.train.seed {
            return Err(EngineError::Checkpoint(format!(
                "{} was written with seed {}, the schedule says {}; an exact resume needs the same \
                 seed (or set `[checkpoint] resume = false`)",
                path.display(),
                state.seed,
                self.experiment.train.seed
            )));
        }
        let file = path.join("model.mpk");
        let record = checkpoint::read_record::<B, <Framed<B, M> as Module<B>>::Record>(&file, &self.device)?;
        self.model = checkpoint::load_into(self.model.clone(), record, &file)?;
        let file = path.join("optim.mpk");
        let optim = checkpoint::read_record::<B, _>(&file, &self.device)?;
        self.optim = self.optim.clone().load_record(optim);
        if let Some(ema) = self.ema.take() {
            let file = path.join("ema.mpk");
            self.ema = Some(if file.is_file() {
                let record = checkpoint::read_record::<B::InnerBackend, _>(&file, &self.device)?;
                checkpoint::load_into(ema, record, &file)?
            } else {
                self.model.valid()
            });
        }
        self.state = state;
        self.consecutive_bad = saved.consecutive_bad;
        Ok(())
    }

    /// Writes a checkpoint of the current state (atomically; see [`checkpoint::save`]).
    pub fn save_checkpoint(&self) -> Result<PathBuf, EngineError> {
        let mut files = checkpoint::CheckpointFiles::default();
        files.module::<B, Framed<B, M>>("model", &self.model)?;
        files.record::<B, _>("optim", self.optim.to_record())?;
        if let Some(ema) = &self.ema {
            files.module::<B::InnerBackend, EmaModule<B, M>>("ema", ema)?;
        }
        checkpoint::save(
            &self.checkpoint_dir(),
            &self.state,
            self.consecutive_bad,
            files,
            self.experiment.checkpoint.keep,
        )
    }

    fn host_normal(&self, step: u64, len: usize) -> Vec<f32> {
        let mut rng = step_rng(self.experiment.train.seed, step, Stream::Noise);
        (0..len)
            .map(|_| <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng))
            .collect()
    }

    /// The loss of the current model on the batch and draws of step `step`, with its parts.
    fn losses(&self, step: u64) -> Result<Losses<B>, EngineError> {
        let exp = self.experiment;
        let values = exp.values_at(step);
        let batch = self.source.batch(step, exp.train.batch_size)?;
        let shape = batch.shape;
        let numel = shape.iter().product::<usize>();
        if batch.hr.len() != numel || batch.lr_upsampled.len() != numel {
            return Err(EngineError::Data(format!(
                "the batch of step {step} holds {} HR / {} LR values for the shape {shape:?}",
                batch.hr.len(),
                batch.lr_upsampled.len()
            )));
        }
        let x0 = Tensor::<B, 4>::from_data(TensorData::new(batch.hr, shape), &self.device);
        let condition =
            Tensor::<B, 4>::from_data(TensorData::new(batch.lr_upsampled, shape), &self.device);
        let noise = Tensor::<B, 4>::from_data(
            TensorData::new(self.host_normal(step, numel), shape),
            &self.device,
        );
        let levels = self
            .objective
            .draw_levels(shape[0], &mut step_rng(exp.train.seed, step, Stream::Time));
        let (x_t, target) = self.objective.noisy_and_target(x0, noise, condition.clone(), &levels);
        let timesteps = Tensor::<B, 1>::from_data(
            TensorData::new(levels.timesteps.clone(), [shape[0]]),
            &self.device,
        );

        let lambda = if exp.framer.enabled { values.lambda } else { 0.0 };
        // One loss across steps (it keeps its spectrum buffers), rebuilt when the scheduled
        // settings change.
        let config = exp.framer_loss_at(step);
        let mut cached = self.framer_loss.lock().unwrap_or_else(|e| e.into_inner());
        let loss = match cached.take() {
            Some(loss) if *loss.config() == config => loss,
            _ => config.init()?,
        };
        let loss = &*cached.insert(loss);
        let framer_step = FramerStep {
            loss,
            students: &self.students,
            student_weights: &self.student_weights,
            negatives: &self.negatives,
            step,
            lambda,
        };
        let param = self.objective.parameterization(&levels, &self.device);
        let out = self.model.forward_framer(
            (x_t.clone(), timesteps, condition),
            x_t.clone(),
            param,
            &framer_step,
        )?;
        let base = self.objective.loss(out.output, x_t, target, &levels);
        let base_value: f64 = base.clone().into_scalar().elem();
        let framer = out.framer.map(|o| o.diagnostics());
        let total = match out.weighted_loss {
            Some(weighted) => base + weighted,
            None => base,
        };
        Ok(Losses {
            total,
            base: base_value,
            framer,
            lambda: values.lambda,
            lr: values.lr,
        })
    }

    /// Evaluates the current model, without updating it, on the batch and random draws of step
    /// `draw_step` (so two evaluations at the same `draw_step` see identical inputs). Returns
    /// `(loss, base loss, FRAMER loss before λ)`.
    pub fn evaluate(&self, draw_step: u64) -> Result<(f64, f64, Option<f64>), EngineError> {
        let l = self.losses(draw_step)?;
        Ok((
            l.total.into_scalar().elem(),
            l.base,
            l.framer.map(|d| d.loss as f64),
        ))
    }

    /// Runs one training step (step [`Self::step`]) and returns its record. A step rejected by the
    /// NaN/Inf guard returns a record with `skipped = true`; the error comes only once
    /// `max_bad_steps` consecutive steps were rejected.
    pub fn train_step(&mut self) -> Result<StepRecord, EngineError> {
        let started = Instant::now();
        let step = self.state.step;
        let exp = self.experiment;
        let Losses {
            total,
            base: base_value,
            framer: framer_diag,
            lambda,
            lr,
        } = self.losses(step)?;
        let loss_value: f64 = total.clone().into_scalar().elem();
        let mut grads = GradientsParams::from_grads(total.backward(), &self.model);
        let grad_norm = grad::global_grad_norm::<B, Framed<B, M>>(&self.model, &grads);

        let skipped = !(loss_value.is_finite() && grad_norm.is_finite());
        if skipped {
            self.consecutive_bad += 1;
            self.state.skipped_steps += 1;
            if self.consecutive_bad >= exp.train.max_bad_steps {
                return Err(EngineError::NonFinite {
                    step,
                    consecutive: self.consecutive_bad,
                    loss: loss_value,
                    grad_norm,
                });
            }
        } else {
            self.consecutive_bad = 0;
            if let Some(max) = exp.optimizer.max_grad_norm {
                let factor = max / (grad_norm + 1e-6);
                if factor < 1.0 {
                    grad::scale_grads::<B, Framed<B, M>>(&self.model, &mut grads, factor);
                }
            }
            self.model = self.optim.step(lr, self.model.clone(), grads);
            if let (Some(ema), Some(decay)) = (self.ema.take(), exp.train.ema_decay) {
                let d = ema::effective_decay(decay, self.state.ema_updates);
                self.ema = Some(ema::ema_update(ema, &self.model.valid(), d));
                self.state.ema_updates += 1;
            }
        }
        self.state.step += 1;
        Ok(StepRecord {
            step,
            loss: loss_value,
            base_loss: base_value,
            framer_loss: framer_diag.as_ref().map(|d| d.loss as f64),
            lambda,
            lr,
            grad_norm,
            avg_weight_low: framer_diag.as_ref().map(|d| d.avg_weight_low as f64),
            avg_weight_high: framer_diag.as_ref().map(|d| d.avg_weight_high as f64),
            skipped,
            seconds: started.elapsed().as_secs_f64(),
            layer_weights: framer_diag
                .as_ref()
                .map(framer_eval::analyze::LayerWeights::from_diagnostics),
        })
    }

    /// Trains until `[train] steps` (or until `stop_at` steps are done, if given: a deliberate
    /// interruption), logging, plotting and checkpointing as the schedule says.
    pub fn run(&mut self, stop_at: Option<u64>) -> Result<RunSummary, EngineError> {
        let exp = self.experiment;
        let started = Instant::now();
        let start_step = self.state.step;
        let end = stop_at.map_or(exp.train.steps, |s| s.min(exp.train.steps));
        let mut log = MetricsLog::open(&self.out_dir, exp.logging.format, start_step)?;
        let plot = self.out_dir.join("loss.png");
        let bar = if exp.logging.progress {
            indicatif::ProgressBar::new(exp.train.steps)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}] {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_position(start_step);
        let mut final_loss = None;
        let mut skipped = 0;
        let mut last_checkpoint = checkpoint::newest(&self.checkpoint_dir())?;
        // a checkpoint that falls due during a run of rejected steps waits for the next good step
        // (or the end of the run): if the guard then stops the run, nothing of it is saved
        let mut checkpoint_due = false;
        while self.state.step < end {
            let record = match self.train_step() {
                Ok(r) => r,
                Err(e) => {
                    let _ = log.flush();
                    bar.abandon_with_message(format!("stopped: {e}"));
                    return Err(e);
                }
            };
            fault::point("step");
            if record.skipped {
                skipped += 1;
                // through stderr itself: the bar's own println is dropped when stderr is not a
                // terminal
                bar.suspend(|| {
                    eprintln!(
                        "warning: step {}: non-finite loss ({}) or gradient norm ({}); the update \
                         was skipped",
                        record.step, record.loss, record.grad_norm
                    )
                });
            } else {
                final_loss = Some(record.loss);
            }
            bar.set_message(match record.framer_loss {
                Some(f) => format!(
                    "loss {:.4} base {:.4} framer {:.4} λ {:.3}",
                    record.loss, record.base_loss, f, record.lambda
                ),
                None => format!("loss {:.4} base {:.4}", record.loss, record.base_loss),
            });
            bar.inc(1);
            if record.step % exp.logging.every == 0 || self.state.step == exp.train.steps {
                log.append(&record)?;
            }
            let done = self.state.step;
            checkpoint_due |= done.is_multiple_of(exp.checkpoint.every);
            if (checkpoint_due && self.consecutive_bad == 0) || done == exp.train.steps {
                log.sync()?;
                last_checkpoint = Some(self.save_checkpoint()?);
                checkpoint_due = false;
            }
            if exp.logging.plot_every > 0 && done.is_multiple_of(exp.logging.plot_every) {
                log.flush()?;
                metrics::plot_losses(
                    &metrics::read(log.path(), exp.logging.format)?,
                    &plot,
                    800,
                    480,
                )?;
            }
        }
        log.flush()?;
        metrics::plot_losses(
            &metrics::read(log.path(), exp.logging.format)?,
            &plot,
            800,
            480,
        )?;
        bar.finish();
        Ok(RunSummary {
            experiment: exp.name.clone(),
            start_step,
            end_step: self.state.step,
            final_loss,
            skipped_steps: skipped,
            seconds: started.elapsed().as_secs_f64(),
            metrics: log.path().to_path_buf(),
            plot,
            checkpoint: last_checkpoint,
        })
    }
}

/// Runs `experiment` on `model` with the pairs of `source`, in `out_dir`, to the end (resuming from
/// a checkpoint there if the schedule allows). Prepare the folder first with [`prepare_run_dir`]
/// ([`run_experiment`] does both).
pub fn run_experiment_with<B, M>(
    experiment: &Experiment,
    model: Framed<B, M>,
    source: Box<dyn PairSource + '_>,
    out_dir: impl AsRef<Path>,
    device: &B::Device,
) -> Result<RunSummary, EngineError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SrModel<B>,
    M::InnerModule: SrModel<B::InnerBackend>,
{
    Trainer::new(experiment, model, source, out_dir, device)?.run(None)
}

/// Prepares the run folder `out_dir` for `experiment` with the model of `config`:
/// `schedule.resolved.toml` and `model.toml` (the model's kind and configuration), from which
/// `sr` and `analyze` rebuild the run's model. A folder that holds a run of another schedule or
/// model is refused before anything is written.
///
/// # Errors
/// [`EngineError::Checkpoint`] naming the differing keys or the other model; I/O errors naming
/// the path.
pub fn prepare_run_dir<C: ModelConfig>(
    out_dir: &Path,
    experiment: &Experiment,
    config: &C,
) -> Result<(), EngineError> {
    // The schedule first: a folder holding another run is refused before anything is written.
    run_dir::prepare_run_dir(out_dir, experiment)?;
    run_record::write(out_dir, config)
}

/// Runs the experiment a schedule describes end to end with the model of `config` (built by
/// [`build_framed`]; its `#[framer(loss(..))]` defaults apply where `[framer]` is silent), the
/// degraded photo crops of `[data]` / `[degradation]`, in `out_dir`
/// (resuming from a checkpoint there if `[checkpoint] resume` allows).
///
/// The run folder receives `schedule.resolved.toml`, `model.toml` (the model's kind and resolved
/// configuration, from which `sr` and `analyze` rebuild it), the metrics file, `loss.png` and the
/// checkpoints.
pub fn run_experiment<B: AutodiffBackend, C: ModelConfig>(
    config: &C,
    experiment: &Experiment,
    out_dir: impl AsRef<Path>,
    device: &B::Device,
) -> Result<RunSummary, EngineError> {
    let (experiment, _) = experiment.with_model_defaults(C::loss_defaults());
    let experiment = &experiment;
    let source = Box::new(DegradedPhotos::from_experiment(experiment)?);
    let model = build_framed::<B, C>(config, experiment, device)?;
    let out_dir = out_dir.as_ref();
    prepare_run_dir(out_dir, experiment, config)?;
    run_experiment_with(experiment, model, source, out_dir, device)
}
