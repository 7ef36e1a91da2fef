//! In-memory JPEG compression round trip (the JPEG step of the degradation).

use image::ImageFormat;
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

use crate::error::{DataError, Result};
use crate::image::Image;

/// Compresses `img` to JPEG at `quality` (rounded to an integer in `1..=100`, IJG quantisation
/// tables, 4:2:0 chroma subsampling like Real-ESRGAN's `DiffJPEG`) and decodes it back.
///
/// Samples are clamped to `[0, 1]` and rounded to 8 bits first. Input and output: `[3, H, W]`.
/// Sides above 65535 pixels give [`DataError::Jpeg`].
#[doc(alias = "add_jpg_compression")]
#[doc(alias = "DiffJPEG")]
pub fn jpeg_roundtrip(img: &Image, quality: f64) -> Result<Image> {
    let (w, h) = (img.width(), img.height());
    let (Ok(w16), Ok(h16)) = (u16::try_from(w), u16::try_from(h)) else {
        return Err(DataError::Jpeg(format!(
            "{w}x{h} exceeds the JPEG size limit of 65535"
        )));
    };
    let q = quality.round().clamp(1.0, 100.0) as u8;
    let rgb = img.to_rgb8();
    let mut buf = Vec::with_capacity(w * h / 2 + 1024);
    let mut enc = Encoder::new(&mut buf, q);
    enc.set_sampling_factor(SamplingFactor::F_2_2);
    enc.encode(&rgb, w16, h16, ColorType::Rgb)
        .map_err(|e| DataError::Jpeg(e.to_string()))?;
    let decoded = image::load_from_memory_with_format(&buf, ImageFormat::Jpeg)
        .map_err(|e| DataError::Jpeg(e.to_string()))?
        .to_rgb8();
    if decoded.width() as usize != w || decoded.height() as usize != h {
        return Err(DataError::Jpeg(format!(
            "decoded size {}x{} differs from the encoded {w}x{h}",
            decoded.width(),
            decoded.height()
        )));
    }
    Image::from_rgb8(w, h, decoded.as_raw())
}
