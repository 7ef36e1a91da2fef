//! The `sr` pipeline, independent of the model: bicubic-upsample the LR image to the SR size,
//! run the caller's sampler on overlapping tiles of the training size ([`crate::tiling`]),
//! apply a colour fix against the upsampled LR ([`ColorFix`]), clamp to `[0, 1]` and save the
//! image (PNG, or JPEG / BMP by the output's extension).
//!
//! The upsampled LR image is never held whole while the tiles run: each tile upsamples just the
//! LR pixels it needs, so that memory grows with the tile, not the image, until the first tile
//! is done (the blended output, and for a colour fix the whole upsampled image, come after).
//!
//! The model sees what FRAMER's backbones are trained on: the upsampled LR tile
//! `[1, 3, tile, tile]` in `[0, 1]` (the caller maps it to its own range, runs its sampler with
//! the step count it wants, and maps back), and returns the SR tile of the same shape.
//! Per-tile seeds come from [`tile_seed`], so a result does not depend on how many images were
//! processed before it.
//!
//! ```
//! use burn::backend::Flex;
//! use framer_data::Image;
//! use framer_eval::sr::{SrOptions, super_resolve};
//!
//! let lr = Image::from_fn(20, 12, |c, y, x| (c + y + x) as f32 / 40.0)?;
//! let options = SrOptions::new(4, 32);
//! // stand-in for a sampler: return the conditioning unchanged
//! let sr = super_resolve::<Flex, _, _>(&lr, &options, &Default::default(), |tile, _region| {
//!     Ok::<_, std::convert::Infallible>(tile)
//! })?;
//! assert_eq!((sr.width(), sr.height()), (80, 48));
//! # Ok::<(), framer_eval::EvalError>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::tensor::{Tensor, backend::Backend};
use framer_data::{Image, upsample_bicubic};

use crate::color_fix::ColorFix;
use crate::error::{BoxedError, EvalError, Result};
use crate::tiling::{BlendWindow, TileConfig, TileRegion, process_tiled_lazy};

/// File extensions (lower case) read as input images.
pub const INPUT_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// Settings of [`super_resolve`]: `SrOptions::new(scale, tile)` gives tiles overlapping by a
/// quarter of a tile (rounded down), Gaussian blending and the AdaIN colour fix; the
/// `with_*` setters (burn's [`Config`] derive) change the others.
#[derive(Config, Debug, Copy, PartialEq)]
pub struct SrOptions {
    /// Integer upscaling factor (4 for the paper's ×4 setting).
    pub scale: usize,
    /// Tile side at the SR resolution: the model's training size (512 px in the paper).
    pub tile: usize,
    /// Overlap of neighbouring tiles at the SR resolution (DiT4SR: 24 latent px ≈ 192 px).
    #[config(default = "tile / 4")]
    pub overlap: usize,
    /// Blending window of the tiles.
    #[config(default = "BlendWindow::default()")]
    pub window: BlendWindow,
    /// Colour fix against the upsampled LR.
    #[config(default = "ColorFix::default()")]
    pub color_fix: ColorFix,
}

impl SrOptions {
    /// The tiling of the upsampled image (scale 1: the model works at the SR resolution).
    pub fn tile_config(&self) -> TileConfig {
        TileConfig::new(self.tile, self.overlap, 1).with_window(self.window)
    }

    /// Checks the scale and the tiling.
    ///
    /// # Errors
    /// [`EvalError::InvalidArgument`] for a zero scale, [`EvalError::InvalidTiling`].
    pub fn validate(&self) -> Result<()> {
        if self.scale == 0 {
            return Err(EvalError::InvalidArgument(
                "scale must be at least 1".into(),
            ));
        }
        self.tile_config().validate()
    }
}

/// Super-resolves one image with the caller's model `f` (see the module docs).
///
/// `f(tile, region)`: `tile` is `[1, 3, tile, tile]`, the upsampled LR in `[0, 1]`; it returns
/// the SR tile of the same shape. The result is colour-fixed, clamped to `[0, 1]`, and
/// `scale` times the size of `lr`.
///
/// # Errors
/// [`EvalError::InvalidArgument`] / [`EvalError::InvalidTiling`] for bad options, and the tile
/// errors of [`crate::tiling::process_tiled`].
pub fn super_resolve<B, F, E>(
    lr: &Image,
    options: &SrOptions,
    device: &B::Device,
    f: F,
) -> Result<Image>
where
    B: Backend,
    F: FnMut(Tensor<B, 4>, &TileRegion) -> std::result::Result<Tensor<B, 4>, E>,
    E: Into<BoxedError>,
{
    options.validate()?;
    let s = options.scale;
    let (h, w) = (lr.height() * s, lr.width() * s);
    let (data, channels) = process_tiled_lazy::<B, _, _, _>(
        h,
        w,
        &options.tile_config(),
        |rows, cols| upsampled_tile::<B>(lr, s, rows, cols, device),
        f,
    )?;
    if channels != 3 {
        return Err(EvalError::InvalidShape(format!(
            "the model returned {channels} channels per tile, expected 3 (RGB)"
        )));
    }
    let sr = Image::from_chw(w, h, data)?;
    let mut fixed = match options.color_fix {
        ColorFix::None => sr,
        fix => fix.apply(&sr, &upsample_bicubic(lr, s)?)?,
    };
    fixed.clamp01();
    Ok(fixed)
}

/// The tile `[1, 3, rows.len(), cols.len()]` of the bicubic `scale`× upsampling of `lr` made of
/// the upsampled rows `rows` and columns `cols`, computed from the LR pixels around them only
/// (three LR pixels of margin cover the four taps of the bicubic kernel, so the values are those
/// of the whole upsampled image).
fn upsampled_tile<B: Backend>(
    lr: &Image,
    scale: usize,
    rows: &[usize],
    cols: &[usize],
    device: &B::Device,
) -> Result<Tensor<B, 4>> {
    let span = |idx: &[usize], len: usize| {
        let lo = idx.iter().min().copied().unwrap_or(0) / scale;
        let hi = idx.iter().max().copied().unwrap_or(0) / scale;
        let start = lo.saturating_sub(3);
        (start, (hi + 4).min(len) - start)
    };
    let (top, height) = span(rows, lr.height());
    let (left, width) = span(cols, lr.width());
    let region = upsample_bicubic(&lr.crop(left, top, width, height)?, scale)?;
    let (rw, plane) = (region.width(), region.width() * region.height());
    let mut data = Vec::with_capacity(3 * rows.len() * cols.len());
    for c in 0..3 {
        let src = &region.data()[c * plane..(c + 1) * plane];
        for &y in rows {
            let row = &src[(y - top * scale) * rw..(y - top * scale + 1) * rw];
            data.extend(cols.iter().map(|&x| row[x - left * scale]));
        }
    }
    Ok(Tensor::from_data(
        burn::tensor::TensorData::new(data, [1, 3, rows.len(), cols.len()]),
        device,
    ))
}

/// A seed for one tile of one image: a SplitMix64 mix of the run seed, the image's index and
/// the tile's index, so that results are reproducible per image and per tile.
pub fn tile_seed(seed: u64, image: usize, tile: usize) -> u64 {
    let mut z = seed
        ^ (image as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (tile as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One image to super-resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrJob {
    /// Position in the list, from 0.
    pub index: usize,
    /// Number of images in the list.
    pub count: usize,
    /// The LR image.
    pub input: PathBuf,
    /// The image to write (PNG, JPEG or BMP by its extension).
    pub output: PathBuf,
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| INPUT_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// `path` made absolute with its symbolic links resolved, also when it does not exist yet (its
/// deepest existing folder is resolved, the rest appended).
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(p) = existing.canonicalize() {
            return rest.iter().rev().fold(p, |p, part| p.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// The jobs for `input` (an image file or a folder of images) and `output`:
///
/// - a file and an output with an image extension (`.png`, `.jpg`, `.jpeg`, `.bmp`): that
///   file, written in that format;
/// - a file and any other output: the folder `output`, file `output/<stem>.png`;
/// - a folder: every image directly inside (sorted by name, subfolders ignored) to
///   `output/<stem>.png`.
///
/// No job writes over an input: `output` may not be the input, nor, for a folder, the input
/// folder itself.
///
/// # Errors
/// [`EvalError::Read`] if `input` does not exist or cannot be listed;
/// [`EvalError::InvalidArgument`] if a file has no image extension, a folder has no images, two
/// inputs share a stem (`a.png`, `a.jpg`), a folder's output has an image extension, or an
/// output would be written over an input or into the input folder.
pub fn plan_jobs(input: &Path, output: &Path) -> Result<Vec<SrJob>> {
    let meta = std::fs::metadata(input).map_err(|source| EvalError::Read {
        path: input.to_path_buf(),
        source,
    })?;
    let png_name = |p: &Path| -> PathBuf {
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        PathBuf::from(format!("{stem}.png"))
    };
    let jobs: Vec<SrJob> = if meta.is_dir() {
        if is_image(output) && !output.is_dir() {
            return Err(EvalError::InvalidArgument(format!(
                "OUTPUT {} names an image file, but INPUT {} is a folder: give a folder for the \
                 results",
                output.display(),
                input.display()
            )));
        }
        if resolved(output) == resolved(input) {
            return Err(EvalError::InvalidArgument(format!(
                "OUTPUT {} is the input folder {}: the results would be written among the LR \
                 images (and over those that are PNGs); give another folder",
                output.display(),
                input.display()
            )));
        }
        let read_err = |source| EvalError::Read {
            path: input.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(input).map_err(read_err)? {
            let path = entry.map_err(read_err)?.path();
            if path.is_file() && is_image(&path) {
                files.push(path);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(EvalError::InvalidArgument(format!(
                "{}: no image files ({}) found",
                input.display(),
                INPUT_EXTENSIONS.join(", ")
            )));
        }
        let mut seen: BTreeMap<PathBuf, &Path> = BTreeMap::new();
        for p in &files {
            if let Some(first) = seen.insert(png_name(p), p) {
                return Err(EvalError::InvalidArgument(format!(
                    "{} and {} would both be written to {}",
                    first.display(),
                    p.display(),
                    output.join(png_name(p)).display()
                )));
            }
        }
        let count = files.len();
        files
            .into_iter()
            .enumerate()
            .map(|(index, input)| SrJob {
                index,
                count,
                output: output.join(png_name(&input)),
                input,
            })
            .collect()
    } else {
        if !is_image(input) {
            return Err(EvalError::InvalidArgument(format!(
                "{}: not an image file (expected one of: {})",
                input.display(),
                INPUT_EXTENSIONS.join(", ")
            )));
        }
        let output = if is_image(output) && !output.is_dir() {
            output.to_path_buf()
        } else {
            output.join(png_name(input))
        };
        vec![SrJob {
            index: 0,
            count: 1,
            input: input.to_path_buf(),
            output,
        }]
    };
    let inputs: Vec<PathBuf> = jobs.iter().map(|j| resolved(&j.input)).collect();
    for job in &jobs {
        if inputs.contains(&resolved(&job.output)) {
            return Err(EvalError::InvalidArgument(format!(
                "{} would be written over the input {}; give another OUTPUT",
                job.output.display(),
                job.input.display()
            )));
        }
    }
    Ok(jobs)
}

/// What [`super_resolve_jobs`] did.
#[derive(Debug, Default)]
pub struct SrReport {
    /// The images written, in job order.
    pub written: Vec<PathBuf>,
    /// The inputs that failed and why, in job order.
    pub failed: Vec<(PathBuf, EvalError)>,
}

/// Saves `image` at `path` in the format of its extension: JPEG (quality 95) for `.jpg` /
/// `.jpeg`, BMP for `.bmp`, PNG otherwise.
///
/// # Errors
/// [`EvalError::Data`] / [`EvalError::Write`] naming the file.
pub fn save_image(image: &Image, path: &Path) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("jpg" | "jpeg") => image::ImageFormat::Jpeg,
        Some("bmp") => image::ImageFormat::Bmp,
        _ => return Ok(image.save_png(path)?),
    };
    let write_err = |e: image::ImageError| EvalError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let rgb =
        image::RgbImage::from_raw(image.width() as u32, image.height() as u32, image.to_rgb8())
            .ok_or_else(|| {
                EvalError::InvalidShape(format!("{}: buffer size mismatch", path.display()))
            })?;
    if format == image::ImageFormat::Jpeg {
        let file = std::fs::File::create(path).map_err(|source| EvalError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        let mut encoder =
            image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(file), 95);
        encoder.encode_image(&rgb).map_err(write_err)
    } else {
        rgb.save_with_format(path, format).map_err(write_err)
    }
}

/// Runs [`super_resolve`] on every job and writes the images (creating folders as needed).
/// `f(job, tile, region)` is the model; `on_done(job)` is called after each image is written
/// (for a progress display). An image that fails (it does not decode, a tile fails, the output
/// cannot be written) does not stop the others: the report lists what was written and what
/// failed.
///
/// # Errors
/// [`EvalError::InvalidArgument`] / [`EvalError::InvalidTiling`] for bad options (before any
/// image is read).
pub fn super_resolve_jobs<B, F, E>(
    jobs: &[SrJob],
    options: &SrOptions,
    device: &B::Device,
    mut f: F,
    mut on_done: impl FnMut(&SrJob),
) -> Result<SrReport>
where
    B: Backend,
    F: FnMut(&SrJob, Tensor<B, 4>, &TileRegion) -> std::result::Result<Tensor<B, 4>, E>,
    E: Into<BoxedError>,
{
    options.validate()?;
    let mut report = SrReport::default();
    for job in jobs {
        let result = (|| {
            let lr = Image::load(&job.input)?;
            let sr = super_resolve::<B, _, _>(&lr, options, device, |tile, region| {
                f(job, tile, region)
            })?;
            if let Some(dir) = job.output.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| EvalError::Write {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            save_image(&sr, &job.output)
        })();
        match result {
            Ok(()) => {
                on_done(job);
                report.written.push(job.output.clone());
            }
            Err(e) => report.failed.push((job.input.clone(), e)),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
