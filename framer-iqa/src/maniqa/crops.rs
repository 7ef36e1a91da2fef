//! MANIQA's test-time crops: the bilinear upscaling of short images and the uniform grid of
//! 224² crops (pyiqa's `uniform_crop`).

use framer_metrics::MetricImage;

use super::{CROP_SIZE, MEAN, STD};
use crate::weight_file::HostTensor;

/// `⌊√n⌋` and `⌈√n⌉` in integers.
fn isqrt_floor_ceil(n: usize) -> (usize, usize) {
    let mut f = (n as f64).sqrt() as usize;
    while f * f > n {
        f -= 1;
    }
    while (f + 1) * (f + 1) <= n {
        f += 1;
    }
    let c = if f * f == n { f } else { f + 1 };
    (f, c)
}

/// Source indices and weights of PyTorch's bilinear resize (`align_corners=False`) along one
/// axis, with the coordinate map of a given `scale_factor` (`src = (dst + ½)/scale − ½`,
/// clamped at 0), as `F.interpolate(..., scale_factor=s)` does without
/// `recompute_scale_factor`.
fn bilinear_axis(input: usize, dst: usize, inv_scale: f64) -> (usize, usize, f64) {
    let src = (inv_scale * (dst as f64 + 0.5) - 0.5).max(0.0);
    let i0 = (src.floor() as usize).min(input - 1);
    let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
    let l1 = (src - i0 as f64).clamp(0.0, 1.0);
    (i0, i1, l1)
}

/// The crops pyiqa's MANIQA scores, `[n, 3, 224, 224]` with `n = test_sample`, values
/// normalised to `(x − 0.5) / 0.5`.
///
/// As `uniform_crop(x, 224, n)`: if `min(H, W) ≤ 224` the image is first resized bilinearly
/// (`align_corners=False`) with `scale_factor = 225 / min(H, W)` to `⌊H·s⌋ × ⌊W·s⌋`; then
/// crop `k` (row-major on a `⌈√n⌉ × ⌈√n⌉` grid, the first `n` kept) starts at
/// `(i·step_h, j·step_w)` with `step = (side − 224) // ⌊√n⌋`. Any image of at least 1×1
/// pixel works (a small one is enlarged); only the crops' pixels are computed.
pub fn uniform_crops(image: &MetricImage, test_sample: usize) -> HostTensor {
    let (w, h) = (image.width(), image.height());
    let src = image.data();
    let norm =
        |y: usize, x: usize, c: usize| (f64::from(src[(c * h + y) * w + x]) - MEAN[c]) / STD[c];
    let m = h.min(w);
    // (output height, output width, 1 / scale) if resized
    let resize = (m <= CROP_SIZE).then(|| {
        let s = (CROP_SIZE + 1) as f64 / m as f64;
        let oh = (h as f64 * s).floor() as usize;
        let ow = (w as f64 * s).floor() as usize;
        (oh, ow, 1.0 / s)
    });
    let (oh, ow) = resize.map_or((h, w), |(oh, ow, _)| (oh, ow));
    let n = test_sample.max(1);
    let (fl, ce) = isqrt_floor_ceil(n);
    let step_h = oh.saturating_sub(CROP_SIZE) / fl;
    let step_w = ow.saturating_sub(CROP_SIZE) / fl;
    let starts: Vec<(usize, usize)> = (0..ce)
        .flat_map(|i| (0..ce).map(move |j| (i * step_h, j * step_w)))
        .take(n)
        .collect();
    let plane = CROP_SIZE * CROP_SIZE;
    let mut data = vec![0.0f32; n * 3 * plane];
    for (k, &(sh, sw)) in starts.iter().enumerate() {
        // per-axis source indices and weights of the crop's rows and columns
        let axis = |start: usize, input: usize| -> Vec<(usize, usize, f64)> {
            (start..start + CROP_SIZE)
                .map(|d| match resize {
                    Some((_, _, inv)) => bilinear_axis(input, d, inv),
                    None => (d.min(input - 1), d.min(input - 1), 0.0),
                })
                .collect()
        };
        let rows = axis(sh, h);
        let cols = axis(sw, w);
        for c in 0..3 {
            let out = &mut data[(k * 3 + c) * plane..(k * 3 + c + 1) * plane];
            for (y, &(y0, y1, ly)) in rows.iter().enumerate() {
                for (x, &(x0, x1, lx)) in cols.iter().enumerate() {
                    let top = (1.0 - lx) * norm(y0, x0, c) + lx * norm(y0, x1, c);
                    let bottom = (1.0 - lx) * norm(y1, x0, c) + lx * norm(y1, x1, c);
                    out[y * CROP_SIZE + x] = ((1.0 - ly) * top + ly * bottom) as f32;
                }
            }
        }
    }
    HostTensor {
        shape: vec![n, 3, CROP_SIZE, CROP_SIZE],
        data,
    }
}
