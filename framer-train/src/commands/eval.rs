//! `framer eval`: score a folder of super-resolved images against ground truths, or several
//! runs side by side (`--compare NAME=DIR …`).

use std::path::{Path, PathBuf};

use framer_eval::compare::{RunSpec, compare_runs, evaluate_run, unavailable_note};
use framer_metrics::{Metric, TableFormat};

use super::CommandError;

/// The metrics that need pretrained network weights and are never computed offline.
pub const NETWORK_METRICS: [Metric; 3] = [Metric::Lpips, Metric::Musiq, Metric::Maniqa];

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
}

/// Runs the evaluation and returns the text to print (the table, then the note on the metrics
/// that are not computed, then the files written).
///
/// # Errors
/// [`CommandError`] for a missing folder, an image without partner or of another size than its
/// ground truth (naming both files), unknown metric names, or conflicting arguments.
pub fn run_eval(settings: &EvalSettings) -> Result<String, CommandError> {
    let metrics = Metric::parse_list(&settings.metrics)
        .map_err(|e| CommandError::Invalid(format!("--metrics: {e}")))?;
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
        let report = evaluate_run(sr_dir, gt, settings.crop_border, &metrics)?;
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
        let comparison = compare_runs(&runs, gt, settings.crop_border, &metrics)?;
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
    if skipped.is_empty()
        && let Some(note) = unavailable_note(&NETWORK_METRICS)
    {
        text.push_str(&format!("\n{note}"));
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
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
