//! Image-quality metrics as super-resolution papers report them, in pure Rust.
//!
//! | metric | function | convention | ↑/↓ |
//! |---|---|---|---|
//! | `psnr` | [`psnr()`] | RGB in `[0, 1]`, MSE over all channels (pyiqa `psnr`) | ↑ |
//! | `psnr_y` | [`psnr_y()`] | Y of BT.601 YCbCr, unrounded (BasicSR `calculate_psnr(test_y_channel=True)`) | ↑ |
//! | `ssim` | [`ssim()`] | rounded YIQ luma, Gaussian 11×11 σ = 1.5, 'valid', cs ≥ 0 (pyiqa `ssim`) | ↑ |
//! | `ssim_y` | [`ssim_y()`] | Y of BT.601 YCbCr, unrounded, same window (BasicSR `calculate_ssim(test_y_channel=True)`) | ↑ |
//! | `niqe` | [`niqe()`] | BasicSR `niqe()` with the MATLAB pristine model, on rounded `rgb2gray` luma | ↓ |
//!
//! Real-ISR papers (and FRAMER) report `psnr_y` and `ssim_y`. Every function takes a
//! `crop_border`: pixels removed from each edge first (the scale factor in classic SR
//! benchmarks, 0 for 512² crops). LPIPS, MUSIQ and MANIQA are listed in the [`Metric`]
//! registry but unavailable: their network weights are not obtainable offline.
//!
//! Images are the project's one image type, [`framer_data::Image`] (planar `[3, H, W]` `f32`
//! in `[0, 1]`; [`MetricImage`] is the same type), built from a buffer (planar, or interleaved
//! `[H, W, 3]` with `from_hwc`) or [loaded](framer_data::Image::load) from a file.
//! [`evaluate_folders`] pairs two folders by file stem; [`run_table`] and [`comparison_table`]
//! format the results for a terminal, CSV or Markdown.
//!
//! ```
//! use framer_metrics::{MetricImage, psnr, ssim};
//! let gt = MetricImage::from_hwc(16, 16, vec![0.5; 16 * 16 * 3])?;
//! let sr = MetricImage::from_hwc(16, 16, vec![0.6; 16 * 16 * 3])?;
//! assert!((psnr(&sr, &gt, 0)? - 20.0).abs() < 1e-5); // MSE = 0.01
//! assert_eq!(ssim(&gt, &gt, 0)?, 1.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod color;
pub mod error;
pub mod folder;
pub mod image;
pub mod metric;
pub mod niqe;
pub mod psnr;
mod resize;
pub mod ssim;
pub mod table;

pub use error::{MetricError, Result};
pub use folder::{FolderEvaluation, ImageScores, evaluate_folders, evaluate_folders_by};
pub use framer_data::Image;
pub use image::MetricImage;
pub use metric::{Availability, Metric, MetricKind};
pub use niqe::niqe;
pub use psnr::{psnr, psnr_y};
pub use ssim::{Luma, StructuralSimilarityOptions, ssim, ssim_with, ssim_y};
pub use table::{RunSummary, TableFormat, comparison_table, run_table};
