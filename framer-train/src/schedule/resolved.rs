//! The validated experiment: plain values, ready for the engine.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::phase::{Ramp, Segment, StepSchedule};
use super::sections::{BetaSchedule, LogFormat, LrScheduleKind, ObjectiveKind, SigmaSampling};

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

/// The band mask, with its parameter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MaskConfig {
    /// Magnitude quantile.
    Quantile {
        /// Quantile in (0, 1).
        cutoff: f64,
    },
    /// Radial rings.
    Radial {
        /// Radius in (0, 1).
        radius: f64,
    },
}

impl MaskConfig {
    /// The core crate's mask.
    pub fn to_band_mask(self) -> framer::BandMaskKind {
        match self {
            Self::Quantile { cutoff } => framer::BandMaskKind::Quantile { cutoff },
            Self::Radial { radius } => framer::BandMaskKind::Radial { radius },
        }
    }
}

/// A student pattern as written in `[framer] students`, with its byte range in the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentPattern {
    /// A tap name (`mid_block`) or a glob over tap names (`down_blocks.*`; `*` matches any run of
    /// characters, `?` one character).
    pub pattern: String,
    /// Where the pattern is written in the schedule file (empty when unknown).
    pub span: std::ops::Range<usize>,
}

/// Which taps are students.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Students {
    /// Every student tap of the model.
    All,
    /// These positions among the model's student taps (in recording order), sorted and distinct.
    Indices(Vec<usize>),
    /// The student taps matching any of these names or globs.
    Patterns(Vec<StudentPattern>),
}

impl Serialize for Students {
    /// `"all"`, the list of indices or the list of patterns, as written in a schedule.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::All => serializer.serialize_str("all"),
            Self::Indices(ix) => ix.serialize(serializer),
            Self::Patterns(p) => serializer.collect_seq(p.iter().map(|p| &p.pattern)),
        }
    }
}

/// Why [`Students::resolve`] rejected a selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentsError {
    /// What is wrong.
    pub message: String,
    /// The pattern at fault, when one is (an index into [`Students::Patterns`]).
    pub pattern: Option<usize>,
    /// A suggestion (the closest tap name), when there is one.
    pub help: Option<String>,
}

/// Whether `name` matches the glob `pattern` (`*`: any run of characters, `?`: one character).
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

impl Students {
    /// The selected student names out of `available` (the model's student taps in recording
    /// order), in recording order.
    ///
    /// # Errors
    /// An index beyond the taps, a pattern that matches no tap (with the closest name), or fewer
    /// than 2 students selected.
    pub fn resolve(&self, available: &[String]) -> Result<Vec<String>, StudentsError> {
        let err = |message: String, pattern: Option<usize>, help: Option<String>| StudentsError {
            message,
            pattern,
            help,
        };
        let picked: Vec<String> = match self {
            Self::All => available.to_vec(),
            Self::Indices(ix) => {
                if let Some(i) = ix.iter().find(|&&i| i >= available.len()) {
                    return Err(err(
                        format!(
                            "`students` names tap {i}, but the model has {} student taps (0..{})",
                            available.len(),
                            available.len()
                        ),
                        None,
                        Some(format!("the student taps are: {}", available.join(", "))),
                    ));
                }
                ix.iter().map(|&i| available[i].clone()).collect()
            }
            Self::Patterns(patterns) => {
                for (k, p) in patterns.iter().enumerate() {
                    if !available.iter().any(|n| glob_matches(&p.pattern, n)) {
                        let closest = super::error::suggest(&p.pattern, available.iter().map(String::as_str));
                        let mut message = format!("`students` entry \"{}\" matches no student tap of the model", p.pattern);
                        if let Some(c) = &closest {
                            message.push_str(&format!("; did you mean \"{c}\"?"));
                        }
                        return Err(err(
                            message,
                            Some(k),
                            Some(format!("the student taps are: {}", available.join(", "))),
                        ));
                    }
                }
                available
                    .iter()
                    .filter(|n| patterns.iter().any(|p| glob_matches(&p.pattern, n)))
                    .cloned()
                    .collect()
            }
        };
        if picked.len() < 2 {
            return Err(err(
                format!(
                    "FRAMER needs at least 2 students (each student's negative is another student); \
                     `students` selects {} of the model's {} ({})",
                    picked.len(),
                    available.len(),
                    picked.join(", ")
                ),
                None,
                None,
            ));
        }
        Ok(picked)
    }
}

/// `[framer]`, resolved (the values outside every phase). Serialises in the schedule's own form
/// (`mask = "quantile"` with `cutoff`, or `mask = "radial"` with `radius`).
#[derive(Debug, Clone, PartialEq)]
pub struct FramerConfig {
    /// FRAMER on.
    pub enabled: bool,
    /// λ.
    pub lambda: f64,
    /// Band mask.
    pub mask: MaskConfig,
    /// τ.
    pub temperature: f64,
    /// Student taps.
    pub students: Students,
    /// FAW on.
    pub adaptive_weight: bool,
    /// FAM on.
    pub alignment_modulation: bool,
}

impl Serialize for FramerConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("FramerConfig", 8)?;
        s.serialize_field("enabled", &self.enabled)?;
        s.serialize_field("lambda", &self.lambda)?;
        match self.mask {
            MaskConfig::Quantile { cutoff } => {
                s.serialize_field("mask", "quantile")?;
                s.serialize_field("cutoff", &cutoff)?;
            }
            MaskConfig::Radial { radius } => {
                s.serialize_field("mask", "radial")?;
                s.serialize_field("radius", &radius)?;
            }
        }
        s.serialize_field("temperature", &self.temperature)?;
        s.serialize_field("students", &self.students)?;
        s.serialize_field("adaptive_weight", &self.adaptive_weight)?;
        s.serialize_field("alignment_modulation", &self.alignment_modulation)?;
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
    /// The file the experiment was read from (for located errors); not part of its value.
    #[serde(skip)]
    pub origin: Option<ScheduleOrigin>,
}

impl Experiment {
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
        self.ramp_schedule(self.framer.temperature, |p| p.temperature)
    }

    /// FAW on/off over steps.
    pub fn adaptive_weight_schedule(&self) -> StepSchedule<bool> {
        self.flag_schedule(self.framer.adaptive_weight, |p| p.adaptive_weight)
    }

    /// FAM on/off over steps.
    pub fn alignment_modulation_schedule(&self) -> StepSchedule<bool> {
        self.flag_schedule(self.framer.alignment_modulation, |p| p.alignment_modulation)
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

    /// The FRAMER loss settings at `step`.
    pub fn framer_loss_at(&self, step: u64) -> framer::FramerLossConfig {
        let v = self.values_at(step);
        framer::FramerLossConfig::new()
            .with_mask(self.framer.mask.to_band_mask())
            .with_temperature(v.temperature)
            .with_adaptive_weight(v.adaptive_weight)
            .with_alignment_modulation(v.alignment_modulation)
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

/// Where a resolved `[framer]` value comes from: the schedule overrides the model's attribute
/// (`#[framer(loss(..))]`), which overrides framer's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueSource {
    /// framer's default (the reference's settings).
    Default,
    /// The model's `#[framer(loss(..))]` attribute.
    Attribute,
    /// The schedule's `[framer]` table.
    Schedule,
}

impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Default => "default",
            Self::Attribute => "attribute",
            Self::Schedule => "schedule",
        })
    }
}

/// One resolved `[framer]` value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct FramerValue {
    /// The schedule key (`lambda`, `cutoff`, ...).
    pub key: &'static str,
    /// The value, as TOML would write it.
    pub value: String,
    /// Where it came from.
    pub source: ValueSource,
}

/// The `[framer]` keys a schedule file writes, by canonical name (aliases folded).
fn framer_keys_written(origin: Option<&ScheduleOrigin>) -> Vec<&'static str> {
    let Some(origin) = origin else {
        return Vec::new();
    };
    let Ok(doc) = origin.text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let Some(toml::Value::Table(framer)) = doc.get("framer") else {
        return Vec::new();
    };
    framer
        .keys()
        .filter_map(|k| {
            Some(match k.as_str() {
                "lambda" | "lambda_framer" | "weight" => "lambda",
                "temperature" | "tau_high" | "tau" => "temperature",
                "adaptive_weight" | "faw" => "adaptive_weight",
                "alignment_modulation" | "fam" => "alignment_modulation",
                "mask" | "cutoff" | "radius" => "mask",
                _ => return None,
            })
        })
        .collect()
}

impl Experiment {
    /// This experiment with a model's `#[framer(loss(..))]` defaults applied where the schedule's
    /// `[framer]` table does not set the value itself, and where each resolved value came from.
    pub fn with_model_defaults(
        &self,
        defaults: &[framer::LossDefault],
    ) -> (Experiment, Vec<FramerValue>) {
        let written = framer_keys_written(self.origin.as_ref());
        let mut exp = self.clone();
        let mut sources = vec![
            ("lambda", ValueSource::Default),
            ("mask", ValueSource::Default),
            ("temperature", ValueSource::Default),
            ("adaptive_weight", ValueSource::Default),
            ("alignment_modulation", ValueSource::Default),
        ];
        for (key, source) in &mut sources {
            if written.contains(key) {
                *source = ValueSource::Schedule;
                continue;
            }
            for d in defaults {
                let f = &mut exp.framer;
                let applied = match (*d, *key) {
                    (framer::LossDefault::Number("lambda", x), "lambda") => {
                        f.lambda = x;
                        true
                    }
                    (framer::LossDefault::Number("cutoff", x), "mask") => {
                        f.mask = MaskConfig::Quantile { cutoff: x };
                        true
                    }
                    (framer::LossDefault::Number("radius", x), "mask") => {
                        f.mask = MaskConfig::Radial { radius: x };
                        true
                    }
                    (framer::LossDefault::Number("temperature", x), "temperature") => {
                        f.temperature = x;
                        true
                    }
                    (framer::LossDefault::Flag("adaptive_weight", b), "adaptive_weight") => {
                        f.adaptive_weight = b;
                        true
                    }
                    (framer::LossDefault::Flag("alignment_modulation", b), "alignment_modulation") => {
                        f.alignment_modulation = b;
                        true
                    }
                    _ => false,
                };
                if applied {
                    *source = ValueSource::Attribute;
                }
            }
        }
        let f = &exp.framer;
        let values = sources
            .into_iter()
            .flat_map(|(key, source)| {
                let value = |key: &'static str, value: String| FramerValue { key, value, source };
                match key {
                    "lambda" => vec![value("lambda", f.lambda.to_string())],
                    "mask" => match f.mask {
                        MaskConfig::Quantile { cutoff } => vec![
                            value("mask", "\"quantile\"".into()),
                            value("cutoff", cutoff.to_string()),
                        ],
                        MaskConfig::Radial { radius } => vec![
                            value("mask", "\"radial\"".into()),
                            value("radius", radius.to_string()),
                        ],
                    },
                    "temperature" => vec![value("temperature", f.temperature.to_string())],
                    "adaptive_weight" => vec![value("adaptive_weight", f.adaptive_weight.to_string())],
                    _ => vec![value("alignment_modulation", f.alignment_modulation.to_string())],
                }
            })
            .collect();
        (exp, values)
    }
}
