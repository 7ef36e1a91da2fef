//! The image the metrics take: the project's one image type, [`framer_data::Image`] (planar
//! CHW, `[3, H, W]`, `f32` nominally in `[0, 1]`), under the name the metrics have always used,
//! and the checks and crops the metric functions apply at their edge.
//!
//! Loading a file ([`Image::load`](framer_data::Image::load)) gives `v / 255` for 8-bit files
//! exactly as pyiqa reads them, `v / 65535` for 16-bit files; grayscale becomes R = G = B and
//! alpha is dropped. Values outside `[0, 1]` are used as given (the metrics do not clamp): clamp
//! and quantise to 8 bits first if the numbers should match those of saved image files. NaN and
//! infinities are rejected by every metric ([`MetricError::NonFinite`]).

use crate::error::{MetricError, Result};

/// The image type of the metrics: [`framer_data::Image`], planar CHW `[3, H, W]`.
///
/// An interleaved `[H, W, 3]` buffer (pyiqa's layout) becomes one with
/// [`from_hwc`](framer_data::Image::from_hwc); [`to_hwc`](framer_data::Image::to_hwc) gives it
/// back.
pub type MetricImage = framer_data::Image;

/// Checks that every sample of `img` is finite.
///
/// # Errors
/// [`MetricError::NonFinite`] naming the first pixel and channel (row-major, R before G before B).
pub(crate) fn check_finite(img: &MetricImage) -> Result<()> {
    let plane = img.width() * img.height();
    let bad = (0..plane)
        .flat_map(|i| (0..3).map(move |c| (i, c)))
        .find(|&(i, c)| !img.channel(c)[i].is_finite());
    match bad {
        Some((i, channel)) => Err(MetricError::NonFinite {
            x: i % img.width(),
            y: i / img.width(),
            channel,
            value: img.channel(channel)[i],
        }),
        None => Ok(()),
    }
}

/// Checks a full-reference pair: `reference` has the size of `image`, and both are finite.
///
/// # Errors
/// [`MetricError::SizeMismatch`], [`MetricError::NonFinite`].
pub(crate) fn check_pair(image: &MetricImage, reference: &MetricImage) -> Result<()> {
    if image.width() != reference.width() || image.height() != reference.height() {
        return Err(MetricError::SizeMismatch {
            width: image.width(),
            height: image.height(),
            ref_width: reference.width(),
            ref_height: reference.height(),
        });
    }
    check_finite(image)?;
    check_finite(reference)
}

/// Removes `border` pixels from every edge of a row-major `[H, W, channels]` buffer
/// (`img[c:-c, c:-c]`): the new width, height and values. `border = 0` copies the buffer.
///
/// # Errors
/// [`MetricError::CropTooLarge`] if nothing would be left.
pub(crate) fn crop_border<T: Copy>(
    data: &[T],
    width: usize,
    height: usize,
    channels: usize,
    border: usize,
) -> Result<(usize, usize, Vec<T>)> {
    if border == 0 {
        return Ok((width, height, data.to_vec()));
    }
    if 2 * border >= width || 2 * border >= height {
        return Err(MetricError::CropTooLarge {
            crop_border: border,
            width,
            height,
        });
    }
    let (w, h) = (width - 2 * border, height - 2 * border);
    let mut out = Vec::with_capacity(w * h * channels);
    for y in border..border + h {
        let row = (y * width + border) * channels;
        out.extend_from_slice(&data[row..row + w * channels]);
    }
    Ok((w, h, out))
}
