//! `[latent]`: training and sampling in a Stable Diffusion VAE's latent space.
//!
//! ```toml
//! [latent]
//! preset = "sd3"                    # the VAE's architecture, scaling and shift: sd2, sd3, tiny-sd2, tiny-sd3
//! vae = "sd3-vae.safetensors"       # diffusers' AutoencoderKL weights (the `vae` folder's file)
//! latents = "latents"               # the folder `framer encode` writes and training reads
//! sample_posterior = true           # x0 = mean + std·ε per step (false: the posterior mean)
//! ```
//!
//! Paths are relative to the schedule file's folder. With `[latent]`, the model sees scaled latents
//! (`[batch, latent_channels, crop/f, crop/f]` for a VAE that downsamples by `f`; 16 × 64 × 64 for
//! SD3 at 512² crops): `x0` is the HR crop's latent and the condition the latent of its LR image
//! upsampled bicubically to the HR size, both encoded ahead of training by `framer encode` as the
//! reference's `make_latents.py` does. The FRAMER loss runs on the latents, as in the reference.
//! `framer sr` encodes each upsampled LR tile, samples in latent space and decodes.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::validate::{Ctx, Result};

/// `[latent]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentSection {
    /// A [`framer_backbones::vae::VaeConfig`] preset: `sd2`, `sd3`, `tiny-sd2` or `tiny-sd3`.
    pub preset: Spanned<String>,
    /// The VAE's weights: diffusers' `AutoencoderKL` safetensors file.
    pub vae: Spanned<PathBuf>,
    /// The latents folder (`framer encode` writes it, training reads it).
    pub latents: Spanned<PathBuf>,
    /// Draw the HR latent from the posterior at each step (`mean + std·ε`, the reference's
    /// `latent_dist.sample()`); `false`: its mean.
    #[serde(default = "yes")]
    pub sample_posterior: bool,
}

fn yes() -> bool {
    true
}

/// `[latent]`, resolved (absolute paths).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatentConfig {
    /// The VAE preset.
    pub preset: String,
    /// The VAE's weights file.
    pub vae: PathBuf,
    /// The latents folder.
    pub latents: PathBuf,
    /// Whether the HR latent is drawn from the posterior at each step.
    pub sample_posterior: bool,
}

impl LatentConfig {
    /// The VAE's configuration (architecture, scaling and shift) from [`Self::preset`].
    pub fn vae_config(&self) -> framer_backbones::vae::VaeConfig {
        // checked when the schedule was resolved
        framer_backbones::vae::VaeConfig::preset(&self.preset)
            .unwrap_or_else(|_| framer_backbones::vae::VaeConfig::sd3())
    }
}

/// Checks `[latent]` against `[data] crop_size`.
pub(super) fn resolve(
    section: &LatentSection,
    crop_size: usize,
    ctx: &Ctx<'_>,
) -> Result<LatentConfig> {
    let preset = section.preset.get_ref();
    let config = framer_backbones::vae::VaeConfig::preset(preset).map_err(|_| {
        let known = framer_backbones::vae::VaeConfig::PRESETS;
        let mut e = ctx.err(
            section.preset.span(),
            "latent.preset",
            format!(
                "unknown VAE preset \"{preset}\"; expected one of {}",
                known.join(", ")
            ),
        );
        if let Some(s) = super::suggest(preset, known.iter().copied()) {
            e = e.with_help(format!("did you mean \"{s}\"?"));
        }
        e
    })?;
    let f = config.downscale_factor();
    if !crop_size.is_multiple_of(f) {
        return Err(ctx
            .err(
                section.preset.span(),
                "latent.preset",
                format!(
                    "the `{preset}` VAE downsamples by {f}, and `data.crop_size` ({crop_size}) is \
                     not a multiple of {f}"
                ),
            )
            .with_help(format!("use a crop size that is a multiple of {f}")));
    }
    let help = "diffusers' AutoencoderKL weights (`vae/diffusion_pytorch_model.safetensors`); paths \
                are relative to the schedule file's folder";
    let vae = ctx.existing("latent.vae", &section.vae, false, help)?;
    Ok(LatentConfig {
        preset: preset.clone(),
        vae: super::absolute(vae),
        latents: super::absolute(ctx.base_dir.join(section.latents.get_ref())),
        sample_posterior: section.sample_posterior,
    })
}
