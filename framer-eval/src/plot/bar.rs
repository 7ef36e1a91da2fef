//! Grouped bar charts: [`BarChart`] of [`BarSeries`], one bar per series in each category.

use std::path::Path;

use image::RgbImage;
use plotters::prelude::*;

use super::{
    FONT, canvas, color, draw_legend, ensure_font, legend_width, padded_range, plot_err, save_rgb,
};
use crate::error::Result;

/// One named set of bars of a [`BarChart`]: one value per category (`None` = no bar).
#[derive(Debug, Clone, PartialEq)]
pub struct BarSeries {
    /// Legend entry.
    pub name: String,
    /// One value per category; `None` or a non-finite value draws no bar and prints `n/a`.
    pub values: Vec<Option<f64>>,
}

/// A grouped bar chart: categories along the horizontal axis, one bar per series in each.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// Caption above the chart.
    pub title: String,
    /// Label of the vertical axis.
    pub y_label: String,
    /// Category names, left to right.
    pub categories: Vec<String>,
    /// The series.
    pub series: Vec<BarSeries>,
    /// Image size in pixels (width, height).
    pub size: (u32, u32),
    /// Format of the value printed at the end of each bar, e.g. `|v| format!("{v:+.1}%")`.
    pub value_format: fn(f64) -> String,
}

impl BarChart {
    /// An empty chart, sized to the number of categories later by [`BarChart::render`] if left at
    /// `(0, 0)`.
    pub fn new(title: impl Into<String>, y_label: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            y_label: y_label.into(),
            categories: Vec::new(),
            series: Vec::new(),
            size: (0, 0),
            value_format: |v| format!("{v:.3}"),
        }
    }

    /// Renders the chart to an RGB image.
    ///
    /// # Errors
    /// [`EvalError::Plot`] if there are no categories or series, a series has the wrong number
    /// of values, or drawing fails.
    pub fn render(&self) -> Result<RgbImage> {
        self.render_for(Path::new(""))
    }

    fn render_for(&self, path: &Path) -> Result<RgbImage> {
        ensure_font()?;
        let err = plot_err(path);
        let n = self.categories.len();
        if n == 0 || self.series.is_empty() {
            return Err(err(
                "a bar chart needs at least one category and one series".into(),
            ));
        }
        if let Some(s) = self.series.iter().find(|s| s.values.len() != n) {
            return Err(err(format!(
                "series `{}` has {} values for {n} categories",
                s.name,
                s.values.len()
            )));
        }
        let finite = |v: &Option<f64>| v.filter(|v| v.is_finite());
        let (y0, y1) = padded_range(
            self.series
                .iter()
                .flat_map(|s| s.values.iter().filter_map(finite)),
            true,
        )
        .unwrap_or((-1.0, 1.0));
        let (w, h) = if self.size == (0, 0) {
            ((280 + 130 * n as u32).clamp(560, 1600), 540)
        } else {
            self.size
        };
        canvas(path, (w, h), |root| {
            let legend_width = legend_width(self.series.iter().map(|s| s.name.as_str()));
            let (plot_area, legend_area) = root.split_horizontally(w.saturating_sub(legend_width));
            let mut chart = ChartBuilder::on(&plot_area)
                .caption(&self.title, (FONT, 22))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(72)
                .build_cartesian_2d(0.0..n as f64, y0..y1)
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .y_desc(&self.y_label)
                .x_labels(0)
                .label_style((FONT, 14))
                .axis_desc_style((FONT, 16))
                .light_line_style(TRANSPARENT)
                .draw()
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(LineSeries::new(
                    [(0.0, 0.0), (n as f64, 0.0)],
                    BLACK.stroke_width(1),
                ))
                .map_err(|e| err(e.to_string()))?;
            // category names centred under their groups
            let label_style = TextStyle::from((FONT, 15).into_font()).color(&BLACK);
            for (i, name) in self.categories.iter().enumerate() {
                let (px, py) = chart.backend_coord(&(i as f64 + 0.5, y0));
                let half = 4 * name.chars().count() as i32;
                plot_area
                    .draw(&Text::new(
                        name.clone(),
                        (px - half, py + 8),
                        label_style.clone(),
                    ))
                    .map_err(|e| err(e.to_string()))?;
            }
            let k = self.series.len() as f64;
            let bar = 0.8 / k;
            let text = TextStyle::from((FONT, 12).into_font()).color(&BLACK);
            let mut legend = Vec::new();
            for (j, s) in self.series.iter().enumerate() {
                let c = color(j);
                for (i, v) in s.values.iter().enumerate() {
                    let left = i as f64 + 0.1 + j as f64 * bar;
                    let label_x = left + bar / 2.0;
                    match finite(v) {
                        Some(v) => {
                            chart
                                .draw_series(std::iter::once(Rectangle::new(
                                    [(left, 0.0), (left + bar * 0.92, v)],
                                    c.filled(),
                                )))
                                .map_err(|e| err(e.to_string()))?;
                            let pos = chart.backend_coord(&(label_x, v));
                            let dy = if v >= 0.0 { -16 } else { 4 };
                            let label = (self.value_format)(v);
                            let dx = 3 * label.chars().count() as i32;
                            plot_area
                                .draw(&Text::new(label, (pos.0 - dx, pos.1 + dy), text.clone()))
                                .map_err(|e| err(e.to_string()))?;
                        }
                        None => {
                            let pos = chart.backend_coord(&(label_x, 0.0));
                            plot_area
                                .draw(&Text::new("n/a", (pos.0 - 9, pos.1 - 16), text.clone()))
                                .map_err(|e| err(e.to_string()))?;
                        }
                    }
                }
                legend.push((s.name.clone(), c));
            }
            draw_legend(&legend_area, &legend, 48).map_err(&err)?;
            Ok(())
        })
    }

    /// Renders the chart and writes it as a PNG (creating the parent folder).
    ///
    /// # Errors
    /// [`EvalError::Plot`], [`EvalError::Write`].
    pub fn save_png(&self, path: &Path) -> Result<()> {
        save_rgb(&self.render_for(path)?, path)
    }
}
