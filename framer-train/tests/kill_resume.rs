//! Fault injection: a `framer train` process is killed at least 20 times at seeded pseudo-random
//! points and resumed each time; its final weights, optimiser and EMA state, checkpoints and whole
//! metrics log must equal those of an uninterrupted run, with every step logged exactly once.
//!
//! Half of the kills are `kill -9` after a seeded delay (anywhere: start-up, a step, a log line,
//! a checkpoint); the other half stop the process at a named point inside the writes that a crash
//! must not damage (`FRAMER_FAULT`, see `framer_train::engine::fault`): half-way through a
//! checkpoint file or a metrics line, between a checkpoint's rename and `latest`, while a
//! resumed run trims its log, while a checkpoint is replaced, and so on.
//!
//! Both runs start from one checkpoint written by a first process (stopped right after it), so
//! that they share their initial weights whether or not weight initialisation is seeded; from
//! there on the uninterrupted run and the killed one must agree bit for bit.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use framer_train::engine::fault::FAULT_EXIT_CODE;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const STEPS: u64 = 120;
const KILLS: usize = 24;
const SCHEDULE: &str = "name = \"kill\"\n[model]\nbackbone = \"dit\"\npreset = \"tiny\"\n\
                        [data]\ncrop_size = 16\nscale = 4\n[train]\nsteps = 120\nbatch_size = 1\n\
                        seed = 7\nema_decay = 0.99\n[checkpoint]\nevery = 3\nkeep = 2\n\
                        [logging]\nprogress = false\nplot_every = 10\n";

/// The fault points, and the largest hit count drawn for each. A resumed run need not reach the
/// first two (there may be no log to trim, no checkpoint to replace), so each kill at a point also
/// arms `step` as a backstop.
const POINTS: [(&str, u64); 8] = [
    ("metrics.rewrite", 1),
    ("checkpoint.replace", 1),
    ("step", 6),
    ("metrics.line", 6),
    ("checkpoint.file", 6),
    ("checkpoint.rename", 3),
    ("checkpoint.latest", 3),
    ("checkpoint.prune", 3),
];

fn command(schedule: &Path, out: &Path, fault: Option<String>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_framer"));
    cmd.arg("train")
        .arg(schedule)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match fault {
        Some(f) => cmd.env("FRAMER_FAULT", f),
        None => cmd.env_remove("FRAMER_FAULT"),
    };
    cmd
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The metrics log as JSON records without the wall-clock `seconds`, and the raw lines.
fn records(run: &Path) -> (Vec<serde_json::Value>, Vec<String>) {
    let text = fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let values = lines
        .iter()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect();
    (values, lines)
}

struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn killed_and_resumed_runs_equal_the_uninterrupted_run() {
    let root = std::env::temp_dir().join(format!("framer-kill-resume-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).unwrap();
    let _cleanup = Cleanup(root.clone());
    let schedule = root.join("kill.toml");
    fs::write(&schedule, SCHEDULE).unwrap();

    // the shared start: a first process stopped while writing the resolved schedule, then one
    // stopped right after the first checkpoint (step 3)
    let base = root.join("base");
    let o = command(&schedule, &base, Some("schedule.write:1".into()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(FAULT_EXIT_CODE));
    let o = command(&schedule, &base, Some("checkpoint.prune:1".into()))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(FAULT_EXIT_CODE),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (straight, killed) = (root.join("straight"), root.join("killed"));
    copy_dir(&base, &straight);
    copy_dir(&base, &killed);

    // the uninterrupted run, timed to size the kill delays
    let started = Instant::now();
    let o = command(&schedule, &straight, None).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let whole = started.elapsed();
    // start-up and one step, to size the kill delays: up to start-up and three steps
    let probe = root.join("probe");
    copy_dir(&base, &probe);
    let started = Instant::now();
    let o = command(&schedule, &probe, Some("step:1".into()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(FAULT_EXIT_CODE));
    let first = started.elapsed();
    let per_step = whole.saturating_sub(first) / (STEPS - 4) as u32;
    let max_delay = first + per_step * 3;

    let mut rng = StdRng::seed_from_u64(15);
    let mut kills = Vec::new();
    let mut finished = false;
    while kills.len() < KILLS {
        if rng.random_bool(0.5) {
            let (point, max) = POINTS[rng.random_range(0..POINTS.len())];
            let n = rng.random_range(1..=max);
            let backstop = rng.random_range(1..=6);
            let o = command(
                &schedule,
                &killed,
                Some(format!("{point}:{n},step:{backstop}")),
            )
            .output()
            .unwrap();
            match o.status.code() {
                Some(FAULT_EXIT_CODE) => kills.push(format!("{point}:{n} (or step:{backstop})")),
                Some(0) => {
                    finished = true;
                    break;
                }
                _ => panic!(
                    "{point}:{n}: {:?}\n{}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr)
                ),
            }
        } else {
            // kill -9 anywhere within start-up and a few steps
            let delay = Duration::from_micros(rng.random_range(0..=max_delay.as_micros() as u64));
            let mut child = command(&schedule, &killed, None).spawn().unwrap();
            std::thread::sleep(delay);
            let _ = child.kill();
            let status = child.wait().unwrap();
            if status.success() {
                finished = true;
                break;
            }
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(9),
                "{status:?}: the run failed instead of being killed"
            );
            kills.push(format!("kill -9 after {delay:?}"));
        }
    }
    assert!(
        kills.len() >= 20,
        "the run finished after only {} kills (whole run {whole:?}, start-up and a step \
         {first:?}): {kills:?}",
        kills.len()
    );
    if !finished {
        let o = command(&schedule, &killed, None).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let kinds: std::collections::BTreeSet<&str> = kills
        .iter()
        .map(|k| k.split(':').next().unwrap().split(" after").next().unwrap())
        .collect();
    assert!(kinds.len() >= 6, "too few kinds of kill: {kills:?}");

    // the weights and EMA weights of the last two checkpoints byte for byte, and their state.
    // (burn writes the optimiser's state from a hash map, in an order that differs from process
    // to process even between two uninterrupted runs, so `optim.mpk` is compared through what it
    // drives: every later step of every resumed process matches the uninterrupted run.)
    for step in [STEPS - 3, STEPS] {
        for file in ["model.mpk", "ema.mpk"] {
            let rel = format!("checkpoints/step-{step:08}/{file}");
            assert!(
                fs::read(straight.join(&rel)).unwrap() == fs::read(killed.join(&rel)).unwrap(),
                "{rel} differs after {kills:?}"
            );
        }
        let state = |run: &Path| {
            let text =
                fs::read_to_string(run.join(format!("checkpoints/step-{step:08}/state.json")))
                    .unwrap();
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v["files"].as_object_mut().unwrap().remove("optim.mpk");
            v
        };
        assert_eq!(state(&straight), state(&killed), "after {kills:?}");
    }
    assert_eq!(
        fs::read_to_string(killed.join("checkpoints/latest")).unwrap(),
        format!("step-{STEPS:08}")
    );
    assert_eq!(
        fs::read(straight.join("schedule.resolved.toml")).unwrap(),
        fs::read(killed.join("schedule.resolved.toml")).unwrap()
    );
    // the whole metrics log: every step once, in order, with the same values
    let (a, a_lines) = records(&straight);
    let (b, b_lines) = records(&killed);
    let steps: Vec<u64> = b.iter().map(|r| r["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, (0..STEPS).collect::<Vec<_>>(), "after {kills:?}");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "after {kills:?}");
    }
    // the records written before the first checkpoint are the base run's, as written
    assert_eq!(a_lines[..3], b_lines[..3]);
}
