//! `[train] mixed_precision`: the half-precision forward pass of both backbones is close to the
//! f32 one and its gradients reach the f32 weights; training keeps every weight in f32; an f16
//! run (with its loss scale) resumes exactly; and the schedule key is checked.
//!
//! Tolerances: bf16 keeps 8 bits of mantissa (a relative rounding of 2⁻⁹ ≈ 2e-3 per value).
//! Through the tiny backbones' layers the bf16 output's relative L2 error must stay under 5e-2
//! (measured: 8.3e-3 DiT, 1.4e-2 U-Net) and above 1e-5 (it did run in bf16); the gradient's
//! cosine with the f32 gradient above 0.999 (measured: 0.99999, 0.99997); the first training
//! loss within 5e-3 relative of f32's (measured: 3.9e-4).

use std::path::Path;

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{DType, FloatDType, Tensor, TensorData};
use framer_backbones::{DiTConfig, UNetConfig};
use framer_train::engine::precision::{LossScale, cast_module};
use framer_train::engine::{ModelConfig, SyntheticPairs, Trainer, build_framed};
use framer_train::schedule::{self, Experiment, MixedPrecision};

type B = Autodiff<Flex>;

fn experiment(backbone: &str, precision: &str, steps: u64, resume: bool) -> Experiment {
    let precision = match precision {
        "" => String::new(),
        p => format!("mixed_precision = \"{p}\"\n"),
    };
    let text = format!(
        "[model]\nbackbone = \"{backbone}\"\n[data]\ncrop_size = 16\n[train]\nsteps = {steps}\n\
         batch_size = 2\nseed = 5\n{precision}[optimizer]\nlr = 1e-3\n[checkpoint]\nevery = 2\n\
         resume = {resume}\n[logging]\nprogress = false\n"
    );
    schedule::parse(&text, "mp.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("framer-mp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn source() -> Box<SyntheticPairs> {
    Box::new(SyntheticPairs { seed: 1, size: 16, scale: 4 })
}

/// A deterministic `[2, 3, 16, 16]` input: `sin(0.37·i + phase)`.
fn input(phase: f32) -> Tensor<B, 4> {
    let v: Vec<f32> = (0..2 * 3 * 16 * 16).map(|i| (0.37 * i as f32 + phase).sin()).collect();
    Tensor::from_data(TensorData::new(v, [2, 3, 16, 16]), &Default::default())
}

fn norm(t: Tensor<B, 4>) -> f64 {
    t.powi_scalar(2).sum().into_scalar() as f64
}

/// Every float parameter's dtype and values (in visiting order; ids differ between builds).
fn params(m: &impl Module<B>) -> Vec<(DType, Vec<f32>)> {
    struct Collect(Vec<(DType, Vec<f32>)>);
    impl ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            let t = p.val();
            let dtype = t.dtype();
            self.0.push((dtype, t.cast(FloatDType::F32).into_data().to_vec::<f32>().unwrap()));
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

/// The gradient of every parameter of `m` in `grads`, flattened, with its dtype.
fn gradients(m: &impl Module<B>, grads: &GradientsParams) -> Vec<Option<(DType, Vec<f32>)>> {
    struct Collect<'a>(&'a GradientsParams, Vec<Option<(DType, Vec<f32>)>>);
    impl ModuleVisitor<B> for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            let g = self.0.get::<Flex, D>(p.id);
            self.1.push(g.map(|g| (g.dtype(), g.into_data().to_vec::<f32>().unwrap())));
        }
    }
    let mut c = Collect(grads, Vec::new());
    m.visit(&mut c);
    c.1
}

fn check_backbone<C: ModelConfig>(config: &C, backbone: &str) {
    let device = Default::default();
    let exp = experiment(backbone, "", 1, false);
    let framed = build_framed::<B, C>(config, &exp, &device).unwrap();
    let (x, lr) = (input(0.0), input(1.3));
    let t = Tensor::<B, 1>::from_floats([0.3, 0.8], &device);
    let weights = input(2.1);

    let y32 = framed.forward((x.clone(), t.clone(), lr.clone()));
    let low = cast_module(framed.clone(), FloatDType::BF16);
    assert!(params(&low).iter().all(|(d, _)| *d == DType::BF16), "{backbone}: every weight cast");
    let y16 = low.forward((x.cast(FloatDType::BF16), t, lr.cast(FloatDType::BF16)));
    assert_eq!(y16.dtype(), DType::BF16, "{backbone}: the forward pass runs in bf16");
    let y16 = y16.cast(FloatDType::F32);
    let rel = (norm(y16.clone() - y32.clone()) / norm(y32.clone())).sqrt();
    eprintln!("{backbone}: bf16 output relative error {rel:.2e}");
    assert!(rel < 5e-2 && rel > 1e-5, "{backbone}: bf16 output relative error {rel}");

    // the same loss of each output: the gradients land on the f32 weights of `framed`
    let g32 = GradientsParams::from_grads((y32 * weights.clone()).sum().backward(), &framed);
    let g16 = GradientsParams::from_grads((y16 * weights).sum().backward(), &framed);
    let (g32, g16) = (gradients(&framed, &g32), gradients(&framed, &g16));
    let (mut dot, mut n32, mut n16, mut with_grad) = (0.0f64, 0.0f64, 0.0f64, 0);
    for (a, b) in g32.iter().zip(&g16) {
        match (a, b) {
            (Some((_, a)), Some((dtype, b))) => {
                assert_eq!(*dtype, DType::F32, "{backbone}: gradients arrive in f32");
                with_grad += 1;
                for (x, y) in a.iter().zip(b) {
                    dot += f64::from(*x) * f64::from(*y);
                    n32 += f64::from(*x).powi(2);
                    n16 += f64::from(*y).powi(2);
                }
            }
            (None, None) => {}
            _ => panic!("{backbone}: a parameter has a gradient in one precision only"),
        }
    }
    assert!(with_grad > 10, "{backbone}: {with_grad} parameters with gradients");
    let cosine = dot / (n32.sqrt() * n16.sqrt());
    eprintln!("{backbone}: gradient cosine {cosine:.6} over {with_grad} parameters");
    assert!(cosine > 0.999, "{backbone}: gradient cosine {cosine}");
}

#[test]
fn bf16_forward_is_close_to_f32_and_its_gradients_reach_the_f32_weights() {
    check_backbone(&DiTConfig::tiny(), "dit");
    check_backbone(&UNetConfig::tiny(), "unet");
}

#[test]
fn a_bf16_run_keeps_its_weights_in_f32_and_its_losses_close_to_f32() {
    let device = Default::default();
    let run = |precision: &str, name: &str| {
        let exp = experiment("unet", precision, 3, false);
        let framed = build_framed::<B, UNetConfig>(&UNetConfig::tiny(), &exp, &device).unwrap();
        let dir = temp(name);
        let mut trainer = Trainer::new(&exp, framed, source(), &dir, &device).unwrap();
        let first = trainer.evaluate(0).unwrap();
        let start = params(trainer.model());
        trainer.run(None).unwrap();
        let end = params(trainer.model());
        let _ = std::fs::remove_dir_all(&dir);
        (first, start, end)
    };
    let (f32_loss, f32_start, f32_end) = run("", "f32");
    let (bf16_loss, bf16_start, bf16_end) = run("bf16", "bf16");
    assert!(f32_start == bf16_start, "the same initial weights");
    let rel = ((bf16_loss.0 - f32_loss.0) / f32_loss.0).abs();
    eprintln!("first loss: bf16 {} f32 {} (relative {rel:.2e})", bf16_loss.0, f32_loss.0);
    assert!(rel < 5e-3 && rel > 0.0, "first loss: bf16 {} against f32 {}", bf16_loss.0, f32_loss.0);
    assert!(bf16_end.iter().all(|(d, _)| *d == DType::F32), "master weights stay f32");
    assert!(bf16_end.iter().flat_map(|(_, v)| v).all(|v| v.is_finite()));
    let moved = |end: &[(DType, Vec<f32>)]| end.iter().zip(&bf16_start).filter(|(a, b)| a.1 != b.1).count();
    assert_eq!(moved(&bf16_end), moved(&f32_end), "the same parameters train in both precisions");
    assert!(moved(&bf16_end) > 10);
    assert!(bf16_end != f32_end, "the bf16 run computed in bf16");
}

#[test]
fn an_f16_run_resumes_exactly_with_its_loss_scale() {
    let device = Default::default();
    let straight_dir = temp("f16-straight");
    let exp = experiment("dit", "fp16", 4, false);
    let framed = build_framed::<B, DiTConfig>(&DiTConfig::tiny(), &exp, &device).unwrap();
    let mut straight = Trainer::new(&exp, framed, source(), &straight_dir, &device).unwrap();
    let summary = straight.run(None).unwrap();
    assert!(summary.final_loss.is_some_and(f64::is_finite));
    let state = |dir: &Path| -> serde_json::Value {
        let text = std::fs::read_to_string(dir.join("checkpoints/step-00000004/state.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let straight_state = state(&straight_dir);
    let scale = straight_state.pointer("/loss_scale/scale").and_then(|v| v.as_f64());
    let scale = scale.unwrap_or_else(|| panic!("no loss scale in {straight_state}"));
    eprintln!("loss scale after 4 f16 steps: {}", straight_state["loss_scale"]);
    assert!(scale <= LossScale::INITIAL && (LossScale::INITIAL / scale).log2().fract() == 0.0, "{scale}");

    let resumed_dir = temp("f16-resumed");
    let exp = experiment("dit", "fp16", 4, true);
    let framed = build_framed::<B, DiTConfig>(&DiTConfig::tiny(), &exp, &device).unwrap();
    Trainer::new(&exp, framed, source(), &resumed_dir, &device).unwrap().run(Some(2)).unwrap();
    let framed = build_framed::<B, DiTConfig>(&DiTConfig::tiny(), &exp, &device).unwrap();
    let mut second = Trainer::new(&exp, framed, source(), &resumed_dir, &device).unwrap();
    assert_eq!(second.step(), 2);
    second.run(None).unwrap();
    assert!(params(second.model()) == params(straight.model()), "weights bit for bit as uninterrupted");
    assert_eq!(
        state(&resumed_dir).pointer("/loss_scale"),
        straight_state.pointer("/loss_scale"),
        "the loss scale resumes too"
    );
    let _ = std::fs::remove_dir_all(&straight_dir);
    let _ = std::fs::remove_dir_all(&resumed_dir);
}

#[test]
fn the_schedule_key_takes_accelerates_names_and_reports_a_bad_one_where_it_is() {
    let with = |value: &str| {
        let text = format!("[model]\nbackbone = \"dit\"\n[train]\nsteps = 1\nmixed_precision = \"{value}\"\n");
        schedule::parse(&text, "mp.toml", Path::new("."))
    };
    let e = with("fp8").unwrap_err().to_string();
    assert!(e.contains("mp.toml:5:19") && e.contains("fp8") && e.contains("bf16"), "{e}");
    assert_eq!(with("f16").unwrap().train.mixed_precision, MixedPrecision::Fp16);
    let exp = with("bf16").unwrap();
    assert_eq!(exp.train.mixed_precision, MixedPrecision::Bf16);
    let text = exp.to_string();
    assert!(text.contains("mixed_precision = \"bf16\""), "{text}");
    assert_eq!(schedule::parse(&text, "r.toml", Path::new(".")).unwrap(), exp);
    let plain = with("no").unwrap();
    assert!(!plain.to_string().contains("mixed_precision"), "f32 runs keep their resolved schedule");
}

#[test]
fn lora_adapters_train_in_bf16_and_stay_f32() {
    let device = Default::default();
    let text = "[model]\nbackbone = \"dit\"\n[data]\ncrop_size = 16\n[train]\nsteps = 2\nbatch_size = 2\n\
                mixed_precision = \"bf16\"\n[optimizer]\nlr = 1e-2\n[checkpoint]\nresume = false\n\
                [logging]\nprogress = false\n[lora]\nrank = 2\ntargets = [\"*.attn.to_q\"]\n";
    let exp = schedule::parse(text, "lora-mp.toml", Path::new(".")).unwrap();
    let framed = build_framed::<B, DiTConfig>(&DiTConfig::tiny(), &exp, &device).unwrap();
    let base = params(&framed.model);
    let dir = temp("lora");
    let mut trainer = Trainer::new(&exp, framed, source(), &dir, &device).unwrap();
    let before = params(trainer.lora_adapters().unwrap());
    trainer.run(None).unwrap();
    assert!(params(&trainer.model().model) == base, "the model's weights stay frozen");
    let after = params(trainer.lora_adapters().unwrap());
    assert!(after.iter().all(|(d, _)| *d == DType::F32), "the adapters stay f32");
    assert!(after != before, "the adapters trained through the bf16 cast");
    let _ = std::fs::remove_dir_all(&dir);
}
