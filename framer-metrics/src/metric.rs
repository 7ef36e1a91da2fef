//! The metric registry: names, directions and availability.

use std::fmt;
use std::str::FromStr;

use crate::error::{MetricError, Result};
use crate::image::MetricImage;

/// Whether a metric compares with a reference image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// Needs the ground truth (PSNR, SSIM, LPIPS).
    FullReference,
    /// Scores the image alone (NIQE, MUSIQ, MANIQA).
    NoReference,
}

/// A metric known to the project. The network-based ones are listed so that tables and
/// configuration can name them, but are [unavailable](Metric::availability) in this crate:
/// LPIPS, MUSIQ and MANIQA are computed by the `framer-iqa` crate from weight files the user
/// supplies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Metric {
    /// PSNR on RGB in `[0, 1]` (pyiqa `psnr`); see [`crate::psnr()`].
    Psnr,
    /// PSNR on BT.601 YCbCr Y (BasicSR, Real-ISR papers); see [`crate::psnr_y()`].
    PsnrY,
    /// SSIM on rounded YIQ Y (pyiqa `ssim`); see [`crate::ssim()`].
    Ssim,
    /// SSIM on BT.601 YCbCr Y (BasicSR, Real-ISR papers); see [`crate::ssim_y()`].
    SsimY,
    /// NIQE with the MATLAB parameters; see [`crate::niqe()`].
    Niqe,
    /// Learned Perceptual Image Patch Similarity (needs user-supplied weights; computed by
    /// `framer_iqa::lpips`, not by this crate).
    #[doc(alias = "learned perceptual image patch similarity")]
    Lpips,
    /// Multi-scale Image Quality Transformer (computed from a user-supplied pyiqa checkpoint).
    #[doc(alias = "multi-scale image quality transformer")]
    Musiq,
    /// Multi-dimension Attention Network for no-reference IQA (computed from a user-supplied
    /// pyiqa checkpoint).
    #[doc(alias = "multi-dimension attention network")]
    Maniqa,
}

/// Whether a metric can be computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Computable offline with this crate.
    Available,
    /// Not computable; the text says why.
    Unavailable(&'static str),
}

/// Why LPIPS is not computed here.
const LPIPS_NEEDS_WEIGHTS: &str = "it needs pretrained network weights (torchvision's AlexNet and the lpips \
     package's linear layers) that no PyPI, crates.io or Debian package ships offline (pyiqa and \
     torchvision download them at run time); it is computed when you supply the weight files: \
     `framer eval --lpips-weights DIR` (see framer-iqa's README)";

/// Why MUSIQ and MANIQA are not computed here.
const TRANSFORMER_NEEDS_WEIGHTS: &str = "they need pretrained transformer weights that no PyPI, crates.io or \
     Debian package ships offline (pyiqa downloads them at run time); they are computed when you \
     supply pyiqa's checkpoint files: `framer eval --musiq-weights FILE --maniqa-weights FILE` \
     (see framer-iqa's README)";

impl Metric {
    /// Every metric, available ones first.
    pub const ALL: [Metric; 8] = [
        Metric::Psnr,
        Metric::PsnrY,
        Metric::Ssim,
        Metric::SsimY,
        Metric::Niqe,
        Metric::Lpips,
        Metric::Musiq,
        Metric::Maniqa,
    ];

    /// The metrics computable offline.
    pub const AVAILABLE: [Metric; 5] = [
        Metric::Psnr,
        Metric::PsnrY,
        Metric::Ssim,
        Metric::SsimY,
        Metric::Niqe,
    ];

    /// The registry name (`psnr`, `psnr_y`, `ssim`, `ssim_y`, `niqe`, `lpips`, `musiq`, `maniqa`).
    pub const fn name(self) -> &'static str {
        match self {
            Metric::Psnr => "psnr",
            Metric::PsnrY => "psnr_y",
            Metric::Ssim => "ssim",
            Metric::SsimY => "ssim_y",
            Metric::Niqe => "niqe",
            Metric::Lpips => "lpips",
            Metric::Musiq => "musiq",
            Metric::Maniqa => "maniqa",
        }
    }

    /// One line describing the convention.
    pub const fn description(self) -> &'static str {
        match self {
            Metric::Psnr => "PSNR (dB) on RGB in [0,1], as pyiqa `psnr`",
            Metric::PsnrY => {
                "PSNR (dB) on the Y channel of BT.601 YCbCr, as BasicSR / Real-ISR papers"
            }
            Metric::Ssim => "SSIM on rounded YIQ luma, Gaussian 11x11, as pyiqa `ssim`",
            Metric::SsimY => "SSIM on the Y channel of BT.601 YCbCr, as BasicSR / Real-ISR papers",
            Metric::Niqe => "NIQE (no reference) with the MATLAB pristine model, on rgb2gray luma",
            Metric::Lpips => {
                "LPIPS (AlexNet v0.1), perceptual distance, from user-supplied weight files"
            }
            Metric::Musiq => {
                "MUSIQ (KonIQ), no-reference multi-scale transformer score, as pyiqa `musiq`"
            }
            Metric::Maniqa => {
                "MANIQA (KonIQ), no-reference attention-network score, as pyiqa `maniqa`"
            }
        }
    }

    /// Whether larger values mean better quality (PSNR, SSIM, MUSIQ, MANIQA) or smaller
    /// (NIQE, LPIPS).
    pub const fn higher_is_better(self) -> bool {
        !matches!(self, Metric::Niqe | Metric::Lpips)
    }

    /// Full-reference or no-reference.
    pub const fn kind(self) -> MetricKind {
        match self {
            Metric::Niqe | Metric::Musiq | Metric::Maniqa => MetricKind::NoReference,
            _ => MetricKind::FullReference,
        }
    }

    /// Whether the metric can be computed here, and if not, why.
    pub const fn availability(self) -> Availability {
        match self {
            Metric::Psnr | Metric::PsnrY | Metric::Ssim | Metric::SsimY | Metric::Niqe => {
                Availability::Available
            }
            Metric::Lpips => Availability::Unavailable(LPIPS_NEEDS_WEIGHTS),
            Metric::Musiq | Metric::Maniqa => Availability::Unavailable(TRANSFORMER_NEEDS_WEIGHTS),
        }
    }

    /// Shorthand for `availability() == Available`.
    pub const fn is_available(self) -> bool {
        matches!(self.availability(), Availability::Available)
    }

    /// Returns `Ok(())` if available, else [`MetricError::Unavailable`].
    ///
    /// # Errors
    /// [`MetricError::Unavailable`] for LPIPS, MUSIQ and MANIQA.
    pub fn ensure_available(self) -> Result<()> {
        match self.availability() {
            Availability::Available => Ok(()),
            Availability::Unavailable(reason) => Err(MetricError::Unavailable {
                name: self.name(),
                reason,
            }),
        }
    }

    /// Computes the metric for `sr` (`[3, H, W]`), against `gt` for full-reference metrics
    /// (ignored by no-reference ones), removing `crop_border` pixels from every edge first.
    ///
    /// # Errors
    /// [`MetricError::Unavailable`], [`MetricError::NeedsReference`] if `gt` is `None` for a
    /// full-reference metric, and the errors of the metric functions.
    pub fn compute(
        self,
        sr: &MetricImage,
        gt: Option<&MetricImage>,
        crop_border: usize,
    ) -> Result<f64> {
        self.ensure_available()?;
        let reference = || gt.ok_or(MetricError::NeedsReference { name: self.name() });
        match self {
            Metric::Psnr => crate::psnr::psnr(sr, reference()?, crop_border),
            Metric::PsnrY => crate::psnr::psnr_y(sr, reference()?, crop_border),
            Metric::Ssim => crate::ssim::ssim(sr, reference()?, crop_border),
            Metric::SsimY => crate::ssim::ssim_y(sr, reference()?, crop_border),
            Metric::Niqe => crate::niqe::niqe(sr, crop_border),
            Metric::Lpips | Metric::Musiq | Metric::Maniqa => Err(MetricError::Unavailable {
                name: self.name(),
                reason: match self.availability() {
                    Availability::Unavailable(reason) => reason,
                    Availability::Available => "not implemented in this crate",
                },
            }),
        }
    }

    /// Parses a comma-separated list such as `"psnr_y,ssim_y,niqe"` (spaces allowed).
    ///
    /// # Errors
    /// [`MetricError::UnknownMetric`] for a name not in the registry, [`MetricError::NoMetrics`]
    /// for an empty list.
    pub fn parse_list(list: &str) -> Result<Vec<Metric>> {
        let metrics = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>>>()?;
        if metrics.is_empty() {
            return Err(MetricError::NoMetrics);
        }
        Ok(metrics)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = MetricError;

    /// Parses a registry name, case-insensitively; `-` is accepted for `_` (`psnr-y`).
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == norm)
            .ok_or_else(|| MetricError::UnknownMetric {
                name: s.to_string(),
                known: Metric::ALL
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}
