//! The guard of a run folder: training into a folder that already holds a run continues that run
//! only if the schedule is the same, and otherwise stops before anything is written.
//!
//! The folder's `schedule.resolved.toml` is compared key by key with the resolved schedule of the
//! new run. These keys may differ, since they do not change what a step computes:
//!
//! - `name` (a label);
//! - `train.steps`, to extend or shorten a run, when `[lr_schedule] kind = "constant"` (the
//!   decaying shapes spread over `train.steps`, so there a new total would change the learning
//!   rate of every step; a phase without `end` is stored with its resolved end, so extending a run
//!   under such a phase is caught as a changed phase);
//! - `train.max_bad_steps` (when the NaN/Inf guard gives up);
//! - `checkpoint.every`, `checkpoint.keep`;
//! - `logging.every`, `logging.plot_every`, `logging.progress`;
//! - `objective.sample_steps` (used only at inference).
//!
//! Every other difference (model, preset, data, degradation, objective, FRAMER, optimiser, lr
//! schedule, batch size, seed, EMA, phases, the checkpoint folder, the log format) is refused
//! with the list of differing keys. `[checkpoint] resume = false` is refused in a folder that
//! holds a run, since it would start over on top of it. The stored schedule is then rewritten
//! (atomically) only for a fresh folder or when just the keys above changed.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use super::metrics::MetricsLog;
use super::{EngineError, checkpoint, fault};
use crate::schedule::{Experiment, LogFormat};

/// The file of the resolved schedule in a run folder.
pub(crate) const RESOLVED: &str = "schedule.resolved.toml";

/// The keys that may differ between the run in a folder and a schedule that continues it (besides
/// `train.steps`, see the module docs).
pub(crate) const MAY_DIFFER: [&str; 8] = [
    "name",
    "train.max_bad_steps",
    "checkpoint.every",
    "checkpoint.keep",
    "logging.every",
    "logging.plot_every",
    "logging.progress",
    "objective.sample_steps",
];

fn io(path: &Path, e: std::io::Error) -> EngineError {
    EngineError::Io(format!("{}: {e}", path.display()))
}

/// Checks that `experiment` may run in `out_dir` (a fresh folder, or one holding a run of the same
/// schedule; see the module docs), then writes its `schedule.resolved.toml`. Nothing is written
/// when the check fails.
///
/// # Errors
/// [`EngineError::Checkpoint`] naming the folder and every differing key when the folder holds a
/// run of another schedule, holds checkpoints or metrics without a resolved schedule, or holds a
/// run while `[checkpoint] resume = false`; [`EngineError::Io`] if a file cannot be read or
/// written.
pub(crate) fn prepare_run_dir(out_dir: &Path, experiment: &Experiment) -> Result<(), EngineError> {
    let resolved = out_dir.join(RESOLVED);
    let stored = match fs::read_to_string(&resolved) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(&resolved, e)),
    };
    let checkpoints = !checkpoint::list(&out_dir.join(&experiment.checkpoint.dir))?.is_empty();
    let metrics = [LogFormat::Jsonl, LogFormat::Csv]
        .iter()
        .any(|&f| out_dir.join(MetricsLog::file_name(f)).is_file());
    let refuse = |why: String| {
        EngineError::Checkpoint(format!(
            "{} {why}; nothing was written (train into another folder with `--out`, or remove \
             this one to start over)",
            out_dir.display()
        ))
    };
    if (stored.is_some() || checkpoints || metrics) && !experiment.checkpoint.resume {
        return Err(refuse(
            "holds a run, and `[checkpoint] resume = false` would train over it".into(),
        ));
    }
    let new = experiment.to_string();
    match &stored {
        None if checkpoints || metrics => {
            return Err(refuse(format!(
                "holds {} but no {RESOLVED}, so it cannot be checked that they come from this \
                 schedule",
                if checkpoints {
                    "checkpoints"
                } else {
                    "a metrics log"
                }
            )));
        }
        Some(old) => {
            let differences = schedule_differences(old, &new)
                .map_err(|e| refuse(format!("holds a {RESOLVED} that cannot be read ({e})")))?;
            if !differences.is_empty() {
                return Err(refuse(format!(
                    "holds a run of another schedule ({}): {}. Keys that may change to continue a \
                     run: {}, and `train.steps` with a constant learning rate",
                    resolved.display(),
                    differences.join("; "),
                    MAY_DIFFER.join(", ")
                )));
            }
            if *old == new {
                return Ok(());
            }
        }
        None => {}
    }
    fs::create_dir_all(out_dir).map_err(|e| io(out_dir, e))?;
    write_atomically(&resolved, new.as_bytes())
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let tmp = path.with_extension("toml.tmp");
    let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
    let half = bytes.len() / 2;
    f.write_all(&bytes[..half]).map_err(|e| io(&tmp, e))?;
    fault::point("schedule.write");
    f.write_all(&bytes[half..]).map_err(|e| io(&tmp, e))?;
    f.sync_all().map_err(|e| io(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The keys in which the resolved schedules `old` (of the run in the folder) and `new` differ,
/// leaving out those that may change on resume, as "`key`: OLD in the run, NEW here".
///
/// # Errors
/// The TOML parser's message if `old` does not parse.
pub(crate) fn schedule_differences(old: &str, new: &str) -> Result<Vec<String>, String> {
    let parse = |text: &str| -> Result<BTreeMap<String, String>, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let mut flat = BTreeMap::new();
        flatten("", &toml::Value::Table(table), &mut flat);
        Ok(flat)
    };
    let (old, new) = (parse(old)?, parse(new)?);
    let constant_lr = |t: &BTreeMap<String, String>| {
        t.get("lr_schedule.kind").map(String::as_str) == Some("\"constant\"")
    };
    let steps_may_differ = constant_lr(&old) && constant_lr(&new);
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    Ok(keys
        .into_iter()
        .filter(|k| !MAY_DIFFER.contains(&k.as_str()))
        .filter(|k| !(steps_may_differ && k.as_str() == "train.steps"))
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| {
            let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "absent".into());
            format!(
                "`{k}` is {} in the run, {} here",
                show(old.get(k)),
                show(new.get(k))
            )
        })
        .collect())
}

/// Every leaf of `value` under its dotted key (`train.steps`, `schedule.phase[1].end`), with its
/// TOML text.
fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                flatten(&join(k), v, out);
            }
        }
        toml::Value::Array(items) if items.iter().any(toml::Value::is_table) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        leaf => {
            out.insert(prefix.to_string(), leaf.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp(extra: &str) -> Experiment {
        let text = if extra.contains("[model]") {
            extra.to_string()
        } else {
            format!("[model]\nbackbone = \"dit\"\npreset = \"tiny\"\n{extra}")
        };
        crate::schedule::parse(&text, "t.toml", Path::new(".")).unwrap()
    }

    #[test]
    fn allowed_keys_may_differ_and_the_others_are_named() {
        let base = exp("[train]\nsteps = 10\n");
        let same = schedule_differences(&base.to_string(), &base.to_string()).unwrap();
        assert!(same.is_empty());
        let longer = exp("[train]\nsteps = 20\nmax_bad_steps = 9\n[logging]\nprogress = false\n");
        assert_eq!(
            schedule_differences(&base.to_string(), &longer.to_string()).unwrap(),
            Vec::<String>::new()
        );
        let other =
            exp("[model]\nbackbone = \"dit\"\npreset = \"small\"\n[train]\nsteps = 10\nseed = 3\n");
        let d = schedule_differences(&base.to_string(), &other.to_string()).unwrap();
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].contains("`model.preset` is \"tiny\" in the run, \"small\" here"));
        assert!(d[1].contains("`train.seed` is 0 in the run, 3 here"));
        // with a decaying learning rate, the total steps shape every step's rate
        let cosine = |steps: u64| {
            exp(&format!(
                "[train]\nsteps = {steps}\n[lr_schedule]\nkind = \"cosine\"\n"
            ))
            .to_string()
        };
        let d = schedule_differences(&cosine(10), &cosine(20)).unwrap();
        assert_eq!(d, ["`train.steps` is 10 in the run, 20 here"]);
    }
}
