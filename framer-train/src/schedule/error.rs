//! Schedule errors, rendered like compiler diagnostics with `file:line:col`, the key at fault and,
//! for near-miss names, a suggestion.

use std::fmt;
use std::ops::Range;

/// Where in a schedule file an error was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file as the user named it.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The text of the offending line (without its newline).
    pub source_line: String,
    /// How many characters of `source_line` to underline, starting at `column` (at least 1).
    pub width: usize,
}

impl Location {
    /// The location of the byte range `span` of `source` (the first line of the span is shown).
    pub fn from_span(path: &str, source: &str, span: Range<usize>) -> Self {
        let start = floor_char_boundary(source, span.start.min(source.len()));
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let source_line = source[line_start..line_end]
            .trim_end_matches('\r')
            .to_string();
        let line = source[..start].matches('\n').count() + 1;
        let column = source[line_start..start].chars().count() + 1;
        let end = floor_char_boundary(source, span.end.clamp(start, line_end));
        let width = source[start..end].chars().count().max(1);
        Self {
            path: path.to_string(),
            line,
            column,
            source_line,
            width,
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Why a schedule was rejected.
///
/// `Display` renders a diagnostic in the style of `rustc`:
///
/// ```text
/// error: unknown key `lamda` in [framer]; did you mean `lambda`?
///  --> run.toml:12:1
///    |
/// 12 | lamda = 0.1
///    | ^^^^^
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError {
    /// What is wrong, naming the key and table.
    pub message: String,
    /// The dotted key at fault (`framer.lambda`, `schedule.phase[1].start`), when one is known.
    pub key: Option<String>,
    /// The position in the file, when the error is about the file's content.
    pub location: Option<Box<Location>>,
    /// An extra line of advice (valid values, the closest known key).
    pub help: Option<String>,
}

impl ScheduleError {
    /// An error without a position (e.g. the file cannot be read).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            key: None,
            location: None,
            help: None,
        }
    }

    /// An error about `key` at the byte range `span` of `source`.
    pub fn at(
        path: &str,
        source: &str,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            message: message.into(),
            key: Some(key.into()),
            location: Some(Box::new(Location::from_span(path, source, span))),
            help: None,
        }
    }

    /// Adds a line of advice.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(loc) = &self.location {
            let gutter = loc.line.to_string().len();
            let pad = " ".repeat(gutter);
            write!(f, "\n{pad}--> {}:{}:{}", loc.path, loc.line, loc.column)?;
            write!(f, "\n{pad} |")?;
            write!(f, "\n{} | {}", loc.line, loc.source_line)?;
            let indent: String = loc
                .source_line
                .chars()
                .take(loc.column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n{pad} | {indent}{}", "^".repeat(loc.width))?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScheduleError {}

/// The known name closest to `name`, if it is a near miss: at most a third of the name's length
/// edits away (and at least one edit allowed), ties going to the first candidate. Edits are
/// counted by `strsim`'s optimal-string-alignment distance (insertions, deletions, substitutions
/// and swaps of two adjacent characters cost 1), ignoring case.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_count_swaps_as_one_edit() {
        // "dti" is one swap from "dit" (OSA distance 1), two edits for plain Levenshtein
        assert_eq!(strsim::osa_distance("dti", "dit"), 1);
        assert_eq!(suggest("dti", ["dit", "unet"]), Some("dit"));
        assert_eq!(strsim::osa_distance("ca", "abc"), 3); // OSA: no edits inside a swapped pair
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        let keys = ["lambda", "temperature", "cutoff", "radius"];
        assert_eq!(suggest("lamda", keys), Some("lambda"));
        assert_eq!(suggest("temprature", keys), Some("temperature"));
        assert_eq!(suggest("Cutoff", keys), Some("cutoff"));
        assert_eq!(suggest("zzz", keys), None);
    }

    #[test]
    fn location_counts_lines_and_columns_from_one() {
        let src = "a = 1\n[framer]\nlamda = 0.1\n";
        let span = src.find("lamda").unwrap()..src.find("lamda").unwrap() + 5;
        let loc = Location::from_span("f.toml", src, span);
        assert_eq!((loc.line, loc.column, loc.width), (3, 1, 5));
        assert_eq!(loc.source_line, "lamda = 0.1");
        let err = ScheduleError::at("f.toml", src, loc_span(src, "0.1"), "framer.lamda", "bad");
        assert_eq!(
            err.to_string(),
            "error: bad\n --> f.toml:3:9\n  |\n3 | lamda = 0.1\n  |         ^^^"
        );
    }

    fn loc_span(src: &str, needle: &str) -> Range<usize> {
        let i = src.find(needle).unwrap();
        i..i + needle.len()
    }
}
