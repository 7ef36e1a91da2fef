//! The `framer sr`, `framer eval` and `framer analyze` commands, end to end on a tiny run trained
//! for two steps.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The deterministic MUSIQ weights of framer-iqa's oracle tests.
#[cfg(feature = "iqa")]
#[path = "../../framer-iqa/tests/oracle/mod.rs"]
mod oracle;

fn framer(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_framer"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("framer-cli-eval-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A deterministic RGB test pattern.
fn write_png(path: &Path, w: u32, h: u32, phase: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            ((x * 37 + y * 11 + phase) % 256) as u8,
            ((x * 5 + y * 53 + 2 * phase) % 256) as u8,
            ((x * y + 90 + phase) % 256) as u8,
        ])
    });
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

/// A tiny U-Net run (crop 32, ×4, batch 1) trained for 2 steps, shared by the tests.
fn trained_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = temp("run");
        let schedule = dir.join("tiny.toml");
        std::fs::write(
            &schedule,
            "[model]\nbackbone = \"unet\"\npreset = \"tiny\"\n[data]\ncrop_size = 32\n\
             [train]\nsteps = 2\nbatch_size = 1\nema_decay = 0.9\n[checkpoint]\nevery = 2\n\
             [logging]\nprogress = false\n",
        )
        .unwrap();
        let out = dir.join("run");
        let (ok, _, stderr) = framer(&["train", s(&schedule), "--out", s(&out)]);
        assert!(ok, "{stderr}");
        out
    })
}

#[test]
fn sr_upscales_an_image_and_a_folder_with_a_trained_run() {
    let run = trained_run();
    let dir = temp("sr");
    // 10×6 LR → 40×24: narrower than a 32-pixel tile in height (reflection padded)
    let lr = dir.join("lr/a.png");
    write_png(&lr, 10, 6, 0);
    write_png(&dir.join("lr/b.png"), 12, 12, 7);
    let out = dir.join("a_sr.png");
    let (ok, stdout, stderr) = framer(&[
        "sr",
        "--run",
        s(run),
        s(&lr),
        s(&out),
        "--steps",
        "2",
        "--seed",
        "3",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("ema.mpk"),
        "the EMA weights are used: {stdout}"
    );
    let sr = image::open(&out).unwrap();
    assert_eq!((sr.width(), sr.height()), (40, 24));
    // the same seed gives the same image
    let again = dir.join("a_again.png");
    let (ok, _, stderr) = framer(&[
        "sr",
        "--run",
        s(run),
        s(&lr),
        s(&again),
        "--steps",
        "2",
        "--seed",
        "3",
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(sr.to_rgb8(), image::open(&again).unwrap().to_rgb8());

    // a folder, several tiles per image, with an explicit checkpoint and schedule
    let checkpoint = run.join("checkpoints/step-00000002");
    let schedule = run.join("schedule.resolved.toml");
    let out_dir = dir.join("out");
    let (ok, _, stderr) = framer(&[
        "sr",
        "--checkpoint",
        s(&checkpoint),
        "--schedule",
        s(&schedule),
        s(&dir.join("lr")),
        s(&out_dir),
        "--steps",
        "1",
        "--tile",
        "32",
        "--overlap",
        "8",
        "--color-fix",
        "wavelet",
    ]);
    assert!(ok, "{stderr}");
    let b = image::open(out_dir.join("b.png")).unwrap();
    assert_eq!((b.width(), b.height()), (48, 48));
    assert!(out_dir.join("a.png").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sr_with_a_missing_run_fails_naming_the_path() {
    let dir = temp("missing");
    let lr = dir.join("a.png");
    write_png(&lr, 8, 8, 0);
    let missing = dir.join("no-such-run");
    let (ok, _, stderr) = framer(&["sr", "--run", s(&missing), s(&lr), s(&dir.join("o.png"))]);
    assert!(!ok);
    assert!(stderr.contains(s(&missing)), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // a run folder without checkpoints
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let (ok, _, stderr) = framer(&[
        "sr",
        "--run",
        s(&dir.join("empty")),
        s(&lr),
        s(&dir.join("o.png")),
    ]);
    assert!(!ok);
    assert!(stderr.contains("schedule.resolved.toml"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eval_of_identical_folders_is_perfect() {
    let dir = temp("identical");
    for (name, phase) in [("x.png", 0), ("y.png", 40)] {
        write_png(&dir.join("sr").join(name), 24, 20, phase);
        write_png(&dir.join("gt").join(name), 24, 20, phase);
    }
    let csv = dir.join("scores.csv");
    let (ok, stdout, stderr) = framer(&[
        "eval",
        s(&dir.join("sr")),
        "--gt",
        s(&dir.join("gt")),
        "--metrics",
        "psnr_y,ssim_y",
        "--csv",
        s(&csv),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("inf"), "{stdout}");
    assert!(
        stdout.contains("LPIPS") || stdout.contains("lpips"),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mean: Vec<&str> = lines
        .find(|l| l.starts_with("mean"))
        .unwrap()
        .split(',')
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    assert_eq!(mean[col("psnr_y")], "inf", "{text}");
    let ssim: f64 = mean[col("ssim_y")].parse().unwrap();
    assert!((ssim - 1.0).abs() < 1e-9, "{text}");

    // the comparison mode: a table and a bar chart
    write_png(&dir.join("other/x.png"), 24, 20, 3);
    write_png(&dir.join("other/y.png"), 24, 20, 41);
    let out = dir.join("cmp");
    let same = format!("same={}", s(&dir.join("sr")));
    let other = format!("other={}", s(&dir.join("other")));
    let (ok, stdout, stderr) = framer(&[
        "eval",
        "--compare",
        &same,
        &other,
        "--gt",
        s(&dir.join("gt")),
        "--metrics",
        // lpips without weights: listed as not computed (a build without `iqa` refuses it)
        if cfg!(feature = "iqa") {
            "psnr_y,ssim_y,lpips"
        } else {
            "psnr_y,ssim_y"
        },
        "--crop-border",
        "2",
        "--out",
        s(&out),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("same") && stdout.contains("other"),
        "{stdout}"
    );
    assert!(out.join("comparison.png").is_file() && out.join("comparison.csv").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A build without the feature `iqa` computes the other metrics, and names the feature when a
/// network metric is asked for.
#[cfg(not(feature = "iqa"))]
#[test]
fn eval_without_the_iqa_feature_names_it() {
    let dir = temp("no-iqa");
    write_png(&dir.join("sr/a.png"), 24, 20, 0);
    write_png(&dir.join("gt/a.png"), 24, 20, 5);
    let (sr, gt) = (dir.join("sr"), dir.join("gt"));
    let (ok, stdout, stderr) = framer(&["eval", s(&sr), "--gt", s(&gt), "--metrics", "psnr_y"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("not computed: lpips, musiq, maniqa") && stdout.contains("`iqa` feature"),
        "{stdout}"
    );
    for args in [
        &["--metrics", "psnr_y,musiq"][..],
        &["--lpips-weights", s(&dir)][..],
    ] {
        let mut all = vec!["eval", s(&sr), "--gt", s(&gt)];
        all.extend_from_slice(args);
        let (ok, _, stderr) = framer(&all);
        assert!(!ok && stderr.contains("`iqa` feature"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eval_with_mismatched_sizes_fails_naming_the_file() {
    let dir = temp("mismatch");
    write_png(&dir.join("sr/odd_one.png"), 24, 20, 0);
    write_png(&dir.join("gt/odd_one.png"), 20, 20, 0);
    let (ok, _, stderr) = framer(&[
        "eval",
        s(&dir.join("sr")),
        "--gt",
        s(&dir.join("gt")),
        "--metrics",
        "psnr_y",
    ]);
    assert!(!ok);
    assert!(stderr.contains("odd_one"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn analyze_writes_band_statistics_over_the_denoising_steps() {
    let run = trained_run();
    let dir = temp("analyze");
    write_png(&dir.join("lr/a.png"), 8, 8, 0);
    let out = dir.join("analysis");
    let (ok, stdout, stderr) = framer(&[
        "analyze",
        "--run",
        s(run),
        "--images",
        s(&dir.join("lr")),
        "--out",
        s(&out),
        "--steps",
        "3",
    ]);
    assert!(ok, "{stderr}");
    let csv = std::fs::read_to_string(out.join("spectra.csv")).unwrap();
    assert!(csv.starts_with("step,timestep,samples,layer,"), "{csv}");
    // 3 steps, each with at least one student layer and the final layer
    let steps: std::collections::BTreeSet<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(steps.len(), 3, "{csv}");
    assert!(csv.lines().skip(1).count() >= 3 * 2, "{csv}");
    assert!(out.join("energy_high_over_steps.png").is_file());
    // Fig. 9 is either written or its absence explained
    assert!(
        out.join("training/weights.csv").is_file() || stdout.contains("note: FAW/FAM"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `clean_estimate` inverts each objective's noising: built from a known `x0` and `ε`, the
/// network target (`v` or `ε`) gives back `x0` (closed form, f32 tolerance).
#[test]
fn clean_estimate_recovers_x0_for_every_objective() {
    use burn::backend::Flex;
    use burn::tensor::{Tensor, TensorData};
    use framer_train::commands::analyze::clean_estimate;
    use framer_train::engine::Objective;
    let device = Default::default();
    let t = |v: Vec<f32>| Tensor::<Flex, 4>::from_data(TensorData::new(v, [1, 1, 2, 2]), &device);
    let (x0, eps) = (
        t(vec![0.5, -0.25, 0.9, -1.0]),
        t(vec![1.3, -0.7, 0.2, 0.05]),
    );
    let close = |a: Tensor<Flex, 4>, b: Tensor<Flex, 4>| {
        let d: f32 = (a - b).abs().max().into_scalar();
        assert!(d < 1e-5, "max difference {d}");
    };
    // rectified flow: x_t = (1 − σ)x0 + σε, v = ε − x0
    let rf = Objective::RectifiedFlow {
        sampling: framer_train::schedule::SigmaSampling::Uniform,
        logit_mean: 0.0,
        logit_std: 1.0,
    };
    let sigma = 0.7;
    let x_t = x0.clone().mul_scalar(1.0 - sigma) + eps.clone().mul_scalar(sigma);
    close(
        clean_estimate(&rf, x_t, eps.clone() - x0.clone(), sigma),
        x0.clone(),
    );
    // DDPM with ᾱ = [0.9, 0.5, 0.2, 0.1]: step 2 of 4 (level 0.5), ᾱ = 0.2
    for v_prediction in [false, true] {
        let ddpm = Objective::Ddpm {
            v_prediction,
            alphas_cumprod: vec![0.9, 0.5, 0.2, 0.1],
        };
        let (sa, sb) = (0.2f64.sqrt(), 0.8f64.sqrt());
        let x_t = x0.clone().mul_scalar(sa) + eps.clone().mul_scalar(sb);
        let target = if v_prediction {
            eps.clone().mul_scalar(sa) - x0.clone().mul_scalar(sb)
        } else {
            eps.clone()
        };
        close(clean_estimate(&ddpm, x_t, target, 0.5), x0.clone());
    }
}

/// The network metrics, in a build with the feature `iqa` (the default).
#[cfg(feature = "iqa")]
mod iqa {
    use super::*;

    /// Writes a deterministic AlexNet backbone (`features.N.*`, `2 sin(2.3 i + k) / √fan_in`
    /// weights, `0.01 sin(2.3 i + k)` biases) as `.safetensors` into `dir` and returns its path.
    fn write_alexnet_backbone(dir: &Path, name: &str) -> PathBuf {
        use framer_iqa::lpips::LpipsNet;
        use framer_iqa::weight_file::{HostTensor, write_safetensors};
        let tensors = LpipsNet::Alex
            .backbone_weights()
            .iter()
            .enumerate()
            .map(|(k, spec)| {
                let n: usize = spec.shape.iter().product();
                let fan_in: usize = spec.shape[1..].iter().product::<usize>().max(1);
                let scale = if spec.shape.len() == 1 {
                    0.01
                } else {
                    2.0 / (fan_in as f64).sqrt()
                };
                let data = (0..n)
                    .map(|i| (scale * (2.3 * i as f64 + k as f64).sin()) as f32)
                    .collect();
                let t = HostTensor {
                    shape: spec.shape.clone(),
                    data,
                };
                (spec.name.clone(), t)
            })
            .collect();
        let path = dir.join(name);
        write_safetensors(&path, &tensors).unwrap();
        path
    }

    /// The `lpips` package's own AlexNet linear layers, kept as a fixture of framer-iqa.
    fn lpips_linear_fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../framer-iqa/tests/fixtures/lpips-v0.1-alex.pth")
    }

    /// The CSV column `name` of the row starting with `row`.
    fn csv_value(text: &str, row: &str, name: &str) -> f64 {
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("{text}"));
        let line = lines
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("{text}"));
        line.split(',').nth(col).unwrap().parse().unwrap()
    }

    #[test]
    fn eval_computes_lpips_from_user_supplied_weight_files() {
        use framer_iqa::lpips::{Lpips, LpipsFiles, LpipsNet};
        use framer_metrics::MetricImage;
        let dir = temp("lpips");
        write_png(&dir.join("gt/a.png"), 48, 40, 0);
        write_png(&dir.join("sr/a.png"), 48, 40, 9);
        write_png(&dir.join("gt/b.png"), 48, 40, 100);
        write_png(&dir.join("sr/b.png"), 48, 40, 100);
        let weights = dir.join("weights");
        std::fs::create_dir_all(&weights).unwrap();
        let backbone = write_alexnet_backbone(&weights, "alexnet-owt-test.safetensors");
        std::fs::copy(lpips_linear_fixture(), weights.join("alex.pth")).unwrap();

        // without weights: not computed, and the note says how to supply them
        let (ok, stdout, stderr) = framer(&[
            "eval",
            s(&dir.join("sr")),
            "--gt",
            s(&dir.join("gt")),
            "--metrics",
            "psnr_y,lpips",
        ]);
        assert!(ok, "{stderr}");
        assert!(
            stdout.contains("not computed: lpips") && stdout.contains("--lpips-weights"),
            "{stdout}"
        );

        // with the folder: lpips is added to the metrics and matches the library
        let csv = dir.join("scores.csv");
        let (ok, stdout, stderr) = framer(&[
            "eval",
            s(&dir.join("sr")),
            "--gt",
            s(&dir.join("gt")),
            "--metrics",
            "psnr_y",
            "--crop-border",
            "2",
            "--lpips-weights",
            s(&weights),
            "--csv",
            s(&csv),
        ]);
        assert!(ok, "{stderr}");
        assert!(!stdout.contains("not computed: lpips"), "{stdout}");
        assert!(stdout.contains("not computed: musiq, maniqa"), "{stdout}");
        let text = std::fs::read_to_string(&csv).unwrap();
        let files = LpipsFiles {
            net: LpipsNet::Alex,
            backbone: backbone.clone(),
            linear: weights.join("alex.pth"),
        };
        let lpips = Lpips::<burn::backend::Flex>::load(&files, &Default::default()).unwrap();
        let load = |p: &str| MetricImage::load(dir.join(p)).unwrap();
        let want = lpips
            .distance(&load("sr/a.png"), &load("gt/a.png"), 2)
            .unwrap();
        assert!(want > 1e-3, "{want}");
        assert_eq!(csv_value(&text, "a", "lpips"), want, "{text}");
        assert_eq!(csv_value(&text, "b", "lpips"), 0.0, "{text}");

        // the same with explicit files, in the comparison mode
        let out = dir.join("cmp");
        let run_a = format!("a={}", s(&dir.join("sr")));
        let run_b = format!("b={}", s(&dir.join("gt")));
        let (ok, stdout, stderr) = framer(&[
            "eval",
            "--compare",
            &run_a,
            &run_b,
            "--gt",
            s(&dir.join("gt")),
            "--metrics",
            "lpips,musiq",
            "--lpips-backbone",
            s(&backbone),
            "--lpips-linear",
            s(&weights.join("alex.pth")),
            "--out",
            s(&out),
        ]);
        assert!(ok, "{stderr}");
        assert!(
            stdout.contains("lpips") && stdout.contains("not computed: musiq"),
            "{stdout}"
        );
        let text = std::fs::read_to_string(out.join("comparison.csv")).unwrap();
        assert!(text.lines().any(|l| l.starts_with("lpips,")), "{text}");

        // unusable weights: an error naming the file and the tensor, not a panic
        let bad = dir.join("bad");
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::copy(lpips_linear_fixture(), bad.join("alexnet-wrong.pth")).unwrap();
        std::fs::copy(lpips_linear_fixture(), bad.join("alex.pth")).unwrap();
        let (ok, _, stderr) = framer(&[
            "eval",
            s(&dir.join("sr")),
            "--gt",
            s(&dir.join("gt")),
            "--lpips-weights",
            s(&bad),
        ]);
        assert!(!ok);
        assert!(
            stderr.contains("alexnet-wrong.pth") && stderr.contains("features.0.weight"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        let (ok, _, stderr) = framer(&[
            "eval",
            s(&dir.join("sr")),
            "--gt",
            s(&dir.join("gt")),
            "--lpips-weights",
            s(&dir.join("sr")),
        ]);
        assert!(!ok && stderr.contains("no backbone file"), "{stderr}");
        let (ok, _, stderr) = framer(&[
            "eval",
            s(&dir.join("sr")),
            "--gt",
            s(&dir.join("gt")),
            "--lpips-backbone",
            s(&backbone),
        ]);
        assert!(!ok && stderr.contains("--lpips-linear"), "{stderr}");
        let (ok, _, stderr) = framer(&[
            "eval",
            s(&dir.join("sr")),
            "--gt",
            s(&dir.join("gt")),
            "--lpips-weights",
            s(&weights),
            "--lpips-net",
            "squeeze",
        ]);
        assert!(!ok && stderr.contains("expected alex or vgg"), "{stderr}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn eval_computes_musiq_from_a_user_supplied_checkpoint() {
        use framer_eval::compare::ImageMetric;
        use framer_iqa::musiq::{Musiq, MusiqConfig};
        use framer_iqa::weight_file::write_safetensors;
        use framer_metrics::MetricImage;
        let dir = temp("musiq");
        write_png(&dir.join("sr/a.png"), 72, 56, 3);
        write_png(&dir.join("sr/b.png"), 48, 64, 70);
        // the full-size network of pyiqa's checkpoints, with deterministic weights
        let weights = dir.join("musiq-formula.safetensors");
        write_safetensors(&weights, &oracle::musiq_weights(&MusiqConfig::default())).unwrap();

        // no-reference: no ground truth needed; musiq is added to the metrics
        let csv = dir.join("scores.csv");
        let (ok, stdout, stderr) = framer(&[
            "eval",
            s(&dir.join("sr")),
            "--metrics",
            "maniqa",
            "--crop-border",
            "4",
            "--musiq-weights",
            s(&weights),
            "--csv",
            s(&csv),
        ]);
        assert!(ok, "{stderr}");
        assert!(
            stdout.contains("musiq") && stdout.contains("not computed: maniqa"),
            "{stdout}"
        );
        assert!(stdout.contains("--maniqa-weights"), "{stdout}");
        let text = std::fs::read_to_string(&csv).unwrap();
        let musiq = Musiq::<burn::backend::Flex>::load(
            &weights,
            MusiqConfig::default(),
            &Default::default(),
        )
        .unwrap();
        for stem in ["a", "b"] {
            let img = MetricImage::load(dir.join(format!("sr/{stem}.png"))).unwrap();
            let want = musiq.score(&img.crop_border(4).unwrap()).unwrap();
            assert!(want.is_finite());
            assert_eq!(csv_value(&text, stem, "musiq"), want, "{text}");
        }
        // the two images differ, so must their scores
        assert_ne!(
            csv_value(&text, "a", "musiq"),
            csv_value(&text, "b", "musiq")
        );

        // a missing file, and a file of another network, are errors naming the file
        let (ok, _, stderr) = framer(&[
            "eval",
            s(&dir.join("sr")),
            "--musiq-weights",
            s(&dir.join("absent.pth")),
        ]);
        assert!(
            !ok && stderr.contains("--musiq-weights") && stderr.contains("absent.pth"),
            "{stderr}"
        );
        let (ok, _, stderr) =
            framer(&["eval", s(&dir.join("sr")), "--maniqa-weights", s(&weights)]);
        assert!(
            !ok && stderr.contains("musiq-formula.safetensors"),
            "{stderr}"
        );
        assert!(stderr.contains("not found"), "{stderr}");

        // a build without the `cuda` feature says so instead of falling back to the CPU
        if !cfg!(feature = "cuda") {
            let (ok, _, stderr) = framer(&[
                "eval",
                s(&dir.join("sr")),
                "--musiq-weights",
                s(&weights),
                "--device",
                "cuda",
            ]);
            assert!(!ok && stderr.contains("`cuda` feature"), "{stderr}");
        }
    }
}
