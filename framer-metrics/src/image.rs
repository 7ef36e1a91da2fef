//! The image type the metrics take, and loading from disk.

use std::path::Path;

use crate::error::{MetricError, Result};

/// An owned RGB image for the metrics: `f32` values, **interleaved HWC** (`[H, W, 3]`,
/// row-major, `R G B R G B …`), nominally in `[0, 1]`.
///
/// This is the layout pyiqa and BasicSR see after reading an 8-bit file
/// (`u8 as f32 / 255.0` in single precision). Values outside `[0, 1]` are accepted and used
/// as given (the metrics do not clamp): clamp and quantise to 8 bits first if the numbers
/// should match those of saved image files. NaN and infinities are rejected.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricImage {
    width: usize,
    height: usize,
    data: Vec<f32>,
}

impl MetricImage {
    /// Wraps an interleaved HWC buffer of length `width * height * 3`.
    ///
    /// # Errors
    /// [`MetricError::BufferSize`] if the length is wrong, [`MetricError::Empty`] for a zero
    /// dimension, [`MetricError::NonFinite`] for a NaN or infinite value.
    pub fn from_hwc(width: usize, height: usize, data: Vec<f32>) -> Result<Self> {
        let expected = width
            .checked_mul(height)
            .and_then(|n| n.checked_mul(3))
            .ok_or(MetricError::BufferSize {
                width,
                height,
                len: data.len(),
                expected: usize::MAX,
            })?;
        if data.len() != expected {
            return Err(MetricError::BufferSize {
                width,
                height,
                len: data.len(),
                expected,
            });
        }
        if width == 0 || height == 0 {
            return Err(MetricError::Empty { width, height });
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            let pixel = i / 3;
            return Err(MetricError::NonFinite {
                x: pixel % width,
                y: pixel / width,
                channel: i % 3,
                value: data[i],
            });
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Copies an interleaved HWC slice (`[H, W, 3]`); see [`MetricImage::from_hwc`].
    ///
    /// # Errors
    /// As [`MetricImage::from_hwc`].
    pub fn from_hwc_slice(width: usize, height: usize, data: &[f32]) -> Result<Self> {
        Self::from_hwc(width, height, data.to_vec())
    }

    /// Converts a **planar CHW** buffer (`[3, H, W]`, the layout of tensors and of
    /// `framer_data::Image`) into this interleaved layout.
    ///
    /// # Errors
    /// As [`MetricImage::from_hwc`].
    pub fn from_chw(width: usize, height: usize, planes: &[f32]) -> Result<Self> {
        let n = width.saturating_mul(height);
        if planes.len() != n.saturating_mul(3) {
            return Err(MetricError::BufferSize {
                width,
                height,
                len: planes.len(),
                expected: n.saturating_mul(3),
            });
        }
        let mut data = Vec::with_capacity(planes.len());
        for i in 0..n {
            data.extend_from_slice(&[planes[i], planes[n + i], planes[2 * n + i]]);
        }
        Self::from_hwc(width, height, data)
    }

    /// Converts an 8-bit RGB image: each value becomes `v as f32 / 255.0`.
    pub fn from_rgb8(img: &image::RgbImage) -> Self {
        let (w, h) = img.dimensions();
        let data = img.as_raw().iter().map(|&v| f32::from(v) / 255.0).collect();
        Self {
            width: w as usize,
            height: h as usize,
            data,
        }
    }

    /// Loads an image file with the `image` crate (PNG, JPEG, BMP).
    ///
    /// 8-bit files give `v / 255` exactly as pyiqa reads them; 16-bit files give `v / 65535`;
    /// grayscale becomes R = G = B; alpha is dropped.
    ///
    /// # Errors
    /// [`MetricError::Load`] naming the path if the file cannot be opened or decoded.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let dynamic = image::open(path).map_err(|source| MetricError::Load {
            path: path.to_path_buf(),
            source,
        })?;
        let img = match dynamic {
            image::DynamicImage::ImageLuma16(_)
            | image::DynamicImage::ImageLumaA16(_)
            | image::DynamicImage::ImageRgb16(_)
            | image::DynamicImage::ImageRgba16(_)
            | image::DynamicImage::ImageRgb32F(_)
            | image::DynamicImage::ImageRgba32F(_) => {
                let f = dynamic.to_rgb32f();
                let (w, h) = f.dimensions();
                Self::from_hwc(w as usize, h as usize, f.into_raw())?
            }
            other => Self::from_rgb8(&other.to_rgb8()),
        };
        if img.width == 0 || img.height == 0 {
            return Err(MetricError::Empty {
                width: img.width,
                height: img.height,
            });
        }
        Ok(img)
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The interleaved HWC values (`[H, W, 3]`).
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The `[R, G, B]` values at column `x`, row `y`.
    ///
    /// # Panics
    /// If `x >= width` or `y >= height`.
    pub fn pixel(&self, x: usize, y: usize) -> [f32; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// The image without `border` pixels on every edge (BasicSR/pyiqa `img[c:-c, c:-c]`),
    /// `[H − 2c, W − 2c, 3]`.
    ///
    /// # Errors
    /// [`MetricError::CropTooLarge`] if nothing would be left.
    pub fn crop(&self, border: usize) -> Result<MetricImage> {
        let (width, height, data) = crop_border(&self.data, self.width, self.height, 3, border)?;
        Ok(MetricImage {
            width,
            height,
            data,
        })
    }

    /// Checks that `reference` has the same size as `self`.
    pub(crate) fn check_same_size(&self, reference: &MetricImage) -> Result<()> {
        if self.width != reference.width || self.height != reference.height {
            return Err(MetricError::SizeMismatch {
                width: self.width,
                height: self.height,
                ref_width: reference.width,
                ref_height: reference.height,
            });
        }
        Ok(())
    }
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
