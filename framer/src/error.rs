//! The error type of the framer core.

use thiserror::Error;

/// Everything that can go wrong when configuring or evaluating the FRAMER loss.
///
/// Every variant names the argument at fault and the value that was rejected, so that the message
/// can be shown to a user as is.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum FramerError {
    /// The mask cutoff (quantile or radius) is not strictly between 0 and 1.
    #[error("expected `{name}` in (0, 1), got {value}")]
    CutoffOutOfRange {
        /// Name of the setting (`cutoff` or `radius`).
        name: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// The contrastive temperature is not a finite positive number.
    #[error("expected `temperature` > 0, got {0}")]
    NonPositiveTemperature(f64),
    /// Fewer than two students: a random-layer negative needs another student to draw from.
    #[error(
        "FRAMER needs at least 2 students (the random-layer negative of a student is another \
         student), got {0}"
    )]
    TooFewStudents(usize),
    /// The batch dimension is zero.
    #[error("the batch is empty (`{0}` has batch size 0)")]
    EmptyBatch(&'static str),
    /// A tensor does not have the shape the loss expects.
    #[error("shape mismatch: `{name}` has shape {got:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Name of the offending argument (e.g. `students[3]`).
        name: String,
        /// Shape that was expected.
        expected: Vec<usize>,
        /// Shape that was given.
        got: Vec<usize>,
    },
    /// The explicit random-layer negatives are not a valid assignment.
    #[error("invalid negatives: {0}")]
    InvalidNegatives(String),
    /// The student weights do not match the students, or one is negative or not finite.
    #[error("invalid student weights: {0}")]
    InvalidStudentWeights(String),
    /// The query rows are empty or reach past the batch.
    #[error("invalid query rows: {0}")]
    InvalidQueryRows(String),
    /// Gathering a data-parallel batch across peers failed.
    #[error("gathering the batch across peers failed: {0}")]
    Gather(String),
    /// A per-sample noise-level tensor has the wrong length or an invalid value.
    #[error("invalid noise schedule input: {0}")]
    InvalidSchedule(String),
    /// A golden case file could not be read or is malformed (feature `golden`).
    #[cfg(feature = "golden")]
    #[error("golden case {path}: {message}")]
    Golden {
        /// Path of the file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}
