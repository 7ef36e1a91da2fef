//! Real photographs and the Real-ESRGAN second-order degradation pipeline, in pure Rust.
//!
//! Real-world super-resolution (Real-ISR) models are trained on high-resolution (HR) photos
//! degraded on the fly into low-resolution (LR) inputs. This crate provides:
//!
//! - [`Image`]: an owned RGB image, `f32` in `[0, 1]`, **planar CHW** (`[3, H, W]`), loaded with
//!   the `image` crate (grayscale → RGB, alpha dropped, 16-bit scaled) and saved as PNG;
//! - [`DegradationConfig`] (serde, Real-ESRGAN key names verbatim) and [`Degrader`], the full
//!   second-order pipeline (blur kernels, random resize, Gaussian/Poisson noise, JPEG, final sinc
//!   filter), deterministic for a given RNG state;
//! - the building blocks: [`kernels`], [`filter`] (reflect-padded 2-D filtering, USM
//!   sharpening), [`resize`] (PyTorch `interpolate` semantics), [`noise`], [`jpeg`];
//! - datasets: [`TrainPairs`] (HR photos → random crops → degraded pairs, deterministic per
//!   `(seed, index)`) and [`PairedFolders`] (HR/LR folders for evaluation);
//! - [`embedded`]: a small set of real photos with their licences, split into train and held-out.
//!
//! ```
//! use framer_data::{Degrader, DegradationConfig, Image, item_rng};
//!
//! let degrader = Degrader::new(DegradationConfig::default())?;
//! let hr = Image::from_fn(64, 64, |c, y, x| ((x + 2 * y + 7 * c) % 64) as f32 / 63.0)?;
//! let pair = degrader.degrade(&hr, &mut item_rng(0, 0))?;
//! assert_eq!(pair.lr.shape(), [3, 16, 16]);
//! # Ok::<(), framer_data::DataError>(())
//! ```

pub mod config;
pub mod dataset;
pub mod degrade;
pub mod embedded;
pub mod error;
pub mod filter;
pub mod image;
pub mod jpeg;
pub mod kernels;
pub mod noise;
pub mod resize;

pub use config::DegradationConfig;
pub use dataset::{EvalPair, PairedFolders, SmallImages, TrainPairs, TrainPairsOptions, item_rng};
pub use degrade::{Degrader, Pair};
pub use embedded::NamedImage;
pub use error::{DataError, Result};
pub use image::Image;
pub use kernels::{Kernel, KernelType};
pub use resize::{Interpolation, upsample_bicubic};
