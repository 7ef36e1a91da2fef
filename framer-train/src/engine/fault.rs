//! Fault injection for the crash tests: `FRAMER_FAULT=POINT:N` makes the process exit at once
//! (status [`FAULT_EXIT_CODE`], no destructor or buffered write runs, as after `kill -9`) the
//! `N`-th time it reaches the named point; `POINT:N,POINT:N` arms several points, and the first
//! one reached stops the process. Without the variable every point is a no-op.
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
//! | `checkpoint.replace` | a checkpoint saved again for the same step: the old one moved aside, the new one not yet in place |
//! | `checkpoint.latest` | a checkpoint in place, before `latest` names it |
//! | `checkpoint.prune` | `latest` updated, before old checkpoints are removed |
//! | `schedule.write` | half-way through writing `schedule.resolved.toml` |

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The exit status of a process stopped by an injected fault.
pub const FAULT_EXIT_CODE: i32 = 86;

/// The environment variable that arms a fault point.
pub const FAULT_VAR: &str = "FRAMER_FAULT";

/// The armed points, each with its hit count so far and the hit that stops the process.
fn armed_points() -> &'static [(String, AtomicU64, u64)] {
    static POINTS: OnceLock<Vec<(String, AtomicU64, u64)>> = OnceLock::new();
    POINTS.get_or_init(|| {
        let Ok(v) = std::env::var(FAULT_VAR) else {
            return Vec::new();
        };
        v.split(',')
            .filter_map(|p| {
                let (name, n) = p.trim().rsplit_once(':').unwrap_or((p.trim(), "1"));
                Some((name.to_string(), AtomicU64::new(0), n.parse().ok()?))
            })
            .collect()
    })
}

/// Whether `name` is an armed point (so that a writer can cut its write in two around it).
pub fn armed(name: &str) -> bool {
    armed_points().iter().any(|(p, _, _)| p == name)
}

/// Marks the point `name`: exits the process if it is armed and this is the hit it was armed
/// for.
pub fn point(name: &str) {
    for (p, hits, n) in armed_points() {
        if p == name && hits.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            std::process::exit(FAULT_EXIT_CODE);
        }
    }
}
