//! Engine tests on a small local denoiser: training reduces the loss on a fixed batch, a killed
//! and resumed run reproduces the uninterrupted one exactly, the NaN/Inf guard, global-norm
//! clipping and the EMA, worked by hand.

mod common;

use std::fs;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use common::{Toy, schedule, temp_dir, weights};
use framer_train::engine::{
    self, EngineError, FixedBatch, PairBatch, PairSource, SyntheticPairs, Trainer, checkpoint,
    metrics,
};
use framer_train::schedule::LogFormat;

type B = Autodiff<Flex>;

fn fixed_batch() -> FixedBatch {
    FixedBatch(
        SyntheticPairs {
            seed: 11,
            size: 16,
            scale: 4,
        }
        .batch(0, 2)
        .unwrap(),
    )
}

#[test]
fn training_reduces_the_loss_on_a_fixed_batch() {
    for objective in ["rectified_flow", "epsilon", "v_prediction"] {
        let exp = schedule(&format!(
            "[train]\nsteps = 30\nbatch_size = 2\n[objective]\nkind = \"{objective}\"\n\
             [optimizer]\nlr = 3e-3\n[framer]\nlambda = 0.1\n[checkpoint]\nevery = 1000\nresume = false"
        ));
        let device = Default::default();
        <B as Backend>::seed(&device, 1);
        let dir = temp_dir(&format!("reduce-{objective}"));
        let mut t = Trainer::new(
            &exp,
            Toy::<B>::framed(3, 8, &device),
            Box::new(fixed_batch()),
            &dir,
            &device,
        )
        .unwrap();
        // the same batch, noise and noise levels before and after (draws of step 0)
        let (before, base_before, framer_before) = t.evaluate(0).unwrap();
        let summary = t.run(None).unwrap();
        let (after, base_after, _) = t.evaluate(0).unwrap();
        assert_eq!(summary.end_step, 30);
        assert!(framer_before.is_some(), "FRAMER is evaluated when λ > 0");
        assert!(after < 0.8 * before, "{objective}: loss {before} → {after}");
        assert!(
            base_after < base_before,
            "{objective}: base {base_before} → {base_after}"
        );
        let recs = metrics::read(&summary.metrics, LogFormat::Jsonl).unwrap();
        assert_eq!(recs.len(), 30);
        assert!(recs.iter().all(|r| r.framer_loss.is_some() && !r.skipped));
        // total = base + λ·framer, as logged
        for r in &recs {
            let expect = r.base_loss + 0.1 * r.framer_loss.unwrap();
            assert!(
                (r.loss - expect).abs() < 1e-5 * expect.abs().max(1.0),
                "{r:?}"
            );
        }
        assert!(summary.plot.is_file());
        fs::remove_dir_all(&dir).unwrap();
    }
}

const RESUME: &str = "[train]\nsteps = 12\nbatch_size = 2\nseed = 5\nema_decay = 0.9\n\
                      [objective]\nkind = \"rectified_flow\"\n[optimizer]\nlr = 1e-3\n\
                      [checkpoint]\nevery = 4\n[logging]\nformat = \"csv\"\n\
                      [[schedule.phase]]\nstart = 0\nend = 6\nlambda = { from = 0.0, to = 0.2 }";

#[test]
fn kill_and_resume_reproduces_the_uninterrupted_run() {
    let exp = schedule(RESUME);
    let device = Default::default();
    let source = || {
        Box::new(SyntheticPairs {
            seed: 5,
            size: 16,
            scale: 4,
        }) as Box<dyn PairSource>
    };

    let init = Toy::<B>::framed(3, 8, &device); // materialised: both runs start from the same weights
    let straight = temp_dir("straight");
    let mut a = Trainer::new(&exp, init.clone(), source(), &straight, &device).unwrap();
    a.run(None).unwrap();

    let resumed = temp_dir("resumed");
    {
        let mut b = Trainer::new(&exp, init, source(), &resumed, &device).unwrap();
        b.run(Some(6)).unwrap(); // "killed" after step 6; the last checkpoint is at 4
    }
    // a new process: fresh random weights (and parameter ids), which the checkpoint replaces
    let mut b = Trainer::new(
        &exp,
        Toy::<B>::framed(3, 8, &device),
        source(),
        &resumed,
        &device,
    )
    .unwrap();
    assert_eq!(b.step(), 4, "resumes from the last checkpoint");
    let summary = b.run(None).unwrap();
    assert_eq!((summary.start_step, summary.end_step), (4, 12));

    let ra = metrics::read(&straight.join("metrics.csv"), LogFormat::Csv).unwrap();
    let rb = metrics::read(&resumed.join("metrics.csv"), LogFormat::Csv).unwrap();
    assert_eq!(ra.len(), 12);
    assert_eq!(
        rb.iter().map(|r| r.step).collect::<Vec<_>>(),
        (0..12).collect::<Vec<_>>()
    );
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!(
            (x.loss, x.base_loss, x.framer_loss, x.grad_norm),
            (y.loss, y.base_loss, y.framer_loss, y.grad_norm),
            "step {}",
            x.step
        );
        assert_eq!((x.lambda, x.lr), (y.lambda, y.lr));
    }
    assert_eq!(weights(a.model()), weights(b.model()));
    let ema = |t: &Trainer<'_, B, Toy<B>>| {
        let mut v = Vec::new();
        struct C<'a>(&'a mut Vec<f32>);
        impl burn::module::ModuleVisitor<Flex> for C<'_> {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<Flex, D>>) {
                self.0.extend(p.val().into_data().to_vec::<f32>().unwrap());
            }
        }
        t.ema().unwrap().visit(&mut C(&mut v));
        v
    };
    assert_eq!(ema(&a), ema(&b));
    // checkpoints: the newest two are kept
    let kept: Vec<u64> = checkpoint::list(&resumed.join("checkpoints"))
        .unwrap()
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(kept, [8, 12]);
    fs::remove_dir_all(&straight).unwrap();
    fs::remove_dir_all(&resumed).unwrap();
}

/// Synthetic pairs with NaN HR images at the listed steps.
struct Poisoned {
    inner: SyntheticPairs,
    bad: fn(u64) -> bool,
}

impl PairSource for Poisoned {
    fn batch(&self, step: u64, batch_size: usize) -> Result<PairBatch, EngineError> {
        let mut b = self.inner.batch(step, batch_size)?;
        if (self.bad)(step) {
            b.hr[0] = f32::NAN;
        }
        Ok(b)
    }
}

#[test]
fn nan_guard_skips_bad_steps_and_stops_without_touching_the_checkpoint() {
    let device = Default::default();
    let inner = SyntheticPairs {
        seed: 2,
        size: 16,
        scale: 4,
    };

    // two isolated bad steps: skipped, no update, training goes on
    let exp = schedule(
        "[train]\nsteps = 8\nbatch_size = 2\nmax_bad_steps = 3\n[checkpoint]\nresume = false",
    );
    let dir = temp_dir("nan-skip");
    let src = Poisoned {
        inner,
        bad: |s| s == 3 || s == 4,
    };
    let mut t = Trainer::new(
        &exp,
        Toy::<B>::framed(2, 8, &device),
        Box::new(src),
        &dir,
        &device,
    )
    .unwrap();
    for _ in 0..3 {
        t.train_step().unwrap();
    }
    let before = weights(t.model());
    let r3 = t.train_step().unwrap();
    let r4 = t.train_step().unwrap();
    assert!(r3.skipped && r4.skipped && r3.loss.is_nan());
    assert_eq!(
        weights(t.model()),
        before,
        "a rejected step leaves the weights alone"
    );
    let r5 = t.train_step().unwrap();
    assert!(!r5.skipped && r5.loss.is_finite());
    assert_ne!(weights(t.model()), before);
    fs::remove_dir_all(&dir).unwrap();

    // from step 5 on every step is bad: stop after 2, keep the step-5 checkpoint byte for byte
    let exp =
        schedule("[train]\nsteps = 10\nbatch_size = 2\nmax_bad_steps = 2\n[checkpoint]\nevery = 5");
    let dir = temp_dir("nan-stop");
    let src = Poisoned {
        inner,
        bad: |s| s >= 5,
    };
    let mut t = Trainer::new(
        &exp,
        Toy::<B>::framed(2, 8, &device),
        Box::new(src),
        &dir,
        &device,
    )
    .unwrap();
    let err = t.run(None).unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::NonFinite {
                step: 6,
                consecutive: 2,
                ..
            }
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("2 consecutive steps had a non-finite loss or gradient"),
        "{message}"
    );
    let ckpt = checkpoint::latest(&dir.join("checkpoints"))
        .unwrap()
        .unwrap();
    assert!(ckpt.ends_with("step-00000005"));
    assert_eq!(checkpoint::read_state(&ckpt).unwrap().step, 5);
    let model_bytes = fs::read(ckpt.join("model.mpk")).unwrap();
    // resuming loads the good checkpoint, and the model there is finite
    let t2 = Trainer::new(
        &exp,
        Toy::<B>::framed(2, 8, &device),
        Box::new(inner),
        &dir,
        &device,
    )
    .unwrap();
    assert_eq!(t2.step(), 5);
    assert!(weights(t2.model()).iter().all(|w| w.is_finite()));
    assert_eq!(fs::read(ckpt.join("model.mpk")).unwrap(), model_bytes);
    fs::remove_dir_all(&dir).unwrap();
}

#[derive(Module, Debug)]
struct Two<B: Backend> {
    a: Param<Tensor<B, 2>>,
    b: Param<Tensor<B, 1>>,
}

#[test]
fn global_norm_clipping_worked_by_hand() {
    let device = Default::default();
    let m = Two::<B> {
        a: Param::from_tensor(Tensor::zeros([2, 2], &device)),
        b: Param::from_tensor(Tensor::zeros([1], &device)),
    };
    // loss = Σ a·ca + Σ b·cb → ∇a = ca = [[3, 0], [0, 0]], ∇b = cb = [4]: global norm 5
    let ca = Tensor::<B, 2>::from_data(TensorData::new(vec![3f32, 0., 0., 0.], [2, 2]), &device);
    let cb = Tensor::<B, 1>::from_data(TensorData::new(vec![4f32], [1]), &device);
    let loss = (m.a.val() * ca).sum() + (m.b.val() * cb).sum();
    let mut grads = GradientsParams::from_grads(loss.backward(), &m);
    let norm = engine::grad::clip_global_norm::<B, _>(&m, &mut grads, 1.0);
    assert!((norm - 5.0).abs() < 1e-6);
    // scaled by 1/(5 + 1e-6): ∇a[0,0] = 0.6, ∇b = 0.8, new norm 1
    let ga: Vec<f32> = grads
        .get::<Flex, 2>(m.a.id)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    let gb: Vec<f32> = grads
        .get::<Flex, 1>(m.b.id)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    assert!(
        (ga[0] - 0.6).abs() < 1e-6 && (gb[0] - 0.8).abs() < 1e-6,
        "{ga:?} {gb:?}"
    );
    assert!((engine::grad::global_grad_norm::<B, _>(&m, &grads) - 1.0).abs() < 1e-5);
    // below the threshold nothing changes
    let norm = engine::grad::clip_global_norm::<B, _>(&m, &mut grads, 10.0);
    assert!((norm - 1.0).abs() < 1e-5);
    let gb: Vec<f32> = grads
        .get::<Flex, 1>(m.b.id)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    assert!((gb[0] - 0.8).abs() < 1e-6);
}

#[test]
fn ema_update_worked_by_hand() {
    let device = Default::default();
    let current = Two::<Flex> {
        a: Param::from_tensor(Tensor::full([2, 2], 3.0, &device)),
        b: Param::from_tensor(Tensor::full([1], -1.0, &device)),
    };
    let mut ema = current.clone();
    ema.a = ema.a.map(|t| t.ones_like());
    ema.b = ema.b.map(|t| t.zeros_like());
    // 0.9·1 + 0.1·3 = 1.2 and 0.9·0 + 0.1·(−1) = −0.1
    let ema = engine::ema::ema_update(ema, &current, 0.9);
    let a: Vec<f32> = ema.a.val().into_data().to_vec().unwrap();
    let b: Vec<f32> = ema.b.val().into_data().to_vec().unwrap();
    assert!(a.iter().all(|v| (v - 1.2).abs() < 1e-6), "{a:?}");
    assert!((b[0] + 0.1).abs() < 1e-6);
    // diffusers' warm-up: min(0.999, (1 + n)/(10 + n))
    assert_eq!(engine::ema::effective_decay(0.999, 0), 0.1);
    assert_eq!(engine::ema::effective_decay(0.5, 10), 0.5);
}

#[test]
fn an_interrupted_checkpoint_write_is_ignored() {
    let device = Default::default();
    let exp = schedule("[train]\nsteps = 2\nbatch_size = 1\n[checkpoint]\nevery = 1");
    let dir = temp_dir("atomic");
    let mut t = Trainer::new(
        &exp,
        Toy::<B>::framed(2, 4, &device),
        Box::new(SyntheticPairs {
            seed: 0,
            size: 8,
            scale: 2,
        }),
        &dir,
        &device,
    )
    .unwrap();
    t.run(None).unwrap();
    let ckdir = dir.join("checkpoints");
    // a crash while writing step 3: a temp folder with partial files, and `latest` not updated
    fs::create_dir_all(ckdir.join(".step-00000003.tmp")).unwrap();
    fs::write(ckdir.join(".step-00000003.tmp/model.mpk"), b"partial").unwrap();
    // and a folder without its state.json
    fs::create_dir_all(ckdir.join("step-00000004")).unwrap();
    let latest = checkpoint::latest(&ckdir).unwrap().unwrap();
    assert!(latest.ends_with("step-00000002"));
    fs::remove_file(ckdir.join("latest")).unwrap();
    assert!(
        checkpoint::latest(&ckdir)
            .unwrap()
            .unwrap()
            .ends_with("step-00000002")
    );
    let t = Trainer::new(
        &exp,
        Toy::<B>::framed(2, 4, &device),
        Box::new(SyntheticPairs {
            seed: 0,
            size: 8,
            scale: 2,
        }),
        &dir,
        &device,
    )
    .unwrap();
    assert_eq!(t.step(), 2);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_with_another_seed_is_refused() {
    let device = Default::default();
    let dir = temp_dir("seed");
    let exp = schedule("[train]\nsteps = 1\nbatch_size = 1\nseed = 1");
    let src = || {
        Box::new(SyntheticPairs {
            seed: 0,
            size: 8,
            scale: 2,
        })
    };
    Trainer::new(&exp, Toy::<B>::framed(2, 4, &device), src(), &dir, &device)
        .unwrap()
        .run(None)
        .unwrap();
    let exp2 = schedule("[train]\nsteps = 1\nbatch_size = 1\nseed = 2");
    let err = Trainer::new(&exp2, Toy::<B>::framed(2, 4, &device), src(), &dir, &device)
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("written with seed 1, the schedule says 2"),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn trained_model_samples_through_the_objective() {
    let device = Default::default();
    let exp = schedule(
        "[train]\nsteps = 1\nbatch_size = 1\n[objective]\nkind = \"epsilon\"\nsample_steps = 5\n[checkpoint]\nresume = false",
    );
    let dir = temp_dir("sample");
    let t = Trainer::new(
        &exp,
        Toy::<B>::framed(2, 4, &device),
        Box::new(SyntheticPairs {
            seed: 0,
            size: 8,
            scale: 2,
        }),
        &dir,
        &device,
    )
    .unwrap();
    let model = t.model().valid();
    let cond = Tensor::<Flex, 4>::zeros([1, 3, 8, 8], &device);
    let noise = Tensor::<Flex, 4>::ones([1, 3, 8, 8], &device);
    let mut calls = 0;
    let out = engine::sample(t.objective(), noise, exp.objective.sample_steps, |x, ts| {
        calls += 1;
        model.forward((x, ts, cond.clone()))
    });
    assert_eq!(calls, 5);
    assert_eq!(out.dims(), [1, 3, 8, 8]);
    fs::remove_dir_all(&dir).unwrap();
}
