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
//! Internally FRAMER only needs magnitudes, and works in a *transposed* spectral layout
//! `[.., W, H]` (frequency along the width first) that saves a copy; masks and every reduction of
//! the loss are elementwise or permutation-invariant, so the layout is invisible from outside.

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

/// `[cos | sin]` of `2π·n·k/N` for `n < N`, `k < num_freq`, shape `[N, 2·num_freq]`.
fn cos_sin_matrix(n: usize, num_freq: usize) -> Vec<f32> {
    let mut m = vec![0f32; n * 2 * num_freq];
    for row in 0..n {
        for k in 0..num_freq {
            // reduce k·n mod N first so that the angle stays small and exact
            let angle = 2.0 * PI * ((row * k) % n) as f64 / n as f64;
            m[row * 2 * num_freq + k] = angle.cos() as f32;
            m[row * 2 * num_freq + num_freq + k] = angle.sin() as f32;
        }
    }
    m
}

/// The block matrix that turns the row transform `(A | B)` (cosine and sine parts along the width,
/// laid out as `[part, h]`) into `(Re | Im)` of the full 2-D transform along the height,
/// shape `[2H, 2H]`: `[[C, −S], [−S, −C]]`.
fn column_block_matrix(h: usize) -> Vec<f32> {
    let mut m = vec![0f32; 4 * h * h];
    let cols = 2 * h;
    for row in 0..h {
        for k in 0..h {
            let angle = 2.0 * PI * ((row * k) % h) as f64 / h as f64;
            let (c, s) = (angle.cos() as f32, angle.sin() as f32);
            m[row * cols + k] = c; // A → Re
            m[(h + row) * cols + k] = -s; // B → Re
            m[row * cols + h + k] = -s; // A → Im
            m[(h + row) * cols + h + k] = -c; // B → Im
        }
    }
    m
}

/// The DFT of `x` `[N, H, W]` for the width frequencies `0..num_freq`, returned in the transposed
/// layout `[N, num_freq, 2, H]` where index 0 / 1 of the third axis is the real / imaginary part.
fn transposed_transform<B: Backend>(x: Tensor<B, 3>, num_freq: usize) -> Tensor<B, 4> {
    let [n, h, w] = x.dims();
    let device = x.device();
    let row_matrix = Tensor::<B, 2>::from_data(
        TensorData::new(cos_sin_matrix(w, num_freq), [w, 2 * num_freq]),
        &device,
    );
    let col_matrix =
        Tensor::<B, 2>::from_data(TensorData::new(column_block_matrix(h), [2 * h, 2 * h]), &device);
    // along the width: [N·H, W] @ [W, 2F] → (A | B)
    let rows = x.reshape([n * h, w]).matmul(row_matrix);
    // [N, H, 2, F] → [N, F, 2, H]: each (n, frequency) becomes a row (A(h) | B(h))
    let rows = rows.reshape([n, h, 2, num_freq]).permute([0, 3, 2, 1]);
    // along the height: [N·F, 2H] @ [2H, 2H] → (Re | Im)
    rows.reshape([n * num_freq, 2 * h]).matmul(col_matrix).reshape([n, num_freq, 2, h])
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
    let t = transposed_transform(x.reshape([n, h, w]), w);
    let re = t.clone().narrow(2, 0, 1).reshape([n, w, h]).swap_dims(1, 2).reshape(dims);
    let im = t.narrow(2, 1, 1).reshape([n, w, h]).swap_dims(1, 2).reshape(dims);
    Spectrum { re, im }
}

/// `|DFT(x)|` over the last two dimensions, in the plain layout.
///
/// # Shapes
/// - `x`: `[..., H, W]`
/// - returns `[..., H, W]`
pub fn magnitude_spectrum<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let dims = x.dims();
    let (h, w) = (dims[D - 2], dims[D - 1]);
    let n = dims[..D - 2].iter().product::<usize>();
    magnitude_transposed(x.reshape([n, h, w])).swap_dims(1, 2).reshape(dims)
}

/// `|DFT(x)|` in the transposed layout: `[N, H, W]` in, `[N, W, H]` out (`out[n, v, u] = |X[n, u, v]|`).
///
/// Uses the conjugate symmetry of a real signal's spectrum, `|X[u, v]| = |X[−u, −v]|`: only the
/// width frequencies `0..=W/2` are transformed; the rest are gathered from their mirror images.
pub(crate) fn magnitude_transposed<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [n, h, w] = x.dims();
    let half = w / 2 + 1;
    let device = x.device();
    let t = transposed_transform(x, half);
    let half_mag = safe_sqrt(t.powi_scalar(2).sum_dim(2)).reshape([n, half, h]);
    if half >= w {
        return half_mag;
    }
    // width frequency v ∈ half..W mirrors W − v, height frequency u mirrors (H − u) mod H
    let rows: Vec<i64> = (half..w).map(|v| (w - v) as i64).collect();
    let cols: Vec<i64> = (0..h).map(|u| ((h - u) % h) as i64).collect();
    let rows = Tensor::from_data(TensorData::new(rows, [w - half]), &device);
    let cols = Tensor::from_data(TensorData::new(cols, [h]), &device);
    let mirror = half_mag.clone().select(1, rows).select(2, cols);
    Tensor::cat(vec![half_mag, mirror], 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::Distribution;
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
        let device = Default::default();
        let x = Tensor::<B, 3>::random([n, h, w], Distribution::Normal(0.0, 1.0), &device);
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
        let x0 = Tensor::<B, 3>::random([1, h, w], Distribution::Normal(0.0, 1.0), &device);
        let g = Tensor::<B, 3>::random([1, h, w], Distribution::Uniform(0.0, 1.0), &device);
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
