use super::*;

fn rec(step: u64, loss: f64) -> StepRecord {
    StepRecord {
        step,
        loss,
        base_loss: loss * 0.9,
        framer_loss: step.is_multiple_of(2).then_some(1.0),
        lambda: 0.1,
        lr: 1e-4,
        grad_norm: 0.5,
        avg_weight_low: None,
        avg_weight_high: Some(0.25),
        skipped: step == 3,
        seconds: 0.01,
        layer_weights: None,
    }
}

/// The per-layer FAW/FAM arrays of the JSONL log are what `framer analyze` reads for Fig. 9.
#[test]
fn layer_weights_round_trip_and_feed_the_fig9_reader() {
    let dir = std::env::temp_dir().join(format!("framer-weights-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let weights = |step: u64| LayerWeights {
        faw_low: vec![0.5, 0.25 + step as f32],
        faw_high: vec![0.75, 1.0],
        fam_low: vec![0.1, 0.2],
        fam_high: vec![0.3, 0.4],
    };
    let records: Vec<StepRecord> = (0..3)
        .map(|s| StepRecord {
            layer_weights: Some(weights(s)),
            ..rec(s, 1.0)
        })
        .collect();
    let mut log = MetricsLog::open(&dir, LogFormat::Jsonl, 0).unwrap();
    for r in &records {
        log.append(r).unwrap();
    }
    log.flush().unwrap();
    drop(log);
    let path = dir.join(MetricsLog::file_name(LogFormat::Jsonl));
    assert_eq!(read(&path, LogFormat::Jsonl).unwrap(), records);
    let fig9 = framer_eval::analyze::read_training_weights(&path).unwrap();
    assert_eq!(fig9.layers, 2);
    assert_eq!(fig9.records.len(), 3);
    fs::remove_dir_all(&dir).unwrap();
}

/// A resumed log keeps its earlier lines as written (a value that would print differently
/// after a round trip stays as it was), drops the later ones and a line cut short by a kill,
/// and replaces the file by a rename, never in place.
#[test]
fn resume_keeps_earlier_lines_byte_for_byte_and_drops_a_torn_line() {
    let dir = std::env::temp_dir().join(format!("framer-metrics-keep-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("metrics.jsonl");
    let line = |step: u64| {
        format!(
            "{{\"step\":{step},\"loss\":0.10000000000000000555,\"base_loss\":1e-1,\
             \"framer_loss\":null,\"lambda\":0.0,\"lr\":1E-4,\"grad_norm\":0.5,\
             \"avg_weight_low\":null,\"avg_weight_high\":null,\"skipped\":false,\
             \"seconds\":0.0100}}\n"
        )
    };
    let mut text: String = (0..6).map(line).collect();
    text.push_str("{\"step\":6,\"loss\":0.1,\"ba"); // torn by a kill
    fs::write(&path, &text).unwrap();
    let ino = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(p).unwrap().ino()
    };
    let before = ino(&path);
    // the torn line alone is left out when reading
    assert_eq!(read(&path, LogFormat::Jsonl).unwrap().len(), 6);
    let mut log = MetricsLog::open(&dir, LogFormat::Jsonl, 4).unwrap();
    let kept: String = (0..4).map(line).collect();
    assert_eq!(fs::read_to_string(&path).unwrap(), kept);
    assert_ne!(
        ino(&path),
        before,
        "rewritten through a new file and a rename"
    );
    log.append(&rec(4, 0.5)).unwrap();
    drop(log);
    let after = fs::read_to_string(&path).unwrap();
    assert!(after.starts_with(&kept), "{after}");
    assert_eq!(after.lines().count(), 5);
    // nothing to drop: the file is appended to as it is
    let before = ino(&path);
    drop(MetricsLog::open(&dir, LogFormat::Jsonl, 5).unwrap());
    assert_eq!(ino(&path), before);
    assert_eq!(fs::read_to_string(&path).unwrap(), after);
    // a damaged line that is not the last is an error naming it
    fs::write(&path, format!("{}garbage\n{}", line(0), line(1))).unwrap();
    let e = MetricsLog::open(&dir, LogFormat::Jsonl, 1).unwrap_err();
    assert!(
        e.to_string()
            .contains("metrics.jsonl:2: not a metrics record"),
        "{e}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// A step rejected by the NaN/Inf guard is logged with `null` values and `skipped`, read back
/// with NaN, and left out of the plot.
#[test]
fn skipped_steps_are_logged_with_null_values_and_read_back() {
    let dir = std::env::temp_dir().join(format!("framer-metrics-nan-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    for format in [LogFormat::Jsonl, LogFormat::Csv] {
        let mut log = MetricsLog::open(&dir, format, 0).unwrap();
        let bad = StepRecord {
            loss: f64::NAN,
            grad_norm: f64::INFINITY,
            framer_loss: Some(f64::NAN),
            skipped: true,
            layer_weights: Some(LayerWeights {
                faw_low: vec![f32::NAN],
                faw_high: vec![1.0],
                fam_low: vec![1.0],
                fam_high: vec![1.0],
            }),
            ..rec(1, 1.0)
        };
        let good = |step| StepRecord {
            layer_weights: Some(LayerWeights {
                faw_low: vec![0.5],
                faw_high: vec![1.0],
                fam_low: vec![1.0],
                fam_high: vec![1.0],
            }),
            ..rec(step, 1.0)
        };
        for r in [good(0), bad, good(2)] {
            log.append(&r).unwrap();
        }
        drop(log);
        let path = dir.join(MetricsLog::file_name(format));
        let text = fs::read_to_string(&path).unwrap();
        if format == LogFormat::Jsonl {
            let line = text.lines().nth(1).unwrap();
            assert!(
                line.contains("\"loss\":null") && line.contains("\"skipped\":true"),
                "{line}"
            );
            assert!(
                !line.contains("faw_low"),
                "non-finite layer weights are left out"
            );
            // the Fig. 9 reader takes the log too
            framer_eval::analyze::read_training_weights(&path).unwrap();
        }
        let back = read(&path, format).unwrap();
        assert_eq!(back.len(), 3);
        assert!(back[1].skipped && back[1].loss.is_nan() && !back[1].grad_norm.is_finite());
        plot_losses(&back, &dir.join("loss.png"), 100, 50).unwrap();
        // and a resume reads it
        drop(MetricsLog::open(&dir, format, 3).unwrap());
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn logs_round_trip_and_resume_truncates() {
    let dir = std::env::temp_dir().join(format!("framer-metrics-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    for format in [LogFormat::Jsonl, LogFormat::Csv] {
        let mut log = MetricsLog::open(&dir, format, 0).unwrap();
        let records: Vec<_> = (0..6).map(|s| rec(s, 1.0 / (s + 1) as f64)).collect();
        for r in &records {
            log.append(r).unwrap();
        }
        log.flush().unwrap();
        drop(log);
        assert_eq!(
            read(&dir.join(MetricsLog::file_name(format)), format).unwrap(),
            records
        );
        // resuming at step 4 keeps steps 0..4
        drop(MetricsLog::open(&dir, format, 4).unwrap());
        assert_eq!(
            read(&dir.join(MetricsLog::file_name(format)), format).unwrap(),
            records[..4]
        );
    }
    let png = dir.join("loss.png");
    plot_losses(
        &(0..50)
            .map(|s| rec(s, 1.0 / (s + 1) as f64))
            .collect::<Vec<_>>(),
        &png,
        200,
        100,
    )
    .unwrap();
    let img = image::open(&png).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (200, 100));
    let coloured = |c: [u8; 3]| img.pixels().filter(|p| p.0 == c).count();
    assert!(
        coloured(PLOT_COLOURS[0]) > 50,
        "the total-loss curve is drawn"
    );
    assert!(coloured(PLOT_COLOURS[2]) > 10, "the FRAMER curve is drawn");
    fs::remove_dir_all(&dir).unwrap();
}

/// The log's per-layer arrays are the batch means of the loss's diagnostics, and the Fig. 9
/// reader parses the JSONL line they make.
#[test]
fn layer_weights_are_batch_means_of_the_diagnostics() {
    let diag = framer::FramerDiagnostics {
        loss: 1.0,
        avg_weight_low: 0.0,
        avg_weight_high: 0.0,
        layers: (0..3)
            .map(|i| framer::LayerDiagnostics {
                loss: 0.0,
                intra: vec![0.0; 2],
                inter: vec![0.0; 2],
                fam_low: vec![0.1 * i as f32, 0.3],
                fam_high: vec![1.0, 1.0],
                faw_low: vec![0.5, 0.5],
                faw_high: vec![0.25, 0.75],
            })
            .collect(),
    };
    let weights = LayerWeights::from_diagnostics(&diag);
    assert_eq!(weights.faw_high, vec![0.5; 3]);
    assert!((weights.fam_low[2] - 0.25).abs() < 1e-7);
    let record = StepRecord {
        layer_weights: Some(weights),
        ..rec(42, 1.0)
    };
    let text = serde_json::to_string(&record).unwrap();
    assert!(text.contains("\"faw_low\":[0.5,0.5,0.5],"), "{text}");
    let w = framer_eval::analyze::parse_training_weights(&text, Path::new("x")).unwrap();
    assert_eq!(w.records[0].step, 42);
    assert_eq!(w.layers, 3);
}
