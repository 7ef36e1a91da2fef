//! Bring your own model: a model defined here (not in framer-backbones), annotated with the
//! attributes only, trained from a TOML schedule through the command line's own entry point
//! (`framer_train::cli::main_from`), stopped and resumed exactly, then used by `sr` on its run
//! folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::gelu;
use burn::tensor::backend::{AutodiffBackend, Backend};
use framer::{framer, framer_forward};
use framer_train::ModelConfig;
use framer_train::engine::metrics;
use framer_train::schedule::LogFormat;
use serde::{Deserialize, Serialize};

/// A residual network with a refinement stage at half resolution: neither a U-Net nor a DiT.
/// It declares two FRAMER loss defaults of its own and a weight for its refinement student; a
/// schedule's `[framer]` table overrides them.
#[framer(heads = conv1x1, loss(tau = 0.5, faw = false))]
#[derive(Module, Debug)]
pub struct TwoScale<B: Backend> {
    stem: Conv2d<B>,
    #[framer(student)]
    blocks: Vec<Conv2d<B>>,
    down: Conv2d<B>,
    #[framer(student, weight = 0.5)]
    refine: Conv2d<B>,
    out: Conv2d<B>,
}

#[framer_forward]
impl<B: Backend> TwoScale<B> {
    /// `x_t`, `lr`: `[batch, 3, h, w]` (`h`, `w` even); `t`: `[batch]`; returns `[batch, 3, h, w]`.
    pub fn forward(&self, x_t: Tensor<B, 4>, t: Tensor<B, 1>, lr: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, _, h, w] = x_t.dims();
        let plane = t.reshape([b, 1, 1, 1]).expand([b, 1, h, w]);
        let mut x = self.stem.forward(Tensor::cat(vec![x_t, lr, plane], 1));
        for block in &self.blocks {
            x = x.clone() + gelu(block.forward(x));
        }
        let coarse = self.refine.forward(gelu(self.down.forward(x.clone())));
        let up = burn::tensor::module::interpolate(
            coarse,
            [h, w],
            burn::tensor::ops::InterpolateOptions::new(burn::tensor::ops::InterpolateMode::Nearest),
        );
        self.out.forward(x + up)
    }
}

/// `[model]` of the schedules below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwoScaleConfig {
    /// Feature channels.
    pub width: usize,
    /// Residual blocks at full resolution.
    pub depth: usize,
}

impl TwoScaleConfig {
    fn build<B: Backend>(&self, device: &B::Device) -> TwoScale<B> {
        let conv = |i, o, stride: usize| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        TwoScale {
            stem: conv(7, self.width, 1),
            blocks: (0..self.depth).map(|_| conv(self.width, self.width, 1)).collect(),
            down: conv(self.width, self.width, 2),
            refine: conv(self.width, self.width, 1),
            out: conv(self.width, 3, 1),
        }
    }
}

impl ModelConfig for TwoScaleConfig {
    const KIND: &'static str = "two-scale";
    type Model<B: Backend> = TwoScale<B>;
    type TrainModel<B: AutodiffBackend> = TwoScale<B>;

    fn init<B: Backend>(&self, device: &B::Device) -> Result<TwoScale<B>, String> {
        Ok(self.build(device))
    }

    fn init_train<B: AutodiffBackend>(&self, device: &B::Device) -> Result<TwoScale<B>, String> {
        Ok(self.build(device))
    }

    fn check_data(&self, _channels: usize, crop_size: usize) -> Result<(), String> {
        if crop_size % 2 != 0 {
            return Err(format!("the crop size must be even, got {crop_size}"));
        }
        Ok(())
    }
}

fn schedule(steps: u64) -> String {
    format!(
        "name = \"two-scale\"\n[model]\nwidth = 8\ndepth = 3\n[data]\ncrop_size = 16\nscale = 4\n\
         [objective]\nsample_steps = 3\n[framer]\nlambda = 0.2\nstudents = [\"blocks.*\", \"refine\"]\n\
         [optimizer]\nlr = 2e-3\n[train]\nsteps = {steps}\nbatch_size = 2\nseed = 3\n\
         [checkpoint]\nevery = 5\n[logging]\nprogress = false\n"
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("framer-byom-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn cli(args: &[&Path]) -> ExitCode {
    let mut all: Vec<std::ffi::OsString> = vec!["two-scale".into()];
    all.extend(args.iter().map(|a| a.as_os_str().to_owned()));
    framer_train::cli::main_from::<TwoScaleConfig, _, _>(all)
}

fn losses(run: &Path) -> Vec<(u64, f64)> {
    metrics::read(&run.join("metrics.jsonl"), LogFormat::Jsonl)
        .unwrap()
        .iter()
        .map(|r| (r.step, r.loss))
        .collect()
}

#[test]
fn a_model_of_the_test_crate_trains_resumes_exactly_and_super_resolves() {
    let dir = temp_dir("train");
    let full = dir.join("full.toml");
    let half = dir.join("half.toml");
    std::fs::write(&full, schedule(20)).unwrap();
    std::fs::write(&half, schedule(10)).unwrap();
    let p = |s: &str| PathBuf::from(s);

    assert_eq!(cli(&[&p("check"), &full]), ExitCode::SUCCESS);

    let straight = dir.join("straight");
    assert_eq!(cli(&[&p("train"), &full, &p("--out"), &straight]), ExitCode::SUCCESS);
    let expected = losses(&straight);
    assert_eq!(expected.len(), 20);
    assert!(expected.iter().all(|(_, l)| l.is_finite()));

    // the same run, stopped after step 10, then resumed to 20
    let resumed = dir.join("resumed");
    assert_eq!(cli(&[&p("train"), &half, &p("--out"), &resumed]), ExitCode::SUCCESS);
    assert_eq!(losses(&resumed).len(), 10);
    assert_eq!(cli(&[&p("train"), &full, &p("--out"), &resumed]), ExitCode::SUCCESS);
    assert_eq!(losses(&resumed), expected, "the resumed run's losses equal the uninterrupted run's");

    // the run folder rebuilds the model for `sr`
    let record = std::fs::read_to_string(straight.join("model.toml")).unwrap();
    assert!(record.contains("kind = \"two-scale\""), "{record}");
    let lr = dir.join("lr.png");
    framer_data::Image::from_chw(6, 5, (0..90).map(|i| (i % 7) as f32 / 7.0).collect())
        .unwrap()
        .save_png(&lr)
        .unwrap();
    let sr = dir.join("sr.png");
    assert_eq!(
        cli(&[&p("sr"), &p("--run"), &straight, &lr, &sr, &p("--tile"), &p("16")]),
        ExitCode::SUCCESS
    );
    let image = framer_data::Image::load(&sr).unwrap();
    assert_eq!((image.width(), image.height()), (24, 20), "×4 of the 6×5 input");

    // another program's run folder is refused by name, not rebuilt as something else
    let err = framer_train::commands::RunFiles::from_run_dir(&straight)
        .and_then(|run| {
            framer_train::commands::sr::run_sr::<framer_train::Builtin, burn::backend::Flex>(
                &run,
                &framer_train::commands::sr::SrSettings {
                    input: lr.clone(),
                    output: dir.join("other.png"),
                    steps: Some(1),
                    strength: 0.4,
                    seed: 0,
                    tile: None,
                    overlap: None,
                    color_fix: "none".into(),
                    progress: false,
                },
                &Default::default(),
            )
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("model of kind `two-scale`"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_rejects_an_unknown_model_key_at_its_position() {
    let dir = temp_dir("check");
    let path = dir.join("bad.toml");
    std::fs::write(&path, schedule(5).replace("depth = 3", "dpeth = 3")).unwrap();
    let err = framer_train::cli::check_schedule::<TwoScaleConfig>(&path).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("dpeth"), "{text}");
    let loc = err.location.as_ref().expect("a located error");
    assert_eq!(loc.line, 4, "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn loss_defaults_come_from_the_attribute_unless_the_schedule_sets_them() {
    let dir = temp_dir("defaults");
    let path = dir.join("defaults.toml");
    std::fs::write(&path, schedule(5)).unwrap();
    let report = framer_train::cli::check_schedule::<TwoScaleConfig>(&path).unwrap();
    let find = |key: &str| {
        report
            .framer_values
            .iter()
            .find(|v| v.key == key)
            .map(|v| (v.value.clone(), v.source))
            .unwrap()
    };
    use framer_train::schedule::ValueSource::{Attribute, Default, Schedule};
    assert_eq!(find("temperature"), ("0.5".into(), Attribute));
    assert_eq!(find("adaptive_weight"), ("false".into(), Attribute));
    assert_eq!(find("lambda"), ("0.2".into(), Schedule));
    assert_eq!(find("cutoff"), ("0.2".into(), Default));
    assert_eq!(find("alignment_modulation"), ("true".into(), Default));
    assert_eq!(report.experiment.framer.loss.temperature, 0.5);
    assert!(!report.experiment.framer.loss.adaptive_weight);
    let text = report.to_string();
    assert!(text.contains("temperature            0.5          (attribute)"), "{text}");

    // the schedule overrides the attribute
    std::fs::write(&path, schedule(5).replace("lambda = 0.2", "lambda = 0.2\ntau_high = 2.0")).unwrap();
    let report = framer_train::cli::check_schedule::<TwoScaleConfig>(&path).unwrap();
    assert_eq!(report.experiment.framer.loss.temperature, 2.0);
    assert!(report.framer_values.iter().any(|v| v.key == "temperature" && v.source == Schedule));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn student_weights_come_from_the_schedule_then_the_attribute_then_the_default() {
    use framer::FramerModel;
    use framer_train::schedule::ValueSource::{Attribute, Default, Schedule};
    // the macro generates the declared weights: 1 for `blocks.*`, 0.5 for `refine`
    let model = TwoScaleConfig { width: 4, depth: 2 }.build::<burn::backend::Flex>(&std::default::Default::default());
    assert_eq!(model.student_names(), ["blocks.0", "blocks.1", "refine"]);
    assert_eq!(model.student_weights(), [1.0, 1.0, 0.5]);

    let dir = temp_dir("weights");
    let path = dir.join("weights.toml");
    let weights = |report: &framer_train::cli::CheckReport| -> Vec<(String, f64, _)> {
        report.student_weights.iter().map(|w| (w.name.clone(), w.weight, w.source)).collect()
    };
    std::fs::write(&path, schedule(5)).unwrap();
    let report = framer_train::cli::check_schedule::<TwoScaleConfig>(&path).unwrap();
    assert_eq!(
        weights(&report),
        [("blocks.0".into(), 1.0, Default), ("blocks.1".into(), 1.0, Default), ("blocks.2".into(), 1.0, Default), ("refine".into(), 0.5, Attribute)]
    );
    let text = report.to_string();
    assert!(text.contains("refine                 0.5          (attribute)"), "{text}");

    // a glob and a name override them; the later entry wins where both match
    let overridden = schedule(5).replace(
        "students = [",
        "student_weights = { \"blocks.*\" = 2.0, \"blocks.2\" = 0, refine = 3 }\nstudents = [",
    );
    std::fs::write(&path, &overridden).unwrap();
    let report = framer_train::cli::check_schedule::<TwoScaleConfig>(&path).unwrap();
    assert_eq!(
        weights(&report),
        [("blocks.0".into(), 2.0, Schedule), ("blocks.1".into(), 2.0, Schedule), ("blocks.2".into(), 0.0, Schedule), ("refine".into(), 3.0, Schedule)]
    );
    assert!(report.to_string().contains("blocks.0               2            (schedule)"), "{report}");
    // the resolved schedule writes them back, and reads back to the same experiment
    let resolved = report.experiment.to_string();
    assert!(resolved.contains("[framer.student_weights]"), "{resolved}");
    let again = framer_train::schedule::parse(&resolved, "again.toml", &dir).unwrap();
    let written = |e: &framer_train::schedule::Experiment| -> Vec<(String, f64)> {
        e.framer.student_weights.iter().map(|p| (p.pattern.clone(), p.weight)).collect()
    };
    assert_eq!(written(&again), [("blocks.*".into(), 2.0), ("blocks.2".into(), 0.0), ("refine".into(), 3.0)]);
    assert_eq!(again.framer.loss, report.experiment.framer.loss);

    // a misspelt pattern is an error at its position, with the closest tap
    std::fs::write(&path, overridden.replace("refine = 3", "refien = 3")).unwrap();
    let err = framer_train::cli::check_schedule::<TwoScaleConfig>(&path).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("`student_weights` entry \"refien\" matches no student tap of the model; did you mean \"refine\"?"), "{text}");
    let loc = err.location.as_ref().expect("a located error");
    assert_eq!((loc.line, loc.column), (12, 55), "{text}");
    // a negative weight is rejected when the schedule is read
    std::fs::write(&path, overridden.replace("refine = 3", "refine = -1")).unwrap();
    let err = framer_train::cli::check_schedule::<TwoScaleConfig>(&path).unwrap_err();
    assert!(err.to_string().contains("expected `framer.student_weights` ≥ 0, got -1"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
