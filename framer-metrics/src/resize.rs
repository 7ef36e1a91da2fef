//! MATLAB `imresize` (bicubic, optional antialiasing), as ported by BasicSR
//! (`basicsr/utils/matlab_functions.py`). NIQE needs it for its half-scale features.

use crate::color::Plane;

/// Keys' cubic with a = −0.5 (MATLAB's bicubic kernel).
fn cubic(x: f64) -> f64 {
    let ax = x.abs();
    let (ax2, ax3) = (ax * ax, ax * ax * ax);
    if ax <= 1.0 {
        1.5 * ax3 - 2.5 * ax2 + 1.0
    } else if ax <= 2.0 {
        -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    } else {
        0.0
    }
}

/// For each output index: the (0-based, mirrored into range) input indices and their weights.
fn contributions(
    in_len: usize,
    out_len: usize,
    scale: f64,
    antialiasing: bool,
) -> Vec<Vec<(usize, f64)>> {
    let shrink_aa = scale < 1.0 && antialiasing;
    let kernel_width = if shrink_aa { 4.0 / scale } else { 4.0 };
    let taps = kernel_width.ceil() as i64 + 2;
    let n = in_len as i64;
    (1..=out_len)
        .map(|x| {
            // Output x (1-based) maps to input coordinate u (1-based), pixel centres aligned.
            let u = x as f64 / scale + 0.5 * (1.0 - 1.0 / scale);
            let left = (u - kernel_width / 2.0).floor() as i64;
            let raw: Vec<(i64, f64)> = (0..taps)
                .map(|j| {
                    let idx = left + j;
                    let d = u - idx as f64;
                    let w = if shrink_aa {
                        scale * cubic(d * scale)
                    } else {
                        cubic(d)
                    };
                    (idx, w)
                })
                .collect();
            let sum: f64 = raw.iter().map(|(_, w)| w).sum();
            raw.into_iter()
                .map(|(idx, w)| {
                    // 1-based idx -> 0-based, mirrored at the edges (symmetric padding).
                    let mut i = idx - 1;
                    if i < 0 {
                        i = -i - 1;
                    }
                    if i >= n {
                        i = 2 * n - i - 1;
                    }
                    (i.clamp(0, n - 1) as usize, w / sum)
                })
                .collect()
        })
        .collect()
}

/// Resizes a plane by `scale` with MATLAB's `imresize(img, scale, 'bicubic')`
/// (antialiasing on when shrinking if `antialiasing`), output size
/// `ceil(H · scale) × ceil(W · scale)`. Rows are resized first, then columns, as in BasicSR.
///
/// # Panics
/// If `scale` is not finite and positive.
#[doc(alias = "imresize")]
pub fn imresize_bicubic(plane: &Plane, scale: f64, antialiasing: bool) -> Plane {
    assert!(
        scale.is_finite() && scale > 0.0,
        "imresize scale must be positive, got {scale}"
    );
    let (w, h) = (plane.width, plane.height);
    let oh = (h as f64 * scale).ceil() as usize;
    let ow = (w as f64 * scale).ceil() as usize;
    let ch = contributions(h, oh, scale, antialiasing);
    let cw = contributions(w, ow, scale, antialiasing);
    let mut tmp = vec![0.0; oh * w];
    for (oy, taps) in ch.iter().enumerate() {
        let dst = &mut tmp[oy * w..(oy + 1) * w];
        for &(iy, wt) in taps {
            if wt == 0.0 {
                continue;
            }
            for (d, s) in dst.iter_mut().zip(&plane.data[iy * w..(iy + 1) * w]) {
                *d += wt * s;
            }
        }
    }
    let mut out = vec![0.0; oh * ow];
    for y in 0..oh {
        let src = &tmp[y * w..(y + 1) * w];
        for (ox, taps) in cw.iter().enumerate() {
            out[y * ow + ox] = taps.iter().map(|&(ix, wt)| wt * src[ix]).sum();
        }
    }
    Plane {
        width: ow,
        height: oh,
        data: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_scale_of_a_ramp_is_the_ramp_at_the_mapped_coordinate() {
        // The antialiased kernel is symmetric and normalised, so a linear ramp f(i) = i
        // (1-based) is reproduced exactly wherever no mirroring happens: output x maps to
        // u = x / 0.5 + 0.5 · (1 − 1 / 0.5) = 2x − 0.5. The kernel spans ±4 input pixels.
        let w = 40;
        let plane = Plane {
            width: w,
            height: 1,
            data: (1..=w).map(|i| i as f64).collect(),
        };
        let out = imresize_bicubic(&plane, 0.5, true);
        assert_eq!((out.width, out.height), (20, 1));
        for x in 3..=17 {
            let expected = 2.0 * x as f64 - 0.5;
            assert!(
                (out.data[x - 1] - expected).abs() < 1e-12,
                "x={x}: {} vs {expected}",
                out.data[x - 1]
            );
        }
        // Near the edges the symmetric padding bends the ramp; values from the numpy port in
        // `scripts/reference_values.py`: `imresize_half(np.tile(np.arange(1, 41.0), (2, 1)))`.
        for (i, e) in [
            (0, 1.449_218_75),
            (1, 3.488_281_25),
            (18, 37.511_718_75),
            (19, 39.550_781_25),
        ] {
            assert!(
                (out.data[i] - e).abs() < 1e-12,
                "x={i}: {} vs {e}",
                out.data[i]
            );
        }
    }

    #[test]
    fn constant_plane_stays_constant_and_size_is_ceil() {
        let plane = Plane {
            width: 7,
            height: 5,
            data: vec![3.25; 35],
        };
        let out = imresize_bicubic(&plane, 0.5, true);
        assert_eq!((out.width, out.height), (4, 3));
        assert!(
            out.data.iter().all(|v| (v - 3.25).abs() < 1e-12),
            "{:?}",
            out.data
        );
    }

    #[test]
    fn kernel_weights_match_matlab_cubic() {
        // Keys' cubic with a = −0.5 at a few points.
        assert_eq!(cubic(0.0), 1.0);
        assert!((cubic(0.5) - 0.5625).abs() < 1e-15);
        assert!((cubic(1.5) + 0.0625).abs() < 1e-15);
        assert_eq!(cubic(2.0), 0.0);
        assert_eq!(cubic(2.5), 0.0);
    }
}
