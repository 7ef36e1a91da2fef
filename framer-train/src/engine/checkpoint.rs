//! Atomic, checksummed checkpoints: each is a folder `step-NNNNNNNN/` written under a temporary
//! name, synced, then renamed into place, so that a crash never leaves a half-written checkpoint
//! where a good one was. Its `state.json` records the size and SHA-256 of every file, and every
//! read checks them: [`latest`] names the newest checkpoint whose files are intact, falling back
//! (with a warning on stderr) past a truncated or corrupted one, and [`read_record`] refuses a
//! file that does not match. Older checkpoints beyond `keep` are removed only after the new one is
//! in place.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Record, Recorder};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{EngineError, fault};

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
    /// The dynamic loss scale of `mixed_precision = "fp16"` (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<super::precision::LossScale>,
}

/// The size and SHA-256 of one checkpoint file, as recorded in `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    /// Length in bytes.
    pub bytes: u64,
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
}

impl FileSum {
    /// The size and SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let digest = Sha256::digest(bytes);
        Self {
            bytes: bytes.len() as u64,
            sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// Why `bytes` (the content of `name`) is not the recorded file, if it is not.
    fn mismatch(&self, name: &str, bytes: &[u8]) -> Option<String> {
        if bytes.len() as u64 != self.bytes {
            return Some(format!(
                "{name} has {} bytes, its checkpoint recorded {} ({})",
                bytes.len(),
                self.bytes,
                if (bytes.len() as u64) < self.bytes {
                    "truncated"
                } else {
                    "overwritten"
                }
            ));
        }
        (Self::of(bytes).sha256 != self.sha256).then(|| {
            format!("{name} does not match the SHA-256 its checkpoint recorded (corrupted)")
        })
    }
}

/// Everything `state.json` holds: the [`TrainingState`], the count of non-finite steps in a row
/// when the checkpoint was taken, and the checksum of every file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateFile {
    /// The training state.
    #[serde(flatten)]
    pub state: TrainingState,
    /// Consecutive steps rejected by the NaN/Inf guard just before the checkpoint.
    #[serde(default)]
    pub consecutive_bad: u64,
    /// Size and SHA-256 of each file of the checkpoint (empty in checkpoints written before
    /// checksums were recorded, whose files are then not checked).
    #[serde(default)]
    pub files: BTreeMap<String, FileSum>,
}

fn io_err(path: &Path, e: std::io::Error) -> EngineError {
    EngineError::Checkpoint(format!("{}: {e}", path.display()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let mut f = File::create(path).map_err(|e| io_err(path, e))?;
    let cut = if fault::armed("checkpoint.file") {
        bytes.len() / 2
    } else {
        bytes.len()
    };
    f.write_all(&bytes[..cut]).map_err(|e| io_err(path, e))?;
    if cut < bytes.len() {
        fault::point("checkpoint.file");
        f.write_all(&bytes[cut..]).map_err(|e| io_err(path, e))?;
    }
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

/// Loads a record from the file at `path`. When the folder of `path` is a checkpoint whose
/// `state.json` records the file, its size and SHA-256 are checked first.
///
/// # Errors
/// [`EngineError::Checkpoint`] naming the file if it cannot be read, does not match its
/// checksum, or cannot be decoded as `R` (damaged, or the weights of another model).
pub fn read_record<B: Backend, R: Record<B>>(
    path: &Path,
    device: &B::Device,
) -> Result<R, EngineError> {
    let bytes = fs::read(path).map_err(|e| io_err(path, e))?;
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name())
        && dir.join("state.json").is_file()
        && let Ok(state) = read_state_file(dir)
        && let Some(sum) = state.files.get(&*name.to_string_lossy())
        && let Some(why) = sum.mismatch(&name.to_string_lossy(), &bytes)
    {
        return Err(EngineError::Checkpoint(format!(
            "{}: {why}",
            path.display()
        )));
    }
    Recorder::<B>::load(&CheckpointRecorder::default(), bytes, device).map_err(|e| {
        EngineError::Checkpoint(format!(
            "{}: cannot decode the record ({}); the file is damaged or holds the weights of \
             another model or preset",
            path.display(),
            short_recorder_error(&e.to_string())
        ))
    })
}

/// burn's decoding error without its advice about the record format of burn 0.14, which
/// misleads here (the file was written by this version; it is damaged or of another model).
fn short_recorder_error(message: &str) -> String {
    let cut = message
        .find("The internal data format has changed")
        .unwrap_or(message.len());
    message[..cut]
        .trim_end()
        .trim_end_matches("\\n")
        .trim_end()
        .to_string()
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
/// checkpoint's folder. `consecutive_bad` is the count of non-finite steps in a row at this
/// point (restored on resume so that the NaN/Inf guard counts on exactly).
pub fn save(
    dir: &Path,
    state: &TrainingState,
    consecutive_bad: u64,
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
    let mut sums = BTreeMap::new();
    for (file, bytes) in &files.files {
        write_synced(&tmp.join(file), bytes)?;
        sums.insert(file.clone(), FileSum::of(bytes));
    }
    let state_file = StateFile {
        state: state.clone(),
        consecutive_bad,
        files: sums,
    };
    let json = serde_json::to_vec_pretty(&state_file)
        .map_err(|e| EngineError::Checkpoint(e.to_string()))?;
    write_synced(&tmp.join("state.json"), &json)?;
    sync_dir(&tmp);
    fault::point("checkpoint.rename");
    let target = dir.join(&name);
    if target.exists() {
        // the same step saved again (e.g. after a resume): replace it only now that the new one is
        // complete
        let old = dir.join(format!(".{name}.old"));
        let _ = fs::remove_dir_all(&old);
        fs::rename(&target, &old).map_err(|e| io_err(&target, e))?;
        fault::point("checkpoint.replace");
        fs::rename(&tmp, &target).map_err(|e| io_err(&target, e))?;
        let _ = fs::remove_dir_all(&old);
    } else {
        fs::rename(&tmp, &target).map_err(|e| io_err(&target, e))?;
        // left by a crash while this step was being replaced
        let _ = fs::remove_dir_all(dir.join(format!(".{name}.old")));
    }
    sync_dir(dir);
    fault::point("checkpoint.latest");
    let latest_tmp = dir.join(".latest.tmp");
    write_synced(&latest_tmp, name.as_bytes())?;
    fs::rename(&latest_tmp, dir.join("latest")).map_err(|e| io_err(dir, e))?;
    sync_dir(dir);
    fault::point("checkpoint.prune");
    for old in list(dir)?.into_iter().rev().skip(keep.max(1)) {
        let _ = fs::remove_dir_all(old.1);
    }
    Ok(target)
}

/// Complete checkpoints in `dir` (those with a `state.json`), sorted by step. A checkpoint being
/// replaced by a new save of the same step sits for a moment under `.step-NNNNNNNN.old`; a crash
/// at that moment leaves it there, and it is listed as long as its step has no other folder.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, EngineError> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut replaced = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let step = |s: &str| s.strip_prefix("step-").and_then(|s| s.parse::<u64>().ok());
        if !e.path().join("state.json").is_file() {
            continue;
        }
        if let Some(step) = step(&name) {
            out.push((step, e.path()));
        } else if let Some(step) = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".old"))
            .and_then(step)
        {
            replaced.push((step, e.path()));
        }
    }
    for (step, path) in replaced {
        if !out.iter().any(|(s, _)| *s == step) {
            out.push((step, path));
        }
    }
    out.sort();
    Ok(out)
}

/// The complete checkpoints of `dir`, newest first: the one `latest` names, then the others by
/// descending step.
fn candidates(dir: &Path) -> Result<Vec<PathBuf>, EngineError> {
    let mut all: Vec<PathBuf> = list(dir)?.into_iter().rev().map(|(_, p)| p).collect();
    if let Ok(name) = fs::read_to_string(dir.join("latest"))
        && let Some(i) = all
            .iter()
            .position(|p| p.file_name() == Some(name.trim().as_ref()))
    {
        let named = all.remove(i);
        all.insert(0, named);
    }
    Ok(all)
}

/// The newest complete checkpoint in `dir` without checking its files: the one `latest` names if
/// it is complete, else the highest step found.
pub fn newest(dir: &Path) -> Result<Option<PathBuf>, EngineError> {
    Ok(candidates(dir)?.into_iter().next())
}

/// The newest checkpoint in `dir` whose files are intact ([`verify`]): the one `latest` names,
/// else the highest step. A damaged checkpoint is passed over with a warning on stderr naming it
/// and what is wrong.
///
/// # Errors
/// [`EngineError::Checkpoint`] listing every checkpoint and its fault when none is intact.
pub fn latest(dir: &Path) -> Result<Option<PathBuf>, EngineError> {
    let mut damaged = Vec::new();
    for path in candidates(dir)? {
        match verify(&path) {
            Ok(_) => {
                for why in &damaged {
                    eprintln!(
                        "warning: {why}; using the previous good checkpoint {}",
                        path.display()
                    );
                }
                return Ok(Some(path));
            }
            Err(EngineError::Checkpoint(why)) => damaged.push(why),
            Err(e) => return Err(e),
        }
    }
    if damaged.is_empty() {
        Ok(None)
    } else {
        Err(EngineError::Checkpoint(format!(
            "no intact checkpoint in {}: {}",
            dir.display(),
            damaged.join("; ")
        )))
    }
}

/// Checks the checkpoint folder `path`: its `state.json` reads, its step matches the folder's
/// name, and every file it records has the recorded size and SHA-256. Returns the state.
///
/// # Errors
/// [`EngineError::Checkpoint`] naming the checkpoint and the first fault found.
pub fn verify(path: &Path) -> Result<StateFile, EngineError> {
    let bad =
        |why: String| EngineError::Checkpoint(format!("checkpoint {}: {why}", path.display()));
    let state = read_state_file(path).map_err(|e| bad(e.to_string()))?;
    if let Some(step) = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("step-"))
        .and_then(|n| n.parse::<u64>().ok())
        && step != state.state.step
    {
        return Err(bad(format!(
            "state.json says step {}, the folder's name step {step}",
            state.state.step
        )));
    }
    for (name, sum) in &state.files {
        let file = path.join(name);
        let bytes = fs::read(&file).map_err(|e| bad(format!("{name}: {e}")))?;
        if let Some(why) = sum.mismatch(name, &bytes) {
            return Err(bad(why));
        }
    }
    Ok(state)
}

/// Reads the whole `state.json` of the checkpoint at `path`.
///
/// # Errors
/// [`EngineError::Checkpoint`] naming the file if it cannot be read or parsed.
pub fn read_state_file(path: &Path) -> Result<StateFile, EngineError> {
    let file = path.join("state.json");
    let bytes = fs::read(&file).map_err(|e| io_err(&file, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| EngineError::Checkpoint(format!("{}: {e}", file.display())))
}

/// Reads the state of the checkpoint at `path`.
pub fn read_state(path: &Path) -> Result<TrainingState, EngineError> {
    read_state_file(path).map(|s| s.state)
}

/// `module.load_record(record)`, with a panic of burn's (a record of another architecture)
/// turned into an error naming `file`.
///
/// # Errors
/// [`EngineError::Checkpoint`] if the record does not fit the module.
pub fn load_into<B: Backend, M: Module<B>>(
    module: M,
    record: M::Record,
    file: &Path,
) -> Result<M, EngineError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| module.load_record(record))).map_err(
        |panic| {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("the record does not fit the model");
            EngineError::Checkpoint(format!(
                "{}: does not fit the model of the schedule's [model] ({why})",
                file.display()
            ))
        },
    )
}
