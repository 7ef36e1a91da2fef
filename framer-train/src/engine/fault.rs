//! Fault injection for the crash tests: `FRAMER_FAULT=POINT:N` makes the process exit at once
//! (status [`FAULT_EXIT_CODE`], no destructor or buffered write runs, as after `kill -9`) the
//! `N`-th time it reaches the named point. Without the variable every point is a no-op.
//!
//! The points sit inside the writes that a crash must not damage:
//!
//! | point | where |
//! |---|---|
//! | `step` | after a training step, before it is logged |
//! | `metrics.line` | half-way through writing a metrics line |
//! | `metrics.rewrite` | half-way through writing the trimmed log of a resumed run |
//! | `checkpoint.file` | half-way through writing a checkpoint file (in its temporary folder) |
//! | `checkpoint.rename` | a checkpoint complete in its temporary folder, before the rename |
//! | `checkpoint.latest` | a checkpoint in place, before `latest` names it |
//! | `checkpoint.prune` | `latest` updated, before old checkpoints are removed |
//! | `schedule.write` | half-way through writing `schedule.resolved.toml` |

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The exit status of a process stopped by an injected fault.
pub const FAULT_EXIT_CODE: i32 = 86;

/// The environment variable that arms a fault point.
pub const FAULT_VAR: &str = "FRAMER_FAULT";

fn armed_point() -> Option<&'static (String, u64)> {
    static POINT: OnceLock<Option<(String, u64)>> = OnceLock::new();
    POINT
        .get_or_init(|| {
            let v = std::env::var(FAULT_VAR).ok()?;
            let (name, n) = v.rsplit_once(':').unwrap_or((v.as_str(), "1"));
            Some((name.to_string(), n.parse().ok()?))
        })
        .as_ref()
}

/// Whether `name` is the armed point (so that a writer can cut its write in two around it).
pub fn armed(name: &str) -> bool {
    armed_point().is_some_and(|(p, _)| p == name)
}

/// Marks the point `name`: exits the process if it is the armed point and this is its `N`-th
/// hit.
pub fn point(name: &str) {
    static HITS: AtomicU64 = AtomicU64::new(0);
    if let Some((p, n)) = armed_point()
        && p == name
        && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        std::process::exit(FAULT_EXIT_CODE);
    }
}
