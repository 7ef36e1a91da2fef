use super::*;
use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use framer::BandMaskKind;
use rustfft::{FftPlanner, num_complex::Complex};

type B = Flex;

fn tensor(data: Vec<f32>, shape: [usize; 4]) -> Tensor<B, 4> {
    Tensor::from_data(TensorData::new(data, shape), &Default::default())
}

fn pseudo(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104729) % 1000) as f32 / 1000.0 - 0.5) * 2.0)
        .collect()
}

/// |FFT2| of one `h×w` plane with rustfft, in f64.
fn fft_mag(plane: &[f32], h: usize, w: usize) -> Vec<f64> {
    let mut planner = FftPlanner::<f64>::new();
    let (fw, fh) = (planner.plan_fft_forward(w), planner.plan_fft_forward(h));
    let mut data: Vec<Complex<f64>> =
        plane.iter().map(|&v| Complex::new(v as f64, 0.0)).collect();
    for row in data.chunks_mut(w) {
        fw.process(row);
    }
    for x in 0..w {
        let mut col: Vec<Complex<f64>> = (0..h).map(|y| data[y * w + x]).collect();
        fh.process(&mut col);
        for y in 0..h {
            data[y * w + x] = col[y];
        }
    }
    data.iter().map(|c| c.norm()).collect()
}

/// The oracle: rustfft magnitudes, then energies and cosines written out from their
/// definitions. `low_mask(sample, magnitudes of the final layer)` gives the `C·H·W` mask.
fn oracle(
    layers: &[&Vec<f32>],
    [b, c, h, w]: [usize; 4],
    low_mask: &dyn Fn(&[Vec<f64>]) -> Vec<f64>,
) -> Vec<Vec<[f64; 4]>> {
    let hw = h * w;
    let mags: Vec<Vec<Vec<f64>>> = layers
        .iter()
        .map(|x| {
            (0..b * c)
                .map(|p| fft_mag(&x[p * hw..(p + 1) * hw], h, w))
                .collect()
        })
        .collect();
    let last = layers.len() - 1;
    (0..layers.len())
        .map(|li| {
            (0..b)
                .map(|s| {
                    let low = low_mask(&mags[last][s * c..(s + 1) * c]);
                    let high: Vec<f64> = low.iter().map(|m| 1.0 - m).collect();
                    let mut out = [0.0; 4];
                    for (k, mask) in [low, high].iter().enumerate() {
                        let (mut energy, mut dot, mut n1, mut n2) = (0.0, 0.0, 0.0, 0.0);
                        for ch in 0..c {
                            let m = &mask[ch * hw..(ch + 1) * hw];
                            let (a, t) = (&mags[li][s * c + ch], &mags[last][s * c + ch]);
                            let count: f64 = m.iter().sum();
                            let e: f64 = a.iter().zip(m).map(|(x, k)| x * k).sum();
                            energy += e / (count + ENERGY_EPS) / c as f64;
                            for ((x, y), k) in a.iter().zip(t).zip(m) {
                                dot += x * k * y * k;
                                n1 += (x * k).powi(2);
                                n2 += (y * k).powi(2);
                            }
                        }
                        out[k] = energy;
                        out[2 + k] = dot / (n1.sqrt().max(NORM_EPS) * n2.sqrt().max(NORM_EPS));
                    }
                    out
                })
                .collect()
        })
        .collect()
}

fn check_against_oracle(config: SpectralConfig, low_mask: &dyn Fn(&[Vec<f64>]) -> Vec<f64>) {
    let shape = [2, 2, 6, 10];
    let n = shape.iter().product();
    let teacher = pseudo(n, 1);
    let students = [pseudo(n, 2), pseudo(n, 3)];
    let got = layer_band_statistics(
        tensor(teacher.clone(), shape),
        &students
            .iter()
            .map(|s| tensor(s.clone(), shape))
            .collect::<Vec<_>>(),
        &config,
    )
    .unwrap();
    let want = oracle(&[&students[0], &students[1], &teacher], shape, low_mask);
    for (li, layer) in want.iter().enumerate() {
        for (s, w) in layer.iter().enumerate() {
            let g = got[li][s];
            let have = [g.energy_low, g.energy_high, g.cosine_low, g.cosine_high];
            for q in 0..4 {
                // f32 DFT on the device against f64 rustfft
                let tol = 1e-4 * w[q].abs().max(1.0);
                assert!(
                    (have[q] - w[q]).abs() < tol,
                    "layer {li} sample {s} q{q}: {} vs {}",
                    have[q],
                    w[q]
                );
            }
        }
    }
    // the final layer's cosine with itself is 1
    assert!((got[2][0].cosine_low - 1.0).abs() < 1e-6);
    assert!((got[2][1].cosine_high - 1.0).abs() < 1e-6);
}

#[test]
fn energies_and_cosines_match_a_rustfft_oracle_with_the_radial_mask() {
    let (c, h, w, radius) = (2, 6, 10, 0.4);
    let freq = |k: usize, n: usize| k.min(n - k) as f64 / n as f64;
    let plane: Vec<f64> = (0..h * w)
        .map(|i| {
            let r = (freq(i / w, h).powi(2) + freq(i % w, w).powi(2)).sqrt() / 0.5f64.sqrt();
            if r <= radius { 1.0 } else { 0.0 }
        })
        .collect();
    let mask = move |_: &[Vec<f64>]| plane.repeat(c);
    let config = SpectralConfig {
        mask: BandMaskKind::Radial { radius },
        log_magnitude: false,
    };
    check_against_oracle(config, &mask);
}

#[test]
fn energies_and_cosines_match_a_rustfft_oracle_with_the_quantile_mask() {
    // torch.quantile with linear interpolation over the sample's C·H·W teacher magnitudes;
    // low = |X| < q
    let cutoff = 0.2;
    let mask = move |teacher: &[Vec<f64>]| {
        let all: Vec<f64> = teacher.iter().flatten().copied().collect();
        let mut sorted = all.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = cutoff * (sorted.len() - 1) as f64;
        let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
        let q = sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64);
        all.iter().map(|&m| if m < q { 1.0 } else { 0.0 }).collect()
    };
    let config = SpectralConfig {
        mask: BandMaskKind::Quantile { cutoff },
        log_magnitude: false,
    };
    check_against_oracle(config, &mask);
}

#[test]
fn hand_computed_energies_for_a_constant_and_an_impulse() {
    // a constant 2×2 plane of value a: |X| = 4a at DC and 0 elsewhere. Radial mask with a
    // small radius keeps only DC: E_low = 4a / 1, E_high = 0 / 3.
    // an impulse at (0, 0) of height a: |X| = a everywhere: E_low = a, E_high = a.
    let config = SpectralConfig {
        mask: BandMaskKind::Radial { radius: 0.1 },
        log_magnitude: false,
    };
    let teacher = tensor(vec![0.5; 4], [1, 1, 2, 2]);
    let impulse = tensor(vec![3.0, 0.0, 0.0, 0.0], [1, 1, 2, 2]);
    let got = layer_band_statistics(teacher, &[impulse], &config).unwrap();
    let (student, fin) = (got[0][0], got[1][0]);
    assert!(
        (fin.energy_low - 2.0).abs() < 1e-6 && fin.energy_high.abs() < 1e-5,
        "{fin:?}"
    );
    assert!(
        (student.energy_low - 3.0).abs() < 1e-5 && (student.energy_high - 3.0).abs() < 1e-5
    );
    // LF: both are a positive multiple of the DC indicator → cosine 1 (the HF cosine is
    // undefined here: the teacher's high band is zero)
    assert!((student.cosine_low - 1.0).abs() < 1e-6);
    // |DFT(2x)| = 2|DFT(x)|: twice the teacher has twice its energies and cosines 1
    let x = tensor(pseudo(2 * 8 * 6, 9), [1, 2, 8, 6]);
    let got = layer_band_statistics(
        x.clone(),
        &[x.clone().mul_scalar(2.0)],
        &SpectralConfig::default(),
    )
    .unwrap();
    let (student, fin) = (got[0][0], got[1][0]);
    assert!((student.energy_low - 2.0 * fin.energy_low).abs() < 1e-5 * fin.energy_low.max(1.0));
    assert!(
        (student.energy_high - 2.0 * fin.energy_high).abs() < 1e-5 * fin.energy_high.max(1.0)
    );
    assert!(
        (student.cosine_low - 1.0).abs() < 1e-5 && (student.cosine_high - 1.0).abs() < 1e-5
    );
    // log(1 + |X|): impulse 3 → log 4 everywhere
    let config = SpectralConfig {
        log_magnitude: true,
        ..config
    };
    let got = layer_band_statistics(
        tensor(vec![0.5; 4], [1, 1, 2, 2]),
        &[tensor(vec![3.0, 0.0, 0.0, 0.0], [1, 1, 2, 2])],
        &config,
    )
    .unwrap();
    assert!((got[0][0].energy_high - 4f64.ln()).abs() < 1e-5);
}

#[test]
fn analyzer_averages_over_calls_and_rejects_bad_shapes() {
    let mut a = SpectralAnalyzer::new(SpectralConfig::default());
    let x = |seed| tensor(pseudo(48, seed), [1, 3, 4, 4]);
    a.add(0, 1.0, x(1), &[x(2)]).unwrap();
    a.add(0, 1.0, x(3), &[x(4)]).unwrap();
    let s1 = layer_band_statistics(x(1), &[x(2)], &SpectralConfig::default()).unwrap();
    let s2 = layer_band_statistics(x(3), &[x(4)], &SpectralConfig::default()).unwrap();
    let e = a.clone().add(1, 0.5, x(1), &[x(2), x(3)]).unwrap_err();
    assert!(e.to_string().contains("2 student layers"), "{e}");
    let bad = tensor(pseudo(27, 1), [1, 3, 3, 3]);
    let e = a.add(1, 0.5, x(1), &[bad]).unwrap_err();
    assert!(
        e.to_string().contains("[1, 3, 3, 3]") && e.to_string().contains("[1, 3, 4, 4]"),
        "{e}"
    );
    let out = a.finish().unwrap();
    assert_eq!(out.steps.len(), 1);
    assert_eq!(out.steps[0].samples, 2);
    let mean = (s1[0][0].energy_high + s2[0][0].energy_high) / 2.0;
    assert!((out.steps[0].layers[0].energy_high - mean).abs() < 1e-9);
    assert!(
        SpectralAnalyzer::new(SpectralConfig::default())
            .finish()
            .is_err()
    );
}

#[test]
fn analysis_writes_a_csv_and_plots() {
    let mut a = SpectralAnalyzer::new(SpectralConfig::default());
    let x = |seed| tensor(pseudo(2 * 3 * 8 * 8, seed), [2, 3, 8, 8]);
    for step in 0..3 {
        a.add(
            step,
            1.0 - step as f64 / 3.0,
            x(10 + step),
            &[x(20 + step), x(30 + step), x(40 + step)],
        )
        .unwrap();
    }
    let out = a.finish().unwrap();
    let csv = out.to_csv();
    assert_eq!(csv.lines().count(), 1 + 3 * 4);
    assert!(csv.lines().nth(4).unwrap().starts_with("0,1,2,3,final,"));
    let tmp = tempfile::tempdir().unwrap();
    let files = out.write(tmp.path()).unwrap();
    assert_eq!(files.len(), 9);
    assert!(files.iter().all(|p| p.exists()));
}

#[test]
fn runs_compare_on_the_step_means() {
    let x = |seed| tensor(pseudo(48, seed), [1, 3, 4, 4]);
    let run = |seeds: [usize; 4]| {
        let mut a = SpectralAnalyzer::new(SpectralConfig::default());
        a.add(0, 1.0, x(seeds[0]), &[x(seeds[1])]).unwrap();
        a.add(1, 0.5, x(seeds[2]), &[x(seeds[3])]).unwrap();
        a.finish().unwrap()
    };
    let (a, b) = (run([1, 2, 3, 4]), run([5, 6, 7, 8]));
    let m = a.mean_over_steps();
    let want = (a.steps[0].layers[0].cosine_high + a.steps[1].layers[0].cosine_high) / 2.0;
    assert!((m[0].cosine_high - want).abs() < 1e-12);
    let plots = spectra_comparison_plots(&[("baseline".into(), a), ("framer".into(), b)]);
    assert_eq!(plots.len(), 4);
    let (stem, plot) = &plots[3];
    assert_eq!(stem, "cosine_high_runs");
    assert_eq!(plot.series.len(), 2);
    assert_eq!(plot.series[0].points[0], (0.0, want));
    assert!(plot.render().is_ok());
}

#[test]
fn training_log_schema_is_parsed_and_checked() {
    let log = r#"{"step": 0, "loss": 1.0, "faw_low": [0.5, 0.25], "faw_high": [1, 0.5], "fam_low": [0.2, 0.4], "fam_high": [null, 1.0]}
{"step": 5, "split": "valid", "loss": 0.9}

{"step": 10, "fam_low": [0.3, 0.6], "fam_high": [0.7, 0.8]}
"#;
    let w = parse_training_weights(log, Path::new("log.jsonl")).unwrap();
    assert_eq!(w.layers, 2);
    assert_eq!(w.records.len(), 2);
    assert!(w.records[0].fields[3].as_ref().unwrap()[0].is_nan());
    let (steps, values) = w.series("weight_low").unwrap();
    assert_eq!(steps, vec![0.0]); // only the first record has both FAW and FAM
    assert_eq!(values, vec![vec![0.1], vec![0.1]]);
    let (steps, values) = w.series("fam_low").unwrap();
    assert_eq!(
        (steps, values),
        (vec![0.0, 10.0], vec![vec![0.2, 0.3], vec![0.4, 0.6]])
    );
    let csv = w.to_csv();
    assert!(
        csv.starts_with("step,layer,faw_low,faw_high,fam_low,fam_high\n0,0,0.5,1,0.2,NaN\n"),
        "{csv}"
    );
    assert!(csv.contains("\n10,1,,,0.6,0.8\n"));

    for (bad, needle) in [
        (
            "{\"step\": 1, \"faw_low\": [1, 2]}\n{\"step\": 2, \"faw_low\": [1]}",
            "line 2",
        ),
        ("{\"faw_low\": [1]}", "no `step`"),
        ("{\"step\": -1, \"faw_low\": [1]}", "non-negative"),
        ("{\"step\": 1, \"faw_low\": 0.5}", "must be an array"),
        ("{\"step\": 1, \"faw_low\": [\"x\"]}", "faw_low[0]"),
        ("[1, 2]", "JSON object"),
        ("{oops", "not valid JSON"),
        ("{\"step\": 1, \"loss\": 2}", "no record"),
    ] {
        let e = parse_training_weights(bad, Path::new("run/log.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{bad}: {e}");
    }
    let e = read_training_weights(Path::new("/nonexistent/metrics.jsonl")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/metrics.jsonl"));
}

#[test]
fn a_weight_log_line_is_read_and_plotted() {
    // the engine's record of step 42 for 3 student layers (its writer is tested in framer-train)
    let text = r#"{"step":42,"loss":0.5,"faw_low":[0.5,0.5,0.5],"faw_high":[0.5,0.5,0.5],"fam_low":[0.15,0.2,0.25],"fam_high":[1.0,1.0,1.0]}"#;
    let w = parse_training_weights(text, Path::new("x")).unwrap();
    assert_eq!(w.records[0].step, 42);
    assert_eq!(w.layers, 3);
    let fam_low = w.records[0].fields[2].as_ref().unwrap();
    assert!((fam_low[2] - 0.25).abs() < 1e-12);
    let tmp = tempfile::tempdir().unwrap();
    let files = w.write(tmp.path()).unwrap();
    // csv + 6 quantities × (heat map + line plot)
    assert_eq!(files.len(), 13);
}

#[test]
fn spread_indices_keep_the_ends() {
    assert_eq!(spread_indices(3, 8), vec![0, 1, 2]);
    assert_eq!(spread_indices(25, 5), vec![0, 6, 12, 18, 24]);
    assert_eq!(spread_indices(0, 8), Vec::<usize>::new());
}
