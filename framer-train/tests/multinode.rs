//! Data-parallel training across processes through burn-collective's global level, as a user
//! launches it: one `framer train` per node on 127.0.0.1, node 0 starting the coordinator.
//! Every process is started by the test, bounded in time and killed if it overruns.
//!
//! burn-collective 0.21.0's global level hangs at its second operation, so `nodes > 1` is refused
//! unless `FRAMER_UNSTABLE_GLOBAL_COLLECTIVE=1`. These tests set it to check what works up to
//! that point (the coordinator, the registration, the agreement check, which is one operation);
//! the full run against one process is ignored until the pinned burn has the fix.

#![cfg(feature = "distributed")]

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use framer_train::engine::distributed::GLOBAL_LEVEL_OVERRIDE;
use framer_train::engine::metrics;
use framer_train::schedule::LogFormat;

/// A tiny DiT on the global batch 4: 2 nodes × batch 2 against 1 process × batch 4.
const RUN: &str = "[model]\nbackbone = \"dit\"\npreset = \"tiny\"\n[data]\ncrop_size = 16\nscale = 4\n\
                   [train]\nsteps = 5\nbatch_size = 4\nseed = 7\n[framer]\nlambda = 0.5\n\
                   [checkpoint]\nevery = 1000\nresume = false\n[logging]\nprogress = false\n\
                   plot_every = 0\n[distributed]\ntimeout_seconds = 20\n";

/// How long any one process of these tests may run.
const LIMIT: Duration = Duration::from_secs(300);

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("framer-multinode-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A child process killed when dropped (a failed assertion leaves nothing running).
struct Node(Option<Child>);

impl Node {
    /// `framer train schedule --out out args`, with the global level let through.
    fn start(schedule: &Path, out: &Path, args: &[String]) -> Self {
        Self::start_with(schedule, out, args, true)
    }

    fn start_with(schedule: &Path, out: &Path, args: &[String], unstable_global: bool) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_framer"));
        match unstable_global {
            true => command.env(GLOBAL_LEVEL_OVERRIDE, "1"),
            false => command.env_remove(GLOBAL_LEVEL_OVERRIDE),
        };
        let child = command
            .arg("train")
            .arg(schedule)
            .arg("--out")
            .arg(out)
            .args(args)
            .env_remove("FRAMER_NODES")
            .env_remove("FRAMER_NODE_RANK")
            .env_remove("FRAMER_COORDINATOR")
            .env_remove("FRAMER_NODE_HOST")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Self(Some(child))
    }

    /// Waits for the process within `limit`; kills it and fails past that.
    fn wait(mut self, limit: Duration) -> Output {
        let started = Instant::now();
        let mut child = self.0.take().unwrap();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > limit {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "a node ran past {limit:?}; stderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        child.wait_with_output().unwrap()
    }

    fn kill(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port `p` with `p`, `p + 1` and `p + 2` free on 127.0.0.1 (the coordinator and the tensor
/// services of nodes 0 and 1).
fn free_ports() -> u16 {
    for _ in 0..50 {
        let port = TcpListener::bind(("127.0.0.1", 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port < 65000 && (1..=2).all(|k| TcpListener::bind(("0.0.0.0", port + k)).is_ok()) {
            return port;
        }
    }
    panic!("no three consecutive free ports");
}

fn node_args(nodes: usize, rank: usize, port: u16) -> Vec<String> {
    vec![
        "--nodes".into(),
        nodes.to_string(),
        "--node-rank".into(),
        rank.to_string(),
        "--coordinator".into(),
        format!("127.0.0.1:{port}"),
        "--node-host".into(),
        "127.0.0.1".into(),
    ]
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

/// Two processes × batch 2 on burn-collective's global level (the InterCL keys gathered across
/// them) log the losses of one process × batch 4, step for step: 1e-6 relative at step 0 (the
/// same weights), 1e-5 after the updates (as on one machine, summation order only). Node 0
/// alone writes the log; both exit by themselves.
///
/// With burn-collective 0.21.0 both nodes stop after `timeout_seconds` in the second global
/// operation, each with an error naming it.
#[test]
#[ignore = "burn-collective 0.21.0's global level hangs at its second operation (src/global/node/sync.rs; tracel-ai/burn#4549)"]
fn two_processes_match_one_process_on_the_global_batch() {
    let dir = Dir::new("agree");
    let schedule = dir.file("run.toml", RUN);
    let single = Node::start(&schedule, &dir.0.join("single"), &[]).wait(LIMIT);
    assert!(single.status.success(), "{}", stderr(&single));

    let port = free_ports();
    let node0 = Node::start(&schedule, &dir.0.join("n0"), &node_args(2, 0, port));
    let node1 = Node::start(&schedule, &dir.0.join("n1"), &node_args(2, 1, port));
    let (out0, out1) = (node0.wait(LIMIT), node1.wait(LIMIT));
    assert!(out0.status.success(), "node 0: {}", stderr(&out0));
    assert!(out1.status.success(), "node 1: {}", stderr(&out1));

    let read = |run: &str| {
        metrics::read(&dir.0.join(run).join("metrics.jsonl"), LogFormat::Jsonl).unwrap()
    };
    let (one, two) = (read("single"), read("n0"));
    assert_eq!(one.len(), 5);
    assert_eq!(two.len(), 5);
    for (a, b) in two.iter().zip(&one) {
        let tol = if a.step == 0 { 1e-6 } else { 1e-5 };
        assert_eq!(a.step, b.step);
        assert!(
            relative(a.loss, b.loss) < tol,
            "step {}: loss {} vs {}",
            a.step,
            a.loss,
            b.loss
        );
        let (fa, fb) = (a.framer_loss.unwrap(), b.framer_loss.unwrap());
        assert!(
            relative(fa, fb) < tol,
            "step {}: FRAMER loss {fa} vs {fb}",
            a.step
        );
    }
    assert!(
        !dir.0.join("n1").join("metrics.jsonl").exists(),
        "node 1 wrote a log"
    );
}

/// Without the override, several nodes are refused at once with the reason, before anything is
/// written or listened on.
#[test]
fn several_nodes_are_refused_with_the_reason() {
    let dir = Dir::new("refused");
    let schedule = dir.file("run.toml", RUN);
    let out = Node::start_with(&schedule, &dir.0.join("n0"), &node_args(2, 0, 29500), false)
        .wait(Duration::from_secs(60));
    let e = stderr(&out);
    assert!(!out.status.success());
    assert!(
        e.contains("2 nodes need burn-collective's global level"),
        "{e}"
    );
    assert!(e.contains("hangs at its second operation"), "{e}");
    assert!(e.contains(GLOBAL_LEVEL_OVERRIDE), "{e}");
    assert!(!dir.0.join("n0").exists(), "a run folder was written");
}

/// Nodes started with different schedules both stop before the first step, each saying that the
/// peers do not start the same run: node 0 starts the coordinator, both register through it and
/// sum their fingerprints in one global all-reduce.
#[test]
fn different_schedules_on_the_nodes_stop_every_node() {
    let dir = Dir::new("mismatch");
    let a = dir.file("a.toml", RUN);
    let b = dir.file("b.toml", &RUN.replace("lambda = 0.5", "lambda = 0.25"));
    let port = free_ports();
    let node0 = Node::start(&a, &dir.0.join("n0"), &node_args(2, 0, port));
    let node1 = Node::start(&b, &dir.0.join("n1"), &node_args(2, 1, port));
    for (rank, out) in [node0.wait(LIMIT), node1.wait(LIMIT)]
        .into_iter()
        .enumerate()
    {
        let e = stderr(&out);
        assert!(!out.status.success(), "node {rank} succeeded");
        assert!(
            e.contains("the peers do not start the same run"),
            "node {rank}: {e}"
        );
    }
    assert!(
        fs::read_to_string(dir.0.join("n0").join("metrics.jsonl"))
            .map_or(true, |t| t.trim().is_empty()),
        "a step was logged"
    );
}

/// Nodes that disagree on the number of nodes both stop with an error: the one that registers
/// second is refused by the coordinator (asked whether every node has the same `--nodes`), and
/// the other, left waiting for a node that never comes, stops after `timeout_seconds` (5 s)
/// naming the registration.
#[test]
fn a_wrong_number_of_nodes_stops_every_node() {
    let dir = Dir::new("world");
    let run = RUN
        .replace("batch_size = 4", "batch_size = 12")
        .replace("timeout_seconds = 20", "timeout_seconds = 5");
    let schedule = dir.file("run.toml", &run);
    let port = free_ports();
    let node0 = Node::start(&schedule, &dir.0.join("n0"), &node_args(2, 0, port));
    let node1 = Node::start(&schedule, &dir.0.join("n1"), &node_args(3, 1, port));
    let errors: Vec<String> = [node0.wait(LIMIT), node1.wait(LIMIT)]
        .iter()
        .enumerate()
        .map(|(rank, out)| {
            assert!(!out.status.success(), "node {rank} succeeded");
            stderr(out)
        })
        .collect();
    let all = errors.join("\n");
    assert!(all.contains("is every node started with the same --nodes?"), "{all}");
    assert!(all.contains("in registering with the other peers"), "{all}");
}

/// A coordinator port already in use is refused at once, naming the port.
#[test]
fn a_coordinator_port_in_use_is_a_clear_error() {
    let dir = Dir::new("port");
    let schedule = dir.file("run.toml", RUN);
    let taken = TcpListener::bind(("0.0.0.0", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Node::start(&schedule, &dir.0.join("n0"), &node_args(2, 0, port))
        .wait(Duration::from_secs(60));
    let e = stderr(&out);
    assert!(!out.status.success());
    assert!(
        e.contains(&format!("the coordinator cannot listen on port {port}")),
        "{e}"
    );
}

/// Launch flags that cannot work are refused before anything starts, naming the flag.
#[test]
fn bad_launch_flags_are_named() {
    let dir = Dir::new("flags");
    let schedule = dir.file("run.toml", RUN);
    let cases: [(&[&str], &str); 4] = [
        (
            &["--nodes", "2", "--node-rank", "0"],
            "need the coordinator's address",
        ),
        (
            &[
                "--nodes",
                "2",
                "--node-rank",
                "2",
                "--coordinator",
                "127.0.0.1:29500",
            ],
            "--node-rank 2 is not below",
        ),
        (
            &["--nodes", "3", "--coordinator", "127.0.0.1:29500"],
            "must split evenly over the 3 peers",
        ),
        (
            &["--nodes", "2", "--coordinator", "localhost"],
            "--coordinator: `localhost` is not host:port",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = Node::start_with(&schedule, &dir.0.join("never"), &args, false)
            .wait(Duration::from_secs(60));
        let e = stderr(&out);
        assert!(!out.status.success(), "{args:?}");
        assert!(e.contains(expected), "{args:?}: {e}");
        assert!(!dir.0.join("never").exists(), "{args:?} wrote a run folder");
    }
}
