//! The `framer` command: the command line of [`framer_train::cli`] for the built-in backbones of
//! `framer-backbones` (the U-Net and the DiT). Without a subcommand it runs the main job.

use std::process::ExitCode;

fn main() -> ExitCode {
    framer_train::cli::main::<framer_train::registry::Builtin>()
}
