//! FAW and FAM per student layer over training (the paper's Fig. 9), read from the training
//! engine's JSON Lines log: the schema is in [the module docs](super).

use std::path::{Path, PathBuf};

use crate::error::{EvalError, Result};
use crate::plot::{Heatmap, LinePlot, Series};

use super::spectra::{MAX_LINES, spread_indices};

/// The names of the per-layer weight fields of the training log, in column order.
pub const WEIGHT_FIELDS: [&str; 4] = ["faw_low", "faw_high", "fam_low", "fam_high"];

/// One record of FAW/FAM weights read from a log.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightRecord {
    /// Optimiser step.
    pub step: u64,
    /// The fields of [`WEIGHT_FIELDS`], in that order; `None` where the record lacks the field.
    pub fields: [Option<Vec<f64>>; 4],
}

/// FAW/FAM weights per layer over training.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingWeights {
    /// The log file.
    pub path: PathBuf,
    /// Number of student layers.
    pub layers: usize,
    /// The records, in file order.
    pub records: Vec<WeightRecord>,
}

/// Reads the FAW/FAM records of a JSON Lines training log (schema in the module docs).
///
/// # Errors
/// [`EvalError::Read`] if the file cannot be read; [`EvalError::Log`] naming the line for a line
/// that is not a JSON object, a missing or negative `step`, a weight field that is not an array
/// of numbers, or a layer count that differs from earlier records; [`EvalError::Empty`] if no
/// record has weights.
pub fn read_training_weights(path: &Path) -> Result<TrainingWeights> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_training_weights(&text, path)
}

/// [`read_training_weights`] on text already read; `path` is only used in messages.
///
/// # Errors
/// As [`read_training_weights`], without [`EvalError::Read`].
pub fn parse_training_weights(text: &str, path: &Path) -> Result<TrainingWeights> {
    let err = |line: usize, message: String| EvalError::Log {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut layers: Option<(usize, usize)> = None; // (count, first line)
    let mut records = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| err(line, format!("not valid JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| err(line, "expected a JSON object".into()))?;
        if WEIGHT_FIELDS.iter().all(|f| !obj.contains_key(*f)) {
            continue;
        }
        let step = obj
            .get("step")
            .ok_or_else(|| err(line, "record has weight fields but no `step`".into()))?
            .as_u64()
            .ok_or_else(|| err(line, "`step` must be a non-negative integer".into()))?;
        let mut fields: [Option<Vec<f64>>; 4] = Default::default();
        for (k, name) in WEIGHT_FIELDS.iter().enumerate() {
            let Some(v) = obj.get(*name) else { continue };
            let arr = v.as_array().ok_or_else(|| {
                err(
                    line,
                    format!("`{name}` must be an array with one number per layer"),
                )
            })?;
            let values = arr
                .iter()
                .enumerate()
                .map(|(j, x)| match x {
                    serde_json::Value::Null => Ok(f64::NAN),
                    x => x
                        .as_f64()
                        .ok_or_else(|| err(line, format!("`{name}[{j}]` is not a number: {x}"))),
                })
                .collect::<Result<Vec<f64>>>()?;
            match layers {
                None => layers = Some((values.len(), line)),
                Some((n, first)) if n != values.len() => {
                    return Err(err(
                        line,
                        format!(
                            "`{name}` has {} layers, but line {first} has {n}",
                            values.len()
                        ),
                    ));
                }
                Some(_) => {}
            }
            fields[k] = Some(values);
        }
        records.push(WeightRecord { step, fields });
    }
    let (layers, _) = layers.ok_or_else(|| {
        EvalError::Empty(format!(
            "plot: {} has no record with any of {}",
            path.display(),
            WEIGHT_FIELDS.join(", ")
        ))
    })?;
    Ok(TrainingWeights {
        path: path.to_path_buf(),
        layers,
        records,
    })
}

impl TrainingWeights {
    /// The CSV, long format: header `step,layer,faw_low,faw_high,fam_low,fam_high`, one row per
    /// record and layer, empty cells for missing fields.
    pub fn to_csv(&self) -> String {
        let mut out = format!("step,layer,{}\n", WEIGHT_FIELDS.join(","));
        for r in &self.records {
            for layer in 0..self.layers {
                let cells: Vec<String> = r
                    .fields
                    .iter()
                    .map(|f| {
                        f.as_ref()
                            .map_or_else(String::new, |v| v[layer].to_string())
                    })
                    .collect();
                out.push_str(&format!("{},{layer},{}\n", r.step, cells.join(",")));
            }
        }
        out
    }

    /// `(steps, values[layer][record])` of one quantity over the records that have it.
    /// `quantity` is one of [`WEIGHT_FIELDS`] or `weight_low` / `weight_high` (the effective
    /// weights `faw·fam`, where both are present).
    pub fn series(&self, quantity: &str) -> Option<(Vec<f64>, Vec<Vec<f64>>)> {
        let get = |r: &WeightRecord| -> Option<Vec<f64>> {
            match quantity {
                "weight_low" | "weight_high" => {
                    let (a, b) = if quantity == "weight_low" {
                        (0, 2)
                    } else {
                        (1, 3)
                    };
                    let (x, y) = (r.fields[a].as_ref()?, r.fields[b].as_ref()?);
                    Some(x.iter().zip(y).map(|(p, q)| p * q).collect())
                }
                name => r.fields[WEIGHT_FIELDS.iter().position(|f| *f == name)?].clone(),
            }
        };
        let rows: Vec<(u64, Vec<f64>)> = self
            .records
            .iter()
            .filter_map(|r| Some((r.step, get(r)?)))
            .collect();
        if rows.is_empty() {
            return None;
        }
        let steps = rows.iter().map(|(s, _)| *s as f64).collect();
        let values = (0..self.layers)
            .map(|l| rows.iter().map(|(_, v)| v[l]).collect())
            .collect();
        Some((steps, values))
    }

    /// Writes `weights.csv` and, for each of [`WEIGHT_FIELDS`] and `weight_low` / `weight_high`
    /// present in the log, `<field>_heatmap.png` (layer × step) and `<field>_layers.png`
    /// (a few layers over the steps) into `dir`; returns the paths.
    ///
    /// # Errors
    /// [`EvalError::Write`], [`EvalError::Plot`] naming the file.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut paths = vec![super::write_csv(dir, "weights.csv", &self.to_csv())?];
        let names = WEIGHT_FIELDS
            .iter()
            .copied()
            .chain(["weight_low", "weight_high"]);
        for name in names {
            let Some((steps, values)) = self.series(name) else {
                continue;
            };
            let title = match name {
                "weight_low" => "effective LF weight FAW·FAM per layer".to_string(),
                "weight_high" => "effective HF weight FAW·FAM per layer".to_string(),
                other => {
                    let (name, band) = other.split_once('_').unwrap_or((other, ""));
                    format!("{} ({band} band) per layer", name.to_uppercase())
                }
            };
            let heatmap = Heatmap {
                title: title.clone(),
                x_label: "training step".into(),
                y_label: "student layer".into(),
                columns: steps.clone(),
                values: values.clone(),
                size: (960, 540),
            };
            let path = dir.join(format!("{name}_heatmap.png"));
            heatmap.save_png(&path)?;
            paths.push(path);
            let series = spread_indices(self.layers, MAX_LINES)
                .into_iter()
                .map(|l| {
                    Series::new(
                        format!("layer {l}"),
                        steps
                            .iter()
                            .copied()
                            .zip(values[l].iter().copied())
                            .collect(),
                    )
                })
                .collect();
            let plot = LinePlot::new(title, "training step", name).with_series(series);
            let path = dir.join(format!("{name}_layers.png"));
            plot.save_png(&path)?;
            paths.push(path);
        }
        Ok(paths)
    }
}
