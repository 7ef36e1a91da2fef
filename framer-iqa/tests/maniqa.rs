//! MANIQA, checked against pyiqa's own architecture code.
//!
//! Reference values come from `framer-iqa/scripts/maniqa-oracle.py` (torch 2.15.0,
//! timm 1.0.31, pyiqa 0.1.16):
//!
//! ```text
//! /tmp/iqa-venv/bin/python framer-iqa/scripts/maniqa-oracle.py \
//!     --fixtures framer-iqa/tests/fixtures --full
//! ```
//!
//! The script builds `pyiqa.archs.maniqa_arch.MANIQA(pretrained=False, ...)` with
//! `timm.create_model` replaced by a small `VisionTransformer` (the configurations of
//! [`config_a`] and [`config_b`]; the full-size run gets timm's `vit_base_patch8_224` without
//! pretrained weights), overwrites every float parameter with the deterministic formula of
//! `oracle::maniqa_formula` (repeated in `tests/oracle`), and scores the deterministic images
//! of `oracle::maniqa_image` in float64.
//! The f32 port must agree within [`TOLERANCE`] (relative). It also writes
//! `tests/fixtures/maniqa-default-state-dict.txt`, the names and shapes of the default
//! configuration's `state_dict()`, and `tests/fixtures/maniqa-tiny-checkpoint.pth`, a tiny
//! configuration saved the way pyiqa's checkpoints are (see [`load_torch_checkpoint_fixture`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use framer_eval::compare::ImageMetric;
use framer_iqa::IqaError;
use framer_iqa::maniqa::{
    CROP_SIZE, Maniqa, ManiqaConfig, expected_tensors, required_tensors, uniform_crops,
};
use framer_iqa::weight_file::{HostTensor, write_safetensors};
use framer_metrics::{Metric, MetricImage};

mod oracle;

use oracle::{maniqa_image as image, maniqa_weights as formula_weights};

type B = Flex;

/// Relative tolerance of the f32 port against pyiqa in float64 (the small configurations agree
/// within 1.5e-6).
const TOLERANCE: f64 = 2e-5;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// 14×14 tokens (patch 16), window 7 with shift 3: the shifted-window mask is used.
fn config_a() -> ManiqaConfig {
    ManiqaConfig {
        embed_dim: 32,
        patch_size: 16,
        vit_depth: 12,
        vit_heads: 2,
        vit_mlp_hidden: 128,
        vit_classes: 10,
        depths: vec![2, 2],
        num_heads: vec![2, 2],
        window_size: 7,
        dim_mlp: 48,
        num_tab: 2,
        scale: 0.8,
        test_sample: 4,
        crop_batch: 3,
    }
}

/// 7×7 tokens (patch 32), window 8 ≥ 7: one unshifted window of the whole grid.
fn config_b() -> ManiqaConfig {
    ManiqaConfig {
        embed_dim: 24,
        patch_size: 32,
        vit_depth: 10,
        vit_heads: 3,
        vit_mlp_hidden: 48,
        vit_classes: 5,
        depths: vec![1, 2],
        num_heads: vec![2, 3],
        window_size: 8,
        dim_mlp: 20,
        num_tab: 1,
        scale: 0.13,
        test_sample: 3,
        crop_batch: 2,
    }
}

fn model(config: ManiqaConfig) -> Maniqa<B> {
    let weights = formula_weights(&config);
    Maniqa::from_tensors(config, &weights, &Default::default()).unwrap()
}

fn assert_rel(label: &str, got: f64, want: f64, tol: f64) {
    eprintln!(
        "{label}: relative error {:.2e}",
        (got - want).abs() / want.abs()
    );
    assert!(
        (got - want).abs() <= tol * want.abs(),
        "{label}: {got:.12e} vs {want:.12e} (relative {:.3e})",
        (got - want).abs() / want.abs()
    );
}

/// (width, height, kind, crops, Σ, Σ², Σ v·sin(flat index)) from the oracle.
#[rustfmt::skip]
const CROPS: [(usize, usize, u8, usize, f64, f64, f64); 5] = [
    (250, 236, 0, 4, -1.427922594547e+01, 1.234340017607e+05, 2.199906845411e-01),
    (150, 100, 1, 4, -7.609380540768e+02, 1.174188084814e+05, -2.088148068405e+00),
    (230, 300, 2, 3, -1.092457997799e+01, 9.257594916297e+04, 4.186898724836e-01),
    (260, 213, 0, 3, -8.018103658203e+00, 8.797029009489e+04, -1.467399562080e+00),
    (7, 5, 1, 3, 1.092359320807e+05, 9.208911316925e+04, -1.032804376215e-01),
];

/// `uniform_crop` after the normalisation: crops cut directly (250×236, 230×300), enlarged
/// by 2.25 (150×100 → 337×225), by 225/213 (260×213 → 274×224: 213·(225/213) falls just below 225 in
/// floating point, so the floor is 224) and by 45 (7×5 → 315×225), with grids of 2×2 (4 crops) and 2×2 minus one (3).
#[test]
fn crops_match_uniform_crop() {
    for (w, h, kind, n, sum, sumsq, weighted) in CROPS {
        let crops = uniform_crops(&image(w, h, kind), n);
        assert_eq!(crops.shape, vec![n, 3, CROP_SIZE, CROP_SIZE]);
        let (mut s, mut s2, mut sw) = (0.0f64, 0.0f64, 0.0f64);
        for (i, &v) in crops.data.iter().enumerate() {
            let v = f64::from(v);
            s += v;
            s2 += v * v;
            sw += v * (i as f64).sin();
        }
        let label = format!("{w}x{h}");
        // Σ is a sum of ±1 values that nearly cancel: compare against the scale of Σ².
        assert!(
            (s - sum).abs() <= 1e-6 * sumsq,
            "{label}: sum {s:.12e} vs {sum:.12e}"
        );
        assert_rel(&format!("{label} sum of squares"), s2, sumsq, 1e-6);
        assert!(
            (sw - weighted).abs() <= 1e-6 * sumsq.sqrt() * 10.0,
            "{label}: weighted {sw:.12e} vs {weighted:.12e}"
        );
    }
}

#[test]
fn scores_match_pyiqa_config_a_shifted_windows() {
    let m = model(config_a());
    for (w, h, kind, want) in [
        (250, 236, 0, 1.476883308478e-01),
        (150, 100, 1, 1.524951851445e-01),
    ] {
        let got = m.score_image(&image(w, h, kind)).unwrap();
        assert_rel(&format!("config a {w}x{h}"), got, want, TOLERANCE);
    }
}

#[test]
fn scores_match_pyiqa_config_b_whole_grid_window() {
    let m = model(config_b());
    for (w, h, kind, want) in [
        (230, 300, 2, 4.740782271971e-01),
        (260, 213, 0, 4.728558399350e-01),
        (7, 5, 1, 4.705752848073e-01),
    ] {
        let got = m.score(&image(w, h, kind)).unwrap();
        assert_rel(&format!("config b {w}x{h}"), got, want, TOLERANCE);
    }
    assert_eq!(m.metric(), Metric::Maniqa);
}

/// A 1×1 image is enlarged to 225×225 (as pyiqa does): a constant image, a finite score.
#[test]
fn one_pixel_image_is_enlarged() {
    let img = MetricImage::from_hwc(1, 1, vec![0.25, 0.5, 1.0]).unwrap();
    let crops = uniform_crops(&img, 2);
    assert_eq!(crops.shape, vec![2, 3, CROP_SIZE, CROP_SIZE]);
    let plane = CROP_SIZE * CROP_SIZE;
    for (i, v) in crops.data.iter().enumerate() {
        let want = [-0.5f32, 0.0, 1.0][(i / plane) % 3];
        assert_eq!(*v, want);
    }
    let score = model(config_b()).score_image(&img).unwrap();
    assert!(score.is_finite() && score >= 0.0, "{score}");
}

fn read_fixture_names() -> Vec<(String, Vec<usize>)> {
    let text = std::fs::read_to_string(fixture("maniqa-default-state-dict.txt")).unwrap();
    text.lines()
        .map(|line| {
            let (name, dims) = line.split_once(' ').unwrap();
            let shape = dims
                .split(',')
                .filter(|d| !d.is_empty())
                .map(|d| d.parse().unwrap())
                .collect();
            (name.to_string(), shape)
        })
        .collect()
}

/// The default configuration lists exactly the keys and shapes of pyiqa's
/// `MANIQA(train_dataset='koniq', scale=0.8).state_dict()`, in order.
#[test]
fn default_tensor_names_match_pyiqa_state_dict() {
    let want = read_fixture_names();
    assert_eq!(want.len(), 316);
    let got = expected_tensors(&ManiqaConfig::default());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    // the same architecture for the three checkpoints
    assert_eq!(expected_tensors(&ManiqaConfig::pipal()), want);
    assert_eq!(expected_tensors(&ManiqaConfig::kadid()), want);
    // blocks 10–11, the ViT's norm and head, the Swin downsample and the buffers are not read
    let required = required_tensors(&ManiqaConfig::default());
    assert!(
        required
            .iter()
            .all(|(n, _)| !n.starts_with("vit.blocks.10.")
                && !n.starts_with("vit.head")
                && !n.contains("downsample")
                && !n.ends_with("attn_mask"))
    );
    assert!(
        required
            .iter()
            .any(|(n, _)| n == "vit.blocks.9.mlp.fc2.bias")
    );
    // 24 ViT entries of blocks 10–11, norm + head 4, downsample 4, index buffers 8, masks 4
    assert_eq!(required.len(), 316 - 24 - 4 - 4 - 8 - 4);
}

#[test]
fn configurations_of_the_three_checkpoints() {
    let d = ManiqaConfig::default();
    assert_eq!((d.scale, d.test_sample, d.window_size), (0.8, 20, 4));
    assert_eq!(ManiqaConfig::kadid(), d);
    assert_eq!(ManiqaConfig::pipal().scale, 0.13);
    assert_eq!(
        ManiqaConfig::for_file(Path::new("/w/MANIQA_PIPAL-ae6d356b.pth")).scale,
        0.13
    );
    assert_eq!(
        ManiqaConfig::for_file(Path::new("ckpt_koniq10k.pt")),
        ManiqaConfig::koniq()
    );
    assert_eq!(d.grid(), 28);
}

/// Names with a `module.` prefix (DataParallel) or under `params` score the same, from a map
/// and from files; extra tensors (all of `state_dict`, blocks 10–11 included) are ignored.
#[test]
fn load_prefixed_names() {
    let config = config_b();
    let weights = formula_weights(&config);
    let dir = tempfile::tempdir().unwrap();
    let img = image(230, 300, 2);
    let want = 4.740782271971e-01;
    for prefix in ["", "module.", "params.", "params.module."] {
        let renamed: BTreeMap<String, HostTensor> = weights
            .iter()
            .map(|(n, t)| (format!("{prefix}{n}"), t.clone()))
            .collect();
        let m = Maniqa::<B>::from_tensors(config.clone(), &renamed, &Default::default()).unwrap();
        let got = m.score_image(&img).unwrap();
        assert_rel(&format!("prefix `{prefix}`"), got, want, TOLERANCE);
        if prefix == "module." || prefix == "params." {
            let path = dir.path().join(format!("{prefix}safetensors"));
            write_safetensors(&path, &renamed).unwrap();
            let m = Maniqa::<B>::load(&path, config.clone(), &Default::default()).unwrap();
            let got = m.score_image(&img).unwrap();
            assert_rel(&format!("file, prefix `{prefix}`"), got, want, TOLERANCE);
        }
    }
}

/// A checkpoint as pyiqa's `load_pretrained_network(..., weight_keys='params')` reads it: a
/// `torch.save` zip of `{"params": {"module.<name>": tensor}}` with float16 weights and the
/// integer `relative_position_index` and float `attn_mask` buffers, for a tiny configuration
/// (8×8 tokens, window 4 shifted by 2). pyiqa in float64 on the same float16-rounded weights
/// gives 5.528959418493e-02 on the 240×180 image of kind 1 (enlarged to 300×225).
#[test]
fn load_torch_checkpoint_fixture() {
    let config = ManiqaConfig {
        embed_dim: 8,
        patch_size: 28,
        vit_depth: 10,
        vit_heads: 2,
        vit_mlp_hidden: 16,
        vit_classes: 2,
        depths: vec![2],
        num_heads: vec![2],
        window_size: 4,
        dim_mlp: 8,
        num_tab: 1,
        scale: 0.5,
        test_sample: 2,
        crop_batch: 2,
    };
    let path = fixture("maniqa-tiny-checkpoint.pth");
    let m = Maniqa::<B>::load(&path, config, &Default::default()).unwrap();
    let got = m.score_image(&image(240, 180, 1)).unwrap();
    assert_rel("tiny checkpoint", got, 5.528959418493e-02, TOLERANCE);
}

fn message(err: IqaError) -> String {
    err.to_string()
}

#[test]
fn missing_tensor_names_file_and_tensor() {
    let config = config_b();
    let mut weights = formula_weights(&config);
    weights.remove("swintransformer2.layers.1.blocks.1.attn.qkv.weight");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("partial.safetensors");
    write_safetensors(&path, &weights).unwrap();
    let err = Maniqa::<B>::load(&path, config.clone(), &Default::default()).unwrap_err();
    assert!(matches!(err, IqaError::WeightFile { .. }), "{err:?}");
    let msg = message(err);
    assert!(
        msg.contains("partial.safetensors")
            && msg.contains("swintransformer2.layers.1.blocks.1.attn.qkv.weight")
            && msg.contains("not found"),
        "{msg}"
    );
    let err = Maniqa::<B>::from_tensors(config, &weights, &Default::default()).unwrap_err();
    assert!(message(err).contains("attn.qkv.weight"));
}

#[test]
fn wrong_shape_names_tensor_and_shapes() {
    let config = config_b();
    let mut weights = formula_weights(&config);
    weights.insert(
        "tablock1.0.c_q.weight".into(),
        HostTensor {
            shape: vec![48, 49],
            data: vec![0.0; 48 * 49],
        },
    );
    let err = Maniqa::<B>::from_tensors(config, &weights, &Default::default()).unwrap_err();
    let msg = message(err);
    assert!(
        msg.contains("tablock1.0.c_q.weight")
            && msg.contains("[48, 49]")
            && msg.contains("[49, 49]"),
        "{msg}"
    );
}

#[test]
fn non_finite_weight_is_an_error() {
    let config = config_b();
    let mut weights = formula_weights(&config);
    weights.get_mut("fc_score.3.bias").unwrap().data[0] = f32::NAN;
    let msg =
        message(Maniqa::<B>::from_tensors(config, &weights, &Default::default()).unwrap_err());
    assert!(
        msg.contains("fc_score.3.bias") && msg.contains("non-finite"),
        "{msg}"
    );
}

#[test]
fn truncated_and_missing_files_name_the_path() {
    let config = config_b();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("maniqa.safetensors");
    write_safetensors(&path, &formula_weights(&config)).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("truncated.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = Maniqa::<B>::load(&cut, config.clone(), &Default::default()).unwrap_err();
    assert!(matches!(err, IqaError::WeightFile { .. }), "{err:?}");
    assert!(message(err).contains("truncated.pth"));
    let absent = dir.path().join("absent.pt");
    let err = Maniqa::<B>::load(&absent, config, &Default::default()).unwrap_err();
    assert!(matches!(err, IqaError::Read { .. }), "{err:?}");
    assert!(message(err).contains("absent.pt"));
}

#[test]
fn bad_crop_shape_and_bad_config_are_errors() {
    let m = model(config_b());
    let crops = burn::tensor::Tensor::<B, 4>::zeros([1, 3, 200, 224], &Default::default());
    let msg = message(m.patch_scores(crops).unwrap_err());
    assert!(
        msg.contains("[1, 3, 200, 224]") && msg.contains("224"),
        "{msg}"
    );
    let none = burn::tensor::Tensor::<B, 4>::zeros([0, 3, 224, 224], &Default::default());
    assert!(m.score_crops(none).is_err());

    let weights = formula_weights(&config_a());
    for (config, field) in [
        (
            ManiqaConfig {
                window_size: 4,
                ..config_a()
            },
            "window_size 4",
        ),
        (
            ManiqaConfig {
                patch_size: 15,
                ..config_a()
            },
            "patch_size 15",
        ),
        (
            ManiqaConfig {
                vit_depth: 9,
                ..config_a()
            },
            "vit_depth 9",
        ),
        (
            ManiqaConfig {
                num_heads: vec![2],
                ..config_a()
            },
            "num_heads",
        ),
        (
            ManiqaConfig {
                test_sample: 0,
                ..config_a()
            },
            "test_sample 0",
        ),
    ] {
        let err = Maniqa::<B>::from_tensors(config, &weights, &Default::default()).unwrap_err();
        assert!(matches!(err, IqaError::InvalidArgument(_)), "{err:?}");
        assert!(message(err).contains(field));
    }
}

/// The default configuration (ViT-B/8, 20 crops, `scale` 0.8) with the formula weights on a
/// 256×240 image: pyiqa in float64 gives 8.633822838859e-02.
///
/// `cargo test --release -p framer-iqa --test maniqa -- --ignored`
#[test]
#[ignore = "full-size network: run in release mode"]
fn full_size_default_matches_pyiqa() {
    let config = ManiqaConfig::default();
    let weights = formula_weights(&config);
    let start = std::time::Instant::now();
    let m = Maniqa::<B>::from_tensors(config, &weights, &Default::default()).unwrap();
    drop(weights);
    let built = start.elapsed();
    let got = m.score_image(&image(256, 240, 0)).unwrap();
    eprintln!(
        "full-size MANIQA: {got:.12e} (pyiqa 8.633822838859e-02), build {built:.2?}, score {:.2?}",
        start.elapsed() - built
    );
    assert_rel("full size", got, 8.633822838859e-02, TOLERANCE);
}
