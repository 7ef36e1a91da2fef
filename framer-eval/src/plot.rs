//! PNG plots with text, drawn with `plotters` on an RGB buffer and encoded with `image`: line
//! plots with several series ([`LinePlot`], e.g. loss curves or per-layer energies), grouped bar
//! charts ([`BarChart`], e.g. relative metric changes) and heat maps ([`Heatmap`], e.g. a weight
//! per layer over training).
//!
//! Text uses DejaVu Sans, embedded in the binary (`assets/DejaVuSans.ttf`, Bitstream Vera
//! licence, see `assets/LICENSE-DejaVu.txt`), so no system font is needed.
//!
//! ```no_run
//! use framer_eval::plot::{LinePlot, Series};
//!
//! let plot = LinePlot::new("training loss", "step", "loss").with_series(vec![
//!     Series::new("total", vec![(0.0, 1.0), (100.0, 0.5), (200.0, 0.3)]),
//!     Series::new("FRAMER", vec![(0.0, 0.2), (100.0, 0.15), (200.0, 0.1)]),
//! ]);
//! plot.save_png("loss.png".as_ref())?;
//! # Ok::<(), framer_eval::EvalError>(())
//! ```

use std::path::Path;
use std::sync::OnceLock;

use image::RgbImage;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::error::{EvalError, Result};

/// The embedded font (DejaVu Sans 2.37, Bitstream Vera licence).
pub const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The font family name under which [`FONT_BYTES`] is registered with plotters.
pub const FONT: &str = "sans-serif";

/// Registers the embedded font with plotters once per process.
fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        Err(EvalError::Plot {
            path: Default::default(),
            message: "the embedded DejaVu Sans font could not be parsed".into(),
        })
    }
}

/// A qualitative palette (Matplotlib's `tab10`), cycled for series beyond ten.
pub const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

fn plot_err(path: &Path) -> impl Fn(String) -> EvalError + '_ {
    move |message| EvalError::Plot {
        path: path.to_path_buf(),
        message,
    }
}

fn save_rgb(img: &RgbImage, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| EvalError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| plot_err(path)(format!("cannot encode PNG: {e}")))
}

/// Rejects images too small for axes, labels and a legend.
fn check_size(path: &Path, (w, h): (u32, u32)) -> Result<()> {
    if w < 240 || h < 160 || w > 16384 || h > 16384 {
        return Err(plot_err(path)(format!(
            "image size {w}x{h} is outside 240x160 ..= 16384x16384"
        )));
    }
    Ok(())
}

/// Finite `[min, max]` of the values, widened so that it is never empty.
fn padded_range(values: impl Iterator<Item = f64>, include_zero: bool) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return None;
    }
    if include_zero {
        lo = lo.min(0.0);
        hi = hi.max(0.0);
    }
    let span = hi - lo;
    if span <= f64::EPSILON * lo.abs().max(hi.abs()).max(1.0) {
        let pad = (lo.abs() * 0.05).max(0.5);
        return Some((lo - pad, hi + pad));
    }
    Some((lo - 0.05 * span, hi + 0.05 * span))
}

/// A right-hand legend: a coloured swatch and a name per entry.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(String, RGBColor)],
    top: i32,
) -> std::result::Result<(), String> {
    let style = TextStyle::from((FONT, 14).into_font()).color(&BLACK);
    for (i, (name, c)) in entries.iter().enumerate() {
        let y = top + 20 * i as i32;
        area.draw(&Rectangle::new([(6, y + 3), (26, y + 13)], c.filled()))
            .map_err(|e| e.to_string())?;
        area.draw(&Text::new(name.clone(), (32, y), style.clone()))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

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
        check_size(path, (w, h))?;
        let mut buf = vec![255u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
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
            root.present().map_err(|e| err(e.to_string()))?;
        }
        RgbImage::from_raw(w, h, buf).ok_or_else(|| err("buffer size".into()))
    }

    /// Renders the plot and writes it as a PNG (creating the parent folder).
    ///
    /// # Errors
    /// [`EvalError::Plot`], [`EvalError::Write`].
    pub fn save_png(&self, path: &Path) -> Result<()> {
        save_rgb(&self.render_for(path)?, path)
    }
}

fn legend_width<'a>(names: impl Iterator<Item = &'a str>) -> u32 {
    let longest = names.map(|n| n.chars().count()).max().unwrap_or(0) as u32;
    (48 + 9 * longest).clamp(90, 340)
}

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
        check_size(path, (w, h))?;
        let mut buf = vec![255u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
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
            root.present().map_err(|e| err(e.to_string()))?;
        }
        RgbImage::from_raw(w, h, buf).ok_or_else(|| err("buffer size".into()))
    }

    /// Renders the chart and writes it as a PNG (creating the parent folder).
    ///
    /// # Errors
    /// [`EvalError::Plot`], [`EvalError::Write`].
    pub fn save_png(&self, path: &Path) -> Result<()> {
        save_rgb(&self.render_for(path)?, path)
    }
}

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
        check_size(path, (w, h))?;
        let mut buf = vec![255u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
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
            root.present().map_err(|e| err(e.to_string()))?;
        }
        RgbImage::from_raw(w, h, buf).ok_or_else(|| err("buffer size".into()))
    }

    /// Renders the map and writes it as a PNG (creating the parent folder).
    ///
    /// # Errors
    /// [`EvalError::Plot`], [`EvalError::Write`].
    pub fn save_png(&self, path: &Path) -> Result<()> {
        save_rgb(&self.render_for(path)?, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Number of pixels whose colour is close to `c`.
    fn count_near(img: &RgbImage, c: RGBColor) -> usize {
        img.pixels()
            .filter(|p| {
                (p[0] as i32 - c.0 as i32).abs() < 8
                    && (p[1] as i32 - c.1 as i32).abs() < 8
                    && (p[2] as i32 - c.2 as i32).abs() < 8
            })
            .count()
    }

    fn dark_pixels(img: &RgbImage) -> usize {
        img.pixels()
            .filter(|p| p[0] < 60 && p[1] < 60 && p[2] < 60)
            .count()
    }

    #[test]
    fn line_plot_draws_each_series_in_its_colour_with_text() {
        let plot = LinePlot::new("loss", "step", "value").with_series(vec![
            Series::new(
                "a",
                (0..50).map(|i| (i as f64, (i as f64).sqrt())).collect(),
            ),
            Series::new(
                "b",
                (0..50)
                    .map(|i| (i as f64, f64::NAN.min(1.0) + 2.0))
                    .collect(),
            ),
        ]);
        let img = plot.render().unwrap();
        assert_eq!(img.dimensions(), (960, 540));
        assert!(count_near(&img, color(0)) > 200, "series a drawn");
        assert!(count_near(&img, color(1)) > 200, "series b drawn");
        assert!(dark_pixels(&img) > 500, "text and axes drawn");
    }

    #[test]
    fn empty_or_non_finite_plots_are_errors() {
        let plot = LinePlot::new("t", "x", "y")
            .with_series(vec![Series::new("nan", vec![(f64::NAN, 1.0)])]);
        assert!(matches!(plot.render(), Err(EvalError::Plot { .. })));
        let mut tiny =
            LinePlot::new("t", "x", "y").with_series(vec![Series::new("a", vec![(0.0, 1.0)])]);
        tiny.size = (10, 10);
        assert!(tiny.render().unwrap_err().to_string().contains("10x10"));
        let mut bars = BarChart::new("t", "y");
        assert!(bars.render().is_err());
        bars.categories = vec!["psnr".into(), "ssim".into()];
        bars.series = vec![BarSeries {
            name: "r".into(),
            values: vec![Some(1.0)],
        }];
        assert!(
            bars.render()
                .unwrap_err()
                .to_string()
                .contains("1 values for 2 categories")
        );
    }

    #[test]
    fn bars_have_heights_proportional_to_values() {
        let mut bars = BarChart::new("relative change", "%");
        bars.categories = vec!["psnr_y ↑".into(), "niqe ↓".into(), "x".into()];
        bars.series = vec![BarSeries {
            name: "run".into(),
            values: vec![Some(10.0), Some(-5.0), None],
        }];
        bars.size = (800, 500);
        let img = bars.render().unwrap();
        // measure the tallest run of the bar colour in each of the two bar columns
        let c = color(0);
        let is_bar = |x: u32, y: u32| {
            let p = img.get_pixel(x, y);
            (p[0] as i32 - c.0 as i32).abs() < 4 && (p[1] as i32 - c.1 as i32).abs() < 4
        };
        // group consecutive columns containing the bar colour into runs; keep each run's height
        let mut tall: Vec<usize> = Vec::new();
        let mut in_run = false;
        for x in 0..img.width() {
            let hgt = (0..img.height()).filter(|&y| is_bar(x, y)).count();
            if hgt > 20 {
                if !in_run {
                    tall.push(0);
                }
                let last = tall.last_mut().unwrap();
                *last = (*last).max(hgt);
            }
            in_run = hgt > 20;
        }
        // the legend swatch is only 10 pixels high, so only the two bars remain
        assert_eq!(tall.len(), 2, "two bars: {tall:?}");
        let ratio = tall[0] as f64 / tall[1] as f64;
        assert!((ratio - 2.0).abs() < 0.1, "bar heights {tall:?}");
    }

    #[test]
    fn heatmap_spans_the_colour_ramp() {
        let map = Heatmap {
            title: "w".into(),
            x_label: "step".into(),
            y_label: "layer".into(),
            columns: vec![0.0, 10.0, 20.0],
            values: vec![vec![0.0, 0.5, 1.0], vec![1.0, 0.5, 0.0]],
            size: (600, 400),
        };
        let img = map.render().unwrap();
        assert!(count_near(&img, viridis(0.0)) > 1000);
        assert!(count_near(&img, viridis(1.0)) > 1000);
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
    }
}
