//! The `framer` command. Without a subcommand it runs the main job (`framer demo`): a tiny backbone
//! trained on the embedded photos without and with FRAMER, then compared on held-out photos.
//! `framer check SCHEDULE.toml` validates a schedule and prints the resolved values;
//! `framer train SCHEDULE.toml` runs it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// FRAMER training for Burn.
#[derive(Debug, Parser)]
#[command(name = "framer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job (the default): train a tiny backbone on the embedded photos without and with
    /// FRAMER (same seed and budget), super-resolve held-out photos, compare, write a report.
    Demo(DemoArgs),
    /// Validate a schedule without training and print the resolved values.
    Check {
        /// The schedule file.
        schedule: PathBuf,
    },
    /// Train the experiment a schedule describes (CPU, `flex` backend).
    Train {
        /// The schedule file.
        schedule: PathBuf,
        /// Folder of the run (metrics, plots, checkpoints); default `runs/<name>`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where to train: the CPU (`flex` backend) or the first CUDA GPU (needs a build with the
        /// `cuda` feature).
        #[arg(long, value_enum, default_value_t = Device::Cpu)]
        device: Device,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct DemoArgs {
    /// Backbone: the MMDiT (the reference's FRAMER_D) or the U-Net (FRAMER_U).
    #[arg(long, value_enum, default_value_t = DemoBackboneArg::Dit)]
    backbone: DemoBackboneArg,
    /// Training steps of each run (default: 150; `--long` makes it 2000).
    #[arg(long)]
    steps: Option<u64>,
    /// A longer run (2000 steps each) for a clearer comparison.
    #[arg(long)]
    long: bool,
    /// Batch size.
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    /// Sampler steps at inference.
    #[arg(long, default_value_t = 20)]
    sample_steps: usize,
    /// Seed of both runs and of the evaluation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where sampling starts: 1 = pure noise, below 1 = the LR image noised to that level.
    #[arg(long, default_value_t = 0.4)]
    strength: f64,
    /// The FRAMER weight λ of the second run.
    #[arg(long, default_value_t = 0.1)]
    lambda: f64,
    /// Report folder.
    #[arg(long, default_value = "report")]
    out: PathBuf,
    /// Where to train: the CPU (`flex`) or the first CUDA GPU (needs `--features framer/cuda`).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
}

impl Default for DemoArgs {
    fn default() -> Self {
        Self {
            backbone: DemoBackboneArg::Dit,
            steps: None,
            long: false,
            batch_size: 4,
            sample_steps: 20,
            seed: 0,
            strength: 0.4,
            lambda: 0.1,
            out: PathBuf::from("report"),
            device: Device::Cpu,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DemoBackboneArg {
    Dit,
    Unet,
}

fn demo(args: DemoArgs) -> Result<(), String> {
    use burn::backend::{Autodiff, Flex};
    use framer_train::demo::{DemoBackbone, DemoOptions, run_demo};
    let options = DemoOptions {
        backbone: match args.backbone {
            DemoBackboneArg::Dit => DemoBackbone::Dit,
            DemoBackboneArg::Unet => DemoBackbone::Unet,
        },
        steps: args.steps.unwrap_or(if args.long { 2000 } else { 150 }),
        batch_size: args.batch_size,
        sample_steps: args.sample_steps,
        strength: args.strength,
        seed: args.seed,
        lambda: args.lambda,
        out: args.out,
        ..DemoOptions::default()
    };
    match args.device {
        Device::Cpu => run_demo::<Autodiff<Flex>>(&options, &Default::default()).map(|_| ()),
        #[cfg(feature = "cuda")]
        Device::Cuda => {
            run_demo::<Autodiff<burn::backend::Cuda>>(&options, &Default::default()).map(|_| ())
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => {
            return Err("this `framer` was built without the `cuda` feature; rebuild with \
                        `cargo run --release --features framer/cuda`"
                .to_string());
        }
    }
    .map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Device {
    Cpu,
    Cuda,
}

fn train(
    experiment: &framer_train::schedule::Experiment,
    out: &std::path::Path,
    device: Device,
) -> Result<framer_train::RunSummary, String> {
    use burn::backend::{Autodiff, Flex};
    match device {
        Device::Cpu => {
            framer_train::run_experiment::<Autodiff<Flex>>(experiment, out, &Default::default())
                .map_err(|e| e.to_string())
        }
        #[cfg(feature = "cuda")]
        Device::Cuda => framer_train::run_experiment::<Autodiff<burn::backend::Cuda>>(
            experiment,
            out,
            &Default::default(),
        )
        .map_err(|e| e.to_string()),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => Err(
            "this `framer` was built without the `cuda` feature; rebuild with \
                             `cargo build --release --features cuda`"
                .to_string(),
        ),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Demo(DemoArgs::default()));
    match command {
        Command::Demo(args) => match demo(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Check { schedule } => match framer_train::schedule::load(&schedule) {
            Ok(experiment) => {
                println!("# {}: valid", schedule.display());
                print!("{experiment}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Train {
            schedule,
            out,
            device,
        } => {
            let experiment = match framer_train::schedule::load(&schedule) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let out = out.unwrap_or_else(|| PathBuf::from("runs").join(&experiment.name));
            match train(&experiment, &out, device) {
                Ok(summary) => {
                    println!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
