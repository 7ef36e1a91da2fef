//! `[lora]` through the engine and the command line: the model's weights stay bit-identical, only
//! the adapters (and heads) train and hold optimiser state, a resumed run ends where an
//! uninterrupted one does, and `sr` merges the adapters of the checkpoint.

mod common;

use std::path::Path;
use std::process::Command;

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, Param};
use burn::tensor::Tensor;
use framer_backbones::DiTConfig;
use framer_train::engine::{SyntheticPairs, Trainer, build_framed};
use framer_train::schedule::{self, Experiment};

type B = Autodiff<Flex>;

fn values(m: &impl Module<B>) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl burn::module::ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            self.0.push(p.val().into_data().to_vec::<f32>().unwrap());
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

const LORA: &str = "[lora]\nrank = 2\nalpha = 4.0\ntargets = [\"*.attn.to_q\", \"*.attn.to_v\"]\n";

fn experiment(steps: u64, resume: bool) -> Experiment {
    let text = format!(
        "[model]\nbackbone = \"dit\"\n[data]\ncrop_size = 16\n[train]\nsteps = {steps}\nbatch_size = 2\n\
         seed = 3\n[optimizer]\nlr = 1e-2\n[checkpoint]\nevery = 2\nresume = {resume}\n\
         [logging]\nprogress = false\n{LORA}"
    );
    schedule::parse(&text, "lora.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("framer-lora-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn source() -> Box<SyntheticPairs> {
    Box::new(SyntheticPairs { seed: 1, size: 16, scale: 4 })
}

#[test]
fn only_the_adapters_train_and_a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let device = Default::default();
    let exp = experiment(4, false);
    let framed = build_framed::<B, DiTConfig>(&DiTConfig::tiny(), &exp, &device).unwrap();
    let base = values(&framed.model);
    let dir = temp("straight");
    let mut trainer = Trainer::new(&exp, framed, source(), &dir, &device).unwrap();
    let adapters = trainer.lora_adapters().unwrap();
    // 4 blocks × (to_q, to_v)
    assert_eq!(adapters.target_paths().len(), 8, "{:?}", adapters.target_paths());
    assert!(values(&adapters.up).iter().flatten().all(|v| *v == 0.0), "B starts at zero");
    trainer.run(None).unwrap();
    assert_eq!(values(&trainer.model().model), base, "the model's weights are frozen");
    assert!(trainer.optimizer_state_params().is_empty(), "no optimiser state for the model");
    let trained = values(trainer.lora_adapters().unwrap());
    assert!(trained.iter().flatten().any(|v| *v != 0.0));
    assert!(dir.join("checkpoints/step-00000004/lora.mpk").is_file());

    // 2 steps, stop, resume for the other 2
    let resumed_dir = temp("resumed");
    let exp_resume = experiment(4, true);
    let framed = build_framed::<B, DiTConfig>(&DiTConfig::tiny(), &exp_resume, &device).unwrap();
    let mut first = Trainer::new(&exp_resume, framed, source(), &resumed_dir, &device).unwrap();
    first.run(Some(2)).unwrap();
    drop(first);
    let framed = build_framed::<B, DiTConfig>(&DiTConfig::tiny(), &exp_resume, &device).unwrap();
    let mut second = Trainer::new(&exp_resume, framed, source(), &resumed_dir, &device).unwrap();
    assert_eq!(second.step(), 2);
    second.run(None).unwrap();
    assert!(values(&second.model().model) == base, "the model's weights stay frozen after a resume");
    assert!(values(second.lora_adapters().unwrap()) == trained, "the adapters end bit for bit as uninterrupted");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&resumed_dir);
}

#[test]
fn train_and_sr_through_the_command_line_and_targets_checked_before_training() {
    let dir = temp("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let schedule_path = dir.join("lora.toml");
    let text = format!(
        "[model]\nbackbone = \"dit\"\n[data]\ncrop_size = 16\n[train]\nsteps = 2\nbatch_size = 1\n\
         [objective]\nsample_steps = 1\n[checkpoint]\nevery = 2\n[logging]\nprogress = false\n{LORA}"
    );
    std::fs::write(&schedule_path, &text).unwrap();
    let framer = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_framer")).args(args).output().unwrap();
    let (run, lr) = common::train_and_sample(&dir, &schedule_path);
    // without its adapters file the run is refused by name, not silently run on the base weights
    std::fs::remove_file(run.join("checkpoints/step-00000002/lora.mpk")).unwrap();
    let out = framer(&["sr", "--run", run.to_str().unwrap(), lr.to_str().unwrap(), dir.join("x.png").to_str().unwrap()]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("lora.mpk"), "{e}");

    std::fs::write(&schedule_path, text.replace("*.attn.to_v", "*.atn.to_v")).unwrap();
    let out = framer(&["check", schedule_path.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("lora.toml:") && e.contains("*.atn.to_v"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lora_tables_are_checked_at_their_keys() {
    let base = "[model]\nbackbone = \"dit\"\n[train]\nsteps = 1\nbatch_size = 1\n";
    let bad = |lora: &str, extra: &str| {
        let text = format!("{base}{extra}{lora}");
        schedule::parse(&text, "lora.toml", Path::new(".")).unwrap_err().to_string()
    };
    let e = bad("[lora]\nrank = 0\ntargets = [\"*\"]\n", "");
    assert!(e.contains("lora.toml:7:8") && e.contains("lora.rank"), "{e}");
    let e = bad("[lora]\nrank = 2\ntargets = []\n", "");
    assert!(e.contains("lora.toml:8:11") && e.contains("is empty"), "{e}");
    let e = bad("[lora]\nrank = 2\ntargets = [\"*\"]\n", "ema_decay = 0.99\n");
    assert!(e.contains("ema_decay") && e.contains("frozen"), "{e}");
    let ok = format!("{base}[lora]\nr = 2\ntarget_modules = [\"to_q\"]\n");
    let exp = schedule::parse(&ok, "lora.toml", Path::new(".")).unwrap();
    let lora = exp.lora.as_ref().unwrap();
    assert_eq!((lora.rank, lora.alpha, lora.targets.as_slice()), (2, 2.0, &["to_q".to_string()][..]));
    assert_eq!(schedule::parse(&exp.to_string(), "r.toml", Path::new(".")).unwrap(), exp);
}
