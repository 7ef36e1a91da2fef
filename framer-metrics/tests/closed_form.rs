//! Oracle tests that need no download: closed forms and hand-worked cases.

use framer_metrics::color::{Plane, ycbcr_y, yiq_y_rounded};
use framer_metrics::ssim::ssim_planes;
use framer_metrics::{
    MetricError, MetricImage, StructuralSimilarityOptions, niqe, psnr, psnr_y, ssim, ssim_with,
    ssim_y,
};

fn constant(w: usize, h: usize, rgb: [f32; 3]) -> MetricImage {
    MetricImage::from_hwc(w, h, (0..w * h).flat_map(|_| rgb).collect()).unwrap()
}

/// A deterministic textured image (`[H, W, 3]`) with values in `[0, 1]`.
fn textured(w: usize, h: usize, seed: u32) -> MetricImage {
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            for c in 0..3u32 {
                let v = ((x as u32 * 37 + y as u32 * 91 + c * 53 + seed * 17)
                    ^ (x as u32 * y as u32))
                    % 256;
                data.push(v as f32 / 255.0);
            }
        }
    }
    MetricImage::from_hwc(w, h, data).unwrap()
}

#[test]
fn identical_images_give_infinite_psnr_and_unit_ssim() {
    let img = textured(40, 30, 1);
    assert_eq!(psnr(&img, &img, 0).unwrap(), f64::INFINITY);
    assert_eq!(psnr_y(&img, &img, 4).unwrap(), f64::INFINITY);
    assert!((ssim(&img, &img, 0).unwrap() - 1.0).abs() < 1e-12);
    assert!((ssim_y(&img, &img, 4).unwrap() - 1.0).abs() < 1e-12);
}

#[test]
fn constant_offset_gives_closed_form_psnr() {
    // Every channel offset by d = 0.1 → MSE = d² → PSNR = −20 log10(0.1) = 20 dB.
    let a = textured(32, 24, 2);
    let d = 0.1_f32;
    let b = MetricImage::from_chw(32, 24, a.data().iter().map(|v| v + d).collect()).unwrap();
    let expected = -20.0 * f64::from(d).log10();
    assert!(
        (psnr(&b, &a, 0).unwrap() - expected).abs() < 1e-4,
        "{}",
        psnr(&b, &a, 0).unwrap()
    );
    // On Y: the offset becomes d · (65.481 + 128.553 + 24.966) = 219 d on a 255 scale.
    let expected_y = 20.0 * (255.0 / (219.0 * f64::from(d))).log10();
    assert!((psnr_y(&b, &a, 3).unwrap() - expected_y).abs() < 1e-4);
}

#[test]
fn crop_border_excludes_the_border_pixels() {
    // Differ only in the outer 2-pixel frame: cropping 2 makes them identical.
    let (w, h) = (20, 16);
    let a = constant(w, h, [0.5, 0.5, 0.5]);
    let mut data = a.data().to_vec();
    for y in 0..h {
        for x in 0..w {
            if x < 2 || y < 2 || x >= w - 2 || y >= h - 2 {
                data[(y * w + x) * 3] = 0.0;
            }
        }
    }
    let b = MetricImage::from_hwc(w, h, data).unwrap();
    assert!(psnr(&a, &b, 0).unwrap().is_finite());
    assert_eq!(psnr(&a, &b, 2).unwrap(), f64::INFINITY);
    assert_eq!(psnr_y(&a, &b, 2).unwrap(), f64::INFINITY);
    assert!(psnr(&a, &b, 1).unwrap().is_finite());
}

#[test]
fn ssim_of_two_constant_images_is_the_luminance_term() {
    // All variances are 0, so cs = C2 / C2 = 1 and SSIM = (2 μ1 μ2 + C1) / (μ1² + μ2² + C1).
    let a = constant(16, 16, [100.0 / 255.0; 3]);
    let b = constant(16, 16, [110.0 / 255.0; 3]);
    let c1 = (0.01_f64 * 255.0).powi(2);
    let expected = (2.0 * 100.0 * 110.0 + c1) / (100.0_f64.powi(2) + 110.0_f64.powi(2) + c1);
    // Gray pixels: the YIQ luma is the gray level itself.
    assert!((ssim(&a, &b, 0).unwrap() - expected).abs() < 1e-12);
    let pa = Plane {
        width: 11,
        height: 11,
        data: vec![100.0; 121],
    };
    let pb = Plane {
        width: 11,
        height: 11,
        data: vec![110.0; 121],
    };
    assert!((ssim_planes(&pa, &pb, false).unwrap() - expected).abs() < 1e-12);
}

/// Reference computed with numpy (`scripts/reference_values.py`'s `ssim_map_mean`, a port of
/// BasicSR `_ssim` with optional pyiqa clamping):
/// ```python
/// y, x = np.mgrid[0:13, 0:12]
/// a = ((x * 7 + y * 13) % 256).astype(float)
/// b = np.round(a * 0.8 + 20) + (x * y) % 5
/// ssim_map_mean(a, b, clamp_cs=False)        # 0.9761112842484695 (clamped: same)
/// ssim_map_mean(a, 255 - a, clamp_cs=False)  # -0.861120156431372 (clamped: 0.0)
/// ```
#[test]
fn small_ssim_case_matches_numpy() {
    let (w, h) = (12, 13);
    let a: Vec<f64> = (0..h)
        .flat_map(|y| (0..w).map(move |x| f64::from((x * 7 + y * 13) % 256)))
        .collect();
    let b: Vec<f64> = (0..h)
        .flat_map(|y| {
            (0..w).map(move |x| {
                (f64::from((x * 7 + y * 13) % 256) * 0.8 + 20.0).round() + f64::from((x * y) % 5)
            })
        })
        .collect();
    let neg: Vec<f64> = a.iter().map(|v| 255.0 - v).collect();
    let pa = Plane {
        width: w as usize,
        height: h as usize,
        data: a,
    };
    let pb = Plane {
        width: w as usize,
        height: h as usize,
        data: b,
    };
    let pn = Plane {
        width: w as usize,
        height: h as usize,
        data: neg,
    };
    assert!((ssim_planes(&pa, &pb, false).unwrap() - 0.976_111_284_248_469_5).abs() < 1e-12);
    assert!((ssim_planes(&pa, &pb, true).unwrap() - 0.976_111_284_248_469_5).abs() < 1e-12);
    assert!((ssim_planes(&pa, &pn, false).unwrap() + 0.861_120_156_431_372).abs() < 1e-12);
    assert_eq!(ssim_planes(&pa, &pn, true).unwrap(), 0.0);
}

#[test]
fn ssim_variants_differ_only_in_their_stated_conventions() {
    let a = textured(48, 40, 3);
    let b = textured(48, 40, 4);
    let basicsr = ssim_y(&a, &b, 0).unwrap();
    let pyiqa_ycbcr = ssim_with(&a, &b, &StructuralSimilarityOptions::PYIQA_YCBCR).unwrap();
    let pyiqa = ssim(&a, &b, 0).unwrap();
    for v in [basicsr, pyiqa_ycbcr, pyiqa] {
        assert!((-1.0..=1.0).contains(&v), "{v}");
    }
    // Rounding the luma changes the value a little, not a lot.
    assert!(
        (basicsr - pyiqa_ycbcr).abs() < 0.02,
        "{basicsr} vs {pyiqa_ycbcr}"
    );
    assert_ne!(basicsr, pyiqa_ycbcr);
}

#[test]
fn luma_conversions_follow_their_formulas() {
    // Pure red, green, blue, white and an exact tie of the YIQ rounding.
    let img = MetricImage::from_hwc(
        4,
        1,
        vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0],
    )
    .unwrap();
    let y = ycbcr_y(&img);
    let expected = [65.481 + 16.0, 128.553 + 16.0, 24.966 + 16.0, 235.0];
    for (v, e) in y.data.iter().zip(expected) {
        assert!((v - e).abs() < 1e-4, "{v} vs {e}");
    }
    let g = yiq_y_rounded(&img);
    // 0.299·255 = 76.245 → 76; 0.587·255 = 149.685 → 150; 0.114·255 = 29.07 → 29; white 255.
    assert_eq!(g.data, vec![76.0, 150.0, 29.0, 255.0]);
}

#[test]
fn mismatched_sizes_are_an_error_not_a_panic() {
    let a = textured(20, 20, 5);
    let b = textured(20, 21, 5);
    for r in [
        psnr(&a, &b, 0),
        psnr_y(&a, &b, 0),
        ssim(&a, &b, 0),
        ssim_y(&a, &b, 0),
    ] {
        match r {
            Err(e @ MetricError::SizeMismatch { .. }) => {
                assert!(e.to_string().contains("20x20"), "{e}")
            }
            other => panic!("expected SizeMismatch, got {other:?}"),
        }
    }
}

#[test]
fn bad_buffers_and_crops_are_errors() {
    let e = MetricImage::from_hwc(4, 4, vec![0.0; 47]).unwrap_err();
    assert!(e.to_string().contains("47") && e.to_string().contains("48"), "{e}");
    assert!(MetricImage::from_hwc(0, 4, vec![]).is_err());
    // the metrics reject NaN and infinities, naming the pixel
    let mut data = vec![0.0; 48];
    data[3 * 5 + 2] = f32::NAN;
    let nan = MetricImage::from_hwc(4, 4, data).unwrap();
    let zero = MetricImage::from_hwc(4, 4, vec![0.0; 48]).unwrap();
    match psnr(&zero, &nan, 0) {
        Err(MetricError::NonFinite {
            x: 1,
            y: 1,
            channel: 2,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let a = textured(20, 20, 6);
    assert!(matches!(
        psnr(&a, &a, 10),
        Err(MetricError::CropTooLarge {
            crop_border: 10,
            ..
        })
    ));
    assert!(matches!(
        ssim(&a, &a, 5),
        Err(MetricError::TooSmall { metric: "ssim", .. })
    ));
}

#[test]
fn chw_and_hwc_constructors_agree() {
    let img = textured(5, 3, 7);
    let hwc = img.to_hwc();
    let mut chw = vec![0.0; 45];
    for i in 0..15 {
        for c in 0..3 {
            chw[c * 15 + i] = hwc[i * 3 + c];
        }
    }
    assert_eq!(chw, img.data());
    assert_eq!(MetricImage::from_chw(5, 3, chw).unwrap(), img);
    assert_eq!(img.pixel(1, 0), [hwc[3], hwc[4], hwc[5]]);
}

#[test]
fn niqe_rejects_small_and_flat_images() {
    let small = textured(95, 200, 8);
    assert!(matches!(
        niqe(&small, 0),
        Err(MetricError::TooSmall { metric: "niqe", .. })
    ));
    let flat = constant(192, 96, [0.5; 3]);
    assert!(matches!(
        niqe(&flat, 0),
        Err(MetricError::NiqeDegenerate { valid: 0, total: 2 })
    ));
}

#[test]
fn niqe_prefers_a_natural_texture_to_noise_like_blocks() {
    // A smooth, edge-rich synthetic scene versus the same scene with strong pixel noise:
    // noise is far from the pristine statistics, so its NIQE must be larger.
    let (w, h) = (192, 192);
    let mut smooth = Vec::with_capacity(w * h * 3);
    let mut noisy = Vec::with_capacity(w * h * 3);
    let mut state: u32 = 1;
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let v = 0.5
                + 0.25 * (fx * 9.0).sin() * (fy * 7.0).cos()
                + if (x / 24 + y / 24) % 2 == 0 {
                    0.15
                } else {
                    -0.15
                };
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let n = (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            for _ in 0..3 {
                smooth.push(v.clamp(0.0, 1.0));
                noisy.push((v + 0.6 * n).clamp(0.0, 1.0));
            }
        }
    }
    let smooth = niqe(&MetricImage::from_hwc(w, h, smooth).unwrap(), 0).unwrap();
    let noisy = niqe(&MetricImage::from_hwc(w, h, noisy).unwrap(), 0).unwrap();
    assert!(smooth.is_finite() && noisy.is_finite());
    assert!(noisy > smooth, "noisy {noisy} vs smooth {smooth}");
}
