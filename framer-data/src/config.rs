//! The degradation configuration, with Real-ESRGAN's key names.

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::kernels::{BlurSampling, KernelType};

/// Parameters of the Real-ESRGAN second-order degradation.
///
/// The field names are the keys of Real-ESRGAN's `params_realesrgan.yml` verbatim (the
/// `kernel_info` keys are flattened into the same table), so YAML values can be pasted into a
/// TOML `[degradation]` table. Missing keys take the defaults below, unknown keys are rejected.
/// Defaults are the values used by the FRAMER / DiT4SR data preparation (`params_realesrgan.yml`).
///
/// Ranges are `[low, high]`; "up, down, keep" probabilities are `[p_up, p_down, p_keep]`.
///
/// ```
/// let cfg: framer_data::DegradationConfig = toml::from_str(r#"
///     resize_prob = [0.2, 0.7, 0.1]
///     noise_range = [1, 30]
///     kernel_list = ["iso", "aniso"]
///     kernel_prob = [0.5, 0.5]
/// "#).unwrap();
/// cfg.validate().unwrap();
/// assert_eq!(cfg.scale, 4);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[doc(alias = "params_realesrgan")]
pub struct DegradationConfig {
    // ---- first degradation ----
    /// Stage 1 probabilities of resizing up, down or keeping the size. Default `[0.2, 0.7, 0.1]`.
    pub resize_prob: [f64; 3],
    /// Stage 1 resize factor range: "up" draws from `[1, high]`, "down" from `[low, 1]`.
    /// Default `[0.15, 1.5]`.
    pub resize_range: [f64; 2],
    /// Stage 1 probability of Gaussian (rather than Poisson) noise. Default 0.5.
    pub gaussian_noise_prob: f64,
    /// Stage 1 Gaussian noise σ range, in 8-bit units. Default `[1, 30]`.
    pub noise_range: [f64; 2],
    /// Stage 1 Poisson noise scale range. Default `[0.05, 3]`.
    pub poisson_scale_range: [f64; 2],
    /// Stage 1 probability that the noise is gray (shared by the channels). Default 0.4.
    pub gray_noise_prob: f64,
    /// Stage 1 JPEG quality range. Default `[30, 95]`.
    pub jpeg_range: [f64; 2],

    // ---- second degradation ----
    /// Probability of the stage 2 blur. Default 0.8.
    pub second_blur_prob: f64,
    /// Stage 2 up/down/keep probabilities. Default `[0.3, 0.4, 0.3]`.
    pub resize_prob2: [f64; 3],
    /// Stage 2 resize factor range (relative to the final LR size). Default `[0.3, 1.2]`.
    pub resize_range2: [f64; 2],
    /// Stage 2 probability of Gaussian noise. Default 0.5.
    pub gaussian_noise_prob2: f64,
    /// Stage 2 Gaussian σ range (8-bit units). Default `[1, 25]`.
    pub noise_range2: [f64; 2],
    /// Stage 2 Poisson scale range. Default `[0.05, 2.5]`.
    pub poisson_scale_range2: [f64; 2],
    /// Stage 2 gray-noise probability. Default 0.4.
    pub gray_noise_prob2: f64,
    /// Stage 2 JPEG quality range. Default `[30, 95]`.
    pub jpeg_range2: [f64; 2],

    // ---- kernels (Real-ESRGAN's `kernel_info`) ----
    /// Largest stage 1 kernel size (odd, ≥ 7); sizes are drawn from the odd values `7..=size`.
    /// Default 21. (Real-ESRGAN's dataset always draws 7..=21 whatever this key says; 21 reproduces
    /// that exactly.)
    pub blur_kernel_size: usize,
    /// Stage 1 kernel families. Default: all six.
    pub kernel_list: Vec<KernelType>,
    /// Stage 1 family probabilities. Default `[0.45, 0.25, 0.12, 0.03, 0.12, 0.03]`.
    pub kernel_prob: Vec<f64>,
    /// Stage 1 probability of a sinc kernel instead. Default 0.1.
    pub sinc_prob: f64,
    /// Stage 1 σ range. Default `[0.2, 3]`.
    pub blur_sigma: [f64; 2],
    /// Stage 1 generalized-Gaussian β range (`low ≤ 1 ≤ high`). Default `[0.5, 4]`.
    pub betag_range: [f64; 2],
    /// Stage 1 plateau β range (`low ≤ 1 ≤ high`). Default `[1, 2]`.
    pub betap_range: [f64; 2],
    /// Largest stage 2 kernel size. Default 11.
    pub blur_kernel_size2: usize,
    /// Stage 2 kernel families. Default: all six.
    pub kernel_list2: Vec<KernelType>,
    /// Stage 2 family probabilities. Default `[0.45, 0.25, 0.12, 0.03, 0.12, 0.03]`.
    pub kernel_prob2: Vec<f64>,
    /// Stage 2 sinc probability. Default 0.1.
    pub sinc_prob2: f64,
    /// Stage 2 σ range. Default `[0.2, 1.5]`.
    pub blur_sigma2: [f64; 2],
    /// Stage 2 generalized-Gaussian β range. Default `[0.5, 4]`.
    pub betag_range2: [f64; 2],
    /// Stage 2 plateau β range. Default `[1, 2]`.
    pub betap_range2: [f64; 2],
    /// Probability of the final sinc filter. Default 0.8.
    pub final_sinc_prob: f64,

    // ---- output ----
    /// Super-resolution factor: the LR image is `HR / scale`. Default 4.
    pub scale: usize,
    /// Return the USM-sharpened HR image as the ground truth. Default `true`. (As in Real-ESRGAN
    /// the LR image is always degraded from the sharpened HR.)
    pub gt_usm: bool,
}

const ALL_KERNELS: [KernelType; 6] = [
    KernelType::Iso,
    KernelType::Aniso,
    KernelType::GeneralizedIso,
    KernelType::GeneralizedAniso,
    KernelType::PlateauIso,
    KernelType::PlateauAniso,
];
const KERNEL_PROB: [f64; 6] = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03];

impl Default for DegradationConfig {
    fn default() -> Self {
        Self {
            resize_prob: [0.2, 0.7, 0.1],
            resize_range: [0.15, 1.5],
            gaussian_noise_prob: 0.5,
            noise_range: [1.0, 30.0],
            poisson_scale_range: [0.05, 3.0],
            gray_noise_prob: 0.4,
            jpeg_range: [30.0, 95.0],
            second_blur_prob: 0.8,
            resize_prob2: [0.3, 0.4, 0.3],
            resize_range2: [0.3, 1.2],
            gaussian_noise_prob2: 0.5,
            noise_range2: [1.0, 25.0],
            poisson_scale_range2: [0.05, 2.5],
            gray_noise_prob2: 0.4,
            jpeg_range2: [30.0, 95.0],
            blur_kernel_size: 21,
            kernel_list: ALL_KERNELS.to_vec(),
            kernel_prob: KERNEL_PROB.to_vec(),
            sinc_prob: 0.1,
            blur_sigma: [0.2, 3.0],
            betag_range: [0.5, 4.0],
            betap_range: [1.0, 2.0],
            blur_kernel_size2: 11,
            kernel_list2: ALL_KERNELS.to_vec(),
            kernel_prob2: KERNEL_PROB.to_vec(),
            sinc_prob2: 0.1,
            blur_sigma2: [0.2, 1.5],
            betag_range2: [0.5, 4.0],
            betap_range2: [1.0, 2.0],
            final_sinc_prob: 0.8,
            scale: 4,
            gt_usm: true,
        }
    }
}

fn err(key: &'static str, message: impl Into<String>) -> DataError {
    DataError::Config {
        key,
        message: message.into(),
    }
}

fn check_prob(key: &'static str, p: f64) -> Result<()> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(err(
            key,
            format!("must be a probability in [0, 1], got {p}"),
        ))
    }
}

fn check_distribution(key: &'static str, ps: &[f64]) -> Result<()> {
    if let Some(p) = ps.iter().find(|p| !(p.is_finite() && **p >= 0.0)) {
        return Err(err(
            key,
            format!("has a negative or non-finite probability {p}"),
        ));
    }
    let sum: f64 = ps.iter().sum();
    if (sum - 1.0).abs() > 1e-6 {
        return Err(err(key, format!("must sum to 1, sums to {sum}")));
    }
    Ok(())
}

fn check_range(key: &'static str, r: [f64; 2], min: f64, max: f64) -> Result<()> {
    let [lo, hi] = r;
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(err(key, format!("must be finite, got [{lo}, {hi}]")));
    }
    if lo > hi {
        return Err(err(
            key,
            format!("must be ordered [low, high], got [{lo}, {hi}]"),
        ));
    }
    if lo < min || hi > max {
        return Err(err(
            key,
            format!("must lie within [{min}, {max}], got [{lo}, {hi}]"),
        ));
    }
    Ok(())
}

fn check_around_one(key: &'static str, r: [f64; 2], max: f64) -> Result<()> {
    check_range(key, r, f64::MIN_POSITIVE, max)?;
    if r[0] > 1.0 || r[1] < 1.0 {
        return Err(err(
            key,
            format!("must contain 1 (low ≤ 1 ≤ high), got [{}, {}]", r[0], r[1]),
        ));
    }
    Ok(())
}

fn check_kernel_size(key: &'static str, k: usize) -> Result<()> {
    if k.is_multiple_of(2) || !(7..=63).contains(&k) {
        return Err(err(key, format!("must be odd and in 7..=63, got {k}")));
    }
    Ok(())
}

fn check_kernels(
    list_key: &'static str,
    prob_key: &'static str,
    list: &[KernelType],
    prob: &[f64],
) -> Result<()> {
    if list.is_empty() {
        return Err(err(list_key, "must name at least one kernel type"));
    }
    if list.len() != prob.len() {
        return Err(err(
            prob_key,
            format!(
                "has {} entries but `{list_key}` has {}",
                prob.len(),
                list.len()
            ),
        ));
    }
    check_distribution(prob_key, prob)
}

impl DegradationConfig {
    /// Checks every key; the error names the first offending key. Checks: probabilities in
    /// `[0, 1]`; `resize_prob*` and `kernel_prob*` sum to one; ranges ordered `[low, high]` and
    /// within bounds (resize ranges positive and containing 1, noise ranges non-negative, JPEG
    /// qualities in `[1, 100]`, σ positive, β ranges containing 1); kernel sizes odd in `7..=63`;
    /// `kernel_prob*` as long as `kernel_list*`; `scale` in `1..=16`.
    pub fn validate(&self) -> Result<()> {
        check_distribution("resize_prob", &self.resize_prob)?;
        check_around_one("resize_range", self.resize_range, 8.0)?;
        check_prob("gaussian_noise_prob", self.gaussian_noise_prob)?;
        check_range("noise_range", self.noise_range, 0.0, 255.0)?;
        check_range("poisson_scale_range", self.poisson_scale_range, 0.0, 100.0)?;
        check_prob("gray_noise_prob", self.gray_noise_prob)?;
        check_range("jpeg_range", self.jpeg_range, 1.0, 100.0)?;

        check_prob("second_blur_prob", self.second_blur_prob)?;
        check_distribution("resize_prob2", &self.resize_prob2)?;
        check_around_one("resize_range2", self.resize_range2, 8.0)?;
        check_prob("gaussian_noise_prob2", self.gaussian_noise_prob2)?;
        check_range("noise_range2", self.noise_range2, 0.0, 255.0)?;
        check_range(
            "poisson_scale_range2",
            self.poisson_scale_range2,
            0.0,
            100.0,
        )?;
        check_prob("gray_noise_prob2", self.gray_noise_prob2)?;
        check_range("jpeg_range2", self.jpeg_range2, 1.0, 100.0)?;

        check_kernel_size("blur_kernel_size", self.blur_kernel_size)?;
        check_kernels(
            "kernel_list",
            "kernel_prob",
            &self.kernel_list,
            &self.kernel_prob,
        )?;
        check_prob("sinc_prob", self.sinc_prob)?;
        check_range("blur_sigma", self.blur_sigma, f64::MIN_POSITIVE, 100.0)?;
        check_around_one("betag_range", self.betag_range, 100.0)?;
        check_around_one("betap_range", self.betap_range, 100.0)?;
        check_kernel_size("blur_kernel_size2", self.blur_kernel_size2)?;
        check_kernels(
            "kernel_list2",
            "kernel_prob2",
            &self.kernel_list2,
            &self.kernel_prob2,
        )?;
        check_prob("sinc_prob2", self.sinc_prob2)?;
        check_range("blur_sigma2", self.blur_sigma2, f64::MIN_POSITIVE, 100.0)?;
        check_around_one("betag_range2", self.betag_range2, 100.0)?;
        check_around_one("betap_range2", self.betap_range2, 100.0)?;
        check_prob("final_sinc_prob", self.final_sinc_prob)?;

        if !(1..=16).contains(&self.scale) {
            return Err(err(
                "scale",
                format!("must be in 1..=16, got {}", self.scale),
            ));
        }
        Ok(())
    }

    /// The stage 1 kernel sampling parameters.
    pub fn blur1(&self) -> BlurSampling<'_> {
        BlurSampling {
            max_size: self.blur_kernel_size,
            kernel_list: &self.kernel_list,
            kernel_prob: &self.kernel_prob,
            sinc_prob: self.sinc_prob,
            blur_sigma: self.blur_sigma,
            betag_range: self.betag_range,
            betap_range: self.betap_range,
        }
    }

    /// The stage 2 kernel sampling parameters.
    pub fn blur2(&self) -> BlurSampling<'_> {
        BlurSampling {
            max_size: self.blur_kernel_size2,
            kernel_list: &self.kernel_list2,
            kernel_prob: &self.kernel_prob2,
            sinc_prob: self.sinc_prob2,
            blur_sigma: self.blur_sigma2,
            betag_range: self.betag_range2,
            betap_range: self.betap_range2,
        }
    }
}
