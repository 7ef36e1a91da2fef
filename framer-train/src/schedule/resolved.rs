//! The validated experiment: plain values, ready for the engine.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::phase::{Ramp, Segment, StepSchedule};
use super::sections::{BetaSchedule, LogFormat, LrScheduleKind, MixedPrecision, ObjectiveKind, SigmaSampling};
use super::students::{StudentWeightPattern, Students};

/// The schedule file an [`Experiment`] was read from, kept so that the model registry and the
/// student patterns can report errors at `file:line:col`. Not part of the experiment's value:
/// two experiments compare equal whatever their origin.
#[derive(Debug, Clone)]
pub struct ScheduleOrigin {
    /// The file as the user named it.
    pub path: String,
    /// Its text.
    pub text: std::sync::Arc<str>,
}

impl PartialEq for ScheduleOrigin {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// `[data]`, resolved (paths are absolute or relative to the current directory).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataConfig {
    /// HR photo folder; `None`: the embedded photos.
    pub hr_dir: Option<PathBuf>,
    /// Side of the HR crop, in pixels.
    pub crop_size: usize,
    /// Super-resolution factor; the LR crop is `crop_size / scale`.
    pub scale: usize,
}

/// `[objective]`, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectiveConfig {
    /// Which objective.
    pub kind: ObjectiveKind,
    /// σ sampling (rectified flow).
    pub sigma_sampling: SigmaSampling,
    /// Logit-normal mean.
    pub logit_mean: f64,
    /// Logit-normal standard deviation.
    pub logit_std: f64,
    /// DDPM timesteps.
    pub num_train_timesteps: usize,
    /// DDPM β schedule.
    pub beta_schedule: BetaSchedule,
    /// First β.
    pub beta_start: f64,
    /// Last β.
    pub beta_end: f64,
    /// Sampler steps at inference.
    pub sample_steps: usize,
    /// The fixed level σ of the one-step host (`kind = "one_step"`).
    pub one_step_sigma: f64,
}

/// `[framer]`, resolved (the values outside every phase): the core loss settings plus what only
/// a schedule knows. Serialises in the schedule's own form (`mask = "quantile"` with `cutoff`,
/// or `mask = "radial"` with `radius`).
#[derive(Debug, Clone, PartialEq)]
pub struct FramerConfig {
    /// FRAMER on.
    pub enabled: bool,
    /// λ, the outer weight of the FRAMER term.
    pub lambda: f64,
    /// The loss settings outside phases: mask, τ, FAW, FAM (phases change τ, FAW and FAM per
    /// step: [`Experiment::framer_loss_at`]).
    pub loss: framer::FramerLossConfig,
    /// Student taps.
    pub students: Students,
    /// Weights of students by tap name or glob (`student_weights`), in the order written.
    pub student_weights: Vec<StudentWeightPattern>,
}

impl Serialize for FramerConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Weights<'a>(&'a [StudentWeightPattern]);
        impl Serialize for Weights<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.iter().map(|p| (&p.pattern, p.weight)))
            }
        }
        let mut s = serializer.serialize_struct("FramerConfig", 9)?;
        s.serialize_field("enabled", &self.enabled)?;
        s.serialize_field("lambda", &self.lambda)?;
        match self.loss.mask {
            framer::BandMaskKind::Quantile { cutoff } => {
                s.serialize_field("mask", "quantile")?;
                s.serialize_field("cutoff", &cutoff)?;
            }
            framer::BandMaskKind::Radial { radius } => {
                s.serialize_field("mask", "radial")?;
                s.serialize_field("radius", &radius)?;
            }
        }
        s.serialize_field("temperature", &self.loss.temperature)?;
        s.serialize_field("students", &self.students)?;
        s.serialize_field("adaptive_weight", &self.loss.adaptive_weight)?;
        s.serialize_field("alignment_modulation", &self.loss.alignment_modulation)?;
        if !self.student_weights.is_empty() {
            s.serialize_field("student_weights", &Weights(&self.student_weights))?;
        }
        s.end()
    }
}

/// `[optimizer]`, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptimizerConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// ε.
    pub eps: f64,
    /// Global-norm clipping threshold; `None`: no clipping.
    pub max_grad_norm: Option<f64>,
}

/// `[lr_schedule]`, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LrScheduleConfig {
    /// Shape.
    pub kind: LrScheduleKind,
    /// Warm-up steps.
    pub warmup_steps: u64,
    /// Final learning rate of the decaying shapes.
    pub min_lr: f64,
}

/// `[train]`, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainConfig {
    /// Optimiser steps.
    pub steps: u64,
    /// Images per step.
    pub batch_size: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// EMA decay; `None`: no EMA.
    pub ema_decay: Option<f64>,
    /// Consecutive non-finite steps tolerated before aborting.
    pub max_bad_steps: u64,
    /// The parameters trained (`[train] trainable`, with `trainable_modules` as globs); empty:
    /// every parameter.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "super::trainable::serialize_patterns"
    )]
    pub trainable: Vec<super::ParamPattern>,
    /// The float type of the forward and backward pass (`[train] mixed_precision`).
    #[serde(skip_serializing_if = "MixedPrecision::is_no")]
    pub mixed_precision: MixedPrecision,
}

/// `[checkpoint]`, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckpointConfig {
    /// Save period in steps.
    pub every: u64,
    /// Folder, relative to the run folder.
    pub dir: PathBuf,
    /// Resume from the newest checkpoint.
    pub resume: bool,
    /// Checkpoints kept.
    pub keep: usize,
}

/// `[logging]`, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggingConfig {
    /// Metrics period in steps.
    pub every: u64,
    /// Metrics file format.
    pub format: LogFormat,
    /// Plot period in steps (0: at the end only).
    pub plot_every: u64,
    /// Progress bar on.
    pub progress: bool,
}

/// One `[[schedule.phase]]`, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    /// Label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// First step.
    pub start: u64,
    /// One past the last step.
    pub end: u64,
    /// λ override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lambda: Option<Ramp>,
    /// Learning-rate override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<Ramp>,
    /// τ override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Ramp>,
    /// FAW override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive_weight: Option<bool>,
    /// FAM override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alignment_modulation: Option<bool>,
}

/// The scheduled values at one step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StepValues {
    /// λ (0 when FRAMER is disabled).
    pub lambda: f64,
    /// Learning rate.
    pub lr: f64,
    /// τ.
    pub temperature: f64,
    /// FAW on.
    pub adaptive_weight: bool,
    /// FAM on.
    pub alignment_modulation: bool,
}

/// A validated experiment: every section resolved to plain values, plus the phases.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiment {
    /// Name (the file stem when not given).
    pub name: String,
    /// `[model]`, as written: the model registry deserialises it into the model's configuration.
    pub model: toml::Table,
    /// `[data]`.
    pub data: DataConfig,
    /// `[degradation]` (its `scale` is `data.scale`).
    pub degradation: framer_data::DegradationConfig,
    /// `[objective]`.
    pub objective: ObjectiveConfig,
    /// `[framer]`.
    pub framer: FramerConfig,
    /// `[optimizer]`.
    pub optimizer: OptimizerConfig,
    /// `[lr_schedule]`.
    pub lr_schedule: LrScheduleConfig,
    /// `[train]`.
    pub train: TrainConfig,
    /// `[checkpoint]`.
    pub checkpoint: CheckpointConfig,
    /// `[logging]`.
    pub logging: LoggingConfig,
    /// Phases, sorted and non-overlapping.
    pub phases: Vec<Phase>,
    /// `[distributed]`. Only `negatives = "per_peer"` is part of the experiment's identity (and of
    /// its TOML form); the number of peers and the timeout are launch settings.
    #[serde(skip)]
    pub distributed: super::distributed::DistributedConfig,
    /// `[latent]`: the VAE whose latent space the model works in (`None`: pixel space).
    pub latent: Option<super::latent::LatentConfig>,
    /// `[init]`: the pretrained weights training starts from (`None`: the model's initialisation).
    pub init: Option<super::init::InitConfig>,
    /// `[lora]`: the adapters trained instead of the model's weights (`None`: the weights train).
    pub lora: Option<super::lora::LoraSettings>,
    /// `[prompts]`: the prompt embeddings of a text-conditioned model (`None`: no prompt).
    pub prompts: Option<super::prompts::PromptsConfig>,
    /// The file the experiment was read from (for located errors); not part of its value.
    #[serde(skip)]
    pub origin: Option<ScheduleOrigin>,
}

impl Experiment {
    /// What the model sees: `(channels, side)` of its square training inputs: `(3, crop_size)` in
    /// pixel space, `(latent_channels, crop_size / f)` in the latent space of a VAE that
    /// downsamples by `f`.
    pub fn model_input(&self) -> (usize, usize) {
        match &self.latent {
            Some(latent) => {
                let vae = latent.vae_config();
                (vae.latent_channels, self.data.crop_size / vae.downscale_factor())
            }
            None => (3, self.data.crop_size),
        }
    }

    fn ramp_schedule(
        &self,
        base: f64,
        pick: impl Fn(&Phase) -> Option<Ramp>,
    ) -> StepSchedule<Ramp> {
        StepSchedule {
            base: Ramp::Constant(base),
            segments: self
                .phases
                .iter()
                .filter_map(|p| {
                    pick(p).map(|value| Segment {
                        start: p.start,
                        end: p.end,
                        value,
                    })
                })
                .collect(),
        }
    }

    fn flag_schedule(
        &self,
        base: bool,
        pick: impl Fn(&Phase) -> Option<bool>,
    ) -> StepSchedule<bool> {
        StepSchedule {
            base,
            segments: self
                .phases
                .iter()
                .filter_map(|p| {
                    pick(p).map(|value| Segment {
                        start: p.start,
                        end: p.end,
                        value,
                    })
                })
                .collect(),
        }
    }

    /// λ over steps (not counting `[framer] enabled = false`).
    pub fn lambda_schedule(&self) -> StepSchedule<Ramp> {
        self.ramp_schedule(self.framer.lambda, |p| p.lambda)
    }

    /// τ over steps.
    pub fn temperature_schedule(&self) -> StepSchedule<Ramp> {
        self.ramp_schedule(self.framer.loss.temperature, |p| p.temperature)
    }

    /// FAW on/off over steps.
    pub fn adaptive_weight_schedule(&self) -> StepSchedule<bool> {
        self.flag_schedule(self.framer.loss.adaptive_weight, |p| p.adaptive_weight)
    }

    /// FAM on/off over steps.
    pub fn alignment_modulation_schedule(&self) -> StepSchedule<bool> {
        self.flag_schedule(self.framer.loss.alignment_modulation, |p| p.alignment_modulation)
    }

    /// The learning rate of `[optimizer]` shaped by `[lr_schedule]`, before phase overrides.
    ///
    /// With peak `lr`, warm-up `w`, total `T` steps and floor `min_lr` (diffusers' conventions):
    /// `lr·step/w` during the warm-up, then constant `lr`, or the linear / cosine decay
    /// `min_lr + (lr − min_lr)·f` with `f = (T − step)/(T − w)` or `½(1 + cos(π·(step − w)/(T − w)))`.
    pub fn base_lr_at(&self, step: u64) -> f64 {
        let peak = self.optimizer.lr;
        let w = self.lr_schedule.warmup_steps;
        if step < w {
            return peak * step as f64 / w as f64;
        }
        let total = self.train.steps;
        let progress = if total > w {
            ((step - w) as f64 / (total - w) as f64).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let min = self.lr_schedule.min_lr;
        match self.lr_schedule.kind {
            LrScheduleKind::Constant => peak,
            LrScheduleKind::Linear => min + (peak - min) * (1.0 - progress),
            LrScheduleKind::Cosine => {
                min + (peak - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }

    /// Every scheduled value at `step`.
    pub fn values_at(&self, step: u64) -> StepValues {
        let lr = match self.ramp_schedule(0.0, |p| p.lr).segment_at(step) {
            Some(s) => s.value.value_at(step, s.start, s.end),
            None => self.base_lr_at(step),
        };
        StepValues {
            lambda: if self.framer.enabled {
                self.lambda_schedule().value_at(step)
            } else {
                0.0
            },
            lr,
            temperature: self.temperature_schedule().value_at(step),
            adaptive_weight: self.adaptive_weight_schedule().value_at(step),
            alignment_modulation: self.alignment_modulation_schedule().value_at(step),
        }
    }

    /// The FRAMER loss settings at `step`: `[framer]`'s, with the phase values of τ, FAW and FAM
    /// at that step.
    pub fn framer_loss_at(&self, step: u64) -> framer::FramerLossConfig {
        let v = self.values_at(step);
        framer::FramerLossConfig {
            temperature: v.temperature,
            adaptive_weight: v.adaptive_weight,
            alignment_modulation: v.alignment_modulation,
            ..self.framer.loss.clone()
        }
    }

    /// The steps at which some scheduled value changes course: 0, each phase's start and end, the
    /// warm-up's end and the last step (sorted, distinct, `< steps`).
    pub fn key_steps(&self) -> Vec<u64> {
        let last = self.train.steps.saturating_sub(1);
        let mut steps = vec![0, last];
        for p in &self.phases {
            steps.push(p.start);
            steps.push(p.end.saturating_sub(1));
            steps.push(p.end);
        }
        steps.push(self.lr_schedule.warmup_steps);
        steps.retain(|&s| s <= last);
        steps.sort_unstable();
        steps.dedup();
        steps
    }
}

fn fmt_ramp(r: &Ramp) -> String {
    match r {
        Ramp::Constant(v) => format!("{v}"),
        Ramp::Linear { from, to } => format!("{from} → {to}"),
    }
}

impl fmt::Display for Experiment {
    /// The resolved schedule as TOML (a valid schedule that resolves to the same experiment),
    /// followed, as comments, by a summary of the phases and a table of the scheduled values at
    /// the steps where they change course.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        #[derive(Serialize)]
        struct Sections<'a> {
            name: &'a str,
            model: &'a toml::Table,
            data: &'a DataConfig,
            degradation: &'a framer_data::DegradationConfig,
            objective: &'a ObjectiveConfig,
            framer: &'a FramerConfig,
            optimizer: &'a OptimizerConfig,
            lr_schedule: &'a LrScheduleConfig,
            train: &'a TrainConfig,
            checkpoint: &'a CheckpointConfig,
            logging: &'a LoggingConfig,
            #[serde(skip_serializing_if = "Option::is_none")]
            schedule: Option<PhaseList<'a>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            distributed: Option<Negatives>,
            #[serde(skip_serializing_if = "Option::is_none")]
            latent: Option<&'a super::latent::LatentConfig>,
            #[serde(skip_serializing_if = "Option::is_none")]
            init: Option<&'a super::init::InitConfig>,
            #[serde(skip_serializing_if = "Option::is_none")]
            lora: Option<&'a super::lora::LoraSettings>,
            #[serde(skip_serializing_if = "Option::is_none")]
            prompts: Option<&'a super::prompts::PromptsConfig>,
        }
        #[derive(Serialize)]
        struct Negatives {
            negatives: super::distributed::KeyScope,
        }
        #[derive(Serialize)]
        struct PhaseList<'a> {
            phase: &'a [Phase],
        }
        let sections = Sections {
            name: &self.name,
            model: &self.model,
            data: &self.data,
            degradation: &self.degradation,
            objective: &self.objective,
            framer: &self.framer,
            optimizer: &self.optimizer,
            lr_schedule: &self.lr_schedule,
            train: &self.train,
            checkpoint: &self.checkpoint,
            logging: &self.logging,
            schedule: (!self.phases.is_empty()).then_some(PhaseList {
                phase: &self.phases,
            }),
            distributed: (self.distributed.negatives != super::distributed::KeyScope::Global)
                .then_some(Negatives { negatives: self.distributed.negatives }),
            latent: self.latent.as_ref(),
            init: self.init.as_ref(),
            lora: self.lora.as_ref(),
            prompts: self.prompts.as_ref(),
        };
        let text = toml::to_string(&sections).map_err(|_| fmt::Error)?;
        writeln!(f, "{}", text.trim_end())?;
        writeln!(f)?;
        if self.phases.is_empty() {
            writeln!(f, "# phases: none (the section values apply at every step)")?;
        } else {
            writeln!(f, "# phases (steps start..end):")?;
            for (i, p) in self.phases.iter().enumerate() {
                let mut parts = Vec::new();
                if let Some(r) = &p.lambda {
                    parts.push(format!("lambda {}", fmt_ramp(r)));
                }
                if let Some(r) = &p.lr {
                    parts.push(format!("lr {}", fmt_ramp(r)));
                }
                if let Some(r) = &p.temperature {
                    parts.push(format!("temperature {}", fmt_ramp(r)));
                }
                if let Some(b) = p.adaptive_weight {
                    parts.push(format!("adaptive_weight {b}"));
                }
                if let Some(b) = p.alignment_modulation {
                    parts.push(format!("alignment_modulation {b}"));
                }
                let name = p
                    .name
                    .as_deref()
                    .map(|n| format!(" \"{n}\""))
                    .unwrap_or_default();
                writeln!(
                    f,
                    "#   {}{name}: {}..{}: {}",
                    i + 1,
                    p.start,
                    p.end,
                    parts.join(", ")
                )?;
            }
        }
        writeln!(f, "# scheduled values:")?;
        writeln!(
            f,
            "# {:>10}  {:>12}  {:>12}  {:>11}  {:>5}  {:>5}",
            "step", "lambda", "lr", "temperature", "FAW", "FAM"
        )?;
        for step in self.key_steps() {
            let v = self.values_at(step);
            writeln!(
                f,
                "# {step:>10}  {:>12.6e}  {:>12.6e}  {:>11.4}  {:>5}  {:>5}",
                v.lambda,
                v.lr,
                v.temperature,
                if v.adaptive_weight { "on" } else { "off" },
                if v.alignment_modulation { "on" } else { "off" },
            )?;
        }
        Ok(())
    }
}
