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
