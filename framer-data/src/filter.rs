//! 2-D filtering with reflect padding (BasicSR's `filter2D`) and unsharp masking (`USMSharp`).

use crate::image::{CHANNELS, Image};
use crate::kernels::{Kernel, gaussian_1d};

/// Mirror index without repeating the edge sample (PyTorch `reflect`, OpenCV `BORDER_REFLECT_101`:
/// `…, 2, 1, 0, 1, 2, …, n−2, n−1, n−2, …`), valid for any offset: the signal is extended
/// periodically with period `2 (n - 1)`, so pads longer than the side work too. `n ≤ 1` maps
/// everything to 0.
pub fn reflect_index(i: isize, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    if m < n as isize {
        m as usize
    } else {
        (period - m) as usize
    }
}

/// One plane padded by `pad` on each side with reflect padding; returns `(padded, padded_width)`.
fn pad_plane(src: &[f32], w: usize, h: usize, pad: usize) -> (Vec<f32>, usize) {
    let (pw, ph) = (w + 2 * pad, h + 2 * pad);
    let mut out = vec![0.0f32; pw * ph];
    let cols: Vec<usize> = (0..pw)
        .map(|x| reflect_index(x as isize - pad as isize, w))
        .collect();
    for y in 0..ph {
        let sy = reflect_index(y as isize - pad as isize, h);
        let row = &src[sy * w..sy * w + w];
        let dst = &mut out[y * pw..(y + 1) * pw];
        dst[pad..pad + w].copy_from_slice(row);
        for x in (0..pad).chain(pad + w..pw) {
            dst[x] = row[cols[x]];
        }
    }
    (out, pw)
}

/// Correlates every channel with `kernel` ("same" output size, reflect padding), as BasicSR's
/// `filter2D` / `F.conv2d`. All kernels of this crate are point-symmetric, so correlation and
/// convolution coincide.
///
/// Input and output: `[3, H, W]`.
pub fn filter2d(img: &Image, kernel: &Kernel) -> Image {
    let k = kernel.size();
    if k == 1 {
        let mut out = img.clone();
        let w0 = kernel.weights()[0];
        out.data_mut().iter_mut().for_each(|v| *v *= w0);
        return out;
    }
    let (w, h) = (img.width(), img.height());
    if let Some((taps_x, taps_y)) = kernel.factors() {
        let mut out = img.clone();
        for c in 0..CHANNELS {
            let plane = separable_plane(img.channel(c), w, h, taps_x, taps_y);
            out.channel_mut(c).copy_from_slice(&plane);
        }
        return out;
    }
    let pad = k / 2;
    let mut out = img.clone();
    for c in 0..CHANNELS {
        let (padded, pw) = pad_plane(img.channel(c), w, h, pad);
        let dst = out.channel_mut(c);
        dst.fill(0.0);
        let weights = kernel.weights();
        for y in 0..h {
            let orow = &mut dst[y * w..(y + 1) * w];
            // Four kernel rows per pass over the output row: fewer loads and stores of `orow`.
            let mut ky = 0;
            while ky + 4 <= k {
                let rows: [&[f32]; 4] =
                    std::array::from_fn(|i| &padded[(y + ky + i) * pw..(y + ky + i + 1) * pw]);
                for kx in 0..k {
                    let wv: [f32; 4] = std::array::from_fn(|i| weights[(ky + i) * k + kx]);
                    let (s0, s1, s2, s3) = (
                        &rows[0][kx..kx + w],
                        &rows[1][kx..kx + w],
                        &rows[2][kx..kx + w],
                        &rows[3][kx..kx + w],
                    );
                    for ((((o, a), b), c), d) in orow.iter_mut().zip(s0).zip(s1).zip(s2).zip(s3) {
                        *o += wv[0] * a + wv[1] * b + wv[2] * c + wv[3] * d;
                    }
                }
                ky += 4;
            }
            for ky in ky..k {
                let srow = &padded[(y + ky) * pw..(y + ky + 1) * pw];
                for kx in 0..k {
                    let wv = weights[ky * k + kx];
                    for (o, s) in orow.iter_mut().zip(&srow[kx..kx + w]) {
                        *o += wv * s;
                    }
                }
            }
        }
    }
    out
}

/// Separable filtering of one plane: `taps_x` along rows, then `taps_y` along columns (reflect padding).
fn separable_plane(src: &[f32], w: usize, h: usize, taps_x: &[f32], taps_y: &[f32]) -> Vec<f32> {
    let taps = taps_x;
    let k = taps.len();
    let pad = k / 2;
    let cols: Vec<usize> = (0..w + 2 * pad)
        .map(|x| reflect_index(x as isize - pad as isize, w))
        .collect();
    // Horizontal pass.
    let mut tmp = vec![0.0f32; w * h];
    let mut line = vec![0.0f32; w + 2 * pad];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for (l, &cx) in line.iter_mut().zip(&cols) {
            *l = row[cx];
        }
        let orow = &mut tmp[y * w..(y + 1) * w];
        let mut t = 0;
        while t + 4 <= k {
            let (s0, s1, s2, s3) = (
                &line[t..t + w],
                &line[t + 1..t + 1 + w],
                &line[t + 2..t + 2 + w],
                &line[t + 3..t + 3 + w],
            );
            let (w0, w1, w2, w3) = (taps[t], taps[t + 1], taps[t + 2], taps[t + 3]);
            for ((((o, a), b), c), d) in orow.iter_mut().zip(s0).zip(s1).zip(s2).zip(s3) {
                *o += w0 * a + w1 * b + w2 * c + w3 * d;
            }
            t += 4;
        }
        for t in t..k {
            let tap = taps[t];
            for (o, s) in orow.iter_mut().zip(&line[t..t + w]) {
                *o += tap * s;
            }
        }
    }
    // Vertical pass, four taps per pass over the output row.
    let taps = taps_y;
    let k = taps.len();
    let pad = k / 2;
    let mut out = vec![0.0f32; w * h];
    let src_row = |y: usize, t: usize| {
        let sy = reflect_index(y as isize + t as isize - pad as isize, h);
        &tmp[sy * w..(sy + 1) * w]
    };
    for y in 0..h {
        let orow = &mut out[y * w..(y + 1) * w];
        let mut t = 0;
        while t + 4 <= k {
            let (s0, s1, s2, s3) = (
                src_row(y, t),
                src_row(y, t + 1),
                src_row(y, t + 2),
                src_row(y, t + 3),
            );
            let (w0, w1, w2, w3) = (taps[t], taps[t + 1], taps[t + 2], taps[t + 3]);
            for ((((o, a), b), c), d) in orow.iter_mut().zip(s0).zip(s1).zip(s2).zip(s3) {
                *o += w0 * a + w1 * b + w2 * c + w3 * d;
            }
            t += 4;
        }
        for (t, &tap) in taps.iter().enumerate().skip(t) {
            for (o, s) in orow.iter_mut().zip(src_row(y, t)) {
                *o += tap * s;
            }
        }
    }
    out
}

/// Separable filtering of every channel by the same 1-D `taps` along both axes (odd length).
/// Equivalent to [`filter2d`] with the outer product `taps ⊗ taps`.
pub fn filter_separable(img: &Image, taps: &[f32]) -> Image {
    let (w, h) = (img.width(), img.height());
    let mut out = img.clone();
    for c in 0..CHANNELS {
        let plane = separable_plane(img.channel(c), w, h, taps, taps);
        out.channel_mut(c).copy_from_slice(&plane);
    }
    out
}

/// Unsharp masking exactly as Real-ESRGAN's `USMSharp` (radius 50 → 51 taps, OpenCV default
/// σ = 8, weight 0.5, threshold 10/255):
///
/// `blur = G * I`, `r = I - blur`, `mask = |r|·255 > threshold` (per channel),
/// `soft = G * mask`, `sharp = clip(I + weight·r, 0, 1)`, `out = soft·sharp + (1 - soft)·I`.
///
/// Input and output: `[3, H, W]`.
#[doc(alias = "usm_sharp")]
#[doc(alias = "USMSharp")]
pub fn usm_sharpen(img: &Image) -> Image {
    usm_sharpen_with(img, 50, 0.5, 10.0)
}

/// [`usm_sharpen`] with explicit `radius` (made odd by adding one), `weight` and `threshold`
/// (in 8-bit units).
pub fn usm_sharpen_with(img: &Image, radius: usize, weight: f32, threshold: f32) -> Image {
    let size = if radius.is_multiple_of(2) {
        radius + 1
    } else {
        radius
    };
    let taps = gaussian_1d(size, 0.0);
    let blur = filter_separable(img, &taps);
    let mut mask = img.clone();
    for ((m, &i), &b) in mask.data_mut().iter_mut().zip(img.data()).zip(blur.data()) {
        *m = if (i - b).abs() * 255.0 > threshold {
            1.0
        } else {
            0.0
        };
    }
    let soft = filter_separable(&mask, &taps);
    let mut out = img.clone();
    for (((o, &i), &b), &s) in out
        .data_mut()
        .iter_mut()
        .zip(img.data())
        .zip(blur.data())
        .zip(soft.data())
    {
        let sharp = (i + weight * (i - b)).clamp(0.0, 1.0);
        *o = s * sharp + (1.0 - s) * i;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::reflect_index;

    #[test]
    fn reflect_index_matches_torch_reflect_padding() {
        // torch.nn.functional.pad([0, 1, 2, 3, 4], (2, 2), mode='reflect') = [2, 1, 0, 1, 2, 3, 4, 3, 2]
        let got: Vec<usize> = (-2..7).map(|i| reflect_index(i, 5)).collect();
        assert_eq!(got, vec![2, 1, 0, 1, 2, 3, 4, 3, 2]);
        // Offsets beyond one reflection keep mirroring (period 2(n-1)).
        let got: Vec<usize> = (-6..10).map(|i| reflect_index(i, 3)).collect();
        assert_eq!(got, vec![2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1]);
        assert_eq!(reflect_index(-5, 1), 0);
    }
}
