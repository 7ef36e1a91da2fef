//! Atomic checkpoints: each is a folder `step-NNNNNNNN/` written under a temporary name, synced,
//! then renamed into place, so that a crash never leaves a half-written checkpoint where a good one
//! was. `latest` names the newest complete one; older ones beyond `keep` are removed only after the
//! new one is in place.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Record, Recorder};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use super::EngineError;

/// The recorder of every checkpoint file (named MessagePack, full precision; the same bytes as
/// burn's `NamedMpkFileRecorder<FullPrecisionSettings>`).
pub type CheckpointRecorder = NamedMpkBytesRecorder<FullPrecisionSettings>;

/// The non-tensor state of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// The next step to run (the number of steps completed).
    pub step: u64,
    /// Seed of the run; every random draw derives from `(seed, step)`, so no generator state is
    /// needed to resume exactly.
    pub seed: u64,
    /// Experiment name.
    pub experiment: String,
    /// Number of EMA updates done.
    pub ema_updates: u64,
    /// Steps rejected by the NaN/Inf guard so far.
    pub skipped_steps: u64,
}

fn io_err(path: &Path, e: std::io::Error) -> EngineError {
    EngineError::Checkpoint(format!("{}: {e}", path.display()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let mut f = File::create(path).map_err(|e| io_err(path, e))?;
    f.write_all(bytes).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

fn sync_dir(path: &Path) {
    // Directory fsync makes the rename durable on POSIX; not every platform allows it.
    if let Ok(d) = File::open(path) {
        let _ = d.sync_all();
    }
}

/// Records `record` to bytes.
pub fn to_bytes<B: Backend, R: Record<B>>(record: R) -> Result<Vec<u8>, EngineError> {
    Recorder::<B>::record(&CheckpointRecorder::default(), record, ())
        .map_err(|e| EngineError::Checkpoint(format!("cannot encode a record: {e}")))
}

/// Loads a record from the file at `path`.
pub fn read_record<B: Backend, R: Record<B>>(
    path: &Path,
    device: &B::Device,
) -> Result<R, EngineError> {
    let bytes = fs::read(path).map_err(|e| io_err(path, e))?;
    Recorder::<B>::load(&CheckpointRecorder::default(), bytes, device)
        .map_err(|e| EngineError::Checkpoint(format!("{}: cannot decode: {e}", path.display())))
}

/// The files of one checkpoint, as encoded bytes.
#[derive(Debug, Clone, Default)]
pub struct CheckpointFiles {
    /// `(file name, bytes)`, e.g. `("model.mpk", ..)`.
    pub files: Vec<(String, Vec<u8>)>,
}

impl CheckpointFiles {
    /// Adds a module's record.
    pub fn module<B: Backend, M: Module<B>>(
        &mut self,
        name: &str,
        module: &M,
    ) -> Result<(), EngineError> {
        let bytes = to_bytes::<B, _>(module.clone().into_record())?;
        self.files.push((format!("{name}.mpk"), bytes));
        Ok(())
    }

    /// Adds any record.
    pub fn record<B: Backend, R: Record<B>>(
        &mut self,
        name: &str,
        record: R,
    ) -> Result<(), EngineError> {
        let bytes = to_bytes::<B, _>(record)?;
        self.files.push((format!("{name}.mpk"), bytes));
        Ok(())
    }
}

/// The folder name of the checkpoint taken after `step` steps.
pub fn checkpoint_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// Writes a checkpoint atomically into `dir` and keeps the newest `keep` checkpoints. Returns the
/// checkpoint's folder.
pub fn save(
    dir: &Path,
    state: &TrainingState,
    files: CheckpointFiles,
    keep: usize,
) -> Result<PathBuf, EngineError> {
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let name = checkpoint_name(state.step);
    let tmp = dir.join(format!(".{name}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
    }
    fs::create_dir(&tmp).map_err(|e| io_err(&tmp, e))?;
    for (file, bytes) in &files.files {
        write_synced(&tmp.join(file), bytes)?;
    }
    let json =
        serde_json::to_vec_pretty(state).map_err(|e| EngineError::Checkpoint(e.to_string()))?;
    write_synced(&tmp.join("state.json"), &json)?;
    sync_dir(&tmp);
    let target = dir.join(&name);
    if target.exists() {
        // the same step saved again (e.g. after a resume): replace it only now that the new one is
        // complete
        let old = dir.join(format!(".{name}.old"));
        let _ = fs::remove_dir_all(&old);
        fs::rename(&target, &old).map_err(|e| io_err(&target, e))?;
        fs::rename(&tmp, &target).map_err(|e| io_err(&target, e))?;
        let _ = fs::remove_dir_all(&old);
    } else {
        fs::rename(&tmp, &target).map_err(|e| io_err(&target, e))?;
    }
    sync_dir(dir);
    let latest_tmp = dir.join(".latest.tmp");
    write_synced(&latest_tmp, name.as_bytes())?;
    fs::rename(&latest_tmp, dir.join("latest")).map_err(|e| io_err(dir, e))?;
    sync_dir(dir);
    for old in list(dir)?.into_iter().rev().skip(keep.max(1)) {
        let _ = fs::remove_dir_all(old.1);
    }
    Ok(target)
}

/// Complete checkpoints in `dir` (those with a `state.json`), sorted by step.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, EngineError> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<u64>().ok())
            && e.path().join("state.json").is_file()
        {
            out.push((step, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The newest complete checkpoint in `dir`: the one `latest` names if it is complete, else the
/// highest step found.
pub fn latest(dir: &Path) -> Result<Option<PathBuf>, EngineError> {
    if let Ok(name) = fs::read_to_string(dir.join("latest")) {
        let p = dir.join(name.trim());
        if p.join("state.json").is_file() {
            return Ok(Some(p));
        }
    }
    Ok(list(dir)?.pop().map(|(_, p)| p))
}

/// Reads the state of the checkpoint at `path`.
pub fn read_state(path: &Path) -> Result<TrainingState, EngineError> {
    let file = path.join("state.json");
    let bytes = fs::read(&file).map_err(|e| io_err(&file, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| EngineError::Checkpoint(format!("{}: {e}", file.display())))
}
