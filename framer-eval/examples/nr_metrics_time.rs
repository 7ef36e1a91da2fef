//! Times the full-size MUSIQ and MANIQA networks on the CPU (`Flex` backend) or, with `--cuda`,
//! the first CUDA GPU (a build with `--features cuda`), for comparison with pyiqa
//! (`framer-eval/scripts/nr-metrics-time.py` does the same with PyTorch).
//!
//! ```text
//! cargo run --release -p framer-eval --example nr_metrics_time -- \
//!     [--musiq] [--maniqa] [--iters N] [--width W --height H] [--threads T] [--cuda]
//! ```
//!
//! Neither `--musiq` nor `--maniqa`: both. The networks get the default (full-size)
//! configurations and the deterministic weights of the tests (`tests/musiq.rs`,
//! `tests/maniqa.rs`; the formulas are repeated here), and score one deterministic image
//! (default 256×240; the pattern of each metric's tests). One warm-up score, then `--iters`
//! timed scores (default 3 for MUSIQ, 1 for MANIQA, which takes about a minute per image on two
//! cores). `--threads T` runs the scores on `T` rayon threads (the example starts itself again
//! with `RAYON_NUM_THREADS=T`; setting that variable directly works too).
//!
//! The last line per metric is machine-readable:
//! `nr_metric_time metric=<musiq|maniqa> width=W height=H iters=N median_s=… min_s=… score=…`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use framer_eval::maniqa::{self, Maniqa, ManiqaConfig};
use framer_eval::musiq::{self, Musiq, MusiqConfig};
use framer_eval::weight_file::HostTensor;
use framer_metrics::MetricImage;

struct Args {
    musiq: bool,
    maniqa: bool,
    iters: Option<usize>,
    width: usize,
    height: usize,
    threads: Option<usize>,
    cuda: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        musiq: false,
        maniqa: false,
        iters: None,
        width: 256,
        height: 240,
        threads: None,
        cuda: false,
    };
    let mut it = std::env::args().skip(1);
    let number = |flag: &str, v: Option<String>| -> Result<usize, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{flag}: expected a positive integer, got `{v}`")),
        }
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--musiq" => args.musiq = true,
            "--cuda" => args.cuda = true,
            "--maniqa" => args.maniqa = true,
            "--iters" => args.iters = Some(number("--iters", it.next())?),
            "--width" => args.width = number("--width", it.next())?,
            "--height" => args.height = number("--height", it.next())?,
            "--threads" => args.threads = Some(number("--threads", it.next())?),
            "-h" | "--help" => {
                return Err("usage: nr_metrics_time [--musiq] [--maniqa] [--iters N] \
                            [--width W --height H] [--threads T] [--cuda]"
                    .into());
            }
            other => return Err(format!("unknown argument `{other}` (see --help)")),
        }
    }
    if !args.musiq && !args.maniqa {
        args.musiq = true;
        args.maniqa = true;
    }
    Ok(args)
}

/// The weights of `tests/musiq.rs`: `s = sin(2.3 i + k)`, then `0.02 s` for a bias, `s` for a
/// convolution, `s / √fan_in` for a linear weight, `1 + 0.2 s` for a norm scale and `0.3 s`
/// otherwise.
fn musiq_formula(name: &str, k: usize, shape: &[usize]) -> HostTensor {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| {
            let s = (2.3 * i as f64 + k as f64).sin();
            let v = if name.ends_with(".bias") {
                0.02 * s
            } else if shape.len() == 4 {
                s
            } else if shape.len() == 2 && name.ends_with(".weight") {
                s / (shape[1] as f64).sqrt()
            } else if shape.len() == 1 {
                1.0 + 0.2 * s
            } else {
                0.3 * s
            };
            v as f32
        })
        .collect();
    HostTensor {
        shape: shape.to_vec(),
        data,
    }
}

/// The weights of `tests/maniqa.rs` (buffers are counted in `k` but not filled).
fn maniqa_formula(name: &str, k: usize, shape: &[usize]) -> HostTensor {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| {
            let s = (2.3 * i as f64 + k as f64).sin();
            let v = if name.ends_with("relative_position_bias_table") {
                0.2 * s
            } else if name.ends_with("cls_token") || name.ends_with("pos_embed") {
                0.1 * s
            } else if name.ends_with(".bias") {
                0.02 * s
            } else if shape.len() == 1 {
                1.0 + 0.1 * s
            } else if name.ends_with("c_q.weight") || name.ends_with("c_k.weight") {
                0.25 * s / (shape[1] as f64).sqrt()
            } else {
                let fan_in: usize = shape[1..].iter().product();
                2.0 * s / (fan_in as f64).sqrt()
            };
            v as f32
        })
        .collect();
    HostTensor {
        shape: shape.to_vec(),
        data,
    }
}

/// `[H, W, 3]`: the image of `tests/musiq.rs`.
fn musiq_image(width: usize, height: usize) -> framer_eval::Result<MetricImage> {
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            for c in 0..3 {
                let (xf, yf, cf) = (x as f64, y as f64, c as f64);
                let v = 0.5
                    + 0.4 * (0.21 * xf + 0.17 * yf + 1.3 * cf).sin()
                    + 0.3 * (0.9 * xf - 0.7 * yf + 0.5 * cf).sin();
                data.push(v.clamp(0.0, 1.0) as f32);
            }
        }
    }
    Ok(MetricImage::from_hwc(width, height, data)?)
}

/// `[H, W, 3]`: the image of `tests/maniqa.rs` (kind 0).
fn maniqa_image(width: usize, height: usize) -> framer_eval::Result<MetricImage> {
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            for c in 0..3 {
                let (xf, yf, cf) = (x as f64, y as f64, c as f64);
                let v = 0.5
                    + 0.3 * (0.21 * xf + 0.17 * yf + 1.3 * cf).sin()
                    + 0.1 * (0.9 * xf - 0.7 * yf + 0.5 * cf).sin()
                    + 0.05 * (2.1 * xf + 1.3 * yf + 0.01 * xf * yf - cf).sin();
                data.push(v as f32);
            }
        }
    }
    Ok(MetricImage::from_hwc(width, height, data)?)
}

/// One warm-up call, then `iters` timed calls; prints each and the summary lines.
fn time(
    metric: &str,
    args: &Args,
    iters: usize,
    built_s: f64,
    mut score: impl FnMut() -> framer_eval::Result<f64>,
) -> framer_eval::Result<()> {
    let start = Instant::now();
    let warm = score()?;
    println!(
        "{metric}: warm-up {:.3} s, score {warm:.9e}",
        start.elapsed().as_secs_f64()
    );
    let mut times = Vec::with_capacity(iters);
    let mut last = warm;
    for i in 0..iters {
        let start = Instant::now();
        last = score()?;
        let t = start.elapsed().as_secs_f64();
        println!("{metric}: iteration {} {t:.3} s, score {last:.9e}", i + 1);
        times.push(t);
    }
    times.sort_by(f64::total_cmp);
    let median = if iters % 2 == 1 {
        times[iters / 2]
    } else {
        0.5 * (times[iters / 2 - 1] + times[iters / 2])
    };
    println!(
        "{metric}: {}x{}, build {built_s:.2} s, median {median:.3} s, min {:.3} s over {iters}",
        args.width, args.height, times[0]
    );
    println!(
        "nr_metric_time metric={metric} width={} height={} iters={iters} median_s={median:.4} \
         min_s={:.4} score={last:.9e}",
        args.width, args.height, times[0]
    );
    Ok(())
}

fn run<B: Backend>(args: &Args, backend: &str) -> framer_eval::Result<()> {
    let device = B::Device::default();
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("backend {backend}, RAYON_NUM_THREADS={threads}, available parallelism {cores}");
    if args.musiq {
        let config = MusiqConfig::default();
        let start = Instant::now();
        let weights: BTreeMap<String, HostTensor> = musiq::expected_tensors(&config)
            .iter()
            .enumerate()
            .map(|(k, (name, shape))| (name.clone(), musiq_formula(name, k, shape)))
            .collect();
        let model = Musiq::<B>::from_tensors(config, &weights, &device)?;
        drop(weights);
        let built = start.elapsed().as_secs_f64();
        let image = musiq_image(args.width, args.height)?;
        time("musiq", args, args.iters.unwrap_or(3), built, || {
            model.score_image(&image)
        })?;
    }
    if args.maniqa {
        let config = ManiqaConfig::default();
        let start = Instant::now();
        let weights: BTreeMap<String, HostTensor> = maniqa::expected_tensors(&config)
            .iter()
            .enumerate()
            .filter(|(_, (name, _))| {
                !(name.ends_with("relative_position_index") || name.ends_with("attn_mask"))
            })
            .map(|(k, (name, shape))| (name.clone(), maniqa_formula(name, k, shape)))
            .collect();
        let model = Maniqa::<B>::from_tensors(config, &weights, &device)?;
        drop(weights);
        let built = start.elapsed().as_secs_f64();
        let image = maniqa_image(args.width, args.height)?;
        time("maniqa", args, args.iters.unwrap_or(1), built, || {
            model.score_image(&image)
        })?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("nr_metrics_time: {e}");
            return ExitCode::from(2);
        }
    };
    // rayon's global pool reads RAYON_NUM_THREADS once: start again with it set.
    if let Some(t) = args.threads
        && std::env::var("RAYON_NUM_THREADS").ok() != Some(t.to_string())
    {
        let exe = match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("nr_metrics_time: cannot find the running executable: {e}");
                return ExitCode::FAILURE;
            }
        };
        let status = std::process::Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .env("RAYON_NUM_THREADS", t.to_string())
            .status();
        return match status {
            Ok(s) if s.success() => ExitCode::SUCCESS,
            Ok(s) => {
                eprintln!("nr_metrics_time: {} ended with {s}", exe.display());
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("nr_metrics_time: cannot start {}: {e}", exe.display());
                ExitCode::FAILURE
            }
        };
    }
    let result = if args.cuda {
        #[cfg(feature = "cuda")]
        {
            run::<burn::backend::Cuda>(&args, "Cuda")
        }
        #[cfg(not(feature = "cuda"))]
        {
            eprintln!(
                "nr_metrics_time: --cuda needs a build with the `cuda` feature \
                 (cargo run --release -p framer-eval --features cuda --example nr_metrics_time)"
            );
            return ExitCode::from(2);
        }
    } else {
        run::<Flex>(&args, "Flex")
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nr_metrics_time: {e}");
            ExitCode::FAILURE
        }
    }
}
