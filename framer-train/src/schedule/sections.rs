//! The tables of a schedule file, as plain serde structs.
//!
//! Every table rejects unknown keys; values that are range-checked keep their position in the file
//! ([`toml::Spanned`]) so that the error can point at them. Keys are the Rust field names; the
//! spellings of the official FRAMER / DiT4SR / diffusers flags are accepted as aliases.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::phase::PhaseSection;

/// A value with no position in the file (a default).
pub(crate) fn unspanned<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

/// A whole schedule file: one experiment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFile {
    /// Name of the experiment (used in logs and as the run folder `runs/<name>`): one path
    /// component, without separators.
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    /// `[model]`: the model's own configuration, deserialised by the binary's model registry
    /// ([`crate::registry::ModelRegistry`]), which rejects unknown keys at their position.
    pub model: toml::Table,
    /// `[data]`: training images.
    #[serde(default)]
    pub data: DataSection,
    /// `[degradation]`: Real-ESRGAN second-order degradation (Real-ESRGAN key names), the
    /// settings of `framer-data` as they are.
    #[serde(default)]
    pub degradation: Option<Spanned<framer_data::DegradationConfig>>,
    /// `[objective]`: the diffusion training objective.
    #[serde(default)]
    pub objective: ObjectiveSection,
    /// `[framer]`: the FRAMER loss.
    #[serde(default)]
    pub framer: FramerSection,
    /// `[optimizer]`: AdamW and clipping.
    #[serde(default, alias = "optimiser")]
    pub optimizer: OptimizerSection,
    /// `[lr_schedule]`: the shape of the learning rate over steps.
    #[serde(default)]
    pub lr_schedule: LrScheduleSection,
    /// `[train]`: steps, batch, seed, EMA.
    pub train: TrainSection,
    /// `[checkpoint]`: how often and where to save.
    #[serde(default)]
    pub checkpoint: CheckpointSection,
    /// `[logging]`: metrics, progress and plots.
    #[serde(default)]
    pub logging: LoggingSection,
    /// `[[schedule.phase]]`: per-step overrides and ramps.
    #[serde(default)]
    pub schedule: ScheduleSection,
    /// `[distributed]`: data-parallel peers.
    #[serde(default)]
    pub distributed: super::distributed::DistributedSection,
    /// `[latent]`: train and sample in a VAE's latent space (absent: pixel space).
    #[serde(default)]
    pub latent: Option<super::latent::LatentSection>,
    /// `[init]`: pretrained weights to start from (absent: the model's own initialisation).
    #[serde(default)]
    pub init: Option<super::init::InitSection>,
    /// `[lora]`: train low-rank adapters instead of the model's weights.
    #[serde(default)]
    pub lora: Option<super::lora::LoraSection>,
    /// `[prompts]`: precomputed prompt embeddings for a text-conditioned model.
    #[serde(default)]
    pub prompts: Option<super::prompts::PromptsSection>,
}

/// `[data]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// Folder of high-resolution training photos (LR inputs are synthesised from them with
    /// `[degradation]`); absent: the photos embedded in `framer-data`.
    #[serde(alias = "dataroot_gt")]
    pub hr_dir: Option<Spanned<PathBuf>>,
    /// Side of the square HR crop, in pixels (BasicSR `gt_size`).
    #[serde(alias = "gt_size")]
    pub crop_size: Spanned<i64>,
    /// Super-resolution factor.
    pub scale: Spanned<i64>,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            hr_dir: None,
            crop_size: unspanned(64),
            scale: unspanned(4),
        }
    }
}

/// The diffusion objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveKind {
    /// Rectified flow (SD3): `x_t = (1−σ)·x0 + σ·ε`, the network predicts `v = ε − x0`.
    #[serde(alias = "flow_matching", alias = "flow")]
    RectifiedFlow,
    /// DDPM ε-prediction.
    #[serde(alias = "eps")]
    Epsilon,
    /// DDPM v-prediction.
    #[serde(alias = "v")]
    VPrediction,
    /// A one-step host (OSEDiff / PiSA-SR style) with a residual target: the network sees the
    /// upsampled LR image itself as `x_t` at the fixed level `one_step_sigma` (no noise) and its
    /// prediction `v̂` gives `x̂0 = x_t − σ·v̂`; sampled in one step.
    #[serde(alias = "one-step")]
    OneStep,
}

/// How σ is drawn for rectified flow (the reference's `--weighting_scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SigmaSampling {
    /// `σ = sigmoid(n)`, `n ~ N(logit_mean, logit_std²)` (SD3, the reference).
    LogitNormal,
    /// `σ ~ U(0, 1)`.
    Uniform,
}

/// The DDPM β schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// β linear in t from `beta_start` to `beta_end`.
    Linear,
    /// √β linear in t (Stable Diffusion).
    ScaledLinear,
}

/// `[objective]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectiveSection {
    /// `"rectified_flow"`, `"epsilon"`, `"v_prediction"` or `"one_step"`.
    #[serde(alias = "prediction_type")]
    pub kind: ObjectiveKind,
    /// σ sampling of rectified flow.
    #[serde(alias = "weighting_scheme")]
    pub sigma_sampling: SigmaSampling,
    /// Mean of the logit-normal density.
    pub logit_mean: Spanned<f64>,
    /// Standard deviation of the logit-normal density.
    pub logit_std: Spanned<f64>,
    /// Number of DDPM training timesteps.
    pub num_train_timesteps: Spanned<i64>,
    /// DDPM β schedule.
    pub beta_schedule: BetaSchedule,
    /// First β.
    pub beta_start: Spanned<f64>,
    /// Last β.
    pub beta_end: Spanned<f64>,
    /// Number of sampler steps at inference (Euler for flow, DDIM for ε/v).
    #[serde(alias = "num_inference_steps")]
    pub sample_steps: Spanned<i64>,
    /// The fixed level σ of `kind = "one_step"`, in (0, 1].
    pub one_step_sigma: Spanned<f64>,
}

impl Default for ObjectiveSection {
    fn default() -> Self {
        Self {
            kind: ObjectiveKind::RectifiedFlow,
            sigma_sampling: SigmaSampling::LogitNormal,
            logit_mean: unspanned(0.0),
            logit_std: unspanned(1.0),
            num_train_timesteps: unspanned(1000),
            beta_schedule: BetaSchedule::ScaledLinear,
            beta_start: unspanned(0.00085),
            beta_end: unspanned(0.012),
            sample_steps: unspanned(40),
            one_step_sigma: unspanned(1.0),
        }
    }
}

/// The band mask family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskKind {
    /// The reference's per-sample magnitude quantile (`cutoff`).
    Quantile,
    /// The paper's radial rings (`radius`).
    Radial,
}

/// Which student layers take part, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StudentsSpec {
    /// `"all"`: every tap the model records.
    Named(String),
    /// Indices into the model's student taps.
    Indices(Vec<i64>),
    /// Tap names or globs (`"down_blocks.*"`, `"mid_block"`), each with its position in the file.
    Patterns(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for StudentsSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// One entry of the list: a tap index or a tap name / glob.
        enum Entry {
            Index(i64),
            Name(String),
        }
        impl<'de> Deserialize<'de> for Entry {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct E;
                impl serde::de::Visitor<'_> for E {
                    type Value = Entry;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a tap name, a glob or a tap index")
                    }
                    fn visit_i64<X: serde::de::Error>(self, v: i64) -> Result<Entry, X> {
                        Ok(Entry::Index(v))
                    }
                    fn visit_str<X: serde::de::Error>(self, v: &str) -> Result<Entry, X> {
                        Ok(Entry::Name(v.to_string()))
                    }
                }
                deserializer.deserialize_any(E)
            }
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StudentsSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"all\", a list of tap names or globs, or a list of tap indices")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StudentsSpec, E> {
                Ok(StudentsSpec::Named(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<StudentsSpec, A::Error> {
                let mut indices = Vec::new();
                let mut names = Vec::new();
                while let Some(entry) = seq.next_element::<Spanned<Entry>>()? {
                    let span = entry.span();
                    match entry.into_inner() {
                        Entry::Index(i) => indices.push(i),
                        Entry::Name(n) => names.push(Spanned::new(span, n)),
                    }
                }
                match (indices.is_empty(), names.is_empty()) {
                    (_, true) => Ok(StudentsSpec::Indices(indices)),
                    (true, false) => Ok(StudentsSpec::Patterns(names)),
                    (false, false) => Err(serde::de::Error::custom(
                        "`students` mixes tap names and indices; use one kind",
                    )),
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `student_weights = { "down_blocks.*" = 0.5, mid_block = 2.0 }`, in the order written: tap
/// names or globs, each with its weight, both with their positions in the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StudentWeightsSpec(pub Vec<(Spanned<String>, Spanned<f64>)>);

impl<'de> Deserialize<'de> for StudentWeightsSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StudentWeightsSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table of tap names or globs to weights, e.g. { mid_block = 2.0 }")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<StudentWeightsSpec, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    entries.push((key, map.next_value::<Spanned<f64>>()?));
                }
                Ok(StudentWeightsSpec(entries))
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// `[framer]`, as written: the parse layer only. Values keep their positions in the file
/// ([`Spanned`]) for located errors, and the schedule's own spellings (`mask = "radial"` with
/// `radius`, the reference's aliases); validation turns it into the core
/// [`framer::FramerLossConfig`] plus the schedule's own settings ([`super::FramerConfig`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FramerSection {
    /// FRAMER on; `false` trains the base objective only.
    pub enabled: bool,
    /// Outer weight λ of the FRAMER term (`--lambda_framer`).
    #[serde(alias = "lambda_framer", alias = "weight")]
    pub lambda: Spanned<f64>,
    /// `"quantile"` (reference) or `"radial"` (paper).
    pub mask: Spanned<MaskKind>,
    /// Quantile of the quantile mask (`--cutoff`).
    pub cutoff: Option<Spanned<f64>>,
    /// Radius of the radial mask.
    pub radius: Option<Spanned<f64>>,
    /// Contrastive temperature τ (`--tau_high`).
    #[serde(alias = "tau_high", alias = "tau")]
    pub temperature: Spanned<f64>,
    /// Student layers: `"all"`, a list of tap names or globs (`["down_blocks.*", "mid_block"]`),
    /// or a list of indices into the model's students.
    pub students: Spanned<StudentsSpec>,
    /// Weights of students in the loss by tap name or glob, overriding the model's
    /// `#[framer(student, weight = ..)]`.
    pub student_weights: StudentWeightsSpec,
    /// Frequency-based Adaptive Weight (FAW) on.
    #[serde(alias = "faw")]
    pub adaptive_weight: bool,
    /// Frequency-based Alignment Modulation (FAM) on.
    #[serde(alias = "fam")]
    pub alignment_modulation: bool,
}

impl Default for FramerSection {
    fn default() -> Self {
        Self {
            enabled: true,
            lambda: unspanned(0.1),
            mask: unspanned(MaskKind::Quantile),
            cutoff: None,
            radius: None,
            temperature: unspanned(1.0),
            students: unspanned(StudentsSpec::Named("all".into())),
            student_weights: StudentWeightsSpec::default(),
            adaptive_weight: true,
            alignment_modulation: true,
        }
    }
}

/// The optimiser family (only AdamW for now; the key exists so that files stay explicit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// AdamW (decoupled weight decay).
    #[serde(alias = "adam_w")]
    Adamw,
}

/// `[optimizer]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerSection {
    /// Always `"adamw"`.
    pub kind: OptimizerKind,
    /// Peak learning rate (`--learning_rate`).
    #[serde(alias = "learning_rate")]
    pub lr: Spanned<f64>,
    /// β1 (`--adam_beta1`).
    #[serde(alias = "adam_beta1")]
    pub beta1: Spanned<f64>,
    /// β2 (`--adam_beta2`).
    #[serde(alias = "adam_beta2")]
    pub beta2: Spanned<f64>,
    /// Decoupled weight decay (`--adam_weight_decay`).
    #[serde(alias = "adam_weight_decay")]
    pub weight_decay: Spanned<f64>,
    /// ε (`--adam_epsilon`).
    #[serde(alias = "adam_epsilon", alias = "epsilon")]
    pub eps: Spanned<f64>,
    /// Clip the global L2 norm of all gradients to this value (`--max_grad_norm`); absent: no
    /// clipping.
    pub max_grad_norm: Option<Spanned<f64>>,
}

impl Default for OptimizerSection {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::Adamw,
            lr: unspanned(5e-5),
            beta1: unspanned(0.9),
            beta2: unspanned(0.999),
            weight_decay: unspanned(1e-2),
            eps: unspanned(1e-8),
            max_grad_norm: Some(unspanned(1.0)),
        }
    }
}

/// The shape of the learning rate over training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LrScheduleKind {
    /// Constant after the warm-up (the reference).
    Constant,
    /// Linear decay from `lr` to `min_lr` after the warm-up.
    Linear,
    /// Cosine decay from `lr` to `min_lr` after the warm-up.
    Cosine,
}

/// `[lr_schedule]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LrScheduleSection {
    /// `"constant"`, `"linear"` or `"cosine"` (`--lr_scheduler`).
    #[serde(alias = "lr_scheduler")]
    pub kind: LrScheduleKind,
    /// Linear warm-up from 0 over this many steps (`--lr_warmup_steps`).
    #[serde(alias = "lr_warmup_steps")]
    pub warmup_steps: Spanned<i64>,
    /// Final learning rate of the decaying schedules.
    pub min_lr: Spanned<f64>,
}

impl Default for LrScheduleSection {
    fn default() -> Self {
        Self {
            kind: LrScheduleKind::Constant,
            warmup_steps: unspanned(0),
            min_lr: unspanned(0.0),
        }
    }
}

/// `[train]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Number of optimiser steps (`--max_train_steps`).
    #[serde(alias = "max_train_steps")]
    pub steps: Spanned<i64>,
    /// Images per step (`--train_batch_size`).
    #[serde(default = "default_batch", alias = "train_batch_size")]
    pub batch_size: Spanned<i64>,
    /// Seed of every random draw (data order, crops, degradations, noise, negatives).
    #[serde(default)]
    pub seed: u64,
    /// Decay of the exponential moving average of the weights; absent: no EMA.
    #[serde(default, alias = "ema")]
    pub ema_decay: Option<Spanned<f64>>,
    /// Abort after this many consecutive steps with a non-finite loss or gradient.
    #[serde(default = "default_max_bad_steps")]
    pub max_bad_steps: Spanned<i64>,
    /// Parameters the optimiser updates, as globs over parameter paths (`["*control*"]`);
    /// absent: every parameter. The others are frozen: no gradient, no optimiser state.
    #[serde(default)]
    pub trainable: Option<Spanned<Vec<Spanned<String>>>>,
    /// The reference's `--trainable_modules`: substrings of parameter paths (`["control"]` is
    /// `trainable = ["*control*"]`).
    #[serde(default)]
    pub trainable_modules: Option<Spanned<Vec<Spanned<String>>>>,
    /// The precision of the forward and backward pass (`--mixed_precision`): `"no"`, `"fp16"`
    /// or `"bf16"`.
    #[serde(default)]
    pub mixed_precision: MixedPrecision,
}

/// `[train] mixed_precision`, accelerate's `--mixed_precision`: the float type in which the model
/// runs its forward and backward pass. The weights the optimiser updates stay in f32 (the master
/// weights), and the FRAMER and base losses are computed in f32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MixedPrecision {
    /// Everything in f32.
    #[default]
    #[serde(alias = "fp32", alias = "f32")]
    No,
    /// IEEE half precision, with a dynamic loss scale against gradient underflow.
    #[serde(alias = "f16")]
    Fp16,
    /// bfloat16 (f32's range, 8 bits of mantissa; no loss scale needed).
    Bf16,
}

impl MixedPrecision {
    /// Whether this is `"no"` (f32 throughout).
    pub fn is_no(&self) -> bool {
        *self == Self::No
    }

    /// The float type of the forward and backward pass; `None` for `"no"`.
    pub fn compute_dtype(&self) -> Option<burn::tensor::FloatDType> {
        match self {
            Self::No => None,
            Self::Fp16 => Some(burn::tensor::FloatDType::F16),
            Self::Bf16 => Some(burn::tensor::FloatDType::BF16),
        }
    }
}

fn default_batch() -> Spanned<i64> {
    unspanned(4)
}

fn default_max_bad_steps() -> Spanned<i64> {
    unspanned(5)
}

/// `[checkpoint]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointSection {
    /// Save every this many steps (`--checkpointing_steps`); the last step is always saved.
    #[serde(alias = "checkpointing_steps")]
    pub every: Spanned<i64>,
    /// Folder of the checkpoints, relative to the run folder (and inside it).
    pub dir: Spanned<PathBuf>,
    /// Continue from the newest checkpoint in `dir` if there is one.
    pub resume: bool,
    /// How many checkpoints to keep (the newest ones).
    #[serde(alias = "checkpoints_total_limit")]
    pub keep: Spanned<i64>,
}

impl Default for CheckpointSection {
    fn default() -> Self {
        Self {
            every: unspanned(1000),
            dir: unspanned(PathBuf::from("checkpoints")),
            resume: true,
            keep: unspanned(2),
        }
    }
}

/// The per-step metrics file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header line.
    Csv,
}

/// `[logging]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSection {
    /// Write a metrics record every this many steps.
    pub every: Spanned<i64>,
    /// `"jsonl"` or `"csv"`.
    pub format: LogFormat,
    /// Redraw the loss-curve PNG every this many steps (0: only at the end).
    pub plot_every: Spanned<i64>,
    /// Show a progress bar.
    pub progress: bool,
}

impl Default for LoggingSection {
    fn default() -> Self {
        Self {
            every: unspanned(1),
            format: LogFormat::Jsonl,
            plot_every: unspanned(0),
            progress: true,
        }
    }
}

/// `[schedule]`: the list of phases.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleSection {
    /// `[[schedule.phase]]` entries, in step order.
    #[serde(alias = "phases")]
    pub phase: Vec<PhaseSection>,
}
