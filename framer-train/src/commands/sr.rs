//! `framer sr`: super-resolve an image or a folder with a trained run.
//!
//! Each LR image is upsampled bicubically by the run's `[data] scale`, cut into overlapping tiles
//! of the training crop size, and every tile is sampled from the noised upsampled LR image
//! ([`crate::demo::sample_from`]) with per-tile seeds; the tiles are blended, colour-fixed against
//! the upsampled LR and written as PNG.

use std::path::PathBuf;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use framer::Framed;
use framer_eval::ColorFix;
use framer_eval::sr::{SrJob, SrOptions, plan_jobs, super_resolve_jobs, tile_seed};

use super::{CommandError, ModelTask, RunFiles, normal_noise, with_model};
use crate::demo::sample_from;
use crate::engine::{Objective, SrModel};
use crate::registry::ModelRegistry;

/// Settings of `framer sr`.
#[derive(Debug, Clone, PartialEq)]
pub struct SrSettings {
    /// An LR image file or a folder of them.
    pub input: PathBuf,
    /// A `.png` file (for one input image) or a folder.
    pub output: PathBuf,
    /// Sampler steps (default: the run's `[objective] sample_steps`).
    pub steps: Option<usize>,
    /// Where sampling starts in (0, 1]: 1 is pure noise, below 1 the upsampled LR noised to
    /// that level.
    pub strength: f64,
    /// Seed; each tile's noise is seeded by [`tile_seed`]`(seed, image, tile)`.
    pub seed: u64,
    /// Tile side at the SR resolution (default: the run's `[data] crop_size`).
    pub tile: Option<usize>,
    /// Overlap of neighbouring tiles (default: a quarter of the tile).
    pub overlap: Option<usize>,
    /// Colour fix: `adain`, `wavelet` or `none`.
    pub color_fix: String,
    /// Show a progress bar.
    pub progress: bool,
}

/// Super-resolves `settings.input` with the model of `run` on backend `B`; returns the PNGs
/// written.
///
/// # Errors
/// [`CommandError`] naming the path for a missing input, a file that is not an image, an
/// unreadable checkpoint, an unknown colour fix or a bad tiling.
pub fn run_sr<R: ModelRegistry, B: Backend>(
    run: &RunFiles,
    settings: &SrSettings,
    device: &B::Device,
) -> Result<Vec<PathBuf>, CommandError> {
    let jobs = plan_jobs(&settings.input, &settings.output)?;
    let tile = settings.tile.unwrap_or(run.experiment.data.crop_size);
    let mut options = SrOptions::new(run.experiment.data.scale, tile)
        .with_color_fix(ColorFix::parse(&settings.color_fix)?);
    if let Some(overlap) = settings.overlap {
        options = options.with_overlap(overlap);
    }
    options.validate()?;
    with_model::<R, B, _>(
        run,
        device,
        SrTask {
            jobs,
            options,
            settings,
            objective: Objective::new(&run.experiment.objective),
            steps: settings
                .steps
                .unwrap_or(run.experiment.objective.sample_steps),
            device,
        },
    )
}

struct SrTask<'a, B: Backend> {
    jobs: Vec<SrJob>,
    options: SrOptions,
    settings: &'a SrSettings,
    objective: Objective,
    steps: usize,
    device: &'a B::Device,
}

impl<B: Backend> ModelTask<B> for SrTask<'_, B> {
    type Output = Vec<PathBuf>;

    fn run<M: SrModel<B>>(self, model: Framed<B, M>) -> Result<Vec<PathBuf>, CommandError> {
        let bar = if self.settings.progress {
            indicatif::ProgressBar::new(self.jobs.len() as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} images  {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let (seed, strength, steps) = (self.settings.seed, self.settings.strength, self.steps);
        let objective = &self.objective;
        let written = super_resolve_jobs::<B, _, std::convert::Infallible>(
            &self.jobs,
            &self.options,
            self.device,
            |job, lr_up, region| {
                bar.set_message(format!(
                    "{} tile {}/{}",
                    job.input.display(),
                    region.index + 1,
                    region.count
                ));
                let condition = lr_up.mul_scalar(2.0).sub_scalar(1.0);
                let noise = normal_noise::<B>(
                    condition.dims(),
                    tile_seed(seed, job.index, region.index),
                    &condition.device(),
                );
                let sr: Tensor<B, 4> = sample_from(
                    objective,
                    condition.clone(),
                    noise,
                    strength,
                    steps,
                    |x, t| model.forward((x, t, condition.clone())),
                );
                Ok(sr.add_scalar(1.0).div_scalar(2.0))
            },
            |job| {
                bar.inc(1);
                bar.println(format!(
                    "{} → {}",
                    job.input.display(),
                    job.output.display()
                ));
            },
        )?;
        bar.finish_and_clear();
        Ok(written)
    }
}
