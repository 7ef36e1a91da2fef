//! # framer-iqa
//!
//! Image-quality networks computed from weight files the user supplies, backend-generic:
//!
//! - [`lpips`]: LPIPS v0.1 (AlexNet or VGG16), as the `lpips` package computes it;
//! - [`musiq`]: MUSIQ, as pyiqa 0.1.16's `musiq` metric computes it;
//! - [`maniqa`]: MANIQA, as pyiqa 0.1.16's `maniqa` metric computes it;
//! - [`weight_file`]: named float tensors from PyTorch `.pth` files (zip and legacy formats of
//!   `torch.save`) and `.safetensors` files.
//!
//! No offline package ships the pretrained weights (pyiqa and torchvision download them at run
//! time), so every network is built from files the caller names. Images are
//! [`framer_metrics::MetricImage`]s (`[3, H, W]`, values in `[0, 1]`). `framer-eval` (feature
//! `iqa`) plugs these networks into its evaluation reports, and the `framer` command
//! (`framer-train`'s default feature `iqa`) into `framer eval`.

mod error;
pub mod lpips;
pub mod maniqa;
pub mod musiq;
pub mod weight_file;

pub use error::{IqaError, Result};
pub use lpips::{Lpips, LpipsFiles, LpipsNet};
pub use maniqa::{Maniqa, ManiqaConfig};
pub use musiq::{Musiq, MusiqConfig};
