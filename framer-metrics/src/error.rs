//! The crate's error type.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong while loading images or computing metrics.
///
/// Every variant names what is wrong and, where a file is involved, its path.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MetricError {
    /// An image could not be read, decoded or built (the message names the file).
    #[error("{0}")]
    Image(#[from] framer_data::DataError),
    /// A directory could not be listed.
    #[error("cannot list directory {path}: {source}")]
    ReadDir {
        /// The directory that failed.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A pixel value is NaN or infinite.
    #[error("pixel ({x}, {y}) channel {channel} is not finite ({value})")]
    NonFinite {
        /// Column of the pixel.
        x: usize,
        /// Row of the pixel.
        y: usize,
        /// Channel index (0 = R, 1 = G, 2 = B).
        channel: usize,
        /// The offending value.
        value: f32,
    },
    /// The two images of a full-reference metric differ in size.
    #[error("image sizes differ: {width}x{height} vs reference {ref_width}x{ref_height}")]
    SizeMismatch {
        /// Width of the evaluated image.
        width: usize,
        /// Height of the evaluated image.
        height: usize,
        /// Width of the reference image.
        ref_width: usize,
        /// Height of the reference image.
        ref_height: usize,
    },
    /// The two files of a pair differ in size.
    #[error("{sr} is {width}x{height} but its ground truth {gt} is {ref_width}x{ref_height}")]
    PairSizeMismatch {
        /// The evaluated (super-resolved) file.
        sr: PathBuf,
        /// The ground-truth file.
        gt: PathBuf,
        /// Width of the evaluated image.
        width: usize,
        /// Height of the evaluated image.
        height: usize,
        /// Width of the ground truth.
        ref_width: usize,
        /// Height of the ground truth.
        ref_height: usize,
    },
    /// `crop_border` removes the whole image.
    #[error("crop_border {crop_border} leaves no pixels of a {width}x{height} image")]
    CropTooLarge {
        /// The requested border, in pixels on each side.
        crop_border: usize,
        /// Image width before cropping.
        width: usize,
        /// Image height before cropping.
        height: usize,
    },
    /// The (cropped) image is too small for the metric.
    #[error("{metric} needs an image of at least {min_width}x{min_height}, got {width}x{height}")]
    TooSmall {
        /// Metric name.
        metric: &'static str,
        /// Image width after cropping.
        width: usize,
        /// Image height after cropping.
        height: usize,
        /// Smallest usable width.
        min_width: usize,
        /// Smallest usable height.
        min_height: usize,
    },
    /// NIQE found fewer than two blocks with finite features, so no covariance can be fitted.
    #[error(
        "NIQE: only {valid} of {total} blocks have finite features (flat image?); at least 2 are needed"
    )]
    NiqeDegenerate {
        /// Blocks with finite features.
        valid: usize,
        /// All blocks.
        total: usize,
    },
    /// A metric name is not known.
    #[error("unknown metric {name:?}; known metrics: {known}")]
    UnknownMetric {
        /// The name given.
        name: String,
        /// Comma-separated list of known names.
        known: String,
    },
    /// A metric is known but cannot be computed offline.
    #[error("metric {name} is unavailable: {reason}")]
    Unavailable {
        /// Metric name.
        name: &'static str,
        /// Why, and what would be needed.
        reason: &'static str,
    },
    /// A full-reference metric was requested without a reference image or folder.
    #[error("metric {name} needs a ground-truth (reference) image")]
    NeedsReference {
        /// Metric name.
        name: &'static str,
    },
    /// No metric was requested.
    #[error("no metrics requested")]
    NoMetrics,
    /// A folder holds no image files.
    #[error("no image files (png, jpg, jpeg, bmp) in {path}")]
    EmptyFolder {
        /// The folder.
        path: PathBuf,
    },
    /// Two files in one folder share a stem (e.g. `a.png` and `a.jpg`).
    #[error("{first} and {second} have the same stem {stem:?}; pairing by stem is ambiguous")]
    DuplicateStem {
        /// The shared stem.
        stem: String,
        /// One file.
        first: PathBuf,
        /// The other file.
        second: PathBuf,
    },
    /// Files in one folder have no partner (same stem) in the other.
    #[error(
        "{count} file(s) in {dir} have no partner with the same stem in {other_dir}: {examples}"
    )]
    MissingPartner {
        /// The folder with unpaired files.
        dir: PathBuf,
        /// The folder that lacks them.
        other_dir: PathBuf,
        /// How many files are unpaired.
        count: usize,
        /// Up to five of their stems.
        examples: String,
    },
    /// A comparison table was requested with no runs, or runs without values.
    #[error("comparison table needs at least one run with values")]
    NoRuns,
}

/// Result alias for this crate.
pub type Result<T, E = MetricError> = std::result::Result<T, E>;
