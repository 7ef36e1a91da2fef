//! The TOML schedule: one file describes one experiment.
//!
//! [`load`] (or [`parse`]) reads a file into the raw [`ScheduleFile`] (strict: unknown keys and
//! wrong types are errors), checks every range, and resolves it into an [`Experiment`] of plain
//! values. Every error is a [`ScheduleError`] with `file:line:col`, the key and, for near-miss
//! names, a suggestion. See `examples/*.toml` for commented schedules.

mod distributed;
mod error;
mod init;
mod latent;
mod lora;
mod prompts;
mod phase;
mod provenance;
mod resolved;
mod sections;
mod spans;
mod students;
mod toml_error;
mod trainable;
mod validate;
mod validate_framer;

use std::path::Path;

pub use distributed::{Coordinator, DistributedConfig, DistributedSection, KeyScope, Launch};
pub use init::{InitConfig, InitSection, WeightLayout};
pub use latent::{LatentConfig, LatentSection};
pub use lora::{LoraSection, LoraSettings};
pub use prompts::{PromptsConfig, PromptsSection};
pub use error::{Location, ScheduleError, suggest};
pub use phase::{PhaseSection, Ramp, Segment, StepSchedule};
pub use provenance::FramerValue;
pub use resolved::{
    CheckpointConfig, DataConfig, Experiment, FramerConfig, LoggingConfig, LrScheduleConfig,
    ObjectiveConfig, OptimizerConfig, Phase, ScheduleOrigin, StepValues, TrainConfig,
};
pub use sections::{
    BetaSchedule, CheckpointSection, DataSection, FramerSection, LogFormat,
    LoggingSection, LrScheduleKind, LrScheduleSection, MaskKind, MixedPrecision, ObjectiveKind,
    ObjectiveSection, OptimizerKind, OptimizerSection, ScheduleFile, ScheduleSection,
    SigmaSampling, StudentWeightsSpec, StudentsSpec, TrainSection,
};
pub use students::{
    StudentPattern, StudentWeight, StudentWeightPattern, Students, StudentsError, ValueSource,
    glob_matches, resolve_student_weights, resolve_students,
};
pub use trainable::{ParamPattern, resolve_trainable};

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

/// Turns a `toml` error on `source` (read from `path`) into a located [`ScheduleError`] naming the
/// table and key.
pub(crate) fn convert_toml_error(path: &str, source: &str, error: &toml::de::Error) -> ScheduleError {
    toml_error::convert(path, source, error)
}

/// `path` made absolute against the working directory (unchanged if that fails), so that a run
/// folder's resolved schedule names the files of `[init]`, `[latent]` and `[prompts]` wherever it
/// is read from.
fn absolute(path: std::path::PathBuf) -> std::path::PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}
