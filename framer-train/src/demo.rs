//! The main job: train a tiny backbone on the embedded photos twice, without and with FRAMER (same
//! seed, same step budget), super-resolve held-out photos with both, and compare with bicubic.
//!
//! ```text
//! cargo run --release                          # tiny DiT, one-step host, the default budget
//! cargo run --release -- demo --backbone unet  # the U-Net instead
//! cargo run --release -- demo --steps 2000     # a longer run
//! ```
//!
//! By default both runs train a **one-step host with a residual target** (OSEDiff / PiSA-SR
//! style, `[objective] kind = "one_step"`): the network sees the bicubic-upsampled LR image at a
//! fixed σ, and its prediction `v̂` gives `x̂0 = LR↑ − σ·v̂`. A network whose output starts near
//! zero starts at bicubic and can only learn to improve on it; FRAMER teaches the intermediate
//! layers from the final one through the same clean estimate. `--objective diffusion` trains the
//! backbone's multi-step diffusion objective instead (rectified flow for the DiT, v-prediction
//! for the U-Net), sampled from the noised LR at `--strength`.
//!
//! The two runs train side by side, one thread each, when the machine has two cores or more
//! (`--jobs 1` trains them one after the other; see BENCHMARKS.md for the measurement).
//!
//! Writes a report folder: `baseline/` and `framer/` (real run folders: resolved schedule,
//! `model.toml`, metrics, loss plot and checkpoint, so `framer sr --run <out>/framer` and
//! `framer analyze --run <out>/framer` work on them), `samples/<photo>.png` (labelled panels LR,
//! bicubic, baseline, +FRAMER, HR with their scores, and a zoomed detail),
//! `comparison.md` / `comparison.csv` and `loss.png` (both training curves).

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::tensor::{Tensor, backend::AutodiffBackend, backend::Backend};
use framer::Framed;
use framer_data::{Degrader, Image, upsample_bicubic};
use framer_eval::tiling::{TileConfig, process_tiled_image};
use framer_metrics::{Metric, TableFormat, comparison_table};
use rand::SeedableRng;

use crate::engine::{
    DegradedPhotos, EngineError, ModelConfig, Objective, RunSummary, SrModel, Trainer,
    build_framed, metrics, prepare_run_dir,
};
use crate::registry::{Builtin, ConfigTask, ModelRegistry};

pub use crate::engine::sampler::sample_from;
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
    /// Seed of both runs and of the evaluation.
    pub seed: u64,
    /// The FRAMER weight λ of the FRAMER runs.
    pub lambda: f64,
    /// HR side of the held-out centre crops that are super-resolved (tile by tile, at the
    /// training crop size) and scored.
    pub eval_size: usize,
    /// How many runs train at the same time, one thread each (0: one per core, at most 2).
    pub jobs: usize,
    /// Report folder.
    pub out: PathBuf,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            backbone: DemoBackbone::Dit,
            objective: DemoObjective::OneStep { sigma: 1.0 },
            steps: 300,
            batch_size: 4,
            crop_size: 64,
            lr: 1e-3,
            sample_steps: 20,
            strength: 0.4,
            seed: 0,
            lambda: 0.1,
            eval_size: 256,
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

[model]
backbone = "{backbone}"
preset = "tiny"

[data]
crop_size = {crop}
scale = 4

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
seed = {seed}

[checkpoint]
every = {steps}
resume = false

[logging]
every = 1
format = "jsonl"
progress = {progress}
"#,
        backbone = options.backbone.name(),
        crop = options.crop_size,
        objective = options.objective.schedule_text(options.backbone),
        sample_steps = options.sample_steps,
        framer = variant.framer_section(options.lambda),
        lr = options.lr,
        min_lr = options.lr / 10.0,
        steps = options.steps,
        batch = options.batch_size,
    );
    schedule::parse(&text, &format!("<main job: {name}>"), Path::new("."))
        .map_err(|e| EngineError::Model(format!("the main job's schedule is invalid: {e}")))
}

/// One held-out evaluation pair: the HR centre crop, and its degraded LR upsampled back.
#[derive(Debug, Clone)]
pub struct EvalPair {
    /// The photo's name, e.g. `embedded:held_out/friends.jpg`.
    pub name: String,
    /// The HR centre crop.
    pub hr: Image,
    /// The degraded LR crop.
    pub lr: Image,
    /// The LR crop upsampled bicubically to the HR size.
    pub lr_upsampled: Image,
}

impl EvalPair {
    /// The photo's file stem (`friends`).
    pub fn stem(&self) -> String {
        Path::new(&self.name).file_stem().map_or_else(
            || self.name.replace(['/', ':'], "_"),
            |s| s.to_string_lossy().into_owned(),
        )
    }
}

/// The held-out photos' centre crops of side `size` (a multiple of the scale), degraded by the
/// schedule's degradation with a fixed seed per photo.
///
/// # Errors
/// [`EngineError::Data`] when the photos do not load or degrade.
pub fn eval_pairs(experiment: &Experiment, size: usize) -> Result<Vec<EvalPair>, EngineError> {
    let data_err = |e: framer_data::DataError| EngineError::Data(e.to_string());
    let degrader = Degrader::new(experiment.degradation.clone()).map_err(data_err)?;
    let scale = experiment.data.scale;
    framer_data::embedded::held_out()
        .map_err(data_err)?
        .into_iter()
        .enumerate()
        .map(|(i, photo)| {
            let (w, h) = (photo.image.width(), photo.image.height());
            let side = size.min(w).min(h) / scale * scale;
            let hr = photo
                .image
                .crop((w - side) / 2, (h - side) / 2, side, side)
                .map_err(data_err)?;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1000 + i as u64);
            let pair = degrader.degrade(&hr, &mut rng).map_err(data_err)?;
            let lr_upsampled = upsample_bicubic(&pair.lr, scale).map_err(data_err)?;
            Ok(EvalPair {
                name: photo.name,
                hr,
                lr: pair.lr,
                lr_upsampled,
            })
        })
        .collect()
}

/// Super-resolves `pair`'s upsampled LR image tile by tile (tiles of the training crop size,
/// overlapping by a quarter, Gaussian blending) with `predict`, the run's sampler.
fn super_resolve_pair<B: Backend>(
    experiment: &Experiment,
    objective: &Objective,
    strength: f64,
    pair_index: usize,
    lr_upsampled: &Image,
    device: &B::Device,
    predict: &dyn Fn(Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 4>) -> Tensor<B, 4>,
) -> Result<Image, EngineError> {
    let tile = experiment.data.crop_size;
    let config = TileConfig::new(tile, tile / 4, 1);
    let seed = experiment.train.seed ^ 0x5eed;
    let mut sr = process_tiled_image::<B, _, std::convert::Infallible>(
        lr_upsampled,
        device,
        &config,
        |tile, region| {
            let condition = tile.mul_scalar(2.0).sub_scalar(1.0);
            // the same noise for every run: seeded by the evaluation, not by the run
            let noise = crate::commands::normal_noise::<B>(
                condition.dims(),
                framer_eval::sr::tile_seed(seed, pair_index, region.index),
                device,
            );
            let out = sample_from(
                objective,
                condition.clone(),
                noise,
                strength,
                experiment.objective.sample_steps,
                |x, t| predict(x, t, condition.clone()),
            );
            Ok(out.add_scalar(1.0).div_scalar(2.0))
        },
    )
    .map_err(|e| EngineError::Model(format!("super-resolving {}: {e}", pair_index)))?;
    sr.clamp01();
    Ok(sr)
}

/// What one trained run produced: its summary and its super-resolved held-out crops.
#[derive(Debug, Clone)]
pub struct TrainedRun {
    /// The training run.
    pub summary: RunSummary,
    /// The held-out crops super-resolved by the run's EMA weights (or its weights).
    pub sr: Vec<Image>,
}

/// Trains one run and super-resolves the evaluation pairs with its EMA weights (or its weights
/// when the run keeps no EMA).
fn train_and_super_resolve<B, M>(
    experiment: &Experiment,
    model: Framed<B, M>,
    out: &Path,
    pairs: &[EvalPair],
    strength: f64,
    device: &B::Device,
) -> Result<TrainedRun, EngineError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SrModel<B>,
    M::InnerModule: SrModel<B::InnerBackend>,
{
    let source = Box::new(DegradedPhotos::from_experiment(experiment)?);
    let mut trainer = Trainer::new(experiment, model, source, out, device)?;
    let summary = trainer.run(None)?;
    let inference = match trainer.ema() {
        Some(ema) => ema.clone(),
        None => trainer.model().valid(),
    };
    let objective = Objective::new(&experiment.objective);
    let predict = |x, t, c| inference.forward((x, t, c));
    let sr = pairs
        .iter()
        .enumerate()
        .map(|(i, pair)| {
            super_resolve_pair::<B::InnerBackend>(
                experiment,
                &objective,
                strength,
                i,
                &pair.lr_upsampled,
                device,
                &predict,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TrainedRun { summary, sr })
}

/// One run of the main job, with the model its `[model]` describes: a real run folder (the
/// resolved schedule and `model.toml`, so `framer sr --run` and `framer analyze --run` work on it),
/// trained, then the held-out photos super-resolved.
struct Variant<'a, B: AutodiffBackend> {
    experiment: &'a Experiment,
    out: &'a Path,
    pairs: &'a [EvalPair],
    strength: f64,
    device: &'a B::Device,
}

impl<B: AutodiffBackend> ConfigTask for Variant<'_, B> {
    type Output = Result<TrainedRun, EngineError>;

    fn run<C: ModelConfig>(self, config: C) -> Self::Output {
        let (experiment, _) = self.experiment.with_model_defaults(C::loss_defaults());
        let model = build_framed::<B, C>(&config, &experiment, self.device)?;
        prepare_run_dir(self.out, &experiment, &config)?;
        train_and_super_resolve(&experiment, model, self.out, self.pairs, self.strength, self.device)
    }
}

/// One run to train: its schedule and its folder.
#[derive(Debug, Clone)]
pub struct RunJob {
    /// The run's label in messages.
    pub label: String,
    /// The run's schedule.
    pub experiment: Experiment,
    /// The run folder.
    pub out: PathBuf,
}

/// Trains `jobs` and super-resolves `pairs` with each, `threads` runs at a time (one thread each);
/// the results come back in the order of `jobs`.
///
/// # Errors
/// The first run's error, in the order of `jobs`; a panicking run thread is reported as an error.
pub fn train_runs<B: AutodiffBackend>(
    jobs: &[RunJob],
    pairs: &[EvalPair],
    strength: f64,
    threads: usize,
    device: &B::Device,
) -> Result<Vec<TrainedRun>, EngineError> {
    let one = |job: &RunJob| -> Result<TrainedRun, EngineError> {
        let started = std::time::Instant::now();
        let variant = Variant::<B> {
            experiment: &job.experiment,
            out: &job.out,
            pairs,
            strength,
            device,
        };
        let run = Builtin::visit(&job.experiment, variant)??;
        println!(
            "  {}: {} steps in {:.0} s (training {:.0} s), final loss {}",
            job.label,
            run.summary.end_step,
            started.elapsed().as_secs_f64(),
            run.summary.seconds,
            run.summary.final_loss.map_or("n/a".into(), |l| format!("{l:.5}")),
        );
        Ok(run)
    };
    let threads = threads.max(1);
    if threads == 1 {
        return jobs.iter().map(one).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<TrainedRun, EngineError>>> = (0..jobs.len()).map(|_| None).collect();
    let slots = std::sync::Mutex::new(&mut results);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.min(jobs.len()))
            .map(|_| {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(job) = jobs.get(i) else { break };
                        let result = one(job);
                        if let Ok(mut slots) = slots.lock() {
                            slots[i] = Some(result);
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            let _ = handle.join();
        }
    });
    results
        .into_iter()
        .zip(jobs)
        .map(|(r, job)| {
            r.unwrap_or_else(|| {
                Err(EngineError::Model(format!(
                    "the run {} stopped without a result (its thread panicked)",
                    job.label
                )))
            })
        })
        .collect()
}

/// Per-image and mean scores of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoScores {
    /// Run label.
    pub name: String,
    /// `(metric, mean)` for PSNR-Y, SSIM-Y, and NIQE on crops of at least 96 pixels plus borders.
    pub means: Vec<(Metric, f64)>,
    /// `(metric, value)` of each image, in the order of the pairs.
    pub per_image: Vec<Vec<(Metric, f64)>>,
}

impl DemoScores {
    /// The mean of `metric`, if scored.
    pub fn mean(&self, metric: Metric) -> Option<f64> {
        self.means.iter().find(|(m, _)| *m == metric).map(|(_, v)| *v)
    }
}

/// What the main job produced.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// The two training runs.
    pub runs: [RunSummary; 2],
    /// Scores of baseline, +FRAMER and LR-upsampled (bicubic).
    pub scores: Vec<DemoScores>,
    /// The comparison table as printed.
    pub table: String,
    /// Seconds from the start of training to the end of the report.
    pub seconds: f64,
    /// The report folder.
    pub out: PathBuf,
}

/// Scores `images` against the HR crops of `pairs`: PSNR-Y and SSIM-Y (and NIQE on crops large
/// enough), border `crop_border`.
///
/// # Errors
/// [`EngineError::Data`] when a metric fails.
pub fn score(
    name: &str,
    images: &[Image],
    pairs: &[EvalPair],
    crop_border: usize,
) -> Result<DemoScores, EngineError> {
    let metric_err = |e: framer_metrics::MetricError| EngineError::Data(e.to_string());
    // NIQE needs 96×96 blocks: scored only on crops that large
    let side = pairs.first().map_or(0, |p| p.hr.width().min(p.hr.height()));
    let metrics: Vec<Metric> = if side >= 96 + 2 * crop_border {
        vec![Metric::PsnrY, Metric::SsimY, Metric::Niqe]
    } else {
        vec![Metric::PsnrY, Metric::SsimY]
    };
    let mut sums = vec![0.0; metrics.len()];
    let mut per_image = Vec::new();
    for (image, pair) in images.iter().zip(pairs) {
        let (sr, gt) = (image, &pair.hr);
        let mut row = Vec::new();
        for (k, m) in metrics.iter().enumerate() {
            let v = m.compute(sr, Some(gt), crop_border).map_err(metric_err)?;
            sums[k] += v;
            row.push((*m, v));
        }
        per_image.push(row);
    }
    let n = images.len().max(1) as f64;
    Ok(DemoScores {
        name: name.into(),
        means: metrics.iter().zip(sums).map(|(m, s)| (*m, s / n)).collect(),
        per_image,
    })
}

/// Runs the main job on backend `B`.
///
/// # Errors
/// Schedule, data, training, metric and I/O errors, each naming what failed.
pub fn run_demo<B: AutodiffBackend>(
    options: &DemoOptions,
    device: &B::Device,
) -> Result<DemoReport, EngineError> {
    let started = std::time::Instant::now();
    let io = |p: &Path, e: std::io::Error| EngineError::Io(format!("{}: {e}", p.display()));
    std::fs::create_dir_all(&options.out).map_err(|e| io(&options.out, e))?;
    let threads = options.threads();
    let progress = threads == 1;
    let variants = [VariantKind::Baseline, VariantKind::Framer];
    let jobs: Vec<RunJob> = variants
        .iter()
        .map(|&v| {
            Ok(RunJob {
                label: v.label().into(),
                experiment: experiment(options, v, options.seed, progress)?,
                out: options.out.join(v.dir()),
            })
        })
        .collect::<Result<_, EngineError>>()?;
    let pairs = eval_pairs(&jobs[0].experiment, options.eval_size)?;
    println!(
        "main job: tiny {}, {}, {} steps × batch {} at {}² (×4), seed {}, λ = {}; {} held-out photos ({}² centre crops)",
        options.backbone.name(),
        options.objective.describe(),
        options.steps,
        options.batch_size,
        options.crop_size,
        options.seed,
        options.lambda,
        pairs.len(),
        pairs.first().map_or(0, |p| p.hr.width()),
    );
    println!(
        "training baseline and +FRAMER ({})",
        if threads == 1 {
            "one after the other".to_string()
        } else {
            format!("side by side, {threads} threads")
        }
    );
    let mut runs = train_runs::<B>(&jobs, &pairs, options.strength, threads, device)?;
    let (run_b, run_a) = match (runs.pop(), runs.pop()) {
        (Some(b), Some(a)) => (b, a),
        _ => return Err(EngineError::Model("the main job's runs returned no result".into())),
    };

    let crop_border = jobs[0].experiment.data.scale;
    let bicubic: Vec<Image> = pairs.iter().map(|p| p.lr_upsampled.clone()).collect();
    // relative changes are against the first column: the baseline
    let scores = vec![
        score("baseline", &run_a.sr, &pairs, crop_border)?,
        score("+FRAMER", &run_b.sr, &pairs, crop_border)?,
        score("bicubic", &bicubic, &pairs, crop_border)?,
    ];
    let summaries: Vec<framer_metrics::RunSummary> = scores
        .iter()
        .map(|s| framer_metrics::RunSummary {
            name: s.name.clone(),
            images: pairs.len(),
            values: s.means.clone(),
        })
        .collect();
    let metric_err = |e: framer_metrics::MetricError| EngineError::Data(e.to_string());
    let table = comparison_table(&summaries, TableFormat::Terminal).map_err(metric_err)?;
    for (format, file) in [
        (TableFormat::Markdown, "comparison.md"),
        (TableFormat::Csv, "comparison.csv"),
    ] {
        let path = options.out.join(file);
        let text = comparison_table(&summaries, format).map_err(metric_err)?;
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    }
    let samples = options.out.join("samples");
    std::fs::create_dir_all(&samples).map_err(|e| io(&samples, e))?;
    for (i, pair) in pairs.iter().enumerate() {
        let panel = |label: &str, image: &Image, s: Option<&DemoScores>| crate::figure::Panel {
            label: label.into(),
            image: image.clone(),
            caption: s.map(|s| crate::figure::score_caption(&s.per_image[i])),
        };
        let panels = vec![
            panel("LR (nearest ×4)", &nearest(&pair.lr, crop_border)?, None),
            panel("bicubic", &pair.lr_upsampled, Some(&scores[2])),
            panel("baseline", &run_a.sr[i], Some(&scores[0])),
            panel("+FRAMER", &run_b.sr[i], Some(&scores[1])),
            panel("HR", &pair.hr, None),
        ];
        let path = samples.join(format!("{}.png", pair.stem()));
        crate::figure::comparison_figure(&pair.stem(), &panels, &path)?;
    }
    plot_losses(
        &options.out.join("loss.png"),
        &[("baseline", &run_a.summary), ("+FRAMER", &run_b.summary)],
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let sampler = match options.objective {
        DemoObjective::OneStep { .. } => "one step".to_string(),
        DemoObjective::Diffusion => format!(
            "{} sampler steps from strength {}",
            options.sample_steps, options.strength
        ),
    };
    println!(
        "\nheld-out photos, {sampler} (PSNR/SSIM on Y, border {crop_border}):\n{table}"
    );
    let beats = |s: &DemoScores| {
        [Metric::PsnrY, Metric::SsimY]
            .iter()
            .all(|&m| s.mean(m).zip(scores[2].mean(m)).is_some_and(|(a, b)| a > b))
    };
    println!(
        "{}",
        match (beats(&scores[0]), beats(&scores[1])) {
            (true, true) => "both trained variants beat bicubic on PSNR-Y and SSIM-Y".to_string(),
            (a, b) => format!(
                "bicubic is not beaten on both PSNR-Y and SSIM-Y by: {}{}",
                if a { "" } else { "baseline " },
                if b { "" } else { "+FRAMER" }
            ),
        }
    );
    println!("main job done in {seconds:.0} s; report: {}", options.out.display());
    println!(
        "next: framer sr --run {} <your LR image or folder> <output>; framer analyze --run {}",
        options.out.join("framer").display(),
        options.out.join("framer").display()
    );
    Ok(DemoReport {
        runs: [run_a.summary, run_b.summary],
        scores,
        table,
        seconds,
        out: options.out.clone(),
    })
}

/// `image` enlarged `factor` times by pixel repetition (to show the LR pixels at the HR size).
///
/// # Errors
/// [`EngineError::Data`] for an image that cannot be built.
pub fn nearest(image: &Image, factor: usize) -> Result<Image, EngineError> {
    let (w, h) = (image.width(), image.height());
    let (bw, bh) = (w * factor, h * factor);
    let src = image.data();
    let mut data = vec![0f32; 3 * bw * bh];
    for c in 0..3 {
        for y in 0..bh {
            for x in 0..bw {
                data[c * bw * bh + y * bw + x] = src[c * w * h + (y / factor) * w + x / factor];
            }
        }
    }
    Image::from_chw(bw, bh, data).map_err(|e| EngineError::Data(e.to_string()))
}

/// The base (denoising or one-step) loss of each run over training, `(step, loss)`.
///
/// # Errors
/// The metrics file's read errors.
pub fn loss_curve(run: &RunSummary) -> Result<Vec<(f64, f64)>, EngineError> {
    let records = metrics::read(&run.metrics, crate::schedule::LogFormat::Jsonl)?;
    Ok(records
        .iter()
        .filter(|r| !r.skipped)
        .map(|r| (r.step as f64, r.base_loss))
        .collect())
}

/// A moving average over `window` points (the loss of single steps is noisy).
pub fn smooth(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let window = window.max(1);
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, _))| {
            let lo = i.saturating_sub(window - 1);
            let part = &points[lo..=i];
            (x, part.iter().map(|p| p.1).sum::<f64>() / part.len() as f64)
        })
        .collect()
}

/// `loss.png`: the base loss of each run over training (moving average over 20 steps).
fn plot_losses(path: &Path, runs: &[(&str, &RunSummary)]) -> Result<(), EngineError> {
    let series = runs
        .iter()
        .map(|(name, run)| {
            Ok(framer_eval::plot::Series::new(*name, smooth(&loss_curve(run)?, 20)))
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    framer_eval::plot::LinePlot::new("base loss (moving average over 20 steps)", "step", "loss")
        .with_series(series)
        .save_png(path)
        .map_err(|e| EngineError::Io(format!("{}: {e}", path.display())))
}
