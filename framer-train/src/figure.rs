//! Figures of the main job and the study: labelled comparison panels with a zoomed detail, and a
//! bar chart with error bars. Text uses the DejaVu Sans font embedded in `framer-eval`
//! ([`framer_eval::plot::FONT_BYTES`]).

use std::path::Path;
use std::sync::OnceLock;

use framer_data::Image;
use framer_metrics::Metric;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::engine::EngineError;

/// The font family the figures draw text with.
const FONT: &str = "sans-serif";

fn ensure_font() -> Result<(), EngineError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font(FONT, FontStyle::Normal, framer_eval::plot::FONT_BYTES).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(EngineError::Data(
            "the embedded DejaVu Sans font could not be parsed".into(),
        ))
    }
}

/// One labelled panel of a comparison figure.
#[derive(Debug, Clone)]
pub struct Panel {
    /// The title above the panel.
    pub label: String,
    /// The image; every panel of a figure has the same size.
    pub image: Image,
    /// A second line under the title (e.g. the panel's scores).
    pub caption: Option<String>,
}

/// `"PSNR-Y 24.31 dB · SSIM-Y 0.6712"` from one image's scores.
pub fn score_caption(scores: &[(Metric, f64)]) -> String {
    let get = |m: Metric| scores.iter().find(|(k, _)| *k == m).map(|(_, v)| *v);
    match (get(Metric::PsnrY), get(Metric::SsimY)) {
        (Some(p), Some(s)) => format!("PSNR-Y {p:.2} dB · SSIM-Y {s:.4}"),
        (Some(p), None) => format!("PSNR-Y {p:.2} dB"),
        _ => String::new(),
    }
}

/// The `side`² window of the HR-size panels with the most detail (largest sum of absolute
/// horizontal and vertical differences of the green channel of `reference`), on a grid of step
/// `side / 2`: where a zoom shows the difference between the methods.
fn detail_window(reference: &Image, side: usize) -> (usize, usize) {
    let (w, h) = (reference.width(), reference.height());
    if side >= w || side >= h {
        return (0, 0);
    }
    let g = reference.channel(1);
    let step = (side / 2).max(1);
    let mut best = (0.0f64, (0, 0));
    let mut y0 = 0;
    while y0 + side <= h {
        let mut x0 = 0;
        while x0 + side <= w {
            let mut e = 0.0f64;
            for y in y0..y0 + side - 1 {
                for x in x0..x0 + side - 1 {
                    let v = g[y * w + x];
                    e += f64::from((g[y * w + x + 1] - v).abs() + (g[(y + 1) * w + x] - v).abs());
                }
            }
            if e > best.0 {
                best = (e, (x0, y0));
            }
            x0 += step;
        }
        y0 += step;
    }
    best.1
}

/// Writes a comparison figure: a row of labelled panels (title and caption above each), and
/// under it the same detail of each panel enlarged (nearest neighbour, to the panel width), its
/// place marked by a red square on the panels. The detail is the quarter-width window of the
/// last panel (the ground truth) with the most edges.
///
/// # Errors
/// [`EngineError::Data`] for panels of different sizes or no panels; [`EngineError::Io`] when
/// drawing or writing fails.
pub fn comparison_figure(title: &str, panels: &[Panel], path: &Path) -> Result<(), EngineError> {
    ensure_font()?;
    let Some(last) = panels.last() else {
        return Err(EngineError::Data("a comparison figure needs panels".into()));
    };
    let (pw, ph) = (last.image.width(), last.image.height());
    if panels
        .iter()
        .any(|p| p.image.width() != pw || p.image.height() != ph)
    {
        return Err(EngineError::Data(format!(
            "the panels of {title} differ in size (expected {pw}×{ph})"
        )));
    }
    let zoom_side = (pw.min(ph) / 4).max(1);
    let (zx, zy) = detail_window(&last.image, zoom_side);
    let factor = (pw / zoom_side).max(1);
    let gap = 8usize;
    let title_h = 30usize;
    let head = 44usize;
    let width = panels.len() * pw + (panels.len() + 1) * gap;
    let zoom_h = zoom_side * factor;
    let height = title_h + head + ph + gap + zoom_h + gap;
    let mut buffer = vec![255u8; width * height * 3];
    let blit = |buffer: &mut Vec<u8>, image: &Image, left: usize, top: usize, scale: usize, window: (usize, usize, usize, usize)| {
        let (x0, y0, ww, wh) = window;
        let iw = image.width();
        let ih = image.height();
        let plane = iw * ih;
        let data = image.data();
        for y in 0..wh * scale {
            for x in 0..ww * scale {
                let (sx, sy) = (x0 + x / scale, y0 + y / scale);
                let dst = ((top + y) * width + left + x) * 3;
                for c in 0..3 {
                    let v = data[c * plane + sy * iw + sx].clamp(0.0, 1.0);
                    buffer[dst + c] = (v * 255.0).round() as u8;
                }
            }
        }
    };
    for (i, panel) in panels.iter().enumerate() {
        let left = gap + i * (pw + gap);
        blit(&mut buffer, &panel.image, left, title_h + head, 1, (0, 0, pw, ph));
        blit(
            &mut buffer,
            &panel.image,
            left + (pw - zoom_side * factor) / 2,
            title_h + head + ph + gap,
            factor,
            (zx, zy, zoom_side, zoom_side),
        );
    }
    let draw_err = |e: String| EngineError::Io(format!("{}: drawing failed: {e}", path.display()));
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width as u32, height as u32))
            .into_drawing_area();
        let big = TextStyle::from((FONT, 18).into_font()).color(&BLACK);
        let label = TextStyle::from((FONT, 15).into_font()).color(&BLACK);
        let small = TextStyle::from((FONT, 12).into_font()).color(&RGBColor(60, 60, 60));
        root.draw(&Text::new(
            format!("{title}: {pw}×{ph} held-out crop (×4); below, the marked {zoom_side}×{zoom_side} detail ×{factor}"),
            (gap as i32, 6),
            big,
        ))
        .map_err(|e| draw_err(e.to_string()))?;
        for (i, panel) in panels.iter().enumerate() {
            let left = (gap + i * (pw + gap)) as i32;
            let top = (title_h + head) as i32;
            root.draw(&Text::new(panel.label.clone(), (left, title_h as i32 + 2), label.clone()))
                .map_err(|e| draw_err(e.to_string()))?;
            if let Some(caption) = &panel.caption {
                root.draw(&Text::new(caption.clone(), (left, title_h as i32 + 22), small.clone()))
                    .map_err(|e| draw_err(e.to_string()))?;
            }
            let (x0, y0) = (left + zx as i32, top + zy as i32);
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + zoom_side as i32, y0 + zoom_side as i32)],
                RED.stroke_width(2),
            ))
            .map_err(|e| draw_err(e.to_string()))?;
        }
        root.present().map_err(|e| draw_err(e.to_string()))?;
    }
    image::RgbImage::from_raw(width as u32, height as u32, buffer)
        .ok_or_else(|| draw_err("buffer size".into()))?
        .save(path)
        .map_err(|e| EngineError::Io(format!("{}: {e}", path.display())))
}

/// One bar of a [`bar_chart_with_errors`]: a mean and the half-width of its error bar.
#[derive(Debug, Clone, PartialEq)]
pub struct BarWithError {
    /// The bar's label.
    pub label: String,
    /// The bar's height.
    pub value: f64,
    /// The half-width of the error bar (e.g. a standard deviation or a 95 % half-interval).
    pub error: f64,
}

/// Writes a bar chart with error bars (one panel per `(title, bars)` group, side by side), the
/// vertical axis of each panel fitted to its bars and errors.
///
/// # Errors
/// [`EngineError::Data`] for no groups or empty groups; [`EngineError::Io`] when drawing or
/// writing fails.
pub fn bar_chart_with_errors(
    caption: &str,
    groups: &[(String, Vec<BarWithError>)],
    path: &Path,
) -> Result<(), EngineError> {
    ensure_font()?;
    if groups.is_empty() || groups.iter().any(|(_, bars)| bars.is_empty()) {
        return Err(EngineError::Data("a bar chart needs bars".into()));
    }
    let (pw, height) = (420u32, 420u32);
    let width = pw * groups.len() as u32;
    let mut buffer = vec![255u8; (width * height * 3) as usize];
    let draw_err = |e: String| EngineError::Io(format!("{}: drawing failed: {e}", path.display()));
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        let root = root
            .titled(caption, (FONT, 18).into_font())
            .map_err(|e| draw_err(e.to_string()))?;
        let areas = root.split_evenly((1, groups.len()));
        for ((title, bars), area) in groups.iter().zip(areas) {
            let lo = bars.iter().map(|b| b.value - b.error).fold(f64::INFINITY, f64::min);
            let hi = bars.iter().map(|b| b.value + b.error).fold(f64::NEG_INFINITY, f64::max);
            let pad = ((hi - lo) * 0.15).max(1e-6);
            let (y0, y1) = (lo - pad, hi + pad);
            let n = bars.len();
            let mut chart = ChartBuilder::on(&area)
                .caption(title, (FONT, 15).into_font())
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..n as f64, y0..y1)
                .map_err(|e| draw_err(e.to_string()))?;
            let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n * 2 + 1)
                .x_label_formatter(&|x| {
                    let i = (x - 0.5).round();
                    if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                        labels[i as usize].clone()
                    } else {
                        String::new()
                    }
                })
                .label_style((FONT, 12).into_font())
                .draw()
                .map_err(|e| draw_err(e.to_string()))?;
            for (i, bar) in bars.iter().enumerate() {
                let (r, g, b) = framer_eval::plot::PALETTE[i % framer_eval::plot::PALETTE.len()];
                let color = RGBColor(r, g, b);
                let x = i as f64;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x + 0.2, y0), (x + 0.8, bar.value)],
                        color.mix(0.8).filled(),
                    )))
                    .map_err(|e| draw_err(e.to_string()))?;
                let (lo, hi) = (bar.value - bar.error, bar.value + bar.error);
                let whisker = [
                    vec![(x + 0.5, lo), (x + 0.5, hi)],
                    vec![(x + 0.4, lo), (x + 0.6, lo)],
                    vec![(x + 0.4, hi), (x + 0.6, hi)],
                ];
                chart
                    .draw_series(
                        whisker
                            .into_iter()
                            .map(|line| PathElement::new(line, BLACK.stroke_width(2))),
                    )
                    .map_err(|e| draw_err(e.to_string()))?;
            }
        }
        root.present().map_err(|e| draw_err(e.to_string()))?;
    }
    image::RgbImage::from_raw(width, height, buffer)
        .ok_or_else(|| draw_err("buffer size".into()))?
        .save(path)
        .map_err(|e| EngineError::Io(format!("{}: {e}", path.display())))
}
