//! # framer-backbones
//!
//! The two diffusion backbone families of FRAMER, as trainable Burn models with diffusers names:
//!
//! - [`UNet`] — a Stable-Diffusion-2-style U-Net (`conv_in`, `time_embedding`, `down_blocks`,
//!   `mid_block`, `up_blocks`, `conv_norm_out`, `conv_out`) conditioned on the upsampled
//!   low-resolution image by channel concatenation. FRAMER students: every down, mid and up block,
//!   read out by generated [`framer::FramerHeads`] (1×1 convolution + resize).
//! - [`DiT`] — a Stable-Diffusion-3-style MMDiT as DiT4SR uses it (`pos_embed`, `time_text_embed`,
//!   `transformer_blocks`, `norm_out`, `proj_out`), with the low-resolution image as a "control"
//!   token stream joining every attention. FRAMER students: every transformer block, read out
//!   through the shared `norm_out`/`proj_out` (the reference's early exits).
//! - [`AutoencoderKL`] ([`vae`]) — the Stable Diffusion VAEs (SD2: 4 latent channels, SD3: 16),
//!   exact to diffusers, with the pipelines' latent scaling and tiled decoding.
//!
//! Both are annotated with `#[framer]`/`#[framer_forward]` exactly as a user's own model would be:
//! what the attributes generate ([`framer::FramerForward`], [`framer::Framed`]) is all a training
//! loop needs. [`SrBackbone`] adds their input/output metadata. Both load diffusers-named
//! safetensors files ([`load_safetensors`]). Each comes with named presets: `tiny` (CPU, RGB pixels
//! at 64×64), `small` (GPU), and the real shapes `sd2` / `sd35-medium` (documented, built only on
//! demand).
//!
//! ## Conventions
//! - Images/latents are `[batch, channels, height, width]`.
//! - Timesteps are `[batch]` values `t ∈ [0, 1]`: σ for rectified flow, or the DDPM index divided by
//!   the number of training steps. Each model multiplies them by its `timestep_scale` (1000) before
//!   the sinusoidal projection, so a model sees diffusers' usual timestep units.
//! - The LR condition is the low-resolution image upsampled (bicubic) to the size of `x_t`.
//!
//! ```
//! use burn::backend::Flex;
//! use burn::tensor::Tensor;
//! use framer::Framed;
//! use framer_backbones::{BackboneConfig, SrBackbone};
//!
//! let device = Default::default();
//! let BackboneConfig::DiT(config) = BackboneConfig::preset("dit", "tiny")? else { unreachable!() };
//! let model = config.init::<Flex>(&device)?;
//! let x_t = Tensor::<Flex, 4>::zeros([1, 3, 64, 64], &device);
//! let lr = Tensor::<Flex, 4>::ones([1, 3, 64, 64], &device);
//! let t = Tensor::<Flex, 1>::from_floats([0.5], &device);
//! model.check_inputs(&x_t, &t, &lr)?;
//! let framed = Framed::new(model, (x_t.clone(), t.clone(), lr.clone()), &device)?;
//! let (pred, taps) = framed.forward_with_taps((x_t, t, lr))?;
//! assert_eq!(pred.dims(), [1, 3, 64, 64]);
//! assert_eq!(taps.num_students(), framed.student_names().len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod dit;
pub mod embeddings;
mod error;
mod load;
pub mod summary;
pub mod unet;
pub mod vae;

pub use dit::{DiT, DiTConfig, TextCondition};
pub use error::BackboneError;
pub use load::{DIFFUSERS_KEY_REMAP, LoadOptions, LoadReport, load_safetensors};
pub use unet::{UNet, UNetConfig};
pub use vae::{AutoencoderKL, DiagonalGaussian, VaeConfig, VaeTiling};

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

/// Input/output metadata of a super-resolution backbone: its channels and the spatial sizes it
/// accepts. The FRAMER taps come from the attributes alone (`#[framer]` implements
/// [`framer::FramerModel`], `#[framer_forward]` implements [`framer::FramerForward`]); this trait
/// only lets callers check inputs before running the model.
pub trait SrBackbone<B: Backend> {
    /// Channels of `x_t`.
    fn in_channels(&self) -> usize;

    /// Channels of the LR condition.
    fn lr_channels(&self) -> usize;

    /// Channels of the prediction.
    fn out_channels(&self) -> usize;

    /// `H` and `W` must be multiples of this.
    fn spatial_multiple(&self) -> usize;

    /// Largest `H` (and `W`) the model accepts, if bounded (the DiT's position table).
    fn max_spatial_size(&self) -> Option<usize> {
        None
    }

    /// Checks the input shapes, naming the offending argument.
    fn check_inputs(
        &self,
        x_t: &Tensor<B, 4>,
        timesteps: &Tensor<B, 1>,
        lr_upsampled: &Tensor<B, 4>,
    ) -> Result<(), BackboneError> {
        let [b, c, h, w] = x_t.dims();
        let bad = |input, reason: String| Err(BackboneError::BadInput { input, reason });
        if c != self.in_channels() {
            return bad("x_t", format!("has {c} channels, the model expects {}", self.in_channels()));
        }
        let m = self.spatial_multiple();
        if h == 0 || w == 0 || h % m != 0 || w % m != 0 {
            return bad("x_t", format!("spatial size {h}×{w} is not a positive multiple of {m}"));
        }
        if let Some(max) = self.max_spatial_size()
            && (h > max || w > max)
        {
            return bad("x_t", format!("spatial size {h}×{w} exceeds the maximum {max}×{max}"));
        }
        let [tb] = timesteps.dims();
        if tb != b {
            return bad("timesteps", format!("has {tb} entries for a batch of {b}"));
        }
        let [lb, lc, lh, lw] = lr_upsampled.dims();
        if [lb, lc, lh, lw] != [b, self.lr_channels(), h, w] {
            return bad(
                "lr_upsampled",
                format!("has shape [{lb}, {lc}, {lh}, {lw}], expected [{b}, {}, {h}, {w}]", self.lr_channels()),
            );
        }
        Ok(())
    }
}

/// Which backbone family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackboneKind {
    /// [`UNet`].
    #[serde(rename = "unet", alias = "u_net")]
    UNet,
    /// [`DiT`].
    #[serde(rename = "dit")]
    DiT,
    /// [`unet::UNet2DConditionModel`], SD2's text-conditioned U-Net.
    #[serde(rename = "unet2d_condition")]
    UNetCondition,
}

impl BackboneKind {
    /// Every family.
    pub const ALL: [Self; 3] = [Self::UNet, Self::DiT, Self::UNetCondition];

    /// The name `[model] backbone` gives the family (also the key of its full config table).
    pub fn name(self) -> &'static str {
        match self {
            Self::UNet => "unet",
            Self::DiT => "dit",
            Self::UNetCondition => "unet2d_condition",
        }
    }
}

/// Either backbone's configuration.
///
/// Deserialises from a `[model]`-style table naming the family and either a preset or a full
/// config table:
///
/// ```toml
/// backbone = "dit"
/// preset = "tiny"          # "tiny", "small", "sd35-medium" (dit) / "tiny", "small", "sd2" (unet)
///                          # / "tiny", "sd2" (unet2d_condition)
/// ```
/// or `backbone = "unet"` with a `[model.unet]` (resp. `[model.dit]`, `[model.unet2d_condition]`)
/// table holding every [`UNetConfig`] (resp. [`DiTConfig`], [`unet::UNet2DConditionConfig`])
/// field. Unknown keys are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BackboneSpec", into = "BackboneSpec")]
pub enum BackboneConfig {
    /// A U-Net.
    UNet(UNetConfig),
    /// A DiT.
    DiT(DiTConfig),
    /// SD2's text-conditioned U-Net.
    UNetCondition(unet::UNet2DConditionConfig),
}

/// The serialised form of [`BackboneConfig`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneSpec {
    /// `"unet"`, `"dit"` or `"unet2d_condition"`.
    pub backbone: BackboneKind,
    /// A preset name; exclusive with the full tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// A full U-Net config (`backbone = "unet"` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unet: Option<UNetConfig>,
    /// A full DiT config (`backbone = "dit"` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dit: Option<DiTConfig>,
    /// A full text-conditioned U-Net config (`backbone = "unet2d_condition"` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unet2d_condition: Option<unet::UNet2DConditionConfig>,
}

impl TryFrom<BackboneSpec> for BackboneConfig {
    type Error = BackboneError;

    fn try_from(spec: BackboneSpec) -> Result<Self, BackboneError> {
        let invalid = |field, reason: String| BackboneError::InvalidConfig {
            model: spec.backbone.name(),
            field,
            reason,
        };
        let kind = spec.backbone;
        // the full tables given, by the family they belong to
        let tables = [
            (BackboneKind::UNet, spec.unet.is_some()),
            (BackboneKind::DiT, spec.dit.is_some()),
            (BackboneKind::UNetCondition, spec.unet2d_condition.is_some()),
        ];
        if let Some((other, _)) = tables.iter().find(|(k, given)| *given && *k != kind) {
            return Err(invalid(other.name(), format!("table given for backbone = \"{}\"", kind.name())));
        }
        let own = match kind {
            BackboneKind::UNet => spec.unet.clone().map(Self::UNet),
            BackboneKind::DiT => spec.dit.clone().map(Self::DiT),
            BackboneKind::UNetCondition => spec.unet2d_condition.clone().map(Self::UNetCondition),
        };
        let config = match (&spec.preset, own) {
            (Some(_), Some(_)) => return Err(invalid("preset", "cannot be combined with a full config table".into())),
            (Some(name), None) => Self::preset_of(kind, name)?,
            (None, Some(config)) => config,
            (None, None) => return Err(invalid("preset", "is missing (give a preset or a full config table)".into())),
        };
        config.validate()?;
        Ok(config)
    }
}

impl From<BackboneConfig> for BackboneSpec {
    fn from(config: BackboneConfig) -> Self {
        match config {
            BackboneConfig::UNet(c) => Self {
                backbone: BackboneKind::UNet,
                preset: None,
                unet: Some(c),
                dit: None,
                unet2d_condition: None,
            },
            BackboneConfig::DiT(c) => Self {
                backbone: BackboneKind::DiT,
                preset: None,
                unet: None,
                dit: Some(c),
                unet2d_condition: None,
            },
            BackboneConfig::UNetCondition(c) => Self {
                backbone: BackboneKind::UNetCondition,
                preset: None,
                unet: None,
                dit: None,
                unet2d_condition: Some(c),
            },
        }
    }
}

impl BackboneConfig {
    /// The preset `name` of the family `backbone` (`"unet"`, `"dit"` or `"unet2d_condition"`).
    pub fn preset(backbone: &str, name: &str) -> Result<Self, BackboneError> {
        let kind = BackboneKind::ALL
            .into_iter()
            .find(|k| k.name() == backbone)
            .ok_or_else(|| BackboneError::UnknownBackbone(backbone.to_string()))?;
        Self::preset_of(kind, name)
    }

    /// The preset `name` of the family `kind`.
    pub fn preset_of(kind: BackboneKind, name: &str) -> Result<Self, BackboneError> {
        Ok(match kind {
            BackboneKind::UNet => Self::UNet(UNetConfig::preset(name)?),
            BackboneKind::DiT => Self::DiT(DiTConfig::preset(name)?),
            BackboneKind::UNetCondition => Self::UNetCondition(unet::UNet2DConditionConfig::preset(name)?),
        })
    }

    /// The family.
    pub fn kind(&self) -> BackboneKind {
        match self {
            Self::UNet(_) => BackboneKind::UNet,
            Self::DiT(_) => BackboneKind::DiT,
            Self::UNetCondition(_) => BackboneKind::UNetCondition,
        }
    }

    /// Checks the inner config.
    pub fn validate(&self) -> Result<(), BackboneError> {
        match self {
            Self::UNet(c) => c.validate(),
            Self::DiT(c) => c.validate(),
            Self::UNetCondition(c) => c.validate(),
        }
    }
}
