//! The main job's report helpers: the LR panel, the loss curves and their plot.

use std::path::Path;

use framer_data::Image;
use framer_metrics::{TableFormat, comparison_table};

use super::{DemoScores, EvalPair};
use crate::engine::{EngineError, RunSummary, metrics};

/// Writes `<stem>.md` and `<stem>.csv` of `scores` (baseline first: relative changes are against
/// it) in `out` and returns the terminal table.
///
/// # Errors
/// [`EngineError::Data`] for a table that cannot be built, [`EngineError::Io`] naming the file.
pub(super) fn write_tables(
    out: &Path,
    scores: &[DemoScores],
    images: usize,
    stem: &str,
) -> Result<String, EngineError> {
    let summaries: Vec<framer_metrics::RunSummary> = scores
        .iter()
        .map(|s| framer_metrics::RunSummary {
            name: s.name.clone(),
            images,
            values: s.means.clone(),
        })
        .collect();
    let metric_err = |e: framer_metrics::MetricError| EngineError::Data(e.to_string());
    for (format, ext) in [(TableFormat::Markdown, "md"), (TableFormat::Csv, "csv")] {
        let path = out.join(format!("{stem}.{ext}"));
        let text = comparison_table(&summaries, format).map_err(metric_err)?;
        std::fs::write(&path, text)
            .map_err(|e| EngineError::Io(format!("{}: {e}", path.display())))?;
    }
    comparison_table(&summaries, TableFormat::Terminal).map_err(metric_err)
}

/// `samples/<photo>.png` for every held-out pair: labelled panels LR (nearest ×`scale`),
/// bicubic, baseline, +FRAMER, HR, with the per-image scores of `scores` (baseline, +FRAMER,
/// bicubic) and a zoomed detail.
///
/// # Errors
/// [`EngineError::Io`] naming the file.
pub(super) fn write_samples(
    out: &Path,
    pairs: &[EvalPair],
    [baseline, framer]: [&[Image]; 2],
    scores: &[DemoScores],
    scale: usize,
) -> Result<(), EngineError> {
    let samples = out.join("samples");
    std::fs::create_dir_all(&samples)
        .map_err(|e| EngineError::Io(format!("{}: {e}", samples.display())))?;
    for (i, pair) in pairs.iter().enumerate() {
        let panel = |label: &str, image: &Image, s: Option<&DemoScores>| crate::figure::Panel {
            label: label.into(),
            image: image.clone(),
            caption: s.map(|s| crate::figure::score_caption(&s.per_image[i])),
        };
        let panels = vec![
            panel("LR (nearest ×4)", &nearest(&pair.lr, scale)?, None),
            panel("bicubic", &pair.lr_upsampled, Some(&scores[2])),
            panel("baseline", &baseline[i], Some(&scores[0])),
            panel("+FRAMER", &framer[i], Some(&scores[1])),
            panel("HR", &pair.hr, None),
        ];
        let path = samples.join(format!("{}.png", pair.stem()));
        crate::figure::comparison_figure(&pair.stem(), &panels, &path)?;
    }
    Ok(())
}

/// `image` enlarged `factor` times by pixel repetition (to show the LR pixels at the HR size).
///
/// # Errors
/// [`EngineError::Data`] for an image that cannot be built.
pub fn nearest(image: &Image, factor: usize) -> Result<Image, EngineError> {
    let (w, h) = (image.width(), image.height());
    let (bw, bh) = (w * factor, h * factor);
    let src = image.data();
    let mut data = vec![0f32; 3 * bw * bh];
    for c in 0..3 {
        for y in 0..bh {
            for x in 0..bw {
                data[c * bw * bh + y * bw + x] = src[c * w * h + (y / factor) * w + x / factor];
            }
        }
    }
    Image::from_chw(bw, bh, data).map_err(|e| EngineError::Data(e.to_string()))
}

/// The base (denoising or one-step) loss of each run over training, `(step, loss)`.
///
/// # Errors
/// The metrics file's read errors.
pub fn loss_curve(run: &RunSummary) -> Result<Vec<(f64, f64)>, EngineError> {
    let records = metrics::read(&run.metrics, crate::schedule::LogFormat::Jsonl)?;
    Ok(records
        .iter()
        .filter(|r| !r.skipped)
        .map(|r| (r.step as f64, r.base_loss))
        .collect())
}

/// A moving average over `window` points (the loss of single steps is noisy).
pub fn smooth(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let window = window.max(1);
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, _))| {
            let lo = i.saturating_sub(window - 1);
            let part = &points[lo..=i];
            (x, part.iter().map(|p| p.1).sum::<f64>() / part.len() as f64)
        })
        .collect()
}

/// `loss.png`: the base loss of each run over training (moving average over 20 steps).
pub(super) fn plot_losses(path: &Path, runs: &[(&str, &RunSummary)]) -> Result<(), EngineError> {
    let series = runs
        .iter()
        .map(|(name, run)| {
            Ok(framer_eval::plot::Series::new(*name, smooth(&loss_curve(run)?, 20)))
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    framer_eval::plot::LinePlot::new("base loss (moving average over 20 steps)", "step", "loss")
        .with_series(series)
        .save_png(path)
        .map_err(|e| EngineError::Io(format!("{}: {e}", path.display())))
}
