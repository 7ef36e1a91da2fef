//! FRAMER's share of a training step: the same backbone trained with and without the FRAMER loss,
//! timed step by step, and the peak memory of each.
//!
//! ```text
//! cargo run --release -p framer-backbones --example step_overhead                     # tiny DiT, CPU
//! cargo run --release -p framer-backbones --features cuda --example step_overhead -- \
//!     --cuda --preset small --batch 16                                                 # the GPU figure
//! ```
//!
//! Options: `--preset tiny|small` (DiT), `--batch N`, `--steps N` (timed steps per variant, after
//! two warm-up steps), `--variant both|baseline|framer`, `--cuda`.
//!
//! A baseline step is the denoising MSE (forward, backward, Adam); a FRAMER step adds the student
//! taps and `0.1 ·` the FRAMER loss on every student. Both variants see the same inputs. Peak memory
//! is per process (host: `VmHWM`; CUDA: the memory `nvidia-smi` reports for this process at the end,
//! which is what burn's caching allocator reserved at the peak), so it is printed only for a single
//! `--variant`; run the binary once per variant to compare memory.
//!
//! The last line is machine-readable:
//! `framer_step_overhead backend=flex preset=tiny B=4 H=64 W=64 baseline_ms=… framer_ms=… time_share_pct=…`
//! (with `peak_mib=…` for a single variant).

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, ModuleDisplay};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Tensor};
use framer::{Framed, FramerForward, FramerLossConfig, FramerModel, FramerStep, NegativeSampler, Parameterization, StudentSelection};
use framer_backbones::DiTConfig;

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Both,
    Baseline,
    Framer,
}

struct Args {
    preset: String,
    batch: usize,
    steps: usize,
    variant: Variant,
    cuda: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args =
        Args { preset: "tiny".into(), batch: 4, steps: 10, variant: Variant::Both, cuda: false };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let number = |name: &str, v: String| -> Result<usize, String> {
            v.parse().ok().filter(|&n| n > 0).ok_or(format!("{name} needs a positive integer, got {v:?}"))
        };
        match flag.as_str() {
            "--preset" => args.preset = value("--preset")?,
            "--batch" => args.batch = number("--batch", value("--batch")?)?,
            "--steps" => args.steps = number("--steps", value("--steps")?)?,
            "--variant" => {
                args.variant = match value("--variant")?.as_str() {
                    "both" => Variant::Both,
                    "baseline" => Variant::Baseline,
                    "framer" => Variant::Framer,
                    other => return Err(format!("--variant is both, baseline or framer, not {other:?}")),
                }
            }
            "--cuda" => args.cuda = true,
            "--help" | "-h" => {
                println!(
                    "step_overhead [--preset tiny|small] [--batch N] [--steps N] \
                     [--variant both|baseline|framer] [--cuda]"
                );
                std::process::exit(0);
            }
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`), if readable.
fn host_peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// GPU memory that `nvidia-smi` reports for this process, in MiB, if it can be asked.
fn gpu_process_mib() -> Option<f64> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"])
        .output()
        .ok()?;
    let pid = std::process::id().to_string();
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let mut fields = l.split(',').map(str::trim);
        (fields.next()? == pid).then(|| fields.next()?.parse().ok()).flatten()
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A super-resolution denoiser `(x_t, t, lr) → prediction` annotated for FRAMER.
trait SrModel<B: AutodiffBackend>:
    AutodiffModule<B, InnerModule: ModuleDisplay>
    + ModuleDisplay
    + FramerForward<B, Args = (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 4>), Output = Tensor<B, 4>>
{
}
impl<B: AutodiffBackend, M> SrModel<B> for M
where
    M: AutodiffModule<B> + ModuleDisplay + FramerForward<B, Args = (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 4>), Output = Tensor<B, 4>>,
    M::InnerModule: ModuleDisplay,
{
}

/// One model with its optimiser and fixed inputs, trained with or without FRAMER.
struct Run<B: AutodiffBackend, M: SrModel<B>> {
    params: Option<Framed<B, M>>,
    optim: burn::optim::adaptor::OptimizerAdaptor<burn::optim::Adam, Framed<B, M>, B>,
    framer_on: bool,
    inputs: [Tensor<B, 4>; 3],
    t: Tensor<B, 1>,
    sigmas: Vec<f32>,
    times: Vec<f64>,
}

impl<B, M> Run<B, M>
where
    B: AutodiffBackend,
    M: SrModel<B>,
{
    fn new(model: M, framer_on: bool, batch: usize, size: usize, device: &B::Device) -> Result<Self, Box<dyn std::error::Error>> {
        let normal = Distribution::Normal(0.0, 1.0);
        let shape = [batch, 3, size, size];
        let inputs = std::array::from_fn(|_| Tensor::<B, 4>::random(shape, normal, device));
        let sigmas: Vec<f32> = (0..batch).map(|b| (b as f32 + 0.5) / batch as f32).collect();
        let t = Tensor::<B, 1>::from_floats(sigmas.as_slice(), device);
        let [x_t, lr, _] = inputs.clone();
        let params = Framed::new(model, (x_t, t.clone(), lr), device)?;
        Ok(Self {
            params: Some(params),
            optim: AdamConfig::new().init::<B, Framed<B, M>>(),
            framer_on,
            inputs,
            t,
            sigmas,
            times: Vec::new(),
        })
    }

    /// One training step; its wall time is recorded when `timed`.
    fn step(&mut self, step: usize, timed: bool, device: &B::Device) -> Result<(), Box<dyn std::error::Error>> {
        let [x_t, lr, target] = self.inputs.clone();
        let start = Instant::now();
        let params = self.params.take().ok_or("the model was lost in a failed step")?;
        let loss = FramerLossConfig::new().init()?;
        let sampler = NegativeSampler::seeded(0);
        let lambda = if self.framer_on { 0.1 } else { 0.0 };
        let framer = FramerStep { loss: &loss, students: &StudentSelection::All, student_weights: &[], negatives: &sampler, step: step as u64, lambda };
        let param = Parameterization::RectifiedFlow { sigmas: Tensor::from_floats(self.sigmas.as_slice(), device) };
        let out = params.forward_framer((x_t.clone(), self.t.clone(), lr), x_t, param, &framer)?;
        let mse = (out.output - target).powf_scalar(2.0).mean();
        let total = match out.weighted_loss {
            Some(weighted) => mse + weighted,
            None => mse,
        };
        let grads = GradientsParams::from_grads(total.backward(), &params);
        self.params = Some(self.optim.step(1e-4, params, grads));
        let _ = B::sync(device);
        if timed {
            self.times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        Ok(())
    }
}

fn run<B: AutodiffBackend>(backend: &str, args: &Args, device: &B::Device) -> Result<(), Box<dyn std::error::Error>> {
    let config = match args.preset.as_str() {
        "tiny" => DiTConfig::tiny(),
        "small" => DiTConfig::small(),
        other => return Err(format!("--preset is tiny or small, not {other:?}").into()),
    };
    let size = config.sample_size;
    let init = || config.init::<B>(device);
    B::seed(device, 0);
    let students = init()?.num_students();
    println!(
        "{backend}: DiT {} ({students} students), batch {}, {size}×{size}, {} timed steps per variant",
        args.preset, args.batch, args.steps
    );
    // the variants take turns step by step, so that drifts (warm-up, other load) hit both alike
    let mut runs = Vec::new();
    if args.variant != Variant::Framer {
        runs.push(Run::new(init()?, false, args.batch, size, device)?);
    }
    if args.variant != Variant::Baseline {
        runs.push(Run::new(init()?, true, args.batch, size, device)?);
    }
    for step in 0..args.steps + 2 {
        for run in &mut runs {
            run.step(step, step >= 2, device)?;
        }
    }
    let result = |framer_on: bool| {
        runs.iter().find(|r| r.framer_on == framer_on).map(|r| median(r.times.clone()))
    };
    let (baseline, framer) = (result(false), result(true));
    let show = |v: Option<f64>| v.map_or("-".to_string(), |ms| format!("{ms:.3}"));
    let mut line = format!(
        "framer_step_overhead backend={backend} preset={} B={} H={size} W={size} baseline_ms={} framer_ms={}",
        args.preset,
        args.batch,
        show(baseline),
        show(framer)
    );
    if let (Some(b), Some(f)) = (baseline, framer) {
        line += &format!(" time_share_pct={:.2}", 100.0 * (f - b) / b);
    }
    if args.variant != Variant::Both {
        let peak = if args.cuda { gpu_process_mib() } else { host_peak_mib() };
        line += &format!(" peak_mib={}", peak.map_or("-".to_string(), |m| format!("{m:.0}")));
    }
    println!("{line}");
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let result = if args.cuda {
        #[cfg(feature = "cuda")]
        {
            run::<Autodiff<burn::backend::Cuda>>("cuda", &args, &Default::default())
        }
        #[cfg(not(feature = "cuda"))]
        {
            Err("--cuda needs a build with `--features cuda`".into())
        }
    } else {
        run::<Autodiff<Flex>>("flex", &args, &Default::default())
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
