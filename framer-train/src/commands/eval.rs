//! `framer eval`: score a folder of super-resolved images against ground truths, or several
//! runs side by side (`--compare NAME=DIR …`).
//!
//! The network metrics are computed (on the CPU or, with `--device cuda`, the GPU) when their
//! weight files are given: LPIPS
//! (`--lpips-weights DIR`, or `--lpips-backbone FILE --lpips-linear FILE`), MUSIQ
//! (`--musiq-weights FILE`) and MANIQA (`--maniqa-weights FILE`), pyiqa's checkpoints. They need
//! the feature `iqa` (on by default); a build without it names the feature when one of them is
//! asked for ([`without_iqa`]).

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use framer_eval::compare::{
    ImageMetric, MetricModels, PairMetric, RunSpec, compare_runs_with, evaluate_run_with,
    unavailable_note,
};
use framer_metrics::{Metric, TableFormat};

use super::CommandError;

/// The metrics that need pretrained network weights, computed only from user-supplied files.
pub const NETWORK_METRICS: [Metric; 3] = [Metric::Lpips, Metric::Musiq, Metric::Maniqa];

/// Why the network metrics are absent from a build without the feature `iqa`.
pub const NO_IQA: &str = "this `framer` was built without the `iqa` feature (the LPIPS, MUSIQ \
                          and MANIQA networks); rebuild with `cargo build --release` (the \
                          feature is on by default) or `--features iqa`";

/// Settings of `framer eval`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EvalSettings {
    /// Folder of super-resolved images (single-run mode).
    pub sr_dir: Option<PathBuf>,
    /// Runs to compare, `NAME=DIR` (comparison mode; at least two).
    pub compare: Vec<String>,
    /// Ground-truth folder, paired by file stem.
    pub gt: Option<PathBuf>,
    /// Pixels removed from every edge before scoring.
    pub crop_border: usize,
    /// Comma-separated metric names (`psnr_y,ssim_y,niqe`, …).
    pub metrics: String,
    /// Also write the table as CSV here (single-run mode).
    pub csv: Option<PathBuf>,
    /// Also write the table as Markdown here (single-run mode).
    pub md: Option<PathBuf>,
    /// Folder of the comparison's table files and bar chart (comparison mode).
    pub out: Option<PathBuf>,
    /// Folder holding the LPIPS weight files (found by name, see
    /// `framer_iqa::LpipsFiles::find_in`).
    pub lpips_weights: Option<PathBuf>,
    /// LPIPS backbone weights file (torchvision `alexnet-owt-*.pth` / `vgg16-*.pth`, or
    /// `.safetensors`); with [`EvalSettings::lpips_linear`], instead of `lpips_weights`.
    pub lpips_backbone: Option<PathBuf>,
    /// LPIPS linear-layer weights file (`lpips` package `weights/v0.1/alex.pth`, or
    /// `.safetensors`).
    pub lpips_linear: Option<PathBuf>,
    /// LPIPS backbone network, `alex` (empty means `alex`) or `vgg`.
    pub lpips_net: String,
    /// pyiqa's MUSIQ checkpoint (`musiq_koniq_ckpt-e95806b9.pth`, …).
    pub musiq_weights: Option<PathBuf>,
    /// pyiqa's MANIQA checkpoint (`ckpt_koniq10k.pt`, …); the configuration follows the file
    /// name (`framer_iqa::ManiqaConfig::for_file`: `pipal` in the name selects the PIPAL
    /// variant).
    pub maniqa_weights: Option<PathBuf>,
}

impl EvalSettings {
    /// The network metrics these settings ask for: listed in `metrics`, or given weight files.
    pub fn network_metrics(&self, metrics: &[Metric]) -> Vec<Metric> {
        let given = |m: Metric| match m {
            Metric::Lpips => {
                self.lpips_weights.is_some()
                    || self.lpips_backbone.is_some()
                    || self.lpips_linear.is_some()
            }
            Metric::Musiq => self.musiq_weights.is_some(),
            _ => self.maniqa_weights.is_some(),
        };
        NETWORK_METRICS
            .into_iter()
            .filter(|&m| metrics.contains(&m) || given(m))
            .collect()
    }
}

/// In a build without the feature `iqa`: the error naming the feature when `settings` ask for a
/// network metric (in `metrics` or by a weight file), else `None`.
pub fn without_iqa(settings: &EvalSettings, metrics: &[Metric]) -> Option<CommandError> {
    let asked = settings.network_metrics(metrics);
    if asked.is_empty() {
        return None;
    }
    let names: Vec<&str> = asked.iter().map(|m| m.name()).collect();
    Some(CommandError::Invalid(format!(
        "{} cannot be computed: {NO_IQA}",
        names.join(", ")
    )))
}

/// Runs the evaluation and returns the text to print (the table, then the note on the metrics
/// that are not computed, then the files written). With the weight files of a network metric
/// (LPIPS, MUSIQ, MANIQA), the metric is added to the list if it is not there, and its network
/// runs on `device` of backend `B`.
///
/// # Errors
/// [`CommandError`] for a missing folder, an image without partner or of another size than its
/// ground truth (naming both files), unknown metric names, conflicting arguments, or an
/// unusable weight file (naming the file and the missing or mis-shaped tensor).
pub fn run_eval<B: Backend>(
    settings: &EvalSettings,
    device: &B::Device,
) -> Result<String, CommandError> {
    let metrics = Metric::parse_list(&settings.metrics)
        .map_err(|e| CommandError::Invalid(format!("--metrics: {e}")))?;
    #[cfg(feature = "iqa")]
    let mut metrics = metrics;
    #[cfg(feature = "iqa")]
    let networks = networks::Networks::<B>::load(settings, &mut metrics, device)?;
    #[cfg(feature = "iqa")]
    let (pair, image) = networks.models();
    #[cfg(not(feature = "iqa"))]
    let (pair, image) = {
        let _ = device; // only the networks run on the device
        if let Some(e) = without_iqa(settings, &metrics) {
            return Err(e);
        }
        (
            Vec::<&dyn PairMetric>::new(),
            Vec::<&dyn ImageMetric>::new(),
        )
    };
    let models = MetricModels {
        pair: &pair,
        image: &image,
    };
    let gt = settings.gt.as_deref();
    if let Some(gt) = gt
        && !gt.is_dir()
    {
        return Err(CommandError::Invalid(format!(
            "ground-truth folder {} does not exist",
            gt.display()
        )));
    }
    let mut text;
    let skipped: Vec<Metric>;
    if settings.compare.is_empty() {
        let sr_dir = settings.sr_dir.as_deref().ok_or_else(|| {
            CommandError::Invalid(
                "give a folder of SR images, or --compare NAME=DIR NAME=DIR".into(),
            )
        })?;
        check_dir(sr_dir)?;
        check_niqe_sizes(&metrics, &[sr_dir], settings.crop_border)?;
        let report = evaluate_run_with(sr_dir, gt, settings.crop_border, &metrics, models)?;
        text = report.table(TableFormat::Terminal);
        skipped = report.skipped.clone();
        for (path, format) in [
            (&settings.csv, TableFormat::Csv),
            (&settings.md, TableFormat::Markdown),
        ] {
            if let Some(path) = path {
                write(path, &report.table(format))?;
                text.push_str(&format!("\nwrote {}", path.display()));
            }
        }
    } else {
        if settings.sr_dir.is_some() {
            return Err(CommandError::Invalid(
                "give either a folder of SR images or --compare NAME=DIR …, not both".into(),
            ));
        }
        let runs = settings
            .compare
            .iter()
            .map(|s| RunSpec::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        for r in &runs {
            check_dir(&r.sr_dir)?;
        }
        let dirs: Vec<&Path> = runs.iter().map(|r| r.sr_dir.as_path()).collect();
        check_niqe_sizes(&metrics, &dirs, settings.crop_border)?;
        let comparison = compare_runs_with(&runs, gt, settings.crop_border, &metrics, models)?;
        text = comparison.table(TableFormat::Terminal)?;
        skipped = comparison.skipped.clone();
        let out = settings
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("comparison"));
        for p in comparison.write(&out)? {
            text.push_str(&format!("\nwrote {}", p.display()));
        }
    }
    // The network metrics that were not requested are still named, so that a reader of the
    // output knows why they are absent.
    if skipped.is_empty() {
        let absent: Vec<Metric> = NETWORK_METRICS
            .into_iter()
            .filter(|&m| !models.computes(m))
            .collect();
        if cfg!(feature = "iqa") {
            if let Some(note) = unavailable_note(&absent) {
                text.push_str(&format!("\n{note}"));
            }
        } else {
            text.push_str(&format!("\nnot computed: lpips, musiq, maniqa ({NO_IQA})"));
        }
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// NIQE scores whole 96×96 blocks: with `niqe` among `metrics`, every image of `dirs` must keep
/// at least 96×96 pixels once `crop_border` pixels are removed from each edge (image headers only
/// are read).
///
/// # Errors
/// [`CommandError::Invalid`] naming each image that is too small, and the metrics that do not
/// need the size.
fn check_niqe_sizes(
    metrics: &[Metric],
    dirs: &[&Path],
    crop_border: usize,
) -> Result<(), CommandError> {
    const BLOCK: usize = 96;
    if !metrics.contains(&Metric::Niqe) {
        return Ok(());
    }
    let mut small = Vec::new();
    for dir in dirs {
        let Ok(files) = framer_data::dataset::list_images(dir) else {
            continue; // the evaluation itself names what is wrong with the folder
        };
        for file in files {
            let Ok((w, h)) = image::ImageReader::open(&file)
                .and_then(|r| r.with_guessed_format())
                .map_err(image::ImageError::IoError)
                .and_then(|r| r.into_dimensions())
            else {
                continue;
            };
            let (w, h) = (w as usize, h as usize);
            if w.saturating_sub(2 * crop_border) < BLOCK
                || h.saturating_sub(2 * crop_border) < BLOCK
            {
                small.push(format!("{} ({w}x{h})", file.display()));
            }
        }
    }
    if small.is_empty() {
        return Ok(());
    }
    let others: Vec<String> = metrics
        .iter()
        .filter(|&&m| m != Metric::Niqe)
        .map(|m| m.to_string())
        .collect();
    Err(CommandError::Invalid(format!(
        "niqe needs images of at least {BLOCK}x{BLOCK} pixels after removing --crop-border \
         {crop_border} from each edge; too small: {}. Leave niqe out, e.g. `--metrics {}`",
        small.join(", "),
        if others.is_empty() {
            "psnr_y,ssim_y".to_string()
        } else {
            others.join(",")
        }
    )))
}

fn check_dir(dir: &Path) -> Result<(), CommandError> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(CommandError::Invalid(format!(
            "folder {} does not exist",
            dir.display()
        )))
    }
}

fn write(path: &Path, text: &str) -> Result<(), CommandError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| CommandError::Invalid(format!("{}: {e}", dir.display())))?;
    }
    std::fs::write(path, text)
        .map_err(|e| CommandError::Invalid(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_iqa_names_the_feature_and_the_metrics_asked_for() {
        let plain = EvalSettings::default();
        assert!(without_iqa(&plain, &[Metric::PsnrY, Metric::Niqe]).is_none());
        let e = without_iqa(&plain, &[Metric::PsnrY, Metric::Maniqa, Metric::Lpips]).unwrap();
        let msg = e.to_string();
        assert!(
            msg.contains("lpips, maniqa cannot be computed") && msg.contains("`iqa` feature"),
            "{msg}"
        );
        // a weight file asks for its metric even when --metrics leaves it out
        let musiq = EvalSettings {
            musiq_weights: Some(PathBuf::from("musiq.pth")),
            ..EvalSettings::default()
        };
        let msg = without_iqa(&musiq, &[Metric::PsnrY]).unwrap().to_string();
        assert!(msg.starts_with("musiq cannot be computed"), "{msg}");
        let lpips = EvalSettings {
            lpips_backbone: Some(PathBuf::from("alexnet.pth")),
            ..EvalSettings::default()
        };
        assert_eq!(lpips.network_metrics(&[]), vec![Metric::Lpips]);
    }
}

/// The networks of `framer-iqa`, loaded from the weight files of the settings.
#[cfg(feature = "iqa")]
mod networks {
    use burn::tensor::backend::Backend;
    use framer_eval::EvalError;
    use framer_iqa::{Lpips, LpipsFiles, LpipsNet, Maniqa, ManiqaConfig, Musiq, MusiqConfig};
    use framer_metrics::Metric;

    use std::path::Path;

    use super::{CommandError, EvalSettings, ImageMetric, PairMetric};

    /// The loaded networks; a metric whose weights were not given has none.
    pub(super) struct Networks<B: Backend> {
        lpips: Option<Lpips<B>>,
        musiq: Option<Musiq<B>>,
        maniqa: Option<Maniqa<B>>,
    }

    impl<B: Backend> Networks<B> {
        /// Loads the networks whose weight files `settings` give, on `device`, and adds their
        /// metrics to `metrics`.
        ///
        /// # Errors
        /// [`CommandError`] for conflicting or missing files, or an unusable weight file (naming
        /// the file and the missing or mis-shaped tensor).
        pub(super) fn load(
            settings: &EvalSettings,
            metrics: &mut Vec<Metric>,
            device: &B::Device,
        ) -> Result<Self, CommandError> {
            let lpips = match lpips_files(settings)? {
                Some(files) => {
                    add_metric(metrics, Metric::Lpips);
                    Some(Lpips::<B>::load(&files, device).map_err(iqa_error)?)
                }
                None => None,
            };
            let musiq = match &settings.musiq_weights {
                Some(path) => {
                    check_file("--musiq-weights", path)?;
                    add_metric(metrics, Metric::Musiq);
                    Some(
                        Musiq::<B>::load(path, MusiqConfig::default(), device)
                            .map_err(iqa_error)?,
                    )
                }
                None => None,
            };
            let maniqa = match &settings.maniqa_weights {
                Some(path) => {
                    check_file("--maniqa-weights", path)?;
                    add_metric(metrics, Metric::Maniqa);
                    let config = ManiqaConfig::for_file(path);
                    Some(Maniqa::<B>::load(path, config, device).map_err(iqa_error)?)
                }
                None => None,
            };
            Ok(Self {
                lpips,
                musiq,
                maniqa,
            })
        }

        /// The full-reference and the no-reference models, for `MetricModels`.
        pub(super) fn models(&self) -> (Vec<&dyn PairMetric>, Vec<&dyn ImageMetric>) {
            let pair = self.lpips.iter().map(|l| l as &dyn PairMetric).collect();
            let mut image: Vec<&dyn ImageMetric> = Vec::new();
            if let Some(m) = &self.musiq {
                image.push(m);
            }
            if let Some(m) = &self.maniqa {
                image.push(m);
            }
            (pair, image)
        }
    }

    /// Appends `metric` unless it is listed.
    fn add_metric(metrics: &mut Vec<Metric>, metric: Metric) {
        if !metrics.contains(&metric) {
            metrics.push(metric);
        }
    }

    /// A weight file given as `flag` must exist (the weight reader then names what is wrong in it).
    fn check_file(flag: &str, path: &Path) -> Result<(), CommandError> {
        if path.is_file() {
            Ok(())
        } else {
            Err(CommandError::Invalid(format!(
                "{flag}: file {} does not exist",
                path.display()
            )))
        }
    }

    /// A network's error, as the evaluation reports it.
    fn iqa_error(e: framer_iqa::IqaError) -> CommandError {
        CommandError::Eval(EvalError::from(e))
    }

    /// The LPIPS weight files, if any were given.
    ///
    /// # Errors
    /// [`CommandError::Invalid`] for an unknown network, a folder together with explicit
    /// files, only one of the two explicit files, or a folder without the expected files.
    pub(super) fn lpips_files(settings: &EvalSettings) -> Result<Option<LpipsFiles>, CommandError> {
        let net = if settings.lpips_net.trim().is_empty() {
            LpipsNet::Alex
        } else {
            LpipsNet::parse(&settings.lpips_net)
                .map_err(|e| CommandError::Invalid(format!("--lpips-net: {e}")))?
        };
        match (
            &settings.lpips_weights,
            &settings.lpips_backbone,
            &settings.lpips_linear,
        ) {
            (None, None, None) => Ok(None),
            (Some(dir), None, None) => {
                if !dir.is_dir() {
                    return Err(CommandError::Invalid(format!(
                        "--lpips-weights: folder {} does not exist",
                        dir.display()
                    )));
                }
                Ok(Some(LpipsFiles::find_in(dir, net).map_err(iqa_error)?))
            }
            (None, Some(backbone), Some(linear)) => Ok(Some(LpipsFiles {
                net,
                backbone: backbone.clone(),
                linear: linear.clone(),
            })),
            (Some(_), _, _) => Err(CommandError::Invalid(
                "give either --lpips-weights DIR or --lpips-backbone FILE --lpips-linear FILE, \
                 not both"
                    .into(),
            )),
            (None, _, _) => Err(CommandError::Invalid(
                "--lpips-backbone and --lpips-linear go together (or give --lpips-weights DIR)"
                    .into(),
            )),
        }
    }
}
