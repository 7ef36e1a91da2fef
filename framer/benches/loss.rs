//! Benchmark of the FRAMER loss, forward + backward.
//!
//! ```text
//! cargo bench -p framer                       # B=4, C=16, 64×64, 24 students on flex
//! cargo bench -p framer -- --batch 16         # other sizes: --batch --channels --size --students --iters
//! cargo bench -p framer --features cuda -- --cuda
//! cargo bench -p framer -- --compare            # host path and tensor path, one after the other
//! ```
//!
//! On the CPU the loss runs on the host (FFTs, closed-form gradient); `--tensor` times the tensor
//! path (dense DFT products, autodiff) instead, and `--compare` times both in one run (the tensor
//! path first, so that the last line is the host path's).
//!
//! The last line is machine-readable:
//! `framer_loss_fwd_bwd backend=flex B=4 C=16 H=64 W=64 S=24 median_ms=<value>`.

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Distribution, Tensor, TensorData, backend::AutodiffBackend};
use framer::{FramerInput, FramerLossConfig, LossExecution, NegativeSampler, Parameterization};

struct Args {
    batch: usize,
    channels: usize,
    size: usize,
    students: usize,
    iters: usize,
    cuda: bool,
    tensor: bool,
    compare: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        batch: 4,
        channels: 16,
        size: 64,
        students: 24,
        iters: 20,
        cuda: false,
        tensor: false,
        compare: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> usize {
            it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{name} needs a positive integer");
                std::process::exit(2)
            })
        };
        match flag.as_str() {
            "--batch" => args.batch = value("--batch"),
            "--channels" => args.channels = value("--channels"),
            "--size" => args.size = value("--size"),
            "--students" => args.students = value("--students"),
            "--iters" => args.iters = value("--iters"),
            "--cuda" => args.cuda = true,
            "--tensor" => args.tensor = true,
            "--compare" => args.compare = true,
            "--bench" => {} // passed by `cargo bench`
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2)
            }
        }
    }
    args
}

fn run<B: AutodiffBackend>(backend: &str, args: &Args, device: &B::Device) {
    if args.compare {
        time::<B>(backend, "tensor", args, device);
        time::<B>(backend, "auto", args, device);
    } else {
        time::<B>(backend, if args.tensor { "tensor" } else { "auto" }, args, device);
    }
}

fn time<B: AutodiffBackend>(backend: &str, path: &str, args: &Args, device: &B::Device) {
    let shape = [args.batch, args.channels, args.size, args.size];
    let normal = Distribution::Normal(0.0, 1.0);
    let students: Vec<Tensor<B, 4>> =
        (0..args.students).map(|_| Tensor::random(shape, normal, device)).collect();
    let teacher = Tensor::<B, 4>::random(shape, normal, device);
    let x_t = Tensor::<B, 4>::random(shape, normal, device);
    let sigmas: Vec<f32> = (0..args.batch).map(|b| (b as f32 + 0.5) / args.batch as f32).collect();
    let sigmas = Tensor::<B, 1>::from_data(TensorData::new(sigmas, [args.batch]), device);
    let execution = if path == "tensor" { LossExecution::Tensor } else { LossExecution::Auto };
    let loss = FramerLossConfig::new().with_execution(execution).init().expect("default config is valid");
    let sampler = NegativeSampler::seeded(0);
    let mut times = Vec::with_capacity(args.iters);
    for step in 0..args.iters + 3 {
        let students: Vec<Tensor<B, 4>> =
            students.iter().map(|s| s.clone().detach().require_grad()).collect();
        let negatives = sampler.sample(step as u64, args.students).expect("≥ 2 students");
        let start = Instant::now();
        let input = FramerInput::new(
            students.clone(),
            teacher.clone(),
            x_t.clone(),
            Parameterization::RectifiedFlow { sigmas: sigmas.clone() },
            negatives,
        );
        let out = loss.forward(input).expect("valid input");
        let grads = out.loss.backward();
        // read one gradient back so that asynchronous backends have finished
        let g = students[0].grad(&grads).expect("gradient reaches the students");
        let _ = g.sum().into_scalar();
        if step >= 3 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{path} path: min {:.2} ms, median {:.2} ms, max {:.2} ms over {} iterations",
        times[0],
        median,
        times[times.len() - 1],
        times.len()
    );
    println!(
        "framer_loss_fwd_bwd backend={backend} B={} C={} H={} W={} S={} median_ms={median:.3}",
        args.batch, args.channels, args.size, args.size, args.students
    );
}

fn main() {
    let args = parse_args();
    if args.cuda {
        #[cfg(feature = "cuda")]
        {
            run::<Autodiff<burn::backend::Cuda>>("cuda", &args, &Default::default());
            return;
        }
        #[cfg(not(feature = "cuda"))]
        {
            eprintln!("--cuda needs a build with `--features cuda`");
            std::process::exit(2);
        }
    }
    run::<Autodiff<Flex>>("flex", &args, &Default::default());
}
