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
mod trainable;
mod validate;

use std::path::Path;

pub use error::{Location, ScheduleError, edit_distance, suggest};
pub use phase::{PhaseSection, Ramp, Segment, StepSchedule};
pub use resolved::{
    CheckpointConfig, DataConfig, Experiment, FramerConfig, LoggingConfig, LrScheduleConfig,
    MaskConfig, ObjectiveConfig, OptimizerConfig, Phase, ScheduleOrigin, StepValues,
    StudentPattern, Students, StudentsError, TrainConfig, FramerValue, ValueSource, glob_matches,
};
pub use sections::{
    BetaSchedule, CheckpointSection, DataSection, FramerSection, LogFormat,
    LoggingSection, LrScheduleKind, LrScheduleSection, MaskKind, ObjectiveKind,
    ObjectiveSection, OptimizerKind, OptimizerSection, ScheduleFile, ScheduleSection,
    SigmaSampling, StudentsSpec, TrainSection,
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

/// The student tap names that `[framer] students` selects out of `available` (the model's
/// students in recording order), with errors at the entry's `file:line:col` and the closest tap
/// name as a suggestion.
///
/// # Errors
/// A [`ScheduleError`] for an index beyond the taps, a name or glob that matches no tap, or fewer
/// than 2 students.
pub fn resolve_students(
    experiment: &Experiment,
    available: &[String],
) -> Result<Vec<String>, ScheduleError> {
    experiment.framer.students.resolve(available).map_err(|e| {
        let span = match (&experiment.framer.students, e.pattern) {
            (Students::Patterns(p), Some(k)) if !p[k].span.is_empty() => Some(p[k].span.clone()),
            _ => experiment
                .origin
                .as_ref()
                .and_then(|o| students_key_span(&o.text)),
        };
        let error = match (&experiment.origin, span) {
            (Some(origin), Some(span)) => {
                ScheduleError::at(&origin.path, &origin.text, span, "framer.students", e.message)
            }
            _ => ScheduleError::new(e.message),
        };
        match e.help {
            Some(help) => error.with_help(help),
            None => error,
        }
    })
}

/// The value of `students = ..` in the `[framer]` table of `source`, if written there.
fn students_key_span(source: &str) -> Option<std::ops::Range<usize>> {
    let mut offset = 0;
    let mut in_framer = false;
    for line in source.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with('[') {
            in_framer = t.trim_start_matches('[').trim_end_matches(']').trim() == "framer";
        } else if in_framer && t.starts_with("students") {
            let eq = line.find('=')?;
            let value = line[eq + 1..].trim();
            let start = offset + line.find(value).unwrap_or(eq + 1);
            return Some(start..start + value.len());
        }
        offset += line.len();
    }
    None
}
