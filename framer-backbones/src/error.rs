//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong when configuring, building or loading a backbone.
#[derive(Debug, thiserror::Error)]
pub enum BackboneError {
    /// A configuration value is out of range or inconsistent with another one.
    #[error("invalid {model} configuration: `{field}` {reason}")]
    InvalidConfig {
        /// `"unet"`, `"dit"` or `"vae"`.
        model: &'static str,
        /// The offending field, e.g. `block_out_channels`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A preset name that does not exist for this backbone.
    #[error("unknown {model} preset `{name}`; known presets: {known}")]
    UnknownPreset {
        /// `"unet"`, `"dit"` or `"vae"`.
        model: &'static str,
        /// The requested name.
        name: String,
        /// Comma-separated list of valid names.
        known: String,
    },
    /// A backbone name that does not exist.
    #[error("unknown backbone `{0}`; expected `unet`, `dit` or `unet2d_condition`")]
    UnknownBackbone(String),
    /// An input tensor has a shape the model cannot process.
    #[error("bad input `{input}`: {reason}")]
    BadInput {
        /// The argument name, e.g. `x_t`.
        input: &'static str,
        /// What is wrong with its shape.
        reason: String,
    },
    /// A safetensors file could not be read or applied to the model.
    #[error("cannot load weights from {path}: {reason}")]
    Load {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying failure.
        reason: String,
    },
    /// The recorded taps do not fit the read-out heads.
    #[error(transparent)]
    Taps(#[from] framer::TapsError),
}
