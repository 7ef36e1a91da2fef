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

mod adapters;
pub mod checkpoint;
pub mod data;
pub mod distributed;
pub mod ema;
mod error;
pub mod fault;
pub mod grad;
pub mod latents;
pub mod metrics;
pub mod model;
pub mod objective;
pub mod photos;
pub mod precision;
pub mod pretrained;
pub mod prompts;
pub mod rng;
pub mod run_record;
mod resume;
mod run;
mod run_dir;
pub mod sampler;
pub mod trainable;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use framer::{Framed, FramerStep, StudentSelection};
use rand_distr::{Distribution, StandardNormal};

pub use adapters::LORA_FILE;
pub use checkpoint::TrainingState;
pub use error::EngineError;
pub use run::{
    RunSummary, build_framed, check_model_input, open_prompts, pair_source, prepare_run_dir, run_experiment,
    run_experiment_with,
    sample_args,
};
pub use data::{FixedBatch, PairBatch, PairSource, SyntheticPairs};
pub use latents::LatentPairs;
pub use metrics::{MetricsLog, StepRecord};
pub use model::{ModelConfig, SrArgs, SrModel, TextCondition};
pub use photos::DegradedPhotos;
pub use objective::{NoiseLevels, Objective};
pub use sampler::{sample, sample_from};

use crate::schedule::{Experiment, MixedPrecision};
use rng::{Stream, step_rng};

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
    /// The other peers of a data-parallel run (`None`: this process trains alone).
    peers: Option<Box<dyn distributed::StepSync<B> + 'a>>,
    /// The adapters of a `[lora]` run.
    lora: Option<adapters::LoraState<B>>,
    /// The prompts of a `[prompts]` run, and how the model takes one.
    prompts: Option<(prompts::Prompts, prompts::ApplyPrompt<B, M>)>,
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
        let (model, _) = trainable::apply_trainable(model, experiment)?;
        let o = &experiment.optimizer;
        let adamw = AdamWConfig::new()
            .with_beta_1(o.beta1 as f32)
            .with_beta_2(o.beta2 as f32)
            .with_epsilon(o.eps as f32)
            .with_weight_decay(o.weight_decay as f32);
        let (model, lora) = adapters::setup(model, experiment, &adamw, device)?;
        let optim = adamw.init::<B, Framed<B, M>>();
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
                loss_scale: None,
            },
            students,
            student_weights,
            negatives: framer::NegativeSampler::seeded(experiment.train.seed),
            framer_loss: std::sync::Mutex::new(None),
            consecutive_bad: 0,
            peers: None,
            lora,
            prompts: None,
        };
        if experiment.checkpoint.resume
            && let Some(path) = checkpoint::latest(&trainer.checkpoint_dir())?
        {
            trainer.restore(&path)?;
        }
        Ok(trainer)
    }

    /// Makes this trainer one peer of a data-parallel run (see [`distributed`]): it keeps its
    /// rows of each global batch, gathers the InterCL keys when the peers share them, averages
    /// gradients and logged losses over the peers, and writes the run folder only as peer 0.
    pub fn with_peers(mut self, peers: Box<dyn distributed::StepSync<B> + 'a>) -> Self {
        self.peers = Some(peers);
        self
    }

    /// Conditions every step's model on the rows' prompts (`[prompts]`), set on the model by
    /// `apply` ([`ModelConfig::with_prompt_train`]).
    pub fn with_prompts(mut self, prompts: prompts::Prompts, apply: prompts::ApplyPrompt<B, M>) -> Self {
        self.prompts = Some((prompts, apply));
        self
    }

    /// Leaves the peer group at the end of a data-parallel run (nothing without peers).
    pub fn finish_peers(&self) {
        if let Some(peers) = &self.peers {
            peers.finish();
        }
    }

    /// Whether this trainer writes the run folder (log, plots, checkpoints): alone, or as peer 0.
    fn writes(&self) -> bool {
        self.peers.as_ref().is_none_or(|p| p.rank() == 0)
    }

    /// The folder of the checkpoints.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.out_dir.join(&self.experiment.checkpoint.dir)
    }

    /// The parameters the optimiser holds state for (those it has updated so far).
    pub fn optimizer_state_params(&self) -> Vec<burn::module::ParamId> {
        self.optim.to_record().into_keys().collect()
    }

    /// Steps completed so far.
    pub fn step(&self) -> u64 {
        self.state.step
    }

    /// The trained module (the model and its generated heads).
    pub fn model(&self) -> &Framed<B, M> {
        &self.model
    }

    /// The adapters, when the schedule has `[lora]`.
    pub fn lora_adapters(&self) -> Option<&crate::lora::LoraAdapters<B>> {
        self.lora.as_ref().map(|l| &l.adapters)
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
        let first_draw = step * exp.train.batch_size as u64;
        let prompt = match &self.prompts {
            Some((prompts, _)) => Some(prompts.batch::<B>(&batch.photos, first_draw, &self.device)?),
            None => None,
        };
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
        // a data-parallel peer keeps its rows of the global batch (the same draws as one process)
        let (x0, noise, condition, levels, prompt) = match &self.peers {
            Some(peers) if peers.world_size() > 1 => {
                let local = shape[0] / peers.world_size();
                let start = peers.rank() * local;
                let rows = |t: Tensor<B, 4>| t.narrow(0, start, local);
                let keep = |v: &[f32]| v[start..start + local].to_vec();
                let levels = NoiseLevels {
                    timesteps: keep(&levels.timesteps),
                    levels: keep(&levels.levels),
                };
                let prompt = prompt.map(|p| TextCondition {
                    tokens: p.tokens.narrow(0, start, local),
                    pooled: p.pooled.narrow(0, start, local),
                });
                (rows(x0), rows(noise), rows(condition), levels, prompt)
            }
            _ => (x0, noise, condition, levels, prompt),
        };
        let batch_rows = x0.dims()[0];
        let (x_t, target) = self.objective.noisy_and_target(x0, noise, condition.clone(), &levels);
        let timesteps = Tensor::<B, 1>::from_data(
            TensorData::new(levels.timesteps.clone(), [batch_rows]),
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
        let gather = self.peers.as_ref().and_then(|p| p.key_gather());
        let low = exp.train.mixed_precision.compute_dtype();
        let apply = self.prompts.as_ref().map(|(_, apply)| *apply);
        let model = adapters::step_model(self.model.clone(), self.lora.as_ref(), low, prompt.zip(apply));
        let out = model.forward_framer_gathered(
            (precision::to_dtype(x_t.clone(), low), timesteps, precision::to_dtype(condition, low)),
            x_t.clone(),
            param,
            &framer_step,
            gather,
        )?;
        let output = out.output.cast(burn::tensor::FloatDType::F32);
        let base = self.objective.loss(output, x_t, target, &levels);
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
            base: mut base_value,
            framer: mut framer_diag,
            lambda,
            lr,
        } = self.losses(step)?;
        let mut loss_value: f64 = total.clone().into_scalar().elem();
        // f16: the backward pass of the scaled loss; the gradients are unscaled together with the
        // clipping below, in one pass
        let loss_scale = match exp.train.mixed_precision {
            MixedPrecision::Fp16 => Some(*self.state.loss_scale.get_or_insert_default()),
            _ => None,
        };
        let mut raw = precision::scaled(total, loss_scale).backward();
        let mut lora_grads =
            self.lora.as_ref().map(|l| GradientsParams::from_module(&mut raw, &l.adapters));
        let mut grads = GradientsParams::from_grads(raw, &self.model);
        if let Some(peers) = &self.peers {
            // every peer takes the step of the global batch: mean gradients, mean losses
            grads = peers.average_gradients(grads)?;
            let framer_loss = framer_diag.as_ref().map(|d| f64::from(d.loss));
            let means = peers.average_values(&[loss_value, base_value, framer_loss.unwrap_or(0.0)])?;
            (loss_value, base_value) = (means[0], means[1]);
            if let Some(d) = framer_diag.as_mut() {
                d.loss = means[2] as f32;
            }
        }
        let mut grad_norm = grad::global_grad_norm::<B, Framed<B, M>>(&self.model, &grads);
        if let (Some(lora), Some(g)) = (&self.lora, &lora_grads) {
            grad_norm = grad_norm.hypot(grad::global_grad_norm(&lora.adapters, g));
        }
        let unscale = loss_scale.map_or(1.0, |s| 1.0 / s.scale);
        grad_norm *= unscale;

        let skipped = !(loss_value.is_finite() && grad_norm.is_finite());
        // an f16 gradient that overflows from a finite loss halves the scale instead of counting
        // against the guard (until the scale reaches its minimum)
        let scale_absorbs = loss_scale.is_some()
            && (self.state.loss_scale.as_mut())
                .is_some_and(|s| s.absorbs(loss_value.is_finite(), grad_norm.is_finite()));
        if scale_absorbs {
            self.state.skipped_steps += 1;
        } else if skipped {
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
            // clipping (a factor below 1 when the norm exceeds the bound) times the unscaling
            let clip = exp.optimizer.max_grad_norm.map_or(1.0, |max| (max / (grad_norm + 1e-6)).min(1.0));
            let factor = unscale * clip;
            if factor != 1.0 {
                grad::scale_grads::<B, Framed<B, M>>(&self.model, &mut grads, factor);
                if let (Some(lora), Some(g)) = (&self.lora, lora_grads.as_mut()) {
                    grad::scale_grads(&lora.adapters, g, factor);
                }
            }
            self.model = self.optim.step(lr, self.model.clone(), grads);
            if let (Some(lora), Some(g)) = (self.lora.as_mut(), lora_grads) {
                lora.adapters = lora.optim.step(lr, lora.adapters.clone(), g);
            }
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
                .map(metrics::LayerWeights::from_diagnostics),
        })
    }

    /// Trains until `[train] steps` (or until `stop_at` steps are done, if given: a deliberate
    /// interruption), logging, plotting and checkpointing as the schedule says.
    pub fn run(&mut self, stop_at: Option<u64>) -> Result<RunSummary, EngineError> {
        let exp = self.experiment;
        let started = Instant::now();
        let start_step = self.state.step;
        let end = stop_at.map_or(exp.train.steps, |s| s.min(exp.train.steps));
        if let Some(peers) = &self.peers {
            peers.agree(&format!(
                "{exp}\ndevices per node: {}\nstart step: {start_step}",
                exp.distributed.devices
            ))?;
        }
        // peers other than 0 train without writing anything
        let writes = self.writes();
        let mut log = match writes {
            true => Some(MetricsLog::open(&self.out_dir, exp.logging.format, start_step)?),
            false => None,
        };
        let plot = self.out_dir.join("loss.png");
        let bar = if exp.logging.progress && writes {
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
        let mut last_checkpoint = if writes { checkpoint::newest(&self.checkpoint_dir())? } else { None };
        // a checkpoint that falls due during a run of rejected steps waits for the next good step
        // (or the end of the run): if the guard then stops the run, nothing of it is saved
        let mut checkpoint_due = false;
        while self.state.step < end {
            let record = match self.train_step() {
                Ok(r) => r,
                Err(e) => {
                    if let Some(log) = log.as_mut() {
                        let _ = log.flush();
                    }
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
            let Some(log) = log.as_mut() else { continue };
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
                log.plot(&plot)?;
            }
        }
        if let Some(log) = log.as_mut() {
            log.plot(&plot)?;
        }
        bar.finish();
        let metrics = match &log {
            Some(log) => log.path().to_path_buf(),
            None => PathBuf::new(),
        };
        Ok(RunSummary {
            experiment: exp.name.clone(),
            start_step,
            end_step: self.state.step,
            final_loss,
            skipped_steps: skipped,
            seconds: started.elapsed().as_secs_f64(),
            metrics,
            plot,
            checkpoint: last_checkpoint,
        })
    }
}
