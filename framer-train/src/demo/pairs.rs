//! The images the main job scores its runs on: held-out test pairs (the embedded held-out photos)
//! and validation pairs (the embedded validation photos, neither trained nor tested on), and the
//! scores.

use std::path::Path;

use framer_data::{Degrader, Image, upsample_bicubic};
use framer_metrics::Metric;
use rand::SeedableRng;

use crate::engine::EngineError;
use crate::schedule::Experiment;

/// One evaluation pair: the HR crop, and its degraded LR upsampled back.
#[derive(Debug, Clone)]
pub struct EvalPair {
    /// The photo's name, e.g. `embedded:held_out/friends.jpg`.
    pub name: String,
    /// The HR crop.
    pub hr: Image,
    /// The degraded LR crop.
    pub lr: Image,
    /// The LR crop upsampled bicubically to the HR size.
    pub lr_upsampled: Image,
}

impl EvalPair {
    /// The photo's file stem (`friends`).
    pub fn stem(&self) -> String {
        Path::new(&self.name).file_stem().map_or_else(
            || self.name.replace(['/', ':'], "_"),
            |s| s.to_string_lossy().into_owned(),
        )
    }
}

/// Seeds of the held-out pairs' degradations: photo `i` uses `HELD_OUT_SEED + i`.
pub const HELD_OUT_SEED: u64 = 1000;

/// Seeds of the validation pairs' degradations: photo `i` uses `VALIDATION_SEED + i`.
pub const VALIDATION_SEED: u64 = 2000;

/// The held-out photos' centre crops of side `size` (rounded down to a multiple of the scale,
/// at most the photo), degraded by the schedule's degradation with the seed
/// [`HELD_OUT_SEED`]` + i` for photo `i`: the test set of the main job, `framer study` and
/// `framer analyze`. Nothing is chosen by looking at them.
///
/// # Errors
/// [`EngineError::Data`] when the photos do not load or degrade.
pub fn eval_pairs(experiment: &Experiment, size: usize) -> Result<Vec<EvalPair>, EngineError> {
    let photos = framer_data::embedded::held_out().map_err(data_err)?;
    degraded_centre_crops(experiment, photos, size, HELD_OUT_SEED)
}

/// The validation pairs: centre crops of side `size` (rounded down to a multiple of the scale, at
/// most the photo) of the embedded *validation* photos ([`framer_data::embedded::validation`]),
/// degraded by the schedule's degradation with the seed [`VALIDATION_SEED`]` + i` for photo `i`.
///
/// Training never sees these photos and they are not the test set: this is the signal settings
/// are chosen by, so that the held-out photos stay a test set.
///
/// # Errors
/// [`EngineError::Data`] when the photos do not load or degrade.
pub fn validation_pairs(experiment: &Experiment, size: usize) -> Result<Vec<EvalPair>, EngineError> {
    let photos = framer_data::embedded::validation().map_err(data_err)?;
    degraded_centre_crops(experiment, photos, size, VALIDATION_SEED)
}

fn data_err(e: framer_data::DataError) -> EngineError {
    EngineError::Data(e.to_string())
}

fn degraded_centre_crops(
    experiment: &Experiment,
    photos: Vec<framer_data::embedded::NamedImage>,
    size: usize,
    seed: u64,
) -> Result<Vec<EvalPair>, EngineError> {
    let degrader = Degrader::new(experiment.degradation.clone()).map_err(data_err)?;
    let scale = experiment.data.scale;
    photos
        .into_iter()
        .enumerate()
        .map(|(i, photo)| {
            let (w, h) = (photo.image.width(), photo.image.height());
            let side = size.min(w).min(h) / scale * scale;
            let hr = photo
                .image
                .crop((w - side) / 2, (h - side) / 2, side, side)
                .map_err(data_err)?;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed + i as u64);
            let pair = degrader.degrade(&hr, &mut rng).map_err(data_err)?;
            let lr_upsampled = upsample_bicubic(&pair.lr, scale).map_err(data_err)?;
            Ok(EvalPair {
                name: photo.name,
                hr,
                lr: pair.lr,
                lr_upsampled,
            })
        })
        .collect()
}

/// Per-image and mean scores of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoScores {
    /// Run label.
    pub name: String,
    /// `(metric, mean)` for PSNR-Y, SSIM-Y, and NIQE on crops of at least 96 pixels plus borders.
    pub means: Vec<(Metric, f64)>,
    /// `(metric, value)` of each image, in the order of the pairs.
    pub per_image: Vec<Vec<(Metric, f64)>>,
}

impl DemoScores {
    /// The mean of `metric`, if scored.
    pub fn mean(&self, metric: Metric) -> Option<f64> {
        self.means.iter().find(|(m, _)| *m == metric).map(|(_, v)| *v)
    }
}

/// Scores `images` against the HR crops of `pairs`: PSNR-Y and SSIM-Y (and NIQE on crops large
/// enough), border `crop_border`.
///
/// # Errors
/// [`EngineError::Data`] when a metric fails.
pub fn score(
    name: &str,
    images: &[Image],
    pairs: &[EvalPair],
    crop_border: usize,
) -> Result<DemoScores, EngineError> {
    // NIQE needs 96×96 blocks: scored only on crops that large
    let side = pairs.first().map_or(0, |p| p.hr.width().min(p.hr.height()));
    let metrics: &[Metric] = if side >= 96 + 2 * crop_border {
        &[Metric::PsnrY, Metric::SsimY, Metric::Niqe]
    } else {
        &[Metric::PsnrY, Metric::SsimY]
    };
    score_with(name, images, pairs, crop_border, metrics)
}

/// Scores `images` against the HR crops of `pairs` on `metrics`, border `crop_border`.
///
/// # Errors
/// [`EngineError::Data`] when a metric fails.
pub fn score_with(
    name: &str,
    images: &[Image],
    pairs: &[EvalPair],
    crop_border: usize,
    metrics: &[Metric],
) -> Result<DemoScores, EngineError> {
    let metric_err = |e: framer_metrics::MetricError| EngineError::Data(e.to_string());
    let mut sums = vec![0.0; metrics.len()];
    let mut per_image = Vec::new();
    for (image, pair) in images.iter().zip(pairs) {
        let (sr, gt) = (image, &pair.hr);
        let mut row = Vec::new();
        for (k, m) in metrics.iter().enumerate() {
            let v = m.compute(sr, Some(gt), crop_border).map_err(metric_err)?;
            sums[k] += v;
            row.push((*m, v));
        }
        per_image.push(row);
    }
    let n = images.len().max(1) as f64;
    Ok(DemoScores {
        name: name.into(),
        means: metrics.iter().zip(sums).map(|(m, s)| (*m, s / n)).collect(),
        per_image,
    })
}


/// The pairs every run of the main job (or a study) super-resolves after training: the held-out
/// test pairs and the validation pairs.
#[derive(Debug, Clone)]
pub struct EvalSets {
    /// [`eval_pairs`]: the held-out photos (the test set).
    pub test: Vec<EvalPair>,
    /// [`validation_pairs`]: crops of the validation photos (empty when the size is 0).
    pub validation: Vec<EvalPair>,
}

impl EvalSets {
    /// The test pairs at `test_size` and the validation pairs at `validation_size` (none for 0).
    ///
    /// # Errors
    /// [`EngineError::Data`] when the photos do not load or degrade.
    pub fn new(experiment: &Experiment, test_size: usize, validation_size: usize) -> Result<Self, EngineError> {
        Ok(Self {
            test: eval_pairs(experiment, test_size)?,
            validation: if validation_size == 0 {
                Vec::new()
            } else {
                validation_pairs(experiment, validation_size)?
            },
        })
    }
}

/// PSNR-Y and SSIM-Y of `images` on the validation pairs (border `crop_border`), or `None`
/// when there are no validation pairs.
///
/// # Errors
/// [`EngineError::Data`] when a metric fails.
pub fn validation_score(
    name: &str,
    images: &[Image],
    pairs: &[EvalPair],
    crop_border: usize,
) -> Result<Option<DemoScores>, EngineError> {
    if pairs.is_empty() {
        return Ok(None);
    }
    score_with(name, images, pairs, crop_border, &[Metric::PsnrY, Metric::SsimY]).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{DemoOptions, VariantKind, experiment};

    #[test]
    fn validation_pairs_are_fixed_centre_crops_of_the_validation_photos() {
        let exp = experiment(&DemoOptions::default(), VariantKind::Baseline, 0, false).unwrap();
        let photos = framer_data::embedded::validation().unwrap();
        let pairs = validation_pairs(&exp, 130).unwrap();
        assert_eq!(pairs.len(), photos.len());
        for (pair, photo) in pairs.iter().zip(&photos) {
            assert_eq!(pair.name, photo.name);
            // 130 rounded down to a multiple of the scale 4
            assert_eq!((pair.hr.width(), pair.hr.height()), (128, 128));
            assert_eq!((pair.lr.width(), pair.lr.height()), (32, 32));
            let (w, h) = (photo.image.width(), photo.image.height());
            let centre = photo.image.crop((w - 128) / 2, (h - 128) / 2, 128, 128).unwrap();
            assert_eq!(pair.hr.data(), centre.data());
        }
        // fixed seeds: the same pairs every time; the degradation differs from photo to photo
        let again = validation_pairs(&exp, 130).unwrap();
        assert!(pairs.iter().zip(&again).all(|(a, b)| a.lr.data() == b.lr.data()));
        // the held-out test pairs and the training photos are other photos
        let test = eval_pairs(&exp, 128).unwrap();
        assert!(test.iter().all(|t| pairs.iter().all(|p| p.name != t.name)));
        let train = framer_data::embedded::train().unwrap();
        assert!(train.iter().all(|t| pairs.iter().all(|p| p.name != t.name && p.hr.data() != t.image.data())));
        assert!(EvalSets::new(&exp, 64, 0).unwrap().validation.is_empty());
    }
}
