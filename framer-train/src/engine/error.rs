//! [`EngineError`]: everything that can stop a run.

use thiserror::Error;

/// Everything that can stop a run.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The FRAMER loss rejected its input or settings.
    #[error("FRAMER loss: {0}")]
    Framer(#[from] framer::FramerError),
    /// The data source failed.
    #[error("data: {0}")]
    Data(String),
    /// A checkpoint could not be written or read.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A log or plot could not be written.
    #[error("i/o: {0}")]
    Io(String),
    /// A data-parallel peer failed, or the peers could not agree (names the peer).
    #[error("distributed: {0}")]
    Distributed(String),
    /// The model does not fit the schedule (e.g. a student index beyond the taps).
    #[error("model: {0}")]
    Model(String),
    /// The model's taps could not feed the FRAMER loss (no teacher, heads that do not fit, …).
    #[error("FRAMER taps: {0}")]
    Taps(#[from] framer::TapsError),
    /// The schedule does not fit the model (a student pattern that matches no tap, …).
    #[error("{0}")]
    Schedule(#[from] crate::schedule::ScheduleError),
    /// Too many consecutive steps had a non-finite loss or gradient.
    #[error(
        "stopping at step {step}: {consecutive} consecutive steps had a non-finite loss or gradient \
         (last: loss {loss}, gradient norm {grad_norm}); no update was applied for them and the \
         last checkpoint was left untouched"
    )]
    NonFinite {
        /// The step that hit the limit.
        step: u64,
        /// How many steps in a row were rejected.
        consecutive: u64,
        /// The loss of the last rejected step.
        loss: f64,
        /// The gradient norm of the last rejected step.
        grad_norm: f64,
    },
}
