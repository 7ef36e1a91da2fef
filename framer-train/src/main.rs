//! The `framer` command: `framer check SCHEDULE.toml` validates a schedule and prints the resolved
//! values; `framer train SCHEDULE.toml` runs it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    },
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
        Command::Train { schedule, out } => {
            let experiment = match framer_train::schedule::load(&schedule) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let out = out.unwrap_or_else(|| PathBuf::from("runs").join(&experiment.name));
            match framer_train::run_experiment::<burn::backend::Autodiff<burn::backend::Flex>>(
                &experiment,
                &out,
                &Default::default(),
            ) {
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
