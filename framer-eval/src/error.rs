//! The error type of this crate.

use std::path::PathBuf;

/// A boxed error returned by a caller's closure (a model run on one tile, for example).
pub type BoxedError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in this crate. Variants that concern a file name it; variants
/// that concern a shape give the sizes involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A tiling setting is out of range (zero tile or scale, overlap not below the tile side).
    #[error("invalid tiling: {0}")]
    InvalidTiling(String),
    /// A tensor or image given to a function has an unusable shape.
    #[error("invalid input shape: {0}")]
    InvalidShape(String),
    /// The closure run on a tile returned a tensor of the wrong shape.
    #[error(
        "tile {index} at (top {top}, left {left}): the tile function returned shape {got:?}, \
         expected {expected:?} ([batch, channels, tile·scale, tile·scale])"
    )]
    TileOutputShape {
        /// Index of the tile, row-major.
        index: usize,
        /// Top edge of the tile in the (padded) input.
        top: usize,
        /// Left edge of the tile in the (padded) input.
        left: usize,
        /// The expected shape (the channel count is taken from the first tile).
        expected: [usize; 4],
        /// The returned shape.
        got: [usize; 4],
    },
    /// The closure run on a tile failed.
    #[error("tile {index} at (top {top}, left {left}) failed: {source}")]
    TileFailed {
        /// Index of the tile, row-major.
        index: usize,
        /// Top edge of the tile in the (padded) input.
        top: usize,
        /// Left edge of the tile in the (padded) input.
        left: usize,
        /// The closure's error.
        source: BoxedError,
    },
    /// Two images that must have the same size do not.
    #[error("{what}: size mismatch, {width}x{height} vs {ref_width}x{ref_height} (width x height)")]
    SizeMismatch {
        /// What was compared (e.g. `colour fix: SR image vs reference`, or a file path).
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
    /// A setting or argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An image could not be loaded, saved or built.
    #[error(transparent)]
    Data(#[from] framer_data::DataError),
    /// A metric or folder evaluation failed (bad folder, missing partner, unavailable metric …).
    #[error(transparent)]
    Metric(#[from] framer_metrics::MetricError),
    /// A file or folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file or folder could not be written or created.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line of a training log does not follow the documented schema.
    #[error("{}, line {line}: {message}", path.display())]
    Log {
        /// The log file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Drawing a plot failed.
    #[error("cannot draw plot {}: {message}", path.display())]
    Plot {
        /// The PNG being drawn (empty for an in-memory plot).
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An image-quality network failed: an unusable weight file (naming the file and the
    /// tensor), or an image it cannot score.
    #[cfg(feature = "iqa")]
    #[error(transparent)]
    Iqa(#[from] framer_iqa::IqaError),
    /// There is nothing to analyse or compare.
    #[error("nothing to {0}")]
    Empty(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;
