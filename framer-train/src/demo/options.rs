//! The main job's settings and the schedule of each of its runs.

use std::path::{Path, PathBuf};

use framer_backbones::{DiTConfig, UNetConfig};

use crate::engine::EngineError;
use crate::schedule::{self, Experiment};

/// Which backbone the main job trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoBackbone {
    /// The SD3/DiT4SR-style MMDiT (the reference's FRAMER_D), students read out by its own head.
    Dit,
    /// The SD2-style U-Net (FRAMER_U), students read out by generated 1×1-conv heads.
    Unet,
}

impl DemoBackbone {
    /// The `[model] backbone` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dit => "dit",
            Self::Unet => "unet",
        }
    }

    fn diffusion_objective(self) -> &'static str {
        match self {
            Self::Dit => "kind = \"rectified_flow\"\nsigma_sampling = \"logit_normal\"",
            Self::Unet => "kind = \"v_prediction\"",
        }
    }
}

/// What the main job's runs learn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DemoObjective {
    /// The one-step host with a residual target at the fixed level `sigma`
    /// (`[objective] kind = "one_step"`), sampled in one step from the upsampled LR image.
    OneStep {
        /// The fixed level σ in (0, 1]: the network predicts `(LR↑ − HR)/σ`.
        sigma: f64,
    },
    /// The backbone's diffusion objective (rectified flow for the DiT, v-prediction for the
    /// U-Net), sampled with [`DemoOptions::sample_steps`] steps from [`DemoOptions::strength`].
    Diffusion,
}

impl DemoObjective {
    fn schedule_text(self, backbone: DemoBackbone) -> String {
        match self {
            Self::OneStep { sigma } => {
                format!("kind = \"one_step\"\none_step_sigma = {sigma:?}")
            }
            Self::Diffusion => backbone.diffusion_objective().to_string(),
        }
    }

    /// A short description for reports.
    pub fn describe(self) -> String {
        match self {
            Self::OneStep { sigma } => format!("one-step residual host (σ = {sigma})"),
            Self::Diffusion => "multi-step diffusion".into(),
        }
    }
}

/// One FRAMER setting of a run: the baseline, FRAMER as the reference runs it, or one of the
/// paper's ablations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VariantKind {
    /// No FRAMER: the base objective only.
    Baseline,
    /// FRAMER with FAW and FAM, the reference's quantile mask.
    Framer,
    /// FRAMER without the Frequency-based Adaptive Weight.
    NoFaw,
    /// FRAMER without the Frequency-based Alignment Modulation.
    NoFam,
    /// FRAMER with the paper's radial band mask instead of the quantile mask.
    Radial,
}

impl VariantKind {
    /// The label in tables and figures.
    pub fn label(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Framer => "+FRAMER",
            Self::NoFaw => "FRAMER w/o FAW",
            Self::NoFam => "FRAMER w/o FAM",
            Self::Radial => "FRAMER radial",
        }
    }

    /// The run folder's name.
    pub fn dir(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Framer => "framer",
            Self::NoFaw => "framer_no_faw",
            Self::NoFam => "framer_no_fam",
            Self::Radial => "framer_radial",
        }
    }

    fn framer_section(self, lambda: f64) -> String {
        let extra = match self {
            Self::Baseline => return format!("enabled = false\nlambda = {lambda:?}"),
            Self::Framer => "",
            Self::NoFaw => "\nadaptive_weight = false",
            Self::NoFam => "\nalignment_modulation = false",
            Self::Radial => "\nmask = \"radial\"",
        };
        format!("enabled = true\nlambda = {lambda:?}{extra}")
    }
}

/// Settings of the main job.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOptions {
    /// Backbone to train.
    pub backbone: DemoBackbone,
    /// What the runs learn.
    pub objective: DemoObjective,
    /// Training steps of each run.
    pub steps: u64,
    /// Batch size.
    pub batch_size: usize,
    /// HR crop side in pixels (a multiple of 4).
    pub crop_size: usize,
    /// Peak learning rate (AdamW), decayed by a cosine schedule to a tenth over the run.
    pub lr: f64,
    /// Sampler steps at inference ([`DemoObjective::Diffusion`] only).
    pub sample_steps: usize,
    /// Where diffusion sampling starts, in (0, 1]: 1 starts from pure noise; below 1 from the LR
    /// image noised to that level ([`DemoObjective::Diffusion`] only).
    pub strength: f64,
    /// Zero-initialise the backbone's output layer (`zero_init_out` of the DiT / U-Net config):
    /// the one-step host then starts exactly at bicubic (`x̂0 = LR↑`) and training can only move
    /// it by what the loss gains. `false`: the backbone's default (random) initialisation.
    pub zero_init_out: bool,
    /// Train on the USM-sharpened HR crop (`[degradation] gt_usm`, Real-ESRGAN's GAN recipe)
    /// instead of the HR crop itself. The LR input is degraded from the sharpened crop either
    /// way; the held-out and validation scores compare with the unsharpened HR.
    pub gt_usm: bool,
    /// Seed of both runs and of the evaluation.
    pub seed: u64,
    /// The FRAMER weight λ of the FRAMER runs.
    pub lambda: f64,
    /// Decay of an exponential moving average of the weights (`[train] ema_decay`); the average,
    /// not the last weights, is then evaluated. `None`: no average.
    pub ema_decay: Option<f64>,
    /// HR side of the held-out centre crops that are super-resolved (tile by tile, at the
    /// training crop size) and scored.
    pub eval_size: usize,
    /// HR side of the validation crops (centre crops of the validation photos under fixed
    /// degradations, see [`super::validation_pairs`]), scored after training; 0: none.
    pub validation_size: usize,
    /// How many runs train at the same time, one thread each (0: one per core, at most 2).
    pub jobs: usize,
    /// Report folder.
    pub out: PathBuf,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            // chosen on the validation crops (RESULTS.md, "Main job"): the U-Net's students are
            // read out by their own 1×1 heads, and 250 of its steps fit the 5-minute budget
            backbone: DemoBackbone::Unet,
            objective: DemoObjective::OneStep { sigma: 1.0 },
            steps: 250,
            batch_size: 4,
            crop_size: 64,
            lr: 1e-3,
            sample_steps: 20,
            strength: 0.4,
            zero_init_out: true,
            // the scores compare with the unsharpened HR, so the runs learn it (chosen on the
            // validation photos, RESULTS.md "The main job now")
            gt_usm: false,
            seed: 0,
            lambda: 0.1,
            ema_decay: None,
            eval_size: 256,
            validation_size: 256,
            jobs: 0,
            out: PathBuf::from("report"),
        }
    }
}

impl DemoOptions {
    /// How many runs train at the same time: [`Self::jobs`], or one per core (at most 2).
    pub fn threads(&self) -> usize {
        if self.jobs > 0 {
            self.jobs
        } else {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, 2)
        }
    }
}

/// The `[model]` table of the main job's runs: the backbone's tiny preset, written out in full
/// (`[model.dit]` / `[model.unet]`) with [`DemoOptions::zero_init_out`], so the resolved schedule
/// and `model.toml` of each run say exactly what was trained.
fn model_section(options: &DemoOptions) -> Result<String, EngineError> {
    let zero_init_out = options.zero_init_out;
    let table = match options.backbone {
        DemoBackbone::Dit => toml::to_string(&DiTConfig { zero_init_out, ..DiTConfig::tiny() }),
        DemoBackbone::Unet => toml::to_string(&UNetConfig { zero_init_out, ..UNetConfig::tiny() }),
    }
    .map_err(|e| EngineError::Model(format!("the main job's model table: {e}")))?;
    let name = options.backbone.name();
    Ok(format!("[model]\nbackbone = \"{name}\"\n\n[model.{name}]\n{table}"))
}

/// The schedule of one run of the main job (or of a study): `variant` at `seed`.
///
/// # Errors
/// [`EngineError::Model`] when the options make an invalid schedule (the schedule error names
/// the key).
pub fn experiment(
    options: &DemoOptions,
    variant: VariantKind,
    seed: u64,
    progress: bool,
) -> Result<Experiment, EngineError> {
    let name = variant.dir();
    let text = format!(
        r#"name = "{name}"

{model}
[data]
crop_size = {crop}
scale = 4

[degradation]
gt_usm = {gt_usm}

[objective]
{objective}
sample_steps = {sample_steps}

[framer]
{framer}

[optimizer]
lr = {lr:?}
max_grad_norm = 1.0

[lr_schedule]
kind = "cosine"
min_lr = {min_lr:?}

[train]
steps = {steps}
batch_size = {batch}
seed = {seed}{ema}

[checkpoint]
every = {steps}
resume = false

[logging]
every = 1
format = "jsonl"
progress = {progress}
"#,
        model = model_section(options)?,
        crop = options.crop_size,
        gt_usm = options.gt_usm,
        objective = options.objective.schedule_text(options.backbone),
        sample_steps = options.sample_steps,
        framer = variant.framer_section(options.lambda),
        lr = options.lr,
        min_lr = options.lr / 10.0,
        steps = options.steps,
        batch = options.batch_size,
        ema = options.ema_decay.map(|d| format!("\nema_decay = {d:?}")).unwrap_or_default(),
    );
    schedule::parse(&text, &format!("<main job: {name}>"), Path::new("."))
        .map_err(|e| EngineError::Model(format!("the main job's schedule is invalid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use framer_data::{DegradationConfig, Degrader, TrainPairs, TrainPairsOptions};

    #[test]
    fn main_job_learns_the_unsharpened_hr_unless_asked() {
        let plain = experiment(&DemoOptions::default(), VariantKind::Framer, 0, false).unwrap();
        assert!(!plain.degradation.gt_usm);
        // otherwise Real-ESRGAN's degradation, unchanged
        let usm = DegradationConfig { gt_usm: true, ..plain.degradation.clone() };
        assert_eq!(usm, DegradationConfig::default());
        let sharpened = DemoOptions { gt_usm: true, ..DemoOptions::default() };
        let sharpened = experiment(&sharpened, VariantKind::Baseline, 0, false).unwrap();
        assert!(sharpened.degradation.gt_usm);

        // the target of a training pair is then the HR crop itself; the LR input is the same
        let options = TrainPairsOptions { crop_size: 64, ..Default::default() };
        let pairs = |config: DegradationConfig| {
            TrainPairs::embedded(Degrader::new(config).unwrap(), options.clone()).unwrap()
        };
        let (plain_pairs, usm_pairs) = (pairs(plain.degradation), pairs(usm));
        let crop = plain_pairs.crop(3, 7).unwrap();
        let (a, b) = (plain_pairs.get(3, 7).unwrap(), usm_pairs.get(3, 7).unwrap());
        assert_eq!(a.hr, crop);
        assert_ne!(b.hr, crop, "Real-ESRGAN's target is sharpened");
        assert_eq!(a.lr, b.lr);
    }
}
