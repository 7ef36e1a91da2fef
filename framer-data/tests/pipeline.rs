//! The degradation configuration and the second-order pipeline.

use framer_data::filter::usm_sharpen;
use framer_data::{DataError, DegradationConfig, Degrader, Image, KernelType, embedded, item_rng};

/// Real-ESRGAN's `params_realesrgan.yml` as used by FRAMER/DiT4SR, pasted into TOML
/// (YAML `key: value` → TOML `key = value`; integers where the YAML has integers).
const PASTED: &str = r#"
resize_prob = [0.2, 0.7, 0.1]  # up, down, keep
resize_range = [0.15, 1.5]
gaussian_noise_prob = 0.5
noise_range = [1, 30]
poisson_scale_range = [0.05, 3]
gray_noise_prob = 0.4
jpeg_range = [30, 95]

second_blur_prob = 0.8
resize_prob2 = [0.3, 0.4, 0.3]
resize_range2 = [0.3, 1.2]
gaussian_noise_prob2 = 0.5
noise_range2 = [1, 25]
poisson_scale_range2 = [0.05, 2.5]
gray_noise_prob2 = 0.4
jpeg_range2 = [30, 95]

blur_kernel_size = 21
kernel_list = ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']
kernel_prob = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
sinc_prob = 0.1
blur_sigma = [0.2, 3]
betag_range = [0.5, 4]
betap_range = [1, 2]

blur_kernel_size2 = 11
kernel_list2 = ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']
kernel_prob2 = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
sinc_prob2 = 0.1
blur_sigma2 = [0.2, 1.5]
betag_range2 = [0.5, 4]
betap_range2 = [1, 2]

final_sinc_prob = 0.8
scale = 4
gt_usm = true
"#;

#[test]
fn pasted_realesrgan_values_parse_to_the_defaults() {
    let cfg: DegradationConfig = toml::from_str(PASTED).unwrap();
    assert_eq!(cfg, DegradationConfig::default());
    cfg.validate().unwrap();
    // Missing keys take defaults; the struct round-trips through TOML.
    let partial: DegradationConfig =
        toml::from_str("scale = 2\nkernel_list = ['iso']\nkernel_prob = [1]").unwrap();
    assert_eq!(partial.scale, 2);
    assert_eq!(partial.kernel_list, vec![KernelType::Iso]);
    assert_eq!(partial.jpeg_range, [30.0, 95.0]);
    let text = toml::to_string(&partial).unwrap();
    assert_eq!(toml::from_str::<DegradationConfig>(&text).unwrap(), partial);
}

#[test]
fn unknown_keys_and_bad_values_are_rejected_by_name() {
    let e =
        toml::from_str::<DegradationConfig>("resize_prob = [0.2, 0.7, 0.1]\nnoise_rnage = [1, 30]")
            .unwrap_err();
    assert!(e.to_string().contains("noise_rnage"), "{e}");
    let e = toml::from_str::<DegradationConfig>("kernel_list = ['iso', 'gaussian']").unwrap_err();
    assert!(e.to_string().contains("gaussian"), "{e}");

    let check = |edit: &dyn Fn(&mut DegradationConfig), key: &str| {
        let mut cfg = DegradationConfig::default();
        edit(&mut cfg);
        match cfg.validate() {
            Err(DataError::Config { key: k, message }) => {
                assert_eq!(k, key, "{message}");
                let shown = DataError::Config { key: k, message }.to_string();
                assert!(shown.contains(key), "{shown}");
            }
            other => panic!("expected a config error for {key}, got {other:?}"),
        }
        assert!(Degrader::new(cfg).is_err());
    };
    check(&|c| c.resize_prob = [0.2, 0.7, 0.2], "resize_prob");
    check(&|c| c.resize_prob2 = [0.5, 0.6, -0.1], "resize_prob2");
    check(&|c| c.resize_range = [1.5, 0.15], "resize_range");
    check(&|c| c.resize_range2 = [1.1, 1.2], "resize_range2");
    check(&|c| c.noise_range = [30.0, 1.0], "noise_range");
    check(&|c| c.noise_range2 = [-1.0, 25.0], "noise_range2");
    check(
        &|c| c.poisson_scale_range = [3.0, 0.05],
        "poisson_scale_range",
    );
    check(&|c| c.jpeg_range = [30.0, 120.0], "jpeg_range");
    check(&|c| c.jpeg_range2 = [0.0, 95.0], "jpeg_range2");
    check(&|c| c.gaussian_noise_prob = 1.5, "gaussian_noise_prob");
    check(&|c| c.gray_noise_prob2 = -0.1, "gray_noise_prob2");
    check(&|c| c.second_blur_prob = f64::NAN, "second_blur_prob");
    check(&|c| c.final_sinc_prob = 2.0, "final_sinc_prob");
    check(&|c| c.kernel_prob = vec![0.5, 0.5], "kernel_prob");
    check(&|c| c.kernel_prob2[0] = 0.5, "kernel_prob2");
    check(&|c| c.kernel_list = vec![], "kernel_list");
    check(&|c| c.blur_kernel_size = 20, "blur_kernel_size");
    check(&|c| c.blur_kernel_size2 = 5, "blur_kernel_size2");
    check(&|c| c.blur_sigma = [3.0, 0.2], "blur_sigma");
    check(&|c| c.blur_sigma2 = [0.0, 1.5], "blur_sigma2");
    check(&|c| c.betag_range = [1.5, 4.0], "betag_range");
    check(&|c| c.betap_range2 = [0.5, 0.9], "betap_range2");
    check(&|c| c.scale = 0, "scale");
}

fn hr_crop(size: usize) -> Image {
    let photos = embedded::train().unwrap();
    photos[3].image.crop(200, 150, size, size).unwrap()
}

#[test]
fn same_seed_same_pair_and_shapes() {
    let d = Degrader::new(DegradationConfig::default()).unwrap();
    let hr = hr_crop(96);
    let a = d.degrade(&hr, &mut item_rng(42, 0)).unwrap();
    let b = d.degrade(&hr, &mut item_rng(42, 0)).unwrap();
    assert_eq!(a, b, "same seed, same pair (bit-identical)");
    let c = d.degrade(&hr, &mut item_rng(43, 0)).unwrap();
    assert_ne!(a.lr, c.lr, "another seed gives another LR");
    assert_eq!(a.hr.shape(), [3, 96, 96]);
    assert_eq!(a.lr.shape(), [3, 24, 24]);
    // LR samples are 8-bit values in [0, 1].
    for &v in a.lr.data() {
        assert!((0.0..=1.0).contains(&v));
        assert!(
            (v * 255.0 - (v * 255.0).round()).abs() < 1e-4,
            "{v} is not k/255"
        );
    }
    // Non-multiple sizes are cropped to a multiple of the scale; other scales work.
    let odd = hr.crop(0, 0, 70, 50).unwrap();
    let p = d.degrade(&odd, &mut item_rng(1, 1)).unwrap();
    assert_eq!(
        (p.hr.width(), p.hr.height(), p.lr.width(), p.lr.height()),
        (68, 48, 17, 12)
    );
    let d2 = Degrader::new(DegradationConfig {
        scale: 2,
        ..DegradationConfig::default()
    })
    .unwrap();
    let p = d2.degrade(&odd, &mut item_rng(1, 1)).unwrap();
    assert_eq!((p.lr.width(), p.lr.height()), (35, 25));
    // Too small for the scale: an error, not a panic.
    let tiny = hr.crop(0, 0, 3, 3).unwrap();
    assert!(matches!(
        d.degrade(&tiny, &mut item_rng(0, 0)),
        Err(DataError::InvalidImage(_))
    ));
}

#[test]
fn ground_truth_is_usm_sharpened_only_when_asked() {
    let hr = hr_crop(64);
    let usm = Degrader::new(DegradationConfig::default()).unwrap();
    let plain = Degrader::new(DegradationConfig {
        gt_usm: false,
        ..DegradationConfig::default()
    })
    .unwrap();
    let a = usm.degrade(&hr, &mut item_rng(7, 7)).unwrap();
    let b = plain.degrade(&hr, &mut item_rng(7, 7)).unwrap();
    assert_eq!(a.hr, usm_sharpen(&hr));
    assert_eq!(b.hr, hr);
    assert_ne!(a.hr, b.hr);
    // The LR does not depend on the flag (Real-ESRGAN degrades the sharpened image either way).
    assert_eq!(a.lr, b.lr);
}

#[test]
fn degradation_keeps_the_mean_colour() {
    // Averaged over seeds the LR keeps the mean colour of the HR: no channel bias from the noise,
    // clipping or JPEG steps.
    let d = Degrader::new(DegradationConfig::default()).unwrap();
    let hr = hr_crop(128);
    let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
    let mut diffs = Vec::new();
    for seed in 0..12 {
        let p = d.degrade(&hr, &mut item_rng(seed, 0)).unwrap();
        for c in 0..3 {
            diffs.push(mean(p.lr.channel(c)) - mean(p.hr.channel(c)));
        }
    }
    let avg = diffs.iter().sum::<f64>() / diffs.len() as f64;
    assert!(avg.abs() < 0.03, "mean colour shift {avg}");
}

#[test]
fn snapshot_of_a_degraded_image() {
    // A fixed 64×64 crop of an embedded photo, degraded with seed 2024: the LR statistics are
    // pinned (rounded to 3 decimals, robust to last-bit differences of JPEG codecs).
    let d = Degrader::new(DegradationConfig::default()).unwrap();
    let hr = embedded::train().unwrap()[1]
        .image
        .crop(200, 180, 64, 64)
        .unwrap();
    let mut lines = Vec::new();
    for seed in [2024u64, 2025] {
        let p = d.degrade(&hr, &mut item_rng(seed, 0)).unwrap();
        lines.push(format!("seed {seed}: lr {:?}", p.lr.shape()));
        for c in 0..3 {
            let v = p.lr.channel(c);
            let n = v.len() as f64;
            let m = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
            let sd = (v.iter().map(|&x| (f64::from(x) - m).powi(2)).sum::<f64>() / n).sqrt();
            let min = v.iter().cloned().fold(f32::INFINITY, f32::min);
            let max = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            lines.push(format!(
                "  c{c}: mean {m:.3} sd {sd:.3} min {min:.3} max {max:.3}"
            ));
        }
    }
    insta::assert_snapshot!(lines.join("\n"));
}
