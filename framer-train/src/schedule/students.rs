//! `[framer] students` and `[framer] student_weights`: tap names and globs, resolved against the
//! taps of a model, with errors at the pattern's `file:line:col` and the closest tap name.

use std::fmt;
use std::ops::Range;

use serde::Serialize;

use super::error::{ScheduleError, suggest};
use super::resolved::Experiment;

/// A student pattern as written in `[framer] students`, with its byte range in the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentPattern {
    /// A tap name (`mid_block`) or a glob over tap names (`down_blocks.*`; `*` matches any run of
    /// characters, `?` one character).
    pub pattern: String,
    /// Where the pattern is written in the schedule file (empty when unknown).
    pub span: Range<usize>,
}

/// Which taps are students.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Students {
    /// Every student tap of the model.
    All,
    /// These positions among the model's student taps (in recording order), sorted and distinct.
    Indices(Vec<usize>),
    /// The student taps matching any of these names or globs.
    Patterns(Vec<StudentPattern>),
}

impl Serialize for Students {
    /// `"all"`, the list of indices or the list of patterns, as written in a schedule.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::All => serializer.serialize_str("all"),
            Self::Indices(ix) => ix.serialize(serializer),
            Self::Patterns(p) => serializer.collect_seq(p.iter().map(|p| &p.pattern)),
        }
    }
}

/// One entry of `[framer] student_weights`: the weight of the students matching `pattern`.
#[derive(Debug, Clone, PartialEq)]
pub struct StudentWeightPattern {
    /// A tap name or a glob, as in `students`.
    pub pattern: String,
    /// The weight of each matching student in the loss (finite, `≥ 0`).
    pub weight: f64,
    /// Where the pattern is written in the schedule file (empty when unknown).
    pub span: Range<usize>,
}

/// Why [`Students::resolve`] rejected a selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentsError {
    /// What is wrong.
    pub message: String,
    /// The pattern at fault, when one is (an index into [`Students::Patterns`]).
    pub pattern: Option<usize>,
    /// A suggestion (the closest tap name), when there is one.
    pub help: Option<String>,
}

/// Whether `name` matches the glob `pattern` (`*`: any run of characters, `?`: one character).
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// The first of `patterns` that matches none of `available`, as an error of the schedule key
/// `key` naming the closest tap.
fn unmatched<'a>(
    key: &str,
    patterns: impl IntoIterator<Item = &'a str>,
    available: &[String],
) -> Option<StudentsError> {
    let (k, pattern) = patterns
        .into_iter()
        .enumerate()
        .find(|(_, p)| !available.iter().any(|n| glob_matches(p, n)))?;
    let mut message = format!("`{key}` entry \"{pattern}\" matches no student tap of the model");
    if let Some(c) = suggest(pattern, available.iter().map(String::as_str)) {
        message.push_str(&format!("; did you mean \"{c}\"?"));
    }
    Some(StudentsError {
        message,
        pattern: Some(k),
        help: Some(format!("the student taps are: {}", available.join(", "))),
    })
}

impl Students {
    /// The selected student names out of `available` (the model's student taps in recording
    /// order), in recording order.
    ///
    /// # Errors
    /// An index beyond the taps, a pattern that matches no tap (with the closest name), or fewer
    /// than 2 students selected.
    pub fn resolve(&self, available: &[String]) -> Result<Vec<String>, StudentsError> {
        let picked: Vec<String> = match self {
            Self::All => available.to_vec(),
            Self::Indices(ix) => {
                if let Some(i) = ix.iter().find(|&&i| i >= available.len()) {
                    return Err(StudentsError {
                        message: format!(
                            "`students` names tap {i}, but the model has {} student taps (0..{})",
                            available.len(),
                            available.len()
                        ),
                        pattern: None,
                        help: Some(format!("the student taps are: {}", available.join(", "))),
                    });
                }
                ix.iter().map(|&i| available[i].clone()).collect()
            }
            Self::Patterns(patterns) => {
                if let Some(e) = unmatched("students", patterns.iter().map(|p| p.pattern.as_str()), available) {
                    return Err(e);
                }
                available
                    .iter()
                    .filter(|n| patterns.iter().any(|p| glob_matches(&p.pattern, n)))
                    .cloned()
                    .collect()
            }
        };
        if picked.len() < 2 {
            return Err(StudentsError {
                message: format!(
                    "FRAMER needs at least 2 students (each student's negative is another student); \
                     `students` selects {} of the model's {} ({})",
                    picked.len(),
                    available.len(),
                    picked.join(", ")
                ),
                pattern: None,
                help: None,
            });
        }
        Ok(picked)
    }
}

/// Where a resolved `[framer]` value comes from: the schedule overrides the model's attribute
/// (`#[framer(loss(..))]`, `#[framer(student, weight = ..)]`), which overrides framer's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueSource {
    /// framer's default (the reference's settings).
    Default,
    /// The model's attribute.
    Attribute,
    /// The schedule's `[framer]` table.
    Schedule,
}

impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Default => "default",
            Self::Attribute => "attribute",
            Self::Schedule => "schedule",
        })
    }
}

/// The weight of one student in the loss and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct StudentWeight {
    /// The tap name.
    pub name: String,
    /// Its weight in the loss.
    pub weight: f64,
    /// The schedule's `student_weights`, the model's `#[framer(student, weight = ..)]`, or the
    /// default 1.
    pub source: ValueSource,
}

/// `error` located at `span` of the experiment's schedule file under `key` (or at the value of
/// `fallback` in `[framer]` when `span` is empty), with its help.
fn located(experiment: &Experiment, e: StudentsError, span: Option<Range<usize>>, key: &str) -> ScheduleError {
    let error = match (&experiment.origin, span.filter(|s| !s.is_empty())) {
        (Some(origin), Some(span)) => ScheduleError::at(&origin.path, &origin.text, span, key, e.message),
        (Some(origin), None) => match super::spans::Spans::parse(&origin.text).value(&["framer", key.trim_start_matches("framer.")]) {
            Some(span) => ScheduleError::at(&origin.path, &origin.text, span, key, e.message),
            None => ScheduleError::new(e.message),
        },
        _ => ScheduleError::new(e.message),
    };
    match e.help {
        Some(help) => error.with_help(help),
        None => error,
    }
}

/// The student tap names that `[framer] students` selects out of `available` (the model's
/// students in recording order), with errors at the entry's `file:line:col` and the closest tap
/// name as a suggestion.
///
/// # Errors
/// A [`ScheduleError`] for an index beyond the taps, a name or glob that matches no tap, or fewer
/// than 2 students.
pub fn resolve_students(
    experiment: &Experiment,
    available: &[String],
) -> Result<Vec<String>, ScheduleError> {
    let students = &experiment.framer.students;
    students.resolve(available).map_err(|e| {
        let span = match (students, e.pattern) {
            (Students::Patterns(p), Some(k)) => Some(p[k].span.clone()),
            _ => None,
        };
        located(experiment, e, span, "framer.students")
    })
}

/// The weight of each of `picked` (the selected students) in the loss: the last entry of
/// `[framer] student_weights` that matches it, else the model's attribute weight (`attribute`, in
/// the order of `available`, the model's student taps), else 1.
///
/// # Errors
/// A [`ScheduleError`] at an entry of `student_weights` that matches no tap of `available`, with
/// the closest tap name.
pub fn resolve_student_weights(
    experiment: &Experiment,
    available: &[String],
    attribute: &[f64],
    picked: &[String],
) -> Result<Vec<StudentWeight>, ScheduleError> {
    let patterns = &experiment.framer.student_weights;
    if let Some(e) = unmatched("student_weights", patterns.iter().map(|p| p.pattern.as_str()), available) {
        let span = e.pattern.map(|k| patterns[k].span.clone());
        return Err(located(experiment, e, span, "framer.student_weights"));
    }
    Ok(picked
        .iter()
        .map(|name| {
            let written = patterns.iter().rev().find(|p| glob_matches(&p.pattern, name));
            let declared = available.iter().position(|n| n == name).and_then(|i| attribute.get(i).copied());
            let (weight, source) = match (written, declared) {
                (Some(p), _) => (p.weight, ValueSource::Schedule),
                (None, Some(w)) if w != 1.0 => (w, ValueSource::Attribute),
                _ => (1.0, ValueSource::Default),
            };
            StudentWeight { name: name.clone(), weight, source }
        })
        .collect())
}
