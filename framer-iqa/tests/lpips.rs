//! LPIPS from weight files, checked against the `lpips` PyPI package.
//!
//! Reference values come from `framer-iqa/scripts/lpips-oracle.py` (torch 2.15.0, lpips 0.1.4):
//!
//! ```text
//! pip install torch lpips
//! python3 framer-iqa/scripts/lpips-oracle.py --fixtures framer-iqa/tests/fixtures
//! ```
//!
//! The script builds `lpips.LPIPS(net=…, pretrained=False, pnet_rand=True)`, overwrites every
//! parameter with the deterministic formula of [`formula`] (repeated here), scores the
//! deterministic images of [`image`] with `normalize=True` and prints the total and the five
//! layer distances, computed in float64 (the reference used here) and in float32. The `.pth` fixtures are the AlexNet linear layers of the same formula,
//! saved by `torch.save` in the legacy and in the zip format, plus a transposed view and a
//! float64 tensor.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use framer_eval::compare::{MetricModels, PairMetric, evaluate_run_with, unavailable_note};
use framer_iqa::IqaError;
use framer_iqa::lpips::{Lpips, LpipsFiles, LpipsNet, WeightSpec};
use framer_iqa::weight_file::{
    HostTensor, read_weight_file, read_weight_file_where, write_safetensors,
};
use framer_metrics::{Metric, MetricImage, TableFormat};

type B = Flex;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The oracle's weights: `s = sin(2.3 i + k)` (i = flat index, k = index of the tensor in
/// backbone-then-linear order), then `0.05 (1.5 + s)` for a linear layer, `0.01 s` for a bias
/// and `2 s / √fan_in` for a convolution weight.
fn formula(spec: &WeightSpec, k: usize) -> HostTensor {
    let n: usize = spec.shape.iter().product();
    let data = (0..n)
        .map(|i| {
            let s = (2.3 * i as f64 + k as f64).sin();
            let v = if spec.name.starts_with("lin") {
                0.05 * (1.5 + s)
            } else if spec.name.ends_with(".bias") {
                0.01 * s
            } else {
                let fan_in: usize = spec.shape[1..].iter().product();
                2.0 * s / (fan_in as f64).sqrt()
            };
            v as f32
        })
        .collect();
    HostTensor {
        shape: spec.shape.clone(),
        data,
    }
}

/// All tensors of `net` by the oracle's formula, split into (backbone, linear).
fn formula_weights(net: LpipsNet) -> (BTreeMap<String, HostTensor>, BTreeMap<String, HostTensor>) {
    let backbone_specs = net.backbone_weights();
    let nb = backbone_specs.len();
    let backbone = backbone_specs
        .iter()
        .enumerate()
        .map(|(k, s)| (s.name.clone(), formula(s, k)))
        .collect();
    let linear = net
        .linear_weights()
        .iter()
        .enumerate()
        .map(|(k, s)| (s.name.clone(), formula(s, nb + k)))
        .collect();
    (backbone, linear)
}

/// The oracle's images, `[H, W, 3]`: kind 0 `0.5 + 0.4 sin(0.21 x + 0.17 y + 1.3 c)`, kind 1
/// that plus `0.3 sin(0.9 x − 0.7 y + 0.5 c)` clipped to `[0, 1]`, kind 2 kind 0 shifted by
/// 1.5 px.
fn image(width: usize, height: usize, kind: u8) -> MetricImage {
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            for c in 0..3 {
                let (xf, yf, cf) = (x as f64, y as f64, c as f64);
                let shift = if kind == 2 { 1.5 } else { 0.0 };
                let mut v = 0.5 + 0.4 * (0.21 * (xf + shift) + 0.17 * yf + 1.3 * cf).sin();
                if kind == 1 {
                    v = (v + 0.3 * (0.9 * xf - 0.7 * yf + 0.5 * cf).sin()).clamp(0.0, 1.0);
                }
                data.push(v as f32);
            }
        }
    }
    MetricImage::from_hwc(width, height, data).unwrap()
}

/// Asserts that the total is within `TOLERANCE` relative of the reference, and each layer
/// within `TOLERANCE × total` of its reference. The deep layers are differences of nearly
/// equal unit vectors, so their f32 rounding error is large relative to their own size (the
/// `lpips` package in float32 is itself 1e-3 off its float64 value on AlexNet's layer 5).
fn assert_close(label: &str, got: [f64; 5], want_total: f64, want: [f64; 5]) {
    let total: f64 = got.iter().sum();
    assert!(
        (total - want_total).abs() <= TOLERANCE * want_total,
        "{label}: total {total:.9e} vs {want_total:.9e}"
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= TOLERANCE * want_total,
            "{label}: layer {i}: {g:.9e} vs {w:.9e} (all: {got:?})"
        );
    }
}

fn alex_files(dir: &Path) -> LpipsFiles {
    let (backbone, _) = formula_weights(LpipsNet::Alex);
    let path = dir.join("alexnet-formula.safetensors");
    write_safetensors(&path, &backbone).unwrap();
    LpipsFiles {
        net: LpipsNet::Alex,
        backbone: path,
        linear: fixture("lpips-alex-linear-legacy.pth"),
    }
}

/// Relative tolerance against the float64 reference (this crate computes in f32).
const TOLERANCE: f64 = 1e-4;

#[test]
fn alexnet_matches_the_lpips_package() {
    let tmp = tempfile::tempdir().unwrap();
    let lpips = Lpips::<B>::load(&alex_files(tmp.path()), &Default::default()).unwrap();
    let base = image(64, 48, 0);
    // alex 64x48 pair 0-1 and 0-2 (float64), from lpips-oracle.py
    let cases = [
        (
            1,
            2.195804600e-02,
            [
                1.717568936e-03,
                1.386363838e-02,
                6.295638734e-03,
                8.086378241e-05,
                3.361743392e-07,
            ],
        ),
        (
            2,
            6.263051493e-02,
            [
                7.514851626e-03,
                3.955054727e-02,
                1.452528198e-02,
                1.037301526e-03,
                2.532533716e-06,
            ],
        ),
    ];
    for (kind, total, layers) in cases {
        let other = image(64, 48, kind);
        let got = lpips.image_layer_distances(&base, &other, 0).unwrap();
        assert_close(&format!("alex pair 0-{kind}"), got, total, layers);
        let d = lpips.distance(&base, &other, 0).unwrap();
        assert!((d - got.iter().sum::<f64>()).abs() < 1e-12);
        // symmetric, and zero for identical images
        let back = lpips.distance(&other, &base, 0).unwrap();
        assert!((back - d).abs() <= 1e-6 * d, "{back} vs {d}");
    }
    assert_eq!(lpips.distance(&base, &base, 0).unwrap(), 0.0);
}

#[test]
fn vgg_matches_the_lpips_package() {
    let tmp = tempfile::tempdir().unwrap();
    let (backbone, linear) = formula_weights(LpipsNet::Vgg);
    let files = LpipsFiles {
        net: LpipsNet::Vgg,
        backbone: tmp.path().join("vgg16-formula.safetensors"),
        linear: tmp.path().join("vgg.safetensors"),
    };
    write_safetensors(&files.backbone, &backbone).unwrap();
    write_safetensors(&files.linear, &linear).unwrap();
    let lpips = Lpips::<B>::load(&files, &Default::default()).unwrap();
    let base = image(32, 24, 0);
    // vgg 32x24 pair 0-1 and 0-2 (float64), from lpips-oracle.py
    let cases = [
        (
            1,
            1.721643285e-01,
            [
                6.841360158e-02,
                9.161303557e-02,
                1.213295084e-02,
                4.740533933e-06,
                1.732321499e-11,
            ],
        ),
        (
            2,
            1.588104168e-01,
            [
                9.758865252e-02,
                5.826578935e-02,
                2.952629214e-03,
                3.345690691e-06,
                9.811926305e-12,
            ],
        ),
    ];
    for (kind, total, layers) in cases {
        let got = lpips
            .image_layer_distances(&base, &image(32, 24, kind), 0)
            .unwrap();
        assert_close(&format!("vgg pair 0-{kind}"), got, total, layers);
    }
}

#[test]
fn border_crop_equals_scoring_the_cropped_images() {
    let tmp = tempfile::tempdir().unwrap();
    let lpips = Lpips::<B>::load(&alex_files(tmp.path()), &Default::default()).unwrap();
    let (a, b) = (image(72, 56, 0), image(72, 56, 1));
    let crop = |img: &MetricImage| {
        let mut data = Vec::new();
        for y in 4..52 {
            for x in 4..68 {
                data.extend(img.pixel(x, y));
            }
        }
        MetricImage::from_hwc(64, 48, data).unwrap()
    };
    let cropped = lpips.distance(&crop(&a), &crop(&b), 0).unwrap();
    let with_border = lpips.distance(&a, &b, 4).unwrap();
    assert!(
        (cropped - with_border).abs() < 1e-9,
        "{cropped} vs {with_border}"
    );
    // and it differs from the uncropped score
    assert!((lpips.distance(&a, &b, 0).unwrap() - cropped).abs() > 1e-6);
}

#[test]
fn pth_reader_reads_legacy_and_zip_files_alike() {
    let (_, linear) = formula_weights(LpipsNet::Alex);
    for name in ["lpips-alex-linear-legacy.pth", "lpips-alex-linear-zip.pth"] {
        let tensors = read_weight_file(&fixture(name)).unwrap();
        assert_eq!(tensors.len(), 7, "{name}: {:?}", tensors.keys());
        for (key, want) in &linear {
            assert_eq!(&tensors[key], want, "{name}: {key}");
        }
        // a transposed view: strides (1, 3) over arange(6)
        assert_eq!(
            tensors["extra.transposed"],
            HostTensor {
                shape: vec![3, 2],
                data: vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
            },
            "{name}"
        );
        assert_eq!(tensors["extra.double"].data, vec![0.25, -1.5], "{name}");
        let only = read_weight_file_where(&fixture(name), &|n| n == "extra.double").unwrap();
        assert_eq!(only.keys().collect::<Vec<_>>(), ["extra.double"], "{name}");
    }
}

#[test]
fn safetensors_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = BTreeMap::new();
    t.insert(
        "a.weight".to_string(),
        HostTensor {
            shape: vec![2, 3],
            data: vec![1.0, -2.0, 3.5, 0.0, 1e-3, 7.0],
        },
    );
    let p = tmp.path().join("t.safetensors");
    write_safetensors(&p, &t).unwrap();
    assert_eq!(read_weight_file(&p).unwrap(), t);
    t.get_mut("a.weight").unwrap().shape = vec![4];
    let e = write_safetensors(&p, &t).unwrap_err();
    assert!(e.to_string().contains("a.weight"), "{e}");
}

/// A safetensors file whose header length has the low byte 0x80 (the first byte of a pickle)
/// is still read as safetensors.
#[test]
fn safetensors_whose_first_byte_looks_like_a_pickle() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("t.safetensors");
    let mut hit = false;
    for n in 1..200 {
        let t = BTreeMap::from([(
            format!("params.module.{}", "w".repeat(n)),
            HostTensor {
                shape: vec![2],
                data: vec![0.5, -1.5],
            },
        )]);
        write_safetensors(&p, &t).unwrap();
        if std::fs::read(&p).unwrap()[0] == 0x80 {
            assert_eq!(read_weight_file(&p).unwrap(), t);
            hit = true;
        }
    }
    assert!(
        hit,
        "no name length gave a header length with low byte 0x80"
    );
}

#[test]
fn bad_weight_files_give_errors_naming_the_file_and_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Default::default();
    let good = alex_files(tmp.path());

    // missing file
    let missing = LpipsFiles {
        backbone: tmp.path().join("nope.pth"),
        ..good.clone()
    };
    let e = Lpips::<B>::load(&missing, &device).unwrap_err();
    assert!(
        matches!(e, IqaError::Read { .. }) && e.to_string().contains("nope.pth"),
        "{e}"
    );

    // not a weight file
    let junk = tmp.path().join("junk.pth");
    std::fs::write(&junk, b"hello, not weights").unwrap();
    let e = read_weight_file(&junk).unwrap_err();
    assert!(
        matches!(e, IqaError::WeightFile { .. }) && e.to_string().contains("junk.pth"),
        "{e}"
    );
    // a truncated pickle
    let bytes = std::fs::read(fixture("lpips-alex-linear-legacy.pth")).unwrap();
    let cut = tmp.path().join("cut.pth");
    let cut_path = cut.clone();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_weight_file(&cut).unwrap_err();
    assert!(e.to_string().contains("cut.pth"), "{e}");
    // a truncated zip
    let bytes = std::fs::read(fixture("lpips-alex-linear-zip.pth")).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let e = read_weight_file(&cut).unwrap_err();
    assert!(e.to_string().contains("cut.pth"), "{e}");

    // every truncation is an error (burn-store's `PytorchReader` reads most cuts of a legacy
    // file without one: see the crate README), and a flipped byte in every position gives a
    // result or an error, never a panic
    for name in [
        "lpips-alex-linear-legacy.pth",
        "lpips-alex-linear-zip.pth",
        "lpips-v0.1-alex.pth",
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for cut in (0..bytes.len()).step_by(13) {
            std::fs::write(&cut_path, &bytes[..cut]).unwrap();
            assert!(read_weight_file(&cut_path).is_err(), "{name} cut at byte {cut} was read without an error");
            let mut flipped = bytes.clone();
            flipped[cut] ^= 0xa5;
            std::fs::write(&cut_path, &flipped).unwrap();
            let _ = read_weight_file(&cut_path);
        }
    }

    // the two files swapped: the backbone key is missing from the linear file
    let swapped = LpipsFiles {
        backbone: good.linear.clone(),
        linear: good.backbone.clone(),
        net: LpipsNet::Alex,
    };
    let msg = Lpips::<B>::load(&swapped, &device).unwrap_err().to_string();
    assert!(
        msg.contains("lpips-alex-linear-legacy.pth")
            && msg.contains("`features.0.weight` not found")
            && msg.contains("lin0.model.1.weight"),
        "{msg}"
    );

    // one tensor missing, one with the wrong shape
    let (mut backbone, _) = formula_weights(LpipsNet::Alex);
    backbone.remove("features.8.bias");
    let partial = tmp.path().join("alexnet-partial.safetensors");
    write_safetensors(&partial, &backbone).unwrap();
    let files = LpipsFiles {
        backbone: partial,
        ..good.clone()
    };
    let msg = Lpips::<B>::load(&files, &device).unwrap_err().to_string();
    assert!(
        msg.contains("alexnet-partial.safetensors") && msg.contains("`features.8.bias` not found"),
        "{msg}"
    );
    let (backbone, _) = formula_weights(LpipsNet::Alex);
    let vgg_backbone = tmp.path().join("vgg-as-alex.safetensors");
    let mut wrong = backbone.clone();
    wrong.insert(
        "features.3.weight".into(),
        HostTensor {
            shape: vec![128, 64, 3, 3],
            data: vec![0.0; 128 * 64 * 9],
        },
    );
    write_safetensors(&vgg_backbone, &wrong).unwrap();
    let files = LpipsFiles {
        backbone: vgg_backbone,
        ..good
    };
    let msg = Lpips::<B>::load(&files, &device).unwrap_err().to_string();
    assert!(
        msg.contains("vgg-as-alex.safetensors")
            && msg.contains(
                "`features.3.weight` has shape [128, 64, 3, 3], expected [192, 64, 5, 5]"
            ),
        "{msg}"
    );
}

#[test]
fn small_or_mismatched_images_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let lpips = Lpips::<B>::load(&alex_files(tmp.path()), &Default::default()).unwrap();
    assert_eq!(LpipsNet::Alex.min_side(), 31);
    assert_eq!(LpipsNet::Vgg.min_side(), 16);
    // 31 is accepted, 30 is not
    assert!(
        lpips
            .distance(&image(31, 31, 0), &image(31, 31, 1), 0)
            .is_ok()
    );
    let e = lpips
        .distance(&image(64, 30, 0), &image(64, 30, 1), 0)
        .unwrap_err();
    assert!(
        matches!(e, IqaError::InvalidShape(_)) && e.to_string().contains("31"),
        "{e}"
    );
    let e = lpips
        .distance(&image(40, 40, 0), &image(40, 32, 1), 0)
        .unwrap_err();
    assert!(matches!(e, IqaError::SizeMismatch { .. }), "{e}");
    let e = lpips
        .distance(&image(40, 40, 0), &image(40, 40, 1), 20)
        .unwrap_err();
    assert!(e.to_string().contains("border crop of 20"), "{e}");
}

#[test]
fn weight_folder_lookup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let e = LpipsFiles::find_in(dir, LpipsNet::Alex).unwrap_err();
    assert!(
        e.to_string().contains("no backbone file") && e.to_string().contains("alexnet"),
        "{e}"
    );
    std::fs::write(dir.join("alexnet-owt-7be5be79.pth"), b"").unwrap();
    std::fs::write(dir.join("vgg16-397923af.pth"), b"").unwrap();
    std::fs::write(dir.join("notes.txt"), b"").unwrap();
    let e = LpipsFiles::find_in(dir, LpipsNet::Alex).unwrap_err();
    assert!(e.to_string().contains("no linear-layer file") && e.to_string().contains("alex.pth"));
    std::fs::write(dir.join("alex.pth"), b"").unwrap();
    std::fs::write(dir.join("vgg.safetensors"), b"").unwrap();
    let f = LpipsFiles::find_in(dir, LpipsNet::Alex).unwrap();
    assert_eq!(f.backbone, dir.join("alexnet-owt-7be5be79.pth"));
    assert_eq!(f.linear, dir.join("alex.pth"));
    let f = LpipsFiles::find_in(dir, LpipsNet::Vgg).unwrap();
    assert_eq!(
        (f.backbone, f.linear),
        (dir.join("vgg16-397923af.pth"), dir.join("vgg.safetensors"))
    );
    std::fs::write(dir.join("alexnet-owt-4df8aa71.pth"), b"").unwrap();
    let e = LpipsFiles::find_in(dir, LpipsNet::Alex).unwrap_err();
    assert!(e.to_string().contains("several backbone files"), "{e}");
    assert_eq!(LpipsNet::parse("AlexNet").unwrap(), LpipsNet::Alex);
    assert_eq!(LpipsNet::parse("vgg16").unwrap(), LpipsNet::Vgg);
    assert!(LpipsNet::parse("squeeze").is_err());
}

#[test]
fn evaluation_reports_lpips_when_a_model_is_given() {
    let tmp = tempfile::tempdir().unwrap();
    let lpips = Lpips::<B>::load(&alex_files(tmp.path()), &Default::default()).unwrap();
    let (sr_dir, gt_dir) = (tmp.path().join("sr"), tmp.path().join("gt"));
    std::fs::create_dir_all(&sr_dir).unwrap();
    std::fs::create_dir_all(&gt_dir).unwrap();
    for (k, kind) in [(0, 1u8), (1, 2u8)] {
        let save = |img: &MetricImage, path: PathBuf| {
            let bytes: Vec<u8> = img
                .data()
                .iter()
                .map(|v| (v * 255.0).round() as u8)
                .collect();
            image::RgbImage::from_raw(img.width() as u32, img.height() as u32, bytes)
                .unwrap()
                .save(path)
                .unwrap();
        };
        save(&image(48, 40, 0), gt_dir.join(format!("{k:04}.png")));
        save(&image(48, 40, kind), sr_dir.join(format!("{k:04}.png")));
    }
    let metrics = [Metric::Lpips, Metric::PsnrY, Metric::Musiq, Metric::Maniqa];
    let pair: [&dyn PairMetric; 1] = [&lpips];
    let models = MetricModels {
        pair: &pair,
        image: &[],
    };
    let report = evaluate_run_with(&sr_dir, Some(&gt_dir), 2, &metrics, models).unwrap();
    assert_eq!(
        report.evaluation.metrics,
        vec![Metric::Lpips, Metric::PsnrY]
    );
    assert_eq!(report.skipped, vec![Metric::Musiq, Metric::Maniqa]);
    for img in &report.evaluation.images {
        let sr = MetricImage::load(&img.sr_path).unwrap();
        let gt = MetricImage::load(img.gt_path.as_ref().unwrap()).unwrap();
        let want = lpips.distance(&sr, &gt, 2).unwrap();
        assert_eq!(img.values[0], want);
        assert!(want > 1e-3 && img.values[1].is_finite());
    }
    let text = report.table(TableFormat::Terminal);
    assert!(
        text.contains("lpips") && text.contains("not computed: musiq, maniqa"),
        "{text}"
    );
    assert!(!text.contains("not computed: lpips"), "{text}");

    // LPIPS alone: the folder walk still pairs the files; without a model it is skipped
    let only = evaluate_run_with(&sr_dir, Some(&gt_dir), 0, &[Metric::Lpips], models).unwrap();
    assert_eq!(only.evaluation.metrics, vec![Metric::Lpips]);
    assert_eq!(only.evaluation.images[0].values.len(), 1);
    let e = evaluate_run_with(&sr_dir, None, 0, &[Metric::Lpips], models).unwrap_err();
    assert!(e.to_string().contains("lpips"), "{e}");
    let e = evaluate_run_with(
        &sr_dir,
        Some(&gt_dir),
        0,
        &[Metric::Lpips],
        MetricModels::default(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("none of the requested metrics"),
        "{e}"
    );
    let note = unavailable_note(&[Metric::Lpips, Metric::Musiq, Metric::Maniqa]).unwrap();
    assert!(
        note.contains("lpips (") && note.contains("; musiq, maniqa ("),
        "{note}"
    );
}

/// The `lpips` package's own AlexNet linear layers (a legacy-format file saved by PyTorch 0.4
/// from Python 2: the OrderedDict is pickled as a list of `[key, tensor]` lists, storages on
/// `cuda:0`). Reference sums from `torch.load(..., map_location='cpu')`.
#[test]
fn pth_reader_reads_the_lpips_package_weights() {
    let tensors = read_weight_file(&fixture("lpips-v0.1-alex.pth")).unwrap();
    let want = [
        (
            "lin0.model.1.weight",
            64,
            2.3495323137195783,
            0.14750124514102936,
            0.0,
        ),
        (
            "lin1.model.1.weight",
            192,
            16.1430274810632,
            0.0,
            0.6362459659576416,
        ),
        (
            "lin2.model.1.weight",
            384,
            39.26843924544403,
            0.27091822028160095,
            0.07086532562971115,
        ),
        (
            "lin3.model.1.weight",
            256,
            27.197178440931964,
            0.00014872811152599752,
            0.10178346931934357,
        ),
        (
            "lin4.model.1.weight",
            256,
            20.317177099761324,
            0.06713376939296722,
            0.08454063534736633,
        ),
    ];
    assert_eq!(tensors.len(), want.len());
    for (key, channels, sum, second, last) in want {
        let t = &tensors[key];
        assert_eq!(t.shape, vec![1, channels, 1, 1], "{key}");
        let s: f64 = t.data.iter().map(|&v| v as f64).sum();
        assert!(
            (s - sum).abs() < 1e-9 * sum.max(1.0),
            "{key}: sum {s} vs {sum}"
        );
        assert_eq!(t.data[1] as f64, second, "{key}");
        assert_eq!(*t.data.last().unwrap() as f64, last, "{key}");
    }
}

/// A full `lpips.LPIPS(net='alex').state_dict()` in one file serves as both backbone and linear
/// layers. The names are those torch prints for that state dict (plus the scaling-layer
/// buffers and the `lins.k` aliases, which are ignored).
#[test]
fn a_full_lpips_state_dict_serves_as_both_files() {
    const LPIPS_ALEX_STATE_DICT: [&str; 22] = [
        "scaling_layer.shift",
        "scaling_layer.scale",
        "net.slice1.0.weight",
        "net.slice1.0.bias",
        "net.slice2.3.weight",
        "net.slice2.3.bias",
        "net.slice3.6.weight",
        "net.slice3.6.bias",
        "net.slice4.8.weight",
        "net.slice4.8.bias",
        "net.slice5.10.weight",
        "net.slice5.10.bias",
        "lin0.model.1.weight",
        "lin1.model.1.weight",
        "lin2.model.1.weight",
        "lin3.model.1.weight",
        "lin4.model.1.weight",
        "lins.0.model.1.weight",
        "lins.1.model.1.weight",
        "lins.2.model.1.weight",
        "lins.3.model.1.weight",
        "lins.4.model.1.weight",
    ];
    let tmp = tempfile::tempdir().unwrap();
    let (backbone, linear) = formula_weights(LpipsNet::Alex);
    let mut full = BTreeMap::new();
    for spec in LpipsNet::Alex.backbone_weights() {
        assert!(LPIPS_ALEX_STATE_DICT.contains(&spec.lpips_name.as_str()));
        full.insert(spec.lpips_name.clone(), backbone[&spec.name].clone());
    }
    full.extend(linear.clone());
    for (k, spec) in LpipsNet::Alex.linear_weights().iter().enumerate() {
        full.insert(
            format!("lins.{k}.model.1.weight"),
            linear[&spec.name].clone(),
        );
    }
    for name in ["scaling_layer.shift", "scaling_layer.scale"] {
        let t = HostTensor {
            shape: vec![1, 3, 1, 1],
            data: vec![0.0; 3],
        };
        full.insert(name.to_string(), t);
    }
    let names: Vec<&str> = full.keys().map(String::as_str).collect();
    let mut want = LPIPS_ALEX_STATE_DICT.to_vec();
    want.sort();
    assert_eq!(names, want);
    let path = tmp.path().join("lpips-alex-full.safetensors");
    write_safetensors(&path, &full).unwrap();
    let files = LpipsFiles {
        net: LpipsNet::Alex,
        backbone: path.clone(),
        linear: path,
    };
    let from_full = Lpips::<B>::load(&files, &Default::default()).unwrap();
    let from_two = Lpips::<B>::load(&alex_files(tmp.path()), &Default::default()).unwrap();
    let (a, b) = (image(64, 48, 0), image(64, 48, 2));
    assert_eq!(
        from_full.distance(&a, &b, 0).unwrap(),
        from_two.distance(&a, &b, 0).unwrap()
    );
}
