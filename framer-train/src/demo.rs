//! The main job: train a tiny backbone on the embedded photos twice, without and with FRAMER (same
//! seed, same step budget), super-resolve held-out photos with both, and compare.
//!
//! ```text
//! cargo run --release                          # tiny DiT, the default budget (a few minutes on 2 cores)
//! cargo run --release -- demo --backbone unet  # the U-Net instead
//! cargo run --release -- demo --steps 2000     # a longer run
//! ```
//!
//! Writes a report folder: `baseline/` and `framer/` (each run's schedule, metrics, loss plot and
//! checkpoints), `samples/<photo>.png` (LR upsampled | baseline | +FRAMER | HR, side by side),
//! `comparison.md` / `comparison.csv` and `loss.png` (both training curves).

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::tensor::{Tensor, TensorData, backend::AutodiffBackend, backend::Backend};
use framer::Framed;
use framer_data::{Degrader, Image, upsample_bicubic};
use framer_metrics::{Metric, MetricImage, TableFormat, comparison_table};
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
    fn name(self) -> &'static str {
        match self {
            Self::Dit => "dit",
            Self::Unet => "unet",
        }
    }

    fn objective(self) -> &'static str {
        match self {
            Self::Dit => "kind = \"rectified_flow\"\nsigma_sampling = \"logit_normal\"",
            Self::Unet => "kind = \"v_prediction\"",
        }
    }
}

/// Settings of the main job.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOptions {
    /// Backbone to train.
    pub backbone: DemoBackbone,
    /// Training steps of each run.
    pub steps: u64,
    /// Batch size.
    pub batch_size: usize,
    /// HR crop side in pixels (a multiple of 4).
    pub crop_size: usize,
    /// Sampler steps at inference.
    pub sample_steps: usize,
    /// Where sampling starts, in (0, 1]: 1 starts from pure noise; below 1 from the LR image noised
    /// to that level (σ for rectified flow, the matching DDPM step), as SR diffusion samplers that
    /// start from the LR image do. Tiny models trained for minutes need a low start.
    pub strength: f64,
    /// Seed of both runs and of the evaluation.
    pub seed: u64,
    /// The FRAMER weight λ of the second run.
    pub lambda: f64,
    /// Report folder.
    pub out: PathBuf,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            backbone: DemoBackbone::Dit,
            steps: 300,
            batch_size: 4,
            crop_size: 64,
            sample_steps: 20,
            strength: 0.4,
            seed: 0,
            lambda: 0.1,
            out: PathBuf::from("report"),
        }
    }
}

/// The schedule of one run of the main job.
fn experiment(options: &DemoOptions, name: &str, framer: bool) -> Result<Experiment, EngineError> {
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
enabled = {framer}
lambda = {lambda}

[optimizer]
lr = 1e-3
max_grad_norm = 1.0

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
progress = true
"#,
        backbone = options.backbone.name(),
        crop = options.crop_size,
        objective = options.backbone.objective(),
        sample_steps = options.sample_steps,
        lambda = options.lambda,
        steps = options.steps,
        batch = options.batch_size,
        seed = options.seed,
    );
    schedule::parse(&text, &format!("<main job: {name}>"), Path::new("."))
        .map_err(|e| EngineError::Model(format!("the main job's schedule is invalid: {e}")))
}

/// One held-out evaluation pair: the HR centre crop, and its degraded LR upsampled back.
struct EvalPair {
    name: String,
    hr: Image,
    lr_upsampled: Image,
}

fn eval_pairs(experiment: &Experiment) -> Result<Vec<EvalPair>, EngineError> {
    let data_err = |e: framer_data::DataError| EngineError::Data(e.to_string());
    let degrader = Degrader::new(experiment.degradation.clone()).map_err(data_err)?;
    let crop = experiment.data.crop_size;
    let scale = experiment.data.scale;
    framer_data::embedded::held_out()
        .map_err(data_err)?
        .into_iter()
        .enumerate()
        .map(|(i, photo)| {
            let (w, h) = (photo.image.width(), photo.image.height());
            let hr = photo
                .image
                .crop((w - crop.min(w)) / 2, (h - crop.min(h)) / 2, crop, crop)
                .map_err(data_err)?;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1000 + i as u64);
            let pair = degrader.degrade(&hr, &mut rng).map_err(data_err)?;
            let lr_upsampled = upsample_bicubic(&pair.lr, scale).map_err(data_err)?;
            Ok(EvalPair {
                name: photo.name,
                hr,
                lr_upsampled,
            })
        })
        .collect()
}

/// Images `[3, H, W]` in [0, 1] → a batch `[N, 3, H, W]` in [−1, 1].
fn to_batch<B: Backend>(images: &[&Image], device: &B::Device) -> Tensor<B, 4> {
    let (w, h) = (images[0].width(), images[0].height());
    let data: Vec<f32> = images
        .iter()
        .flat_map(|i| i.data().iter().map(|v| v * 2.0 - 1.0))
        .collect();
    Tensor::from_data(TensorData::new(data, [images.len(), 3, h, w]), device)
}

/// A batch in [−1, 1] → images in [0, 1] (clamped).
fn from_batch<B: Backend>(batch: Tensor<B, 4>) -> Result<Vec<Image>, EngineError> {
    let [n, c, h, w] = batch.dims();
    let values: Vec<f32> = batch
        .into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| EngineError::Model(format!("{e:?}")))?;
    (0..n)
        .map(|i| {
            let plane: Vec<f32> = values[i * c * h * w..(i + 1) * c * h * w]
                .iter()
                .map(|v| ((v + 1.0) / 2.0).clamp(0.0, 1.0))
                .collect();
            Image::from_chw(w, h, plane).map_err(|e| EngineError::Data(e.to_string()))
        })
        .collect()
}

/// Trains one run and super-resolves the evaluation pairs with its EMA weights (or its weights when
/// the run keeps no EMA).
fn train_and_super_resolve<B, M>(
    experiment: &Experiment,
    model: Framed<B, M>,
    out: &Path,
    pairs: &[EvalPair],
    strength: f64,
    device: &B::Device,
) -> Result<(RunSummary, Vec<Image>), EngineError>
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
    let conditions: Vec<&Image> = pairs.iter().map(|p| &p.lr_upsampled).collect();
    let condition = to_batch::<B::InnerBackend>(&conditions, device);
    // the same noise for both runs: seeded by the evaluation, not by the run
    let noise = crate::commands::normal_noise::<B::InnerBackend>(
        condition.dims(),
        experiment.train.seed ^ 0x5eed,
        device,
    );
    let sr = sample_from(
        &objective,
        condition.clone(),
        noise,
        strength,
        experiment.objective.sample_steps,
        |x, t| inference.forward((x, t, condition.clone())),
    );
    Ok((summary, from_batch(sr)?))
}

/// One variant of the main job, with the model its `[model]` describes: a real run folder (the
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
    type Output = Result<(RunSummary, Vec<Image>), EngineError>;

    fn run<C: ModelConfig>(self, config: C) -> Self::Output {
        let (experiment, _) = self.experiment.with_model_defaults(C::loss_defaults());
        let model = build_framed::<B, C>(&config, &experiment, self.device)?;
        prepare_run_dir(self.out, &experiment, &config)?;
        train_and_super_resolve(&experiment, model, self.out, self.pairs, self.strength, self.device)
    }
}

fn run_variant<B: AutodiffBackend>(
    experiment: &Experiment,
    out: &Path,
    pairs: &[EvalPair],
    strength: f64,
    device: &B::Device,
) -> Result<(RunSummary, Vec<Image>), EngineError> {
    let variant = Variant::<B> {
        experiment,
        out,
        pairs,
        strength,
        device,
    };
    Builtin::visit(experiment, variant)?
}

/// Per-image and mean scores of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoScores {
    /// Run label.
    pub name: String,
    /// `(metric, mean)` for PSNR-Y, SSIM-Y, and NIQE on crops of at least 96 pixels plus borders.
    pub means: Vec<(Metric, f64)>,
}

/// What the main job produced.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// The two training runs.
    pub runs: [RunSummary; 2],
    /// Scores of LR-upsampled (bicubic), baseline and +FRAMER.
    pub scores: Vec<DemoScores>,
    /// The comparison table as printed.
    pub table: String,
    /// The report folder.
    pub out: PathBuf,
}

fn score(
    name: &str,
    images: &[Image],
    pairs: &[EvalPair],
    crop_border: usize,
) -> Result<DemoScores, EngineError> {
    let metric_err = |e: framer_metrics::MetricError| EngineError::Data(e.to_string());
    let to_metric =
        |i: &Image| MetricImage::from_chw(i.width(), i.height(), i.data()).map_err(metric_err);
    // NIQE needs 96×96 blocks: scored only on crops that large
    let side = pairs.first().map_or(0, |p| p.hr.width().min(p.hr.height()));
    let metrics: Vec<Metric> = if side >= 96 + 2 * crop_border {
        vec![Metric::PsnrY, Metric::SsimY, Metric::Niqe]
    } else {
        vec![Metric::PsnrY, Metric::SsimY]
    };
    let mut sums = vec![0.0; metrics.len()];
    for (image, pair) in images.iter().zip(pairs) {
        let (sr, gt) = (to_metric(image)?, to_metric(&pair.hr)?);
        for (k, m) in metrics.iter().enumerate() {
            sums[k] += m.compute(&sr, Some(&gt), crop_border).map_err(metric_err)?;
        }
    }
    let n = images.len().max(1) as f64;
    Ok(DemoScores {
        name: name.into(),
        means: metrics.iter().zip(sums).map(|(m, s)| (*m, s / n)).collect(),
    })
}

/// Side by side: `[3, H, k·W]` from `k` images of the same size.
fn side_by_side(images: &[&Image]) -> Result<Image, EngineError> {
    let (w, h) = (images[0].width(), images[0].height());
    let k = images.len();
    let mut data = vec![0f32; 3 * h * w * k];
    for (j, image) in images.iter().enumerate() {
        let src = image.data();
        for c in 0..3 {
            for y in 0..h {
                let dst = c * h * w * k + y * w * k + j * w;
                data[dst..dst + w].copy_from_slice(&src[c * h * w + y * w..c * h * w + y * w + w]);
            }
        }
    }
    Image::from_chw(w * k, h, data).map_err(|e| EngineError::Data(e.to_string()))
}

/// Runs the main job on backend `B`.
pub fn run_demo<B: AutodiffBackend>(
    options: &DemoOptions,
    device: &B::Device,
) -> Result<DemoReport, EngineError> {
    let io = |p: &Path, e: std::io::Error| EngineError::Io(format!("{}: {e}", p.display()));
    std::fs::create_dir_all(&options.out).map_err(|e| io(&options.out, e))?;
    let baseline = experiment(options, "baseline", false)?;
    let with_framer = experiment(options, "framer", true)?;
    let pairs = eval_pairs(&baseline)?;
    println!(
        "main job: tiny {} on the embedded photos, {} steps × batch {} at {}² (×4), seed {}; {} held-out photos",
        options.backbone.name(),
        options.steps,
        options.batch_size,
        options.crop_size,
        options.seed,
        pairs.len()
    );
    println!("[1/2] baseline (no FRAMER)");
    let (run_a, sr_a) = run_variant::<B>(
        &baseline,
        &options.out.join("baseline"),
        &pairs,
        options.strength,
        device,
    )?;
    println!("[2/2] +FRAMER (λ = {})", options.lambda);
    let (run_b, sr_b) = run_variant::<B>(
        &with_framer,
        &options.out.join("framer"),
        &pairs,
        options.strength,
        device,
    )?;

    let crop_border = baseline.data.scale;
    let bicubic: Vec<Image> = pairs.iter().map(|p| p.lr_upsampled.clone()).collect();
    // relative changes are against the first column: the baseline
    let scores = vec![
        score("baseline", &sr_a, &pairs, crop_border)?,
        score("+FRAMER", &sr_b, &pairs, crop_border)?,
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
    for ((pair, a), b) in pairs.iter().zip(&sr_a).zip(&sr_b) {
        // names look like `embedded:held_out/friends.jpg`: keep the file stem
        let stem = Path::new(&pair.name).file_stem().map_or_else(
            || pair.name.replace(['/', ':'], "_"),
            |s| s.to_string_lossy().into_owned(),
        );
        let path = samples.join(format!("{stem}.png"));
        side_by_side(&[&pair.lr_upsampled, a, b, &pair.hr])?
            .save_png(&path)
            .map_err(|e| EngineError::Data(e.to_string()))?;
    }
    plot_both(&options.out, &run_a, &run_b)?;
    println!(
        "\nheld-out photos, {} sampler steps from strength {} (PSNR/SSIM on Y, border {crop_border}):\n{table}",
        options.sample_steps, options.strength
    );
    println!("report: {}", options.out.display());
    Ok(DemoReport {
        runs: [run_a, run_b],
        scores,
        table,
        out: options.out.clone(),
    })
}

/// `loss.png`: the base (denoising) loss of both runs over training.
fn plot_both(out: &Path, a: &RunSummary, b: &RunSummary) -> Result<(), EngineError> {
    let read = |run: &RunSummary| -> Result<Vec<(f64, f64)>, EngineError> {
        let records = metrics::read(&run.metrics, crate::schedule::LogFormat::Jsonl)?;
        Ok(records
            .iter()
            .filter(|r| !r.skipped)
            .map(|r| (r.step as f64, r.base_loss))
            .collect())
    };
    let series = vec![
        framer_eval::plot::Series::new("baseline", read(a)?),
        framer_eval::plot::Series::new("+FRAMER", read(b)?),
    ];
    let path = out.join("loss.png");
    framer_eval::plot::LinePlot::new("denoising loss", "step", "loss")
        .with_series(series)
        .save_png(&path)
        .map_err(|e| EngineError::Io(format!("{}: {e}", path.display())))
}
