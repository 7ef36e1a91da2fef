//! Resizing with the semantics of PyTorch's `F.interpolate(..., align_corners=False)`, which
//! Real-ESRGAN uses for its random resizes: `area` (adaptive average pooling), `bilinear` and
//! `bicubic` (Keys cubic with `a = -0.75`), none of them antialiased.

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::image::{CHANNELS, Image};

/// Interpolation mode of a resize (`F.interpolate`'s `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// Adaptive average pooling: output pixel `i` averages input pixels
    /// `floor(i·in/out) .. ceil((i+1)·in/out)` (a box filter when shrinking, nearest-like when
    /// enlarging).
    Area,
    /// Linear interpolation at `src = (i + 0.5)·ratio - 0.5`, clamped at zero.
    Bilinear,
    /// Keys cubic convolution with `a = -0.75` at `src = (i + 0.5)·ratio - 0.5`, edge samples
    /// replicated.
    Bicubic,
}

impl Interpolation {
    /// The three modes Real-ESRGAN draws from uniformly.
    pub const ALL: [Interpolation; 3] = [
        Interpolation::Area,
        Interpolation::Bilinear,
        Interpolation::Bicubic,
    ];
}

/// Sparse 1-D resampling weights: for each output index, `(first input index, weights)` pairs.
struct Taps {
    entries: Vec<Vec<(usize, f32)>>,
}

fn cubic_weight(t: f64) -> f64 {
    const A: f64 = -0.75;
    let t = t.abs();
    if t <= 1.0 {
        ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0
    } else if t < 2.0 {
        ((A * t - 5.0 * A) * t + 8.0 * A) * t - 4.0 * A
    } else {
        0.0
    }
}

fn taps(n_in: usize, n_out: usize, ratio: f64, mode: Interpolation) -> Taps {
    let mut entries = Vec::with_capacity(n_out);
    for i in 0..n_out {
        let mut e: Vec<(usize, f32)> = Vec::with_capacity(4);
        match mode {
            Interpolation::Area => {
                let start = (i * n_in) / n_out;
                let end = ((i + 1) * n_in).div_ceil(n_out);
                let wgt = 1.0 / (end - start) as f32;
                e.extend((start..end).map(|j| (j, wgt)));
            }
            Interpolation::Bilinear => {
                let src = (ratio * (i as f64 + 0.5) - 0.5).max(0.0);
                let i0 = (src.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                let l = src - i0 as f64;
                let l = if i0 == i1 { 0.0 } else { l };
                e.push((i0, (1.0 - l) as f32));
                if l > 0.0 {
                    e.push((i1, l as f32));
                }
            }
            Interpolation::Bicubic => {
                let src = ratio * (i as f64 + 0.5) - 0.5;
                let f = src.floor();
                let t = src - f;
                for k in -1..=2isize {
                    let j = (f as isize + k).clamp(0, n_in as isize - 1) as usize;
                    let wgt = cubic_weight(t - k as f64) as f32;
                    if let Some(slot) = e.iter_mut().find(|(jj, _)| *jj == j) {
                        slot.1 += wgt;
                    } else {
                        e.push((j, wgt));
                    }
                }
            }
        }
        entries.push(e);
    }
    Taps { entries }
}

fn resize_impl(
    img: &Image,
    out_w: usize,
    out_h: usize,
    ratio_x: f64,
    ratio_y: f64,
    mode: Interpolation,
) -> Result<Image> {
    if out_w == 0 || out_h == 0 {
        return Err(DataError::InvalidImage(format!(
            "resize to {out_w}x{out_h} has a zero side"
        )));
    }
    let (w, h) = (img.width(), img.height());
    let tx = taps(w, out_w, ratio_x, mode);
    let ty = taps(h, out_h, ratio_y, mode);
    let mut data = vec![0.0f32; CHANNELS * out_w * out_h];
    let mut tmp = vec![0.0f32; h * out_w];
    for c in 0..CHANNELS {
        let src = img.channel(c);
        // Horizontal pass: h × out_w.
        for y in 0..h {
            let row = &src[y * w..(y + 1) * w];
            let trow = &mut tmp[y * out_w..(y + 1) * out_w];
            for (o, e) in trow.iter_mut().zip(&tx.entries) {
                *o = e.iter().map(|&(j, wt)| wt * row[j]).sum();
            }
        }
        // Vertical pass: out_h × out_w.
        let dst = &mut data[c * out_w * out_h..(c + 1) * out_w * out_h];
        for (y, e) in ty.entries.iter().enumerate() {
            let orow = &mut dst[y * out_w..(y + 1) * out_w];
            for &(j, wt) in e {
                for (o, s) in orow.iter_mut().zip(&tmp[j * out_w..(j + 1) * out_w]) {
                    *o += wt * s;
                }
            }
        }
    }
    Image::from_chw(out_w, out_h, data)
}

/// Resizes `[3, H, W]` to `[3, out_h, out_w]` (`F.interpolate(size=(out_h, out_w))`).
pub fn resize(img: &Image, out_w: usize, out_h: usize, mode: Interpolation) -> Result<Image> {
    let rx = img.width() as f64 / out_w.max(1) as f64;
    let ry = img.height() as f64 / out_h.max(1) as f64;
    resize_impl(img, out_w, out_h, rx, ry, mode)
}

/// Resizes by a factor as `F.interpolate(scale_factor=factor)`: the output side is
/// `floor(side · factor)` (at least 1), and the bilinear/bicubic sampling positions use
/// `1 / factor` (not the rounded size ratio), as PyTorch does.
pub fn resize_by_factor(img: &Image, factor: f64, mode: Interpolation) -> Result<Image> {
    if !(factor.is_finite() && factor > 0.0) {
        return Err(DataError::InvalidImage(format!(
            "resize factor {factor} is not a positive number"
        )));
    }
    let out_w = ((img.width() as f64 * factor).floor() as usize).max(1);
    let out_h = ((img.height() as f64 * factor).floor() as usize).max(1);
    resize_impl(img, out_w, out_h, 1.0 / factor, 1.0 / factor, mode)
}

/// Bicubic upsampling of a low-resolution image by an integer `scale` (PyTorch bicubic,
/// `a = -0.75`): the SR conditioning input at HR size, `[3, h, w]` → `[3, scale·h, scale·w]`.
#[doc(alias = "sr_bicubic")]
pub fn upsample_bicubic(lr: &Image, scale: usize) -> Result<Image> {
    if scale == 0 {
        return Err(DataError::InvalidImage("upsampling scale is zero".into()));
    }
    resize(
        lr,
        lr.width() * scale,
        lr.height() * scale,
        Interpolation::Bicubic,
    )
}

/// Halves both sides with a 2×2 box average (antialiased ×2 downscale; an odd last row or
/// column is dropped). Used to bring large JPEG photos below their compression artefacts before
/// cropping.
pub fn downscale_half(img: &Image) -> Result<Image> {
    let (w, h) = (img.width() / 2, img.height() / 2);
    if w == 0 || h == 0 {
        return Err(DataError::InvalidImage(format!(
            "cannot halve a {}x{} image",
            img.width(),
            img.height()
        )));
    }
    let src_w = img.width();
    let mut data = vec![0.0f32; CHANNELS * w * h];
    for c in 0..CHANNELS {
        let src = img.channel(c);
        let dst = &mut data[c * w * h..(c + 1) * w * h];
        for y in 0..h {
            for x in 0..w {
                let a = src[2 * y * src_w + 2 * x] + src[2 * y * src_w + 2 * x + 1];
                let b = src[(2 * y + 1) * src_w + 2 * x] + src[(2 * y + 1) * src_w + 2 * x + 1];
                dst[y * w + x] = 0.25 * (a + b);
            }
        }
    }
    Image::from_chw(w, h, data)
}
