//! The `sr` pipeline, independent of the model: bicubic-upsample the LR image to the SR size,
//! run the caller's sampler on overlapping tiles of the training size ([`crate::tiling`]),
//! apply a colour fix against the upsampled LR ([`ColorFix`]), clamp to `[0, 1]` and save a PNG.
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

use burn::tensor::{Tensor, backend::Backend};
use framer_data::{Image, upsample_bicubic};

use crate::color_fix::ColorFix;
use crate::error::{BoxedError, EvalError, Result};
use crate::tiling::{BlendWindow, TileConfig, TileRegion, process_tiled_image};

/// File extensions (lower case) read as input images.
pub const INPUT_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// Settings of [`super_resolve`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SrOptions {
    /// Integer upscaling factor (4 for the paper's ×4 setting).
    pub scale: usize,
    /// Tile side at the SR resolution: the model's training size (512 px in the paper).
    pub tile: usize,
    /// Overlap of neighbouring tiles at the SR resolution (DiT4SR: 24 latent px ≈ 192 px).
    pub overlap: usize,
    /// Blending window of the tiles.
    pub window: BlendWindow,
    /// Colour fix against the upsampled LR.
    pub color_fix: ColorFix,
}

impl SrOptions {
    /// `scale`, tiles of side `tile` overlapping by a quarter of a tile (rounded down), Gaussian
    /// blending, AdaIN colour fix.
    pub fn new(scale: usize, tile: usize) -> Self {
        Self {
            scale,
            tile,
            overlap: tile / 4,
            window: BlendWindow::default(),
            color_fix: ColorFix::default(),
        }
    }

    /// Sets the overlap.
    pub fn with_overlap(mut self, overlap: usize) -> Self {
        self.overlap = overlap;
        self
    }

    /// Sets the colour fix.
    pub fn with_color_fix(mut self, color_fix: ColorFix) -> Self {
        self.color_fix = color_fix;
        self
    }

    /// Sets the blending window.
    pub fn with_window(mut self, window: BlendWindow) -> Self {
        self.window = window;
        self
    }

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
    let upsampled = upsample_bicubic(lr, options.scale)?;
    let sr = process_tiled_image(&upsampled, device, &options.tile_config(), f)?;
    let mut fixed = options.color_fix.apply(&sr, &upsampled)?;
    fixed.clamp01();
    Ok(fixed)
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
    /// The PNG to write.
    pub output: PathBuf,
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| INPUT_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The jobs for `input` (an image file or a folder of images) and `output`:
///
/// - a file and an output ending in `.png`: that file;
/// - a file and any other output: `output/<stem>.png`;
/// - a folder: every image directly inside (sorted by name, subfolders ignored) to
///   `output/<stem>.png`.
///
/// # Errors
/// [`EvalError::Read`] if `input` does not exist or cannot be listed;
/// [`EvalError::InvalidArgument`] if a file has no image extension, a folder has no images, or
/// two inputs share a stem (`a.png`, `a.jpg`).
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
    let inputs: Vec<PathBuf> = if meta.is_dir() {
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
        files
    } else {
        if !is_image(input) {
            return Err(EvalError::InvalidArgument(format!(
                "{}: not an image file (expected one of: {})",
                input.display(),
                INPUT_EXTENSIONS.join(", ")
            )));
        }
        let single_file = output
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        if single_file {
            return Ok(vec![SrJob {
                index: 0,
                count: 1,
                input: input.to_path_buf(),
                output: output.to_path_buf(),
            }]);
        }
        vec![input.to_path_buf()]
    };
    let mut seen: BTreeMap<PathBuf, &Path> = BTreeMap::new();
    for p in &inputs {
        if let Some(first) = seen.insert(png_name(p), p) {
            return Err(EvalError::InvalidArgument(format!(
                "{} and {} would both be written to {}",
                first.display(),
                p.display(),
                output.join(png_name(p)).display()
            )));
        }
    }
    let count = inputs.len();
    Ok(inputs
        .into_iter()
        .enumerate()
        .map(|(index, input)| SrJob {
            index,
            count,
            output: output.join(png_name(&input)),
            input,
        })
        .collect())
}

/// Runs [`super_resolve`] on every job and writes the PNGs (creating folders as needed).
/// `f(job, tile, region)` is the model; `on_done(job)` is called after each image is written
/// (for a progress display). Returns the written paths.
///
/// # Errors
/// [`EvalError::Data`] if an input cannot be decoded or an output written (naming the file),
/// [`EvalError::Write`] if a folder cannot be created, and the errors of [`super_resolve`].
pub fn super_resolve_jobs<B, F, E>(
    jobs: &[SrJob],
    options: &SrOptions,
    device: &B::Device,
    mut f: F,
    mut on_done: impl FnMut(&SrJob),
) -> Result<Vec<PathBuf>>
where
    B: Backend,
    F: FnMut(&SrJob, Tensor<B, 4>, &TileRegion) -> std::result::Result<Tensor<B, 4>, E>,
    E: Into<BoxedError>,
{
    options.validate()?;
    let mut written = Vec::with_capacity(jobs.len());
    for job in jobs {
        let lr = Image::load(&job.input)?;
        let sr =
            super_resolve::<B, _, _>(&lr, options, device, |tile, region| f(job, tile, region))?;
        if let Some(dir) = job.output.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| EvalError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        sr.save_png(&job.output)?;
        on_done(job);
        written.push(job.output.clone());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use std::convert::Infallible;

    type B = Flex;

    fn lr(w: usize, h: usize) -> Image {
        Image::from_fn(w, h, |c, y, x| {
            0.2 + 0.6 * (((x * 5 + y * 3 + c) % 9) as f32 / 9.0)
        })
        .unwrap()
    }

    #[test]
    fn identity_model_gives_the_colour_fixed_bicubic_upsampling() {
        let img = lr(13, 9);
        let up = upsample_bicubic(&img, 2).unwrap();
        for fix in [
            ColorFix::None,
            ColorFix::AdaptiveInstanceNormalization,
            ColorFix::Wavelet,
        ] {
            let options = SrOptions::new(2, 16).with_overlap(6).with_color_fix(fix);
            let mut calls = 0;
            let sr = super_resolve::<B, _, _>(&img, &options, &Default::default(), |t, r| {
                calls += 1;
                assert_eq!(t.dims(), [1, 3, 16, 16]);
                assert_eq!(r.count, 4); // 26×18 in 16-px tiles: 2 × 2
                Ok::<_, Infallible>(t)
            })
            .unwrap();
            assert_eq!(calls, 4);
            let mut expected = up.clone();
            expected.clamp01();
            // identity model: tiling returns the upsampled image, and a colour fix of an image
            // against itself is the identity (to rounding)
            let err = sr
                .data()
                .iter()
                .zip(expected.data())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(err < 1e-5, "{fix:?}: {err}");
        }
    }

    #[test]
    fn colour_fix_moves_a_colour_shifted_model_back() {
        let img = lr(16, 16);
        let options = SrOptions::new(2, 16);
        // a "model" that shifts every colour by +0.2: AdaIN restores the mean
        let sr = super_resolve::<B, _, _>(&img, &options, &Default::default(), |t, _| {
            Ok::<_, Infallible>(t.add_scalar(0.2))
        })
        .unwrap();
        let up = upsample_bicubic(&img, 2).unwrap();
        for c in 0..3 {
            let m = |p: &[f32]| p.iter().sum::<f32>() / p.len() as f32;
            assert!((m(sr.channel(c)) - m(up.channel(c))).abs() < 2e-3);
        }
    }

    #[test]
    fn jobs_for_files_and_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("lr");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        lr(8, 8).save_png(dir.join("b.png")).unwrap();
        lr(8, 8).save_png(dir.join("a.png")).unwrap();
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        let out = tmp.path().join("out");
        let jobs = plan_jobs(&dir, &out).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(
            (jobs[0].output.clone(), jobs[1].count),
            (out.join("a.png"), 2)
        );
        let single = plan_jobs(&dir.join("a.png"), &tmp.path().join("x.png")).unwrap();
        assert_eq!(single[0].output, tmp.path().join("x.png"));
        let into_dir = plan_jobs(&dir.join("a.png"), &out).unwrap();
        assert_eq!(into_dir[0].output, out.join("a.png"));

        let mut done = Vec::new();
        let written = super_resolve_jobs::<B, _, _>(
            &jobs,
            &SrOptions::new(2, 8).with_overlap(2),
            &Default::default(),
            |_, t, _| Ok::<_, Infallible>(t),
            |j| done.push(j.index),
        )
        .unwrap();
        assert_eq!(done, vec![0, 1]);
        let back = Image::load(&written[1]).unwrap();
        assert_eq!((back.width(), back.height()), (16, 16));
    }

    #[test]
    fn bad_paths_and_options_give_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("missing.png");
        let e = plan_jobs(&missing, tmp.path()).unwrap_err();
        assert!(
            matches!(e, EvalError::Read { .. }) && e.to_string().contains("missing.png"),
            "{e}"
        );
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(
            plan_jobs(&empty, tmp.path())
                .unwrap_err()
                .to_string()
                .contains("no image files")
        );
        let txt = tmp.path().join("a.txt");
        std::fs::write(&txt, "x").unwrap();
        assert!(
            plan_jobs(&txt, tmp.path())
                .unwrap_err()
                .to_string()
                .contains("not an image")
        );
        let dup = tmp.path().join("dup");
        std::fs::create_dir_all(&dup).unwrap();
        lr(4, 4).save_png(dup.join("a.png")).unwrap();
        std::fs::copy(dup.join("a.png"), dup.join("a.bmp")).unwrap();
        assert!(
            plan_jobs(&dup, tmp.path())
                .unwrap_err()
                .to_string()
                .contains("both be written")
        );
        // a corrupt image names its path
        std::fs::write(dup.join("a.bmp"), b"not an image").unwrap();
        let jobs = vec![SrJob {
            index: 0,
            count: 1,
            input: dup.join("a.bmp"),
            output: tmp.path().join("o.png"),
        }];
        let e = super_resolve_jobs::<B, _, _>(
            &jobs,
            &SrOptions::new(2, 8),
            &Default::default(),
            |_, t, _| Ok::<_, Infallible>(t),
            |_| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("a.bmp"), "{e}");
        assert!(SrOptions::new(0, 8).validate().is_err());
        assert!(SrOptions::new(4, 8).with_overlap(8).validate().is_err());
    }

    #[test]
    fn tile_seeds_differ_and_are_stable() {
        assert_eq!(tile_seed(7, 1, 2), tile_seed(7, 1, 2));
        let seeds: std::collections::BTreeSet<u64> = (0..4)
            .flat_map(|i| (0..4).map(move |t| tile_seed(7, i, t)))
            .collect();
        assert_eq!(seeds.len(), 16);
        assert_ne!(tile_seed(7, 0, 0), tile_seed(8, 0, 0));
    }
}
