//! Times the VAE's encode and decode on the CPU: the tiny SD3-form VAE (the oracle fixtures'
//! config) at 32×32, batch 1, and optionally the real SD3 VAE at a given size.
//!
//! ```text
//! cargo run --release -p framer-backbones --example vae_time [-- --real 128]
//! ```

use std::time::Instant;

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use framer_backbones::VaeConfig;
use framer_backbones::summary::parameter_count;

fn time(name: &str, config: VaeConfig, size: usize, repeats: usize) -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let vae = config.init::<Flex>(&device)?;
    let image = Tensor::<Flex, 4>::random([1, 3, size, size], Distribution::Uniform(-1.0, 1.0), &device);
    let latents = vae.encode(image.clone(), None)?; // warm-up, and the latents to decode
    let _ = vae.decode(latents.clone())?.into_data();
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        let t = Instant::now();
        let _ = vae.encode(image.clone(), None)?.into_data();
        enc.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let _ = vae.decode(latents.clone())?.into_data();
        dec.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{name}: {} parameters, {size}×{size}: encode median {:.1} ms, decode median {:.1} ms ({repeats} runs)",
        parameter_count(&vae),
        median(&mut enc),
        median(&mut dec)
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    time("tiny-sd3", VaeConfig::tiny_sd3(), 32, 20)?;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--real") {
        let size = args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(128);
        time("sd3", VaeConfig::sd3(), size, 3)?;
    }
    Ok(())
}
