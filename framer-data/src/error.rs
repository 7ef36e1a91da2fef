//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading images, validating a degradation configuration or
/// building pairs. Every variant that concerns a file names it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be opened or listed.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not a decodable image (not an image at all, truncated, unsupported format).
    #[error("cannot decode image {}: {source}", path.display())]
    Decode {
        /// The file (or the name given to an in-memory buffer).
        path: PathBuf,
        /// The underlying decoder error.
        source: image::ImageError,
    },
    /// An image could not be written.
    #[error("cannot write image {}: {source}", path.display())]
    Encode {
        /// The file.
        path: PathBuf,
        /// The underlying encoder error.
        source: image::ImageError,
    },
    /// An image is smaller than the requested crop.
    #[error("{}: image is {width}x{height}, smaller than the {crop}x{crop} crop", path.display())]
    TooSmall {
        /// The file (or embedded image name).
        path: PathBuf,
        /// Image width in pixels (after any pre-scaling).
        width: usize,
        /// Image height in pixels (after any pre-scaling).
        height: usize,
        /// The crop side in pixels.
        crop: usize,
    },
    /// A key of the degradation configuration has an invalid value.
    #[error("degradation config: `{key}` {message}")]
    Config {
        /// The Real-ESRGAN key name, e.g. `kernel_prob`.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A folder holds no image files.
    #[error("{}: no image files (png, jpg, jpeg, bmp) found", path.display())]
    EmptyFolder {
        /// The folder.
        path: PathBuf,
    },
    /// In paired folders, an image has no partner with the same stem in the other folder.
    #[error("{} has no partner in {} (matched by file stem `{stem}`)", file.display(), missing_in.display())]
    MissingPartner {
        /// The image that has no partner.
        file: PathBuf,
        /// The folder in which the partner was expected.
        missing_in: PathBuf,
        /// The matching key (stem with a resolution suffix removed).
        stem: String,
    },
    /// Two files of one folder map to the same matching key.
    #[error("{} and {} have the same stem `{stem}`", first.display(), second.display())]
    DuplicateStem {
        /// One file.
        first: PathBuf,
        /// The other file.
        second: PathBuf,
        /// The shared matching key.
        stem: String,
    },
    /// An image argument has an unusable shape or buffer.
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// The in-memory JPEG round trip failed.
    #[error("JPEG round trip failed: {0}")]
    Jpeg(String),
    /// A dataset index is out of range.
    #[error("index {index} is out of range for a dataset of {len} items")]
    IndexOutOfRange {
        /// The requested index.
        index: usize,
        /// The dataset length.
        len: usize,
    },
}

/// `Result` with [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;
