//! `framer study`: the main job's budget over N seeds × {baseline, +FRAMER} (and optionally the
//! paper's ablations), with the statistics a reviewer asks for: a per-seed table, mean ± standard
//! deviation, and the paired difference of each FRAMER variant from the baseline of the same seed
//! with a 95 % Student-t interval, ending on a one-line verdict.
//!
//! ```text
//! framer study --seeds 3                 # 3 seeds × {baseline, +FRAMER}, the default budget
//! framer study --seeds 3 --steps 2000    # the long study
//! framer study --seeds 5 --ablations     # with FRAMER w/o FAW, w/o FAM, radial mask
//! ```
//!
//! Writes `study.md` (the tables and the verdict), `study.csv` (one row per run), `bars.png`
//! (means with standard-deviation error bars, and the paired differences with their 95 %
//! intervals), `loss.png` (the mean base loss of each variant over training), and one run folder
//! per seed and variant (`seed_<s>/<variant>/`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use framer_data::Image;
use framer_metrics::Metric;

use crate::demo::{
    DemoOptions, EvalSets, RunJob, VariantKind, experiment, loss_curve, score, smooth, train_runs,
};
use crate::engine::EngineError;
use crate::figure::{BarWithError, bar_chart_with_errors};

/// The two-sided 95 % quantiles `t_{0.975, df}` of Student's t distribution for `df = 1 … 30`
/// (standard tables, e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2, to 6 decimals).
const T975: [f64; 30] = [
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157,
    2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922,
    2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831,
    2.048407, 2.045230, 2.042272,
];

/// `t_{0.975, df}`: the table for `df ≤ 30`, above it the Cornish–Fisher expansion around the
/// normal quantile 1.959964 (error below 1e-5 for `df > 30`). `None` for `df = 0`.
pub fn t_quantile_975(df: usize) -> Option<f64> {
    match df {
        0 => None,
        1..=30 => Some(T975[df - 1]),
        _ => {
            let z: f64 = 1.959_963_985;
            let n = df as f64;
            let g1 = (z.powi(3) + z) / 4.0;
            let g2 = (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / 96.0;
            let g3 = (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / 384.0;
            Some(z + g1 / n + g2 / (n * n) + g3 / (n * n * n))
        }
    }
}

/// Mean and sample standard deviation (`n − 1` in the denominator; 0 for one value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanStd {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub std: f64,
}

/// The mean and sample standard deviation of `values` (`None` when empty).
pub fn mean_std(values: &[f64]) -> Option<MeanStd> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let std = if n > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    Some(MeanStd { n, mean, std })
}

/// The paired difference `b − a` over seeds, with its 95 % Student-t interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedDifference {
    /// Mean and standard deviation of the differences.
    pub diff: MeanStd,
    /// Half-width `t_{0.975, n−1} · s / √n` of the 95 % interval (`None` for one pair).
    pub half_width: Option<f64>,
}

impl PairedDifference {
    /// The interval `(low, high)`, if there are two pairs or more.
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.half_width
            .map(|h| (self.diff.mean - h, self.diff.mean + h))
    }

    /// `Some(true)` when the interval excludes 0 (significant at the 5 % level, two-sided).
    pub fn significant(&self) -> Option<bool> {
        self.interval().map(|(lo, hi)| lo > 0.0 || hi < 0.0)
    }
}

/// The paired difference `b[i] − a[i]`; `None` for no pairs or lengths that differ.
pub fn paired_difference(a: &[f64], b: &[f64]) -> Option<PairedDifference> {
    if a.len() != b.len() {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    let diff = mean_std(&d)?;
    let half_width =
        t_quantile_975(diff.n - 1).map(|t| t * diff.std / (diff.n as f64).sqrt());
    Some(PairedDifference { diff, half_width })
}

/// Settings of a study.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyOptions {
    /// The budget of every run (its `seed` is replaced by 0 … `seeds − 1`, its `out` is the study
    /// folder).
    pub base: DemoOptions,
    /// Number of seeds.
    pub seeds: u64,
    /// Also FRAMER without FAW, without FAM, and with the radial mask.
    pub ablations: bool,
}

impl StudyOptions {
    /// The variants of the study, the baseline first.
    pub fn variants(&self) -> Vec<VariantKind> {
        let mut v = vec![VariantKind::Baseline, VariantKind::Framer];
        if self.ablations {
            v.extend([VariantKind::NoFaw, VariantKind::NoFam, VariantKind::Radial]);
        }
        v
    }
}

/// One variant's scores over the seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantScores {
    /// The variant.
    pub variant: VariantKind,
    /// Mean PSNR-Y over the held-out crops, per seed.
    pub psnr: Vec<f64>,
    /// Mean SSIM-Y over the held-out crops, per seed.
    pub ssim: Vec<f64>,
}

/// What a study found.
#[derive(Debug, Clone)]
pub struct StudyReport {
    /// Scores per variant, the baseline first.
    pub variants: Vec<VariantScores>,
    /// Bicubic's PSNR-Y and SSIM-Y on the same crops.
    pub bicubic: (f64, f64),
    /// The report (`study.md`).
    pub markdown: String,
    /// The one-line verdict on +FRAMER vs baseline.
    pub verdict: String,
    /// The study folder.
    pub out: PathBuf,
}

fn fmt_interval(p: &PairedDifference, digits: usize) -> String {
    match p.interval() {
        Some((lo, hi)) => format!(
            "{:+.d$} [{:+.d$}, {:+.d$}]",
            p.diff.mean,
            lo,
            hi,
            d = digits
        ),
        None => format!("{:+.d$} (one seed: no interval)", p.diff.mean, d = digits),
    }
}

/// The one-line verdict on `framer` vs `baseline` (per-seed PSNR-Y and SSIM-Y).
pub fn verdict(baseline: &VariantScores, framer: &VariantScores) -> String {
    let n = baseline.psnr.len();
    let (Some(p), Some(s)) = (
        paired_difference(&baseline.psnr, &framer.psnr),
        paired_difference(&baseline.ssim, &framer.ssim),
    ) else {
        return "verdict: no paired runs to compare".into();
    };
    let describe = |name: &str, d: &PairedDifference, unit: &str, digits: usize| -> String {
        let value = format!("{:+.d$}{unit}", d.diff.mean, d = digits);
        match d.significant() {
            None => format!("{name} {value} (one seed: no test)"),
            Some(true) if d.diff.mean > 0.0 => format!("{name} {value}, significantly better"),
            Some(true) => format!("{name} {value}, significantly worse"),
            Some(false) => format!("{name} {value}, not significant"),
        }
    };
    let body = format!(
        "{}; {}",
        describe("PSNR-Y", &p, " dB", 3),
        describe("SSIM-Y", &s, "", 4)
    );
    let summary = match (p.significant(), s.significant()) {
        (Some(false), Some(false)) => {
            " — at this budget FRAMER's effect is not distinguishable from seed-to-seed variation"
        }
        (None, _) | (_, None) => " — run more seeds for a test",
        _ => "",
    };
    format!("verdict (+FRAMER − baseline, paired over {n} seeds, 95 % t-interval): {body}{summary}")
}

/// Runs the study on backend `B`.
///
/// # Errors
/// [`EngineError::Model`] for zero seeds; schedule, data, training, metric and I/O errors.
pub fn run_study<B: AutodiffBackend>(
    options: &StudyOptions,
    device: &B::Device,
) -> Result<StudyReport, EngineError> {
    if options.seeds == 0 {
        return Err(EngineError::Model("a study needs at least one seed (`--seeds`)".into()));
    }
    let started = std::time::Instant::now();
    let out = &options.base.out;
    let io = |p: &Path, e: std::io::Error| EngineError::Io(format!("{}: {e}", p.display()));
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let variants = options.variants();
    let threads = options.base.threads();
    let progress = threads == 1;
    let mut jobs = Vec::new();
    for seed in 0..options.seeds {
        for &v in &variants {
            jobs.push(RunJob {
                label: format!("seed {seed} {}", v.label()),
                experiment: experiment(&options.base, v, seed, progress)?,
                out: out.join(format!("seed_{seed}")).join(v.dir()),
            });
        }
    }
    // the study scores the held-out photos only (no validation pairs)
    let sets = EvalSets::new(&jobs[0].experiment, options.base.eval_size, 0)?;
    let pairs = &sets.test;
    let b = &options.base;
    println!(
        "study: tiny {}, {}, {} steps × batch {} at {}² (×4), λ = {}; {} seeds × {} variants = {} runs, {} at a time",
        b.backbone.name(),
        b.objective.describe(),
        b.steps,
        b.batch_size,
        b.crop_size,
        b.lambda,
        options.seeds,
        variants.len(),
        jobs.len(),
        threads
    );
    let runs = train_runs::<B>(&jobs, &sets, b.strength, threads, device)?;
    let border = jobs[0].experiment.data.scale;
    let mean_of = |images: &[Image]| -> Result<(f64, f64), EngineError> {
        let s = score("", images, &pairs, border)?;
        Ok((
            s.mean(Metric::PsnrY).unwrap_or(f64::NAN),
            s.mean(Metric::SsimY).unwrap_or(f64::NAN),
        ))
    };
    let mut scores: Vec<VariantScores> = variants
        .iter()
        .map(|&variant| VariantScores {
            variant,
            psnr: Vec::new(),
            ssim: Vec::new(),
        })
        .collect();
    let mut curves: Vec<Vec<Vec<(f64, f64)>>> = vec![Vec::new(); variants.len()];
    for (k, run) in runs.iter().enumerate() {
        let v = k % variants.len();
        let (p, s) = mean_of(&run.sr)?;
        scores[v].psnr.push(p);
        scores[v].ssim.push(s);
        curves[v].push(loss_curve(&run.summary)?);
    }
    let bicubic_images: Vec<Image> = pairs.iter().map(|p| p.lr_upsampled.clone()).collect();
    let bicubic = mean_of(&bicubic_images)?;

    // tables
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# FRAMER study\n\nBudget: tiny {}, {}, {} steps × batch {} at {}² HR crops (×4), lr {} \
         (cosine to a tenth), λ = {}; seeds 0…{}; scored on {} held-out {}² centre crops (PSNR/SSIM \
         on Y, border {border}). Wall time {:.0} s ({} runs, {} at a time).\n",
        b.backbone.name(),
        b.objective.describe(),
        b.steps,
        b.batch_size,
        b.crop_size,
        b.lr,
        b.lambda,
        options.seeds - 1,
        pairs.len(),
        pairs.first().map_or(0, |p| p.hr.width()),
        started.elapsed().as_secs_f64(),
        jobs.len(),
        threads,
    );
    let _ = writeln!(md, "## Per seed\n");
    let mut header = "| seed |".to_string();
    let mut rule = "|---:|".to_string();
    for s in &scores {
        let _ = write!(header, " {} PSNR-Y | {} SSIM-Y |", s.variant.label(), s.variant.label());
        rule.push_str("---:|---:|");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    for seed in 0..options.seeds as usize {
        let mut row = format!("| {seed} |");
        for s in &scores {
            let _ = write!(row, " {:.3} | {:.4} |", s.psnr[seed], s.ssim[seed]);
        }
        let _ = writeln!(md, "{row}");
    }
    let _ = writeln!(
        md,
        "\nbicubic: PSNR-Y {:.3}, SSIM-Y {:.4} (the same crops; no seed)\n",
        bicubic.0, bicubic.1
    );
    let _ = writeln!(md, "## Mean ± standard deviation over seeds\n");
    let _ = writeln!(md, "| variant | PSNR-Y | SSIM-Y |\n|---|---:|---:|");
    for s in &scores {
        if let (Some(p), Some(q)) = (mean_std(&s.psnr), mean_std(&s.ssim)) {
            let _ = writeln!(
                md,
                "| {} | {:.3} ± {:.3} | {:.4} ± {:.4} |",
                s.variant.label(),
                p.mean,
                p.std,
                q.mean,
                q.std
            );
        }
    }
    let _ = writeln!(md, "| bicubic | {:.3} | {:.4} |\n", bicubic.0, bicubic.1);
    let _ = writeln!(
        md,
        "## Paired difference from the baseline of the same seed (mean [95 % t-interval])\n"
    );
    let _ = writeln!(md, "| variant | Δ PSNR-Y (dB) | Δ SSIM-Y |\n|---|---:|---:|");
    let base = &scores[0];
    let mut diffs = Vec::new();
    for s in &scores[1..] {
        if let (Some(p), Some(q)) = (
            paired_difference(&base.psnr, &s.psnr),
            paired_difference(&base.ssim, &s.ssim),
        ) {
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                s.variant.label(),
                fmt_interval(&p, 3),
                fmt_interval(&q, 4)
            );
            diffs.push((s.variant, p, q));
        }
    }
    let verdict = verdict(&scores[0], &scores[1]);
    let _ = writeln!(md, "\n{verdict}");
    let path = out.join("study.md");
    std::fs::write(&path, &md).map_err(|e| io(&path, e))?;
    let mut csv = "seed,variant,psnr_y,ssim_y\n".to_string();
    for seed in 0..options.seeds as usize {
        for s in &scores {
            let _ = writeln!(csv, "{seed},{},{},{}", s.variant.dir(), s.psnr[seed], s.ssim[seed]);
        }
    }
    let path = out.join("study.csv");
    std::fs::write(&path, csv).map_err(|e| io(&path, e))?;

    // figures
    let bars = |f: &dyn Fn(&VariantScores) -> &Vec<f64>, bicubic: f64| -> Vec<BarWithError> {
        let mut bars: Vec<BarWithError> = scores
            .iter()
            .filter_map(|s| {
                mean_std(f(s)).map(|m| BarWithError {
                    label: s.variant.label().into(),
                    value: m.mean,
                    error: m.std,
                })
            })
            .collect();
        bars.push(BarWithError {
            label: "bicubic".into(),
            value: bicubic,
            error: 0.0,
        });
        bars
    };
    let mut groups = vec![
        ("PSNR-Y (dB), mean ± std".to_string(), bars(&|s| &s.psnr, bicubic.0)),
        ("SSIM-Y, mean ± std".to_string(), bars(&|s| &s.ssim, bicubic.1)),
    ];
    if diffs.iter().all(|(_, p, _)| p.half_width.is_some()) {
        groups.push((
            "Δ PSNR-Y vs baseline (dB), 95 % CI".to_string(),
            diffs
                .iter()
                .map(|(v, p, _)| BarWithError {
                    label: v.label().into(),
                    value: p.diff.mean,
                    error: p.half_width.unwrap_or(0.0),
                })
                .collect(),
        ));
    }
    bar_chart_with_errors(
        &format!("{} seeds × {} steps", options.seeds, b.steps),
        &groups,
        &out.join("bars.png"),
    )?;
    let series = variants
        .iter()
        .zip(&curves)
        .map(|(v, runs)| {
            // the mean over seeds, step by step (every run logs every step)
            let len = runs.iter().map(Vec::len).min().unwrap_or(0);
            let mean: Vec<(f64, f64)> = (0..len)
                .map(|i| {
                    let y = runs.iter().map(|r| r[i].1).sum::<f64>() / runs.len() as f64;
                    (runs[0][i].0, y)
                })
                .collect();
            framer_eval::plot::Series::new(v.label(), smooth(&mean, 20))
        })
        .collect();
    let path = out.join("loss.png");
    framer_eval::plot::LinePlot::new(
        "base loss, mean over seeds (moving average over 20 steps)",
        "step",
        "loss",
    )
    .with_series(series)
    .save_png(&path)
    .map_err(|e| EngineError::Io(format!("{}: {e}", path.display())))?;

    println!("\n{md}");
    println!("study done in {:.0} s; report: {}", started.elapsed().as_secs_f64(), out.display());
    Ok(StudyReport {
        variants: scores,
        bicubic,
        markdown: md,
        verdict,
        out: out.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean, standard deviation and the paired 95 % interval on fixed numbers, worked by hand:
    ///
    /// baseline a = [24.0, 24.5, 23.5], +FRAMER b = [24.3, 24.6, 24.1]
    /// - mean(a) = 72/3 = 24.0; deviations 0, +0.5, −0.5; s² = 0.5/2 = 0.25; s = 0.5
    /// - mean(b) = 73/3 = 24.333333…; deviations −1/30, +8/30, −7/30; Σ = 114/900 = 0.126667;
    ///   s² = 0.063333; s = 0.251661
    /// - d = b − a = [0.3, 0.1, 0.6]; mean 1/3 = 0.333333; deviations −1/30, −7/30, +8/30; the
    ///   same s_d = 0.251661; se = s_d/√3 = 0.145297; t_{0.975, 2} = 4.302653; half-width
    ///   4.302653 × 0.145297 = 0.625161; interval [−0.291828, 0.958494]: contains 0, not
    ///   significant.
    #[test]
    fn statistics_match_a_hand_computation() {
        let a = [24.0, 24.5, 23.5];
        let b = [24.3, 24.6, 24.1];
        let ma = mean_std(&a).unwrap();
        assert_eq!(ma.n, 3);
        assert!((ma.mean - 24.0).abs() < 1e-12 && (ma.std - 0.5).abs() < 1e-12, "{ma:?}");
        let mb = mean_std(&b).unwrap();
        assert!((mb.mean - 24.333_333).abs() < 1e-6, "{mb:?}");
        assert!((mb.std - 0.251_661).abs() < 1e-6, "{mb:?}");
        let d = paired_difference(&a, &b).unwrap();
        assert!((d.diff.mean - 0.333_333).abs() < 1e-6, "{d:?}");
        assert!((d.diff.std - 0.251_661).abs() < 1e-6, "{d:?}");
        assert!((d.half_width.unwrap() - 0.625_161).abs() < 1e-6, "{d:?}");
        let (lo, hi) = d.interval().unwrap();
        assert!((lo + 0.291_828).abs() < 1e-6 && (hi - 0.958_494).abs() < 1e-6, "{lo} {hi}");
        assert_eq!(d.significant(), Some(false));

        // a consistent gain: d = [0.2, 0.3, 0.25, 0.25]; mean 0.25; deviations −0.05, +0.05,
        // 0, 0; s² = 0.005/3; s = 0.040825; se = 0.020412; t_{0.975, 3} = 3.182446;
        // half-width 0.064961; interval [0.185039, 0.314961]: significant
        let a = [20.0, 21.0, 22.0, 23.0];
        let b = [20.2, 21.3, 22.25, 23.25];
        let d = paired_difference(&a, &b).unwrap();
        assert!((d.diff.mean - 0.25).abs() < 1e-9);
        assert!((d.half_width.unwrap() - 0.064_961).abs() < 1e-6, "{d:?}");
        assert_eq!(d.significant(), Some(true));

        // one seed: a difference but no interval; lengths must match
        let d = paired_difference(&[1.0], &[1.5]).unwrap();
        assert_eq!((d.diff.mean, d.half_width, d.significant()), (0.5, None, None));
        assert!(paired_difference(&[1.0, 2.0], &[1.0]).is_none());
        assert!(mean_std(&[]).is_none());
    }

    /// The table against known quantiles, and the expansion beyond it continuous with the table
    /// (t_{0.975, 30} = 2.042272; t_{0.975, 40} = 2.021075, t_{0.975, 60} = 2.000298,
    /// t_{0.975, 120} = 1.979930 from the same tables).
    #[test]
    fn t_quantiles_match_the_tables() {
        assert_eq!(t_quantile_975(0), None);
        assert_eq!(t_quantile_975(1), Some(12.706205));
        assert_eq!(t_quantile_975(9), Some(2.262157));
        let t30: f64 = {
            let z: f64 = 1.959_963_985;
            let n = 30.0;
            z + (z.powi(3) + z) / 4.0 / n
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / 96.0 / (n * n)
                + (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z)
                    / 384.0
                    / (n * n * n)
        };
        assert!((t30 - 2.042272).abs() < 2e-5, "{t30}");
        for (df, t) in [(40, 2.021075), (60, 2.000298), (120, 1.979930)] {
            let got = t_quantile_975(df).unwrap();
            assert!((got - t).abs() < 1e-5, "df {df}: {got} vs {t}");
        }
        // decreasing in df
        for df in 1..200 {
            assert!(t_quantile_975(df + 1).unwrap() < t_quantile_975(df).unwrap(), "{df}");
        }
    }

    #[test]
    fn verdicts_say_plainly_what_the_interval_says() {
        let base = VariantScores {
            variant: VariantKind::Baseline,
            psnr: vec![24.0, 24.5, 23.5],
            ssim: vec![0.70, 0.71, 0.72],
        };
        let framer = VariantScores {
            variant: VariantKind::Framer,
            psnr: vec![24.3, 24.6, 24.1],
            ssim: vec![0.71, 0.72, 0.73],
        };
        let v = verdict(&base, &framer);
        assert!(v.contains("PSNR-Y +0.333 dB, not significant"), "{v}");
        // SSIM-Y differences are all +0.01: zero spread, significant
        assert!(v.contains("SSIM-Y +0.0100, significantly better"), "{v}");
        let worse = VariantScores {
            psnr: vec![23.0, 23.4, 22.5],
            ..framer.clone()
        };
        assert!(verdict(&base, &worse).contains("significantly worse"));
    }
}
