//! The `framer` command: `framer check SCHEDULE.toml` validates a schedule and prints the resolved
//! values; `framer train SCHEDULE.toml` runs it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// FRAMER training for Burn.
#[derive(Debug, Parser)]
#[command(name = "framer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    match cli.command {
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
