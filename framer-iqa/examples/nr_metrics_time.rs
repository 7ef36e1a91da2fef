//! Times the full-size MUSIQ and MANIQA networks on the CPU (`Flex` backend) or, with `--cuda`,
//! the first CUDA GPU (a build with `--features cuda`), for comparison with pyiqa
//! (`framer-iqa/scripts/nr-metrics-time.py` does the same with PyTorch).
//!
//! ```text
//! cargo run --release -p framer-iqa --example nr_metrics_time -- \
//!     [--musiq] [--maniqa] [--iters N] [--width W --height H] [--threads T] [--cuda]
//! ```
//!
//! Neither `--musiq` nor `--maniqa`: both. The networks get the default (full-size)
//! configurations and the deterministic weights of the tests (`tests/musiq.rs`,
//! `tests/maniqa.rs`, from `tests/oracle`), and score one deterministic image
//! (default 256×240; the pattern of each metric's tests). One warm-up score, then `--iters`
//! timed scores (default 3 for MUSIQ, 1 for MANIQA, which takes about a minute per image on two
//! cores). `--threads T` runs the scores on `T` rayon threads (the example starts itself again
//! with `RAYON_NUM_THREADS=T`; setting that variable directly works too).
//!
//! The last line per metric is machine-readable:
//! `nr_metric_time metric=<musiq|maniqa> width=W height=H iters=N median_s=… min_s=… score=…`.

use std::process::ExitCode;
use std::time::Instant;

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use framer_iqa::maniqa::{Maniqa, ManiqaConfig};
use framer_iqa::musiq::{Musiq, MusiqConfig};

#[path = "../tests/oracle/mod.rs"]
mod oracle;

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

/// One warm-up call, then `iters` timed calls; prints each and the summary lines.
fn time(
    metric: &str,
    args: &Args,
    iters: usize,
    built_s: f64,
    mut score: impl FnMut() -> framer_iqa::Result<f64>,
) -> framer_iqa::Result<()> {
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

fn run<B: Backend>(args: &Args, backend: &str) -> framer_iqa::Result<()> {
    let device = B::Device::default();
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("backend {backend}, RAYON_NUM_THREADS={threads}, available parallelism {cores}");
    if args.musiq {
        let config = MusiqConfig::default();
        let start = Instant::now();
        let weights = oracle::musiq_weights(&config);
        let model = Musiq::<B>::from_tensors(config, &weights, &device)?;
        drop(weights);
        let built = start.elapsed().as_secs_f64();
        let image = oracle::musiq_image(args.width, args.height);
        time("musiq", args, args.iters.unwrap_or(3), built, || {
            model.score_image(&image)
        })?;
    }
    if args.maniqa {
        let config = ManiqaConfig::default();
        let start = Instant::now();
        let weights = oracle::maniqa_weights(&config);
        let model = Maniqa::<B>::from_tensors(config, &weights, &device)?;
        drop(weights);
        let built = start.elapsed().as_secs_f64();
        let image = oracle::maniqa_image(args.width, args.height, 0);
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
                 (cargo run --release -p framer-iqa --features cuda --example nr_metrics_time)"
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
