//! Colour correction of a super-resolved image against the bicubic-upsampled LR input, as the
//! diffusion-SR codebases do after sampling (StableSR `colorfix.py`, reused by OSEDiff, PiSA-SR
//! and DiT4SR).
//!
//! - [`adain_color_fix`]: per channel, shift and scale the SR image so that its mean and
//!   standard deviation become the reference's (`adaptive_instance_normalization`).
//! - [`wavelet_color_fix`]: replace the low-frequency part of the SR image with the
//!   reference's (`wavelet_reconstruction`): five levels of dilated 3×3 binomial blurs
//!   (dilation 1, 2, 4, 8, 16, replicate padding) split an image into
//!   `high = Σ (image_i − blur_i(image_i))` and `low = blur_4(…blur_0(image))`; the result is
//!   `high(SR) + low(reference)`.
//!
//! Both work on planar RGB [`Image`]s in `[0, 1]` and do not clamp; clamping happens when the
//! image is saved.

use framer_data::Image;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// Which colour correction to apply after super-resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ColorFix {
    /// No correction.
    None,
    /// Per-channel mean/std transfer ([`adain_color_fix`]); DiT4SR's default.
    #[default]
    #[doc(alias = "AdaIN")]
    AdaptiveInstanceNormalization,
    /// Low-frequency transfer ([`wavelet_color_fix`]); StableSR's and OSEDiff's option.
    Wavelet,
}

impl ColorFix {
    /// Parses `none`, `adain` or `wavelet` (case-insensitive).
    ///
    /// # Errors
    /// [`EvalError::InvalidArgument`] listing the accepted names.
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "none" | "off" => Ok(Self::None),
            "adain" => Ok(Self::AdaptiveInstanceNormalization),
            "wavelet" => Ok(Self::Wavelet),
            other => Err(EvalError::InvalidArgument(format!(
                "unknown colour fix `{other}`; expected one of: none, adain, wavelet"
            ))),
        }
    }

    /// Applies the correction to `sr` using `reference` (the LR image upsampled to the SR size).
    ///
    /// # Errors
    /// [`EvalError::SizeMismatch`] if the two images differ in size.
    pub fn apply(self, sr: &Image, reference: &Image) -> Result<Image> {
        match self {
            Self::None => {
                check_same_size(sr, reference)?;
                Ok(sr.clone())
            }
            Self::AdaptiveInstanceNormalization => adain_color_fix(sr, reference),
            Self::Wavelet => wavelet_color_fix(sr, reference),
        }
    }
}

/// Number of wavelet levels of StableSR's `wavelet_decomposition`.
pub const WAVELET_LEVELS: usize = 5;

/// The variance offset of StableSR's `calc_mean_std`.
pub const ADAIN_EPS: f64 = 1e-5;

fn check_same_size(sr: &Image, reference: &Image) -> Result<()> {
    if (sr.width(), sr.height()) != (reference.width(), reference.height()) {
        return Err(EvalError::SizeMismatch {
            what: "colour fix: SR image vs reference (upsampled LR)".into(),
            width: sr.width(),
            height: sr.height(),
            ref_width: reference.width(),
            ref_height: reference.height(),
        });
    }
    Ok(())
}

/// Mean and `√(unbiased variance + eps)` of a plane (StableSR's `calc_mean_std`).
pub fn mean_std(plane: &[f32], eps: f64) -> (f64, f64) {
    let n = plane.len() as f64;
    let mean = plane.iter().map(|&v| v as f64).sum::<f64>() / n;
    let ss = plane
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>();
    let var = if plane.len() > 1 { ss / (n - 1.0) } else { 0.0 };
    (mean, (var + eps).sqrt())
}

/// AdaIN colour fix: per channel, `(sr − μ_sr) / σ_sr · σ_ref + μ_ref`, with
/// `σ = √(unbiased variance + 1e-5)` as StableSR's `adaptive_instance_normalization`.
///
/// # Shapes
/// `sr`, `reference`: `[3, H, W]`, same size. Returns `[3, H, W]`.
///
/// # Errors
/// [`EvalError::SizeMismatch`].
#[doc(alias = "adaptive_instance_normalization")]
pub fn adain_color_fix(sr: &Image, reference: &Image) -> Result<Image> {
    check_same_size(sr, reference)?;
    let mut out = sr.clone();
    for c in 0..3 {
        let (m_s, s_s) = mean_std(sr.channel(c), ADAIN_EPS);
        let (m_r, s_r) = mean_std(reference.channel(c), ADAIN_EPS);
        for v in out.channel_mut(c) {
            *v = (((*v as f64 - m_s) / s_s) * s_r + m_r) as f32;
        }
    }
    Ok(out)
}

/// StableSR's `wavelet_blur`: a 3×3 binomial kernel `[1 2 1]ᵀ[1 2 1] / 16` with the given
/// dilation, replicate padding, on one `width × height` plane.
pub fn dilated_blur(plane: &[f32], width: usize, height: usize, dilation: usize) -> Vec<f32> {
    const K: [f64; 3] = [0.25, 0.5, 0.25];
    let d = dilation as isize;
    let clamp = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    // separable: rows, then columns (the 2-D kernel is the outer product)
    let mut tmp = vec![0f64; width * height];
    for y in 0..height {
        for x in 0..width {
            let mut acc = 0.0;
            for (k, w) in K.iter().enumerate() {
                let xx = clamp(x as isize + (k as isize - 1) * d, width);
                acc += w * plane[y * width + xx] as f64;
            }
            tmp[y * width + x] = acc;
        }
    }
    let mut out = vec![0f32; width * height];
    for y in 0..height {
        for x in 0..width {
            let mut acc = 0.0;
            for (k, w) in K.iter().enumerate() {
                let yy = clamp(y as isize + (k as isize - 1) * d, height);
                acc += w * tmp[yy * width + x];
            }
            out[y * width + x] = acc as f32;
        }
    }
    out
}

/// StableSR's `wavelet_decomposition` of one plane: `(high, low)` with `high + low = plane`
/// (up to f32 rounding). Level `i` blurs with dilation `2^i`.
pub fn wavelet_decomposition(
    plane: &[f32],
    width: usize,
    height: usize,
    levels: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut high = vec![0f32; plane.len()];
    let mut current = plane.to_vec();
    for i in 0..levels {
        let low = dilated_blur(&current, width, height, 1 << i);
        for ((h, c), l) in high.iter_mut().zip(&current).zip(&low) {
            *h += c - l;
        }
        current = low;
    }
    (high, current)
}

/// Wavelet colour fix: `high(sr) + low(reference)` per channel (StableSR's
/// `wavelet_reconstruction`, [`WAVELET_LEVELS`] levels).
///
/// # Shapes
/// `sr`, `reference`: `[3, H, W]`, same size. Returns `[3, H, W]`.
///
/// # Errors
/// [`EvalError::SizeMismatch`].
#[doc(alias = "wavelet_reconstruction")]
pub fn wavelet_color_fix(sr: &Image, reference: &Image) -> Result<Image> {
    check_same_size(sr, reference)?;
    let (w, h) = (sr.width(), sr.height());
    let mut out = sr.clone();
    for c in 0..3 {
        let (high, _) = wavelet_decomposition(sr.channel(c), w, h, WAVELET_LEVELS);
        let (_, low) = wavelet_decomposition(reference.channel(c), w, h, WAVELET_LEVELS);
        for ((o, hi), lo) in out.channel_mut(c).iter_mut().zip(&high).zip(&low) {
            *o = hi + lo;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn textured(w: usize, h: usize, seed: usize) -> Image {
        Image::from_fn(w, h, |c, y, x| {
            let v = ((x * 13 + y * 7 + c * 5 + seed * 11) % 29) as f32 / 29.0;
            0.2 + 0.6 * v
        })
        .unwrap()
    }

    #[test]
    fn adain_output_has_the_reference_mean_and_std() {
        let sr = textured(23, 17, 0);
        // reference: a different texture with different statistics per channel
        let reference = Image::from_fn(23, 17, |c, y, x| {
            0.1 * c as f32 + 0.3 * (((x * 3 + y * 5) % 7) as f32 / 7.0)
        })
        .unwrap();
        let out = adain_color_fix(&sr, &reference).unwrap();
        for c in 0..3 {
            let (m_o, s_o) = mean_std(out.channel(c), 0.0);
            let (m_r, s_r) = mean_std(reference.channel(c), 0.0);
            let (_, s_s) = mean_std(sr.channel(c), 0.0);
            assert!((m_o - m_r).abs() < 1e-6, "mean {m_o} vs {m_r}");
            // closed form with StableSR's eps: σ_out = σ_sr / √(σ_sr² + eps) · √(σ_ref² + eps)
            let expected = s_s / (s_s * s_s + ADAIN_EPS).sqrt() * (s_r * s_r + ADAIN_EPS).sqrt();
            assert!((s_o - expected).abs() < 1e-6, "std {s_o} vs {expected}");
            assert!((s_o - s_r).abs() < 1e-3);
        }
    }

    #[test]
    fn adain_of_an_image_with_itself_is_identity() {
        let img = textured(9, 8, 3);
        let out = adain_color_fix(&img, &img).unwrap();
        let err = img
            .data()
            .iter()
            .zip(out.data())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-6);
    }

    #[test]
    fn blur_matches_a_hand_computed_value_and_keeps_constants() {
        // 5x1 plane 0 0 1 0 0, dilation 1: rows [1 2 1]/4 → 0 .25 .5 .25 0; columns (height 1,
        // replicate) leave it unchanged
        let out = dilated_blur(&[0.0, 0.0, 1.0, 0.0, 0.0], 5, 1, 1);
        assert_eq!(out, vec![0.0, 0.25, 0.5, 0.25, 0.0]);
        // dilation 2 reaches two samples away; replicate padding at the edges
        let out = dilated_blur(&[1.0, 0.0, 0.0, 0.0, 0.0], 5, 1, 2);
        // x=0: .25·p[-2→0] + .5·p[0] + .25·p[2] = .75; x=1: .25·p[-1→0] = .25;
        // x=2: .25·p[0] = .25; x=3, 4 reach only zeros
        assert_eq!(out, vec![0.75, 0.25, 0.25, 0.0, 0.0]);
        let c = dilated_blur(&[0.3; 30], 6, 5, 4);
        assert!(c.iter().all(|&v| (v - 0.3).abs() < 1e-7));
    }

    #[test]
    fn decomposition_sums_back_and_low_is_smooth() {
        let img = textured(40, 33, 1);
        let plane = img.channel(0);
        let (high, low) = wavelet_decomposition(plane, 40, 33, WAVELET_LEVELS);
        let err = plane
            .iter()
            .zip(high.iter().zip(&low))
            .map(|(p, (h, l))| (p - (h + l)).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-5, "high + low differs from the plane by {err}");
        let tv = |p: &[f32]| p.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f32>();
        assert!(tv(&low) < 0.2 * tv(plane));
    }

    #[test]
    fn wavelet_fix_with_itself_is_identity_and_takes_the_reference_colour() {
        let img = textured(31, 26, 2);
        let out = wavelet_color_fix(&img, &img).unwrap();
        let err = img
            .data()
            .iter()
            .zip(out.data())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-5, "{err}");
        // a constant reference: the result's mean moves to the reference constant, since the
        // high band of the SR image has (nearly) zero mean
        let flat = Image::from_fn(31, 26, |c, _, _| [0.1, 0.5, 0.9][c]).unwrap();
        let out = wavelet_color_fix(&img, &flat).unwrap();
        for c in 0..3 {
            let (m, _) = mean_std(out.channel(c), 0.0);
            assert!(
                (m - [0.1, 0.5, 0.9][c]).abs() < 0.02,
                "channel {c}: mean {m}"
            );
        }
    }

    #[test]
    fn mismatched_sizes_are_errors_naming_both_sizes() {
        let a = textured(8, 8, 0);
        let b = textured(8, 9, 0);
        for fix in [
            ColorFix::None,
            ColorFix::AdaptiveInstanceNormalization,
            ColorFix::Wavelet,
        ] {
            let e = fix.apply(&a, &b).unwrap_err().to_string();
            assert!(e.contains("8x8") && e.contains("8x9"), "{e}");
        }
        assert!(ColorFix::parse("AdaIN").is_ok());
        assert!(
            ColorFix::parse("hist")
                .unwrap_err()
                .to_string()
                .contains("wavelet")
        );
    }
}
