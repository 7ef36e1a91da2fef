//! Per-step metrics (JSONL or CSV) and loss-curve plots (PNG, drawn with the `image` crate: no
//! fonts or system libraries needed).
//!
//! The metrics file is append-only: each record is one `write` of a whole line, and a line once
//! written is never rewritten. A resumed run drops the records at or after its resume step by
//! writing the kept lines, byte for byte, to a temporary file and renaming it over the log, so
//! that a kill at any moment leaves either the old or the new file. A step rejected by the NaN/Inf
//! guard is logged with `"skipped": true` and its non-finite values as `null` (JSON has no NaN);
//! [`read`] accepts such records and reads `null` as NaN.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};

use super::EngineError;
use crate::schedule::LogFormat;

/// The logged values of one step.
///
/// In JSON a non-finite number is written as `null` and read back as NaN (the fields of a step
/// that the NaN/Inf guard rejected).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Step index (0-based).
    pub step: u64,
    /// `base + λ·framer`.
    #[serde(deserialize_with = "number_or_nan")]
    pub loss: f64,
    /// The diffusion objective's loss.
    #[serde(deserialize_with = "number_or_nan")]
    pub base_loss: f64,
    /// The FRAMER loss before λ; `None` when it was not evaluated (λ = 0).
    pub framer_loss: Option<f64>,
    /// λ at this step.
    pub lambda: f64,
    /// Learning rate at this step.
    pub lr: f64,
    /// Global gradient norm before clipping.
    #[serde(deserialize_with = "number_or_nan")]
    pub grad_norm: f64,
    /// Mean FAM·FAW weight of the low band (`avg_weight_low`).
    pub avg_weight_low: Option<f64>,
    /// Mean FAM·FAW weight of the high band.
    pub avg_weight_high: Option<f64>,
    /// `true` when the NaN/Inf guard rejected the step (no update was made).
    pub skipped: bool,
    /// Wall-clock seconds of the step.
    pub seconds: f64,
    /// FAW and FAM per student layer (batch means), when FRAMER ran at this step: the data of
    /// the paper's Fig. 9 (`framer analyze` plots it). JSONL only; the CSV log keeps the averages.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub layer_weights: Option<LayerWeights>,
}

/// The per-layer FAW and FAM fields of a JSONL record (the data of the paper's Fig. 9), batch
/// means per student layer in the students' order. Flattened into [`StepRecord`]: the field names
/// are those `framer_eval::analyze` reads (`faw_low`, `faw_high`, `fam_low`, `fam_high`).
///
/// # Shapes
/// Each array is `[L]`, `L` the number of student layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerWeights {
    /// FAW weight per student layer, low band, mean over the batch.
    pub faw_low: Vec<f32>,
    /// FAW weight per student layer, high band.
    pub faw_high: Vec<f32>,
    /// FAM gate per student layer, low band.
    pub fam_low: Vec<f32>,
    /// FAM gate per student layer, high band.
    pub fam_high: Vec<f32>,
}

impl LayerWeights {
    /// The batch means of each layer's weights in `diagnostics` (the loss's host copies); NaN
    /// for an empty batch.
    pub fn from_diagnostics(diagnostics: &framer::FramerDiagnostics) -> Self {
        let mean = |v: &[f32]| {
            if v.is_empty() {
                f32::NAN
            } else {
                (v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64) as f32
            }
        };
        let layers = &diagnostics.layers;
        Self {
            faw_low: layers.iter().map(|l| mean(&l.faw_low)).collect(),
            faw_high: layers.iter().map(|l| mean(&l.faw_high)).collect(),
            fam_low: layers.iter().map(|l| mean(&l.fam_low)).collect(),
            fam_high: layers.iter().map(|l| mean(&l.fam_high)).collect(),
        }
    }
}

/// A JSON number, or `null` (how `serde_json` writes NaN and ±∞) read as NaN.
fn number_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

const CSV_HEADER: &str = "step,loss,base_loss,framer_loss,lambda,lr,grad_norm,avg_weight_low,avg_weight_high,skipped,seconds";

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

impl StepRecord {
    fn to_csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{},{}",
            self.step,
            self.loss,
            self.base_loss,
            opt(self.framer_loss),
            self.lambda,
            self.lr,
            self.grad_norm,
            opt(self.avg_weight_low),
            opt(self.avg_weight_high),
            self.skipped,
            self.seconds
        )
    }

    fn from_csv(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 11 {
            return None;
        }
        let num = |s: &str| s.parse::<f64>().ok();
        let maybe = |s: &str| {
            if s.is_empty() {
                Some(None)
            } else {
                num(s).map(Some)
            }
        };
        Some(Self {
            step: f[0].parse().ok()?,
            loss: num(f[1])?,
            base_loss: num(f[2])?,
            framer_loss: maybe(f[3])?,
            lambda: num(f[4])?,
            lr: num(f[5])?,
            grad_norm: num(f[6])?,
            avg_weight_low: maybe(f[7])?,
            avg_weight_high: maybe(f[8])?,
            skipped: f[9].parse().ok()?,
            seconds: num(f[10])?,
            layer_weights: None,
        })
    }
}

/// Appends step records to `metrics.jsonl` or `metrics.csv` (see the module docs).
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    format: LogFormat,
    out: File,
}

/// One line of a metrics file as written, with its record (`None`: the CSV header).
struct LogLine<'a> {
    text: &'a str,
    record: Option<StepRecord>,
}

/// The lines of a metrics file. An unterminated last line that does not parse is a write cut
/// short by a kill and is left out; any other line that does not parse is an error naming it.
fn parse_lines<'a>(
    text: &'a str,
    path: &Path,
    format: LogFormat,
) -> Result<Vec<LogLine<'a>>, EngineError> {
    let mut out = Vec::new();
    let mut lines = text.split_inclusive('\n').enumerate().peekable();
    while let Some((i, raw)) = lines.next() {
        let terminated = raw.ends_with('\n');
        let line = raw.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        if format == LogFormat::Csv && line.starts_with("step,") {
            out.push(LogLine {
                text: raw,
                record: None,
            });
            continue;
        }
        let record = match format {
            LogFormat::Jsonl => serde_json::from_str(line).ok(),
            LogFormat::Csv => StepRecord::from_csv(line),
        };
        match record {
            // a record is only complete with its newline (a CSV line cut short may still parse)
            Some(r) if terminated || format == LogFormat::Jsonl => out.push(LogLine {
                text: raw,
                record: Some(r),
            }),
            _ if !terminated && lines.peek().is_none() => {}
            _ => {
                return Err(EngineError::Io(format!(
                    "{}:{}: not a metrics record: {line}",
                    path.display(),
                    i + 1
                )));
            }
        }
    }
    Ok(out)
}

impl MetricsLog {
    /// The file name of a format.
    pub fn file_name(format: LogFormat) -> &'static str {
        match format {
            LogFormat::Jsonl => "metrics.jsonl",
            LogFormat::Csv => "metrics.csv",
        }
    }

    /// Opens the log in `dir` for appending, keeping only the records of steps before
    /// `resume_step` (a run resumed from a checkpoint drops what was logged after that
    /// checkpoint, so that the file reads like one uninterrupted run).
    ///
    /// The kept lines keep their original text. When records must be dropped, the new file is
    /// written next to the log, synced and renamed over it: a kill at any moment leaves the old
    /// log or the new one, never a truncated one.
    pub fn open(dir: &Path, format: LogFormat, resume_step: u64) -> Result<Self, EngineError> {
        let path = dir.join(Self::file_name(format));
        let io = |e: std::io::Error| EngineError::Io(format!("{}: {e}", path.display()));
        let text = match fs::read(&path) {
            Ok(bytes) => String::from_utf8(bytes)
                .map_err(|_| EngineError::Io(format!("{}: not UTF-8 text", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(e)),
        };
        let lines = parse_lines(&text, &path, format)?;
        let mut kept = String::with_capacity(text.len());
        let mut header = false;
        for l in &lines {
            match &l.record {
                None if !header => {
                    header = true;
                    kept.push_str(l.text);
                }
                None => {}
                Some(r) if r.step < resume_step => kept.push_str(l.text),
                Some(_) => {}
            }
            if !kept.is_empty() && !kept.ends_with('\n') {
                kept.push('\n');
            }
        }
        if format == LogFormat::Csv && !header {
            kept.insert_str(0, &format!("{CSV_HEADER}\n"));
        }
        if kept != text {
            let tmp = path.with_extension(format!(
                "{}.tmp",
                path.extension().and_then(|e| e.to_str()).unwrap_or("log")
            ));
            let tmp_io = |e: std::io::Error| EngineError::Io(format!("{}: {e}", tmp.display()));
            let mut f = File::create(&tmp).map_err(tmp_io)?;
            let half = kept.len() / 2;
            f.write_all(&kept.as_bytes()[..half]).map_err(tmp_io)?;
            super::fault::point("metrics.rewrite");
            f.write_all(&kept.as_bytes()[half..]).map_err(tmp_io)?;
            f.sync_all().map_err(tmp_io)?;
            drop(f);
            fs::rename(&tmp, &path).map_err(io)?;
            if let Some(d) = path.parent()
                && let Ok(d) = File::open(d)
            {
                let _ = d.sync_all();
            }
        }
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        Ok(Self { path, format, out })
    }

    fn err(&self, e: std::io::Error) -> EngineError {
        EngineError::Io(format!("{}: {e}", self.path.display()))
    }

    /// Appends one record, as one line written at once. Per-layer weights that are not finite
    /// (a step rejected by the NaN/Inf guard) are left out.
    pub fn append(&mut self, r: &StepRecord) -> Result<(), EngineError> {
        let mut line = match self.format {
            LogFormat::Jsonl => {
                let finite = r.layer_weights.as_ref().is_none_or(|w| {
                    [&w.faw_low, &w.faw_high, &w.fam_low, &w.fam_high]
                        .iter()
                        .all(|v| v.iter().all(|x| x.is_finite()))
                });
                let text = if finite {
                    serde_json::to_string(r)
                } else {
                    serde_json::to_string(&StepRecord {
                        layer_weights: None,
                        ..r.clone()
                    })
                };
                text.map_err(|e| EngineError::Io(e.to_string()))?
            }
            LogFormat::Csv => r.to_csv(),
        };
        line.push('\n');
        let bytes = line.as_bytes();
        // one write per line; in a crash test, two around the fault point
        let cut = if super::fault::armed("metrics.line") {
            bytes.len() / 2
        } else {
            bytes.len()
        };
        self.out.write_all(&bytes[..cut]).map_err(|e| self.err(e))?;
        if cut < bytes.len() {
            super::fault::point("metrics.line");
            self.out.write_all(&bytes[cut..]).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Hands what was appended to the operating system (every [`MetricsLog::append`] already
    /// writes through; kept for callers that flush).
    pub fn flush(&mut self) -> Result<(), EngineError> {
        self.out.flush().map_err(|e| self.err(e))
    }

    /// Syncs the log to the disk (before a checkpoint, so that no checkpoint is newer than the
    /// records it follows).
    pub fn sync(&mut self) -> Result<(), EngineError> {
        self.out.sync_data().map_err(|e| self.err(e))
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the log and draws every record it holds as the loss-curve plot `png` (800×480,
    /// [`plot_losses`]).
    ///
    /// # Errors
    /// [`EngineError::Io`] naming the log or the plot.
    pub fn plot(&mut self, png: &Path) -> Result<(), EngineError> {
        self.flush()?;
        plot_losses(&read(&self.path, self.format)?, png, 800, 480)
    }
}

/// Reads a metrics file (missing file: no records). Lines that do not parse are errors naming
/// the line, except an unterminated last line (a write cut short), which is left out.
pub fn read(path: &Path, format: LogFormat) -> Result<Vec<StepRecord>, EngineError> {
    let text = match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EngineError::Io(format!("{}: {e}", path.display()))),
    };
    Ok(parse_lines(&text, path, format)?
        .into_iter()
        .filter_map(|l| l.record)
        .collect())
}

/// Colours of the plotted series: total loss (black), base loss (blue), λ·FRAMER (red).
pub const PLOT_COLOURS: [[u8; 3]; 3] = [[20, 20, 20], [30, 90, 200], [210, 40, 40]];

/// Draws the loss curves of `records` into a PNG at `path` (`width × height` pixels).
///
/// Three series share a log₁₀ y-axis: the total loss (black), the base loss (blue) and the
/// weighted FRAMER term λ·L_FRAMER (red); skipped steps are left out. Grid lines mark the decades
/// of the y-axis and tenths of the steps. The plot has no text, so no font is needed.
pub fn plot_losses(
    records: &[StepRecord],
    path: &Path,
    width: u32,
    height: u32,
) -> Result<(), EngineError> {
    let mut img = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    let (left, right, top, bottom) = (10i64, width as i64 - 10, 10i64, height as i64 - 10);
    let series: [Vec<(f64, f64)>; 3] = [
        records
            .iter()
            .filter(|r| !r.skipped)
            .map(|r| (r.step as f64, r.loss))
            .collect(),
        records
            .iter()
            .filter(|r| !r.skipped)
            .map(|r| (r.step as f64, r.base_loss))
            .collect(),
        records
            .iter()
            .filter(|r| !r.skipped)
            .filter_map(|r| r.framer_loss.map(|f| (r.step as f64, r.lambda * f)))
            .collect(),
    ];
    let ys = series
        .iter()
        .flatten()
        .map(|p| p.1)
        .filter(|y| y.is_finite() && *y > 0.0);
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    if lo.is_finite() && hi.is_finite() {
        let (lo, hi) = (
            lo.log10().floor(),
            hi.log10().ceil().max(lo.log10().floor() + 1.0),
        );
        let (x0, x1) = records
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), r| {
                (a.min(r.step as f64), b.max(r.step as f64))
            });
        let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
        let px = |x: f64| left + ((x - x0) / (x1 - x0) * (right - left) as f64).round() as i64;
        let py =
            |y: f64| bottom - ((y.log10() - lo) / (hi - lo) * (bottom - top) as f64).round() as i64;
        let grid = Rgb([225, 225, 225]);
        for d in 0..=((hi - lo) as i64) {
            let y = py(10f64.powf(lo + d as f64));
            line(&mut img, (left, y), (right, y), grid);
        }
        for t in 0..=10 {
            let x = left + (right - left) * t / 10;
            line(&mut img, (x, top), (x, bottom), grid);
        }
        for (points, colour) in series.iter().zip(PLOT_COLOURS) {
            let pts: Vec<(i64, i64)> = points
                .iter()
                .filter(|p| p.1.is_finite() && p.1 > 0.0)
                .map(|&(x, y)| (px(x), py(y)))
                .collect();
            for w in pts.windows(2) {
                line(&mut img, w[0], w[1], Rgb(colour));
            }
            if pts.len() == 1 {
                line(&mut img, pts[0], pts[0], Rgb(colour));
            }
        }
    }
    let axis = Rgb([0, 0, 0]);
    line(&mut img, (left, bottom), (right, bottom), axis);
    line(&mut img, (left, top), (left, bottom), axis);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| EngineError::Io(format!("{}: {e}", parent.display())))?;
    }
    let tmp = path.with_extension("png.tmp");
    img.save_with_format(&tmp, image::ImageFormat::Png)
        .map_err(|e| EngineError::Io(format!("{}: {e}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(|e| EngineError::Io(format!("{}: {e}", path.display())))
}

/// Bresenham line, clipped to the image.
fn line(img: &mut RgbImage, (mut x0, mut y0): (i64, i64), (x1, y1): (i64, i64), colour: Rgb<u8>) {
    let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
    let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
    let mut err = dx + dy;
    loop {
        if x0 >= 0 && y0 >= 0 && (x0 as u32) < img.width() && (y0 as u32) < img.height() {
            img.put_pixel(x0 as u32, y0 as u32, colour);
        }
        if x0 == x1 && y0 == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x0 += sx;
        }
        if e2 <= dx {
            err += dx;
            y0 += sy;
        }
    }
}

#[cfg(test)]
mod tests;
