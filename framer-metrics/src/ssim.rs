//! Structural similarity (single scale, Gaussian window), in the pyiqa and BasicSR conventions.

use crate::color::{Plane, ycbcr_y, ycbcr_y_rounded, yiq_y_rounded};
use crate::error::{MetricError, Result};
use crate::image::{MetricImage, check_pair};

/// Side of the Gaussian window.
pub const WINDOW: usize = 11;
/// Standard deviation of the Gaussian window.
pub const SIGMA: f64 = 1.5;

/// Which single channel SSIM is computed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Luma {
    /// YIQ luma ×255, rounded ([`crate::color::yiq_y_rounded`]): pyiqa's default.
    YiqRounded,
    /// YCbCr (BT.601) luma in `[16, 235]`, rounded ([`crate::color::ycbcr_y_rounded`]):
    /// pyiqa with `color_space='ycbcr'`.
    YcbcrRounded,
    /// YCbCr (BT.601) luma in `[16, 235]`, not rounded ([`crate::color::ycbcr_y`]):
    /// BasicSR `calculate_ssim(test_y_channel=True)`.
    Ycbcr,
}

/// Options of [`ssim_with`] (which luma, whether to clamp, border crop).
#[doc(alias = "SSIM")]
#[doc(alias = "SsimOptions")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StructuralSimilarityOptions {
    /// The channel SSIM is computed on.
    pub luma: Luma,
    /// Clamp the contrast-structure map at 0 before multiplying by the luminance term
    /// (pyiqa does, BasicSR does not).
    pub clamp_cs: bool,
    /// Pixels removed from every edge before the computation.
    pub crop_border: usize,
}

impl StructuralSimilarityOptions {
    /// pyiqa's default `ssim`: YIQ luma rounded, cs clamped.
    pub const PYIQA: StructuralSimilarityOptions = StructuralSimilarityOptions {
        luma: Luma::YiqRounded,
        clamp_cs: true,
        crop_border: 0,
    };
    /// pyiqa `ssim(test_y_channel=True, color_space='ycbcr')`: YCbCr luma rounded, cs clamped.
    pub const PYIQA_YCBCR: StructuralSimilarityOptions = StructuralSimilarityOptions {
        luma: Luma::YcbcrRounded,
        clamp_cs: true,
        crop_border: 0,
    };
    /// BasicSR `calculate_ssim(test_y_channel=True)`: YCbCr luma unrounded, cs not clamped.
    pub const BASICSR_Y: StructuralSimilarityOptions = StructuralSimilarityOptions {
        luma: Luma::Ycbcr,
        clamp_cs: false,
        crop_border: 0,
    };

    /// The same options with another `crop_border`.
    pub const fn with_crop_border(self, crop_border: usize) -> StructuralSimilarityOptions {
        StructuralSimilarityOptions {
            crop_border,
            ..self
        }
    }
}

/// SSIM as pyiqa's default `ssim` computes it ([`StructuralSimilarityOptions::PYIQA`]): luma of YIQ ×255
/// rounded, 11×11 Gaussian window with σ = 1.5 (MATLAB `fspecial`), 'valid' filtering,
/// C1 = (0.01·255)², C2 = (0.03·255)², contrast-structure map clamped at 0, no downsampling,
/// mean of the SSIM map. `sr`, `gt`: `[3, H, W]`. Higher is better, 1 for identical images.
///
/// # Errors
/// [`MetricError::SizeMismatch`], [`MetricError::NonFinite`], [`MetricError::CropTooLarge`], or
/// [`MetricError::TooSmall`] if the cropped image is smaller than 11×11.
#[doc(alias = "structural similarity")]
pub fn ssim(sr: &MetricImage, gt: &MetricImage, crop_border: usize) -> Result<f64> {
    ssim_with(
        sr,
        gt,
        &StructuralSimilarityOptions::PYIQA.with_crop_border(crop_border),
    )
}

/// SSIM on the Y channel of BT.601 YCbCr as BasicSR's
/// `calculate_ssim(img, img2, crop_border, test_y_channel=True)` computes it
/// ([`StructuralSimilarityOptions::BASICSR_Y`]): Y in `[16, 235]` not rounded, same window and constants as
/// [`ssim`], contrast-structure map not clamped. The SSIM of Real-ISR paper tables.
///
/// pyiqa's `ssim(color_space='ycbcr')` rounds Y and clamps the map
/// ([`StructuralSimilarityOptions::PYIQA_YCBCR`]); on natural images the two differ in the 4th decimal at most.
///
/// # Errors
/// As [`ssim`].
#[doc(alias = "SSIM-Y")]
pub fn ssim_y(sr: &MetricImage, gt: &MetricImage, crop_border: usize) -> Result<f64> {
    ssim_with(
        sr,
        gt,
        &StructuralSimilarityOptions::BASICSR_Y.with_crop_border(crop_border),
    )
}

/// SSIM with explicit options; see [`StructuralSimilarityOptions`].
///
/// # Errors
/// As [`ssim`].
pub fn ssim_with(
    sr: &MetricImage,
    gt: &MetricImage,
    options: &StructuralSimilarityOptions,
) -> Result<f64> {
    check_pair(sr, gt)?;
    let luma = match options.luma {
        Luma::YiqRounded => yiq_y_rounded,
        Luma::YcbcrRounded => ycbcr_y_rounded,
        Luma::Ycbcr => ycbcr_y,
    };
    let a = luma(sr).crop(options.crop_border)?;
    let b = luma(gt).crop(options.crop_border)?;
    ssim_planes(&a, &b, options.clamp_cs)
}

/// SSIM of two equally sized planes with values in `[0, 255]`; see [`ssim`].
///
/// # Errors
/// [`MetricError::SizeMismatch`] if the planes differ in size, [`MetricError::TooSmall`] if
/// they are smaller than the 11×11 window.
pub fn ssim_planes(a: &Plane, b: &Plane, clamp_cs: bool) -> Result<f64> {
    if a.width != b.width || a.height != b.height {
        return Err(MetricError::SizeMismatch {
            width: a.width,
            height: a.height,
            ref_width: b.width,
            ref_height: b.height,
        });
    }
    if a.width < WINDOW || a.height < WINDOW {
        return Err(MetricError::TooSmall {
            metric: "ssim",
            width: a.width,
            height: a.height,
            min_width: WINDOW,
            min_height: WINDOW,
        });
    }
    let c1 = (0.01_f64 * 255.0).powi(2);
    let c2 = (0.03_f64 * 255.0).powi(2);
    let k = gaussian_kernel_1d();
    let prod = |f: fn(f64, f64) -> f64| Plane {
        width: a.width,
        height: a.height,
        data: a.data.iter().zip(&b.data).map(|(&x, &y)| f(x, y)).collect(),
    };
    let mu1 = filter_valid(a, &k);
    let mu2 = filter_valid(b, &k);
    let xx = filter_valid(&prod(|x, _| x * x), &k);
    let yy = filter_valid(&prod(|_, y| y * y), &k);
    let xy = filter_valid(&prod(|x, y| x * y), &k);
    let mut sum = 0.0;
    for i in 0..mu1.data.len() {
        let (m1, m2) = (mu1.data[i], mu2.data[i]);
        let s1 = xx.data[i] - m1 * m1;
        let s2 = yy.data[i] - m2 * m2;
        let s12 = xy.data[i] - m1 * m2;
        let mut cs = (2.0 * s12 + c2) / (s1 + s2 + c2);
        if clamp_cs {
            cs = cs.max(0.0);
        }
        sum += (2.0 * m1 * m2 + c1) / (m1 * m1 + m2 * m2 + c1) * cs;
    }
    Ok(sum / mu1.data.len() as f64)
}

/// The normalised 1-D Gaussian (11 taps, σ = 1.5); its outer product with itself is MATLAB's
/// `fspecial('gaussian', 11, 1.5)` and OpenCV's `getGaussianKernel(11, 1.5)` squared.
pub fn gaussian_kernel_1d() -> [f64; WINDOW] {
    let mut k = [0.0; WINDOW];
    let c = (WINDOW / 2) as f64;
    for (i, v) in k.iter_mut().enumerate() {
        let d = i as f64 - c;
        *v = (-(d * d) / (2.0 * SIGMA * SIGMA)).exp();
    }
    let s: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    k
}

/// Separable 'valid' correlation with the outer product `k kᵀ`: output
/// `[H − 10, W − 10]`.
fn filter_valid(p: &Plane, k: &[f64; WINDOW]) -> Plane {
    let (w, h) = (p.width, p.height);
    let ow = w - WINDOW + 1;
    let oh = h - WINDOW + 1;
    let mut rows = vec![0.0; ow * h];
    for y in 0..h {
        let src = &p.data[y * w..(y + 1) * w];
        let dst = &mut rows[y * ow..(y + 1) * ow];
        for (x, d) in dst.iter_mut().enumerate() {
            *d = src[x..x + WINDOW].iter().zip(k).map(|(a, b)| a * b).sum();
        }
    }
    let mut out = vec![0.0; ow * oh];
    for (t, &kt) in k.iter().enumerate() {
        for y in 0..oh {
            let src = &rows[(y + t) * ow..(y + t + 1) * ow];
            let dst = &mut out[y * ow..(y + 1) * ow];
            for (d, s) in dst.iter_mut().zip(src) {
                *d += kt * s;
            }
        }
    }
    Plane {
        width: ow,
        height: oh,
        data: out,
    }
}
