//! Times one FRAMER training step (forward with taps, FRAMER loss + denoising MSE, backward,
//! Adam update) of each `tiny` backbone on the CPU at batch 4, 64×64 RGB.
//!
//! ```text
//! cargo run --release -p framer-backbones --example step_time
//! ```

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use framer::{Framed, FramerForward, FramerLossConfig, FramerStep, NegativeSampler, Parameterization, StudentSelection};
use framer_backbones::summary::parameter_count;
use framer_backbones::{DiTConfig, UNetConfig};

type B = Autodiff<Flex>;

/// CPU time (user + system, all threads) used by this process so far, in seconds (Linux
/// `/proc/self/stat`; 0 elsewhere). Unlike wall time it is not inflated by other processes.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn time_steps<M>(name: &str, model: M, steps: usize) -> Result<(), Box<dyn std::error::Error>>
where
    M: AutodiffModule<B>
        + burn::module::ModuleDisplay
        + FramerForward<B, Args = (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 4>), Output = Tensor<B, 4>>,
    M::InnerModule: burn::module::ModuleDisplay,
{
    let device = Default::default();
    let (batch, size) = (4, 64);
    let params_count = parameter_count(&model);
    let normal = Distribution::Normal(0.0, 1.0);
    let x_t = Tensor::<B, 4>::random([batch, 3, size, size], normal, &device);
    let lr = Tensor::<B, 4>::random([batch, 3, size, size], normal, &device);
    let target = Tensor::<B, 4>::random([batch, 3, size, size], normal, &device);
    let sigmas = vec![0.2f32, 0.4, 0.6, 0.8];
    let t = Tensor::<B, 1>::from_floats(sigmas.as_slice(), &device);
    let mut params = Framed::new(model, (x_t.clone(), t.clone(), lr.clone()), &device)?;
    let mut optim = AdamConfig::new().init::<B, Framed<B, M>>();
    let loss = FramerLossConfig::new().init()?;
    let sampler = NegativeSampler::seeded(0);
    // Breakdown: forward alone, and forward + backward of the MSE alone.
    let mut fwd = Vec::new();
    let mut mse_only = Vec::new();
    for _ in 0..steps {
        let start = Instant::now();
        let _ = params.forward((x_t.clone(), t.clone(), lr.clone())).into_data();
        fwd.push(start.elapsed().as_secs_f64());
        let start = Instant::now();
        let p = params.forward((x_t.clone(), t.clone(), lr.clone()));
        let _ = (p - target.clone()).powf_scalar(2.0).mean().backward();
        mse_only.push(start.elapsed().as_secs_f64());
    }
    let min = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min) * 1e3;
    println!("{name}: forward {:.0} ms, forward+backward without FRAMER {:.0} ms (min of {steps})", min(&fwd), min(&mse_only));
    let mut times = Vec::new();
    let mut cpu_start = 0.0;
    for step in 0..steps + 2 {
        if step == 2 {
            cpu_start = cpu_seconds();
        }
        let start = Instant::now();
        let framer = FramerStep { loss: &loss, students: &StudentSelection::All, student_weights: &[], negatives: &sampler, step: step as u64, lambda: 0.5 };
        let param = Parameterization::RectifiedFlow { sigmas: Tensor::from_floats(sigmas.as_slice(), &device) };
        let out = params.forward_framer((x_t.clone(), t.clone(), lr.clone()), x_t.clone(), param, &framer)?;
        let weighted = out.weighted_loss.ok_or("λ > 0 gives a FRAMER loss")?;
        let total = (out.output - target.clone()).powf_scalar(2.0).mean() + weighted;
        let grads = GradientsParams::from_grads(total.backward(), &params);
        params = optim.step(1e-4, params, grads);
        let _ = <B as Backend>::sync(&device);
        if step >= 2 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let min = min(&times) / 1e3;
    let cpu = (cpu_seconds() - cpu_start) / steps as f64;
    println!(
        "{name}: {params_count} parameters, {} students; training step at batch {batch}, {size}×{size}: \
         wall mean {:.0} ms, min {:.0} ms; CPU time {:.0} ms per step (all threads) over {steps} steps",
        params.model.num_students(),
        mean * 1e3,
        min * 1e3,
        cpu * 1e3
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    <B as Backend>::seed(&device, 0);
    time_steps("unet tiny", UNetConfig::tiny().init::<B>(&device)?, 5)?;
    time_steps("dit tiny", DiTConfig::tiny().init::<B>(&device)?, 5)?;
    Ok(())
}
