//! Registry, folder evaluation and table formatting.

use std::path::{Path, PathBuf};

use framer_metrics::{
    Availability, Metric, MetricError, MetricImage, MetricKind, RunSummary, TableFormat,
    comparison_table, evaluate_folders,
};

/// A fresh, empty directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("framer-metrics-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
        .save(path)
        .unwrap();
}

#[test]
fn registry_names_directions_and_availability() {
    for m in Metric::ALL {
        assert_eq!(m.name().parse::<Metric>().unwrap(), m);
        assert_eq!(m.to_string(), m.name());
    }
    assert_eq!("PSNR-Y".parse::<Metric>().unwrap(), Metric::PsnrY);
    assert!(Metric::Psnr.higher_is_better() && Metric::SsimY.higher_is_better());
    assert!(!Metric::Niqe.higher_is_better() && !Metric::Lpips.higher_is_better());
    assert!(Metric::Musiq.higher_is_better() && Metric::Maniqa.higher_is_better());
    assert_eq!(Metric::Niqe.kind(), MetricKind::NoReference);
    assert_eq!(Metric::PsnrY.kind(), MetricKind::FullReference);
    assert!(Metric::AVAILABLE.iter().all(|m| m.is_available()));
    for m in [Metric::Lpips, Metric::Musiq, Metric::Maniqa] {
        let Availability::Unavailable(reason) = m.availability() else {
            panic!("{m} should be unavailable")
        };
        assert!(reason.contains("weights"), "{reason}");
        // each says how to supply the weights
        let how = match m {
            Metric::Lpips => "--lpips-weights",
            Metric::Musiq => "--musiq-weights",
            _ => "--maniqa-weights",
        };
        assert!(reason.contains(how), "{reason}");
        let err = m.ensure_available().unwrap_err().to_string();
        assert!(err.contains(m.name()), "{err}");
    }
    let err = "fid".parse::<Metric>().unwrap_err().to_string();
    assert!(err.contains("\"fid\"") && err.contains("psnr_y"), "{err}");
    assert_eq!(
        Metric::parse_list(" psnr_y, ssim_y ,niqe").unwrap(),
        [Metric::PsnrY, Metric::SsimY, Metric::Niqe]
    );
    assert!(matches!(
        Metric::parse_list(" , "),
        Err(MetricError::NoMetrics)
    ));
}

#[test]
fn compute_dispatches_and_requires_a_reference_for_full_reference_metrics() {
    let a = MetricImage::from_hwc(16, 16, vec![0.5; 768]).unwrap();
    let b = MetricImage::from_hwc(16, 16, vec![0.6; 768]).unwrap();
    assert!((Metric::Psnr.compute(&b, Some(&a), 0).unwrap() - 20.0).abs() < 1e-5);
    assert!(matches!(
        Metric::SsimY.compute(&b, None, 0),
        Err(MetricError::NeedsReference { name: "ssim_y" })
    ));
    assert!(matches!(
        Metric::Lpips.compute(&b, Some(&a), 0),
        Err(MetricError::Unavailable { name: "lpips", .. })
    ));
}

#[test]
fn load_reads_8_bit_values_exactly_and_names_the_path_on_error() {
    let dir = temp_dir("load");
    let path = dir.join("px.png");
    write_png(
        &path,
        2,
        1,
        |x, _| if x == 0 { [0, 128, 255] } else { [1, 2, 3] },
    );
    let img = MetricImage::load(&path).unwrap();
    assert_eq!(img.pixel(0, 0), [0.0, 128.0 / 255.0, 1.0]);
    assert_eq!(img.pixel(1, 0), [1.0 / 255.0, 2.0 / 255.0, 3.0 / 255.0]);
    let missing = dir.join("nope.png");
    let err = MetricImage::load(&missing).unwrap_err();
    assert!(matches!(err, framer_data::DataError::Io { .. }));
    assert!(err.to_string().contains("nope.png"), "{err}");
    let garbage = dir.join("bad.png");
    std::fs::write(&garbage, b"not a png").unwrap();
    assert!(
        MetricImage::load(&garbage)
            .unwrap_err()
            .to_string()
            .contains("bad.png")
    );
}

fn gradient(x: u32, y: u32) -> [u8; 3] {
    [
        (x * 5 % 256) as u8,
        (y * 7 % 256) as u8,
        ((x + y) * 3 % 256) as u8,
    ]
}

#[test]
fn evaluate_folders_pairs_by_stem_and_averages() {
    let root = temp_dir("pairs");
    let (sr, gt) = (root.join("sr"), root.join("gt"));
    std::fs::create_dir_all(&sr).unwrap();
    std::fs::create_dir_all(&gt).unwrap();
    // b: identical (inf PSNR); a: every channel +10 → PSNR = 20 log10(255 / 10).
    write_png(&gt.join("a.png"), 24, 20, gradient);
    // (All gradient values are ≤ 133 on 24×20, so +10 never clips.)
    write_png(&sr.join("a.png"), 24, 20, |x, y| {
        gradient(x, y).map(|v| v + 10)
    });
    write_png(&gt.join("b.png"), 24, 20, |x, y| gradient(y, x));
    write_png(&sr.join("b.bmp"), 24, 20, |x, y| gradient(y, x));
    std::fs::write(sr.join("notes.txt"), "ignored").unwrap();
    let eval = evaluate_folders(&sr, Some(&gt), 0, &[Metric::Psnr, Metric::SsimY]).unwrap();
    assert_eq!(eval.images.len(), 2);
    assert_eq!(eval.images[0].stem, "a");
    assert_eq!(
        eval.images[1].gt_path.as_deref(),
        Some(gt.join("b.png").as_path())
    );
    let a_psnr = eval.images[0].values[0];
    assert!(
        (a_psnr - 20.0 * (255.0_f64 / 10.0).log10()).abs() < 1e-4,
        "{a_psnr}"
    );
    assert_eq!(eval.images[1].values[0], f64::INFINITY);
    assert_eq!(eval.mean(Metric::Psnr), Some(f64::INFINITY));
    assert!((eval.images[1].values[1] - 1.0).abs() < 1e-12);
    let m = eval.means();
    assert!((m[1] - (eval.images[0].values[1] + 1.0) / 2.0).abs() < 1e-12);
    assert_eq!(eval.mean(Metric::Niqe), None);

    // Per-run table in all formats.
    let csv = eval.table(TableFormat::Csv);
    assert_eq!(csv.lines().next().unwrap(), "image,psnr,ssim_y");
    assert!(csv.lines().nth(2).unwrap().starts_with("b,inf,1"), "{csv}");
    assert!(
        csv.lines().nth(3).unwrap().starts_with("mean,inf,"),
        "{csv}"
    );
    let md = eval.table(TableFormat::Markdown);
    assert!(
        md.starts_with("| image | psnr ↑ | ssim_y ↑ |\n|---|---:|---:|\n"),
        "{md}"
    );
    let term = eval.table(TableFormat::Terminal);
    let lines: Vec<&str> = term.lines().collect();
    assert_eq!(lines.len(), 2 + 3);
    assert!(lines[1].chars().all(|c| c == '-'));
    // Right-aligned numbers: every data row has the same width as the header.
    let width = lines[0].chars().count();
    assert!(
        lines[2..].iter().all(|l| l.chars().count() == width),
        "{term}"
    );

    // No-reference only, without a ground-truth folder.
    assert!(matches!(
        evaluate_folders(&sr, None, 0, &[Metric::Psnr]),
        Err(MetricError::NeedsReference { name: "psnr" })
    ));
}

#[test]
fn evaluate_folders_reports_missing_partners_duplicates_and_size_mismatch() {
    let root = temp_dir("errors");
    let (sr, gt) = (root.join("sr"), root.join("gt"));
    std::fs::create_dir_all(&sr).unwrap();
    std::fs::create_dir_all(&gt).unwrap();
    write_png(&gt.join("a.png"), 16, 16, gradient);
    write_png(&sr.join("a.png"), 16, 16, gradient);
    write_png(&sr.join("extra.png"), 16, 16, gradient);
    match evaluate_folders(&sr, Some(&gt), 0, &[Metric::Psnr]) {
        Err(e @ MetricError::MissingPartner { count: 1, .. }) => {
            let s = e.to_string();
            assert!(s.contains("extra") && s.contains("gt"), "{s}");
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(sr.join("extra.png")).unwrap();
    write_png(&gt.join("lonely.png"), 16, 16, gradient);
    assert!(matches!(
        evaluate_folders(&sr, Some(&gt), 0, &[Metric::Psnr]),
        Err(MetricError::MissingPartner { count: 1, .. })
    ));
    std::fs::remove_file(gt.join("lonely.png")).unwrap();
    write_png(&sr.join("a.bmp"), 16, 16, gradient);
    assert!(matches!(
        evaluate_folders(&sr, Some(&gt), 0, &[Metric::Psnr]),
        Err(MetricError::DuplicateStem { .. })
    ));
    std::fs::remove_file(sr.join("a.bmp")).unwrap();
    write_png(&sr.join("a.png"), 16, 17, gradient);
    match evaluate_folders(&sr, Some(&gt), 0, &[Metric::Psnr]) {
        Err(e @ MetricError::PairSizeMismatch { .. }) => {
            let s = e.to_string();
            assert!(
                s.contains("16x17") && s.contains("16x16") && s.contains("a.png"),
                "{s}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        evaluate_folders(&sr, Some(&gt), 0, &[]),
        Err(MetricError::NoMetrics)
    ));
    assert!(matches!(
        evaluate_folders(&sr, Some(&gt), 0, &[Metric::Musiq]),
        Err(MetricError::Unavailable { name: "musiq", .. })
    ));
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(matches!(
        evaluate_folders(&empty, Some(&gt), 0, &[Metric::Psnr]),
        Err(MetricError::EmptyFolder { .. })
    ));
    let err = evaluate_folders(&root.join("missing"), Some(&gt), 0, &[Metric::Psnr]).unwrap_err();
    assert!(
        matches!(err, MetricError::ReadDir { .. }) && err.to_string().contains("missing"),
        "{err}"
    );
}

#[test]
fn comparison_table_shows_relative_change_per_metric() {
    let base = RunSummary {
        name: "baseline".into(),
        images: 10,
        values: vec![(Metric::PsnrY, 25.0), (Metric::Niqe, 6.0)],
    };
    let framer = RunSummary {
        name: "+FRAMER".into(),
        images: 10,
        values: vec![(Metric::PsnrY, 25.5), (Metric::Niqe, 5.4)],
    };
    let partial = RunSummary {
        name: "psnr only".into(),
        images: 3,
        values: vec![(Metric::PsnrY, 24.0)],
    };
    let md = comparison_table(
        &[base.clone(), framer.clone(), partial],
        TableFormat::Markdown,
    )
    .unwrap();
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(
        lines[0],
        "| metric | baseline | +FRAMER | +FRAMER vs baseline (%) | psnr only | psnr only vs baseline (%) |"
    );
    assert_eq!(
        lines[2],
        "| psnr_y ↑ | 25.0000 | 25.5000 | +2.00% | 24.0000 | -4.00% |"
    );
    assert_eq!(lines[3], "| niqe ↓ | 6.0000 | 5.4000 | -10.00% | - | - |");
    assert_eq!(lines[4], "| images | 10 | 10 |  | 3 |  |");

    let csv = comparison_table(&[base.clone(), framer.clone()], TableFormat::Csv).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "metric,higher_is_better,baseline,+FRAMER,+FRAMER vs baseline (%)"
    );
    assert_eq!(rows[1], "psnr_y,true,25,25.5,2.000000");
    assert_eq!(rows[2], "niqe,false,6,5.4,-10.000000");
    assert_eq!(rows[3], "images,,10,10,");

    let term = comparison_table(&[base, framer], TableFormat::Terminal).unwrap();
    assert!(
        term.lines().nth(2).unwrap().starts_with("psnr_y ↑"),
        "{term}"
    );
    assert!(
        term.contains("+2.00%") && term.contains("-10.00%"),
        "{term}"
    );

    let zero = RunSummary {
        name: "z".into(),
        images: 1,
        values: vec![(Metric::Psnr, 0.0)],
    };
    let one = RunSummary {
        name: "o".into(),
        images: 1,
        values: vec![(Metric::Psnr, 1.0)],
    };
    assert!(
        comparison_table(&[zero, one], TableFormat::Markdown)
            .unwrap()
            .contains("n/a")
    );
    assert!(matches!(
        comparison_table(&[], TableFormat::Csv),
        Err(MetricError::NoRuns)
    ));
}

#[test]
fn load_converts_gray_and_16_bit_files() {
    let dir = temp_dir("formats");
    let gray = dir.join("gray.png");
    image::GrayImage::from_raw(2, 1, vec![51, 204])
        .unwrap()
        .save(&gray)
        .unwrap();
    let img = MetricImage::load(&gray).unwrap();
    assert_eq!(img.pixel(0, 0), [0.2; 3]);
    assert_eq!(img.pixel(1, 0), [0.8; 3]);
    let deep = dir.join("deep.png");
    image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(1, 1, vec![0u16, 32768, 65535])
        .unwrap()
        .save(&deep)
        .unwrap();
    let img = MetricImage::load(&deep).unwrap();
    let p = img.pixel(0, 0);
    assert_eq!(p[0], 0.0);
    assert!((p[1] - 32768.0 / 65535.0).abs() < 1e-6, "{p:?}");
    assert_eq!(p[2], 1.0);
}

#[test]
fn crop_removes_the_border_on_every_edge() {
    // 5×4 image whose pixel (x, y) holds (x, y, x + 10 y)
    let data: Vec<f32> = (0..4)
        .flat_map(|y| (0..5).flat_map(move |x| [x as f32, y as f32, (x + 10 * y) as f32]))
        .collect();
    let img = MetricImage::from_hwc(5, 4, data).unwrap();
    assert_eq!(img.crop_border(0).unwrap(), img);
    let c = img.crop_border(1).unwrap();
    assert_eq!((c.width(), c.height()), (3, 2));
    for y in 0..2 {
        for x in 0..3 {
            let (sx, sy) = (x + 1, y + 1);
            assert_eq!(c.pixel(x, y), [sx as f32, sy as f32, (sx + 10 * sy) as f32]);
        }
    }
    // 2·2 ≥ 4 rows: nothing would be left
    let e = img.crop_border(2).unwrap_err();
    assert!(e.to_string().contains("5x4"), "{e}");
}
