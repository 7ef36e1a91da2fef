//! Low/high frequency band masks, computed once per step from the teacher's spectrum and shared by
//! the students and the negatives of the same sample.

use burn::tensor::{Tensor, TensorData, backend::Backend};

use crate::FramerError;

/// How the spectrum is split into a low (LF) and a high (HF) band.
///
/// Serialised with its kind as a tag: `{ kind = "quantile", cutoff = 0.2 }` or
/// `{ kind = "radial", radius = 0.3 }` (TOML).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BandMaskKind {
    /// The reference implementation (`generate_frequency_masks`): per sample, the `cutoff` quantile
    /// (linear interpolation, as `torch.quantile`) of all `C·H·W` teacher magnitudes; coefficients
    /// below it form the low band (`|X| < q`), the rest the high band (`|X| ≥ q`).
    ///
    /// Note that this "low" band is the band of *weak* coefficients, not of low spatial frequencies.
    Quantile {
        /// Quantile in (0, 1); the reference default is 0.2.
        cutoff: f64,
    },
    /// The paper's rings: the low band is every coefficient whose normalised frequency radius is at
    /// most `radius`, identical for every sample and channel.
    ///
    /// The normalised radius of frequency `(u, v)` is `√(f_u² + f_v²) / √(½)` with
    /// `f_u = min(u, H − u) / H ∈ [0, ½]`, so 0 is the DC term and 1 the highest frequency (the
    /// corner of the shifted spectrum).
    Radial {
        /// Radius in (0, 1).
        radius: f64,
    },
}

impl Default for BandMaskKind {
    fn default() -> Self {
        Self::Quantile { cutoff: 0.2 }
    }
}

impl BandMaskKind {
    /// Checks that the cutoff or radius lies in (0, 1).
    pub fn validate(&self) -> Result<(), FramerError> {
        let (name, value) = match *self {
            Self::Quantile { cutoff } => ("cutoff", cutoff),
            Self::Radial { radius } => ("radius", radius),
        };
        if !(value > 0.0 && value < 1.0) {
            return Err(FramerError::CutoffOutOfRange { name, value });
        }
        Ok(())
    }

    /// The low-band mask (1 inside the band, 0 outside) for a teacher magnitude spectrum.
    ///
    /// # Shapes
    /// - `teacher_magnitude`: `[batch, channels, H, W]` (any layout of the last two axes; the
    ///   radial mask assumes the plain `[.., H, W]` layout)
    /// - returns `[batch, channels, H, W]`
    pub fn low_mask<B: Backend>(&self, teacher_magnitude: Tensor<B, 4>) -> Tensor<B, 4> {
        match *self {
            Self::Quantile { cutoff } => quantile_low_mask(teacher_magnitude, cutoff),
            Self::Radial { radius } => {
                let [b, c, h, w] = teacher_magnitude.dims();
                radial_low_mask::<B>(h, w, radius, &teacher_magnitude.device())
                    .reshape([1, 1, h, w])
                    .expand([b, c, h, w])
            }
        }
    }
}

/// The `cutoff` quantile of each row of `values` `[rows, n]`, as `torch.quantile(..., dim=1)` with
/// linear interpolation (the rank is computed in f32 like PyTorch's, and the interpolation uses
/// `torch.lerp`'s two-sided formula). Returns `[rows, 1]`.
pub fn quantile_rows<B: Backend>(values: Tensor<B, 2>, cutoff: f64) -> Tensor<B, 2> {
    let [_, n] = values.dims();
    let rank = cutoff as f32 * (n - 1) as f32;
    let below = rank.floor() as usize;
    let above = (rank.ceil() as usize).min(n - 1);
    let weight = rank - below as f32;
    let sorted = values.sort(1);
    let lo = sorted.clone().narrow(1, below, 1);
    let hi = sorted.narrow(1, above, 1);
    if weight < 0.5 {
        lo.clone() + (hi - lo).mul_scalar(weight)
    } else {
        hi.clone() - (hi - lo).mul_scalar(1.0 - weight)
    }
}

/// The reference's low-band mask: `|X| < q_b` with `q_b` the per-sample `cutoff` quantile over all
/// `C·H·W` magnitudes. `[B, C, H, W]` in and out.
pub fn quantile_low_mask<B: Backend>(teacher_magnitude: Tensor<B, 4>, cutoff: f64) -> Tensor<B, 4> {
    let [b, c, h, w] = teacher_magnitude.dims();
    let flat = teacher_magnitude.reshape([b, c * h * w]);
    let q = quantile_rows(flat.clone(), cutoff);
    flat.lower(q.expand([b, c * h * w])).float().reshape([b, c, h, w])
}

/// The paper's ring mask in the plain layout: 1 where the normalised radius (see
/// [`BandMaskKind::Radial`]) is `≤ radius`. Returns `[H, W]`.
pub fn radial_low_mask<B: Backend>(h: usize, w: usize, radius: f64, device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(radial_low_mask_values(h, w, radius), [h, w]), device)
}

/// [`radial_low_mask`] on the host: `H·W` values, row-major `[H, W]`.
pub fn radial_low_mask_values(h: usize, w: usize, radius: f64) -> Vec<f32> {
    let freq = |k: usize, n: usize| k.min(n - k) as f64 / n as f64;
    let mut mask = vec![0f32; h * w];
    for u in 0..h {
        for v in 0..w {
            let r = (freq(u, h).powi(2) + freq(v, w).powi(2)).sqrt() / 0.5f64.sqrt();
            mask[u * w + v] = if r <= radius { 1.0 } else { 0.0 };
        }
    }
    mask
}

/// The `cutoff` quantile of `values` exactly as [`quantile_rows`] (and `torch.quantile`) computes
/// it, by selection instead of a full sort. `values` is reordered. NaN sorts last, as in PyTorch.
///
/// Returns NaN for an empty slice.
pub fn quantile_by_selection(values: &mut [f32], cutoff: f64) -> f32 {
    let n = values.len();
    if n == 0 {
        return f32::NAN;
    }
    let rank = cutoff as f32 * (n - 1) as f32;
    let below = rank.floor() as usize;
    let above = (rank.ceil() as usize).min(n - 1);
    let weight = rank - below as f32;
    let (_, &mut lo, upper) = values.select_nth_unstable_by(below, f32::total_cmp);
    let hi = if above > below {
        upper.iter().copied().min_by(f32::total_cmp).unwrap_or(lo)
    } else {
        lo
    };
    if weight < 0.5 { lo + (hi - lo) * weight } else { hi - (hi - lo) * (1.0 - weight) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    type B = Flex;

    #[test]
    fn quantile_matches_linear_interpolation_worked_by_hand() {
        let device = Default::default();
        // sorted row: 1 2 3 4 5 → q(0.3): rank 1.2 → 2 + 0.2·1 = 2.2; q(0.9): rank 3.6 → 5 − 0.4 = 4.6
        let v = Tensor::<B, 2>::from_floats([[5.0, 1.0, 4.0, 2.0, 3.0]], &device);
        let q3: f32 = quantile_rows(v.clone(), 0.3).into_scalar();
        let q9: f32 = quantile_rows(v, 0.9).into_scalar();
        assert!((q3 - 2.2).abs() < 1e-6, "{q3}");
        assert!((q9 - 4.6).abs() < 1e-6, "{q9}");
    }

    #[test]
    fn quantile_by_selection_equals_the_sorted_quantile() {
        let device = Default::default();
        let mut seed = 12345u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) * 10.0 - 3.0
        };
        for n in [1usize, 2, 5, 17, 100, 4096] {
            // with ties: values rounded to a coarse grid
            let values: Vec<f32> = (0..n).map(|i| if i % 3 == 0 { (next() * 4.0).round() / 4.0 } else { next() }).collect();
            for cutoff in [0.01, 0.2, 0.5, 0.77, 0.99] {
                let t = Tensor::<B, 2>::from_data(TensorData::new(values.clone(), [1, n]), &device);
                let sorted: f32 = quantile_rows(t, cutoff).into_scalar();
                let selected = quantile_by_selection(&mut values.clone(), cutoff);
                assert_eq!(sorted.to_bits(), selected.to_bits(), "n={n} cutoff={cutoff}");
            }
        }
        assert!(quantile_by_selection(&mut [], 0.5).is_nan());
    }

    #[test]
    fn quantile_mask_selects_the_weakest_fraction_per_sample() {
        let device = Default::default();
        // two samples with different scales: the threshold is per sample
        let a: Vec<f32> = (0..50).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..50).map(|i| 1000.0 + 10.0 * i as f32).collect();
        let t = Tensor::<B, 4>::from_data(TensorData::new([a, b].concat(), [2, 2, 5, 5]), &device);
        let mask: Vec<f32> = quantile_low_mask(t, 0.2).to_data().to_vec().unwrap();
        // q = value at rank 9.8 → 9.8 (resp. 1098): elements 0..=9 are below
        for s in 0..2 {
            let low: usize = mask[s * 50..(s + 1) * 50].iter().map(|&m| m as usize).sum();
            assert_eq!(low, 10);
            assert!(mask[s * 50..s * 50 + 10].iter().all(|&m| m == 1.0));
        }
    }

    #[test]
    fn radial_mask_is_symmetric_and_nested() {
        let device = Default::default();
        let (h, w) = (12, 20);
        let small: Vec<f32> = radial_low_mask::<B>(h, w, 0.2, &device).to_data().to_vec().unwrap();
        let large: Vec<f32> = radial_low_mask::<B>(h, w, 0.5, &device).to_data().to_vec().unwrap();
        assert_eq!(small[0], 1.0, "DC is always low");
        for u in 0..h {
            for v in 0..w {
                let i = u * w + v;
                let mirror = ((h - u) % h) * w + (w - v) % w;
                assert_eq!(small[i], small[mirror], "conjugate-symmetric");
                assert!(small[i] <= large[i], "rings are nested");
            }
        }
        // the highest frequency (u = H/2, v = W/2) has radius 1: never in the low band
        assert_eq!(large[(h / 2) * w + w / 2], 0.0);
        let count: f32 = large.iter().sum();
        assert!(count > 0.0 && count < (h * w) as f32);
    }

    #[test]
    fn cutoffs_outside_the_unit_interval_are_errors() {
        for bad in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
            assert!(BandMaskKind::Quantile { cutoff: bad }.validate().is_err());
            assert!(BandMaskKind::Radial { radius: bad }.validate().is_err());
        }
        assert!(BandMaskKind::default().validate().is_ok());
    }
}
