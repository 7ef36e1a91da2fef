//! Latent-space training pairs (`[latent]`): the files `framer encode` writes and the
//! [`PairSource`] that reads them.
//!
//! A latents folder holds one safetensors file per training crop, `000000.safetensors`, … with
//! three float32 tensors of shape `[latent_channels, h, w]`, all *unscaled* VAE moments (diffusers'
//! `latent_dist`):
//! - `hr_mean`, `hr_logvar`: the posterior of the HR crop;
//! - `lr_mean`: the posterior mean of its LR image upsampled bicubically to the HR size (the
//!   condition, as the reference encodes it).
//!
//! and `latents.toml`, written last, which says what they are (VAE preset, shapes, count, the
//! schedule and seed that made them). Storing moments rather than one sample lets training draw
//! `z = mean + exp(logvar/2)·ε` at each step from the run's seeded generator; the scaling of the
//! preset, `(z − shift_factor)·scaling_factor`, is applied when a batch is built.

use std::path::{Path, PathBuf};

use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::EngineError;
use super::data::{PairBatch, PairSource};
use super::photos::visit;
use super::rng::{Stream, step_rng};
use crate::schedule::{Experiment, LatentConfig};

/// The name of a latents folder's description file.
pub const MANIFEST: &str = "latents.toml";

/// `latents.toml`: what a latents folder holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentManifest {
    /// The VAE preset that encoded them (`sd3`, …).
    pub preset: String,
    /// The VAE weights file that encoded them.
    pub vae: PathBuf,
    /// `[latent_channels, h, w]` of every tensor.
    pub shape: [usize; 3],
    /// HR crop side in pixels.
    pub crop_size: usize,
    /// Super-resolution factor of the LR images.
    pub scale: usize,
    /// Number of files (`000000.safetensors` to `count − 1`).
    pub count: usize,
    /// The schedule's experiment name.
    pub experiment: String,
    /// The seed of the crops and degradations.
    pub seed: u64,
    /// The file stem of each item's source photo (for `[prompts]`; absent in folders written
    /// before it was recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub photos: Vec<String>,
}

/// One encoded training crop: unscaled posterior moments, `[latent_channels, h, w]` each.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentItem {
    /// Posterior mean of the HR crop.
    pub hr_mean: Vec<f32>,
    /// Posterior log-variance of the HR crop.
    pub hr_logvar: Vec<f32>,
    /// Posterior mean of the upsampled LR crop.
    pub lr_mean: Vec<f32>,
}

/// The file of item `index` in `dir`.
pub fn item_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("{index:06}.safetensors"))
}

fn io(path: &Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::Io(format!("{}: {e}", path.display()))
}

/// Writes item `index` (tensors of `shape`) into `dir`, through a temporary file renamed into
/// place.
pub fn write_item(dir: &Path, index: usize, shape: [usize; 3], item: &LatentItem) -> Result<PathBuf, EngineError> {
    let n = shape.iter().product::<usize>();
    let tensors = [("hr_mean", &item.hr_mean), ("hr_logvar", &item.hr_logvar), ("lr_mean", &item.lr_mean)];
    let bytes: Vec<(&str, Vec<u8>)> = tensors
        .iter()
        .map(|(name, v)| {
            if v.len() != n {
                return Err(EngineError::Data(format!(
                    "latent item {index}: `{name}` holds {} values, the shape {shape:?} needs {n}",
                    v.len()
                )));
            }
            Ok((*name, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        })
        .collect::<Result<_, _>>()?;
    let views = bytes
        .iter()
        .map(|(name, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.to_vec(), b).map(|v| (*name, v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EngineError::Data(format!("latent item {index}: {e}")))?;
    let path = item_path(dir, index);
    let tmp = path.with_extension("safetensors.tmp");
    safetensors::serialize_to_file(views, None, &tmp).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
    Ok(path)
}

/// Reads item `index` of `dir`, checking that each tensor is float32 of `shape`.
pub fn read_item(dir: &Path, index: usize, shape: [usize; 3]) -> Result<LatentItem, EngineError> {
    let path = item_path(dir, index);
    let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| io(&path, e))?;
    let tensor = |name: &str| -> Result<Vec<f32>, EngineError> {
        let t = file.tensor(name).map_err(|_| {
            io(&path, format!("no tensor `{name}` (a latents file holds hr_mean, hr_logvar and lr_mean)"))
        })?;
        if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape {
            return Err(io(
                &path,
                format!(
                    "tensor `{name}` is {:?} {:?}, expected F32 {shape:?} (see {MANIFEST})",
                    t.dtype(),
                    t.shape()
                ),
            ));
        }
        Ok(t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    };
    Ok(LatentItem { hr_mean: tensor("hr_mean")?, hr_logvar: tensor("hr_logvar")?, lr_mean: tensor("lr_mean")? })
}

/// Reads `dir/latents.toml`.
///
/// # Errors
/// [`EngineError::Data`] naming the file, with the command that writes it when it is missing.
pub fn read_manifest(dir: &Path) -> Result<LatentManifest, EngineError> {
    let path = dir.join(MANIFEST);
    if !path.is_file() {
        return Err(EngineError::Data(format!(
            "{} does not exist: `[latent] latents` names a folder written by `framer encode \
             SCHEDULE` (run it first; an interrupted encode leaves no {MANIFEST})",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    toml::from_str(&text).map_err(|e| io(&path, e))
}

/// Writes `dir/latents.toml` (atomically).
pub fn write_manifest(dir: &Path, manifest: &LatentManifest) -> Result<PathBuf, EngineError> {
    let path = dir.join(MANIFEST);
    let text = toml::to_string(manifest).map_err(|e| io(&path, e))?;
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
    Ok(path)
}

/// The training pairs of a latents folder: `x0` the HR latent (drawn from its posterior, or its
/// mean), the condition the upsampled LR's latent mean, both scaled by the VAE preset's
/// `(z − shift)·scaling`.
///
/// Slot `i` of step `s` is draw `n = s·batch + i`: epoch `n / count` visits the files in an order
/// shuffled by `(seed, epoch)`, and the posterior noise of draw `n` comes from `(seed, n)`, so a
/// resumed run sees the data of an uninterrupted one.
#[derive(Debug, Clone)]
pub struct LatentPairs {
    items: Vec<LatentItem>,
    /// The source photo of each item (empty when the folder does not record them).
    photos: Vec<String>,
    shape: [usize; 3],
    seed: u64,
    sample_posterior: bool,
    scaling: f32,
    shift: f32,
}

impl LatentPairs {
    /// Reads every item of `[latent] latents` into memory, after checking that the folder was
    /// encoded with the schedule's VAE preset and crop size.
    ///
    /// # Errors
    /// [`EngineError::Data`] naming the folder and what differs; I/O errors naming the file.
    pub fn open(experiment: &Experiment, latent: &LatentConfig) -> Result<Self, EngineError> {
        let dir = &latent.latents;
        let manifest = read_manifest(dir)?;
        let vae = latent.vae_config();
        let (channels, side) = experiment.model_input();
        let expected = [channels, side, side];
        if manifest.preset != latent.preset || manifest.shape != expected || manifest.count == 0 {
            return Err(EngineError::Data(format!(
                "{}: the latents there are {} × {:?} from the `{}` VAE; the schedule needs latents \
                 {expected:?} from the `{}` VAE (`[data] crop_size` {} / {}); run `framer encode` \
                 again into a new folder",
                dir.join(MANIFEST).display(),
                manifest.count,
                manifest.shape,
                manifest.preset,
                latent.preset,
                experiment.data.crop_size,
                vae.downscale_factor()
            )));
        }
        let items = (0..manifest.count)
            .map(|i| read_item(dir, i, manifest.shape))
            .collect::<Result<_, _>>()?;
        let pairs = Self::from_items(
            items,
            manifest.shape,
            experiment.train.seed,
            latent.sample_posterior,
            vae.scaling_factor as f32,
            vae.shift_factor as f32,
        );
        let photos = if manifest.photos.len() == manifest.count { manifest.photos } else { Vec::new() };
        Ok(Self { photos, ..pairs })
    }

    /// The pairs of `items` (each tensor `[shape]`), scaled by `scaling` and `shift`.
    pub fn from_items(
        items: Vec<LatentItem>,
        shape: [usize; 3],
        seed: u64,
        sample_posterior: bool,
        scaling: f32,
        shift: f32,
    ) -> Self {
        Self { items, photos: Vec::new(), shape, seed, sample_posterior, scaling, shift }
    }

    /// The number of encoded crops.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl PairSource for LatentPairs {
    fn batch(&self, step: u64, batch_size: usize) -> Result<PairBatch, EngineError> {
        let count = self.items.len();
        if count == 0 {
            return Err(EngineError::Data("the latents folder holds no items".into()));
        }
        let [c, h, w] = self.shape;
        let mut hr = Vec::with_capacity(batch_size * c * h * w);
        let mut lr = Vec::with_capacity(hr.capacity());
        let mut photos = Vec::new();
        let scale = |z: f32| (z - self.shift) * self.scaling;
        for i in 0..batch_size {
            let n = step * batch_size as u64 + i as u64;
            let (_, index) = visit(self.seed, n, count);
            let item = &self.items[index];
            photos.extend(self.photos.get(index).cloned());
            if self.sample_posterior {
                let mut rng = step_rng(self.seed, n, Stream::Posterior);
                hr.extend(item.hr_mean.iter().zip(&item.hr_logvar).map(|(m, lv)| {
                    let e: f32 = StandardNormal.sample(&mut rng);
                    scale(m + (lv * 0.5).exp() * e)
                }));
            } else {
                hr.extend(item.hr_mean.iter().map(|&m| scale(m)));
            }
            lr.extend(item.lr_mean.iter().map(|&m| scale(m)));
        }
        Ok(PairBatch { hr, lr_upsampled: lr, shape: [batch_size, c, h, w], photos })
    }

    fn photos(&self) -> Vec<String> {
        let mut names = self.photos.clone();
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(offset: f32) -> LatentItem {
        LatentItem {
            hr_mean: (0..8).map(|i| offset + i as f32).collect(),
            hr_logvar: vec![(0.25f32).ln() * 2.0; 8],
            lr_mean: (0..8).map(|i| offset - i as f32).collect(),
        }
    }

    #[test]
    fn items_round_trip_and_wrong_shapes_name_the_tensor() {
        let dir = std::env::temp_dir().join(format!("framer-latents-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = item(1.0);
        write_item(&dir, 3, [2, 2, 2], &a).unwrap();
        assert_eq!(read_item(&dir, 3, [2, 2, 2]).unwrap(), a);
        let e = read_item(&dir, 3, [2, 4, 1]).unwrap_err().to_string();
        assert!(e.contains("000003.safetensors") && e.contains("hr_mean") && e.contains("[2, 4, 1]"), "{e}");
        let e = read_manifest(&dir).unwrap_err().to_string();
        assert!(e.contains("latents.toml") && e.contains("framer encode"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn batches_are_scaled_moments_worked_by_hand() {
        // scaling 2, shift 0.5: the mean path gives (m − 0.5)·2 for HR and LR
        let pairs = LatentPairs::from_items(vec![item(0.0)], [2, 2, 2], 7, false, 2.0, 0.5);
        let b = pairs.batch(3, 2).unwrap();
        assert_eq!(b.shape, [2, 2, 2, 2]);
        for (k, v) in b.hr.iter().enumerate() {
            assert_eq!(*v, ((k % 8) as f32 - 0.5) * 2.0);
        }
        for (k, v) in b.lr_upsampled.iter().enumerate() {
            assert_eq!(*v, (-((k % 8) as f32) - 0.5) * 2.0);
        }
        // posterior draws: std exp(logvar/2) = 0.25, so (x/2 + 0.5 − m)/0.25 is the standard
        // normal draw of (seed 7, draw n), the same on every call
        let sampled = LatentPairs::from_items(vec![item(0.0)], [2, 2, 2], 7, true, 2.0, 0.5);
        let b1 = sampled.batch(3, 2).unwrap();
        assert_eq!(b1, sampled.batch(3, 2).unwrap());
        let mut rng = step_rng(7, 6, Stream::Posterior);
        for k in 0..8 {
            let e: f32 = StandardNormal.sample(&mut rng);
            let z = b1.hr[k] / 2.0 + 0.5;
            assert!((z - (k as f32 + 0.25 * e)).abs() < 1e-5, "{k}: {z} vs {}", k as f32 + 0.25 * e);
        }
        assert_ne!(b1.hr[..8], b1.hr[8..16], "draws 6 and 7 have their own noise");
        assert_eq!(b1.lr_upsampled, b.lr_upsampled, "the condition is the LR mean");
    }

    #[test]
    fn epochs_visit_every_item_once() {
        let items: Vec<_> = (0..5).map(|i| item(100.0 * i as f32)).collect();
        let pairs = LatentPairs::from_items(items, [2, 2, 2], 1, false, 1.0, 0.0);
        let b = pairs.batch(0, 5).unwrap();
        let mut firsts: Vec<i64> = b.hr.chunks(8).map(|c| c[0] as i64).collect();
        firsts.sort_unstable();
        assert_eq!(firsts, [0, 100, 200, 300, 400]);
    }
}
