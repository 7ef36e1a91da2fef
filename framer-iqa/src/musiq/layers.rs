//! The building blocks of the MUSIQ network that need no weights of their own: TensorFlow
//! `SAME` padding and pooling, GroupNorm and LayerNorm, weight standardisation, and the split of
//! independent rows across threads.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::PadMode;

use super::GROUPS;
use super::model::Norm;

/// `rows(first, count)` for consecutive runs of `0 .. total`, one run per thread (at most
/// `threads`) run at the same time, concatenated along the first axis. For work whose rows are
/// independent: the CPU backend runs element-wise operations on the calling thread.
pub(super) fn rows_in_parallel<B, F>(threads: usize, total: usize, rows: F) -> Tensor<B, 2>
where
    B: Backend,
    F: Fn(usize, usize) -> Tensor<B, 2> + Sync,
{
    let parts = threads.clamp(1, total.max(1));
    if parts == 1 {
        return rows(0, total);
    }
    let chunk = total.div_ceil(parts);
    let pieces = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..total)
            .step_by(chunk)
            .map(|first| {
                let rows = &rows;
                scope.spawn(move || rows(first, chunk.min(total - first)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect::<Vec<_>>()
    });
    Tensor::cat(pieces, 0)
}

/// Whether `B` runs on the CPU (`flex`, `ndarray`), where [`Musiq`] splits work across threads
/// itself; a GPU backend gets all the work in one submission.
pub(super) fn cpu_backend<B: Backend>(device: &B::Device) -> bool {
    let name = B::name(device);
    name.starts_with("flex") || name.starts_with("ndarray")
}

/// Threads for work split by [`Musiq`] itself: `RAYON_NUM_THREADS` when set to a positive number
/// (the size of the CPU backend's own thread pool), else the available parallelism.
pub(super) fn worker_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
}

/// TensorFlow `SAME` zero padding for a `kernel`/`stride` window (pyiqa's `exact_padding_2d`):
/// `pad = (ceil(n/s) − 1)·s + k − n`, the smaller half before.
pub(super) fn same_pad<B: Backend>(x: Tensor<B, 4>, kernel: usize, stride: usize) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    let total = |n: usize| ((n.div_ceil(stride) - 1) * stride + kernel).saturating_sub(n);
    let (ph, pw) = (total(h), total(w));
    if ph == 0 && pw == 0 {
        return x;
    }
    x.pad(
        (pw / 2, pw - pw / 2, ph / 2, ph - ph / 2),
        PadMode::Constant(0.0),
    )
}

/// pyiqa's 3 × 3 stride-2 max pool after TensorFlow `SAME` zero padding, for `x ≥ 0` (the stem's
/// ReLU output) `[N, C, H, W]` -> `[N, C, ceil(H/2), ceil(W/2)]`.
///
/// When the padding is all after the image (even sides), the windows that reach into it are
/// cut short instead (`ceil_mode`): with `x ≥ 0` the zero padding never wins the maximum, so the
/// result is the same without building the padded copy.
pub(super) fn max_pool_same<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    let (k, s) = (3, 2);
    let after_only = |n: usize| {
        let total = ((n.div_ceil(s) - 1) * s + k).saturating_sub(n);
        n >= k && total / 2 == 0 && (n - k).div_ceil(s) + 1 == n.div_ceil(s)
    };
    if after_only(h) && after_only(w) {
        max_pool2d(x, [k, k], [s, s], [0, 0], [1, 1], true)
    } else {
        max_pool2d(same_pad(x, k, s), [k, k], [s, s], [0, 0], [1, 1], false)
    }
}

/// `[N, C, H, W]` -> `[N, H·W·C]`: each image flattened in `(h, w, c)` order.
///
/// One `[C, H·W]` transpose per image, then one concatenation: the backend copies a permuted
/// 2-D view tile by tile, where a permuted `[N, C, H, W]` view is copied element by element.
pub(super) fn channels_last_rows<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let [n, c, h, w] = x.dims();
    let x = x.reshape([n, c, h * w]);
    let rows = (0..n)
        .map(|i| {
            x.clone()
                .narrow(0, i, 1)
                .reshape([c, h * w])
                .transpose()
                .reshape([1, h * w * c])
        })
        .collect();
    Tensor::cat(rows, 0)
}

/// GroupNorm with [`GROUPS`] groups over `[N, C, H, W]` (biased variance).
pub(super) fn group_norm<B: Backend>(x: Tensor<B, 4>, norm: &Norm<B>, eps: f64) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let g = x.reshape([n, GROUPS, (c / GROUPS) * h * w]);
    let mean = g.clone().mean_dim(2);
    let centered = g.sub(mean);
    let var = centered.clone().powi_scalar(2).mean_dim(2);
    let x = centered
        .div(var.add_scalar(eps).sqrt())
        .reshape([n * c, h * w]);
    // The scale and shift as one value per row of `[N·C, H·W]` (a `[N·C, 1]` column): the
    // backend's per-row broadcast is a contiguous sweep, where a `[1, C, 1, 1]` broadcast over
    // `[N, C, H, W]` is an element-by-element strided walk.
    let per_row = |v: &Tensor<B, 1>| {
        v.clone()
            .reshape([1, c])
            .repeat_dim(0, n)
            .reshape([n * c, 1])
    };
    x.mul(per_row(&norm.weight))
        .add(per_row(&norm.bias))
        .reshape([n, c, h, w])
}

/// LayerNorm over the last axis of `[n, D]` (biased variance).
pub(super) fn layer_norm<B: Backend>(x: Tensor<B, 2>, norm: &Norm<B>, eps: f64) -> Tensor<B, 2> {
    let d = x.dims()[1];
    let mean = x.clone().mean_dim(1);
    let centered = x.sub(mean);
    let var = centered.clone().powi_scalar(2).mean_dim(1);
    centered
        .div(var.add_scalar(eps).sqrt())
        .mul(norm.weight.clone().reshape([1, d]))
        .add(norm.bias.clone().reshape([1, d]))
}

/// `StdConv`'s weight standardisation of `[out, in, kh, kw]` weights: per output channel,
/// `(w − mean) / (std + 1e-5)` with the unbiased standard deviation, computed in f64.
pub(super) fn standardize(w: &[f32], out: usize) -> Vec<f32> {
    let per = w.len() / out;
    let mut res = Vec::with_capacity(w.len());
    for chunk in w.chunks(per) {
        let mean = chunk.iter().map(|&v| f64::from(v)).sum::<f64>() / per as f64;
        let var = chunk
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / (per as f64 - 1.0).max(1.0);
        let denom = var.sqrt() + 1e-5;
        res.extend(
            chunk
                .iter()
                .map(|&v| ((f64::from(v) - mean) / denom) as f32),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;

    use super::*;

    #[test]
    fn flex_counts_as_a_cpu_backend() {
        assert!(cpu_backend::<Flex>(&Default::default()));
    }
}
