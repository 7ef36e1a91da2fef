//! The TOML schedule: one file describes one experiment.
//!
//! [`load`] (or [`parse`]) reads a file into the raw [`ScheduleFile`] (strict: unknown keys and
//! wrong types are errors), checks every range, and resolves it into an [`Experiment`] of plain
//! values. Every error is a [`ScheduleError`] with `file:line:col`, the key and, for near-miss
//! names, a suggestion. See `examples/*.toml` for commented schedules.

mod error;
mod phase;
mod resolved;
mod sections;
mod toml_error;
mod validate;

use std::path::Path;

pub use error::{Location, ScheduleError, edit_distance, suggest};
pub use phase::{PhaseSection, Ramp, Segment, StepSchedule};
pub use resolved::{
    CheckpointConfig, DataConfig, Experiment, FramerConfig, LoggingConfig, LrScheduleConfig,
    MaskConfig, ModelConfig, ObjectiveConfig, OptimizerConfig, Phase, StepValues, Students,
    TrainConfig,
};
pub use sections::{
    BackboneKind, BetaSchedule, CheckpointSection, DataSection, FramerSection, LogFormat,
    LoggingSection, LrScheduleKind, LrScheduleSection, MaskKind, ModelSection, ObjectiveKind,
    ObjectiveSection, OptimizerKind, OptimizerSection, ScheduleFile, ScheduleSection,
    SigmaSampling, StudentsSpec, TrainSection,
};

/// Reads and validates the schedule at `path`.
///
/// Relative paths inside the file (`[data] hr_dir`, ...) are resolved against the file's folder.
pub fn load(path: impl AsRef<Path>) -> Result<Experiment, ScheduleError> {
    let path = path.as_ref();
    let source = std::fs::read_to_string(path).map_err(|e| {
        ScheduleError::new(format!("cannot read schedule `{}`: {e}", path.display()))
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&source, &path.display().to_string(), base)
}

/// Parses and validates schedule text. `path` is only used in messages; relative paths in the
/// file are resolved against `base_dir`.
pub fn parse(source: &str, path: &str, base_dir: &Path) -> Result<Experiment, ScheduleError> {
    let file: ScheduleFile =
        toml::from_str(source).map_err(|e| toml_error::convert(path, source, &e))?;
    validate::resolve(
        file,
        &validate::Ctx {
            path,
            source,
            base_dir,
        },
    )
}
