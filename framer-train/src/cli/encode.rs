//! `framer encode SCHEDULE.toml`: the latents of a `[latent]` schedule
//! ([`crate::commands::encode`]).

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;

use super::backend::{Device, OnBackend};

/// Encode the training crops of a `[latent]` schedule with its VAE (as `make_latents.py`), for
/// `framer train` to read.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct EncodeArgs {
    /// The schedule file (with a `[latent]` table).
    schedule: PathBuf,
    /// Output folder (default: the schedule's `[latent] latents`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Passes over the training photos: each draws a new crop and degradation per photo.
    #[arg(long, default_value_t = 1)]
    passes: usize,
    /// Crops encoded at once.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Where to run the VAE.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
}

pub(super) fn encode(args: EncodeArgs) -> Result<(), String> {
    use crate::commands::encode::{EncodeReport, EncodeSettings, run_encode};
    let experiment = crate::schedule::load(&args.schedule).map_err(|e| e.to_string())?;
    let settings = EncodeSettings {
        out: args.out,
        passes: args.passes,
        batch: args.batch,
        progress: true,
    };
    struct Task<'a>(&'a crate::schedule::Experiment, &'a EncodeSettings);
    impl OnBackend for Task<'_> {
        type Output = EncodeReport;
        fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<EncodeReport, String> {
            run_encode::<B::InnerBackend>(self.0, self.1, device).map_err(|e| e.to_string())
        }
    }
    let report = args.device.run(Task(&experiment, &settings))?;
    let m = &report.manifest;
    println!(
        "wrote {} latent pairs {:?} ({} VAE, {} px crops) to {}",
        m.count,
        m.shape,
        m.preset,
        m.crop_size,
        report.dir.display()
    );
    Ok(())
}
