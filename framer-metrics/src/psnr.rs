//! Peak signal-to-noise ratio.

use crate::color::{Plane, ycbcr_y};
use crate::error::{MetricError, Result};
use crate::image::{MetricImage, check_pair};

/// PSNR on RGB in `[0, 1]` (pyiqa's default `psnr`): `10 · log10(1 / MSE)`, the MSE taken
/// over all three channels of the pixels left after removing `crop_border` pixels from every
/// edge. Identical images give `f64::INFINITY` (pyiqa adds `1e-8` to the MSE and would give
/// 80 dB; the difference is below 1e-5 dB for any MSE above 1e-6).
///
/// `sr` and `gt` are `[3, H, W]`; higher is better.
///
/// # Errors
/// [`MetricError::SizeMismatch`] if the sizes differ, [`MetricError::NonFinite`] for a NaN or
/// infinite sample, [`MetricError::CropTooLarge`] if the crop leaves nothing.
#[doc(alias = "peak signal-to-noise ratio")]
pub fn psnr(sr: &MetricImage, gt: &MetricImage, crop_border: usize) -> Result<f64> {
    check_pair(sr, gt)?;
    let (w, h) = (sr.width(), sr.height());
    check_crop(w, h, crop_border)?;
    // pixel by pixel, R G B, as pyiqa sums: the interleaved layout keeps that order
    let (sr_hwc, gt_hwc) = (sr.to_hwc(), gt.to_hwc());
    let mut sum = 0.0_f64;
    for y in crop_border..h - crop_border {
        let row = (y * w + crop_border) * 3..(y * w + w - crop_border) * 3;
        for (a, b) in sr_hwc[row.clone()].iter().zip(&gt_hwc[row]) {
            let d = f64::from(*a) - f64::from(*b);
            sum += d * d;
        }
    }
    let n = (w - 2 * crop_border) * (h - 2 * crop_border) * 3;
    Ok(psnr_from_mse(sum / n as f64, 1.0))
}

/// PSNR on the Y channel of BT.601 YCbCr, as BasicSR's
/// `calculate_psnr(img, img2, crop_border, test_y_channel=True)` and pyiqa's
/// `psnr(test_y_channel=True, color_space='ycbcr')` compute it: Y = `65.481 R + 128.553 G +
/// 24.966 B + 16` (not rounded), `10 · log10(255² / MSE)`. This is the PSNR of Real-ISR
/// papers, with `crop_border` = the scale factor in classic SR evaluation (0 for
/// StableSR-style 512² crops). Identical images give `f64::INFINITY`.
///
/// # Errors
/// As [`psnr`].
#[doc(alias = "PSNR-Y")]
pub fn psnr_y(sr: &MetricImage, gt: &MetricImage, crop_border: usize) -> Result<f64> {
    check_pair(sr, gt)?;
    let a = ycbcr_y(sr).crop(crop_border)?;
    let b = ycbcr_y(gt).crop(crop_border)?;
    Ok(psnr_planes(&a, &b, 255.0))
}

/// PSNR between two equally sized planes with peak value `data_range`.
pub(crate) fn psnr_planes(a: &Plane, b: &Plane, data_range: f64) -> f64 {
    let sum: f64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    psnr_from_mse(sum / a.data.len() as f64, data_range)
}

fn psnr_from_mse(mse: f64, data_range: f64) -> f64 {
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (data_range * data_range / mse).log10()
    }
}

pub(crate) fn check_crop(width: usize, height: usize, crop_border: usize) -> Result<()> {
    if 2 * crop_border >= width || 2 * crop_border >= height {
        return Err(MetricError::CropTooLarge {
            crop_border,
            width,
            height,
        });
    }
    Ok(())
}
