//! An owned RGB image with `f32` samples in `[0, 1]`, stored planar (channel-major, CHW).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, ImageReader};

use crate::error::{DataError, Result};

/// Number of colour channels of an [`Image`] (always RGB).
pub const CHANNELS: usize = 3;

/// An owned RGB image, `f32` samples nominally in `[0, 1]`.
///
/// Layout: **planar CHW**, shape `[3, height, width]`: sample `(c, y, x)` is at
/// `data[(c * height + y) * width + x]`, with channels in R, G, B order. This is the layout of a
/// `Tensor<B, 3>` of shape `[3, H, W]`, so [`Image::data`] can be handed to a tensor constructor
/// as is.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    width: usize,
    height: usize,
    data: Vec<f32>,
}

impl Image {
    /// Builds an image from planar CHW data of length `3 * height * width`.
    ///
    /// Returns [`DataError::InvalidImage`] if the length does not match or a side is zero.
    pub fn from_chw(width: usize, height: usize, data: Vec<f32>) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(DataError::InvalidImage(format!(
                "image size {width}x{height} has a zero side"
            )));
        }
        if data.len() != CHANNELS * width * height {
            return Err(DataError::InvalidImage(format!(
                "{} samples given for a 3x{height}x{width} image (expected {})",
                data.len(),
                CHANNELS * width * height
            )));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// A black image of the given size (sides must be non-zero).
    pub fn zeros(width: usize, height: usize) -> Result<Self> {
        Self::from_chw(width, height, vec![0.0; CHANNELS * width * height])
    }

    /// Builds an image by evaluating `f(channel, y, x)` for every sample.
    pub fn from_fn(
        width: usize,
        height: usize,
        mut f: impl FnMut(usize, usize, usize) -> f32,
    ) -> Result<Self> {
        let mut data = Vec::with_capacity(CHANNELS * width * height);
        for c in 0..CHANNELS {
            for y in 0..height {
                for x in 0..width {
                    data.push(f(c, y, x));
                }
            }
        }
        Self::from_chw(width, height, data)
    }

    /// Builds an image from interleaved 8-bit RGB (HWC, `3 * width * height` bytes), dividing by 255.
    pub fn from_rgb8(width: usize, height: usize, hwc: &[u8]) -> Result<Self> {
        Self::from_interleaved(width, height, hwc, "bytes", |v| f32::from(v) / 255.0)
    }

    /// Builds an image from **interleaved HWC** samples (`[H, W, 3]`, `R G B R G B …`, the layout
    /// of decoded files and of pyiqa's arrays), converting them to the planar layout.
    ///
    /// Returns [`DataError::InvalidImage`] if the length does not match or a side is zero.
    pub fn from_hwc(width: usize, height: usize, hwc: Vec<f32>) -> Result<Self> {
        Self::from_interleaved(width, height, &hwc, "samples", |v| v)
    }

    /// The planar image of interleaved `[H, W, 3]` values, each mapped by `f`; `unit` names
    /// them in the error.
    fn from_interleaved<T: Copy>(
        width: usize,
        height: usize,
        hwc: &[T],
        unit: &str,
        f: impl Fn(T) -> f32,
    ) -> Result<Self> {
        if hwc.len() != CHANNELS * width * height {
            return Err(DataError::InvalidImage(format!(
                "{} {unit} given for a {width}x{height} RGB image (expected {})",
                hwc.len(),
                CHANNELS * width * height
            )));
        }
        let plane = width * height;
        let mut data = vec![0.0f32; CHANNELS * plane];
        for (i, px) in hwc.chunks_exact(CHANNELS).enumerate() {
            for c in 0..CHANNELS {
                data[c * plane + i] = f(px[c]);
            }
        }
        Self::from_chw(width, height, data)
    }

    /// The samples **interleaved HWC** (`[H, W, 3]`), for algorithms that read pixel by pixel
    /// (the inverse of [`Image::from_hwc`]).
    pub fn to_hwc(&self) -> Vec<f32> {
        let plane = self.width * self.height;
        let mut out = vec![0.0f32; CHANNELS * plane];
        for c in 0..CHANNELS {
            for (i, &v) in self.channel(c).iter().enumerate() {
                out[i * CHANNELS + c] = v;
            }
        }
        out
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Shape as `[channels, height, width]` = `[3, H, W]`.
    pub fn shape(&self) -> [usize; 3] {
        [CHANNELS, self.height, self.width]
    }

    /// The planar CHW samples, length `3 * H * W`.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Mutable planar CHW samples.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Consumes the image and returns its planar CHW samples.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// One channel plane (`c` in `0..3`), row-major `H * W` samples.
    ///
    /// # Panics
    /// If `c >= 3` (a programming error, not a data error).
    pub fn channel(&self, c: usize) -> &[f32] {
        let plane = self.width * self.height;
        &self.data[c * plane..(c + 1) * plane]
    }

    /// Mutable channel plane (`c` in `0..3`).
    ///
    /// # Panics
    /// If `c >= 3`.
    pub fn channel_mut(&mut self, c: usize) -> &mut [f32] {
        let plane = self.width * self.height;
        &mut self.data[c * plane..(c + 1) * plane]
    }

    /// The sample at channel `c`, row `y`, column `x`.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn get(&self, c: usize, y: usize, x: usize) -> f32 {
        assert!(
            c < CHANNELS && y < self.height && x < self.width,
            "pixel index out of range"
        );
        self.data[(c * self.height + y) * self.width + x]
    }

    /// The `[R, G, B]` samples at column `x`, row `y`.
    ///
    /// # Panics
    /// If `x >= width` or `y >= height`.
    pub fn pixel(&self, x: usize, y: usize) -> [f32; 3] {
        [self.get(0, y, x), self.get(1, y, x), self.get(2, y, x)]
    }

    /// Interleaved 8-bit RGB (HWC), each sample clamped to `[0, 1]` and rounded to the nearest
    /// multiple of 1/255.
    pub fn to_rgb8(&self) -> Vec<u8> {
        self.to_hwc().into_iter().map(quantize_u8).collect()
    }

    /// Clamps every sample to `[0, 1]` and rounds it to 8-bit precision (`round(255 v) / 255`),
    /// as Real-ESRGAN does to its final low-resolution image.
    pub fn quantize_8bit(&mut self) {
        for v in &mut self.data {
            *v = f32::from(quantize_u8(*v)) / 255.0;
        }
    }

    /// Clamps every sample to `[0, 1]`.
    pub fn clamp01(&mut self) {
        for v in &mut self.data {
            *v = v.clamp(0.0, 1.0);
        }
    }

    /// The `width`×`height` window whose top-left corner is `(left, top)`.
    pub fn crop(&self, left: usize, top: usize, width: usize, height: usize) -> Result<Image> {
        if width == 0 || height == 0 || left + width > self.width || top + height > self.height {
            return Err(DataError::InvalidImage(format!(
                "crop {width}x{height} at ({left}, {top}) does not fit in a {}x{} image",
                self.width, self.height
            )));
        }
        let mut data = Vec::with_capacity(CHANNELS * width * height);
        for c in 0..CHANNELS {
            let plane = self.channel(c);
            for y in top..top + height {
                data.extend_from_slice(
                    &plane[y * self.width + left..y * self.width + left + width],
                );
            }
        }
        Image::from_chw(width, height, data)
    }

    /// The image without `border` pixels on every edge (BasicSR/pyiqa `img[c:-c, c:-c]`),
    /// `[3, H − 2c, W − 2c]`; `border = 0` gives a copy.
    ///
    /// Returns [`DataError::InvalidImage`] if nothing would be left.
    pub fn crop_border(&self, border: usize) -> Result<Image> {
        if 2 * border >= self.width || 2 * border >= self.height {
            return Err(DataError::InvalidImage(format!(
                "a border crop of {border} leaves nothing of a {}x{} image",
                self.width, self.height
            )));
        }
        self.crop(
            border,
            border,
            self.width - 2 * border,
            self.height - 2 * border,
        )
    }

    /// Mirrors the image left–right.
    pub fn flip_horizontal(&mut self) {
        let w = self.width;
        for row in self.data.chunks_exact_mut(w) {
            row.reverse();
        }
    }

    /// Mirrors the image top–bottom.
    pub fn flip_vertical(&mut self) {
        let (w, h) = (self.width, self.height);
        let plane = w * h;
        for c in 0..CHANNELS {
            let p = &mut self.data[c * plane..(c + 1) * plane];
            for y in 0..h / 2 {
                let (a, b) = p.split_at_mut((h - 1 - y) * w);
                a[y * w..y * w + w].swap_with_slice(&mut b[..w]);
            }
        }
    }

    /// Swaps rows and columns (the result is `height`×`width`). Together with the flips this gives
    /// the eight dihedral augmentations of BasicSR's `augment(hflip, rot)`.
    pub fn transpose(&self) -> Image {
        let (w, h) = (self.width, self.height);
        let plane = w * h;
        let mut data = vec![0.0f32; CHANNELS * plane];
        for c in 0..CHANNELS {
            let src = &self.data[c * plane..(c + 1) * plane];
            let dst = &mut data[c * plane..(c + 1) * plane];
            for y in 0..h {
                for x in 0..w {
                    dst[x * h + y] = src[y * w + x];
                }
            }
        }
        Image {
            width: h,
            height: w,
            data,
        }
    }

    /// Loads an image file (PNG, JPEG or BMP; the format is detected from the content).
    ///
    /// - grayscale images are replicated to RGB;
    /// - an alpha channel is dropped (as OpenCV's `imread(IMREAD_COLOR)` does in BasicSR);
    /// - 16-bit images are scaled to `[0, 1]` by dividing by 65535.
    ///
    /// Unreadable, truncated, empty or non-image files give an error naming `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Image> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::decode(&bytes, path)
    }

    /// Decodes an in-memory image file; `name` is used in error messages.
    pub fn decode(bytes: &[u8], name: impl AsRef<Path>) -> Result<Image> {
        let name = name.as_ref();
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|source| DataError::Io {
                path: name.to_path_buf(),
                source,
            })?;
        // The JPEG decoder fills a truncated scan with gray instead of failing: detect it.
        if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
            let source = image::ImageError::IoError(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "truncated JPEG: no end-of-image marker after the last scan",
            ));
            return Err(DataError::Decode {
                path: name.to_path_buf(),
                source,
            });
        }
        let decoded = reader.decode().map_err(|source| DataError::Decode {
            path: name.to_path_buf(),
            source,
        })?;
        Self::from_dynamic(decoded, name)
    }

    /// Converts a decoded [`DynamicImage`] (any colour type) to RGB `f32`.
    pub fn from_dynamic(img: DynamicImage, name: &Path) -> Result<Image> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        if w == 0 || h == 0 {
            return Err(DataError::InvalidImage(format!(
                "{}: image has size {w}x{h}",
                name.display()
            )));
        }
        match img {
            // 8-bit sources: exact k/255 values.
            DynamicImage::ImageLuma8(_)
            | DynamicImage::ImageLumaA8(_)
            | DynamicImage::ImageRgb8(_)
            | DynamicImage::ImageRgba8(_) => {
                let rgb = img.to_rgb8();
                Image::from_rgb8(w, h, rgb.as_raw())
            }
            // 16-bit and float sources: `to_rgb32f` scales 16-bit by 1/65535 and drops alpha.
            other => {
                let rgb = other.to_rgb32f();
                let plane = w * h;
                let mut data = vec![0.0f32; CHANNELS * plane];
                for (i, px) in rgb.as_raw().chunks_exact(CHANNELS).enumerate() {
                    for c in 0..CHANNELS {
                        data[c * plane + i] = px[c].clamp(0.0, 1.0);
                    }
                }
                Image::from_chw(w, h, data)
            }
        }
    }

    /// Saves the image as an 8-bit RGB PNG (samples clamped to `[0, 1]` and rounded).
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let buf = image::RgbImage::from_raw(self.width as u32, self.height as u32, self.to_rgb8())
            .ok_or_else(|| {
                DataError::InvalidImage(format!("{}: buffer size mismatch", path.display()))
            })?;
        buf.save_with_format(path, ImageFormat::Png)
            .map_err(|source| DataError::Encode {
                path: PathBuf::from(path),
                source,
            })
    }
}

/// Whether a JPEG stream has an end-of-image marker (`FF D9`) after its last start-of-scan
/// marker (`FF DA`). Inside entropy-coded data every `FF` byte is followed by `00` or a restart
/// marker, so a stream cut inside a scan has none.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_sos {
        Some(pos) => bytes[pos..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

/// Clamps `v` to `[0, 1]` and rounds `255 v` to the nearest integer, halves to even (as
/// `torch.round` does). NaN maps to 0.
pub(crate) fn quantize_u8(v: f32) -> u8 {
    // Adding and subtracting 1.5·2²³ rounds a float in [0, 2²²) to the nearest integer, ties to
    // even, under the default rounding mode; unlike `round_ties_even` it needs no libm call on
    // baseline x86_64.
    const MAGIC: f32 = 12_582_912.0;
    let x = v.clamp(0.0, 1.0) * 255.0;
    ((x + MAGIC) - MAGIC) as u8
}
