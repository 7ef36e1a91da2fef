//! `framer encode`: precompute the training latents of a `[latent]` schedule, as the reference's
//! `make_latents.py` does.
//!
//! Every pass visits each training photo once (the schedule's `[data]` photos, crops and
//! `[degradation]`, seeded by `[train] seed`: draw `n` is the crop the pixel-space run would see at
//! draw `n`). For each crop the VAE of `[latent]` encodes the HR crop (posterior mean and
//! log-variance) and its LR image upsampled bicubically to the HR size (posterior mean); the
//! moments are written unscaled, one safetensors file per crop, and `latents.toml` last (see
//! [`crate::engine::latents`]).

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use framer_backbones::{AutoencoderKL, LoadOptions, load_safetensors};

use super::CommandError;
use crate::engine::latents::{self, LatentItem, LatentManifest};
use crate::engine::{DegradedPhotos, EngineError, PairSource};
use crate::schedule::Experiment;

/// Settings of `framer encode`.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeSettings {
    /// Output folder (default: the schedule's `[latent] latents`).
    pub out: Option<PathBuf>,
    /// Passes over the training photos (each pass draws a new crop and degradation per photo).
    pub passes: usize,
    /// Crops encoded at once.
    pub batch: usize,
    /// Show a progress bar.
    pub progress: bool,
}

/// What `framer encode` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeReport {
    /// The latents folder.
    pub dir: PathBuf,
    /// Its description, as written to `latents.toml`.
    pub manifest: LatentManifest,
}

/// The VAE of `[latent]` on `device`, its weights loaded strictly from `[latent] vae`.
///
/// # Errors
/// [`CommandError::Invalid`] naming the schedule when it has no `[latent]` table; the loader's
/// error (file, tensor, expected and found shapes, missing and unused keys) otherwise.
pub fn load_vae<B: Backend>(experiment: &Experiment, device: &B::Device) -> Result<AutoencoderKL<B>, CommandError> {
    let latent = experiment.latent.as_ref().ok_or_else(|| {
        CommandError::Invalid(format!(
            "the schedule of `{}` has no [latent] table (preset, vae, latents): it trains in pixel \
             space",
            experiment.name
        ))
    })?;
    let mut vae = latent.vae_config().init::<B>(device).map_err(backbone_error)?;
    load_safetensors(&mut vae, &latent.vae, &LoadOptions::default()).map_err(backbone_error)?;
    Ok(vae)
}

/// A VAE error as a command error.
fn backbone_error(e: framer_backbones::BackboneError) -> CommandError {
    CommandError::Engine(EngineError::Model(e.to_string()))
}

/// Encodes the training crops of `experiment` into its latents folder (or `settings.out`).
///
/// # Errors
/// [`CommandError::Invalid`] when the schedule has no `[latent]`, the folder already holds latents
/// (nothing is overwritten), or `--passes` / `--batch` is 0; data, VAE and I/O errors naming the
/// file.
pub fn run_encode<B: Backend>(
    experiment: &Experiment,
    settings: &EncodeSettings,
    device: &B::Device,
) -> Result<EncodeReport, CommandError> {
    if settings.passes == 0 || settings.batch == 0 {
        return Err(CommandError::Invalid(format!(
            "--passes {} --batch {}: both must be at least 1",
            settings.passes, settings.batch
        )));
    }
    let vae = load_vae::<B>(experiment, device)?;
    let latent = experiment.latent.as_ref().expect("load_vae checked [latent]");
    let dir = settings.out.clone().unwrap_or_else(|| latent.latents.clone());
    if dir.join(latents::MANIFEST).exists() {
        return Err(CommandError::Invalid(format!(
            "{} already holds latents ({}); remove the folder or give another --out",
            dir.display(),
            latents::MANIFEST
        )));
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| CommandError::Invalid(format!("{}: {e}", dir.display())))?;
    let photos = DegradedPhotos::from_experiment(experiment)?;
    let count = photos.len() * settings.passes;
    let (channels, side) = experiment.model_input();
    let shape = [channels, side, side];
    let bar = if settings.progress {
        indicatif::ProgressBar::new(count as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut start = 0;
    while start < count {
        let n = settings.batch.min(count - start);
        let (hr, lr) = pixels::<B>(&photos, start, n, device)?;
        let hr = vae.encode_posterior(hr).map_err(backbone_error)?;
        let lr = vae.encode_posterior(lr).map_err(backbone_error)?;
        if hr.mean.dims()[1..] != shape {
            return Err(CommandError::Invalid(format!(
                "the VAE gives latents {:?} for a {} px crop, the schedule expects {shape:?}",
                &hr.mean.dims()[1..],
                experiment.data.crop_size
            )));
        }
        let rows = |t: Tensor<B, 4>| -> Result<Vec<f32>, CommandError> {
            t.into_data()
                .into_vec::<f32>()
                .map_err(|e| CommandError::Invalid(format!("latents: {e:?}")))
        };
        let (mean, logvar, lr_mean) = (rows(hr.mean)?, rows(hr.logvar)?, rows(lr.mean)?);
        let per = shape.iter().product::<usize>();
        for k in 0..n {
            let part = |v: &[f32]| v[k * per..(k + 1) * per].to_vec();
            let item = LatentItem { hr_mean: part(&mean), hr_logvar: part(&logvar), lr_mean: part(&lr_mean) };
            latents::write_item(&dir, start + k, shape, &item)?;
        }
        start += n;
        bar.set_position(start as u64);
    }
    bar.finish_and_clear();
    let manifest = LatentManifest {
        preset: latent.preset.clone(),
        vae: latent.vae.clone(),
        shape,
        crop_size: experiment.data.crop_size,
        scale: experiment.data.scale,
        count,
        experiment: experiment.name.clone(),
        seed: experiment.train.seed,
        photos: (0..count as u64).map(|n| photos.photo_stem(photos.item(n))).collect(),
    };
    latents::write_manifest(&dir, &manifest)?;
    Ok(EncodeReport { dir, manifest })
}

/// Draws `start..start + n` of the photo source as `[n, 3, H, W]` HR and upsampled-LR tensors in
/// `[−1, 1]`.
fn pixels<B: Backend>(
    photos: &DegradedPhotos,
    start: usize,
    n: usize,
    device: &B::Device,
) -> Result<(Tensor<B, 4>, Tensor<B, 4>), CommandError> {
    let mut hr = Vec::new();
    let mut lr = Vec::new();
    let mut shape = [n, 3, 0, 0];
    for draw in start..start + n {
        let pair = photos.batch(draw as u64, 1)?;
        shape[2..].copy_from_slice(&pair.shape[2..]);
        hr.extend(pair.hr);
        lr.extend(pair.lr_upsampled);
    }
    let tensor = |v: Vec<f32>| Tensor::<B, 4>::from_data(TensorData::new(v, shape), device);
    Ok((tensor(hr), tensor(lr)))
}

