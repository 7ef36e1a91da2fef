//! `[train] trainable`: which parameters the optimiser updates, as globs over module paths.
//!
//! ```toml
//! [train]
//! trainable = ["*control*", "heads.*"]   # globs over parameter paths
//! trainable_modules = ["control"]        # the reference's --trainable_modules: substrings
//! ```
//!
//! A parameter path is the chain of field names (and `Vec` indices) from the model to the
//! parameter, as burn's module visitors name it: `transformer_blocks.3.attn.to_q_control.weight`.
//! Absent keys train every parameter. FRAMER's generated heads (`heads.*`) are new, so they are
//! always trained.

use std::ops::Range;

use super::sections::TrainSection;
use super::validate::Ctx;
use super::{Experiment, ScheduleError, error::suggest, glob_matches};

/// One entry of `[train] trainable` (a glob), or of `trainable_modules` turned into one
/// (`control` → `*control*`), with where it is written in the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamPattern {
    /// A glob over parameter paths (`*`: any run of characters, `?`: one character).
    pub pattern: String,
    /// Byte range of the entry in the schedule file (empty when unknown).
    pub span: Range<usize>,
}

impl ParamPattern {
    /// The glob of a `trainable_modules` substring: `*{substring}*`.
    pub fn from_substring(substring: &str, span: Range<usize>) -> Self {
        Self { pattern: format!("*{substring}*"), span }
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        glob_matches(&self.pattern, path)
    }
}

/// `[train] trainable` globs and `trainable_modules` substrings, as one list of globs.
pub(super) fn validate(t: &TrainSection, ctx: &Ctx<'_>) -> Result<Vec<ParamPattern>, ScheduleError> {
    let mut patterns = Vec::new();
    for (list, substring) in [(&t.trainable, false), (&t.trainable_modules, true)] {
        let Some(list) = list else { continue };
        let key = if substring { "train.trainable_modules" } else { "train.trainable" };
        if list.get_ref().is_empty() {
            return Err(ctx.err(
                list.span(),
                key,
                format!(
                    "`{key}` is empty: nothing would be trained (leave the key out to train \
                     every parameter)"
                ),
            ));
        }
        for entry in list.get_ref() {
            let text = entry.get_ref().trim();
            if text.is_empty() {
                return Err(ctx.err(entry.span(), key, format!("`{key}` entries must not be empty")));
            }
            patterns.push(if substring {
                ParamPattern::from_substring(text, entry.span())
            } else {
                ParamPattern { pattern: text.to_string(), span: entry.span() }
            });
        }
    }
    Ok(patterns)
}

/// Serialises the patterns as the list written in a schedule.
pub(crate) fn serialize_patterns<S: serde::Serializer>(
    patterns: &[ParamPattern],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(patterns.iter().map(|p| &p.pattern))
}

/// Which of `paths` (the model's parameter paths) `[train] trainable` selects: one flag per path,
/// all `true` when the schedule names no pattern.
///
/// # Errors
/// A [`ScheduleError`] at the entry's `file:line:col` for a pattern that matches no parameter
/// (with the closest path as a suggestion), and one for a selection that leaves nothing to train.
pub fn resolve_trainable(
    experiment: &Experiment,
    paths: &[String],
) -> Result<Vec<bool>, ScheduleError> {
    let patterns = &experiment.train.trainable;
    if patterns.is_empty() {
        return Ok(vec![true; paths.len()]);
    }
    let error = |span: Range<usize>, message: String| match &experiment.origin {
        Some(origin) if !span.is_empty() => {
            ScheduleError::at(&origin.path, &origin.text, span, "train.trainable", message)
        }
        _ => ScheduleError::new(message),
    };
    for p in patterns {
        if !paths.iter().any(|path| p.matches(path)) {
            let mut message =
                format!("`trainable` entry \"{}\" matches no parameter of the model", p.pattern);
            if let Some(fixed) = closest_pattern(&p.pattern, paths) {
                message.push_str(&format!("; did you mean \"{fixed}\"?"));
            }
            let shown: Vec<&str> = paths.iter().take(8).map(String::as_str).collect();
            let more = paths.len().saturating_sub(shown.len());
            let help = format!(
                "parameter paths look like: {}{}",
                shown.join(", "),
                if more > 0 { format!(" (and {more} more; `framer check` lists them)") } else { String::new() }
            );
            return Err(error(p.span.clone(), message).with_help(help));
        }
    }
    Ok(paths.iter().map(|path| patterns.iter().any(|p| p.matches(path))).collect())
}

/// `pattern` with its literal part replaced by the closest module path prefix (`blokcs.*` →
/// `blocks.*`), when one is near.
fn closest_pattern(pattern: &str, paths: &[String]) -> Option<String> {
    let core = pattern.trim_matches(|c| matches!(c, '*' | '?' | '.'));
    if core.is_empty() || core.contains(['*', '?']) {
        return None;
    }
    let mut prefixes: Vec<&str> = paths
        .iter()
        .flat_map(|p| p.match_indices('.').map(|(i, _)| &p[..i]).chain([p.as_str()]))
        .collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    suggest(core, prefixes).map(|near| pattern.replacen(core, near, 1))
}
