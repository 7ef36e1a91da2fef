//! MUSIQ's preprocessing, pyiqa's `get_multiscale_patches`: the resized scales, the 32² patches
//! with TensorFlow `SAME` padding, hashed spatial positions and scale ids.

use framer_metrics::MetricImage;

use super::{MusiqConfig, OriginalResolution};
use crate::error::{IqaError, Result};

/// The token sequence of one image: what pyiqa's `get_multiscale_patches` returns, split up.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiscalePatches {
    /// Patch side `p`.
    pub patch_size: usize,
    /// `[L, 3, p, p]` row-major: the patches (values in about `[-1, 1]`, zeros for padding).
    pub patches: Vec<f32>,
    /// `[L]`: hashed spatial position, in `0 .. grid²`.
    pub positions: Vec<usize>,
    /// `[L]`: scale id (0 for the smallest resized scale, …, then the original resolution).
    pub scales: Vec<usize>,
    /// `[L]`: false for padding tokens.
    pub mask: Vec<bool>,
}

impl MultiscalePatches {
    /// The number of tokens `L` (without the class token).
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether there is no token.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    fn push_scale(
        &mut self,
        planes: &[f64],
        (h, w): (usize, usize),
        grid: usize,
        scale_id: usize,
        max_len: Option<usize>,
    ) {
        let p = self.patch_size;
        let (ch, cw) = (h.div_ceil(p), w.div_ceil(p));
        let (top, left) = ((ch * p - h) / 2, (cw * p - w) / 2);
        let hash_h = hash_positions(grid, ch);
        let hash_w = hash_positions(grid, cw);
        let count = ch * cw;
        let keep = max_len.map_or(count, |m| m.min(count));
        for idx in 0..keep {
            let (i, j) = (idx / cw, idx % cw);
            for c in 0..3 {
                for ky in 0..p {
                    let y = (i * p + ky) as isize - top as isize;
                    for kx in 0..p {
                        let x = (j * p + kx) as isize - left as isize;
                        let v = if y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w {
                            planes[(c * h + y as usize) * w + x as usize]
                        } else {
                            0.0
                        };
                        self.patches.push(v as f32);
                    }
                }
            }
            self.positions.push(hash_h[i] * grid + hash_w[j]);
            self.scales.push(scale_id);
            self.mask.push(true);
        }
        if let Some(m) = max_len {
            for _ in keep..m {
                self.patches.extend(std::iter::repeat_n(0.0, 3 * p * p));
                self.positions.push(0);
                self.scales.push(0);
                self.mask.push(false);
            }
        }
    }
}

/// PyTorch's `F.interpolate(mode='nearest')` of `0 .. grid` to `n` entries (the scale is a
/// float32, as in PyTorch's kernel).
fn hash_positions(grid: usize, n: usize) -> Vec<usize> {
    if n == grid {
        return (0..n).collect();
    }
    let scale = grid as f32 / n as f32;
    (0..n)
        .map(|i| ((i as f32 * scale).floor() as usize).min(grid - 1))
        .collect()
}

/// Cubic convolution weights of PyTorch's bicubic kernel (`A = −0.75`) for fraction `t`.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Source indices (clamped) and weights of each output position of a 1-D bicubic resize from
/// `n_in` to `n_out` (`align_corners=False`).
fn cubic_taps(n_in: usize, n_out: usize) -> Vec<([usize; 4], [f64; 4])> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let src = scale * (o as f64 + 0.5) - 0.5;
            let f = src.floor();
            let w = cubic_weights(src - f);
            let base = f as isize;
            let idx = std::array::from_fn(|k| {
                (base - 1 + k as isize).clamp(0, n_in as isize - 1) as usize
            });
            (idx, w)
        })
        .collect()
}

/// PyTorch's `F.interpolate(mode='bicubic', align_corners=False)` (no antialiasing) of
/// `[3, h, w]` planes to `[3, oh, ow]`: horizontal taps first, then vertical, as PyTorch does.
fn resize_bicubic(src: &[f64], (h, w): (usize, usize), (oh, ow): (usize, usize)) -> Vec<f64> {
    let tx = cubic_taps(w, ow);
    let ty = cubic_taps(h, oh);
    let mut rows = vec![0.0; 3 * h * ow];
    for c in 0..3 {
        for y in 0..h {
            let line = &src[(c * h + y) * w..(c * h + y + 1) * w];
            let out = &mut rows[(c * h + y) * ow..(c * h + y + 1) * ow];
            for (o, (idx, wt)) in out.iter_mut().zip(&tx) {
                *o = (0..4).map(|k| line[idx[k]] * wt[k]).sum();
            }
        }
    }
    let mut out = vec![0.0; 3 * oh * ow];
    for c in 0..3 {
        for (oy, (idx, wt)) in ty.iter().enumerate() {
            for ox in 0..ow {
                out[(c * oh + oy) * ow + ox] = (0..4)
                    .map(|k| rows[(c * h + idx[k]) * ow + ox] * wt[k])
                    .sum();
            }
        }
    }
    out
}

/// The multi-scale token sequence of `image` (`[3, H, W]` in `[0, 1]`), as pyiqa's
/// `get_multiscale_patches` after `(x − 0.5)·2` (see the module documentation). With the
/// default configuration, `L = 49 + 144 + ceil(H/32)·ceil(W/32)`.
///
/// # Errors
/// [`IqaError::InvalidArgument`] for an inconsistent configuration,
/// [`IqaError::InvalidShape`] naming the size when a resized side would be 0 pixels (a very
/// elongated image).
pub fn multiscale_patches(image: &MetricImage, config: &MusiqConfig) -> Result<MultiscalePatches> {
    config.validate()?;
    let (h, w) = (image.height(), image.width());
    // planar [3, H, W], as the image
    let planes: Vec<f64> = image
        .data()
        .iter()
        .map(|&v| (f64::from(v) - 0.5) * 2.0)
        .collect();
    let p = config.patch_size;
    let grid = config.spatial_pos_grid_size;
    let mut out = MultiscalePatches {
        patch_size: p,
        patches: Vec::new(),
        positions: Vec::new(),
        scales: Vec::new(),
        mask: Vec::new(),
    };
    let mut lengths = config.longer_side_lengths.clone();
    lengths.sort_unstable();
    for (scale_id, &len) in lengths.iter().enumerate() {
        let ratio = len as f64 / h.max(w) as f64;
        let rh = (h as f64 * ratio).round_ties_even() as usize;
        let rw = (w as f64 * ratio).round_ties_even() as usize;
        if rh == 0 || rw == 0 {
            return Err(IqaError::InvalidShape(format!(
                "MUSIQ: a {w}x{h} image (width x height) resized to a longer side of {len} \
                 would be {rw}x{rh} pixels"
            )));
        }
        let resized = resize_bicubic(&planes, (h, w), (rh, rw));
        let max_len = len.div_ceil(p).pow(2);
        out.push_scale(&resized, (rh, rw), grid, scale_id, Some(max_len));
    }
    let original = match config.original_resolution {
        OriginalResolution::Skip => None,
        OriginalResolution::All => Some(None),
        OriginalResolution::Exactly(n) => Some(Some(n)),
    };
    if let Some(max_len) = original {
        out.push_scale(&planes, (h, w), grid, lengths.len(), max_len);
    }
    Ok(out)
}
