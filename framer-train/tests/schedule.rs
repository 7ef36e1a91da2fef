//! Schedule parsing: every bad file is rejected with its snapshotted message, every example
//! loads, and resolved values match hand-worked numbers.

use std::path::Path;

use framer_train::schedule::{self, Ramp};

#[test]
fn every_bad_schedule_is_rejected_with_a_located_message() {
    let dir = Path::new("tests/bad_schedules");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "only {} bad schedules", files.len());
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let shown = format!("tests/bad_schedules/{name}.toml");
        // the whole check of `framer check`: the schedule, then the model table and its students
        let result = std::panic::catch_unwind(|| {
            framer_train::cli::check_schedule::<framer_train::Builtin>(std::path::Path::new(&shown))
        });
        let err = match result {
            Ok(Ok(_)) => panic!("{shown} was accepted"),
            Ok(Err(e)) => e,
            Err(_) => panic!("{shown} panicked"),
        };
        let loc = err
            .location
            .as_ref()
            .unwrap_or_else(|| panic!("{shown}: no location: {err}"));
        assert_eq!(loc.path, shown);
        assert!(loc.line >= 1 && loc.column >= 1);
        assert!(err.key.is_some(), "{shown}: no key: {err}");
        insta::assert_snapshot!(name, err.to_string());
    }
}

#[test]
fn unreadable_file_is_an_error_naming_it() {
    let err = schedule::load("tests/no_such_schedule.toml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("error: cannot read schedule `tests/no_such_schedule.toml`")
    );
    assert!(err.location.is_none());
}

#[test]
fn every_example_schedule_is_valid() {
    let dir = Path::new("../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = schedule::load(&path) {
                panic!("{e}");
            }
            n += 1;
        }
    }
    assert!(
        n >= 6,
        "expected the reference, U-Net and ablation examples, found {n}"
    );
}

const WARMUP: &str = r#"
[model]
backbone = "unet"

[train]
steps = 1000
batch_size = 2

[framer]
lambda_framer = 0.1     # official spelling
tau_high = 0.5          # official spelling
cutoff = 0.3

[optimizer]
learning_rate = 1e-4

[lr_schedule]
kind = "cosine"
warmup_steps = 100
min_lr = 1e-5

[[schedule.phase]]
name = "base only"
start = 0
end = 200
lambda = 0.0

[[schedule.phase]]
start = 200
end = 400
lambda = { from = 0.0, to = 0.1 }
adaptive_weight = false

[[schedule.phase]]
start = 900
lr = 0.0
"#;

#[test]
fn resolved_values_worked_by_hand() {
    let e = schedule::parse(WARMUP, "warmup.toml", Path::new(".")).unwrap();
    assert_eq!(e.name, "warmup");
    assert_eq!(e.framer.lambda, 0.1);
    assert_eq!(e.framer.loss.temperature, 0.5);
    assert_eq!(
        e.framer.loss.mask,
        framer::BandMaskKind::Quantile { cutoff: 0.3 }
    );
    assert_eq!(e.optimizer.lr, 1e-4);
    // defaults: the reference's AdamW
    assert_eq!(
        (
            e.optimizer.beta1,
            e.optimizer.beta2,
            e.optimizer.weight_decay
        ),
        (0.9, 0.999, 1e-2)
    );
    assert_eq!(e.optimizer.max_grad_norm, Some(1.0));
    assert_eq!(
        e.phases[2].end, 1000,
        "an open phase runs to the end of training"
    );

    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1e-12);
    // λ: 0 on [0, 200); ramp 0 → 0.1 over [200, 400): step 300 is halfway; base 0.1 after
    assert_eq!(e.values_at(0).lambda, 0.0);
    assert_eq!(e.values_at(199).lambda, 0.0);
    assert_eq!(e.values_at(200).lambda, 0.0);
    assert!(close(e.values_at(300).lambda, 0.05));
    assert!(close(e.values_at(350).lambda, 0.075));
    assert_eq!(e.values_at(400).lambda, 0.1);
    // FAW off only inside phase 2
    assert!(e.values_at(199).adaptive_weight);
    assert!(!e.values_at(200).adaptive_weight);
    assert!(!e.values_at(399).adaptive_weight);
    assert!(e.values_at(400).adaptive_weight);
    // lr: warm-up 1e-4·step/100, then cosine to 1e-5 over [100, 1000); phase 3 forces 0 from 900
    assert_eq!(e.values_at(0).lr, 0.0);
    assert!(close(e.values_at(50).lr, 5e-5));
    assert!(close(e.values_at(100).lr, 1e-4));
    // halfway through the decay (step 550): 1e-5 + 9e-5·½(1 + cos π/2) = 5.5e-5
    assert!(close(e.values_at(550).lr, 5.5e-5));
    // step 775 = ¾ of the decay: 1e-5 + 9e-5·½(1 + cos 3π/4) = 1e-5 + 9e-5·0.1464466 = 2.318019e-5
    assert!(close(
        e.values_at(775).lr,
        1e-5 + 9e-5 * 0.5 * (1.0 - std::f64::consts::FRAC_1_SQRT_2)
    ));
    assert_eq!(e.values_at(900).lr, 0.0);
    assert_eq!(
        e.lambda_schedule().segments[1].value,
        Ramp::Linear { from: 0.0, to: 0.1 }
    );

    let loss = e.framer_loss_at(250);
    assert!(!loss.adaptive_weight && loss.alignment_modulation);
    assert_eq!(loss.temperature, 0.5);
    assert_eq!(loss.mask, framer::BandMaskKind::Quantile { cutoff: 0.3 });
}

#[test]
fn linear_schedule_and_disabled_framer() {
    let src = r#"
[model]
backbone = "dit"
[train]
steps = 11
[framer]
enabled = false
[optimizer]
lr = 1e-3
[lr_schedule]
kind = "linear"
"#;
    let e = schedule::parse(src, "lin.toml", Path::new(".")).unwrap();
    // no warm-up: lr·(T − step)/T with T = 11 → step 0: 1e-3, step 5: 6/11·1e-3, step 10: 1/11·1e-3
    let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
    assert!(close(e.values_at(0).lr, 1e-3));
    assert!(close(e.values_at(5).lr, 6.0 / 11.0 * 1e-3));
    assert!(close(e.values_at(10).lr, 1.0 / 11.0 * 1e-3));
    assert_eq!(e.values_at(3).lambda, 0.0, "FRAMER disabled means λ = 0");
}

#[test]
fn check_output_shows_resolved_values() {
    let e = schedule::parse(WARMUP, "warmup.toml", Path::new(".")).unwrap();
    let text = e.to_string();
    assert!(text.contains("lambda = 0.1"), "{text}");
    assert!(
        text.contains("200..400: lambda 0 → 0.1, adaptive_weight false"),
        "{text}"
    );
    // the printed TOML is a schedule that resolves to the same experiment
    let again = schedule::parse(&text, "warmup.toml", Path::new("."))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, e);
    for path in [
        "../examples/dit_reference.toml",
        "../examples/ablation_radial_mask.toml",
        "../examples/latent_sd3.toml",
    ] {
        let e = schedule::load(path).unwrap();
        assert_eq!(
            schedule::parse(&e.to_string(), path, Path::new(".")).unwrap(),
            e,
            "{path}"
        );
    }
}
