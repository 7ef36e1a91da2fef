//! NIQE, the Natural Image Quality Evaluator (no reference; lower is better), ported from
//! BasicSR 1.4.2 `basicsr/metrics/niqe.py` with the official MATLAB model parameters.
//!
//! Convention (stated because it moves the numbers): the input is MATLAB `rgb2gray` luma
//! (YIQ Y, [`crate::color::yiq_y_rounded`]) ×255 rounded — what pyiqa's `niqe` uses, and
//! BasicSR's `calculate_niqe(convert_to='gray')` (OpenCV's gray has the same 0.299, 0.587,
//! 0.114 weights) — not BasicSR's default `convert_to='y'` (YCbCr Y), which gives other
//! numbers (3.79 instead of 3.65 on pyiqa's calibration image I04).
//!
//! The image is cut to whole 96×96 blocks (top-left kept); each block gives 18 features at
//! full and 18 at half scale (MATLAB bicubic ×0.5 with antialiasing); a multivariate Gaussian
//! is fitted to them and compared with the pristine model. Computation is in `f64`, as in
//! pyiqa (BasicSR keeps `f32` images). On heavily distorted images with many near-flat blocks
//! NIQE is sensitive to such details (a few tenths in extreme cases); on ordinary images the
//! implementations agree to about 0.01. `tests/oracle_pyiqa.rs` compares with pyiqa and MATLAB.

use std::sync::OnceLock;

use crate::color::{Plane, yiq_y_rounded};
use crate::error::{MetricError, Result};
use crate::image::{MetricImage, check_finite};
use crate::resize::imresize_bicubic;

/// Block side used by NIQE (the official recommendation, also the pristine model's).
pub const BLOCK: usize = 96;
/// Number of features per block (18 per scale, 2 scales).
pub const FEATURES: usize = 36;

/// The pristine model: mean (36), covariance (36×36, row-major) and the 7×7 normalisation
/// window, from `assets/niqe_pris_params.f64le` (BasicSR's `niqe_pris_params.npz`,
/// Apache-2.0; see `assets/README.md`).
struct PristineModel {
    mu: [f64; FEATURES],
    cov: Vec<f64>,
    window: [f64; 49],
}

static PARAMS_BYTES: &[u8] = include_bytes!("../assets/niqe_pris_params.f64le");

fn pristine() -> &'static PristineModel {
    static MODEL: OnceLock<PristineModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let vals: Vec<f64> = PARAMS_BYTES
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("chunks_exact(8) yields 8 bytes")))
            .collect();
        assert_eq!(
            vals.len(),
            FEATURES + FEATURES * FEATURES + 49,
            "embedded NIQE parameter file has the wrong size"
        );
        let mut mu = [0.0; FEATURES];
        mu.copy_from_slice(&vals[..FEATURES]);
        let cov = vals[FEATURES..FEATURES + FEATURES * FEATURES].to_vec();
        let mut window = [0.0; 49];
        window.copy_from_slice(&vals[FEATURES + FEATURES * FEATURES..]);
        PristineModel { mu, cov, window }
    })
}

/// NIQE of an RGB image (`[3, H, W]`, values in `[0, 1]`) after removing `crop_border`
/// pixels from every edge. Lower is better; clean photographs score about 3–4.
///
/// # Errors
/// [`MetricError::NonFinite`], [`MetricError::CropTooLarge`]; [`MetricError::TooSmall`] if fewer than one 96×96 block
/// fits; [`MetricError::NiqeDegenerate`] if fewer than two blocks give finite features
/// (e.g. a flat image).
#[doc(alias = "natural image quality evaluator")]
pub fn niqe(img: &MetricImage, crop_border: usize) -> Result<f64> {
    check_finite(img)?;
    let gray = yiq_y_rounded(img).crop(crop_border)?;
    niqe_gray(&gray)
}

/// NIQE of a gray plane with values in `[0, 255]` (`[H, W]`); see [`niqe`]. The caller
/// chooses the gray conversion and rounding.
///
/// # Errors
/// As [`niqe`].
pub fn niqe_gray(gray: &Plane) -> Result<f64> {
    let (nbw, nbh) = (gray.width / BLOCK, gray.height / BLOCK);
    if nbw == 0 || nbh == 0 {
        return Err(MetricError::TooSmall {
            metric: "niqe",
            width: gray.width,
            height: gray.height,
            min_width: BLOCK,
            min_height: BLOCK,
        });
    }
    let model = pristine();
    let (w, h) = (nbw * BLOCK, nbh * BLOCK);
    let mut img = Plane {
        width: w,
        height: h,
        data: (0..h)
            .flat_map(|y| {
                gray.data[y * gray.width..y * gray.width + w]
                    .iter()
                    .copied()
            })
            .collect(),
    };
    let nblocks = nbw * nbh;
    let mut feats = vec![[f64::NAN; FEATURES]; nblocks];
    for scale in [1usize, 2] {
        let normalized = local_normalize(&img, &model.window);
        let b = BLOCK / scale;
        let mut block = vec![0.0; b * b];
        for bx in 0..nbw {
            for by in 0..nbh {
                for y in 0..b {
                    let row = (by * b + y) * normalized.width + bx * b;
                    block[y * b..(y + 1) * b].copy_from_slice(&normalized.data[row..row + b]);
                }
                let f = block_features(&block, b);
                let off = (scale - 1) * 18;
                feats[bx * nbh + by][off..off + 18].copy_from_slice(&f);
            }
        }
        if scale == 1 {
            let scaled = Plane {
                width: w,
                height: h,
                data: img.data.iter().map(|v| v / 255.0).collect(),
            };
            let mut half = imresize_bicubic(&scaled, 0.5, true);
            half.data.iter_mut().for_each(|v| *v *= 255.0);
            img = half;
        }
    }

    // nanmean per feature, covariance of the rows without NaN (numpy `np.cov`, ddof = 1).
    let mut mu_d = [0.0; FEATURES];
    for (j, m) in mu_d.iter_mut().enumerate() {
        let (s, n) = feats
            .iter()
            .map(|r| r[j])
            .filter(|v| !v.is_nan())
            .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
        *m = s / n as f64;
    }
    let valid: Vec<&[f64; FEATURES]> = feats
        .iter()
        .filter(|r| r.iter().all(|v| !v.is_nan()))
        .collect();
    if valid.len() < 2 {
        return Err(MetricError::NiqeDegenerate {
            valid: valid.len(),
            total: nblocks,
        });
    }
    let mut mean_valid = [0.0; FEATURES];
    for r in &valid {
        for j in 0..FEATURES {
            mean_valid[j] += r[j];
        }
    }
    mean_valid.iter_mut().for_each(|v| *v /= valid.len() as f64);
    let mut cov = vec![0.0; FEATURES * FEATURES];
    for r in &valid {
        for i in 0..FEATURES {
            let di = r[i] - mean_valid[i];
            for j in 0..FEATURES {
                cov[i * FEATURES + j] += di * (r[j] - mean_valid[j]);
            }
        }
    }
    let denom = (valid.len() - 1) as f64;
    let avg: Vec<f64> = cov
        .iter()
        .zip(&model.cov)
        .map(|(c, p)| (c / denom + p) / 2.0)
        .collect();
    let pinv = pinv_symmetric(&avg, FEATURES);
    let diff: Vec<f64> = model.mu.iter().zip(&mu_d).map(|(a, b)| a - b).collect();
    let mut q = 0.0;
    for i in 0..FEATURES {
        for j in 0..FEATURES {
            q += diff[i] * pinv[i * FEATURES + j] * diff[j];
        }
    }
    Ok(q.sqrt())
}

/// `(img − μ) / (σ + 1)` with μ, σ from the 7×7 window, edges replicated
/// (scipy `convolve(mode='nearest')`).
fn local_normalize(img: &Plane, window: &[f64; 49]) -> Plane {
    let (w, h) = (img.width as isize, img.height as isize);
    let mut out = vec![0.0; img.data.len()];
    for y in 0..h {
        for x in 0..w {
            let (mut mu, mut sq) = (0.0, 0.0);
            for dy in -3..=3isize {
                let yy = (y + dy).clamp(0, h - 1) as usize;
                let row = &img.data[yy * img.width..(yy + 1) * img.width];
                for dx in -3..=3isize {
                    let v = row[(x + dx).clamp(0, w - 1) as usize];
                    // scipy's convolve flips the kernel: offset (dy, dx) takes weight (3 − dy, 3 − dx).
                    let k = window[((3 - dy) * 7 + (3 - dx)) as usize];
                    mu += k * v;
                    sq += k * v * v;
                }
            }
            let sigma = (sq - mu * mu).abs().sqrt();
            let i = (y * w + x) as usize;
            out[i] = (img.data[i] - mu) / (sigma + 1.0);
        }
    }
    Plane {
        width: img.width,
        height: img.height,
        data: out,
    }
}

/// The 18 features of one `n × n` block (row-major): AGGD fit of the block, then of its
/// products with the block shifted by (0, 1), (1, 0), (1, 1), (1, −1) (circularly, as
/// `np.roll`).
fn block_features(block: &[f64], n: usize) -> [f64; 18] {
    let mut f = [0.0; 18];
    let (alpha, bl, br) = aggd(block);
    f[0] = alpha;
    f[1] = (bl + br) / 2.0;
    let mut prod = vec![0.0; n * n];
    for (k, (sy, sx)) in [(0isize, 1isize), (1, 0), (1, 1), (1, -1)]
        .into_iter()
        .enumerate()
    {
        for y in 0..n {
            let ry = (y as isize - sy).rem_euclid(n as isize) as usize;
            for x in 0..n {
                let rx = (x as isize - sx).rem_euclid(n as isize) as usize;
                prod[y * n + x] = block[y * n + x] * block[ry * n + rx];
            }
        }
        let (alpha, bl, br) = aggd(&prod);
        let mean = (br - bl) * (libm::tgamma(2.0 / alpha) / libm::tgamma(1.0 / alpha));
        f[2 + 4 * k..6 + 4 * k].copy_from_slice(&[alpha, mean, bl, br]);
    }
    f
}

/// The shape grid 0.2, 0.201, …, 10.0 and its ratio Γ(2/α)² / (Γ(1/α) Γ(3/α)).
fn shape_table() -> &'static (Vec<f64>, Vec<f64>) {
    static TABLE: OnceLock<(Vec<f64>, Vec<f64>)> = OnceLock::new();
    TABLE.get_or_init(|| {
        // numpy: np.arange(0.2, 10.001, 0.001) -> ceil((10.001 - 0.2) / 0.001) = 9801 values.
        let gam: Vec<f64> = (0..9801).map(|i| 0.2 + i as f64 * 0.001).collect();
        let r = gam
            .iter()
            .map(|&g| {
                let t = libm::tgamma(2.0 / g);
                t * t / (libm::tgamma(1.0 / g) * libm::tgamma(3.0 / g))
            })
            .collect();
        (gam, r)
    })
}

/// Asymmetric generalised Gaussian fit by moment matching on the grid: (α, β_left, β_right).
/// Empty sides give NaN exactly as numpy does (mean of an empty array).
fn aggd(block: &[f64]) -> (f64, f64, f64) {
    let (mut ls, mut ln, mut rs, mut rn, mut abs_sum, mut sq_sum) =
        (0.0, 0usize, 0.0, 0usize, 0.0, 0.0);
    for &v in block {
        let v2 = v * v;
        if v < 0.0 {
            ls += v2;
            ln += 1;
        } else if v > 0.0 {
            rs += v2;
            rn += 1;
        }
        abs_sum += v.abs();
        sq_sum += v2;
    }
    let n = block.len() as f64;
    let left_std = (ls / ln as f64).sqrt();
    let right_std = (rs / rn as f64).sqrt();
    let gammahat = left_std / right_std;
    let mean_abs = abs_sum / n;
    let rhat = mean_abs * mean_abs / (sq_sum / n);
    let rhatnorm =
        rhat * (gammahat.powi(3) + 1.0) * (gammahat + 1.0) / (gammahat * gammahat + 1.0).powi(2);
    let (gam, r_gam) = shape_table();
    // np.argmin: first minimum; a NaN anywhere makes it return the first NaN (index 0 here).
    let mut best = 0;
    if rhatnorm.is_finite() {
        let mut best_v = f64::INFINITY;
        for (i, r) in r_gam.iter().enumerate() {
            let d = (r - rhatnorm) * (r - rhatnorm);
            if d < best_v {
                best_v = d;
                best = i;
            }
        }
    }
    let alpha = gam[best];
    let f = (libm::tgamma(1.0 / alpha) / libm::tgamma(3.0 / alpha)).sqrt();
    (alpha, left_std * f, right_std * f)
}

/// Moore–Penrose pseudo-inverse of a symmetric `n × n` matrix (row-major) by cyclic Jacobi
/// eigendecomposition; eigenvalues with `|λ| ≤ 1e-15 · max|λ|` are dropped (numpy's default
/// `rcond` for `pinv`).
fn pinv_symmetric(a: &[f64], n: usize) -> Vec<f64> {
    let mut m = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j].powi(2))
            .sum();
        let diag: f64 = (0..n).map(|i| m[i * n + i].powi(2)).sum();
        if off <= 1e-30 * diag {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let eig: Vec<f64> = (0..n).map(|i| m[i * n + i]).collect();
    let max = eig.iter().fold(0.0_f64, |acc, e| acc.max(e.abs()));
    let cutoff = 1e-15 * max;
    let mut out = vec![0.0; n * n];
    for (k, &e) in eig.iter().enumerate() {
        if e.abs() <= cutoff {
            continue;
        }
        let inv = 1.0 / e;
        for i in 0..n {
            let vik = v[i * n + k] * inv;
            for j in 0..n {
                out[i * n + j] += vik * v[j * n + k];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinv_inverts_a_well_conditioned_symmetric_matrix() {
        // A = [[4, 1, 0], [1, 3, 1], [0, 1, 2]]; A · pinv(A) must be the identity.
        let a = [4.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 2.0];
        let p = pinv_symmetric(&a, 3);
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| a[i * 3 + k] * p[k * 3 + j]).sum();
                assert!(
                    (v - f64::from(u8::from(i == j))).abs() < 1e-12,
                    "({i},{j}) = {v}"
                );
            }
        }
    }

    #[test]
    fn pinv_of_a_rank_one_matrix_is_its_moore_penrose_inverse() {
        // A = u uᵀ with u = (1, 2): pinv(A) = A / |u|⁴ = A / 25.
        let a = [1.0, 2.0, 2.0, 4.0];
        let p = pinv_symmetric(&a, 2);
        for (x, y) in p.iter().zip(a.iter()) {
            assert!((x - y / 25.0).abs() < 1e-12, "{p:?}");
        }
    }

    #[test]
    fn aggd_of_a_symmetric_laplacian_like_sample_is_symmetric() {
        // Symmetric sample: left and right scales must be equal.
        let block: Vec<f64> = (1..=50)
            .flat_map(|i| [f64::from(i) * 0.01, -f64::from(i) * 0.01])
            .collect();
        let (alpha, bl, br) = aggd(&block);
        assert!((bl - br).abs() < 1e-12);
        // A uniform distribution has shape ≫ 2 in the generalised Gaussian family.
        assert!(alpha > 3.0, "alpha = {alpha}");
    }

    #[test]
    fn aggd_of_gaussian_quantiles_has_shape_near_two() {
        // Normal quantiles via the inverse error function are not in std; use a Box–Muller
        // sample from a fixed linear congruential generator instead.
        let mut state: u64 = 12345;
        let mut uniform = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let sample: Vec<f64> = (0..40000)
            .map(|_| {
                (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos()
            })
            .collect();
        let (alpha, bl, br) = aggd(&sample);
        assert!((alpha - 2.0).abs() < 0.1, "alpha = {alpha}");
        // For α = 2, β = σ·√(Γ(1/2)/Γ(3/2)) = σ·√2.
        assert!(
            (bl - 2f64.sqrt()).abs() < 0.05 && (br - 2f64.sqrt()).abs() < 0.05,
            "{bl} {br}"
        );
    }

    #[test]
    fn embedded_parameters_are_the_matlab_release() {
        let m = pristine();
        // BasicSR's npz: mu_pris_param starts 2.60131368, 0.90570272, 0.81204778.
        assert!((m.mu[0] - 2.60131368).abs() < 1e-7 && (m.mu[1] - 0.90570272).abs() < 1e-7);
        let s: f64 = m.window.iter().sum();
        assert!((s - 1.0).abs() < 1e-9, "window sums to {s}");
        for i in 0..FEATURES {
            for j in 0..FEATURES {
                assert_eq!(m.cov[i * FEATURES + j], m.cov[j * FEATURES + i]);
            }
        }
    }
}
