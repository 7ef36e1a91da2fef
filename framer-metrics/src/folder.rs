//! Evaluating a folder of results against a folder of ground truths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{MetricError, Result};
use crate::image::MetricImage;
use crate::metric::{Metric, MetricKind};

/// File extensions (case-insensitive) picked up by [`evaluate_folders`].
pub const IMAGE_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// The scores of one image.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageScores {
    /// File stem shared by the pair (e.g. `0001` for `0001.png`).
    pub stem: String,
    /// The evaluated file.
    pub sr_path: PathBuf,
    /// Its ground truth, if a ground-truth folder was given.
    pub gt_path: Option<PathBuf>,
    /// One value per metric, in the order of [`FolderEvaluation::metrics`].
    pub values: Vec<f64>,
}

/// The result of [`evaluate_folders`]: per-image values and their means.
#[derive(Clone, Debug, PartialEq)]
pub struct FolderEvaluation {
    /// The metrics, in column order.
    pub metrics: Vec<Metric>,
    /// Per image, sorted by stem.
    pub images: Vec<ImageScores>,
    /// Border removed from every edge before each metric.
    pub crop_border: usize,
}

impl FolderEvaluation {
    /// The mean of each metric over the images, in the order of `metrics`. An infinite PSNR
    /// (an image identical to its ground truth) makes the mean infinite.
    pub fn means(&self) -> Vec<f64> {
        (0..self.metrics.len())
            .map(|j| {
                self.images.iter().map(|s| s.values[j]).sum::<f64>() / self.images.len() as f64
            })
            .collect()
    }

    /// The mean of one metric, or `None` if it was not evaluated.
    pub fn mean(&self, metric: Metric) -> Option<f64> {
        let j = self.metrics.iter().position(|&m| m == metric)?;
        Some(self.means()[j])
    }

    /// The means, labelled `name`, for [`crate::table::comparison_table`].
    pub fn summary(&self, name: impl Into<String>) -> crate::table::RunSummary {
        crate::table::RunSummary {
            name: name.into(),
            images: self.images.len(),
            values: self.metrics.iter().copied().zip(self.means()).collect(),
        }
    }
}

/// Evaluates every image of `sr_dir` against the file with the same stem in `gt_dir`.
///
/// - Files are those with an extension in [`IMAGE_EXTENSIONS`]; subfolders are ignored.
/// - Pairing is by file stem (`0001.png` ↔ `0001.jpg`), in both directions: an image without
///   a partner is an error. Pass `gt_dir = None` to compute no-reference metrics only.
/// - `crop_border` pixels are removed from every edge before every metric (BasicSR uses the
///   scale factor; StableSR-style 512² crops use 0). NIQE is cropped too.
/// - Every image must have the size of its ground truth.
///
/// # Errors
/// [`MetricError::NoMetrics`], [`MetricError::Unavailable`] (checked before any file is
/// read), [`MetricError::NeedsReference`], [`MetricError::ReadDir`],
/// [`MetricError::EmptyFolder`], [`MetricError::DuplicateStem`],
/// [`MetricError::MissingPartner`], [`MetricError::Image`],
/// [`MetricError::PairSizeMismatch`], and the metric errors.
pub fn evaluate_folders(
    sr_dir: &Path,
    gt_dir: Option<&Path>,
    crop_border: usize,
    metrics: &[Metric],
) -> Result<FolderEvaluation> {
    for m in metrics {
        m.ensure_available()?;
    }
    evaluate_folders_by(sr_dir, gt_dir, crop_border, metrics, |m, sr, gt| {
        m.compute(sr, gt, crop_border)
    })
}

/// The folder walk of [`evaluate_folders`] (listing, pairing by stem, size checks) with the
/// values computed by `score(metric, sr, gt)`, for metrics computed by models the caller holds
/// (`gt` is `Some` whenever `gt_dir` is given). `score` removes `crop_border` itself; the value
/// is recorded in the result.
///
/// # Errors
/// As [`evaluate_folders`] (the availability of `metrics` is not checked), converted to `E`,
/// and the errors of `score`.
pub fn evaluate_folders_by<E: From<MetricError>>(
    sr_dir: &Path,
    gt_dir: Option<&Path>,
    crop_border: usize,
    metrics: &[Metric],
    mut score: impl FnMut(Metric, &MetricImage, Option<&MetricImage>) -> std::result::Result<f64, E>,
) -> std::result::Result<FolderEvaluation, E> {
    if metrics.is_empty() {
        return Err(MetricError::NoMetrics.into());
    }
    for m in metrics {
        if gt_dir.is_none() && m.kind() == MetricKind::FullReference {
            return Err(MetricError::NeedsReference { name: m.name() }.into());
        }
    }
    let sr_files = list_images(sr_dir)?;
    let gt_files = gt_dir.map(list_images).transpose()?;
    if let (Some(gt_files), Some(gt_dir)) = (&gt_files, gt_dir) {
        check_partners(sr_dir, &sr_files, gt_dir, gt_files)?;
        check_partners(gt_dir, gt_files, sr_dir, &sr_files)?;
    }
    let mut images = Vec::with_capacity(sr_files.len());
    for (stem, sr_path) in sr_files {
        let sr = MetricImage::load(&sr_path).map_err(MetricError::from)?;
        let gt_path = gt_files.as_ref().map(|g| g[&stem].clone());
        let gt = match &gt_path {
            Some(p) => {
                let gt = MetricImage::load(p).map_err(MetricError::from)?;
                if (gt.width(), gt.height()) != (sr.width(), sr.height()) {
                    return Err(MetricError::PairSizeMismatch {
                        sr: sr_path,
                        gt: p.clone(),
                        width: sr.width(),
                        height: sr.height(),
                        ref_width: gt.width(),
                        ref_height: gt.height(),
                    }
                    .into());
                }
                Some(gt)
            }
            None => None,
        };
        let values = metrics
            .iter()
            .map(|&m| score(m, &sr, gt.as_ref()))
            .collect::<std::result::Result<Vec<_>, E>>()?;
        images.push(ImageScores {
            stem,
            sr_path,
            gt_path,
            values,
        });
    }
    Ok(FolderEvaluation {
        metrics: metrics.to_vec(),
        images,
        crop_border,
    })
}

fn list_images(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let read_err = |source| MetricError::ReadDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut out: BTreeMap<String, PathBuf> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        let is_image = path.is_file()
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if !is_image {
            continue;
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(first) = out.get(&stem) {
            let (first, second) = if *first < path {
                (first.clone(), path)
            } else {
                (path, first.clone())
            };
            return Err(MetricError::DuplicateStem {
                stem,
                first,
                second,
            });
        }
        out.insert(stem, path);
    }
    if out.is_empty() {
        return Err(MetricError::EmptyFolder {
            path: dir.to_path_buf(),
        });
    }
    Ok(out)
}

fn check_partners(
    dir: &Path,
    files: &BTreeMap<String, PathBuf>,
    other_dir: &Path,
    other: &BTreeMap<String, PathBuf>,
) -> Result<()> {
    let missing: Vec<&str> = files
        .keys()
        .filter(|k| !other.contains_key(*k))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut examples = missing
        .iter()
        .take(5)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if missing.len() > 5 {
        examples.push_str(", …");
    }
    Err(MetricError::MissingPartner {
        dir: dir.to_path_buf(),
        other_dir: other_dir.to_path_buf(),
        count: missing.len(),
        examples,
    })
}
