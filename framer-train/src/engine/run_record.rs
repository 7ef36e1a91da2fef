//! `model.toml` in a run folder: the kind of model the run trained ([`ModelConfig::KIND`]) and
//! its resolved configuration, so that `sr` and `analyze` rebuild exactly that model, and a
//! binary that does not know the kind says so instead of falling back to another model.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{EngineError, ModelConfig};

/// The file name inside a run folder.
pub const FILE: &str = "model.toml";

/// What `model.toml` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    /// [`ModelConfig::KIND`] of the trained model.
    pub kind: String,
    /// The model's configuration as the registry resolved it (presets expanded).
    pub config: toml::Table,
}

impl RunRecord {
    /// The record of `config`.
    pub fn of<C: ModelConfig>(config: &C) -> Result<Self, EngineError> {
        let value = toml::Value::try_from(config)
            .map_err(|e| EngineError::Model(format!("cannot record the model configuration: {e}")))?;
        let config = match value {
            toml::Value::Table(t) => t,
            other => {
                let mut t = toml::Table::new();
                t.insert("value".into(), other);
                t
            }
        };
        Ok(Self {
            kind: C::KIND.to_string(),
            config,
        })
    }
}

/// The path of the record in `run_dir`.
pub fn path(run_dir: &Path) -> PathBuf {
    run_dir.join(FILE)
}

/// Writes the record of `config` into `run_dir` (atomically), or checks that the one already
/// there is the same.
///
/// # Errors
/// [`EngineError::Checkpoint`] when the folder already holds a run of another model kind or
/// configuration (nothing is overwritten); I/O errors naming the file.
pub fn write<C: ModelConfig>(run_dir: &Path, config: &C) -> Result<(), EngineError> {
    let record = RunRecord::of(config)?;
    let file = path(run_dir);
    if file.is_file() {
        let existing = read(run_dir)?;
        if existing != record {
            return Err(EngineError::Checkpoint(format!(
                "{} records a run of model kind `{}` with another configuration than this \
                 schedule's (`{}`); train into another folder (`--out`) or remove that run",
                file.display(),
                existing.kind,
                record.kind
            )));
        }
        return Ok(());
    }
    std::fs::create_dir_all(run_dir)
        .map_err(|e| EngineError::Io(format!("{}: {e}", run_dir.display())))?;
    let text = toml::to_string(&record)
        .map_err(|e| EngineError::Io(format!("{}: {e}", file.display())))?;
    let tmp = run_dir.join(format!(".{FILE}.tmp"));
    std::fs::write(&tmp, text).map_err(|e| EngineError::Io(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, &file).map_err(|e| EngineError::Io(format!("{}: {e}", file.display())))
}

/// Reads the record of `run_dir`.
///
/// # Errors
/// [`EngineError::Checkpoint`] naming the file when it is missing or malformed.
pub fn read(run_dir: &Path) -> Result<RunRecord, EngineError> {
    let file = path(run_dir);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        EngineError::Checkpoint(format!(
            "{}: {e} (a run folder written by `framer train` records its model there)",
            file.display()
        ))
    })?;
    toml::from_str(&text).map_err(|e| EngineError::Checkpoint(format!("{}: {e}", file.display())))
}
