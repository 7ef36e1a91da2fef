//! Evaluation reports: one run against its ground truths, several runs side by side, the
//! skipped-metrics note and the errors for bad folders and arguments.

use std::path::Path;

use framer_data::Image;
use framer_eval::compare::{
    ImageMetric, MetricModels, PAPER_METRICS, RunSpec, compare_runs, evaluate_run,
    evaluate_run_with, relative_change,
};
use framer_eval::{EvalError, Result};
use framer_metrics::{Metric, MetricError, MetricImage, TableFormat};

/// Writes `count` images of `w×h` into `dir`, each `base + noise·pattern`.
fn write_set(dir: &Path, count: usize, w: usize, h: usize, noise: f32) {
    std::fs::create_dir_all(dir).unwrap();
    for k in 0..count {
        let img = Image::from_fn(w, h, |c, y, x| {
            let base = 0.3 + 0.4 * (((x + 2 * y + k) % 16) as f32 / 16.0) + 0.05 * c as f32;
            let n = (((x * 7 + y * 13 + c * 3 + k) % 11) as f32 / 11.0 - 0.5) * noise;
            (base + n).clamp(0.0, 1.0)
        })
        .unwrap();
        img.save_png(dir.join(format!("{k:04}.png"))).unwrap();
    }
}

/// A stand-in no-reference model: the image's width + mean red value (shows the crop).
struct WidthAndRed(Metric);

impl ImageMetric for WidthAndRed {
    fn metric(&self) -> Metric {
        self.0
    }
    fn score(&self, image: &MetricImage) -> Result<f64> {
        let red: f64 = image.channel(0).iter().map(|&v| f64::from(v)).sum();
        Ok(image.width() as f64 + red / (image.width() * image.height()) as f64)
    }
}

#[test]
fn image_models_score_the_cropped_sr_image_without_ground_truth() {
    let tmp = tempfile::tempdir().unwrap();
    let sr = tmp.path().join("sr");
    write_set(&sr, 2, 40, 32, 0.1);
    let musiq = WidthAndRed(Metric::Musiq);
    let image: [&dyn ImageMetric; 1] = [&musiq];
    let models = MetricModels {
        pair: &[],
        image: &image,
    };
    let report = evaluate_run_with(&sr, None, 3, &[Metric::Musiq, Metric::Maniqa], models).unwrap();
    assert_eq!(report.evaluation.metrics, vec![Metric::Musiq]);
    assert_eq!(report.skipped, vec![Metric::Maniqa]);
    for img in &report.evaluation.images {
        let cropped = MetricImage::load(&img.sr_path).unwrap().crop_border(3).unwrap();
        assert_eq!(img.values[0], musiq.score(&cropped).unwrap());
        // 40 − 2·3 columns are left
        assert!((34.0..35.0).contains(&img.values[0]), "{}", img.values[0]);
    }
    // a full-reference metric still needs the ground truth; a crop larger than the image
    // is the metrics crate's error
    let e = evaluate_run_with(&sr, None, 0, &[Metric::PsnrY, Metric::Musiq], models).unwrap_err();
    assert!(e.to_string().contains("psnr_y"), "{e}");
    let e = evaluate_run_with(&sr, None, 16, &[Metric::Musiq], models).unwrap_err();
    assert!(e.to_string().contains("16"), "{e}");
}

#[test]
fn compare_reports_relative_changes_that_match_the_means() {
    let tmp = tempfile::tempdir().unwrap();
    let gt = tmp.path().join("gt");
    write_set(&gt, 2, 48, 40, 0.0);
    write_set(&tmp.path().join("a"), 2, 48, 40, 0.2);
    write_set(&tmp.path().join("b"), 2, 48, 40, 0.05);
    let runs = [
        RunSpec::parse(&format!("base={}", tmp.path().join("a").display())).unwrap(),
        RunSpec::new("better", tmp.path().join("b")),
    ];
    let metrics = [Metric::PsnrY, Metric::SsimY, Metric::Lpips];
    let cmp = compare_runs(&runs, Some(&gt), 0, &metrics).unwrap();
    assert_eq!(cmp.skipped, vec![Metric::Lpips]);
    let s = cmp.summaries();
    let changes = cmp.relative_changes();
    for (m, c) in &changes {
        let (v0, v1) = (s[0].get(*m).unwrap(), s[1].get(*m).unwrap());
        let expected = (v1 - v0) / v0.abs() * 100.0;
        assert!((c[0].unwrap() - expected).abs() < 1e-9);
    }
    // less noise: higher PSNR and SSIM
    assert!(
        changes.iter().all(|(_, c)| c[0].unwrap() > 0.0),
        "{changes:?}"
    );
    let md = cmp.table(TableFormat::Markdown).unwrap();
    assert!(
        md.contains("| psnr_y ↑ |") && md.contains("better vs base (%)"),
        "{md}"
    );
    assert!(md.contains("not computed: lpips"), "{md}");
    let csv = cmp.table(TableFormat::Csv).unwrap();
    assert!(!csv.contains("not computed") && csv.starts_with("metric,higher_is_better,base"));

    let out = tmp.path().join("report");
    let files = cmp.write(&out).unwrap();
    assert_eq!(files.len(), 4);
    let png = image::open(out.join("comparison.png")).unwrap();
    assert!(png.width() >= 560 && png.height() == 540);
}

#[test]
fn eval_report_lists_skipped_metrics_in_terminal_and_markdown() {
    let tmp = tempfile::tempdir().unwrap();
    // NIQE needs at least 96×96 after the border crop
    write_set(&tmp.path().join("gt"), 1, 200, 104, 0.0);
    write_set(&tmp.path().join("sr"), 1, 200, 104, 0.1);
    let report = evaluate_run(
        &tmp.path().join("sr"),
        Some(&tmp.path().join("gt")),
        4,
        &PAPER_METRICS,
    )
    .unwrap();
    assert_eq!(
        report.skipped,
        vec![Metric::Lpips, Metric::Maniqa, Metric::Musiq]
    );
    assert_eq!(
        report.evaluation.metrics,
        vec![Metric::PsnrY, Metric::SsimY, Metric::Niqe]
    );
    let text = report.table(TableFormat::Terminal);
    // grouped by reason: LPIPS needs its weight files, MANIQA and MUSIQ pyiqa's checkpoints
    assert!(text.contains("note: not computed: lpips ("), "{text}");
    assert!(text.contains("; maniqa, musiq ("), "{text}");
    assert!(text.contains("pretrained network weights") && text.contains("--lpips-weights"));
    assert!(
        text.contains("--musiq-weights FILE --maniqa-weights FILE"),
        "{text}"
    );
    let files = report.write(&tmp.path().join("out"), "eval").unwrap();
    assert!(files.iter().all(|p| p.exists()));
}

#[test]
fn bad_paths_sizes_and_arguments_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let gt = tmp.path().join("gt");
    write_set(&gt, 1, 32, 32, 0.0);
    let missing = tmp.path().join("does-not-exist");
    let e = evaluate_run(&missing, Some(&gt), 0, &[Metric::PsnrY]).unwrap_err();
    assert!(matches!(e, EvalError::Metric(MetricError::ReadDir { .. })));
    assert!(e.to_string().contains("does-not-exist"), "{e}");

    let small = tmp.path().join("small");
    write_set(&small, 1, 32, 24, 0.0);
    let e = evaluate_run(&small, Some(&gt), 0, &[Metric::PsnrY]).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("0000.png") && msg.contains("32") && msg.contains("24"),
        "{msg}"
    );

    let e = evaluate_run(&gt, Some(&gt), 0, &[Metric::Lpips, Metric::Musiq]).unwrap_err();
    assert!(
        e.to_string().contains("none of the requested metrics"),
        "{e}"
    );

    let one = [RunSpec::new("a", &gt)];
    assert!(compare_runs(&one, None, 0, &[Metric::Niqe]).is_err());
    let twice = [RunSpec::new("a", &gt), RunSpec::new("a", &gt)];
    let e = compare_runs(&twice, None, 0, &[Metric::Niqe]).unwrap_err();
    assert!(e.to_string().contains("used twice"));
    assert!(RunSpec::parse("=x").is_err());
    assert_eq!(RunSpec::parse("runs/framer").unwrap().name, "framer");
}

#[test]
fn relative_change_follows_the_table_convention() {
    assert_eq!(relative_change(20.0, 22.0), Some(10.0));
    assert_eq!(relative_change(-2.0, -1.0), Some(50.0));
    assert_eq!(relative_change(0.0, 1.0), None);
    assert_eq!(relative_change(f64::INFINITY, 1.0), None);
}
