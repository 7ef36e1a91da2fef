//! A small set of real photographs embedded in the crate, so that training and evaluation run
//! with no download. Sources, authors and licences: `framer-data/assets/ATTRIBUTION.md`.
//!
//! - [`train()`]: 8 photos (public domain, CC0-1.0, CC-BY-4.0), shorter side 576 px (512 for the
//!   512×512 astronaut), JPEG quality 95, 4:4:4.
//! - [`held_out()`]: 3 other photos (CC-BY-4.0), shorter side 512 px, never used for training:
//!   the test set.
//! - [`validation()`]: 3 more photos (CC0-1.0, public domain; scikit-image's `coffee`, `chelsea`
//!   and `rocket`, shorter side 300 to 427 px), neither trained on nor tested on: the photos
//!   settings are chosen by.

use crate::error::Result;
use crate::image::Image;

/// An image with a name (a file path or an embedded photo's name).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedImage {
    /// Name used in error messages and reports.
    pub name: String,
    /// The image, `[3, H, W]`.
    pub image: Image,
}

macro_rules! asset {
    ($dir:literal, $name:literal) => {
        (
            $name,
            include_bytes!(concat!("../assets/", $dir, "/", $name, ".jpg")).as_slice(),
        )
    };
}

/// The embedded training photos as `(name, JPEG bytes)`.
pub const TRAIN_FILES: [(&str, &[u8]); 8] = [
    asset!("train", "aitzgorri"),
    asset!("train", "astronaut"),
    asset!("train", "hubble_deep_field"),
    asset!("train", "life"),
    asset!("train", "picosdeeuropa"),
    asset!("train", "picture_1a"),
    asset!("train", "seeding"),
    asset!("train", "sunset"),
];

/// The embedded held-out photos as `(name, JPEG bytes)`.
pub const HELD_OUT_FILES: [(&str, &[u8]); 3] = [
    asset!("held_out", "friends"),
    asset!("held_out", "picture_0b"),
    asset!("held_out", "wine"),
];

/// The embedded validation photos as `(name, JPEG bytes)`.
pub const VALIDATION_FILES: [(&str, &[u8]); 3] = [
    asset!("validation", "chelsea"),
    asset!("validation", "coffee"),
    asset!("validation", "rocket"),
];

fn decode_all(files: &[(&str, &[u8])], dir: &str) -> Result<Vec<NamedImage>> {
    files
        .iter()
        .map(|(name, bytes)| {
            let label = format!("embedded:{dir}/{name}.jpg");
            Ok(NamedImage {
                image: Image::decode(bytes, &label)?,
                name: label,
            })
        })
        .collect()
}

/// Decodes the embedded training photos (names `embedded:train/<name>.jpg`).
pub fn train() -> Result<Vec<NamedImage>> {
    decode_all(&TRAIN_FILES, "train")
}

/// Decodes the embedded held-out photos (names `embedded:held_out/<name>.jpg`).
pub fn held_out() -> Result<Vec<NamedImage>> {
    decode_all(&HELD_OUT_FILES, "held_out")
}

/// Decodes the embedded validation photos (names `embedded:validation/<name>.jpg`).
pub fn validation() -> Result<Vec<NamedImage>> {
    decode_all(&VALIDATION_FILES, "validation")
}
