//! `framer sr`: super-resolve an image or a folder with a trained run.
//!
//! Each LR image is upsampled bicubically by the run's `[data] scale`, cut into overlapping tiles
//! of the training crop size, and every tile is sampled from the noised upsampled LR image
//! ([`crate::demo::sample_from`]) with per-tile seeds; the tiles are blended, colour-fixed against
//! the upsampled LR and written (PNG, or JPEG / BMP for such an output file name). Arguments are
//! checked before the model is loaded, no output is written over an input, and a folder is
//! processed to the end even when one of its images fails.
//!
//! A run trained in a VAE's latent space (`[latent]`) samples each tile in that space: the
//! upsampled LR tile is encoded (posterior mean, scaled), sampled from, and decoded; the tile side
//! must then be a multiple of the VAE's downsampling factor.

use std::path::PathBuf;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use framer::Framed;
use framer_backbones::AutoencoderKL;
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
    /// An image file (`.png`, `.jpg`, `.jpeg`, `.bmp`; for one input image) or a folder.
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

impl SrSettings {
    /// Checks `--strength` (finite, in (0, 1]) and `--steps` (at least 1).
    ///
    /// # Errors
    /// [`CommandError::Invalid`] naming the flag and the accepted range.
    pub fn validate(&self) -> Result<(), CommandError> {
        if !(self.strength.is_finite() && self.strength > 0.0 && self.strength <= 1.0) {
            return Err(CommandError::Invalid(format!(
                "--strength {}: expected a number in (0, 1] (1 starts from pure noise, below 1 \
                 from the upsampled LR noised to that level)",
                self.strength
            )));
        }
        if self.steps == Some(0) {
            return Err(CommandError::Invalid(
                "--steps 0: the sampler needs at least 1 step".into(),
            ));
        }
        Ok(())
    }
}

/// Super-resolves `settings.input` with the model of `run` on backend `B`; returns the images
/// written.
///
/// No output is written over an input. An image that fails does not stop the others; the error
/// then names each failed input and lists the images that were written.
///
/// # Errors
/// [`CommandError`] naming the path for a missing input, a file that is not an image, an output
/// that would overwrite an input, an unreadable checkpoint, an unknown colour fix, bad
/// `--strength` / `--steps`, a tile the model cannot take or larger than the images need, or a
/// bad tiling; and, after the other images, for each image that failed.
pub fn run_sr<R: ModelRegistry, B: Backend>(
    run: &RunFiles,
    settings: &SrSettings,
    device: &B::Device,
) -> Result<Vec<PathBuf>, CommandError> {
    settings.validate()?;
    let jobs = plan_jobs(&settings.input, &settings.output)?;
    let crop = run.experiment.data.crop_size;
    let scale = run.experiment.data.scale;
    let tile = settings.tile.unwrap_or(crop);
    // a tile beyond both the training crop and the largest image only pads (and allocates) more
    let longest = jobs
        .iter()
        .filter_map(|j| {
            image::ImageReader::open(&j.input)
                .ok()?
                .into_dimensions()
                .ok()
        })
        .map(|(w, h)| w.max(h) as usize * scale)
        .max()
        .unwrap_or(0);
    if tile > crop.max(longest) {
        return Err(CommandError::Invalid(format!(
            "--tile {tile} is larger than needed: the largest image is {longest} px at the SR size \
             and the model was trained on {crop} px crops; give at most {}",
            crop.max(longest)
        )));
    }
    let mut options =
        SrOptions::new(scale, tile).with_color_fix(ColorFix::parse(&settings.color_fix)?);
    if let Some(overlap) = settings.overlap {
        if overlap >= tile {
            return Err(CommandError::Invalid(format!(
                "--overlap {overlap} must be smaller than the tile side ({tile})"
            )));
        }
        options = options.with_overlap(overlap);
    }
    options.validate()?;
    let vae = match &run.experiment.latent {
        Some(latent) => {
            let f = latent.vae_config().downscale_factor();
            if !tile.is_multiple_of(f) {
                return Err(CommandError::Invalid(format!(
                    "--tile {tile}: the run works in the latent space of the `{}` VAE, which \
                     downsamples by {f}; give a multiple of {f}",
                    latent.preset
                )));
            }
            Some(super::encode::load_vae::<B>(&run.experiment, device)?)
        }
        None => None,
    };
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
            crop,
            vae,
            device,
        },
    )
}

/// Whether `model` takes `[1, channels, side, side]` inputs: one prediction on zeros, with a panic
/// of the backend (a side the patches or the down-sampling cannot divide) caught and kept quiet.
fn probe_tile<B: Backend, M: SrModel<B>>(
    model: &Framed<B, M>,
    [channels, side]: [usize; 2],
    device: &B::Device,
) -> Result<(), String> {
    let x = Tensor::<B, 4>::zeros([1, channels, side, side], device);
    let t = Tensor::<B, 1>::ones([1], device);
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        model.forward((x.clone(), t, x)).dims()
    }));
    std::panic::set_hook(hook);
    match result {
        Ok(dims) if dims == [1, channels, side, side] => Ok(()),
        Ok(dims) => Err(format!("it returns {dims:?}")),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("it fails")
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()),
    }
}

struct SrTask<'a, B: Backend> {
    jobs: Vec<SrJob>,
    options: SrOptions,
    settings: &'a SrSettings,
    objective: Objective,
    steps: usize,
    crop: usize,
    /// The VAE of a latent-space run.
    vae: Option<AutoencoderKL<B>>,
    device: &'a B::Device,
}

impl<B: Backend> ModelTask<B> for SrTask<'_, B> {
    type Output = Vec<PathBuf>;

    fn run<M: SrModel<B>>(self, model: Framed<B, M>) -> Result<Vec<PathBuf>, CommandError> {
        let tile = self.options.tile;
        let model_tile = match &self.vae {
            Some(vae) => [vae.latent_channels, tile / vae.downscale_factor()],
            None => [3, tile],
        };
        if let Err(why) = probe_tile(&model, model_tile, self.device) {
            return Err(CommandError::Invalid(format!(
                "--tile {tile}: the model cannot take {tile}×{tile} tiles ({why}); it was trained \
                 on {crop}×{crop} crops (--tile {crop} works)",
                crop = self.crop
            )));
        }
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
        let vae = self.vae.as_ref();
        let report = super_resolve_jobs::<B, _, framer_backbones::BackboneError>(
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
                let mut condition = lr_up.mul_scalar(2.0).sub_scalar(1.0);
                if let Some(vae) = vae {
                    condition = vae.encode(condition, None)?;
                }
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
                let sr = match vae {
                    Some(vae) => vae.decode(sr)?,
                    None => sr,
                };
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
        if report.failed.is_empty() {
            return Ok(report.written);
        }
        let failed: Vec<String> = report
            .failed
            .iter()
            .map(|(input, e)| format!("{}: {e}", input.display()))
            .collect();
        let written: Vec<String> = report
            .written
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        Err(CommandError::Invalid(format!(
            "{} of {} images failed:\n  {}\nwritten ({}):{}",
            report.failed.len(),
            self.jobs.len(),
            failed.join("\n  "),
            written.len(),
            if written.is_empty() {
                " none".to_string()
            } else {
                format!("\n  {}", written.join("\n  "))
            }
        )))
    }
}
