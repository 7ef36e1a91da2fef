//! `framer check`: a schedule against the model of a registry ([`check_schedule`]), and what it
//! found ([`CheckReport`]).

use std::path::Path;

use crate::engine::ModelConfig;
use crate::registry::{ConfigTask, ModelRegistry};
use crate::schedule::{self, Experiment, ScheduleError};

/// What `check` found: the experiment, the model's resolved configuration and its students.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The validated experiment.
    pub experiment: Experiment,
    /// The model kind ([`ModelConfig::KIND`]).
    pub kind: &'static str,
    /// The model's configuration as resolved (presets expanded), as TOML.
    pub model: String,
    /// The model's student taps, in recording order.
    pub taps: Vec<String>,
    /// The students `[framer] students` selects.
    pub students: Vec<String>,
    /// Each resolved `[framer]` value and where it came from (schedule, the model's attribute, or
    /// framer's default).
    pub framer_values: Vec<crate::schedule::FramerValue>,
    /// The weight of each FRAMER student in the loss and where it came from (the schedule's
    /// `student_weights`, the model's `#[framer(student, weight = ..)]`, or the default 1).
    pub student_weights: Vec<crate::schedule::StudentWeight>,
    /// Scalar parameters of the model that `[train] trainable` selects (all when absent).
    pub trainable_params: usize,
    /// Scalar parameters of the model (without FRAMER's generated heads).
    pub total_params: usize,
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.experiment)?;
        writeln!(f, "# model: kind `{}`, resolved configuration:", self.kind)?;
        for line in self.model.lines() {
            writeln!(f, "#   {line}")?;
        }
        writeln!(f, "# FRAMER loss settings (outside phases) and where each comes from:")?;
        for v in &self.framer_values {
            writeln!(f, "#   {:<22} {:<12} ({})", v.key, v.value, v.source)?;
        }
        if !self.experiment.train.trainable.is_empty() {
            let patterns: Vec<&str> =
                self.experiment.train.trainable.iter().map(|p| p.pattern.as_str()).collect();
            writeln!(
                f,
                "# trainable parameters ({}): {} of {} (the rest frozen; FRAMER heads always train)",
                patterns.join(", "),
                self.trainable_params,
                self.total_params
            )?;
        }
        writeln!(f, "# student taps of the model: {}", self.taps.join(", "))?;
        if self.experiment.framer.enabled {
            writeln!(f, "# FRAMER students ({}): {}", self.students.len(), self.students.join(", "))?;
            writeln!(f, "# student weights in the loss and where each comes from:")?;
            for w in &self.student_weights {
                writeln!(f, "#   {:<22} {:<12} ({})", w.name, w.weight, w.source)?;
            }
            Ok(())
        } else {
            writeln!(f, "# FRAMER is off (`[framer] enabled = false`)")
        }
    }
}

/// Builds the model (lazily: no weights are allocated) to check it against the schedule.
struct CheckTask<'a> {
    experiment: &'a Experiment,
}

impl ConfigTask for CheckTask<'_> {
    type Output = Result<CheckReport, ScheduleError>;

    fn run<C: ModelConfig>(self, config: C) -> Self::Output {
        use framer::FramerModel;
        let (applied, framer_values) = self.experiment.with_model_defaults(C::loss_defaults());
        let exp = &applied;
        let model_error = |message: String| {
            let message = format!("[model] does not fit this schedule: {message}");
            match &exp.origin {
                Some(o) => ScheduleError::at(&o.path, &o.text, model_span(&o.text), "model", message),
                None => ScheduleError::new(message),
            }
        };
        crate::engine::check_model_input(&config, exp).map_err(model_error)?;
        let model = config
            .init::<burn::backend::Flex>(&Default::default())
            .map_err(model_error)?;
        let params = crate::engine::trainable::trainable_selection(&model, exp)?;
        if let Some(lora) = &exp.lora
            && let Err(e) = lora.config().init(&model, &Default::default())
        {
            return Err(section_error(exp, "lora", "lora.targets", format!("[lora] {e}")));
        }
        if let Some(prompts) = &exp.prompts {
            let widths = crate::engine::prompts::model_widths(&config)
                .map_err(|message| section_error(exp, "prompts", "prompts", message))?;
            crate::engine::prompts::read_prompt(&prompts.null, widths)
                .map_err(|e| section_error(exp, "prompts", "prompts.null", format!("[prompts] {e}")))?;
        }
        let trainable_params = params.iter().filter(|(_, k)| *k).map(|(e, _)| e.numel()).sum();
        let taps = model.student_names();
        let (students, student_weights) = if exp.framer.enabled {
            let students = schedule::resolve_students(exp, &taps)?;
            let declared = model.student_weights();
            let weights = schedule::resolve_student_weights(exp, &taps, &declared, &students)?;
            (students, weights)
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(CheckReport {
            experiment: exp.clone(),
            kind: C::KIND,
            model: toml::to_string(&config).unwrap_or_default(),
            taps,
            students,
            framer_values,
            student_weights,
            trainable_params,
            total_params: params.iter().map(|(e, _)| e.numel()).sum(),
        })
    }
}

/// `message` located at the `[section]` header of the schedule (or unlocated without one).
fn section_error(exp: &Experiment, section: &str, key: &str, message: String) -> ScheduleError {
    let header = format!("[{section}]");
    match &exp.origin {
        Some(o) => {
            let at = o.text.find(&header).map_or(0..0, |i| i..i + header.len());
            ScheduleError::at(&o.path, &o.text, at, key, message)
        }
        None => ScheduleError::new(message),
    }
}

/// The `[model]` header in `source` (or the start of the file).
fn model_span(source: &str) -> std::ops::Range<usize> {
    source.find("[model]").map_or(0..0, |i| i..i + "[model]".len())
}

/// Loads the schedule at `path` and checks it against the model of the registry `R`: the
/// configuration deserialises, fits the schedule's crops, and `[framer] students` names taps the
/// model records. What `framer check` runs (and `framer train` before it trains).
///
/// # Errors
/// The first problem, located at `file:line:col` where it is in the file.
pub fn check_schedule<R: ModelRegistry>(path: &Path) -> Result<CheckReport, ScheduleError> {
    let experiment = schedule::load(path)?;
    check_experiment::<R>(&experiment)
}

/// [`check_schedule`] on an already parsed experiment.
///
/// # Errors
/// As [`check_schedule`].
pub fn check_experiment<R: ModelRegistry>(experiment: &Experiment) -> Result<CheckReport, ScheduleError> {
    R::visit(experiment, CheckTask { experiment })?
}
