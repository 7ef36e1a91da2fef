//! The Real-ESRGAN second-order degradation pipeline.

use rand::Rng;

use crate::config::DegradationConfig;
use crate::error::{DataError, Result};
use crate::filter::{filter2d, usm_sharpen};
use crate::image::Image;
use crate::jpeg::jpeg_roundtrip;
use crate::kernels::{Kernel, random_blur_kernel, random_final_sinc, uniform, weighted_choice};
use crate::noise::{add_gaussian_noise, add_poisson_noise};
use crate::resize::{Interpolation, resize, resize_by_factor};

/// A training pair: the ground truth and its degraded low-resolution version.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    /// Ground truth, `[3, H, W]` (USM-sharpened when [`DegradationConfig::gt_usm`] is set).
    pub hr: Image,
    /// Degraded input, `[3, H / scale, W / scale]`, values multiples of 1/255 in `[0, 1]`.
    pub lr: Image,
}

/// Applies the Real-ESRGAN second-order degradation (Wang et al., ICCV-W 2021) to HR images.
///
/// For an HR image of `H×W` (first cropped to multiples of `scale`), with every random choice
/// drawn from the `rng` passed to [`Degrader::degrade`]:
///
/// 0. `gt = USM(hr)` (unsharp masking; the degradation always starts from it, as Real-ESRGAN).
/// 1. **Stage 1.** Blur with a random kernel (`kernel_list`/`kernel_prob`, or sinc with
///    `sinc_prob`); resize by a factor — up from `[1, resize_range[1]]`, down from
///    `[resize_range[0], 1]` or keep, with `resize_prob` — with area, bilinear or bicubic
///    interpolation (uniformly); Gaussian noise (`gaussian_noise_prob`, σ from `noise_range`) or
///    Poisson noise (`poisson_scale_range`), gray with `gray_noise_prob`; JPEG with quality from
///    `jpeg_range`.
/// 2. **Stage 2.** Blur with a second kernel with probability `second_blur_prob`; resize to
///    `(H/scale · s, W/scale · s)` with `s` drawn as above from `resize_prob2`/`resize_range2`;
///    noise with the `*2` parameters.
/// 3. **Final step**, in random order (½ each): [resize to `H/scale × W/scale` + sinc filter] then
///    JPEG (`jpeg_range2`), or JPEG then [resize + sinc]. The sinc filter is applied with
///    probability `final_sinc_prob`.
/// 4. Clamp to `[0, 1]` and round to 8 bits.
///
/// Determinism: the same configuration, HR image and RNG state give bit-identical pairs.
#[doc(alias = "RealESRGAN")]
#[doc(alias = "second-order degradation")]
#[derive(Clone, Debug)]
pub struct Degrader {
    config: DegradationConfig,
}

/// Draws a resize factor as Real-ESRGAN: up, down or keep with `prob`, then uniform.
fn draw_resize_factor<R: Rng + ?Sized>(rng: &mut R, prob: &[f64; 3], range: [f64; 2]) -> f64 {
    match weighted_choice(rng, prob) {
        0 => uniform(rng, 1.0, range[1]),
        1 => uniform(rng, range[0], 1.0),
        _ => 1.0,
    }
}

fn draw_mode<R: Rng + ?Sized>(rng: &mut R) -> Interpolation {
    Interpolation::ALL[rng.random_range(0..3)]
}

impl Degrader {
    /// Validates `config` and builds the degrader. Errors name the offending key.
    pub fn new(config: DegradationConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The configuration.
    pub fn config(&self) -> &DegradationConfig {
        &self.config
    }

    /// The super-resolution factor.
    pub fn scale(&self) -> usize {
        self.config.scale
    }

    fn add_noise<R: Rng + ?Sized>(
        img: &mut Image,
        rng: &mut R,
        gaussian_prob: f64,
        sigma_range: [f64; 2],
        poisson_range: [f64; 2],
        gray_prob: f64,
    ) {
        if rng.random::<f64>() < gaussian_prob {
            let sigma = uniform(rng, sigma_range[0], sigma_range[1]);
            let gray = rng.random::<f64>() < gray_prob;
            add_gaussian_noise(img, sigma, gray, rng);
        } else {
            let scale = uniform(rng, poisson_range[0], poisson_range[1]);
            let gray = rng.random::<f64>() < gray_prob;
            add_poisson_noise(img, scale, gray, rng);
        }
    }

    /// Degrades `hr` (`[3, H, W]`, at least `scale` pixels per side) into a [`Pair`].
    ///
    /// `H` and `W` are first cropped down to multiples of `scale` (top-left kept), so the LR image
    /// is exactly `[3, H / scale, W / scale]`.
    pub fn degrade<R: Rng + ?Sized>(&self, hr: &Image, rng: &mut R) -> Result<Pair> {
        let cfg = &self.config;
        let s = cfg.scale;
        let (w, h) = (hr.width() / s * s, hr.height() / s * s);
        if w == 0 || h == 0 {
            return Err(DataError::InvalidImage(format!(
                "a {}x{} image is smaller than the scale factor {s}",
                hr.width(),
                hr.height()
            )));
        }
        let hr = if (w, h) == (hr.width(), hr.height()) {
            hr.clone()
        } else {
            hr.crop(0, 0, w, h)?
        };
        let (lr_w, lr_h) = (w / s, h / s);

        // Kernels, drawn up front as `RealESRGANDataset.__getitem__` does.
        let kernel1 = random_blur_kernel(rng, &cfg.blur1());
        let kernel2 = random_blur_kernel(rng, &cfg.blur2());
        let sinc = if rng.random::<f64>() < cfg.final_sinc_prob {
            Some(random_final_sinc(rng))
        } else {
            None
        };

        let gt_usm = usm_sharpen(&hr);

        // ---- stage 1 ----
        let mut out = filter2d(&gt_usm, &kernel1);
        let factor = draw_resize_factor(rng, &cfg.resize_prob, cfg.resize_range);
        let mode = draw_mode(rng);
        if factor != 1.0 {
            out = resize_by_factor(&out, factor, mode)?;
        }
        Self::add_noise(
            &mut out,
            rng,
            cfg.gaussian_noise_prob,
            cfg.noise_range,
            cfg.poisson_scale_range,
            cfg.gray_noise_prob,
        );
        let q = uniform(rng, cfg.jpeg_range[0], cfg.jpeg_range[1]);
        out = jpeg_roundtrip(&out, q)?;

        // ---- stage 2 ----
        if rng.random::<f64>() < cfg.second_blur_prob {
            out = filter2d(&out, &kernel2);
        }
        let factor2 = draw_resize_factor(rng, &cfg.resize_prob2, cfg.resize_range2);
        let mode2 = draw_mode(rng);
        let w2 = ((lr_w as f64 * factor2) as usize).max(1);
        let h2 = ((lr_h as f64 * factor2) as usize).max(1);
        if (w2, h2) != (out.width(), out.height()) {
            out = resize(&out, w2, h2, mode2)?;
        }
        Self::add_noise(
            &mut out,
            rng,
            cfg.gaussian_noise_prob2,
            cfg.noise_range2,
            cfg.poisson_scale_range2,
            cfg.gray_noise_prob2,
        );

        // ---- final: [resize back + sinc] and JPEG in random order ----
        let resize_then_sinc =
            |img: &Image, mode: Interpolation, sinc: &Option<Kernel>| -> Result<Image> {
                let resized = if (img.width(), img.height()) == (lr_w, lr_h) {
                    img.clone()
                } else {
                    resize(img, lr_w, lr_h, mode)?
                };
                Ok(match sinc {
                    Some(k) => filter2d(&resized, k),
                    None => resized,
                })
            };
        if rng.random::<f64>() < 0.5 {
            let mode3 = draw_mode(rng);
            out = resize_then_sinc(&out, mode3, &sinc)?;
            let q2 = uniform(rng, cfg.jpeg_range2[0], cfg.jpeg_range2[1]);
            out = jpeg_roundtrip(&out, q2)?;
        } else {
            let q2 = uniform(rng, cfg.jpeg_range2[0], cfg.jpeg_range2[1]);
            out = jpeg_roundtrip(&out, q2)?;
            let mode3 = draw_mode(rng);
            out = resize_then_sinc(&out, mode3, &sinc)?;
        }
        out.quantize_8bit();

        let hr_out = if cfg.gt_usm { gt_usm } else { hr };
        Ok(Pair {
            hr: hr_out,
            lr: out,
        })
    }
}
