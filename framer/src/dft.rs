//! A differentiable two-dimensional discrete Fourier transform for any height and width.
//!
//! burn 0.21 has no complex tensors and its `rfft` is one-dimensional, power-of-two only and not
//! differentiable, so framer computes the DFT as two real matrix products with precomputed
//! cosine/sine matrices. This works on every backend, for every size, and autodiff differentiates
//! it for free.
//!
//! The transform is unnormalised (`norm = "backward"`, as `torch.fft.fft2`):
//! `X[u, v] = Σ_h Σ_w x[h, w] · exp(−2πi (u·h/H + v·w/W))`.
//!
//! FRAMER only needs magnitudes: [`magnitude_spectrum`] transforms half of the width frequencies
//! and mirrors the rest (conjugate symmetry of a real signal's spectrum).

use std::f64::consts::PI;

use burn::tensor::{Tensor, TensorData, backend::Backend};

/// The real and imaginary parts of a spectrum, each `[..., H, W]` in the plain (unshifted) layout.
#[derive(Debug, Clone)]
pub struct Spectrum<B: Backend, const D: usize> {
    /// Real part, `[..., H, W]`.
    pub re: Tensor<B, D>,
    /// Imaginary part, `[..., H, W]`.
    pub im: Tensor<B, D>,
}

impl<B: Backend, const D: usize> Spectrum<B, D> {
    /// `|X|`, `[..., H, W]`.
    pub fn magnitude(self) -> Tensor<B, D> {
        safe_sqrt(self.re.powi_scalar(2) + self.im.powi_scalar(2))
    }
}

/// `√p` with a zero gradient where `p` is (numerically) zero, as PyTorch's `abs` of a complex zero.
fn safe_sqrt<B: Backend, const D: usize>(p: Tensor<B, D>) -> Tensor<B, D> {
    p.clamp_min(1e-30).sqrt()
}

/// A `[rows, cols]` matrix with entries `f(row, col)`, computed in f64 and stored as f32.
fn matrix<B: Backend>(
    rows: usize,
    cols: usize,
    f: impl Fn(usize, usize) -> f64,
    device: &B::Device,
) -> Tensor<B, 2> {
    let values: Vec<f32> = (0..rows * cols).map(|i| f(i / cols, i % cols) as f32).collect();
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

/// `2π·(a·b mod n)/n`: reducing `a·b` first keeps the angle small and exact.
fn angle(a: usize, b: usize, n: usize) -> f64 {
    2.0 * PI * ((a * b) % n) as f64 / n as f64
}

/// The DFT of `x` `[N, H, W]` for the width frequencies `0..num_freq`: real and imaginary parts,
/// each `[N, H, num_freq]`, in the plain layout.
///
/// Along the width: `A = x·C_W`, `B = x·S_W` (one matmul each). Along the height, with `[A; B]`
/// stacked: `Re = [C_H, −S_H]·[A; B]` and `Im = [−S_H, −C_H]·[A; B]` (one batched matmul each).
fn transform<B: Backend>(x: Tensor<B, 3>, num_freq: usize) -> (Tensor<B, 3>, Tensor<B, 3>) {
    let [n, h, w] = x.dims();
    let device = x.device();
    let cos_w = matrix::<B>(w, num_freq, |r, k| angle(r, k, w).cos(), &device);
    let sin_w = matrix::<B>(w, num_freq, |r, k| angle(r, k, w).sin(), &device);
    let re_h = matrix::<B>(
        h,
        2 * h,
        |u, j| if j < h { angle(u, j, h).cos() } else { -angle(u, j - h, h).sin() },
        &device,
    );
    let im_h = matrix::<B>(
        h,
        2 * h,
        |u, j| if j < h { -angle(u, j, h).sin() } else { -angle(u, j - h, h).cos() },
        &device,
    );
    let rows = x.reshape([n * h, w]);
    let a = rows.clone().matmul(cos_w).reshape([n, h, num_freq]);
    let b = rows.matmul(sin_w).reshape([n, h, num_freq]);
    let stacked = Tensor::cat(vec![a, b], 1); // [N, 2H, F]
    (re_h.unsqueeze::<3>().matmul(stacked.clone()), im_h.unsqueeze::<3>().matmul(stacked))
}

/// The full two-dimensional DFT over the last two dimensions.
///
/// # Shapes
/// - `x`: `[..., H, W]` (at least 2 dimensions), any `H, W ≥ 1`
/// - returns real and imaginary parts, each `[..., H, W]`
pub fn dft2<B: Backend, const D: usize>(x: Tensor<B, D>) -> Spectrum<B, D> {
    let dims = x.dims();
    let (h, w) = (dims[D - 2], dims[D - 1]);
    let n = dims[..D - 2].iter().product::<usize>();
    let (re, im) = transform(x.reshape([n, h, w]), w);
    Spectrum { re: re.reshape(dims), im: im.reshape(dims) }
}

/// `|DFT(x)|` over the last two dimensions, in the plain (unshifted) layout.
///
/// Uses the conjugate symmetry of a real signal's spectrum, `|X[u, v]| = |X[−u, −v]|`: only the
/// width frequencies `0..=W/2` are transformed; the rest are gathered from their mirror images.
///
/// # Shapes
/// - `x`: `[..., H, W]`
/// - returns `[..., H, W]`
pub fn magnitude_spectrum<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let dims = x.dims();
    let (h, w) = (dims[D - 2], dims[D - 1]);
    let n = dims[..D - 2].iter().product::<usize>();
    mirror_full(half_magnitude(x.reshape([n, h, w])), w).reshape(dims)
}

/// The number of width frequencies a real signal of width `w` needs: `0..=W/2`.
pub fn half_width(w: usize) -> usize {
    (w / 2 + 1).min(w)
}

/// How many coefficients of the full spectrum each width frequency of the half spectrum stands
/// for: 1 for `v = 0` and (for even `W`) `v = W/2`, 2 for the others. `Σ_full f = Σ_half c·f` for
/// every `f` with `f[u, v] = f[−u, −v]`. Length [`half_width`]`(w)`.
pub fn half_multiplicity(w: usize) -> Vec<f32> {
    (0..half_width(w))
        .map(|v| if v == 0 || 2 * v == w { 1.0 } else { 2.0 })
        .collect()
}

/// `|DFT(x)|` for the width frequencies `0..=W/2`: `[N, H, W]` in, `[N, H, W/2 + 1]` out.
pub fn half_magnitude<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [_, _, w] = x.dims();
    let (re, im) = transform(x, half_width(w));
    safe_sqrt(re.clone() * re + im.clone() * im)
}

/// The full magnitude spectrum `[N, H, W]` from its half `[N, H, W/2 + 1]`
/// ([`half_magnitude`]): width frequency `v > W/2` mirrors `W − v`, height `u` mirrors `−u`.
pub fn mirror_full<B: Backend>(half: Tensor<B, 3>, w: usize) -> Tensor<B, 3> {
    let [_, h, f] = half.dims();
    if f >= w {
        return half;
    }
    let device = half.device();
    let rows: Vec<i64> = (0..h).map(|u| ((h - u) % h) as i64).collect();
    let cols: Vec<i64> = (f..w).map(|v| (w - v) as i64).collect();
    let rows = Tensor::from_data(TensorData::new(rows, [h]), &device);
    let cols = Tensor::from_data(TensorData::new(cols, [w - f]), &device);
    let mirror = half.clone().select(2, cols).select(1, rows);
    Tensor::cat(vec![half, mirror], 2)
}

/// Whether a mask `[..., H, W]` satisfies `m[u, v] = m[−u, −v]` (as every mask computed from a
/// real signal's magnitude spectrum does). Reads the mask back to the host.
pub fn is_conjugate_symmetric<B: Backend, const D: usize>(mask: &Tensor<B, D>) -> bool {
    let dims = mask.dims();
    let (h, w) = (dims[D - 2], dims[D - 1]);
    match mask.to_data().convert::<f32>().to_vec::<f32>() {
        Ok(values) => is_conjugate_symmetric_values(&values, h, w),
        Err(_) => false,
    }
}

/// [`is_conjugate_symmetric`] on host values: `values` holds whole `[H, W]` planes, row-major.
pub fn is_conjugate_symmetric_values(values: &[f32], h: usize, w: usize) -> bool {
    values.chunks(h * w).all(|plane| {
        (0..h).all(|u| {
            (0..w).all(|v| plane[u * w + v] == plane[((h - u) % h) * w + (w - v) % w])
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use rustfft::{FftPlanner, num_complex::Complex};

    type B = Flex;

    /// 2-D FFT with rustfft in f64, row-major `[H, W]`.
    fn rustfft2(x: &[f32], h: usize, w: usize) -> Vec<Complex<f64>> {
        let mut planner = FftPlanner::<f64>::new();
        let mut data: Vec<Complex<f64>> = x.iter().map(|&v| Complex::new(v as f64, 0.0)).collect();
        let row_fft = planner.plan_fft_forward(w);
        for row in data.chunks_mut(w) {
            row_fft.process(row);
        }
        let col_fft = planner.plan_fft_forward(h);
        let mut col = vec![Complex::new(0.0, 0.0); h];
        for c in 0..w {
            for r in 0..h {
                col[r] = data[r * w + c];
            }
            col_fft.process(&mut col);
            for r in 0..h {
                data[r * w + c] = col[r];
            }
        }
        data
    }

    fn check_against_rustfft(n: usize, h: usize, w: usize) {
        let x = crate::testing::normal::<B, 3>(&mut crate::testing::rng(n as u64 * 1000 + h as u64 * 100 + w as u64), [n, h, w], 0.0);
        let xs: Vec<f32> = x.to_data().to_vec().unwrap();
        let spec = dft2(x.clone());
        let re: Vec<f32> = spec.re.to_data().to_vec().unwrap();
        let im: Vec<f32> = spec.im.to_data().to_vec().unwrap();
        let mag: Vec<f32> = magnitude_spectrum(x).to_data().to_vec().unwrap();
        // f32 products of length H·W: relative error ~1e-6 of the spectrum's scale (√(HW))
        let tol = 2e-6 * ((h * w) as f64).sqrt() * 4.0;
        let mut max_err = 0f64;
        for b in 0..n {
            let reference = rustfft2(&xs[b * h * w..(b + 1) * h * w], h, w);
            for (i, z) in reference.iter().enumerate() {
                let k = b * h * w + i;
                max_err = max_err
                    .max((re[k] as f64 - z.re).abs())
                    .max((im[k] as f64 - z.im).abs())
                    .max((mag[k] as f64 - z.norm()).abs());
            }
        }
        assert!(max_err < tol, "{h}x{w}: max error {max_err:e} ≥ {tol:e}");
    }

    #[test]
    fn dft_matches_rustfft_on_odd_and_even_sizes() {
        for (h, w) in [(7, 9), (12, 20), (16, 16), (1, 5), (5, 1), (2, 3), (33, 8)] {
            check_against_rustfft(3, h, w);
        }
    }

    #[test]
    fn dft_gradient_matches_finite_differences() {
        // L = Σ |X| · G for a fixed random G: compare autodiff with central differences in f64-ish
        type A = Autodiff<B>;
        let device = Default::default();
        let (h, w) = (5, 6);
        let mut rng = crate::testing::rng(11);
        let x0 = crate::testing::normal::<B, 3>(&mut rng, [1, h, w], 0.0);
        let g = crate::testing::uniform::<B, 3>(&mut rng, [1, h, w]);
        let loss = |x: Tensor<A, 3>| {
            (magnitude_spectrum(x) * Tensor::<A, 3>::from_inner(g.clone())).sum()
        };
        let x = Tensor::<A, 3>::from_inner(x0.clone()).require_grad();
        let grads = loss(x.clone()).backward();
        let analytic: Vec<f32> = x.grad(&grads).unwrap().to_data().to_vec().unwrap();
        let base: Vec<f32> = x0.to_data().to_vec().unwrap();
        let eps = 1e-2f32;
        for i in [0, 7, 13, 29] {
            let eval = |delta: f32| {
                let mut v = base.clone();
                v[i] += delta;
                let t = Tensor::<A, 3>::from_data(TensorData::new(v, [1, h, w]), &device);
                loss(t).into_scalar() as f64
            };
            let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps as f64);
            let err = (numeric - analytic[i] as f64).abs();
            assert!(err < 2e-2 * (1.0 + numeric.abs()), "grad[{i}]: {numeric} vs {}", analytic[i]);
        }
    }
}
