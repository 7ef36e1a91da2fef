//! The engine on the real backbones (tiny presets of `framer-backbones`): a few steps reduce the
//! loss on a fixed batch, and a schedule runs end to end on the embedded photos.

use std::fs;

use burn::backend::{Autodiff, Flex};
use framer_backbones::BackboneConfig;
use framer::{Framed, FramerModel};
use framer_train::engine::{FixedBatch, PairSource, SyntheticPairs, Trainer, metrics, sample_args};
use framer_train::schedule::{self, LogFormat};

type B = Autodiff<Flex>;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("framer-train-bb-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn experiment(backbone: &str, objective: &str, steps: u64) -> schedule::Experiment {
    let src = format!(
        "[model]\nbackbone = \"{backbone}\"\npreset = \"tiny\"\n[data]\ncrop_size = 32\nscale = 4\n\
         [objective]\nkind = \"{objective}\"\n[framer]\nlambda = 0.1\n[optimizer]\nlr = 2e-3\n\
         [train]\nsteps = {steps}\nbatch_size = 2\n[checkpoint]\nevery = 1000\nresume = false\n\
         [logging]\nprogress = false\n"
    );
    schedule::parse(&src, "backbone.toml", std::path::Path::new(".")).unwrap()
}

fn reduces_loss<M>(model: Framed<B, M>, exp: &schedule::Experiment, name: &str)
where
    M: burn::module::AutodiffModule<B> + framer_train::SrModel<B>,
    M::InnerModule: framer_train::SrModel<Flex>,
{
    let device = Default::default();
    let batch = FixedBatch(
        SyntheticPairs {
            seed: 4,
            size: 32,
            scale: 4,
        }
        .batch(0, 2)
        .unwrap(),
    );
    let dir = temp_dir(name);
    let mut t = Trainer::new(exp, model, Box::new(batch), &dir, &device).unwrap();
    let (before, _, framer_before) = t.evaluate(0).unwrap();
    t.run(None).unwrap();
    let (after, _, _) = t.evaluate(0).unwrap();
    assert!(
        framer_before.is_some_and(f64::is_finite),
        "{name}: FRAMER term through the taps"
    );
    println!("{name}: loss {before} → {after}");
    assert!(after < 0.9 * before, "{name}: loss {before} → {after}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_few_steps_reduce_the_loss_on_each_backbone() {
    let device = Default::default();
    <B as burn::tensor::backend::Backend>::seed(&device, 7); // reproducible initial weights
    let BackboneConfig::UNet(unet) = BackboneConfig::preset("unet", "tiny").unwrap() else {
        unreachable!()
    };
    let unet = unet.init::<B>(&device).unwrap();
    assert!(unet.student_names().len() >= 2);
    let exp = experiment("unet", "epsilon", 20);
    reduces_loss(
        Framed::new(unet, sample_args(&exp, &device), &device).unwrap(),
        &exp,
        "unet",
    );

    let BackboneConfig::DiT(dit) = BackboneConfig::preset("dit", "tiny").unwrap() else {
        unreachable!()
    };
    let dit = dit.init::<B>(&device).unwrap();
    let exp = experiment("dit", "rectified_flow", 20);
    reduces_loss(
        Framed::new(dit, sample_args(&exp, &device), &device).unwrap(),
        &exp,
        "dit",
    );

    // SD2's text U-Net (no prompt: one zero text token); students: 2 down, mid, 2 up
    let BackboneConfig::UNetCondition(text_unet) = BackboneConfig::preset("unet2d_condition", "tiny").unwrap() else {
        unreachable!()
    };
    let text_unet = text_unet.init::<B>(&device).unwrap();
    assert_eq!(text_unet.student_names().len(), 5, "{:?}", text_unet.student_names());
    let exp = experiment("unet2d_condition", "epsilon", 20);
    reduces_loss(
        Framed::new(text_unet, sample_args(&exp, &device), &device).unwrap(),
        &exp,
        "unet2d_condition",
    );
}

#[test]
fn a_schedule_runs_end_to_end_on_the_embedded_photos() {
    let exp = experiment("dit", "rectified_flow", 3);
    let dir = temp_dir("e2e");
    let summary = framer_train::cli::train_experiment::<framer_train::Builtin, B>(&exp, &dir, &Default::default()).unwrap();
    assert_eq!(summary.end_step, 3);
    assert!(summary.final_loss.is_some_and(f64::is_finite));
    let records = metrics::read(&summary.metrics, LogFormat::Jsonl).unwrap();
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r.framer_loss.is_some()));
    assert!(dir.join("schedule.resolved.toml").is_file());
    assert!(
        summary
            .checkpoint
            .as_ref()
            .is_some_and(|c| c.join("model.mpk").is_file())
    );
    fs::remove_dir_all(&dir).unwrap();
}
