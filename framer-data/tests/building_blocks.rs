//! Kernels, filtering, resizing, noise and JPEG checked against closed forms and statistics.

use std::f64::consts::PI;

use framer_data::filter::{filter_separable, filter2d, usm_sharpen};
use framer_data::image::Image;
use framer_data::jpeg::jpeg_roundtrip;
use framer_data::kernels::{
    self, BlurSampling, Kernel, KernelType, bessel_j1, circular_lowpass, gaussian, gaussian_1d,
    generalized_gaussian, plateau, random_blur_kernel,
};
use framer_data::noise::{add_gaussian_noise, add_poisson_noise};
use framer_data::resize::{
    Interpolation, downscale_half, resize, resize_by_factor, upsample_bicubic,
};
use framer_data::{embedded, item_rng};

/// Normalised 1-D Gaussian on the integer grid centred at zero, in f64 (oracle).
fn gauss_1d(size: usize, sigma: f64) -> Vec<f64> {
    let half = (size / 2) as f64;
    let v: Vec<f64> = (0..size)
        .map(|i| (-(i as f64 - half).powi(2) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = v.iter().sum();
    v.into_iter().map(|x| x / s).collect()
}

fn max_abs_diff_kernel(k: &Kernel, f: impl Fn(usize, usize) -> f64) -> f64 {
    let mut m = 0.0f64;
    for y in 0..k.size() {
        for x in 0..k.size() {
            m = m.max((f64::from(k.at(y, x)) - f(y, x)).abs());
        }
    }
    m
}

#[test]
fn every_kernel_sums_to_one() {
    for size in [7, 11, 15, 21] {
        let ks = [
            gaussian(size, 1.3, 1.3, 0.0),
            gaussian(size, 0.4, 2.7, 0.9),
            generalized_gaussian(size, 1.1, 2.0, -1.2, 0.6),
            generalized_gaussian(size, 2.5, 2.5, 0.0, 3.5),
            plateau(size, 1.5, 0.7, 2.0, 1.4),
            plateau(size, 3.0, 3.0, 0.0, 1.0),
            circular_lowpass(size, PI / 4.0),
            circular_lowpass(size, PI),
        ];
        for k in &ks {
            assert_eq!(k.size(), size);
            assert!((k.sum() - 1.0).abs() < 1e-5, "sum {}", k.sum());
        }
    }
    // Randomly drawn kernels from every family and the sinc branch.
    let list = [
        KernelType::Iso,
        KernelType::Aniso,
        KernelType::GeneralizedIso,
        KernelType::GeneralizedAniso,
        KernelType::PlateauIso,
        KernelType::PlateauAniso,
    ];
    let probs = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03];
    let p = BlurSampling {
        max_size: 21,
        kernel_list: &list,
        kernel_prob: &probs,
        sinc_prob: 0.3,
        blur_sigma: [0.2, 3.0],
        betag_range: [0.5, 4.0],
        betap_range: [1.0, 2.0],
    };
    let mut rng = item_rng(3, 0);
    let mut sizes = std::collections::BTreeSet::new();
    for _ in 0..300 {
        let k = random_blur_kernel(&mut rng, &p);
        assert!(k.size() % 2 == 1 && (7..=21).contains(&k.size()));
        sizes.insert(k.size());
        assert!((k.sum() - 1.0).abs() < 1e-5);
        assert!(k.weights().iter().all(|w| w.is_finite()));
    }
    assert_eq!(sizes.len(), 8, "all odd sizes 7..=21 are drawn: {sizes:?}");
    let small = BlurSampling { max_size: 11, ..p };
    for _ in 0..50 {
        assert!(random_blur_kernel(&mut rng, &small).size() <= 11);
    }
}

#[test]
fn kernels_match_basicsr_reference_values() {
    // Golden values from BasicSR 1.4.2 `basicsr/data/degradations.py` (numpy, float64), printed as
    // `k[row, col]` for the calls named on each line.
    let idx = [(10, 10), (10, 13), (7, 12), (3, 15), (0, 0), (14, 6)];
    let cases: [(&str, Kernel, [f64; 6]); 4] = [
        (
            "bivariate_Gaussian(21, 1.2, 2.7, 0.6, isotropic=False)",
            gaussian(21, 1.2, 2.7, 0.6),
            [
                0.04912216968542267,
                0.004800995539231549,
                0.020128902695441712,
                0.00030434636866104255,
                2.2611608547084897e-31,
                0.004041202591013756,
            ],
        ),
        (
            "bivariate_generalized_Gaussian(21, 2.2, 1.1, -1.1, 0.7, isotropic=False)",
            generalized_gaussian(21, 2.2, 1.1, -1.1, 0.7),
            [
                0.03873681574234974,
                0.006329971063656933,
                0.01387117316302189,
                0.0011366415502094345,
                1.6914316002928438e-09,
                0.004130236096297574,
            ],
        ),
        (
            "bivariate_plateau(21, 1.6, 0.9, 2.4, 1.5, isotropic=False)",
            plateau(21, 1.6, 0.9, 2.4, 1.5),
            [
                0.10070988976410913,
                0.005179169439202717,
                0.006886923730136542,
                0.0005639435347617458,
                2.600141994032785e-05,
                0.002214907677135381,
            ],
        ),
        (
            "circular_lowpass_kernel(1.3, 21)",
            circular_lowpass(21, 1.3),
            [
                0.14094698306220116,
                -0.001969212918449243,
                -0.01662126088985386,
                -0.005088695787722628,
                -0.002690449587019428,
                0.0037304915454694997,
            ],
        ),
    ];
    for (call, k, want) in &cases {
        for (&(y, x), &w) in idx.iter().zip(want) {
            let got = f64::from(k.at(y, x));
            assert!(
                (got - w).abs() <= 1e-6 * w.abs() + 1e-9,
                "{call}[{y}, {x}] = {got}, BasicSR gives {w}"
            );
        }
    }
}

#[test]
fn degenerate_kernel_arguments_do_not_panic() {
    // Even sizes are rounded up; zero σ or cutoff give finite kernels that still sum to one.
    let ks = [
        gaussian(8, 1.0, 1.0, 0.0),
        gaussian(0, 1.0, 1.0, 0.0),
        gaussian(7, 0.0, 0.0, 0.0),
        plateau(6, 0.0, 2.0, 0.3, 1.5),
        generalized_gaussian(7, -1.0, 1.0, 0.0, 2.0),
        circular_lowpass(10, 0.0),
    ];
    for k in &ks {
        assert_eq!(k.size() % 2, 1);
        assert!(k.weights().iter().all(|w| w.is_finite()));
        assert!((k.sum() - 1.0).abs() < 1e-5);
    }
    assert_eq!(ks[0].size(), 9);
    // σ → 0 is the identity.
    assert!((ks[2].at(3, 3) - 1.0).abs() < 1e-6);
    let img = test_image(12, 9);
    let out = filter2d(&img, &ks[2]);
    assert!(
        out.data()
            .iter()
            .zip(img.data())
            .all(|(a, b)| (a - b).abs() < 1e-6)
    );
}

#[test]
fn gaussian_kernels_match_the_separable_closed_form() {
    // Isotropic: outer product of two normalised 1-D Gaussians.
    let (size, s) = (15, 1.7);
    let g = gauss_1d(size, s);
    let k = gaussian(size, s, s, 0.0);
    assert!(max_abs_diff_kernel(&k, |y, x| g[y] * g[x]) < 1e-7);
    // Anisotropic at θ = 0: σx along columns, σy along rows.
    let (gx, gy) = (gauss_1d(size, 0.8), gauss_1d(size, 2.5));
    let k = gaussian(size, 0.8, 2.5, 0.0);
    assert!(max_abs_diff_kernel(&k, |y, x| gy[y] * gx[x]) < 1e-7);
    // θ = π/2 swaps the axes.
    let k = gaussian(size, 0.8, 2.5, PI / 2.0);
    assert!(max_abs_diff_kernel(&k, |y, x| gx[y] * gy[x]) < 1e-6);
    // θ = π/4 with σx ≠ σy: q = ((x+y)²/σx² + (x-y)²/σy²)/2, non-separable.
    let k = gaussian(9, 1.0, 2.0, PI / 4.0);
    let raw = |y: usize, x: usize| {
        let (xf, yf) = (x as f64 - 4.0, y as f64 - 4.0);
        let q = ((xf + yf).powi(2) / 1.0 + (xf - yf).powi(2) / 4.0) / 2.0;
        (-0.5 * q).exp()
    };
    let total: f64 = (0..9)
        .flat_map(|y| (0..9).map(move |x| (y, x)))
        .map(|(y, x)| raw(y, x))
        .sum();
    assert!(max_abs_diff_kernel(&k, |y, x| raw(y, x) / total) < 1e-7);
    // OpenCV's getGaussianKernel(51, 0) uses σ = 0.3·(25 - 1) + 0.8 = 8.
    let taps = gaussian_1d(51, 0.0);
    let g8 = gauss_1d(51, 8.0);
    assert!(
        taps.iter()
            .zip(&g8)
            .all(|(a, b)| (f64::from(*a) - b).abs() < 1e-7)
    );
}

#[test]
fn generalized_and_plateau_kernels_match_their_closed_forms() {
    // β = 1 generalized Gaussian is the Gaussian.
    let a = generalized_gaussian(13, 1.2, 2.2, 0.7, 1.0);
    let b = gaussian(13, 1.2, 2.2, 0.7);
    assert!(
        a.weights()
            .iter()
            .zip(b.weights())
            .all(|(x, y)| (x - y).abs() < 1e-7)
    );
    // Isotropic plateau: k(x, y) / k(0, 0) = 1 / (1 + ((x² + y²)/σ²)^β).
    let (s, beta) = (1.5, 1.7);
    let k = plateau(11, s, s, 0.0, beta);
    let c = f64::from(k.at(5, 5));
    let m = max_abs_diff_kernel(&k, |y, x| {
        let r2 = ((x as f64 - 5.0).powi(2) + (y as f64 - 5.0).powi(2)) / (s * s);
        c / (1.0 + r2.powf(beta))
    });
    assert!(m < 1e-7, "{m}");
    // Isotropic generalized Gaussian: k / k(0) = exp(-(r²/σ²)^β / 2).
    let (s, beta) = (2.0, 0.6);
    let k = generalized_gaussian(11, s, s, 0.0, beta);
    let c = f64::from(k.at(5, 5));
    let m = max_abs_diff_kernel(&k, |y, x| {
        let r2 = ((x as f64 - 5.0).powi(2) + (y as f64 - 5.0).powi(2)) / (s * s);
        c * (-0.5 * r2.powf(beta)).exp()
    });
    assert!(m < 1e-7, "{m}");
}

/// J₁(x) = (1/π) ∫₀^π cos(τ - x sin τ) dτ by Simpson's rule (independent oracle).
fn j1_integral(x: f64) -> f64 {
    let n = 4000;
    let h = PI / n as f64;
    let f = |t: f64| (t - x * t.sin()).cos();
    let mut s = f(0.0) + f(PI);
    for i in 1..n {
        s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    s * h / 3.0 / PI
}

#[test]
fn bessel_j1_matches_its_integral_representation() {
    for i in 0..=600 {
        let x = -5.0 + i as f64 * 0.085; // -5 .. 46, across the 8.0 branch change
        let (a, b) = (bessel_j1(x), j1_integral(x));
        assert!((a - b).abs() < 2e-8, "J1({x}) = {a}, integral gives {b}");
    }
    // First zero of J1 and the small-argument limit J1(x) ≈ x/2.
    assert!(bessel_j1(3.831_705_970_207_512).abs() < 1e-8);
    assert!((bessel_j1(1e-4) - 5e-5).abs() < 1e-12);
}

/// Frequency response of a kernel at (ωx, ωy): Σ k(x, y) cos(ωx x + ωy y) (kernels are symmetric).
fn response(k: &Kernel, wx: f64, wy: f64) -> f64 {
    let half = (k.size() / 2) as f64;
    let mut s = 0.0;
    for y in 0..k.size() {
        for x in 0..k.size() {
            s += f64::from(k.at(y, x)) * (wx * (x as f64 - half) + wy * (y as f64 - half)).cos();
        }
    }
    s
}

#[test]
fn sinc_kernel_cuts_off_at_its_cutoff() {
    // A large kernel approximates the ideal disc low-pass: ≈1 inside the disc, ≈0 outside, in
    // every direction (it is circular).
    let cutoff = PI / 2.0;
    let k = circular_lowpass(101, cutoff);
    // Unnormalised closed form: centre ω²/(4π) relative to a ring sample ω J1(ω r)/(2π r).
    let ratio = f64::from(k.at(50, 53)) / f64::from(k.at(50, 50));
    let expect =
        (cutoff * bessel_j1(cutoff * 3.0) / (2.0 * PI * 3.0)) / (cutoff * cutoff / (4.0 * PI));
    assert!((ratio - expect).abs() < 1e-5, "{ratio} vs {expect}");
    for angle in [0.0, 0.3, PI / 4.0, 1.2] {
        let (c, s) = (f64::cos(angle), f64::sin(angle));
        for w in [0.0, 0.2 * PI, 0.35 * PI] {
            let r = response(&k, w * c, w * s);
            assert!((r - 1.0).abs() < 0.06, "inside: H({w:.2}) = {r}");
        }
        for w in [0.65 * PI, 0.8 * PI] {
            let r = response(&k, w * c, w * s);
            assert!(r.abs() < 0.06, "outside: H({w:.2}) = {r}");
        }
        let edge = response(&k, cutoff * c, cutoff * s);
        assert!((edge - 0.5).abs() < 0.1, "half gain at the cutoff: {edge}");
    }
    // The 21-tap kernels of the pipeline still separate pass and stop bands.
    let k = circular_lowpass(21, PI / 3.0);
    assert!(response(&k, 0.1 * PI, 0.0) > 0.9);
    assert!(response(&k, 0.7 * PI, 0.0).abs() < 0.1);
    assert!(response(&k, 0.0, 0.7 * PI).abs() < 0.1);
    // Cutoff π (Nyquist) keeps mid frequencies.
    let k = circular_lowpass(21, PI);
    assert!(response(&k, 0.5 * PI, 0.0) > 0.9);
}

fn test_image(w: usize, h: usize) -> Image {
    Image::from_fn(w, h, |c, y, x| {
        let v = 0.5 + 0.3 * ((x as f32 * 0.37 + c as f32).sin() * (y as f32 * 0.23).cos());
        v.clamp(0.0, 1.0)
    })
    .unwrap()
}

#[test]
fn filtering_with_reflect_padding() {
    let img = test_image(23, 17);
    // Identity and constant preservation.
    assert_eq!(filter2d(&img, &Kernel::identity()), img);
    let flat = Image::from_fn(9, 6, |_, _, _| 0.25).unwrap();
    let blurred = filter2d(&flat, &gaussian(21, 2.0, 3.0, 0.4));
    assert!(blurred.data().iter().all(|v| (v - 0.25).abs() < 1e-6));
    // A separable Gaussian applied in 2-D equals the two 1-D passes.
    let taps = gaussian_1d(9, 1.5);
    let k2d = gaussian(9, 1.5, 1.5, 0.0);
    let a = filter2d(&img, &k2d);
    let b = filter_separable(&img, &taps);
    assert!(
        a.data()
            .iter()
            .zip(b.data())
            .all(|(x, y)| (x - y).abs() < 1e-5)
    );
    // Axis-aligned Gaussians take the separable path; it agrees with the direct 2-D path
    // (a β = 1 generalized Gaussian has the same weights but no factorisation).
    for (sx, sy) in [(1.3, 1.3), (0.6, 2.4)] {
        let sep = gaussian(13, sx, sy, 0.0);
        let direct = generalized_gaussian(13, sx, sy, 0.0, 1.0);
        assert!(sep.factors().is_some() && direct.factors().is_none());
        let (a, b) = (filter2d(&img, &sep), filter2d(&img, &direct));
        assert!(
            a.data()
                .iter()
                .zip(b.data())
                .all(|(x, y)| (x - y).abs() < 1e-5)
        );
    }
    assert!(gaussian(13, 0.6, 2.4, 0.5).factors().is_none());
    // Reflect padding (no edge repeat): 3-tap box on [0, 1, 2, 3] gives [(1+0+1)/3, 1, 2, (2+3+2)/3].
    // (A single row reflects onto itself vertically and the vertical taps sum to one.)
    let row = Image::from_fn(4, 1, |_, _, x| x as f32).unwrap();
    let box3 = filter_separable(&row, &[1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]);
    assert!((box3.get(0, 0, 0) - 2.0 / 3.0).abs() < 1e-6);
    assert!((box3.get(0, 0, 1) - 1.0).abs() < 1e-6);
    assert!((box3.get(0, 0, 2) - 2.0).abs() < 1e-6);
    assert!((box3.get(0, 0, 3) - 7.0 / 3.0).abs() < 1e-6);
}

#[test]
fn usm_sharpening_raises_edge_contrast_and_keeps_flat_areas() {
    let flat = Image::from_fn(40, 30, |_, _, _| 0.4).unwrap();
    assert!(
        usm_sharpen(&flat)
            .data()
            .iter()
            .all(|v| (v - 0.4).abs() < 1e-6)
    );
    // A vertical step 0.3 → 0.7: sharpening undershoots on the dark side and overshoots on the
    // bright side, stays in [0, 1], and leaves far-away pixels nearly unchanged.
    let step = Image::from_fn(120, 8, |_, _, x| if x < 60 { 0.3 } else { 0.7 }).unwrap();
    let s = usm_sharpen(&step);
    assert!(s.data().iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(s.get(0, 4, 58) < 0.3 - 0.02, "{}", s.get(0, 4, 58));
    assert!(s.get(0, 4, 61) > 0.7 + 0.02, "{}", s.get(0, 4, 61));
    // Residual at the edge ≈ 0.2, weight 0.5 ⇒ at most +0.1 overshoot.
    assert!(s.get(0, 4, 61) < 0.7 + 0.1 + 1e-6);
}

#[test]
fn usm_matches_an_independent_reference() {
    // Reference: Real-ESRGAN's USMSharp re-implemented with numpy + scipy.ndimage.correlate
    // (mode 'mirror' = reflect padding, 51×51 outer product of cv2.getGaussianKernel(51, 0)),
    // in float64, on `test_image(64, 48)` rounded to f32.
    let img = test_image(64, 48);
    let out = usm_sharpen(&img);
    let golden = [
        ((0, 0, 0), 0.49331759933723646),
        ((0, 10, 20), 0.2513035695316699),
        ((1, 47, 63), 0.5414176270153785),
        ((2, 24, 5), 0.30769910699251607),
        ((1, 5, 40), 0.48446551868230836),
        ((2, 30, 33), 0.8388566764531394),
    ];
    for ((c, y, x), want) in golden {
        let got = f64::from(out.get(c, y, x));
        assert!(
            (got - want).abs() < 1e-5,
            "usm[{c}, {y}, {x}] = {got}, reference {want}"
        );
    }
}

#[test]
fn resize_matches_pytorch_interpolate() {
    let row = Image::from_fn(4, 1, |_, _, x| x as f32).unwrap();
    // F.interpolate([0,1,2,3], scale_factor=2, mode='bilinear', align_corners=False)
    let up = resize(&row, 8, 1, Interpolation::Bilinear).unwrap();
    let expect = [0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0];
    for (x, e) in expect.iter().enumerate() {
        assert!(
            (up.get(1, 0, x) - e).abs() < 1e-6,
            "bilinear[{x}] = {}",
            up.get(1, 0, x)
        );
    }
    // Bicubic, worked example with Keys a = -0.75: out[0] samples src = -0.25 → taps at
    // indices (-2..=1 clamped) = [0, 0, 0, 1] with weights w(1.75), w(0.75), w(0.25), w(1.25);
    // w(1.25) = ((a·1.25 - 5a)·1.25 + 8a)·1.25 - 4a = -0.10546875.
    // out[2] samples src = 0.75 → values [0, 0, 1, 2], = w(0.25) + 2 w(1.25) = 0.87890625 - 0.2109375.
    let up = resize(&row, 8, 1, Interpolation::Bicubic).unwrap();
    assert!(
        (up.get(0, 0, 0) + 0.105_468_75).abs() < 1e-6,
        "{}",
        up.get(0, 0, 0)
    );
    assert!(
        (up.get(0, 0, 2) - 0.667_968_75).abs() < 1e-6,
        "{}",
        up.get(0, 0, 2)
    );
    // By symmetry out[7] = 3 - out[0].
    assert!((up.get(0, 0, 7) - (3.0 + 0.105_468_75)).abs() < 1e-6);
    // Area ×½ is the 2×2 box average; area of 5 → 2 averages [0..3) and [2..5) (adaptive pooling).
    let img = test_image(10, 6);
    let a = resize(&img, 5, 3, Interpolation::Area).unwrap();
    let d = downscale_half(&img).unwrap();
    assert!(
        a.data()
            .iter()
            .zip(d.data())
            .all(|(x, y)| (x - y).abs() < 1e-6)
    );
    let five = Image::from_fn(5, 1, |_, _, x| x as f32).unwrap();
    let two = resize(&five, 2, 1, Interpolation::Area).unwrap();
    assert!((two.get(0, 0, 0) - 1.0).abs() < 1e-6 && (two.get(0, 0, 1) - 3.0).abs() < 1e-6);
    // Every mode preserves a constant, in both directions.
    let flat = Image::from_fn(33, 21, |c, _, _| 0.1 + 0.2 * c as f32).unwrap();
    for mode in Interpolation::ALL {
        for (w, h) in [(10, 7), (70, 50), (33, 5)] {
            let r = resize(&flat, w, h, mode).unwrap();
            assert_eq!(r.shape(), [3, h, w]);
            for c in 0..3 {
                assert!(
                    r.channel(c)
                        .iter()
                        .all(|v| (v - (0.1 + 0.2 * c as f32)).abs() < 1e-5),
                    "{mode:?}"
                );
            }
        }
    }
    // scale_factor semantics: floor(side · f).
    let r = resize_by_factor(&img, 0.15, Interpolation::Bicubic).unwrap();
    assert_eq!((r.width(), r.height()), (1, 1)); // floor(1.5), floor(0.9) → max(…, 1)
    let r = resize_by_factor(&test_image(512, 512), 1.37, Interpolation::Bilinear).unwrap();
    assert_eq!((r.width(), r.height()), (701, 701));
    assert!(resize(&img, 0, 3, Interpolation::Area).is_err());
    // Bicubic upsampling for the SR conditioning input.
    let up = upsample_bicubic(&test_image(16, 12), 4).unwrap();
    assert_eq!(up.shape(), [3, 48, 64]);
}

#[test]
fn resize_statistics_downscaling_smooths_noise() {
    // Area ×¼ of i.i.d. noise divides its variance by 16 (a box of 16 pixels).
    let mut rng = item_rng(11, 0);
    let mut img = Image::from_fn(256, 256, |_, _, _| 0.5).unwrap();
    add_gaussian_noise(&mut img, 20.0, false, &mut rng);
    let var = |im: &Image| {
        let n = im.data().len() as f64;
        let m = im.data().iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        im.data()
            .iter()
            .map(|&v| (f64::from(v) - m).powi(2))
            .sum::<f64>()
            / n
    };
    let small = resize(&img, 64, 64, Interpolation::Area).unwrap();
    let ratio = var(&img) / var(&small);
    assert!((ratio - 16.0).abs() < 1.5, "variance ratio {ratio}");
    // Bilinear ×½ without antialiasing averages exactly 2×2 pixels at these positions too
    // (src = 2i + 0.5): ratio 4 per axis pair → 4.
    let half = resize(&img, 128, 128, Interpolation::Bilinear).unwrap();
    let ratio = var(&img) / var(&half);
    assert!((ratio - 4.0).abs() < 0.4, "bilinear variance ratio {ratio}");
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n)
}

#[test]
fn gaussian_noise_has_the_requested_statistics() {
    let base = Image::from_fn(128, 128, |_, _, _| 0.5).unwrap();
    let sigma = 12.0;
    let mut rng = item_rng(5, 1);
    let mut img = base.clone();
    add_gaussian_noise(&mut img, sigma, false, &mut rng);
    let noise: Vec<f64> = img.data().iter().map(|&v| f64::from(v) - 0.5).collect();
    let (m, var) = mean_var(&noise);
    let sd = sigma / 255.0;
    assert!(m.abs() < 4.0 * sd / (noise.len() as f64).sqrt(), "mean {m}");
    assert!(
        (var.sqrt() / sd - 1.0).abs() < 0.02,
        "sd {} vs {sd}",
        var.sqrt()
    );
    // Colour noise is independent across channels.
    let corr: f64 = (0..128 * 128)
        .map(|i| noise[i] * noise[i + 128 * 128])
        .sum::<f64>()
        / (128.0 * 128.0)
        / var;
    assert!(corr.abs() < 0.05, "channel correlation {corr}");
    // Gray noise is the same on all three channels.
    let mut img = base.clone();
    add_gaussian_noise(&mut img, sigma, true, &mut rng);
    assert_eq!(img.channel(0), img.channel(1));
    assert_eq!(img.channel(0), img.channel(2));
    assert!(img.channel(0).iter().any(|&v| v != 0.5));
    // Clipping keeps [0, 1].
    let mut img = Image::from_fn(64, 64, |_, _, x| if x % 2 == 0 { 0.0 } else { 1.0 }).unwrap();
    add_gaussian_noise(&mut img, 30.0, false, &mut rng);
    assert!(img.data().iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn poisson_noise_has_the_poisson_variance() {
    // Levels 64..=191 (128 distinct → vals = 128). For level l the noise is
    // Poisson(l/255 · 128)/128 - l/255: mean 0, variance (l/255)/128; scaled by `scale`.
    let (w, h) = (128, 256);
    let base = Image::from_fn(w, h, |_, _, x| (64 + x) as f32 / 255.0).unwrap();
    let scale = 1.5;
    let mut rng = item_rng(9, 2);
    let mut img = base.clone();
    add_poisson_noise(&mut img, scale, false, &mut rng);
    let noise: Vec<f64> = img
        .data()
        .iter()
        .zip(base.data())
        .map(|(a, b)| f64::from(a - b))
        .collect();
    let expect_var: f64 = base
        .data()
        .iter()
        .map(|&v| f64::from(quantise(v)) / 255.0 / 128.0 * scale * scale)
        .sum::<f64>()
        / base.data().len() as f64;
    let (m, var) = mean_var(&noise);
    assert!(
        m.abs() < 4.0 * (expect_var / noise.len() as f64).sqrt(),
        "mean {m}"
    );
    assert!(
        (var / expect_var - 1.0).abs() < 0.03,
        "var {var} vs {expect_var}"
    );
    // Per-level check on the brightest column (λ = 191/255·128 ≈ 95.9): variance λ/128².
    let col: Vec<f64> = (0..3)
        .flat_map(|c| (0..h).map(move |y| (c, y)))
        .map(|(c, y)| f64::from(img.get(c, y, w - 1) - base.get(c, y, w - 1)) / scale)
        .collect();
    let (_, v) = mean_var(&col);
    let lambda = 191.0 / 255.0 * 128.0;
    assert!(
        (v / (lambda / 128.0 / 128.0) - 1.0).abs() < 0.15,
        "column variance {v}"
    );
    // Gray Poisson noise is shared by the channels.
    let mut img = base.clone();
    add_poisson_noise(&mut img, 1.0, true, &mut rng);
    assert_eq!(img.channel(0), img.channel(1));
    // A constant image has one level → vals = 1 → large relative noise: values change.
    let mut flat = Image::from_fn(32, 32, |_, _, _| 0.2).unwrap();
    add_poisson_noise(&mut flat, 0.05, false, &mut rng);
    assert!(flat.data().iter().any(|&v| (v - 0.2).abs() > 1e-3));
    assert!(flat.data().iter().all(|v| (0.0..=1.0).contains(v)));
}

fn quantise(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

fn mse(a: &Image, b: &Image) -> f64 {
    a.data()
        .iter()
        .zip(b.data())
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        / a.data().len() as f64
}

#[test]
fn jpeg_at_lower_quality_loses_more() {
    let photo = &embedded::train().unwrap()[1].image; // astronaut
    let crop = photo.crop(100, 100, 160, 128).unwrap();
    let errs: Vec<f64> = [95.0, 75.0, 50.0, 30.0, 10.0]
        .iter()
        .map(|&q| {
            let out = jpeg_roundtrip(&crop, q).unwrap();
            assert_eq!(out.shape(), crop.shape());
            mse(&crop, &out)
        })
        .collect();
    for w in errs.windows(2) {
        assert!(w[0] < w[1], "MSE must grow as quality drops: {errs:?}");
    }
    // High quality is close: PSNR above 35 dB at q = 95.
    let psnr = 10.0 * (1.0 / errs[0]).log10();
    assert!(psnr > 35.0, "PSNR at q95: {psnr}");
    // Odd sizes round-trip with their size.
    let odd = test_image(37, 23);
    assert_eq!(jpeg_roundtrip(&odd, 40.0).unwrap().shape(), [3, 23, 37]);
    let _ = kernels::random_final_sinc(&mut item_rng(0, 0));
}
