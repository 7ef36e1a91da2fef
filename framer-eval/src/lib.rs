//! # framer-eval
//!
//! Inference helpers, evaluation reports and FRAMER analysis, all backend-generic: the model is
//! always a closure given by the caller, so this crate depends on no particular backbone.
//!
//! - [`tiling`]: super-resolve images larger than the training size in overlapping tiles,
//!   blended with a smooth window (reflection padding for small images, any scale factor).
//! - [`color_fix`]: AdaIN and wavelet colour correction against the upsampled LR image, as in
//!   StableSR / OSEDiff / DiT4SR.
//! - [`sr`]: the `sr` pipeline for one image or a folder (upsample, tile, colour fix, save).
//! - [`compare`]: evaluate several runs with [`framer_metrics`] and report them side by side as
//!   tables (terminal, CSV, Markdown) and a bar chart of relative changes.
//! - [`analyze`]: per-layer low/high-band energy and cosine similarity to the final layer over
//!   the denoising steps (the paper's Fig. 2 and Fig. 7), and FAW/FAM per layer over training
//!   from a metrics log (Fig. 9).
//! - [`plot`]: PNG line plots, grouped bar charts and heat maps with embedded fonts, reusable
//!   for loss curves.
//!
//! LPIPS, MUSIQ and MANIQA need pretrained network weights that no offline package ships. Their
//! networks live in the `framer-iqa` crate; with this crate's feature `iqa` they serve as the
//! [`compare::PairMetric`] / [`compare::ImageMetric`] models of [`compare::MetricModels`].
//! Otherwise (or without weights) the reports list them as not computed (see
//! [`compare::unavailable_note`]).

pub mod analyze;
pub mod color_fix;
pub mod compare;
mod error;
#[cfg(feature = "iqa")]
mod iqa;
pub mod plot;
pub mod sr;
pub mod tiling;

pub use color_fix::ColorFix;
pub use error::{BoxedError, EvalError, Result};
pub use tiling::{BlendWindow, TileConfig, TilePlan, TileRegion};
