//! Evaluation reports: one run against its ground truths ([`evaluate_run`]), or several runs
//! side by side ([`compare_runs`]) with the relative change of each metric from the first run,
//! as tables (terminal, CSV, Markdown, via [`framer_metrics::comparison_table`]) and a grouped
//! bar chart PNG.
//!
//! Metrics that cannot be computed offline (LPIPS, MUSIQ, MANIQA: they need pretrained network
//! weights that no offline package ships) are not an error here: they are left out of the
//! evaluation and listed in [`EvalReport::skipped`] / [`Comparison::skipped`], and the
//! terminal and Markdown outputs say so ([`unavailable_note`]). CSV output stays a plain table.
//!
//! They are computed when the caller supplies the models ([`MetricModels`]) to
//! [`evaluate_run_with`] / [`compare_runs_with`]: LPIPS as a [`PairMetric`], MUSIQ and MANIQA
//! as [`ImageMetric`]s, each loaded from user-supplied weight files. With the feature `iqa`,
//! `framer_iqa::Lpips`, `framer_iqa::Musiq` and `framer_iqa::Maniqa` implement these traits.

use std::path::{Path, PathBuf};

use framer_metrics::{
    Availability, FolderEvaluation, Metric, MetricError, MetricImage, RunSummary, TableFormat,
    comparison_table, evaluate_folders_by,
};

use crate::error::{EvalError, Result};
use crate::plot::{BarChart, BarSeries};

/// The metrics the FRAMER paper reports, in its order: PSNR and SSIM on Y, LPIPS, NIQE, MANIQA,
/// MUSIQ. LPIPS, MANIQA and MUSIQ are computed only from user-supplied weights
/// ([`MetricModels`]); otherwise they are reported as skipped.
pub const PAPER_METRICS: [Metric; 6] = [
    Metric::PsnrY,
    Metric::SsimY,
    Metric::Lpips,
    Metric::Niqe,
    Metric::Maniqa,
    Metric::Musiq,
];

/// A full-reference metric computed by a model the caller supplies (LPIPS from weight files),
/// for [`evaluate_run_with`] and [`compare_runs_with`].
pub trait PairMetric {
    /// The registry entry this computes (e.g. [`Metric::Lpips`]).
    fn metric(&self) -> Metric;

    /// The value for `sr` against its ground truth `gt` (both `[3, H, W]` in `[0, 1]`, same
    /// size), after removing `crop_border` pixels from every edge.
    ///
    /// # Errors
    /// Whatever the model reports (image too small, …).
    fn score(&self, sr: &MetricImage, gt: &MetricImage, crop_border: usize) -> Result<f64>;
}

/// A no-reference metric computed by a model the caller supplies (MUSIQ or MANIQA from a weight
/// file), for [`evaluate_run_with`] and [`compare_runs_with`]. It scores the SR image alone.
pub trait ImageMetric {
    /// The registry entry this computes (e.g. [`Metric::Musiq`]).
    fn metric(&self) -> Metric;

    /// The value for `image` (`[3, H, W]` in `[0, 1]`).
    ///
    /// # Errors
    /// Whatever the model reports (image too small, …).
    fn score(&self, image: &MetricImage) -> Result<f64>;
}

/// The model-based metrics a caller holds: full-reference ones (LPIPS) and no-reference ones
/// (MUSIQ, MANIQA), each loaded from user-supplied weight files.
#[derive(Clone, Copy, Default)]
pub struct MetricModels<'a> {
    /// Full-reference models, scored against the ground truth.
    pub pair: &'a [&'a dyn PairMetric],
    /// No-reference models, scored on the SR image alone (after the border crop).
    pub image: &'a [&'a dyn ImageMetric],
}

impl std::fmt::Debug for MetricModels<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |ms: Vec<Metric>| ms.into_iter().map(Metric::name).collect::<Vec<_>>();
        f.debug_struct("MetricModels")
            .field(
                "pair",
                &names(self.pair.iter().map(|m| m.metric()).collect()),
            )
            .field(
                "image",
                &names(self.image.iter().map(|m| m.metric()).collect()),
            )
            .finish()
    }
}

impl<'a> MetricModels<'a> {
    /// Whether one of the models computes `metric`.
    pub fn computes(&self, metric: Metric) -> bool {
        self.pair.iter().any(|m| m.metric() == metric)
            || self.image.iter().any(|m| m.metric() == metric)
    }
}

/// Splits `metrics` into the computable ones and the unavailable ones, keeping order and
/// dropping repeats.
pub fn split_available(metrics: &[Metric]) -> (Vec<Metric>, Vec<Metric>) {
    split_available_with(metrics, MetricModels::default())
}

/// As [`split_available`], counting the metrics of `models` as computable.
pub fn split_available_with(
    metrics: &[Metric],
    models: MetricModels<'_>,
) -> (Vec<Metric>, Vec<Metric>) {
    let mut available = Vec::new();
    let mut skipped = Vec::new();
    for &m in metrics {
        let list = if m.is_available() || models.computes(m) {
            &mut available
        } else {
            &mut skipped
        };
        if !list.contains(&m) {
            list.push(m);
        }
    }
    (available, skipped)
}

/// A sentence naming the skipped metrics and why (metrics sharing a reason are grouped), or
/// `None` if there are none.
pub fn unavailable_note(skipped: &[Metric]) -> Option<String> {
    skipped.first()?;
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for m in skipped {
        let reason = match m.availability() {
            Availability::Unavailable(reason) => reason,
            Availability::Available => "not requested from a model",
        };
        match groups.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, names)) => names.push(m.name()),
            None => groups.push((reason, vec![m.name()])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(reason, names)| format!("{} ({reason})", names.join(", ")))
        .collect();
    Some(format!("not computed: {}", parts.join("; ")))
}

fn append_note(mut table: String, skipped: &[Metric], format: TableFormat) -> String {
    if let Some(note) = unavailable_note(skipped) {
        match format {
            TableFormat::Terminal => table.push_str(&format!("note: {note}\n")),
            TableFormat::Markdown => table.push_str(&format!("\n> Note: {note}.\n")),
            TableFormat::Csv => {}
        }
    }
    table
}

fn available_or_error(
    metrics: &[Metric],
    models: MetricModels<'_>,
) -> Result<(Vec<Metric>, Vec<Metric>)> {
    let (available, skipped) = split_available_with(metrics, models);
    if available.is_empty() {
        return Err(EvalError::InvalidArgument(
            match unavailable_note(&skipped) {
                Some(note) => format!("none of the requested metrics can be computed; {note}"),
                None => "no metrics requested".into(),
            },
        ));
    }
    Ok((available, skipped))
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| EvalError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| EvalError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// The evaluation of one folder of results.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// Per-image values and means of the computable metrics.
    pub evaluation: FolderEvaluation,
    /// Requested metrics that could not be computed.
    pub skipped: Vec<Metric>,
}

/// Evaluates `sr_dir` against `gt_dir` (pairing by file stem) with the computable subset of
/// `metrics`, removing `crop_border` pixels from every edge first.
///
/// # Errors
/// [`EvalError::InvalidArgument`] if no requested metric is computable; the folder errors of
/// [`framer_metrics::evaluate_folders`] as [`EvalError::Metric`] (missing folder, empty folder,
/// image without partner, size mismatch naming both files, full-reference metric without
/// `gt_dir` …).
pub fn evaluate_run(
    sr_dir: &Path,
    gt_dir: Option<&Path>,
    crop_border: usize,
    metrics: &[Metric],
) -> Result<EvalReport> {
    evaluate_run_with(
        sr_dir,
        gt_dir,
        crop_border,
        metrics,
        MetricModels::default(),
    )
}

/// As [`evaluate_run`], with model-based metrics supplied by the caller (LPIPS, MUSIQ, MANIQA
/// from weight files): a requested metric that one of `models` computes is evaluated, in the
/// requested column order.
///
/// # Errors
/// As [`evaluate_run`]; [`EvalError::Metric`] with [`MetricError::NeedsReference`] if a
/// full-reference model's metric is requested without `gt_dir`; the errors of
/// [`PairMetric::score`] and [`ImageMetric::score`].
pub fn evaluate_run_with(
    sr_dir: &Path,
    gt_dir: Option<&Path>,
    crop_border: usize,
    metrics: &[Metric],
    models: MetricModels<'_>,
) -> Result<EvalReport> {
    let (available, skipped) = available_or_error(metrics, models)?;
    let evaluation = evaluate_folder_with(sr_dir, gt_dir, crop_border, &available, models)?;
    Ok(EvalReport {
        evaluation,
        skipped,
    })
}

/// The values of `metrics` (all computable: native, or computed by one of `models`) for every
/// image of `sr_dir`, in the order of `metrics`.
fn evaluate_folder_with(
    sr_dir: &Path,
    gt_dir: Option<&Path>,
    crop_border: usize,
    metrics: &[Metric],
    models: MetricModels<'_>,
) -> Result<FolderEvaluation> {
    evaluate_folders_by(sr_dir, gt_dir, crop_border, metrics, |m, sr, gt| {
        if m.is_available() {
            return Ok(m.compute(sr, gt, crop_border)?);
        }
        if let Some(model) = models.image.iter().find(|e| e.metric() == m) {
            return model.score(&sr.crop_border(crop_border)?);
        }
        match (models.pair.iter().find(|e| e.metric() == m), gt) {
            (Some(model), Some(gt)) => model.score(sr, gt, crop_border),
            (Some(_), None) => Err(MetricError::NeedsReference { name: m.name() }.into()),
            (None, _) => Err(match m.ensure_available() {
                Err(e) => e.into(),
                Ok(()) => EvalError::InvalidArgument(format!("no model computes {}", m.name())),
            }),
        }
    })
}

impl EvalReport {
    /// The per-image table with a `mean` row; terminal and Markdown add the skipped-metrics note.
    pub fn table(&self, format: TableFormat) -> String {
        append_note(self.evaluation.table(format), &self.skipped, format)
    }

    /// Writes `<stem>.csv`, `<stem>.md` and `<stem>.txt` into `dir` (created if needed) and
    /// returns their paths.
    ///
    /// # Errors
    /// [`EvalError::Write`] naming the file.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
        create_dir(dir)?;
        let mut paths = Vec::new();
        for (ext, format) in [
            ("csv", TableFormat::Csv),
            ("md", TableFormat::Markdown),
            ("txt", TableFormat::Terminal),
        ] {
            let path = dir.join(format!("{stem}.{ext}"));
            write_text(&path, &self.table(format))?;
            paths.push(path);
        }
        Ok(paths)
    }
}

/// One run to compare: a label, its results folder and optionally its ground truths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// Column label (e.g. `baseline`, `framer`).
    pub name: String,
    /// Folder of super-resolved images.
    pub sr_dir: PathBuf,
    /// Folder of ground truths, paired by file stem (none: no-reference metrics only).
    pub gt_dir: Option<PathBuf>,
}

impl RunSpec {
    /// A run without its own ground-truth folder.
    pub fn new(name: impl Into<String>, sr_dir: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            sr_dir: sr_dir.into(),
            gt_dir: None,
        }
    }

    /// Sets the ground-truth folder.
    pub fn with_gt(mut self, gt_dir: impl Into<PathBuf>) -> Self {
        self.gt_dir = Some(gt_dir.into());
        self
    }

    /// Parses `NAME=DIR` or a bare `DIR` (named after its last path component), the form a
    /// command line takes.
    ///
    /// # Errors
    /// [`EvalError::InvalidArgument`] for an empty name or folder.
    pub fn parse(spec: &str) -> Result<Self> {
        let (name, dir) = match spec.split_once('=') {
            Some((name, dir)) => (name.trim().to_string(), dir.trim()),
            None => {
                let dir = spec.trim();
                let name = Path::new(dir)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (name, dir)
            }
        };
        if name.is_empty() || dir.is_empty() {
            return Err(EvalError::InvalidArgument(format!(
                "run `{spec}`: expected NAME=DIR or a folder path"
            )));
        }
        Ok(Self::new(name, dir))
    }
}

/// Several runs evaluated with the same metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The runs, in the order given; the first is the baseline of the relative changes.
    pub runs: Vec<(String, FolderEvaluation)>,
    /// Requested metrics that could not be computed.
    pub skipped: Vec<Metric>,
}

/// Evaluates every run (each against its own `gt_dir`, or `shared_gt` when it has none) and
/// collects them for side-by-side reports.
///
/// # Errors
/// [`EvalError::InvalidArgument`] for fewer than two runs, a repeated run name, or no
/// computable metric; the errors of [`evaluate_run`] for each run.
pub fn compare_runs(
    runs: &[RunSpec],
    shared_gt: Option<&Path>,
    crop_border: usize,
    metrics: &[Metric],
) -> Result<Comparison> {
    compare_runs_with(
        runs,
        shared_gt,
        crop_border,
        metrics,
        MetricModels::default(),
    )
}

/// As [`compare_runs`], with model-based metrics supplied by the caller (see
/// [`evaluate_run_with`]).
///
/// # Errors
/// As [`compare_runs`] and [`evaluate_run_with`].
pub fn compare_runs_with(
    runs: &[RunSpec],
    shared_gt: Option<&Path>,
    crop_border: usize,
    metrics: &[Metric],
    models: MetricModels<'_>,
) -> Result<Comparison> {
    if runs.len() < 2 {
        return Err(EvalError::InvalidArgument(format!(
            "a comparison needs at least two runs, got {}",
            runs.len()
        )));
    }
    for (i, r) in runs.iter().enumerate() {
        if runs[..i].iter().any(|p| p.name == r.name) {
            return Err(EvalError::InvalidArgument(format!(
                "run name `{}` is used twice; give each run a distinct NAME=DIR",
                r.name
            )));
        }
    }
    let (available, skipped) = available_or_error(metrics, models)?;
    let mut out = Vec::with_capacity(runs.len());
    for r in runs {
        let gt = r.gt_dir.as_deref().or(shared_gt);
        let evaluation = evaluate_folder_with(&r.sr_dir, gt, crop_border, &available, models)?;
        out.push((r.name.clone(), evaluation));
    }
    Ok(Comparison { runs: out, skipped })
}

/// `(v − v₀) / |v₀|` in percent, as [`framer_metrics::comparison_table`]; `None` when `v₀` is 0
/// or either value is not finite.
pub fn relative_change(v0: f64, v: f64) -> Option<f64> {
    if v0 == 0.0 || !v0.is_finite() || !v.is_finite() {
        return None;
    }
    Some((v - v0) / v0.abs() * 100.0)
}

impl Comparison {
    /// The mean values of each run.
    pub fn summaries(&self) -> Vec<RunSummary> {
        self.runs
            .iter()
            .map(|(name, e)| e.summary(name.clone()))
            .collect()
    }

    /// The metrics evaluated, in column order.
    pub fn metrics(&self) -> Vec<Metric> {
        self.runs
            .first()
            .map(|(_, e)| e.metrics.clone())
            .unwrap_or_default()
    }

    /// The side-by-side table; terminal and Markdown add the skipped-metrics note.
    ///
    /// # Errors
    /// [`EvalError::Metric`] if there are no values.
    pub fn table(&self, format: TableFormat) -> Result<String> {
        let table = comparison_table(&self.summaries(), format)?;
        Ok(append_note(table, &self.skipped, format))
    }

    /// Per metric, the relative change (percent) of every run after the first from the first.
    pub fn relative_changes(&self) -> Vec<(Metric, Vec<Option<f64>>)> {
        let summaries = self.summaries();
        let Some(base) = summaries.first() else {
            return Vec::new();
        };
        self.metrics()
            .into_iter()
            .map(|m| {
                let v0 = base.get(m);
                let changes = summaries
                    .iter()
                    .skip(1)
                    .map(|s| match (v0, s.get(m)) {
                        (Some(v0), Some(v)) => relative_change(v0, v),
                        _ => None,
                    })
                    .collect();
                (m, changes)
            })
            .collect()
    }

    /// The grouped bar chart: one group per metric (marked ↑/↓ for its better direction), one
    /// bar per run after the first, height = relative change from the first run in percent.
    pub fn bar_chart(&self) -> BarChart {
        let changes = self.relative_changes();
        let base = self.runs.first().map(|(n, _)| n.as_str()).unwrap_or("");
        let mut chart = BarChart::new(
            format!("relative change vs {base}"),
            "change from the first run (%)",
        );
        chart.categories = changes
            .iter()
            .map(|(m, _)| {
                format!(
                    "{} {}",
                    m.name(),
                    if m.higher_is_better() { "↑" } else { "↓" }
                )
            })
            .collect();
        chart.series = self
            .runs
            .iter()
            .skip(1)
            .enumerate()
            .map(|(j, (name, _))| BarSeries {
                name: name.clone(),
                values: changes.iter().map(|(_, c)| c[j]).collect(),
            })
            .collect();
        chart.value_format = |v| format!("{v:+.2}%");
        chart
    }

    /// Writes `comparison.csv`, `comparison.md`, `comparison.txt` and the bar chart
    /// `comparison.png` into `dir` (created if needed) and returns their paths.
    ///
    /// # Errors
    /// [`EvalError::Write`] and [`EvalError::Plot`] naming the file.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        create_dir(dir)?;
        let mut paths = Vec::new();
        for (ext, format) in [
            ("csv", TableFormat::Csv),
            ("md", TableFormat::Markdown),
            ("txt", TableFormat::Terminal),
        ] {
            let path = dir.join(format!("comparison.{ext}"));
            write_text(&path, &self.table(format)?)?;
            paths.push(path);
        }
        let png = dir.join("comparison.png");
        self.bar_chart().save_png(&png)?;
        paths.push(png);
        Ok(paths)
    }
}
