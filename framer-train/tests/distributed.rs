//! Data-parallel training on burn's collective (peers as threads on the Flex CPU device), against
//! one process on the global batch with the same seeds.
//!
//! burn's collective keeps one group per backend in the process, so the runs of this file take a
//! lock and never overlap.

#![cfg(feature = "distributed")]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use burn::backend::{Autodiff, Flex};
use common::{Toy, schedule, temp_dir, weights};
use framer::Framed;
use framer_train::engine::distributed::{PeerSources, run_data_parallel};
use framer_train::engine::{PairSource, SyntheticPairs, Trainer, metrics};
use framer_train::schedule::{Coordinator, Experiment, LogFormat};

type B = Autodiff<Flex>;

/// One data-parallel run at a time in this process.
static COLLECTIVE: Mutex<()> = Mutex::new(());

const RUN: &str = "[train]\nsteps = 3\nbatch_size = 4\nseed = 3\n[optimizer]\nlr = 3e-3\n\
                   [framer]\nlambda = 0.5\n[checkpoint]\nevery = 1000\nresume = false\n\
                   [logging]\nformat = \"csv\"\n";

fn source() -> Box<dyn PairSource> {
    Box::new(SyntheticPairs { seed: 5, size: 16, scale: 4 })
}

fn sources() -> PeerSources {
    Arc::new(|_rank| Ok(source()))
}

/// One process on the global batch: its metrics and its trained weights.
fn single(exp: &Experiment, init: Framed<B, Toy<B>>, dir: &Path) -> (Vec<metrics::StepRecord>, Vec<f32>) {
    let device = Default::default();
    let mut t = Trainer::new(exp, init, source(), dir, &device).unwrap();
    t.run(None).unwrap();
    (metrics::read(&dir.join("metrics.csv"), LogFormat::Csv).unwrap(), weights(t.model()))
}

fn peers(exp: &Experiment, init: Framed<B, Toy<B>>, dir: &Path) -> (Vec<metrics::StepRecord>, Vec<f32>) {
    let _lock = COLLECTIVE.lock().unwrap_or_else(|e| e.into_inner());
    let (summary, model) = run_data_parallel(exp, init, sources(), dir, &Default::default()).unwrap();
    assert_eq!(summary.end_step, exp.train.steps);
    (metrics::read(&dir.join("metrics.csv"), LogFormat::Csv).unwrap(), weights(&model))
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

/// 2 peers × batch 2 with the InterCL keys gathered = one process × batch 4: every logged loss
/// within 1e-6 relative (step 0: the same weights) and 1e-5 after updates, the weights after 3
/// AdamW steps within 1e-5. Peer 0 alone writes the log.
#[test]
fn two_peers_with_gathered_keys_equal_one_process_on_the_global_batch() {
    let device = Default::default();
    let init = Toy::<B>::framed(3, 8, &device);
    let w_init = weights(&init);
    let one = schedule(RUN);
    let two = schedule(&format!("{RUN}[distributed]\ndevices = 2\n"));
    assert_eq!(two.distributed.devices, 2);
    let (dir_one, dir_two) = (temp_dir("dp-one"), temp_dir("dp-two"));
    let (log_one, w_one) = single(&one, init.clone(), &dir_one);
    let (log_two, w_two) = peers(&two, init, &dir_two);

    assert_eq!(log_one.len(), 3);
    assert_eq!(log_two.iter().map(|r| r.step).collect::<Vec<_>>(), [0, 1, 2], "one log, from peer 0");
    for (a, b) in log_two.iter().zip(&log_one) {
        let tolerance = if a.step == 0 { 1e-6 } else { 1e-5 };
        for (what, x, y) in [
            ("loss", a.loss, b.loss),
            ("base loss", a.base_loss, b.base_loss),
            ("FRAMER loss", a.framer_loss.unwrap(), b.framer_loss.unwrap()),
            ("gradient norm", a.grad_norm, b.grad_norm),
        ] {
            assert!(relative(x, y) <= tolerance, "step {}: {what} {x} (2 peers) vs {y} (one process)", a.step);
        }
    }
    assert_eq!(w_one.len(), w_two.len());
    let worst = w_one.iter().zip(&w_two).fold(0f32, |m, (a, b)| m.max((a - b).abs() / a.abs().max(1.0)));
    assert!(worst <= 1e-5, "weights after 3 steps differ by {worst}");
    // the runs moved: the comparison is not between two untouched models
    let moved = w_init.iter().zip(&w_one).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(moved > 1e-4, "training changed the weights by only {moved}");
    // peer 0 wrote the final checkpoint
    assert!(dir_two.join("checkpoints").read_dir().unwrap().next().is_some());
}

/// `negatives = "per_peer"`: the same base loss, but InterCL sees each peer's own two samples, so
/// the FRAMER loss differs from one process on the global batch.
#[test]
fn per_peer_negatives_give_a_different_framer_loss() {
    let device = Default::default();
    let init = Toy::<B>::framed(3, 8, &device);
    let run = RUN.replace("steps = 3", "steps = 1");
    let one = schedule(&run);
    let per_peer = schedule(&format!("{run}[distributed]\ndevices = 2\nnegatives = \"per_peer\"\n"));
    let (log_one, _) = single(&one, init.clone(), &temp_dir("dp-pp-one"));
    let (log_two, _) = peers(&per_peer, init, &temp_dir("dp-pp-two"));
    let (a, b) = (&log_two[0], &log_one[0]);
    assert!(relative(a.base_loss, b.base_loss) <= 1e-6, "{} vs {}", a.base_loss, b.base_loss);
    let (fa, fb) = (a.framer_loss.unwrap(), b.framer_loss.unwrap());
    assert!(relative(fa, fb) > 1e-4, "per-peer keys {fa} vs global keys {fb}");
    // the choice is part of the experiment; the number of peers is not
    assert!(per_peer.to_string().contains("negatives = \"per_peer\""));
    assert!(!one.to_string().contains("[distributed]"));
}

/// A global batch that does not split evenly is a schedule error at the `devices` value.
#[test]
fn a_batch_that_does_not_split_is_refused_at_its_key() {
    let src = "[model]\nbackbone = \"unet\"\n[train]\nsteps = 3\nbatch_size = 4\n[distributed]\ndevices = 3\n";
    let e = framer_train::schedule::parse(src, "dp.toml", Path::new(".")).unwrap_err().to_string();
    assert!(e.contains("dp.toml:7:11"), "{e}");
    assert!(e.contains("`train.batch_size` (4) is not a multiple of `distributed.devices` (3)"), "{e}");
}

/// `[distributed] nodes` and `coordinator` are checked at their keys: the global batch splits over
/// `nodes × devices` peers, and the coordinator is `host:port`. Neither is part of the
/// experiment's identity.
#[test]
fn nodes_and_coordinator_are_checked_at_their_keys() {
    let head = "[model]\nbackbone = \"unet\"\n[train]\nsteps = 3\nbatch_size = 4\n[distributed]\ndevices = 2\n";
    let parse = |tail: &str| {
        framer_train::schedule::parse(&format!("{head}{tail}"), "dp.toml", Path::new("."))
    };
    let e = parse("nodes = 3\n").unwrap_err().to_string();
    assert!(e.contains("dp.toml:8:9"), "{e}");
    assert!(
        e.contains("is not a multiple of `distributed.nodes` × `distributed.devices` (3 × 2)"),
        "{e}"
    );
    let e = parse("nodes = 2\ncoordinator = \"10.0.0.1\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("dp.toml:9:15"), "{e}");
    assert!(e.contains("`10.0.0.1` is not host:port"), "{e}");
    let e = parse("nodes = 2\ncoordinator = \"10.0.0.1:99999\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`99999` in `10.0.0.1:99999` is not a port"),
        "{e}"
    );
    let ok = parse("nodes = 2\ncoordinator = \"10.0.0.1:29500\"\n").unwrap();
    assert_eq!((ok.distributed.nodes, ok.distributed.world_size()), (2, 4));
    let coordinator = Coordinator { host: "10.0.0.1".into(), port: 29500 };
    assert_eq!(ok.distributed.coordinator, Some(coordinator));
    assert!(!ok.to_string().contains("[distributed]"), "{ok}");
}
