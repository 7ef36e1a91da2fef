//! Checkpoints under damage and the NaN/Inf guard's checkpoints, on the small local denoiser:
//! a truncated or corrupted newest checkpoint is detected by its checksum and passed over for the
//! previous good one; no checkpoint is written while steps are being rejected.

mod common;

use std::fs;
use std::path::Path;

use burn::backend::{Autodiff, Flex};
use common::{Toy, schedule, temp_dir};
use framer_train::engine::{
    EngineError, PairBatch, PairSource, SyntheticPairs, Trainer, checkpoint,
};

type B = Autodiff<Flex>;

fn source() -> Box<dyn PairSource> {
    Box::new(SyntheticPairs {
        seed: 3,
        size: 8,
        scale: 2,
    })
}

fn train(exp: &framer_train::schedule::Experiment, dir: &Path) {
    let device = Default::default();
    Trainer::new(exp, Toy::<B>::framed(2, 4, &device), source(), dir, &device)
        .unwrap()
        .run(None)
        .unwrap();
}

/// The error of reading `file` as the record of the test model.
fn read_error(file: &Path) -> String {
    type Record = <Toy<Flex> as burn::module::Module<Flex>>::Record;
    match checkpoint::read_record::<Flex, Record>(file, &Default::default()) {
        Ok(_) => panic!("{} was read", file.display()),
        Err(e) => e.to_string(),
    }
}

/// Overwrites 64 bytes in the middle of `file`.
fn flip_bytes(file: &Path) {
    let mut bytes = fs::read(file).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    fs::write(file, bytes).unwrap();
}

fn truncate(file: &Path) {
    let bytes = fs::read(file).unwrap();
    fs::write(file, &bytes[..bytes.len() * 2 / 3]).unwrap();
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_previous_good_one() {
    let device = Default::default();
    let exp = schedule("[train]\nsteps = 4\nbatch_size = 1\n[checkpoint]\nevery = 2\nkeep = 2");
    let dir = temp_dir("damaged-checkpoint");
    train(&exp, &dir);
    let ckdir = dir.join("checkpoints");
    let (older, newest) = (ckdir.join("step-00000002"), ckdir.join("step-00000004"));
    let state = checkpoint::verify(&newest).unwrap();
    assert_eq!(
        state.files.keys().collect::<Vec<_>>(),
        ["model.mpk", "optim.mpk"],
        "every file has its checksum"
    );

    // 64 flipped bytes: the checksum catches them, and the previous checkpoint is used
    let model_bytes = fs::read(newest.join("model.mpk")).unwrap();
    flip_bytes(&newest.join("model.mpk"));
    let e = checkpoint::verify(&newest).unwrap_err().to_string();
    assert!(
        e.contains("step-00000004") && e.contains("model.mpk does not match the SHA-256"),
        "{e}"
    );
    assert_eq!(checkpoint::latest(&ckdir).unwrap().unwrap(), older);
    let e = read_error(&newest.join("model.mpk"));
    assert!(e.contains("model.mpk") && e.contains("SHA-256"), "{e}");
    let t = Trainer::new(&exp, Toy::<B>::framed(2, 4, &device), source(), &dir, &device).unwrap();
    assert_eq!(t.step(), 2, "resumes from the good checkpoint");

    // a truncated file: named, with its size; no word of burn's record-format history
    fs::write(newest.join("model.mpk"), &model_bytes).unwrap();
    checkpoint::verify(&newest).unwrap();
    truncate(&newest.join("optim.mpk"));
    let e = checkpoint::verify(&newest).unwrap_err().to_string();
    assert!(
        e.contains("optim.mpk has") && e.contains("truncated"),
        "{e}"
    );

    // nothing intact: an error naming every checkpoint and its fault
    truncate(&older.join("model.mpk"));
    let e = checkpoint::latest(&ckdir).unwrap_err().to_string();
    assert!(
        e.contains("no intact checkpoint")
            && e.contains("step-00000002")
            && e.contains("step-00000004"),
        "{e}"
    );
    let e = Trainer::new(&exp, Toy::<B>::framed(2, 4, &device), source(), &dir, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no intact checkpoint"), "{e}");

    // a damaged file without a checksum to compare with: a clear decoding error naming it
    let loose = dir.join("loose.mpk");
    fs::copy(older.join("model.mpk"), &loose).unwrap();
    let e = read_error(&loose);
    assert!(
        e.contains("loose.mpk: cannot decode") && !e.contains("0.14"),
        "{e}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// Synthetic pairs with NaN HR images at the listed steps.
struct Poisoned {
    bad: fn(u64) -> bool,
}

impl PairSource for Poisoned {
    fn batch(&self, step: u64, batch_size: usize) -> Result<PairBatch, EngineError> {
        let mut b = SyntheticPairs {
            seed: 3,
            size: 8,
            scale: 2,
        }
        .batch(step, batch_size)?;
        if (self.bad)(step) {
            b.hr[0] = f32::NAN;
        }
        Ok(b)
    }
}

#[test]
fn no_checkpoint_is_written_while_steps_are_rejected() {
    let device = Default::default();
    let steps = |dir: &Path| -> Vec<u64> {
        checkpoint::list(&dir.join("checkpoints"))
            .unwrap()
            .iter()
            .map(|c| c.0)
            .collect()
    };

    // every step from 5 on is bad: the run stops at the third, and the newest checkpoint is the
    // one before the rejected steps (no checkpoint of the weights the guard gave up on)
    let exp = schedule(
        "[train]\nsteps = 10\nbatch_size = 1\nmax_bad_steps = 3\n[checkpoint]\nevery = 1\nkeep = 100",
    );
    let dir = temp_dir("nan-no-checkpoint");
    let mut t = Trainer::new(
        &exp,
        Toy::<B>::framed(2, 4, &device),
        Box::new(Poisoned { bad: |s| s >= 5 }),
        &dir,
        &device,
    )
    .unwrap();
    let e = t.run(None).unwrap_err();
    assert!(matches!(e, EngineError::NonFinite { step: 7, .. }), "{e}");
    assert_eq!(steps(&dir), [1, 2, 3, 4, 5]);
    fs::remove_dir_all(&dir).unwrap();

    // a short run of bad steps: the checkpoints due during it wait for the next good step
    let dir = temp_dir("nan-deferred-checkpoint");
    let mut t = Trainer::new(
        &exp,
        Toy::<B>::framed(2, 4, &device),
        Box::new(Poisoned {
            bad: |s| s == 3 || s == 4,
        }),
        &dir,
        &device,
    )
    .unwrap();
    t.run(None).unwrap();
    assert_eq!(steps(&dir), [1, 2, 3, 6, 7, 8, 9, 10]);
    fs::remove_dir_all(&dir).unwrap();

    // the last step is always saved, with the count of bad steps in a row for an exact resume
    let exp = schedule(
        "[train]\nsteps = 6\nbatch_size = 1\nmax_bad_steps = 3\n[checkpoint]\nevery = 1\nkeep = 100",
    );
    let dir = temp_dir("nan-last-checkpoint");
    let mut t = Trainer::new(
        &exp,
        Toy::<B>::framed(2, 4, &device),
        Box::new(Poisoned { bad: |s| s >= 4 }),
        &dir,
        &device,
    )
    .unwrap();
    t.run(None).unwrap();
    assert_eq!(steps(&dir), [1, 2, 3, 4, 6]);
    let last = checkpoint::verify(&dir.join("checkpoints/step-00000006")).unwrap();
    assert_eq!((last.state.skipped_steps, last.consecutive_bad), (2, 2));
    // extended by two steps, the guard counts on from 2: it stops at the next bad step
    let longer = schedule(
        "[train]\nsteps = 8\nbatch_size = 1\nmax_bad_steps = 3\n[checkpoint]\nevery = 1\nkeep = 100",
    );
    let mut t = Trainer::new(
        &longer,
        Toy::<B>::framed(2, 4, &device),
        Box::new(Poisoned { bad: |s| s >= 4 }),
        &dir,
        &device,
    )
    .unwrap();
    let e = t.run(None).unwrap_err();
    assert!(
        matches!(
            e,
            EngineError::NonFinite {
                step: 6,
                consecutive: 3,
                ..
            }
        ),
        "{e}"
    );
    fs::remove_dir_all(&dir).unwrap();
}
