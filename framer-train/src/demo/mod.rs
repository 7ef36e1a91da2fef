//! The main job: train a tiny backbone on the embedded photos twice, without and with FRAMER (same
//! seed, same step budget), super-resolve held-out photos with both, and compare with bicubic.
//!
//! ```text
//! cargo run --release                          # tiny U-Net, one-step host, the default budget
//! cargo run --release -- demo --backbone dit   # the MMDiT (FRAMER_D) instead
//! cargo run --release -- demo --steps 2000     # a longer run
//! ```
//!
//! By default both runs train a **one-step host with a residual target** (OSEDiff / PiSA-SR
//! style, `[objective] kind = "one_step"`): the network sees the bicubic-upsampled LR image at a
//! fixed σ, and its prediction `v̂` gives `x̂0 = LR↑ − σ·v̂`. A network whose output starts near
//! zero starts at bicubic and can only learn to improve on it; FRAMER teaches the intermediate
//! layers from the final one through the same clean estimate. The target is the HR crop itself
//! (`[degradation] gt_usm = false`), the image the scores compare with; `--gt-usm true` trains on
//! Real-ESRGAN's USM-sharpened target instead. `--objective diffusion` trains the
//! backbone's multi-step diffusion objective instead (rectified flow for the DiT, v-prediction
//! for the U-Net), sampled from the noised LR at `--strength`.
//!
//! The two runs train side by side, one thread each, when the machine has two cores or more
//! (`--jobs 1` trains them one after the other; see BENCHMARKS.md for the measurement).
//!
//! Writes a report folder: `baseline/` and `framer/` (real run folders: resolved schedule,
//! `model.toml`, metrics, loss plot and checkpoint, so `framer sr --run <out>/framer` and
//! `framer analyze --run <out>/framer` work on them), `samples/<photo>.png` (labelled panels LR,
//! bicubic, baseline, +FRAMER, HR with their scores, and a zoomed detail),
//! `comparison.md` / `comparison.csv` and `loss.png` (both training curves).

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::tensor::{Tensor, backend::AutodiffBackend, backend::Backend};
use framer::Framed;
use framer_data::Image;
use framer_eval::tiling::{TileConfig, process_tiled_image};
use framer_metrics::Metric;

use crate::engine::{
    DegradedPhotos, EngineError, ModelConfig, Objective, RunSummary, SrModel, Trainer,
    build_framed, prepare_run_dir,
};
use crate::registry::{Builtin, ConfigTask, ModelRegistry};
use crate::schedule::Experiment;

mod options;
mod pairs;
mod report;

pub use crate::engine::sampler::sample_from;
pub use options::{DemoBackbone, DemoObjective, DemoOptions, VariantKind, experiment};
pub use pairs::{
    DemoScores, EvalPair, EvalSets, HELD_OUT_SEED, VALIDATION_SEED, eval_pairs, score, score_with,
    validation_pairs, validation_score,
};
pub use report::{loss_curve, nearest, smooth};
use report::plot_losses;

/// Super-resolves `pair`'s upsampled LR image tile by tile (tiles of the training crop size,
/// overlapping by a quarter, Gaussian blending) with `predict`, the run's sampler.
fn super_resolve_pair<B: Backend>(
    experiment: &Experiment,
    objective: &Objective,
    strength: f64,
    pair_index: usize,
    lr_upsampled: &Image,
    device: &B::Device,
    predict: &dyn Fn(Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 4>) -> Tensor<B, 4>,
) -> Result<Image, EngineError> {
    let tile = experiment.data.crop_size;
    let config = TileConfig::new(tile, tile / 4, 1);
    let seed = experiment.train.seed ^ 0x5eed;
    let mut sr = process_tiled_image::<B, _, std::convert::Infallible>(
        lr_upsampled,
        device,
        &config,
        |tile, region| {
            let condition = tile.mul_scalar(2.0).sub_scalar(1.0);
            // the same noise for every run: seeded by the evaluation, not by the run
            let noise = crate::commands::normal_noise::<B>(
                condition.dims(),
                framer_eval::sr::tile_seed(seed, pair_index, region.index),
                device,
            );
            let out = sample_from(
                objective,
                condition.clone(),
                noise,
                strength,
                experiment.objective.sample_steps,
                |x, t| predict(x, t, condition.clone()),
            );
            Ok(out.add_scalar(1.0).div_scalar(2.0))
        },
    )
    .map_err(|e| EngineError::Model(format!("super-resolving {}: {e}", pair_index)))?;
    sr.clamp01();
    Ok(sr)
}

/// What one trained run produced: its summary and its super-resolved held-out and validation
/// crops.
#[derive(Debug, Clone)]
pub struct TrainedRun {
    /// The training run.
    pub summary: RunSummary,
    /// The held-out crops ([`EvalSets::test`]) super-resolved by the run's EMA weights (or its
    /// weights).
    pub sr: Vec<Image>,
    /// The validation crops ([`EvalSets::validation`]) super-resolved the same way.
    pub validation: Vec<Image>,
}

/// Trains one run and super-resolves the evaluation pairs with its EMA weights (or its weights
/// when the run keeps no EMA).
fn train_and_super_resolve<B, M>(
    experiment: &Experiment,
    model: Framed<B, M>,
    out: &Path,
    sets: &EvalSets,
    strength: f64,
    device: &B::Device,
) -> Result<TrainedRun, EngineError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SrModel<B>,
    M::InnerModule: SrModel<B::InnerBackend>,
{
    let source = Box::new(DegradedPhotos::from_experiment(experiment)?);
    let mut trainer = Trainer::new(experiment, model, source, out, device)?;
    let summary = trainer.run(None)?;
    let inference = match trainer.ema() {
        Some(ema) => ema.clone(),
        None => trainer.model().valid(),
    };
    let objective = Objective::new(&experiment.objective);
    let predict = |x, t, c| inference.forward((x, t, c));
    // validation pairs take tile seeds of their own (indices after the test pairs')
    let super_resolve = |pairs: &[EvalPair], first: usize| {
        pairs
            .iter()
            .enumerate()
            .map(|(i, pair)| {
                super_resolve_pair::<B::InnerBackend>(
                    experiment,
                    &objective,
                    strength,
                    first + i,
                    &pair.lr_upsampled,
                    device,
                    &predict,
                )
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let sr = super_resolve(&sets.test, 0)?;
    let validation = super_resolve(&sets.validation, sets.test.len())?;
    Ok(TrainedRun {
        summary,
        sr,
        validation,
    })
}

/// One run of the main job, with the model its `[model]` describes: a real run folder (the
/// resolved schedule and `model.toml`, so `framer sr --run` and `framer analyze --run` work on it),
/// trained, then the held-out photos super-resolved.
struct Variant<'a, B: AutodiffBackend> {
    experiment: &'a Experiment,
    out: &'a Path,
    sets: &'a EvalSets,
    strength: f64,
    device: &'a B::Device,
}

impl<B: AutodiffBackend> ConfigTask for Variant<'_, B> {
    type Output = Result<TrainedRun, EngineError>;

    fn run<C: ModelConfig>(self, config: C) -> Self::Output {
        let (experiment, _) = self.experiment.with_model_defaults(C::loss_defaults());
        let model = build_framed::<B, C>(&config, &experiment, self.device)?;
        prepare_run_dir(self.out, &experiment, &config)?;
        train_and_super_resolve(&experiment, model, self.out, self.sets, self.strength, self.device)
    }
}

/// One run to train: its schedule and its folder.
#[derive(Debug, Clone)]
pub struct RunJob {
    /// The run's label in messages.
    pub label: String,
    /// The run's schedule.
    pub experiment: Experiment,
    /// The run folder.
    pub out: PathBuf,
}

/// Trains `jobs` and super-resolves the pairs of `sets` with each, `threads` runs at a time (one
/// thread each); the results come back in the order of `jobs`.
///
/// # Errors
/// The first run's error, in the order of `jobs`; a panicking run thread is reported as an error.
pub fn train_runs<B: AutodiffBackend>(
    jobs: &[RunJob],
    sets: &EvalSets,
    strength: f64,
    threads: usize,
    device: &B::Device,
) -> Result<Vec<TrainedRun>, EngineError> {
    let one = |job: &RunJob| -> Result<TrainedRun, EngineError> {
        let started = std::time::Instant::now();
        let variant = Variant::<B> {
            experiment: &job.experiment,
            out: &job.out,
            sets,
            strength,
            device,
        };
        let run = Builtin::visit(&job.experiment, variant)??;
        println!(
            "  {}: {} steps in {:.0} s (training {:.0} s), final loss {}",
            job.label,
            run.summary.end_step,
            started.elapsed().as_secs_f64(),
            run.summary.seconds,
            run.summary.final_loss.map_or("n/a".into(), |l| format!("{l:.5}")),
        );
        Ok(run)
    };
    let threads = threads.max(1);
    if threads == 1 {
        return jobs.iter().map(one).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<TrainedRun, EngineError>>> = (0..jobs.len()).map(|_| None).collect();
    let slots = std::sync::Mutex::new(&mut results);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.min(jobs.len()))
            .map(|_| {
                scope.spawn(|| {
                    let work = || loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(job) = jobs.get(i) else { break };
                        let result = one(job);
                        if let Ok(mut slots) = slots.lock() {
                            slots[i] = Some(result);
                        }
                    };
                    // each run keeps to its own core: the backend's parallel kernels run inline
                    // in a pool of one thread instead of handing work between the runs' threads
                    match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
                        Ok(pool) => pool.install(work),
                        Err(_) => work(),
                    }
                })
            })
            .collect();
        for handle in handles {
            let _ = handle.join();
        }
    });
    results
        .into_iter()
        .zip(jobs)
        .map(|(r, job)| {
            r.unwrap_or_else(|| {
                Err(EngineError::Model(format!(
                    "the run {} stopped without a result (its thread panicked)",
                    job.label
                )))
            })
        })
        .collect()
}

/// What the main job produced.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// The two training runs.
    pub runs: [RunSummary; 2],
    /// Scores of baseline, +FRAMER and LR-upsampled (bicubic) on the held-out photos.
    pub scores: Vec<DemoScores>,
    /// The same three on the validation pairs (empty without validation pairs).
    pub validation: Vec<DemoScores>,
    /// The comparison table as printed.
    pub table: String,
    /// Seconds from the start of training to the end of the report.
    pub seconds: f64,
    /// The report folder.
    pub out: PathBuf,
}

/// Runs the main job on backend `B`.
///
/// # Errors
/// Schedule, data, training, metric and I/O errors, each naming what failed.
pub fn run_demo<B: AutodiffBackend>(
    options: &DemoOptions,
    device: &B::Device,
) -> Result<DemoReport, EngineError> {
    let started = std::time::Instant::now();
    let io = |p: &Path, e: std::io::Error| EngineError::Io(format!("{}: {e}", p.display()));
    std::fs::create_dir_all(&options.out).map_err(|e| io(&options.out, e))?;
    let threads = options.threads();
    let progress = threads == 1;
    let variants = [VariantKind::Baseline, VariantKind::Framer];
    let jobs: Vec<RunJob> = variants
        .iter()
        .map(|&v| {
            Ok(RunJob {
                label: v.label().into(),
                experiment: experiment(options, v, options.seed, progress)?,
                out: options.out.join(v.dir()),
            })
        })
        .collect::<Result<_, EngineError>>()?;
    let sets = EvalSets::new(&jobs[0].experiment, options.eval_size, options.validation_size)?;
    let pairs = &sets.test;
    println!(
        "main job: tiny {}{}, {}, {} steps × batch {} at {}² (×4), lr {}, seed {}, λ = {}; {} held-out photos ({}² centre crops), {} validation photos",
        options.backbone.name(),
        if options.zero_init_out { " (zero-initialised output layer)" } else { "" },
        options.objective.describe(),
        options.steps,
        options.batch_size,
        options.crop_size,
        options.lr,
        options.seed,
        options.lambda,
        pairs.len(),
        pairs.first().map_or(0, |p| p.hr.width()),
        sets.validation.len(),
    );
    println!(
        "training baseline and +FRAMER ({})",
        if threads == 1 {
            "one after the other".to_string()
        } else {
            format!("side by side, {threads} threads")
        }
    );
    let mut runs = train_runs::<B>(&jobs, &sets, options.strength, threads, device)?;
    let (run_b, run_a) = match (runs.pop(), runs.pop()) {
        (Some(b), Some(a)) => (b, a),
        _ => return Err(EngineError::Model("the main job's runs returned no result".into())),
    };

    let crop_border = jobs[0].experiment.data.scale;
    let bicubic_of = |pairs: &[EvalPair]| -> Vec<Image> {
        pairs.iter().map(|p| p.lr_upsampled.clone()).collect()
    };
    // relative changes are against the first column: the baseline
    let scores = vec![
        score("baseline", &run_a.sr, pairs, crop_border)?,
        score("+FRAMER", &run_b.sr, pairs, crop_border)?,
        score("bicubic", &bicubic_of(pairs), pairs, crop_border)?,
    ];
    let validation: Vec<DemoScores> = [
        ("baseline", &run_a.validation),
        ("+FRAMER", &run_b.validation),
        ("bicubic", &bicubic_of(&sets.validation)),
    ]
    .into_iter()
    .map(|(name, images)| validation_score(name, images, &sets.validation, crop_border))
    .collect::<Result<Option<Vec<_>>, _>>()?
    .unwrap_or_default();
    let table = report::write_tables(&options.out, &scores, pairs.len(), "comparison")?;
    let validation_table = if validation.is_empty() {
        None
    } else {
        Some(report::write_tables(&options.out, &validation, sets.validation.len(), "validation")?)
    };
    report::write_samples(&options.out, pairs, [&run_a.sr, &run_b.sr], &scores, crop_border)?;
    plot_losses(
        &options.out.join("loss.png"),
        &[("baseline", &run_a.summary), ("+FRAMER", &run_b.summary)],
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let sampler = match options.objective {
        DemoObjective::OneStep { .. } => "one step".to_string(),
        DemoObjective::Diffusion => format!(
            "{} sampler steps from strength {}",
            options.sample_steps, options.strength
        ),
    };
    if let Some(table) = &validation_table {
        println!(
            "\nvalidation: {} {}² centre crops of the validation photos (not trained on, not the test set), fixed degradations (PSNR/SSIM on Y, border {crop_border}):\n{table}",
            sets.validation.len(),
            sets.validation.first().map_or(0, |p| p.hr.width()),
        );
    }
    println!(
        "\nheld-out photos, {sampler} (PSNR/SSIM on Y, border {crop_border}):\n{table}"
    );
    let beats = |s: &DemoScores| {
        [Metric::PsnrY, Metric::SsimY]
            .iter()
            .all(|&m| s.mean(m).zip(scores[2].mean(m)).is_some_and(|(a, b)| a > b))
    };
    println!(
        "{}",
        match (beats(&scores[0]), beats(&scores[1])) {
            (true, true) => "both trained variants beat bicubic on PSNR-Y and SSIM-Y".to_string(),
            (a, b) => format!(
                "bicubic is not beaten on both PSNR-Y and SSIM-Y by: {}{}",
                if a { "" } else { "baseline " },
                if b { "" } else { "+FRAMER" }
            ),
        }
    );
    println!("main job done in {seconds:.0} s; report: {}", options.out.display());
    println!(
        "next: framer sr --run {} <your LR image or folder> <output>; framer analyze --run {}",
        options.out.join("framer").display(),
        options.out.join("framer").display()
    );
    Ok(DemoReport {
        runs: [run_a.summary, run_b.summary],
        scores,
        validation,
        table,
        seconds,
        out: options.out.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use framer::FramerForward;

    /// Super-resolves one pair with the untrained model of a schedule, as the main job does.
    struct Untrained<'a> {
        experiment: &'a Experiment,
        pair: &'a EvalPair,
    }

    impl ConfigTask for Untrained<'_> {
        type Output = Result<Image, EngineError>;

        fn run<C: ModelConfig>(self, config: C) -> Self::Output {
            let device = Default::default();
            <Flex as Backend>::seed(&device, 7);
            let model = config.init::<Flex>(&device).map_err(EngineError::Model)?;
            let objective = Objective::new(&self.experiment.objective);
            let predict = |x, t, c| model.forward_args((x, t, c));
            super_resolve_pair::<Flex>(
                self.experiment,
                &objective,
                1.0,
                0,
                &self.pair.lr_upsampled,
                &device,
                &predict,
            )
        }
    }

    /// The largest absolute difference between two images of the same size.
    fn max_difference(a: &Image, b: &Image) -> f32 {
        a.data().iter().zip(b.data()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn zero_initialised_one_step_host_starts_exactly_at_bicubic() {
        for backbone in [DemoBackbone::Dit, DemoBackbone::Unet] {
            for zero_init_out in [true, false] {
                let options = DemoOptions {
                    backbone,
                    zero_init_out,
                    ..DemoOptions::default()
                };
                let exp = experiment(&options, VariantKind::Baseline, 0, false).unwrap();
                let pair = &eval_pairs(&exp, 96).unwrap()[0];
                let sr = Builtin::visit(&exp, Untrained { experiment: &exp, pair }).unwrap().unwrap();
                // the oracle: x̂0 = LR↑ − σ·0 = LR↑, clamped to [0, 1] as every SR output
                let mut bicubic = pair.lr_upsampled.clone();
                bicubic.clamp01();
                assert_eq!((sr.width(), sr.height()), (96, 96));
                let d = max_difference(&sr, &bicubic);
                if zero_init_out {
                    // only the [0, 1] ↔ [−1, 1] round trip and the tile blending's rounding
                    assert!(d < 2e-6, "{backbone:?}: zero-initialised output is {d} off bicubic");
                } else {
                    assert!(d > 1e-3, "{backbone:?}: a random output layer moves the image ({d})");
                }
            }
        }
    }

    #[test]
    fn the_main_job_schedule_writes_the_model_table_in_full() {
        let options = DemoOptions {
            backbone: DemoBackbone::Dit,
            ..DemoOptions::default()
        };
        let exp = experiment(&options, VariantKind::Framer, 3, false).unwrap();
        struct Config;
        impl ConfigTask for Config {
            type Output = String;
            fn run<C: ModelConfig>(self, config: C) -> String {
                toml::to_string(&config).unwrap()
            }
        }
        let text = Builtin::visit(&exp, Config).unwrap();
        let mut expected = framer_backbones::DiTConfig::tiny();
        expected.zero_init_out = true;
        assert_eq!(text, toml::to_string(&expected).unwrap());
        let options = DemoOptions {
            backbone: DemoBackbone::Unet,
            zero_init_out: false,
            ..DemoOptions::default()
        };
        let exp = experiment(&options, VariantKind::Baseline, 0, false).unwrap();
        let text = Builtin::visit(&exp, Config).unwrap();
        assert_eq!(text, toml::to_string(&framer_backbones::UNetConfig::tiny()).unwrap());
    }
}
