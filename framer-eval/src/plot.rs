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

/// A white canvas of `(w, h)` pixels (checked by [`check_size`]) on which `draw` draws; the
/// drawing as an image. `path` only names the plot in errors.
fn canvas(
    path: &Path,
    (w, h): (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<RgbImage> {
    check_size(path, (w, h))?;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|e| plot_err(path)(e.to_string()))?;
    }
    RgbImage::from_raw(w, h, buf).ok_or_else(|| plot_err(path)("buffer size".into()))
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

fn legend_width<'a>(names: impl Iterator<Item = &'a str>) -> u32 {
    let longest = names.map(|n| n.chars().count()).max().unwrap_or(0) as u32;
    (48 + 9 * longest).clamp(90, 340)
}

mod bar;
mod heatmap;
mod line;

pub use bar::{BarChart, BarSeries};
pub use heatmap::{Heatmap, viridis};
pub use line::{LinePlot, Series};

#[cfg(test)]
mod tests;
