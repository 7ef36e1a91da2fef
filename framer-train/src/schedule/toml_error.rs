//! Turns `toml`/`serde` errors into [`ScheduleError`]s that name the table and key and suggest
//! near-miss names. The error's position is the parser's own ([`toml::de::Error::span`]); the
//! table and key around it come from the parsed document ([`Spans`]).

use super::error::{ScheduleError, suggest};
use super::spans::Spans;

/// `[framer]`, `[[schedule.phase]] #2`, or `the top level`.
pub(crate) fn describe_table(table: &(String, Option<usize>)) -> String {
    match table {
        (name, _) if name.is_empty() => "the top level".to_string(),
        (name, Some(n)) => format!("[[{name}]] #{n}"),
        (name, None) => format!("[{name}]"),
    }
}

/// The dotted key prefix of a table (`framer.`, `schedule.phase[1].`, or empty).
pub(crate) fn key_prefix(table: &(String, Option<usize>)) -> String {
    match table {
        (name, _) if name.is_empty() => String::new(),
        (name, Some(n)) => format!("{name}[{}].", n - 1),
        (name, None) => format!("{name}."),
    }
}

/// Backquoted names in a serde message: "unknown field `x`, expected one of `a`, `b`".
fn backquoted(message: &str) -> Vec<&str> {
    message.split('`').skip(1).step_by(2).collect()
}

/// Readable names for serde's type words.
fn type_word(expected: &str) -> String {
    match expected.trim() {
        "f64" | "f32" => "a number".into(),
        "i64" | "i32" => "an integer".into(),
        "u64" | "u32" | "usize" => "a non-negative integer".into(),
        "a boolean" | "bool" => "`true` or `false`".into(),
        "a string" | "string" => "a string".into(),
        other => other.to_string(),
    }
}

/// Converts a deserialisation error of the schedule at `path` (text `source`).
pub(crate) fn convert(path: &str, source: &str, err: &toml::de::Error) -> ScheduleError {
    let raw = err.message().trim();
    let span = err.span().unwrap_or(0..0);
    let spans = Spans::parse_around(source, span.clone());
    let (table, on_header) = spans.table_at(span.start);
    let where_ = describe_table(&table);
    let prefix = key_prefix(&table);
    let at =
        |key: String, message: String| ScheduleError::at(path, source, span.clone(), key, message);

    if let Some(rest) = raw.strip_prefix("unknown field ") {
        let names = backquoted(rest);
        let (name, expected) = names.split_first().map_or(("?", &[][..]), |(n, e)| (*n, e));
        let suggestion = suggest(name, expected.iter().copied());
        // an unknown table: the key sits in a `[header]` line and belongs to the parent table
        if on_header {
            // the unknown key is the header's component at the span: its parent is what the
            // header names before it (`[framer.extra.deep]` with `extra` unknown: `framer`)
            let path: Vec<&str> = table.0.split('.').collect();
            let parent = path[..path.iter().position(|p| *p == name).unwrap_or(0)].join(".");
            let full = if parent.is_empty() {
                name.to_string()
            } else {
                format!("{parent}.{name}")
            };
            let mut message = format!("unknown table [{full}]");
            if let Some(s) = suggestion {
                let s = if parent.is_empty() {
                    s.to_string()
                } else {
                    format!("{parent}.{s}")
                };
                message.push_str(&format!("; did you mean [{s}]?"));
            }
            let known = expected
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return at(full, message).with_help(format!("known tables and keys here: {known}"));
        }
        let mut message = format!("unknown key `{name}` in {where_}");
        if let Some(s) = suggestion {
            message.push_str(&format!("; did you mean `{s}`?"));
        }
        let known = expected
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let err = at(format!("{prefix}{name}"), message);
        return if known.is_empty() {
            err
        } else {
            err.with_help(format!("known keys: {known}"))
        };
    }
    if let Some(rest) = raw.strip_prefix("unknown variant ") {
        let names = backquoted(rest);
        let (name, expected) = names.split_first().map_or(("?", &[][..]), |(n, e)| (*n, e));
        let key = spans.key_at(span.start).unwrap_or_default();
        let mut message = format!("unknown value \"{name}\" for `{key}` in {where_}");
        if let Some(s) = suggest(name, expected.iter().copied()) {
            message.push_str(&format!("; did you mean \"{s}\"?"));
        }
        let known = expected
            .iter()
            .map(|k| format!("\"{k}\""))
            .collect::<Vec<_>>()
            .join(", ");
        return at(format!("{prefix}{key}"), message).with_help(format!("expected one of {known}"));
    }
    if let Some(rest) = raw.strip_prefix("missing field ") {
        let name = backquoted(rest).first().copied().unwrap_or("?").to_string();
        // a missing table at the top level, or a missing key inside a table
        let (key, message) = if table.0.is_empty() && matches!(name.as_str(), "model" | "train") {
            (name.clone(), format!("missing table [{name}]"))
        } else {
            (
                format!("{prefix}{name}"),
                format!("missing key `{name}` in {where_}"),
            )
        };
        return at(key, message);
    }
    if let Some(rest) = raw.strip_prefix("invalid type: ") {
        let key = spans.key_at(span.start).unwrap_or_default();
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, "?"));
        return at(
            format!("{prefix}{key}"),
            format!(
                "wrong type for `{key}` in {where_}: expected {}, found {found}",
                type_word(expected)
            ),
        );
    }
    if let Some(rest) = raw.strip_prefix("invalid value: ") {
        let key = spans.key_at(span.start).unwrap_or_default();
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, "?"));
        return at(
            format!("{prefix}{key}"),
            format!(
                "invalid value for `{key}` in {where_}: expected {}, found {found}",
                type_word(expected)
            ),
        );
    }
    if let Some(rest) = raw.strip_prefix("duplicate field ") {
        let name = backquoted(rest).first().copied().unwrap_or("?").to_string();
        return at(
            format!("{prefix}{name}"),
            format!(
                "`{name}` is set twice in {where_} (an official alias and its name count as the same key)"
            ),
        );
    }
    if raw.starts_with("number too large") || raw.starts_with("number too small") {
        let key = spans.key_at(span.start).unwrap_or_default();
        return at(
            format!("{prefix}{key}"),
            format!(
                "`{key}` in {where_} is out of range: TOML integers are 64-bit signed \
                 ({} to {})",
                i64::MIN,
                i64::MAX
            ),
        );
    }
    // TOML syntax errors and anything else: keep the parser's words on one line
    let message = raw
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    ScheduleError::at(
        path,
        source,
        span,
        prefix.trim_end_matches('.'),
        format!("invalid TOML: {message}"),
    )
}
