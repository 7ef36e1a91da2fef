//! # framer-train
//!
//! The training side of framer: the TOML [`schedule`] that describes one experiment, and the
//! training [`engine`] (objectives, AdamW with global-norm clipping, EMA, atomic checkpoints with
//! exact resume, a NaN/Inf guard, metrics, plots and samplers).

pub mod engine;
pub mod schedule;

pub use engine::{EngineError, RunSummary, Trainer, run_experiment, run_experiment_with};
