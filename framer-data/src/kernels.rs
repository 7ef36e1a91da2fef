//! Blur kernels of the Real-ESRGAN degradation: isotropic and anisotropic Gaussian, generalized
//! Gaussian, plateau, and the circular low-pass ("sinc") filter, plus their random sampling.
//!
//! Conventions follow BasicSR's `basicsr/data/degradations.py`: a `k`×`k` kernel (odd `k`) is
//! evaluated on the integer grid `x, y ∈ {-(k-1)/2, …, (k-1)/2}` (`x` along columns, `y` along rows)
//! and normalised to sum to one (an even `k` is rounded up to `k + 1`). The covariance of the anisotropic shapes is
//! `Σ = R(θ) diag(σx², σy²) R(θ)ᵀ`, and with `q = [x y] Σ⁻¹ [x y]ᵀ`:
//!
//! | shape | unnormalised value |
//! |---|---|
//! | Gaussian | `exp(-q / 2)` |
//! | generalized Gaussian | `exp(-q^β / 2)` |
//! | plateau | `1 / (1 + q^β)` |
//! | sinc (cutoff `ω_c`, radius `r`) | `ω_c J₁(ω_c r) / (2π r)`, and `ω_c² / (4π)` at `r = 0` |

use std::f64::consts::PI;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A square, odd-sized convolution kernel, row-major (`weights[y * size + x]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    size: usize,
    weights: Vec<f32>,
    /// `(column_taps, row_taps)` when the kernel is exactly their outer product
    /// (`weights[y·size + x] = row_taps[y] · column_taps[x]`), used for faster filtering.
    factors: Option<(Vec<f32>, Vec<f32>)>,
}

impl Kernel {
    /// Side length (odd).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Row-major weights, `size * size` of them.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// The weight at row `y`, column `x` (both in `0..size`).
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn at(&self, y: usize, x: usize) -> f32 {
        assert!(y < self.size && x < self.size, "kernel index out of range");
        self.weights[y * self.size + x]
    }

    /// Sum of the weights (1 up to rounding for every kernel built here).
    pub fn sum(&self) -> f64 {
        self.weights.iter().map(|&w| f64::from(w)).sum()
    }

    /// The 1×1 identity kernel (convolution leaves the image unchanged).
    pub fn identity() -> Kernel {
        Kernel {
            factors: None,
            size: 1,
            weights: vec![1.0],
        }
    }

    /// The separable factors `(taps along x, taps along y)` if the kernel is their outer product
    /// (axis-aligned Gaussians), else `None`.
    pub fn factors(&self) -> Option<(&[f32], &[f32])> {
        self.factors
            .as_ref()
            .map(|(x, y)| (x.as_slice(), y.as_slice()))
    }

    /// Builds a kernel by evaluating `f(x, y)` on the centred grid and normalising the sum to one.
    /// An even `size` is rounded up to the next odd size.
    fn from_grid(size: usize, f: impl Fn(f64, f64) -> f64) -> Kernel {
        let size = size | 1;
        let half = (size / 2) as f64;
        let mut raw = Vec::with_capacity(size * size);
        for iy in 0..size {
            for ix in 0..size {
                raw.push(f(ix as f64 - half, iy as f64 - half));
            }
        }
        let total: f64 = raw.iter().sum();
        Kernel {
            size,
            weights: raw.iter().map(|&v| (v / total) as f32).collect(),
            factors: None,
        }
    }
}

/// Inverse covariance `Σ⁻¹` of `R(θ) diag(σx², σy²) R(θ)ᵀ`, as `(a, b, c)` of `[[a, b], [b, c]]`.
fn inverse_sigma(sig_x: f64, sig_y: f64, theta: f64) -> (f64, f64, f64) {
    // σ below 1e-3 (or not a number) behaves as 1e-3: the kernel is then a unit impulse.
    let (sig_x, sig_y) = (sig_x.max(1e-3), sig_y.max(1e-3));
    let (s, c) = theta.sin_cos();
    let (vx, vy) = (sig_x * sig_x, sig_y * sig_y);
    // Σ = [[c²vx + s²vy, cs(vx - vy)], [cs(vx - vy), s²vx + c²vy]]
    let (a, b, d) = (
        c * c * vx + s * s * vy,
        c * s * (vx - vy),
        s * s * vx + c * c * vy,
    );
    let det = a * d - b * b;
    (d / det, -b / det, a / det)
}

fn quad_form(inv: (f64, f64, f64), x: f64, y: f64) -> f64 {
    inv.0 * x * x + 2.0 * inv.1 * x * y + inv.2 * y * y
}

/// Bivariate Gaussian kernel; `sig_y` and `theta` (radians) give the anisotropic case
/// (pass `sig_y = sig_x`, `theta = 0` for the isotropic one).
#[doc(alias = "bivariate_Gaussian")]
pub fn gaussian(size: usize, sig_x: f64, sig_y: f64, theta: f64) -> Kernel {
    let inv = inverse_sigma(sig_x, sig_y, theta);
    let mut k = Kernel::from_grid(size, |x, y| (-0.5 * quad_form(inv, x, y)).exp());
    // Axis-aligned (isotropic, or θ = 0): exactly the outer product of two 1-D Gaussians.
    if inv.1 == 0.0 {
        k.factors = Some((
            gaussian_1d(k.size(), inv.0.recip().sqrt()),
            gaussian_1d(k.size(), inv.2.recip().sqrt()),
        ));
    }
    k
}

/// Bivariate generalized Gaussian kernel `exp(-q^β / 2)` (β = 1 is the Gaussian).
#[doc(alias = "bivariate_generalized_Gaussian")]
pub fn generalized_gaussian(size: usize, sig_x: f64, sig_y: f64, theta: f64, beta: f64) -> Kernel {
    let inv = inverse_sigma(sig_x, sig_y, theta);
    Kernel::from_grid(size, |x, y| (-0.5 * quad_form(inv, x, y).powf(beta)).exp())
}

/// Bivariate plateau kernel `1 / (1 + q^β)`.
#[doc(alias = "bivariate_plateau")]
pub fn plateau(size: usize, sig_x: f64, sig_y: f64, theta: f64, beta: f64) -> Kernel {
    let inv = inverse_sigma(sig_x, sig_y, theta);
    Kernel::from_grid(size, |x, y| 1.0 / (quad_form(inv, x, y).powf(beta) + 1.0))
}

/// Circularly symmetric low-pass ("sinc") kernel with cutoff `cutoff` in radians per sample
/// (π is the Nyquist frequency): the ideal disc-shaped low-pass filter's impulse response
/// `ω_c J₁(ω_c r) / (2π r)`, sampled on the grid and normalised.
#[doc(alias = "circular_lowpass_kernel")]
#[doc(alias = "sinc")]
pub fn circular_lowpass(size: usize, cutoff: f64) -> Kernel {
    // A cutoff at or below zero (or NaN) would give an all-zero kernel; keep it positive.
    let cutoff = cutoff.max(1e-3);
    Kernel::from_grid(size, |x, y| {
        let r = (x * x + y * y).sqrt();
        if r == 0.0 {
            cutoff * cutoff / (4.0 * PI)
        } else {
            cutoff * bessel_j1(cutoff * r) / (2.0 * PI * r)
        }
    })
}

/// Bessel function of the first kind, order one, `J₁(x)`.
///
/// Rational approximations of Hart (as in *Numerical Recipes*, `bessj1`): absolute error below
/// about 1e-8 for all `x`.
pub fn bessel_j1(x: f64) -> f64 {
    let ax = x.abs();
    if ax < 8.0 {
        let y = x * x;
        let num = x
            * (72_362_614_232.0
                + y * (-7_895_059_235.0
                    + y * (242_396_853.1
                        + y * (-2_972_611.439 + y * (15_704.482_60 + y * (-30.160_366_06))))));
        let den = 144_725_228_442.0
            + y * (2_300_535_178.0
                + y * (18_583_304.74 + y * (99_447.433_94 + y * (376.999_139_7 + y))));
        num / den
    } else {
        let z = 8.0 / ax;
        let y = z * z;
        let xx = ax - 3.0 * std::f64::consts::FRAC_PI_4;
        let p = 1.0
            + y * (0.183_105e-2
                + y * (-0.351_639_649_6e-4 + y * (0.245_752_017_4e-5 + y * (-0.240_337_019e-6))));
        let q = 0.046_874_999_95
            + y * (-0.200_269_087_3e-3
                + y * (0.844_919_909_6e-5 + y * (-0.882_289_87e-6 + y * 0.105_787_412e-6)));
        let ans = (std::f64::consts::FRAC_2_PI / ax).sqrt() * (xx.cos() * p - z * xx.sin() * q);
        if x < 0.0 { -ans } else { ans }
    }
}

/// The blur kernel families of Real-ESRGAN's `kernel_list`, spelled as in the YAML.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelType {
    /// Isotropic Gaussian (`iso`).
    Iso,
    /// Anisotropic, rotated Gaussian (`aniso`).
    Aniso,
    /// Isotropic generalized Gaussian (`generalized_iso`).
    GeneralizedIso,
    /// Anisotropic generalized Gaussian (`generalized_aniso`).
    GeneralizedAniso,
    /// Isotropic plateau (`plateau_iso`).
    PlateauIso,
    /// Anisotropic plateau (`plateau_aniso`).
    PlateauAniso,
}

/// Sampling parameters of one stage's blur kernel (the Real-ESRGAN `kernel_info` keys of that stage).
#[derive(Clone, Debug)]
pub struct BlurSampling<'a> {
    /// Largest kernel size; sizes are drawn uniformly from the odd values `7..=max_size`.
    pub max_size: usize,
    /// Kernel families.
    pub kernel_list: &'a [KernelType],
    /// Probability of each family (same length as `kernel_list`, sums to one).
    pub kernel_prob: &'a [f64],
    /// Probability of drawing a sinc kernel instead of a family from `kernel_list`.
    pub sinc_prob: f64,
    /// Range of σ (both axes, drawn independently for anisotropic kernels).
    pub blur_sigma: [f64; 2],
    /// Range of β for generalized Gaussians (`lo ≤ 1 ≤ hi`).
    pub betag_range: [f64; 2],
    /// Range of β for plateaus (`lo ≤ 1 ≤ hi`).
    pub betap_range: [f64; 2],
}

/// Uniform draw in `[lo, hi)` (returns `lo` when the range is empty).
pub(crate) fn uniform<R: Rng + ?Sized>(rng: &mut R, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// Index drawn with the given (non-negative) weights, as Python's `random.choices`.
pub(crate) fn weighted_choice<R: Rng + ?Sized>(rng: &mut R, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (i, &w) in weights.iter().enumerate() {
        if u < w {
            return i;
        }
        u -= w;
    }
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
}

/// A kernel size drawn uniformly from the odd values `7..=max_size` (Real-ESRGAN's hard-coded
/// range is 7..=21).
pub(crate) fn random_kernel_size<R: Rng + ?Sized>(rng: &mut R, max_size: usize) -> usize {
    let choices = (max_size.max(7) - 7) / 2 + 1;
    7 + 2 * rng.random_range(0..choices)
}

/// β drawn as BasicSR does: with probability ½ from `[lo, 1)`, otherwise from `[1, hi)`.
fn random_beta<R: Rng + ?Sized>(rng: &mut R, range: [f64; 2]) -> f64 {
    if rng.random::<f64>() < 0.5 {
        uniform(rng, range[0], 1.0)
    } else {
        uniform(rng, 1.0, range[1])
    }
}

/// Draws one stage's blur kernel as `RealESRGANDataset.__getitem__` does: a size from
/// `7..=max_size`; with probability `sinc_prob` a sinc kernel with cutoff uniform in
/// `[π/3, π]` (sizes below 13) or `[π/5, π]`; otherwise a family from `kernel_list` with σ, the
/// rotation (uniform in `[-π, π]`) and β drawn from their ranges.
#[doc(alias = "random_mixed_kernels")]
pub fn random_blur_kernel<R: Rng + ?Sized>(rng: &mut R, p: &BlurSampling<'_>) -> Kernel {
    let size = random_kernel_size(rng, p.max_size);
    if rng.random::<f64>() < p.sinc_prob {
        let lo = if size < 13 { PI / 3.0 } else { PI / 5.0 };
        return circular_lowpass(size, uniform(rng, lo, PI));
    }
    let kind = p.kernel_list[weighted_choice(rng, p.kernel_prob)];
    let [slo, shi] = p.blur_sigma;
    let sig_x = uniform(rng, slo, shi);
    let aniso = matches!(
        kind,
        KernelType::Aniso | KernelType::GeneralizedAniso | KernelType::PlateauAniso
    );
    let (sig_y, theta) = if aniso {
        (uniform(rng, slo, shi), uniform(rng, -PI, PI))
    } else {
        (sig_x, 0.0)
    };
    match kind {
        KernelType::Iso | KernelType::Aniso => gaussian(size, sig_x, sig_y, theta),
        KernelType::GeneralizedIso | KernelType::GeneralizedAniso => {
            let beta = random_beta(rng, p.betag_range);
            generalized_gaussian(size, sig_x, sig_y, theta, beta)
        }
        KernelType::PlateauIso | KernelType::PlateauAniso => {
            let beta = random_beta(rng, p.betap_range);
            plateau(size, sig_x, sig_y, theta, beta)
        }
    }
}

/// The final sinc kernel: size from `7..=21`, cutoff uniform in `[π/3, π]`.
pub fn random_final_sinc<R: Rng + ?Sized>(rng: &mut R) -> Kernel {
    let size = random_kernel_size(rng, 21);
    circular_lowpass(size, uniform(rng, PI / 3.0, PI))
}

/// The 1-D Gaussian of OpenCV's `getGaussianKernel(size, sigma)`; `sigma <= 0` selects
/// `0.3 ((size - 1) / 2 - 1) + 0.8` as OpenCV does. Normalised to sum to one.
pub fn gaussian_1d(size: usize, sigma: f64) -> Vec<f32> {
    let sigma = if sigma > 0.0 {
        sigma
    } else {
        0.3 * ((size as f64 - 1.0) * 0.5 - 1.0) + 0.8
    };
    let half = (size as f64 - 1.0) / 2.0;
    let raw: Vec<f64> = (0..size)
        .map(|i| (-(i as f64 - half).powi(2) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = raw.iter().sum();
    raw.iter().map(|v| (v / total) as f32).collect()
}
