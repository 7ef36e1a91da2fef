//! `framer analyze`: what the layers of a trained run predict over the denoising steps (paper
//! Fig. 2 and Fig. 7) and, from its metrics log, the FAW/FAM weights over training (Fig. 9).
//!
//! Every student tap's prediction and the final prediction are turned into clean-image estimates
//! `x̂0` at each sampler step (rectified flow: `x̂0 = x_t − σ·v`; DDPM: `x̂0 = (x_t − √(1−ᾱ)·ε)/√ᾱ`,
//! or `√ᾱ·x_t − √(1−ᾱ)·v`), and [`framer_eval::analyze::SpectralAnalyzer`] measures their
//! low/high-band energy and cosine similarity to the final layer.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use framer_data::{Image, upsample_bicubic};
use framer_eval::analyze::{SpectralAnalyzer, SpectralConfig, read_training_weights};

use super::{CommandError, ModelTask, RunFiles, normal_noise, with_model};
use crate::demo::sample_from;
use crate::engine::{Objective, SrModel};
use crate::registry::ModelRegistry;
use framer::Framed;
use crate::schedule::{Experiment, LogFormat};

/// Settings of `framer analyze`.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzeSettings {
    /// The run folder (its metrics log is read for Fig. 9).
    pub run_dir: PathBuf,
    /// LR images to analyse (each upsampled ×scale, centre crop of the training size); default:
    /// the embedded held-out photos, degraded by the run's pipeline.
    pub images: Option<PathBuf>,
    /// Output folder.
    pub out: PathBuf,
    /// Sampler steps (default: the run's `[objective] sample_steps`).
    pub steps: Option<usize>,
    /// Where sampling starts in (0, 1] (1: pure noise, as in the paper's figures).
    pub strength: f64,
    /// Seed of the noise.
    pub seed: u64,
}

/// What `framer analyze` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzeReport {
    /// Files written.
    pub written: Vec<PathBuf>,
    /// Messages for the user (e.g. why Fig. 9 was not produced).
    pub notes: Vec<String>,
}

/// Runs the analysis of `run` on backend `B`.
///
/// # Errors
/// [`CommandError`] naming the path for a missing image folder, an image smaller than the
/// training crop after upsampling, or an unreadable checkpoint.
pub fn run_analyze<R: ModelRegistry, B: Backend>(
    run: &RunFiles,
    settings: &AnalyzeSettings,
    device: &B::Device,
) -> Result<AnalyzeReport, CommandError> {
    let exp = &run.experiment;
    if let Some(latent) = &exp.latent {
        return Err(CommandError::Invalid(format!(
            "{}: the run trains in the latent space of the `{}` VAE; `analyze` reads out the \
             layers of pixel-space runs only",
            run.schedule.display(),
            latent.preset
        )));
    }
    let conditions = match &settings.images {
        Some(dir) => images_from(dir, exp)?,
        None => held_out(exp)?,
    };
    let condition = to_batch::<B>(&conditions, device);
    let steps = settings.steps.unwrap_or(exp.objective.sample_steps).max(1);
    let analyzer = with_model::<R, B, _>(
        run,
        device,
        Trajectory {
            objective: Objective::new(&exp.objective),
            condition,
            steps,
            strength: settings.strength,
            seed: settings.seed,
        },
    )?;
    let mut written = analyzer.finish()?.write(&settings.out)?;
    let mut notes = Vec::new();
    let log = settings.run_dir.join(match exp.logging.format {
        LogFormat::Jsonl => "metrics.jsonl",
        LogFormat::Csv => "metrics.csv",
    });
    if exp.logging.format == LogFormat::Csv {
        notes.push(format!(
            "FAW/FAM over training (Fig. 9) not written: {} is CSV, which cannot carry per-layer \
             arrays (log with `[logging] format = \"jsonl\"`)",
            log.display()
        ));
    } else {
        match read_training_weights(&log) {
            Ok(weights) => written.extend(weights.write(&settings.out.join("training"))?),
            Err(e) => notes.push(format!(
                "FAW/FAM over training (Fig. 9) not written: the metrics log has no per-layer \
                 weights ({e})"
            )),
        }
    }
    Ok(AnalyzeReport { written, notes })
}

struct Trajectory<B: Backend> {
    objective: Objective,
    condition: Tensor<B, 4>,
    steps: usize,
    strength: f64,
    seed: u64,
}

impl<B: Backend> ModelTask<B> for Trajectory<B> {
    type Output = SpectralAnalyzer;

    fn run<M: SrModel<B>>(self, model: Framed<B, M>) -> Result<SpectralAnalyzer, CommandError> {
        let mut analyzer = SpectralAnalyzer::new(SpectralConfig::default());
        let noise = normal_noise::<B>(self.condition.dims(), self.seed, &self.condition.device());
        let mut step = 0;
        let mut failure: Option<CommandError> = None;
        let objective = &self.objective;
        let condition = self.condition.clone();
        sample_from(
            objective,
            condition.clone(),
            noise,
            self.strength,
            self.steps,
            |x, t| {
                let level = t
                    .clone()
                    .into_data()
                    .convert::<f32>()
                    .to_vec::<f32>()
                    .ok()
                    .and_then(|v| v.first().copied())
                    .unwrap_or(0.0) as f64;
                match model.forward_with_taps((x.clone(), t, condition.clone())) {
                    Ok((teacher, taps)) => {
                        let students = taps.students();
                        if failure.is_none() {
                            let x0 =
                                |p: Tensor<B, 4>| clean_estimate(objective, x.clone(), p, level);
                            let students: Vec<_> = students.into_iter().map(x0).collect();
                            if let Err(e) =
                                analyzer.add(step, level, x0(teacher.clone()), &students)
                            {
                                failure = Some(e.into());
                            }
                        }
                        step += 1;
                        teacher
                    }
                    Err(e) => {
                        failure.get_or_insert(e.into());
                        model.forward((x, t_like(level, &condition), condition.clone()))
                    }
                }
            },
        );
        match failure {
            Some(e) => Err(e),
            None => Ok(analyzer),
        }
    }
}

fn t_like<B: Backend>(level: f64, like: &Tensor<B, 4>) -> Tensor<B, 1> {
    let n = like.dims()[0];
    Tensor::from_data(TensorData::new(vec![level as f32; n], [n]), &like.device())
}

/// The clean estimate `x̂0` from the network output `prediction` at noise level `level`
/// (σ for rectified flow, `t / T` for DDPM).
///
/// # Shapes
/// `x_t`, `prediction` and the result: `[batch, channels, height, width]`.
pub fn clean_estimate<B: Backend>(
    objective: &Objective,
    x_t: Tensor<B, 4>,
    prediction: Tensor<B, 4>,
    level: f64,
) -> Tensor<B, 4> {
    match objective {
        Objective::RectifiedFlow { .. } | Objective::OneStep { .. } => x_t - prediction.mul_scalar(level),
        Objective::Ddpm {
            v_prediction,
            alphas_cumprod,
        } => {
            let total = alphas_cumprod.len();
            let index = ((level * total as f64).round() as usize).min(total.saturating_sub(1));
            let a = alphas_cumprod.get(index).copied().unwrap_or(1.0);
            let (sa, sb) = (a.sqrt(), (1.0 - a).sqrt());
            if *v_prediction {
                x_t.mul_scalar(sa) - prediction.mul_scalar(sb)
            } else {
                (x_t - prediction.mul_scalar(sb)).div_scalar(sa.max(1e-12))
            }
        }
    }
}

/// LR images of `dir`, each upsampled ×scale and centre-cropped to the training size.
fn images_from(dir: &Path, exp: &Experiment) -> Result<Vec<Image>, CommandError> {
    let jobs = framer_eval::sr::plan_jobs(dir, Path::new("unused"))?;
    let crop = exp.data.crop_size;
    jobs.iter()
        .map(|job| {
            let lr = Image::load(&job.input).map_err(|e| CommandError::Invalid(e.to_string()))?;
            let up = upsample_bicubic(&lr, exp.data.scale)
                .map_err(|e| CommandError::Invalid(format!("{}: {e}", job.input.display())))?;
            let (w, h) = (up.width(), up.height());
            if w < crop || h < crop {
                return Err(CommandError::Invalid(format!(
                    "{}: {}×{} upsampled ×{} is smaller than the training crop {crop}×{crop}",
                    job.input.display(),
                    lr.width(),
                    lr.height(),
                    exp.data.scale
                )));
            }
            up.crop((w - crop) / 2, (h - crop) / 2, crop, crop)
                .map_err(|e| CommandError::Invalid(format!("{}: {e}", job.input.display())))
        })
        .collect()
}

/// The embedded held-out photos: centre crops of the training size, degraded by the run's
/// pipeline and upsampled back (the main job's test pairs, [`crate::demo::eval_pairs`]).
fn held_out(exp: &Experiment) -> Result<Vec<Image>, CommandError> {
    let pairs = crate::demo::eval_pairs(exp, exp.data.crop_size)
        .map_err(|e| CommandError::Invalid(e.to_string()))?;
    Ok(pairs.into_iter().map(|p| p.lr_upsampled).collect())
}

/// Images `[3, H, W]` in [0, 1] → a batch `[N, 3, H, W]` in [−1, 1].
fn to_batch<B: Backend>(images: &[Image], device: &B::Device) -> Tensor<B, 4> {
    let (w, h) = (images[0].width(), images[0].height());
    let data: Vec<f32> = images
        .iter()
        .flat_map(|i| i.data().iter().map(|v| v * 2.0 - 1.0))
        .collect();
    Tensor::from_data(TensorData::new(data, [images.len(), 3, h, w]), device)
}
