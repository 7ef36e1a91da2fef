//! Datasets: HR photos → random crops → degraded pairs (training), and paired HR/LR folders
//! (evaluation, the RealSR / DRealSR layout).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::degrade::{Degrader, Pair};
use crate::embedded::{self, NamedImage};
use crate::error::{DataError, Result};
use crate::image::{CHANNELS, Image};
use crate::resize::downscale_half;

/// File extensions (case-insensitive) treated as images when listing a folder.
pub const IMAGE_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// Sorted image files of a folder (by [`IMAGE_EXTENSIONS`]; other files and sub-folders are ignored).
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)));
        if is_image && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(DataError::EmptyFolder {
            path: dir.to_path_buf(),
        });
    }
    Ok(files)
}

/// What [`TrainPairs`] does with a photo smaller than the crop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SmallImages {
    /// Fail with [`DataError::TooSmall`] naming the file (the default).
    #[default]
    Error,
    /// Leave the photo out (fails with [`DataError::TooSmall`] only if no photo is left).
    Skip,
}

/// Options of [`TrainPairs`].
#[derive(Clone, Debug)]
pub struct TrainPairsOptions {
    /// Side of the square HR crop (`gt_size`). Default 512.
    pub crop_size: usize,
    /// Photos whose shorter side is at least this are halved once (2×2 box average, antialiased)
    /// when loaded, so that JPEG blocks of the source fall below one pixel. `None` disables it.
    /// Default `Some(1024)` (the embedded photos are smaller and are never halved).
    pub halve_min_side: Option<usize>,
    /// Random horizontal flip (probability ½). Default `true`.
    pub hflip: bool,
    /// Random vertical flip and transpose (probability ½ each; with `hflip` the 8 dihedral
    /// transforms, as BasicSR's `use_rot`). Default `true`.
    pub rot: bool,
    /// Policy for photos smaller than the crop. Default [`SmallImages::Error`].
    pub small_images: SmallImages,
}

impl Default for TrainPairsOptions {
    fn default() -> Self {
        Self {
            crop_size: 512,
            halve_min_side: Some(1024),
            hflip: true,
            rot: true,
            small_images: SmallImages::Error,
        }
    }
}

/// A photo kept in memory as 8-bit interleaved RGB.
#[derive(Clone, Debug)]
struct Photo {
    name: String,
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Photo {
    fn crop(&self, left: usize, top: usize, size: usize) -> Result<Image> {
        let plane = size * size;
        let mut data = vec![0.0f32; CHANNELS * plane];
        for y in 0..size {
            let row = &self.rgb[((top + y) * self.width + left) * CHANNELS
                ..((top + y) * self.width + left + size) * CHANNELS];
            for (x, px) in row.chunks_exact(CHANNELS).enumerate() {
                for c in 0..CHANNELS {
                    data[c * plane + y * size + x] = f32::from(px[c]) / 255.0;
                }
            }
        }
        Image::from_chw(size, size, data)
    }
}

/// SplitMix64 finaliser, used to derive per-item seeds.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG of item `index` under `seed` (ChaCha8, seeded from a hash of both): what
/// [`TrainPairs::get`] uses, exposed for reproducing an item elsewhere.
pub fn item_rng(seed: u64, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(splitmix64(seed ^ splitmix64(index)))
}

/// Training pairs made on the fly: photo `index % len` → random `crop_size²` crop → random flips
/// → [`Degrader::degrade`]. Deterministic per `(seed, index)`.
///
/// Photos are decoded once when the dataset is built (so a bad file fails early, naming it) and
/// kept in memory as 8-bit RGB.
#[derive(Clone, Debug)]
pub struct TrainPairs {
    photos: Vec<Photo>,
    degrader: Degrader,
    options: TrainPairsOptions,
}

impl TrainPairs {
    /// Loads every image of `dir` (see [`list_images`]).
    pub fn from_folder(
        dir: impl AsRef<Path>,
        degrader: Degrader,
        options: TrainPairsOptions,
    ) -> Result<Self> {
        let mut images = Vec::new();
        for path in list_images(dir.as_ref())? {
            let image = Image::load(&path)?;
            images.push(NamedImage {
                name: path.display().to_string(),
                image,
            });
        }
        Self::from_images(images, degrader, options)
    }

    /// The embedded training photos ([`embedded::train`]).
    pub fn embedded(degrader: Degrader, options: TrainPairsOptions) -> Result<Self> {
        Self::from_images(embedded::train()?, degrader, options)
    }

    /// Builds the dataset from images already in memory.
    pub fn from_images(
        images: Vec<NamedImage>,
        degrader: Degrader,
        options: TrainPairsOptions,
    ) -> Result<Self> {
        let crop = options.crop_size;
        if crop == 0 || !crop.is_multiple_of(degrader.scale()) {
            return Err(DataError::InvalidImage(format!(
                "crop size {crop} must be a positive multiple of the scale {}",
                degrader.scale()
            )));
        }
        let mut photos = Vec::with_capacity(images.len());
        let mut first_small = None;
        for NamedImage { name, mut image } in images {
            if let Some(min_side) = options.halve_min_side
                && image.width().min(image.height()) >= min_side
            {
                image = downscale_half(&image)?;
            }
            let (w, h) = (image.width(), image.height());
            if w < crop || h < crop {
                let e = DataError::TooSmall {
                    path: PathBuf::from(&name),
                    width: w,
                    height: h,
                    crop,
                };
                match options.small_images {
                    SmallImages::Error => return Err(e),
                    SmallImages::Skip => {
                        first_small.get_or_insert(e);
                        continue;
                    }
                }
            }
            photos.push(Photo {
                name,
                width: w,
                height: h,
                rgb: image.to_rgb8(),
            });
        }
        if photos.is_empty() {
            return Err(first_small
                .unwrap_or_else(|| DataError::InvalidImage("no training photos given".into())));
        }
        Ok(Self {
            photos,
            degrader,
            options,
        })
    }

    /// Number of photos (indices wrap around it).
    pub fn len(&self) -> usize {
        self.photos.len()
    }

    /// Whether there is no photo (never true for a successfully built dataset).
    pub fn is_empty(&self) -> bool {
        self.photos.is_empty()
    }

    /// Names (paths or embedded names) of the photos, in index order.
    pub fn names(&self) -> Vec<&str> {
        self.photos.iter().map(|p| p.name.as_str()).collect()
    }

    /// The degrader.
    pub fn degrader(&self) -> &Degrader {
        &self.degrader
    }

    /// The options.
    pub fn options(&self) -> &TrainPairsOptions {
        &self.options
    }

    fn crop_with<R: Rng + ?Sized>(&self, index: usize, rng: &mut R) -> Result<Image> {
        let photo = &self.photos[index % self.photos.len()];
        let size = self.options.crop_size;
        let top = rng.random_range(0..=photo.height - size);
        let left = rng.random_range(0..=photo.width - size);
        let mut img = photo.crop(left, top, size)?;
        if self.options.hflip && rng.random::<f64>() < 0.5 {
            img.flip_horizontal();
        }
        if self.options.rot {
            if rng.random::<f64>() < 0.5 {
                img.flip_vertical();
            }
            if rng.random::<f64>() < 0.5 {
                img = img.transpose();
            }
        }
        Ok(img)
    }

    /// The augmented HR crop of item `index` (`[3, crop, crop]`), without degradation; the same
    /// crop that [`TrainPairs::get`] degrades.
    pub fn crop(&self, index: usize, seed: u64) -> Result<Image> {
        self.crop_with(index, &mut item_rng(seed, index as u64))
    }

    /// The pair of item `index` under `seed`: HR `[3, crop, crop]`, LR `[3, crop/scale, crop/scale]`.
    /// Any `index` is valid (it wraps around the photos).
    pub fn get(&self, index: usize, seed: u64) -> Result<Pair> {
        let mut rng = item_rng(seed, index as u64);
        let hr = self.crop_with(index, &mut rng)?;
        self.degrader.degrade(&hr, &mut rng)
    }
}

/// An evaluation pair read from [`PairedFolders`].
#[derive(Clone, Debug, PartialEq)]
pub struct EvalPair {
    /// The matching key (file stem without a resolution suffix).
    pub name: String,
    /// High-resolution reference, `[3, H, W]`.
    pub hr: Image,
    /// Low-resolution input, `[3, h, w]`.
    pub lr: Image,
}

impl EvalPair {
    /// The integer factor `H / h` if both axes agree exactly (`None` otherwise).
    pub fn scale(&self) -> Option<usize> {
        let (hw, hh, lw, lh) = (
            self.hr.width(),
            self.hr.height(),
            self.lr.width(),
            self.lr.height(),
        );
        (hw % lw == 0 && hh % lh == 0 && hw / lw == hh / lh).then_some(hw / lw)
    }
}

/// The matching key of a file: its stem, lower-cased, without a trailing resolution tag
/// `_hr`, `_lr`, `_lr<digits>`, `_x<digits>` (RealSR: `Canon_001_HR` / `Canon_001_LR4`;
/// DRealSR: `x_x1` / `x_x4`).
pub fn pairing_key(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if let Some(pos) = stem.rfind('_') {
        let tag = &stem[pos + 1..];
        let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
        let is_tag = tag == "hr"
            || tag == "lr"
            || tag.strip_prefix("lr").is_some_and(digits)
            || tag.strip_prefix('x').is_some_and(digits);
        if is_tag && pos > 0 {
            return stem[..pos].to_string();
        }
    }
    stem
}

/// Paired HR/LR folders for evaluation (RealSR / DRealSR layout), matched by [`pairing_key`].
///
/// Opening fails if a file of either folder has no partner in the other, or if two files of one
/// folder share a key. Images are decoded on [`PairedFolders::get`].
#[derive(Clone, Debug)]
pub struct PairedFolders {
    entries: Vec<(String, PathBuf, PathBuf)>,
}

fn keyed(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut map: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in list_images(dir)? {
        let key = pairing_key(&path);
        if let Some(first) = map.get(&key) {
            return Err(DataError::DuplicateStem {
                first: first.clone(),
                second: path,
                stem: key,
            });
        }
        map.insert(key, path);
    }
    Ok(map)
}

impl PairedFolders {
    /// Lists and matches the two folders.
    pub fn open(hr_dir: impl AsRef<Path>, lr_dir: impl AsRef<Path>) -> Result<Self> {
        let (hr_dir, lr_dir) = (hr_dir.as_ref(), lr_dir.as_ref());
        let hr = keyed(hr_dir)?;
        let lr = keyed(lr_dir)?;
        for (key, path) in &hr {
            if !lr.contains_key(key) {
                return Err(DataError::MissingPartner {
                    file: path.clone(),
                    missing_in: lr_dir.to_path_buf(),
                    stem: key.clone(),
                });
            }
        }
        for (key, path) in &lr {
            if !hr.contains_key(key) {
                return Err(DataError::MissingPartner {
                    file: path.clone(),
                    missing_in: hr_dir.to_path_buf(),
                    stem: key.clone(),
                });
            }
        }
        let entries = hr
            .into_iter()
            .map(|(k, hp)| (k.clone(), hp, lr[&k].clone()))
            .collect();
        Ok(Self { entries })
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no pair (never true for a successfully opened dataset).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The matching keys, in index order (sorted).
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.0.as_str()).collect()
    }

    /// The file paths `(hr, lr)` of pair `index`.
    pub fn paths(&self, index: usize) -> Option<(&Path, &Path)> {
        self.entries
            .get(index)
            .map(|e| (e.1.as_path(), e.2.as_path()))
    }

    /// Loads pair `index`.
    pub fn get(&self, index: usize) -> Result<EvalPair> {
        let (name, hr, lr) = self.entries.get(index).ok_or(DataError::IndexOutOfRange {
            index,
            len: self.entries.len(),
        })?;
        Ok(EvalPair {
            name: name.clone(),
            hr: Image::load(hr)?,
            lr: Image::load(lr)?,
        })
    }
}
