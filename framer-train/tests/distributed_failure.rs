//! A peer that stops in the middle of a data-parallel run: the launcher reports it, naming the
//! peer and its error, within the schedule's timeout instead of waiting forever on the peers that
//! are blocked in a collective operation. (Its own test binary: the blocked peer threads stay
//! behind in the process.)

#![cfg(feature = "distributed")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::backend::{Autodiff, Flex};
use common::{Toy, schedule, temp_dir};
use framer_train::engine::distributed::{PeerSources, run_data_parallel};
use framer_train::engine::{EngineError, PairBatch, PairSource, SyntheticPairs};

type B = Autodiff<Flex>;

/// Synthetic pairs that fail from step `fail_at` on.
struct FailingAt {
    inner: SyntheticPairs,
    fail_at: u64,
}

impl PairSource for FailingAt {
    fn batch(&self, step: u64, batch_size: usize) -> Result<PairBatch, EngineError> {
        if step >= self.fail_at {
            return Err(EngineError::Data(format!("the disk of peer 1 went away at step {step}")));
        }
        self.inner.batch(step, batch_size)
    }
}

#[test]
fn a_peer_that_stops_is_reported_by_name_within_the_timeout() {
    let exp = schedule(
        "[train]\nsteps = 6\nbatch_size = 4\n[checkpoint]\nevery = 1000\nresume = false\n\
         [distributed]\ndevices = 2\ntimeout_seconds = 2\n",
    );
    let inner = SyntheticPairs { seed: 5, size: 16, scale: 4 };
    let sources: PeerSources = Arc::new(move |rank| {
        let fail_at = if rank == 1 { 2 } else { u64::MAX };
        Ok(Box::new(FailingAt { inner, fail_at }) as Box<dyn PairSource>)
    });
    let device = Default::default();
    let started = Instant::now();
    let e = run_data_parallel(&exp, Toy::<B>::framed(2, 4, &device), sources, &temp_dir("dp-fail"), &device)
        .err()
        .expect("a failed peer fails the run")
        .to_string();
    let elapsed = started.elapsed();
    assert!(e.contains("peer 1 of 2 stopped"), "{e}");
    assert!(e.contains("the disk of peer 1 went away at step 2"), "{e}");
    assert!(e.contains("peers [0] did not finish within 2 s"), "{e}");
    assert!(elapsed < Duration::from_secs(60), "the launcher waited {elapsed:?}");
}
