//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong in this crate. Variants that concern a file name it; variants
/// that concern a shape give the sizes involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IqaError {
    /// A tensor or image given to a function has an unusable shape (too small for the network,
    /// wrong channel count, …).
    #[error("invalid input shape: {0}")]
    InvalidShape(String),
    /// Two images that must have the same size do not.
    #[error("{what}: size mismatch, {width}x{height} vs {ref_width}x{ref_height} (width x height)")]
    SizeMismatch {
        /// What was compared (e.g. `LPIPS: image vs reference`).
        what: String,
        /// Width of the first image.
        width: usize,
        /// Height of the first image.
        height: usize,
        /// Width of the second (reference) image.
        ref_width: usize,
        /// Height of the second (reference) image.
        ref_height: usize,
    },
    /// A setting or argument is out of range (a network name, a configuration, a weight folder
    /// without the expected files).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A file or folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A weight file is unusable: corrupt, of an unsupported kind, or without a tensor the
    /// network needs (the message names the tensor and the expected and found shapes).
    #[error("weight file {}: {message}", path.display())]
    WeightFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = IqaError> = std::result::Result<T, E>;
