//! Line plots: [`LinePlot`] of named [`Series`].

use std::path::Path;

use image::RgbImage;
use plotters::prelude::*;

use super::{
    FONT, canvas, color, draw_legend, ensure_font, legend_width, padded_range, plot_err, save_rgb,
};
use crate::error::Result;

/// One named line of a [`LinePlot`]: `(x, y)` points in drawing order. Non-finite points are
/// skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A named series.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
        }
    }
}

/// A line plot with several series and a legend to the right.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePlot {
    /// Caption above the plot.
    pub title: String,
    /// Label of the horizontal axis.
    pub x_label: String,
    /// Label of the vertical axis.
    pub y_label: String,
    /// The series, drawn in order with the colours of [`PALETTE`].
    pub series: Vec<Series>,
    /// Image size in pixels (width, height).
    pub size: (u32, u32),
    /// Draw a dot at every point (useful for short series).
    pub markers: bool,
}

impl LinePlot {
    /// An empty 960×540 plot.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            size: (960, 540),
            markers: false,
        }
    }

    /// Sets the series.
    pub fn with_series(mut self, series: Vec<Series>) -> Self {
        self.series = series;
        self
    }

    /// Draws dots at the points.
    pub fn with_markers(mut self, on: bool) -> Self {
        self.markers = on;
        self
    }

    /// Renders the plot to an RGB image.
    ///
    /// # Errors
    /// [`EvalError::Plot`] if no series has a finite point, or drawing fails.
    pub fn render(&self) -> Result<RgbImage> {
        self.render_for(Path::new(""))
    }

    fn render_for(&self, path: &Path) -> Result<RgbImage> {
        ensure_font()?;
        let err = plot_err(path);
        let points = || self.series.iter().flat_map(|s| s.points.iter());
        let (x0, x1) = padded_range(points().map(|p| p.0), false)
            .ok_or_else(|| err("no finite points to plot".into()))?;
        let (y0, y1) = padded_range(points().filter(|p| p.0.is_finite()).map(|p| p.1), false)
            .ok_or_else(|| err("no finite points to plot".into()))?;
        let (w, h) = self.size;
        canvas(path, (w, h), |root| {
            let legend_width = legend_width(self.series.iter().map(|s| s.name.as_str()));
            let (plot_area, legend_area) = root.split_horizontally(w.saturating_sub(legend_width));
            let mut chart = ChartBuilder::on(&plot_area)
                .caption(&self.title, (FONT, 22))
                .margin(12)
                .x_label_area_size(44)
                .y_label_area_size(72)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .label_style((FONT, 14))
                .axis_desc_style((FONT, 16))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(|e| err(e.to_string()))?;
            let mut legend = Vec::new();
            for (i, s) in self.series.iter().enumerate() {
                let c = color(i);
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|p| p.0.is_finite() && p.1.is_finite())
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                    .map_err(|e| err(e.to_string()))?;
                if self.markers {
                    chart
                        .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
                        .map_err(|e| err(e.to_string()))?;
                }
                legend.push((s.name.clone(), c));
            }
            draw_legend(&legend_area, &legend, 48).map_err(&err)?;
            Ok(())
        })
    }

    /// Renders the plot and writes it as a PNG (creating the parent folder).
    ///
    /// # Errors
    /// [`EvalError::Plot`], [`EvalError::Write`].
    pub fn save_png(&self, path: &Path) -> Result<()> {
        save_rgb(&self.render_for(path)?, path)
    }
}
