//! # framer-train
//!
//! The training side of framer: the TOML [`schedule`] that describes one experiment, and the
//! training [`engine`] (objectives, AdamW with global-norm clipping, EMA, atomic checkpoints with
//! exact resume, a NaN/Inf guard, metrics, plots and samplers).
//!
//! ```
//! use std::path::Path;
//!
//! let experiment = framer_train::schedule::parse(
//!     r#"
//!     [model]
//!     backbone = "dit"
//!     preset = "tiny"
//!
//!     [framer]
//!     lambda_framer = 0.1   # the reference's flag names are accepted
//!     tau_high = 1.0
//!
//!     [train]
//!     steps = 2000
//!
//!     [[schedule.phase]]     # λ ramps up over the first 1000 steps
//!     start = 0
//!     end = 1000
//!     lambda = { from = 0.0, to = 0.1 }
//!     "#,
//!     "example.toml",
//!     Path::new("."),
//! )?;
//! assert_eq!(experiment.values_at(500).lambda, 0.05);
//! assert_eq!(experiment.values_at(1500).lambda, 0.1);
//!
//! // `[model]` is the model's own table: the binary's model registry checks it.
//! let bad = framer_train::schedule::parse(
//!     "[model]\nbackbone = \"dti\"\n[train]\nsteps = 10\n", "bad.toml", Path::new("."))?;
//! let err = framer_train::cli::check_experiment::<framer_train::Builtin>(&bad).unwrap_err();
//! assert!(err.to_string().starts_with("error: unknown value \"dti\" for `backbone` in [model]; did you mean \"dit\"?"));
//! # Ok::<(), framer_train::schedule::ScheduleError>(())
//! ```
//!
//! [`run_experiment`] trains the experiment of a schedule end to end on the CPU or GPU backend of
//! the caller's choice; [`Trainer`] exposes the loop step by step for any [`SrModel`]: a model
//! annotated with `#[framer]` / `#[framer_forward]`, built from `[model]` by its [`ModelConfig`].
//! [`cli::main`] gives such a model the whole `framer` command line.

pub mod cli;
pub mod commands;
pub mod demo;
pub mod engine;
pub mod figure;
pub mod lora;
pub mod registry;
pub mod schedule;
pub mod study;

pub use engine::{EngineError, ModelConfig, RunSummary, SrModel, Trainer, run_experiment, run_experiment_with};
pub use registry::{Builtin, ConfigTask, ModelRegistry};
