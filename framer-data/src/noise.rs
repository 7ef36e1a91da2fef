//! Gaussian and Poisson noise as in BasicSR's `random_add_gaussian_noise_pt` /
//! `random_add_poisson_noise_pt` (colour or gray noise, result clipped to `[0, 1]`).

use rand::Rng;
use rand_distr::StandardNormal;

use crate::image::{CHANNELS, Image, quantize_u8};

/// Adds zero-mean Gaussian noise with standard deviation `sigma / 255`, independent per sample
/// (`gray = false`) or shared by the three channels of a pixel (`gray = true`), then clips to
/// `[0, 1]`.
pub fn add_gaussian_noise<R: Rng + ?Sized>(img: &mut Image, sigma: f64, gray: bool, rng: &mut R) {
    let s = (sigma / 255.0) as f32;
    let plane = img.width() * img.height();
    if gray {
        let noise: Vec<f32> = (0..plane)
            .map(|_| rng.sample::<f32, _>(StandardNormal) * s)
            .collect();
        for c in 0..CHANNELS {
            for (v, n) in img.channel_mut(c).iter_mut().zip(&noise) {
                *v = (*v + n).clamp(0.0, 1.0);
            }
        }
    } else {
        for v in img.data_mut() {
            *v = (*v + rng.sample::<f32, _>(StandardNormal) * s).clamp(0.0, 1.0);
        }
    }
}

/// Inverse-CDF sampler of Poisson(λ) for the ≤ 256 distinct rates that occur (λ = level/255 · vals),
/// with a guide table (the cutpoint method) so that a draw costs one uniform and about two
/// comparisons.
struct PoissonTables {
    vals: f64,
    tables: Vec<Option<(Vec<f64>, Vec<u32>)>>,
}

/// Number of guide-table cells per distribution.
const GUIDE: usize = 64;

impl PoissonTables {
    fn new(vals: f64) -> Self {
        Self {
            vals,
            tables: vec![None; 256],
        }
    }

    /// Draws Poisson(λ) with `λ = level / 255 · vals` (one uniform per draw).
    fn sample<R: Rng + ?Sized>(&mut self, level: u8, rng: &mut R) -> f64 {
        let u: f64 = rng.random();
        if level == 0 {
            return 0.0;
        }
        let vals = self.vals;
        let (cdf, guide) = self.tables[level as usize].get_or_insert_with(|| {
            let lambda = f64::from(level) / 255.0 * vals;
            // Truncated where the remaining tail mass is below 1e-14.
            let kmax = (lambda + 12.0 * lambda.sqrt() + 30.0) as usize;
            let mut p = (-lambda).exp();
            let mut acc = 0.0;
            let mut cdf = Vec::with_capacity(kmax + 1);
            for k in 0..=kmax {
                if k > 0 {
                    p *= lambda / k as f64;
                }
                acc += p;
                cdf.push(acc);
            }
            // guide[j] = first k with cdf[k] > j / GUIDE.
            let guide = (0..GUIDE)
                .map(|j| cdf.partition_point(|&c| c <= j as f64 / GUIDE as f64) as u32)
                .collect();
            (cdf, guide)
        });
        let mut k = guide[((u * GUIDE as f64) as usize).min(GUIDE - 1)] as usize;
        while k < cdf.len() && cdf[k] <= u {
            k += 1;
        }
        k as f64
    }
}

/// `2^ceil(log2(n))` for the number `n` of distinct 8-bit levels present.
fn level_count(levels: &[u8]) -> f64 {
    let mut seen = [false; 256];
    for &l in levels {
        seen[l as usize] = true;
    }
    let n = seen.iter().filter(|&&s| s).count().max(1);
    2f64.powi((n as f64).log2().ceil() as i32)
}

/// Adds Poisson (shot) noise scaled by `scale`, as BasicSR: the image is rounded to 8 bits, `vals`
/// is the number of distinct levels rounded up to a power of two, `noise = Poisson(img·vals)/vals - img`,
/// and `img + scale·noise` is clipped to `[0, 1]`. With `gray = true` the noise is computed once on
/// the luma `0.2989 R + 0.587 G + 0.114 B` (torchvision's `rgb_to_grayscale`) and added to all channels.
pub fn add_poisson_noise<R: Rng + ?Sized>(img: &mut Image, scale: f64, gray: bool, rng: &mut R) {
    let plane = img.width() * img.height();
    let s = scale as f32;
    if gray {
        let levels: Vec<u8> = (0..plane)
            .map(|i| {
                let (r, g, b) = (img.channel(0)[i], img.channel(1)[i], img.channel(2)[i]);
                quantize_u8(0.2989 * r + 0.587 * g + 0.114 * b)
            })
            .collect();
        let mut tables = PoissonTables::new(level_count(&levels));
        let vals = tables.vals;
        let noise: Vec<f32> = levels
            .iter()
            .map(|&l| (tables.sample(l, rng) / vals - f64::from(l) / 255.0) as f32 * s)
            .collect();
        for c in 0..CHANNELS {
            for (v, n) in img.channel_mut(c).iter_mut().zip(&noise) {
                *v = (*v + n).clamp(0.0, 1.0);
            }
        }
    } else {
        let levels: Vec<u8> = img.data().iter().map(|&v| quantize_u8(v)).collect();
        let mut tables = PoissonTables::new(level_count(&levels));
        let vals = tables.vals;
        for (v, &l) in img.data_mut().iter_mut().zip(&levels) {
            let n = (tables.sample(l, rng) / vals - f64::from(l) / 255.0) as f32;
            *v = (*v + n * s).clamp(0.0, 1.0);
        }
    }
}
