//! The Stable Diffusion VAEs: diffusers' `AutoencoderKL`, with its names and safetensors layout.
//!
//! Two variants share the code and differ in their config ([`VaeConfig::sd2`],
//! [`VaeConfig::sd3`]):
//!
//! | | latent channels | `quant_conv` / `post_quant_conv` | `scaling_factor` | `shift_factor` |
//! | --- | --- | --- | --- | --- |
//! | SD2 | 4 | yes | 0.18215 | 0 (none) |
//! | SD3 / SD3.5 | 16 | no | 1.5305 | 0.0609 |
//!
//! ## Latent scaling
//! The diffusion model sees *scaled* latents, exactly as diffusers' pipelines compute them:
//!
//! - encode: `latents = (z − shift_factor) · scaling_factor`, with `z` the posterior sample
//!   `mean + exp(logvar/2)·noise` (or the posterior mean), so SD2 gives `z · 0.18215` and SD3
//!   `(z − 0.0609) · 1.5305`;
//! - decode: `z = latents / scaling_factor + shift_factor`, then the decoder.
//!
//! [`AutoencoderKL::encode`] / [`AutoencoderKL::decode`] (and [`AutoencoderKL::tiled_decode`])
//! apply these; [`AutoencoderKL::encode_posterior`] and [`AutoencoderKL::decode_unscaled`] work
//! on the raw `z`, like diffusers' `vae.encode(x).latent_dist` and `vae.decode(z)`.
//!
//! Images are `[batch, 3, H, W]` in `[−1, 1]`; latents `[batch, latent_channels, H/8, W/8]` for
//! the real (four-level) VAEs.
//!
//! Weights load unchanged from diffusers' `diffusion_pytorch_model.safetensors` of the `vae`
//! folder with [`crate::load_safetensors`]; the only key rewrites are those of
//! [`crate::DIFFUSERS_KEY_REMAP`] (`to_out.0`, the norms' `weight`/`bias`).
//!
//! ## Latent-space training
//! `framer-train` trains and samples in a VAE's latent space from a schedule's `[latent]` table
//! (`preset`, `vae`, `latents`): `framer encode` stores each training crop's posterior moments
//! (HR mean and log-variance, the upsampled LR's mean), training scales them with
//! [`AutoencoderKL::scale_latents`]'s formula, and `framer sr` encodes each upsampled LR tile,
//! samples in latent space and decodes. See `examples/latent_sd3.toml`.

mod coder;
mod posterior;
mod tiled;

pub use coder::{Decoder, DownEncoderBlock2D, Encoder, UpDecoderBlock2D};
pub use posterior::{DiagonalGaussian, LOGVAR_RANGE};
pub use tiled::VaeTiling;

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::BackboneError;

/// Configuration of [`AutoencoderKL`]; field names and defaults follow diffusers' config.
///
/// The encoder and decoder always use `DownEncoderBlock2D` / `UpDecoderBlock2D` levels, SiLU and
/// group norms (diffusers' only choices for the SD VAEs).
#[derive(Config, Debug, PartialEq)]
pub struct VaeConfig {
    /// Image channels read by the encoder.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Image channels written by the decoder.
    #[config(default = 3)]
    pub out_channels: usize,
    /// Channels of the latent `z` (4 for SD2, 16 for SD3).
    pub latent_channels: usize,
    /// Width of each level, from the image resolution down; `levels − 1` factor-2 downsamplers.
    pub block_out_channels: Vec<usize>,
    /// ResNet blocks per encoder level (decoder levels have one more).
    #[config(default = 2)]
    pub layers_per_block: usize,
    /// Group-norm groups; must divide every level width.
    #[config(default = 32)]
    pub norm_num_groups: usize,
    /// Group-norm ε (diffusers fixes 1e-6 for the VAE).
    #[config(default = 1e-6)]
    pub norm_eps: f64,
    /// Whether the mid blocks have their self-attention.
    #[config(default = true)]
    pub mid_block_add_attention: bool,
    /// A 1×1 `quant_conv` on the encoder's moments (SD2: yes, SD3: no).
    #[config(default = true)]
    pub use_quant_conv: bool,
    /// A 1×1 `post_quant_conv` before the decoder (SD2: yes, SD3: no).
    #[config(default = true)]
    pub use_post_quant_conv: bool,
    /// `latents = (z − shift_factor) · scaling_factor`.
    pub scaling_factor: f64,
    /// See `scaling_factor`; 0 where diffusers has `None`.
    #[config(default = 0.0)]
    pub shift_factor: f64,
    /// Image size the VAE was trained at; the default decode tile ([`VaeTiling::for_config`]).
    #[config(default = 512)]
    pub sample_size: usize,
}

impl VaeConfig {
    /// Names accepted by [`VaeConfig::preset`].
    pub const PRESETS: [&'static str; 4] = ["sd2", "sd3", "tiny-sd2", "tiny-sd3"];

    /// Stable Diffusion 2's VAE (`stabilityai/stable-diffusion-2`, folder `vae`): widths
    /// 128/256/512/512, two ResNets per level, 32 groups, 4 latent channels, quant convs,
    /// scaling 0.18215, sample size 768. About 83.7 M parameters.
    pub fn sd2() -> Self {
        Self::new(4, vec![128, 256, 512, 512], 0.18215).with_sample_size(768)
    }

    /// Stable Diffusion 3 / 3.5's VAE: as [`VaeConfig::sd2`] with 16 latent channels, no quant
    /// convs, scaling 1.5305 and shift 0.0609, sample size 1024. About 83.7 M parameters.
    pub fn sd3() -> Self {
        Self::new(16, vec![128, 256, 512, 512], 1.5305)
            .with_shift_factor(0.0609)
            .with_use_quant_conv(false)
            .with_use_post_quant_conv(false)
            .with_sample_size(1024)
    }

    /// CPU test sizes of the SD2 form (the oracle fixtures' config): widths 8/8/16 (×4 down), one
    /// ResNet per encoder level, 4 groups, sample size 32.
    pub fn tiny_sd2() -> Self {
        Self::sd2().tiny()
    }

    /// CPU test sizes of the SD3 form; see [`VaeConfig::tiny_sd2`].
    pub fn tiny_sd3() -> Self {
        Self::sd3().tiny()
    }

    fn tiny(self) -> Self {
        Self { block_out_channels: vec![8, 8, 16], layers_per_block: 1, norm_num_groups: 4, sample_size: 32, ..self }
    }

    /// The preset `name`, one of [`VaeConfig::PRESETS`].
    pub fn preset(name: &str) -> Result<Self, BackboneError> {
        match name {
            "sd2" => Ok(Self::sd2()),
            "sd3" => Ok(Self::sd3()),
            "tiny-sd2" => Ok(Self::tiny_sd2()),
            "tiny-sd3" => Ok(Self::tiny_sd3()),
            other => Err(BackboneError::UnknownPreset {
                model: "vae",
                name: other.to_string(),
                known: Self::PRESETS.join(", "),
            }),
        }
    }

    /// `2^(levels − 1)`: image pixels per latent pixel along each axis.
    pub fn downscale_factor(&self) -> usize {
        1 << self.block_out_channels.len().saturating_sub(1)
    }

    fn invalid(field: &'static str, reason: impl Into<String>) -> BackboneError {
        BackboneError::InvalidConfig { model: "vae", field, reason: reason.into() }
    }

    /// Checks every constraint [`VaeConfig::init`] relies on.
    pub fn validate(&self) -> Result<(), BackboneError> {
        if self.block_out_channels.is_empty() {
            return Err(Self::invalid("block_out_channels", "is empty"));
        }
        for (field, n) in [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("latent_channels", self.latent_channels),
            ("layers_per_block", self.layers_per_block),
            ("norm_num_groups", self.norm_num_groups),
            ("sample_size", self.sample_size),
        ] {
            if n == 0 {
                return Err(Self::invalid(field, "must be positive"));
            }
        }
        if let Some(c) = self.block_out_channels.iter().find(|&&c| c == 0 || c % self.norm_num_groups != 0) {
            return Err(Self::invalid(
                "block_out_channels",
                format!("width {c} is not a positive multiple of norm_num_groups = {}", self.norm_num_groups),
            ));
        }
        if !(self.norm_eps > 0.0 && self.norm_eps.is_finite()) {
            return Err(Self::invalid("norm_eps", format!("must be positive and finite, got {}", self.norm_eps)));
        }
        if !(self.scaling_factor.is_finite() && self.scaling_factor != 0.0) {
            return Err(Self::invalid("scaling_factor", format!("must be finite and non-zero, got {}", self.scaling_factor)));
        }
        if !self.shift_factor.is_finite() {
            return Err(Self::invalid("shift_factor", format!("must be finite, got {}", self.shift_factor)));
        }
        if self.block_out_channels.len() > 16 {
            return Err(Self::invalid("block_out_channels", "has more than 16 levels"));
        }
        Ok(())
    }

    /// Builds the VAE with burn's default initialisation (load weights with
    /// [`crate::load_safetensors`]).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<AutoencoderKL<B>, BackboneError> {
        self.validate()?;
        let moments = 2 * self.latent_channels;
        let one_by_one = |c: usize| Conv2dConfig::new([c, c], [1, 1]).init(device);
        Ok(AutoencoderKL {
            encoder: Encoder::new(self, device),
            decoder: Decoder::new(self, device),
            quant_conv: self.use_quant_conv.then(|| one_by_one(moments)),
            post_quant_conv: self.use_post_quant_conv.then(|| one_by_one(self.latent_channels)),
            scaling_factor: self.scaling_factor,
            shift_factor: self.shift_factor,
            in_channels: self.in_channels,
            latent_channels: self.latent_channels,
            downscale_factor: self.downscale_factor(),
            sample_size: self.sample_size,
        })
    }
}

/// The KL-regularised autoencoder of Stable Diffusion, diffusers `AutoencoderKL`.
///
/// See the [module docs](self) for the latent scaling.
///
/// # Shapes
/// - images: `[batch, in_channels, H, W]` (decoded: `out_channels`), values in `[−1, 1]`
/// - latents: `[batch, latent_channels, H/f, W/f]`, `f` = [`AutoencoderKL::downscale_factor`]
#[derive(Module, Debug)]
pub struct AutoencoderKL<B: Backend> {
    /// Image → posterior moments.
    pub encoder: Encoder<B>,
    /// Latent → image.
    pub decoder: Decoder<B>,
    /// 1×1 convolution on the moments (SD2).
    pub quant_conv: Option<Conv2d<B>>,
    /// 1×1 convolution on `z` before the decoder (SD2).
    pub post_quant_conv: Option<Conv2d<B>>,
    /// `latents = (z − shift_factor) · scaling_factor`.
    pub scaling_factor: f64,
    /// See `scaling_factor`.
    pub shift_factor: f64,
    /// Image channels the encoder reads.
    pub in_channels: usize,
    /// Channels of `z`.
    pub latent_channels: usize,
    /// Image pixels per latent pixel along each axis.
    pub downscale_factor: usize,
    /// Training image size; the default decode tile.
    pub sample_size: usize,
}

impl<B: Backend> AutoencoderKL<B> {
    /// `2^(levels − 1)` (8 for the real VAEs).
    pub fn downscale_factor(&self) -> usize {
        self.downscale_factor
    }

    fn check(x: &Tensor<B, 4>, input: &'static str, channels: usize, what: &str) -> Result<(), BackboneError> {
        let [b, c, h, w] = x.dims();
        if c != channels || b == 0 || h == 0 || w == 0 {
            return Err(BackboneError::BadInput {
                input,
                reason: format!("has shape [{b}, {c}, {h}, {w}]; expected a non-empty [batch, {channels}, H, W] {what}"),
            });
        }
        Ok(())
    }

    /// The posterior `q(z | image)`: encoder, then `quant_conv` when present, split into mean and
    /// clamped log-variance (diffusers `vae.encode(image).latent_dist`).
    ///
    /// # Shapes
    /// - `image`: `[batch, in_channels, H, W]`
    /// - posterior: `[batch, latent_channels, H/f, W/f]` (⌊·⌋ per downsampler for odd sizes)
    pub fn encode_posterior(&self, image: Tensor<B, 4>) -> Result<DiagonalGaussian<B>, BackboneError> {
        Self::check(&image, "image", self.in_channels, "image")?;
        let mut moments = self.encoder.forward(image);
        if let Some(conv) = &self.quant_conv {
            moments = conv.forward(moments);
        }
        Ok(DiagonalGaussian::from_moments(moments))
    }

    /// Scaled latents for the diffusion model: `(z − shift) · scale`, with `z` the posterior sample
    /// `mean + std · noise` when `noise` (standard normal) is given, else the posterior mean.
    ///
    /// # Shapes
    /// - `image`: `[batch, in_channels, H, W]`; `noise`: `[batch, latent_channels, H/f, W/f]`
    /// - output: `[batch, latent_channels, H/f, W/f]`
    pub fn encode(&self, image: Tensor<B, 4>, noise: Option<Tensor<B, 4>>) -> Result<Tensor<B, 4>, BackboneError> {
        let posterior = self.encode_posterior(image)?;
        let z = match noise {
            Some(noise) => posterior.sample(noise)?,
            None => posterior.mode(),
        };
        Ok(self.scale_latents(z))
    }

    /// `(z − shift_factor) · scaling_factor`.
    pub fn scale_latents(&self, z: Tensor<B, 4>) -> Tensor<B, 4> {
        z.sub_scalar(self.shift_factor).mul_scalar(self.scaling_factor)
    }

    /// `latents / scaling_factor + shift_factor`, the inverse of [`AutoencoderKL::scale_latents`].
    pub fn unscale_latents(&self, latents: Tensor<B, 4>) -> Tensor<B, 4> {
        latents.div_scalar(self.scaling_factor).add_scalar(self.shift_factor)
    }

    /// Decodes scaled latents: `decode_unscaled(latents / scale + shift)`.
    ///
    /// # Shapes
    /// - `latents`: `[batch, latent_channels, h, w]`
    /// - output: `[batch, out_channels, h·f, w·f]`
    pub fn decode(&self, latents: Tensor<B, 4>) -> Result<Tensor<B, 4>, BackboneError> {
        Self::check(&latents, "latents", self.latent_channels, "latent")?;
        Ok(self.decode_z(self.unscale_latents(latents)))
    }

    /// Decodes a raw `z` (diffusers `vae.decode(z)`): `post_quant_conv` when present, then the
    /// decoder.
    ///
    /// # Shapes
    /// - `z`: `[batch, latent_channels, h, w]`
    /// - output: `[batch, out_channels, h·f, w·f]`
    pub fn decode_unscaled(&self, z: Tensor<B, 4>) -> Result<Tensor<B, 4>, BackboneError> {
        Self::check(&z, "z", self.latent_channels, "latent")?;
        Ok(self.decode_z(z))
    }

    fn decode_z(&self, z: Tensor<B, 4>) -> Tensor<B, 4> {
        let z = match &self.post_quant_conv {
            Some(conv) => conv.forward(z),
            None => z,
        };
        self.decoder.forward(z)
    }
}
