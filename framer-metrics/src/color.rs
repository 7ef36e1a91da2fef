//! Luma conversions used by the metrics, and a single-channel plane type.
//!
//! | function | formula (R, G, B in `[0, 1]`) | used by |
//! |---|---|---|
//! | [`yiq_y_rounded`] | `round(255 · (0.299 R + 0.587 G + 0.114 B))`, `f32`, half to even | pyiqa `ssim` (default), NIQE (MATLAB `rgb2gray`) |
//! | [`ycbcr_y`] | `65.481 R + 128.553 G + 24.966 B + 16`, `f64`, not rounded, in `[16, 235]` | BasicSR `calculate_psnr/ssim(test_y_channel=True)` |
//! | [`ycbcr_y_rounded`] | the same, `f32`, rounded half to even | pyiqa `ssim(color_space='ycbcr')` |

use crate::error::Result;
use crate::image::MetricImage;

/// A single-channel image, `f64`, row-major `[H, W]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Plane {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major values, `width * height` of them.
    pub data: Vec<f64>,
}

impl Plane {
    /// The value at column `x`, row `y`.
    #[inline]
    pub fn at(&self, x: usize, y: usize) -> f64 {
        self.data[y * self.width + x]
    }

    /// Removes `border` pixels from every edge (BasicSR/pyiqa `img[c:-c, c:-c]`).
    ///
    /// # Errors
    /// [`MetricError::CropTooLarge`](crate::MetricError::CropTooLarge) if nothing would be left.
    pub fn crop(&self, border: usize) -> Result<Plane> {
        let (width, height, data) =
            crate::image::crop_border(&self.data, self.width, self.height, 1, border)?;
        Ok(Plane {
            width,
            height,
            data,
        })
    }
}

fn map_pixels(img: &MetricImage, f: impl Fn(f32, f32, f32) -> f64) -> Plane {
    let (r, g, b) = (img.channel(0), img.channel(1), img.channel(2));
    let data = r
        .iter()
        .zip(g)
        .zip(b)
        .map(|((&r, &g), &b)| f(r, g, b))
        .collect();
    Plane {
        width: img.width(),
        height: img.height(),
        data,
    }
}

/// Luma of YIQ (= MATLAB `rgb2gray`, Rec. 601 weights), scaled to `[0, 255]` and rounded
/// half to even, evaluated in `f32` as `((0.299 R + 0.587 G) + 0.114 B) · 255` — the
/// convention of pyiqa's default `ssim` and of NIQE's input. Output shape `[H, W]`.
#[doc(alias = "rgb2gray")]
pub fn yiq_y_rounded(img: &MetricImage) -> Plane {
    map_pixels(img, |r, g, b| {
        let y = (r * 0.299_f32 + g * 0.587_f32) + b * 0.114_f32;
        f64::from((y * 255.0_f32).round_ties_even())
    })
}

/// Luma of BT.601 YCbCr (the MATLAB `rgb2ycbcr` Y), in `[16, 235]`, not rounded, `f64`:
/// `65.481 R + 128.553 G + 24.966 B + 16`. BasicSR's `test_y_channel=True`. Output `[H, W]`.
#[doc(alias = "rgb2ycbcr")]
pub fn ycbcr_y(img: &MetricImage) -> Plane {
    map_pixels(img, |r, g, b| {
        65.481 * f64::from(r) + 128.553 * f64::from(g) + 24.966 * f64::from(b) + 16.0
    })
}

/// [`ycbcr_y`] evaluated in `f32` and rounded half to even, as pyiqa does for SSIM with
/// `color_space='ycbcr'`. Output `[H, W]`.
pub fn ycbcr_y_rounded(img: &MetricImage) -> Plane {
    map_pixels(img, |r, g, b| {
        let y = ((r * 65.481_f32 + g * 128.553_f32) + b * 24.966_f32) + 16.0_f32;
        f64::from(y.round_ties_even())
    })
}
