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
    pub layer_weights: Option<framer_eval::analyze::LayerWeights>,
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
mod tests {
    use super::*;

    fn rec(step: u64, loss: f64) -> StepRecord {
        StepRecord {
            step,
            loss,
            base_loss: loss * 0.9,
            framer_loss: step.is_multiple_of(2).then_some(1.0),
            lambda: 0.1,
            lr: 1e-4,
            grad_norm: 0.5,
            avg_weight_low: None,
            avg_weight_high: Some(0.25),
            skipped: step == 3,
            seconds: 0.01,
            layer_weights: None,
        }
    }

    /// The per-layer FAW/FAM arrays of the JSONL log are what `framer analyze` reads for Fig. 9.
    #[test]
    fn layer_weights_round_trip_and_feed_the_fig9_reader() {
        let dir = std::env::temp_dir().join(format!("framer-weights-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let weights = |step: u64| framer_eval::analyze::LayerWeights {
            faw_low: vec![0.5, 0.25 + step as f32],
            faw_high: vec![0.75, 1.0],
            fam_low: vec![0.1, 0.2],
            fam_high: vec![0.3, 0.4],
        };
        let records: Vec<StepRecord> = (0..3)
            .map(|s| StepRecord {
                layer_weights: Some(weights(s)),
                ..rec(s, 1.0)
            })
            .collect();
        let mut log = MetricsLog::open(&dir, LogFormat::Jsonl, 0).unwrap();
        for r in &records {
            log.append(r).unwrap();
        }
        log.flush().unwrap();
        drop(log);
        let path = dir.join(MetricsLog::file_name(LogFormat::Jsonl));
        assert_eq!(read(&path, LogFormat::Jsonl).unwrap(), records);
        let fig9 = framer_eval::analyze::read_training_weights(&path).unwrap();
        assert_eq!(fig9.layers, 2);
        assert_eq!(fig9.records.len(), 3);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A resumed log keeps its earlier lines as written (a value that would print differently
    /// after a round trip stays as it was), drops the later ones and a line cut short by a kill,
    /// and replaces the file by a rename, never in place.
    #[test]
    fn resume_keeps_earlier_lines_byte_for_byte_and_drops_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("framer-metrics-keep-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.jsonl");
        let line = |step: u64| {
            format!(
                "{{\"step\":{step},\"loss\":0.10000000000000000555,\"base_loss\":1e-1,\
                 \"framer_loss\":null,\"lambda\":0.0,\"lr\":1E-4,\"grad_norm\":0.5,\
                 \"avg_weight_low\":null,\"avg_weight_high\":null,\"skipped\":false,\
                 \"seconds\":0.0100}}\n"
            )
        };
        let mut text: String = (0..6).map(line).collect();
        text.push_str("{\"step\":6,\"loss\":0.1,\"ba"); // torn by a kill
        fs::write(&path, &text).unwrap();
        let ino = |p: &Path| {
            use std::os::unix::fs::MetadataExt;
            fs::metadata(p).unwrap().ino()
        };
        let before = ino(&path);
        // the torn line alone is left out when reading
        assert_eq!(read(&path, LogFormat::Jsonl).unwrap().len(), 6);
        let mut log = MetricsLog::open(&dir, LogFormat::Jsonl, 4).unwrap();
        let kept: String = (0..4).map(line).collect();
        assert_eq!(fs::read_to_string(&path).unwrap(), kept);
        assert_ne!(
            ino(&path),
            before,
            "rewritten through a new file and a rename"
        );
        log.append(&rec(4, 0.5)).unwrap();
        drop(log);
        let after = fs::read_to_string(&path).unwrap();
        assert!(after.starts_with(&kept), "{after}");
        assert_eq!(after.lines().count(), 5);
        // nothing to drop: the file is appended to as it is
        let before = ino(&path);
        drop(MetricsLog::open(&dir, LogFormat::Jsonl, 5).unwrap());
        assert_eq!(ino(&path), before);
        assert_eq!(fs::read_to_string(&path).unwrap(), after);
        // a damaged line that is not the last is an error naming it
        fs::write(&path, format!("{}garbage\n{}", line(0), line(1))).unwrap();
        let e = MetricsLog::open(&dir, LogFormat::Jsonl, 1).unwrap_err();
        assert!(
            e.to_string()
                .contains("metrics.jsonl:2: not a metrics record"),
            "{e}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A step rejected by the NaN/Inf guard is logged with `null` values and `skipped`, read back
    /// with NaN, and left out of the plot.
    #[test]
    fn skipped_steps_are_logged_with_null_values_and_read_back() {
        let dir = std::env::temp_dir().join(format!("framer-metrics-nan-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for format in [LogFormat::Jsonl, LogFormat::Csv] {
            let mut log = MetricsLog::open(&dir, format, 0).unwrap();
            let bad = StepRecord {
                loss: f64::NAN,
                grad_norm: f64::INFINITY,
                framer_loss: Some(f64::NAN),
                skipped: true,
                layer_weights: Some(framer_eval::analyze::LayerWeights {
                    faw_low: vec![f32::NAN],
                    faw_high: vec![1.0],
                    fam_low: vec![1.0],
                    fam_high: vec![1.0],
                }),
                ..rec(1, 1.0)
            };
            let good = |step| StepRecord {
                layer_weights: Some(framer_eval::analyze::LayerWeights {
                    faw_low: vec![0.5],
                    faw_high: vec![1.0],
                    fam_low: vec![1.0],
                    fam_high: vec![1.0],
                }),
                ..rec(step, 1.0)
            };
            for r in [good(0), bad, good(2)] {
                log.append(&r).unwrap();
            }
            drop(log);
            let path = dir.join(MetricsLog::file_name(format));
            let text = fs::read_to_string(&path).unwrap();
            if format == LogFormat::Jsonl {
                let line = text.lines().nth(1).unwrap();
                assert!(
                    line.contains("\"loss\":null") && line.contains("\"skipped\":true"),
                    "{line}"
                );
                assert!(
                    !line.contains("faw_low"),
                    "non-finite layer weights are left out"
                );
                // the Fig. 9 reader takes the log too
                framer_eval::analyze::read_training_weights(&path).unwrap();
            }
            let back = read(&path, format).unwrap();
            assert_eq!(back.len(), 3);
            assert!(back[1].skipped && back[1].loss.is_nan() && !back[1].grad_norm.is_finite());
            plot_losses(&back, &dir.join("loss.png"), 100, 50).unwrap();
            // and a resume reads it
            drop(MetricsLog::open(&dir, format, 3).unwrap());
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn logs_round_trip_and_resume_truncates() {
        let dir = std::env::temp_dir().join(format!("framer-metrics-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for format in [LogFormat::Jsonl, LogFormat::Csv] {
            let mut log = MetricsLog::open(&dir, format, 0).unwrap();
            let records: Vec<_> = (0..6).map(|s| rec(s, 1.0 / (s + 1) as f64)).collect();
            for r in &records {
                log.append(r).unwrap();
            }
            log.flush().unwrap();
            drop(log);
            assert_eq!(
                read(&dir.join(MetricsLog::file_name(format)), format).unwrap(),
                records
            );
            // resuming at step 4 keeps steps 0..4
            drop(MetricsLog::open(&dir, format, 4).unwrap());
            assert_eq!(
                read(&dir.join(MetricsLog::file_name(format)), format).unwrap(),
                records[..4]
            );
        }
        let png = dir.join("loss.png");
        plot_losses(
            &(0..50)
                .map(|s| rec(s, 1.0 / (s + 1) as f64))
                .collect::<Vec<_>>(),
            &png,
            200,
            100,
        )
        .unwrap();
        let img = image::open(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (200, 100));
        let coloured = |c: [u8; 3]| img.pixels().filter(|p| p.0 == c).count();
        assert!(
            coloured(PLOT_COLOURS[0]) > 50,
            "the total-loss curve is drawn"
        );
        assert!(coloured(PLOT_COLOURS[2]) > 10, "the FRAMER curve is drawn");
        fs::remove_dir_all(&dir).unwrap();
    }
}
