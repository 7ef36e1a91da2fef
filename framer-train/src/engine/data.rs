//! Training pairs: what the engine reads at each step.
//!
//! A [`PairSource`] returns the batch of a given step; the batch must depend only on the step (and
//! the source's seed), so that a resumed run sees exactly the data an uninterrupted run would.

use super::EngineError;
use super::rng::{Stream, step_rng};
use rand::Rng;

/// One batch of HR images and their upsampled LR counterparts, host-side, values in `[-1, 1]`.
///
/// # Shapes
/// `hr` and `lr_upsampled` hold `batch·channels·height·width` values in `[b, c, h, w]` order.
#[derive(Debug, Clone, PartialEq)]
pub struct PairBatch {
    /// The clean HR images (x0).
    pub hr: Vec<f32>,
    /// The LR images resized back to the HR size (the condition).
    pub lr_upsampled: Vec<f32>,
    /// `[batch, channels, height, width]`.
    pub shape: [usize; 4],
    /// The file stem of each row's source photo (for `[prompts]`); empty when the source has no
    /// photos (synthetic textures).
    pub photos: Vec<String>,
}

/// A deterministic supplier of training batches.
pub trait PairSource {
    /// The batch of training step `step`, `batch_size` pairs. Must depend only on `step` (and
    /// the source's own settings and seed).
    fn batch(&self, step: u64, batch_size: usize) -> Result<PairBatch, EngineError>;

    /// The file stems of the source photos the batches draw from (for `[prompts]`); empty (the
    /// default) for sources without photos.
    fn photos(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The same batch at every step (for overfitting checks).
#[derive(Debug, Clone, PartialEq)]
pub struct FixedBatch(pub PairBatch);

impl PairSource for FixedBatch {
    fn batch(&self, _step: u64, batch_size: usize) -> Result<PairBatch, EngineError> {
        if batch_size != self.0.shape[0] {
            return Err(EngineError::Data(format!(
                "the fixed batch holds {} pairs, {batch_size} were asked for",
                self.0.shape[0]
            )));
        }
        Ok(self.0.clone())
    }
}

/// Procedural RGB textures (oriented sinusoids of random frequency, phase and colour, over a
/// smooth gradient) degraded by `scale`× box downsampling and bilinear upsampling.
///
/// Needs no files: the source of tests and of schedules without `[data] hr_dir`. Every image is a
/// function of `(seed, step, index in the batch)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticPairs {
    /// Seed of the textures.
    pub seed: u64,
    /// HR side in pixels (a multiple of `scale`).
    pub size: usize,
    /// Downsampling factor of the LR image.
    pub scale: usize,
}

impl SyntheticPairs {
    fn image(&self, rng: &mut impl Rng) -> Vec<f32> {
        let n = self.size;
        let mut img = vec![0f32; 3 * n * n];
        let waves: Vec<[f32; 7]> = (0..3)
            .map(|_| {
                let angle = rng.random_range(0.0..std::f32::consts::PI);
                let freq = rng.random_range(0.5..(n as f32 / 6.0).max(1.0)) * std::f32::consts::TAU
                    / n as f32;
                [
                    angle.cos() * freq,
                    angle.sin() * freq,
                    rng.random_range(0.0..std::f32::consts::TAU),
                    rng.random_range(-0.4..0.4),
                    rng.random_range(-0.4..0.4),
                    rng.random_range(-0.4..0.4),
                    0.0,
                ]
            })
            .collect();
        let base: [f32; 3] = std::array::from_fn(|_| rng.random_range(-0.3..0.3));
        let grad: [f32; 2] = std::array::from_fn(|_| rng.random_range(-0.3..0.3) / n as f32);
        for y in 0..n {
            for x in 0..n {
                for (c, b) in base.iter().enumerate() {
                    let mut v = b + grad[0] * x as f32 + grad[1] * y as f32;
                    for w in &waves {
                        v += w[3 + c] * (w[0] * x as f32 + w[1] * y as f32 + w[2]).sin();
                    }
                    img[(c * n + y) * n + x] = v.clamp(-1.0, 1.0);
                }
            }
        }
        img
    }

    fn degrade(&self, hr: &[f32]) -> Vec<f32> {
        let (n, s) = (self.size, self.scale);
        let m = n / s;
        let mut lr = vec![0f32; 3 * m * m];
        for c in 0..3 {
            for y in 0..m {
                for x in 0..m {
                    let mut acc = 0.0;
                    for dy in 0..s {
                        for dx in 0..s {
                            acc += hr[(c * n + y * s + dy) * n + x * s + dx];
                        }
                    }
                    lr[(c * m + y) * m + x] = acc / (s * s) as f32;
                }
            }
        }
        // bilinear upsampling with half-pixel centres (align_corners = false)
        let mut up = vec![0f32; 3 * n * n];
        let coord = |i: usize| {
            let p = ((i as f32 + 0.5) / s as f32 - 0.5).clamp(0.0, (m - 1) as f32);
            let i0 = p.floor() as usize;
            (i0, (i0 + 1).min(m - 1), p - i0 as f32)
        };
        for c in 0..3 {
            for y in 0..n {
                let (y0, y1, fy) = coord(y);
                for x in 0..n {
                    let (x0, x1, fx) = coord(x);
                    let at = |yy: usize, xx: usize| lr[(c * m + yy) * m + xx];
                    let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                    let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                    up[(c * n + y) * n + x] = top * (1.0 - fy) + bottom * fy;
                }
            }
        }
        up
    }
}

impl PairSource for SyntheticPairs {
    fn batch(&self, step: u64, batch_size: usize) -> Result<PairBatch, EngineError> {
        if self.scale == 0 || self.size == 0 || !self.size.is_multiple_of(self.scale) {
            return Err(EngineError::Data(format!(
                "synthetic pairs need a size ({}) that is a positive multiple of the scale ({})",
                self.size, self.scale
            )));
        }
        let mut rng = step_rng(self.seed, step, Stream::Data);
        let mut hr = Vec::with_capacity(batch_size * 3 * self.size * self.size);
        let mut lr = Vec::with_capacity(hr.capacity());
        for _ in 0..batch_size {
            let img = self.image(&mut rng);
            lr.extend(self.degrade(&img));
            hr.extend(img);
        }
        Ok(PairBatch {
            hr,
            lr_upsampled: lr,
            shape: [batch_size, 3, self.size, self.size],
            photos: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_batches_depend_only_on_the_step() {
        let src = SyntheticPairs {
            seed: 3,
            size: 16,
            scale: 4,
        };
        let a = src.batch(7, 2).unwrap();
        assert_eq!(a, src.batch(7, 2).unwrap());
        assert_ne!(a.hr, src.batch(8, 2).unwrap().hr);
        assert_eq!(a.shape, [2, 3, 16, 16]);
        assert!(
            a.hr.iter()
                .chain(&a.lr_upsampled)
                .all(|v| (-1.0..=1.0).contains(v))
        );
    }

    #[test]
    fn degradation_of_a_constant_image_is_the_constant() {
        let src = SyntheticPairs {
            seed: 0,
            size: 8,
            scale: 2,
        };
        let hr = vec![0.25f32; 3 * 64];
        assert!(src.degrade(&hr).iter().all(|v| (v - 0.25).abs() < 1e-6));
        // a horizontal ramp survives box-down + bilinear-up exactly away from the borders
        let ramp: Vec<f32> = (0..3 * 64).map(|i| (i % 8) as f32 / 8.0).collect();
        let up = src.degrade(&ramp);
        for x in 1..7 {
            assert!((up[3 * 8 + x] - ramp[3 * 8 + x]).abs() < 1e-6, "x = {x}");
        }
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(
            SyntheticPairs {
                seed: 0,
                size: 10,
                scale: 4
            }
            .batch(0, 1)
            .is_err()
        );
        let fixed = FixedBatch(
            SyntheticPairs {
                seed: 0,
                size: 8,
                scale: 2,
            }
            .batch(0, 2)
            .unwrap(),
        );
        assert!(fixed.batch(5, 3).is_err());
    }
}
