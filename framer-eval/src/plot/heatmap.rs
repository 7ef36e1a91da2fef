//! Heat maps with a colour bar: [`Heatmap`], coloured by [`viridis`].

use std::path::Path;

use image::RgbImage;
use plotters::prelude::*;

use super::{FONT, canvas, ensure_font, plot_err, save_rgb};
use crate::error::Result;

/// A heat map of `values[row][column]`, rows drawn bottom to top, with a colour bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    /// Caption above the map.
    pub title: String,
    /// Label of the horizontal axis (columns).
    pub x_label: String,
    /// Label of the vertical axis (rows).
    pub y_label: String,
    /// The value of each column on the horizontal axis (e.g. training steps), increasing.
    pub columns: Vec<f64>,
    /// One row per entry (e.g. per layer), each with one value per column; non-finite values
    /// are drawn grey.
    pub values: Vec<Vec<f64>>,
    /// Image size in pixels (width, height).
    pub size: (u32, u32),
}

/// A perceptually ordered colour ramp (approximately Viridis) at `t` in `[0, 1]`.
pub fn viridis(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let lerp = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

impl Heatmap {
    /// Renders the map to an RGB image.
    ///
    /// # Errors
    /// [`EvalError::Plot`] if there are no rows or columns, a row has the wrong length, or
    /// drawing fails.
    pub fn render(&self) -> Result<RgbImage> {
        self.render_for(Path::new(""))
    }

    fn render_for(&self, path: &Path) -> Result<RgbImage> {
        ensure_font()?;
        let err = plot_err(path);
        let (rows, cols) = (self.values.len(), self.columns.len());
        if rows == 0 || cols == 0 {
            return Err(err(
                "a heat map needs at least one row and one column".into()
            ));
        }
        if let Some(r) = self.values.iter().position(|r| r.len() != cols) {
            return Err(err(format!(
                "row {r} has {} values for {cols} columns",
                self.values[r].len()
            )));
        }
        let (lo, hi) = self
            .values
            .iter()
            .flatten()
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let span = if hi > lo { hi - lo } else { 1.0 };
        let (w, h) = self.size;
        canvas(path, (w, h), |root| {
            let (plot_area, bar_area) = root.split_horizontally(w.saturating_sub(110));
            let columns = self.columns.clone();
            let mut chart = ChartBuilder::on(&plot_area)
                .caption(&self.title, (FONT, 22))
                .margin(12)
                .x_label_area_size(44)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..cols as f64, 0.0..rows as f64)
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .x_labels(cols.min(8))
                .y_labels(rows.min(12))
                .x_label_formatter(&|x| {
                    let i = (x.floor() as usize).min(cols - 1);
                    format!("{}", columns[i])
                })
                .y_label_formatter(&|y| format!("{}", y.floor() as usize))
                .label_style((FONT, 13))
                .axis_desc_style((FONT, 16))
                .draw()
                .map_err(|e| err(e.to_string()))?;
            let cells = self.values.iter().enumerate().flat_map(|(r, row)| {
                row.iter().enumerate().map(move |(c, &v)| {
                    let fill = if v.is_finite() {
                        viridis((v - lo) / span)
                    } else {
                        RGBColor(200, 200, 200)
                    };
                    Rectangle::new(
                        [(c as f64, r as f64), (c as f64 + 1.0, r as f64 + 1.0)],
                        fill.filled(),
                    )
                })
            });
            chart.draw_series(cells).map_err(|e| err(e.to_string()))?;
            // colour bar
            let (bw, bh) = bar_area.dim_in_pixel();
            let (top, bottom) = (50i32, bh as i32 - 60);
            let steps = (bottom - top).max(1);
            for k in 0..steps {
                let t = 1.0 - k as f64 / steps as f64;
                bar_area
                    .draw(&Rectangle::new(
                        [(14, top + k), (34, top + k + 1)],
                        viridis(t).filled(),
                    ))
                    .map_err(|e| err(e.to_string()))?;
            }
            let text = TextStyle::from((FONT, 13).into_font()).color(&BLACK);
            for (label, y) in [
                (hi, top - 6),
                ((lo + hi) / 2.0, (top + bottom) / 2 - 6),
                (lo, bottom - 6),
            ] {
                bar_area
                    .draw(&Text::new(format!("{label:.3}"), (40, y), text.clone()))
                    .map_err(|e| err(e.to_string()))?;
            }
            let _ = bw;
            Ok(())
        })
    }

    /// Renders the map and writes it as a PNG (creating the parent folder).
    ///
    /// # Errors
    /// [`EvalError::Plot`], [`EvalError::Write`].
    pub fn save_png(&self, path: &Path) -> Result<()> {
        save_rgb(&self.render_for(path)?, path)
    }
}
