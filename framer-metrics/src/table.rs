//! Table formatting: per-run (per image + mean) and comparison of several runs.

use crate::error::{MetricError, Result};
use crate::folder::FolderEvaluation;
use crate::metric::Metric;

/// Output format of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TableFormat {
    /// Aligned plain-text columns for a terminal, 4 decimals.
    Terminal,
    /// Comma-separated values with a header row (RFC 4180 quoting): metric values in full
    /// precision, relative changes in percent with 6 decimals, `inf` for infinities.
    Csv,
    /// A GitHub-flavoured Markdown table, 4 decimals.
    Markdown,
}

/// The mean values of one run, as compared by [`comparison_table`].
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// Column label (e.g. `baseline`, `+FRAMER`).
    pub name: String,
    /// Number of images averaged.
    pub images: usize,
    /// Mean value per metric.
    pub values: Vec<(Metric, f64)>,
}

impl RunSummary {
    /// The value of `metric`, if this run has it.
    pub fn get(&self, metric: Metric) -> Option<f64> {
        self.values
            .iter()
            .find(|(m, _)| *m == metric)
            .map(|(_, v)| *v)
    }
}

/// The per-image table of one run: one row per image (by stem), then a `mean` row; one
/// column per metric, its header marked ↑ (higher is better) or ↓.
pub fn run_table(eval: &FolderEvaluation, format: TableFormat) -> String {
    let mut header = vec!["image".to_string()];
    header.extend(eval.metrics.iter().map(|&m| metric_header(m, format)));
    let mut rows: Vec<Vec<String>> = eval
        .images
        .iter()
        .map(|s| {
            let mut row = vec![s.stem.clone()];
            row.extend(s.values.iter().map(|&v| number(v, format)));
            row
        })
        .collect();
    let mut mean = vec!["mean".to_string()];
    mean.extend(eval.means().into_iter().map(|v| number(v, format)));
    rows.push(mean);
    render(&header, &rows, format)
}

/// Two or more runs side by side: one row per metric (in order of first appearance), one
/// column of means per run, and after every run but the first a column with its relative
/// change from the first run, `(v − v₀) / |v₀|` in percent. Whether a change is an
/// improvement depends on the metric's direction, shown as ↑/↓ in the first column.
/// A metric missing from a run shows `-`; a change from 0 or a non-finite value shows `n/a`.
///
/// # Errors
/// [`MetricError::NoRuns`] if `runs` is empty or no run has values.
pub fn comparison_table(runs: &[RunSummary], format: TableFormat) -> Result<String> {
    let mut metrics: Vec<Metric> = Vec::new();
    for r in runs {
        for (m, _) in &r.values {
            if !metrics.contains(m) {
                metrics.push(*m);
            }
        }
    }
    if metrics.is_empty() {
        return Err(MetricError::NoRuns);
    }
    let base = &runs[0];
    let mut header = vec!["metric".to_string()];
    if format == TableFormat::Csv {
        header.push("higher_is_better".to_string());
    }
    for (i, r) in runs.iter().enumerate() {
        header.push(r.name.clone());
        if i > 0 {
            header.push(format!("{} vs {} (%)", r.name, base.name));
        }
    }
    let mut rows = Vec::with_capacity(metrics.len() + 1);
    for &m in &metrics {
        let mut row = vec![metric_header(m, format)];
        if format == TableFormat::Csv {
            row.push(m.higher_is_better().to_string());
        }
        let v0 = base.get(m);
        for (i, r) in runs.iter().enumerate() {
            let v = r.get(m);
            row.push(v.map_or_else(|| "-".to_string(), |v| number(v, format)));
            if i > 0 {
                row.push(match (v0, v) {
                    (Some(v0), Some(v)) => relative_change(v0, v, format),
                    _ => "-".to_string(),
                });
            }
        }
        rows.push(row);
    }
    let mut count = vec!["images".to_string()];
    if format == TableFormat::Csv {
        count.push(String::new());
    }
    for (i, r) in runs.iter().enumerate() {
        count.push(r.images.to_string());
        if i > 0 {
            count.push(String::new());
        }
    }
    rows.push(count);
    Ok(render(&header, &rows, format))
}

fn metric_header(m: Metric, format: TableFormat) -> String {
    match format {
        TableFormat::Csv => m.name().to_string(),
        _ => format!(
            "{} {}",
            m.name(),
            if m.higher_is_better() { "↑" } else { "↓" }
        ),
    }
}

fn number(v: f64, format: TableFormat) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    match format {
        TableFormat::Csv => format!("{v}"),
        _ => format!("{v:.4}"),
    }
}

fn relative_change(v0: f64, v: f64, format: TableFormat) -> String {
    if v0 == 0.0 || !v0.is_finite() || !v.is_finite() {
        return "n/a".to_string();
    }
    let pct = (v - v0) / v0.abs() * 100.0;
    match format {
        TableFormat::Csv => format!("{pct:.6}"),
        _ => format!("{pct:+.2}%"),
    }
}

fn render(header: &[String], rows: &[Vec<String>], format: TableFormat) -> String {
    match format {
        TableFormat::Csv => {
            let line = |cells: &[String]| {
                cells
                    .iter()
                    .map(|c| csv_field(c))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let mut out = line(header);
            out.push('\n');
            for r in rows {
                out.push_str(&line(r));
                out.push('\n');
            }
            out
        }
        TableFormat::Markdown => {
            let line = |cells: &[String]| {
                format!(
                    "| {} |\n",
                    cells
                        .iter()
                        .map(|c| c.replace('|', "\\|"))
                        .collect::<Vec<_>>()
                        .join(" | ")
                )
            };
            let mut out = line(header);
            let sep: Vec<String> = (0..header.len())
                .map(|i| {
                    if i == 0 {
                        "---".to_string()
                    } else {
                        "---:".to_string()
                    }
                })
                .collect();
            out.push_str(&format!("|{}|\n", sep.join("|")));
            for r in rows {
                out.push_str(&line(r));
            }
            out
        }
        TableFormat::Terminal => {
            let widths: Vec<usize> = (0..header.len())
                .map(|i| {
                    std::iter::once(header)
                        .chain(rows.iter().map(Vec::as_slice))
                        .map(|r| width(&r[i]))
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: &[String]| {
                let parts: Vec<String> = cells
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let pad = " ".repeat(widths[i] - width(c));
                        if i == 0 {
                            format!("{c}{pad}")
                        } else {
                            format!("{pad}{c}")
                        }
                    })
                    .collect();
                format!("{}\n", parts.join("  ").trim_end())
            };
            let mut out = line(header);
            out.push_str(&format!(
                "{}\n",
                "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
            ));
            for r in rows {
                out.push_str(&line(r));
            }
            out
        }
    }
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl FolderEvaluation {
    /// [`run_table`] of this evaluation.
    pub fn table(&self, format: TableFormat) -> String {
        run_table(self, format)
    }
}
