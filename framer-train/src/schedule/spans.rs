//! Positions in a schedule file, from the TOML parser's own spans (`toml_edit`'s document, which
//! keeps the byte range of every header, key and value).

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, TableLike};

/// A table of the file: its dotted path, its number among the `[[array]]` tables of that path
/// (from 1), and where its header starts and its first key (or its end, when it has none).
struct Header {
    path: Vec<String>,
    index: Option<usize>,
    span: Range<usize>,
}

impl Header {
    /// `table`'s header, when it has one (its parser span runs from the header to its last value).
    fn of(table: &Table, path: &[String], index: Option<usize>) -> Option<Self> {
        let span = table.span()?;
        let body = table
            .iter()
            .filter(|(_, item)| item.is_value())
            .filter_map(|(k, _)| table.key(k)?.span())
            .map(|s| s.start)
            .min();
        Some(Self { path: path.to_vec(), index, span: span.start..body.unwrap_or(span.end) })
    }
}

/// The parsed file, for looking up positions. A file that does not parse has no positions.
pub(crate) struct Spans {
    doc: Option<ImDocument<String>>,
}

impl Spans {
    /// Parses `source` (never fails: a file with a syntax error has no positions).
    pub(crate) fn parse(source: &str) -> Self {
        Self { doc: ImDocument::parse(source.to_string()).ok() }
    }

    /// [`Self::parse`]; when the document does not parse because of the value at `bad` (say, an
    /// integer beyond 64 bits), the document with that value replaced by `0` and spaces (the same
    /// length, so every other span stays where the parser put it).
    pub(crate) fn parse_around(source: &str, bad: Range<usize>) -> Self {
        let spans = Self::parse(source);
        // the whole value token from where the parser points (`18446744073709551616`)
        let token_end = source.get(bad.start..).map_or(bad.end, |rest| {
            bad.start
                + rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.')))
                    .unwrap_or(rest.len())
        });
        let bad = bad.start..token_end.max(bad.end);
        let usable = !bad.is_empty()
            && bad.end <= source.len()
            && source.is_char_boundary(bad.start)
            && source.is_char_boundary(bad.end);
        if spans.doc.is_some() || !usable {
            return spans;
        }
        let mut patched = String::with_capacity(source.len());
        patched.push_str(&source[..bad.start]);
        patched.push('0');
        patched.extend(std::iter::repeat_n(' ', bad.len() - 1));
        patched.push_str(&source[bad.end..]);
        Self::parse(&patched)
    }

    /// The table at `path` (`["framer"]`, `[]` for the top level); `[[array]]` tables by their
    /// first entry.
    fn table(&self, path: &[&str]) -> Option<&dyn TableLike> {
        let mut table: &dyn TableLike = self.doc.as_ref()?.as_table();
        for name in path {
            table = match table.get(name)? {
                Item::Table(t) => t,
                Item::Value(toml_edit::Value::InlineTable(t)) => t,
                Item::ArrayOfTables(a) => a.get(0)?,
                _ => return None,
            };
        }
        Some(table)
    }

    /// The byte range of the key `path.last()` in the table `path[..len - 1]`, if written.
    pub(crate) fn key(&self, path: &[&str]) -> Option<Range<usize>> {
        let (key, table) = path.split_last()?;
        self.table(table)?.get_key_value(key)?.0.span()
    }

    /// The byte range of the value of `path.last()` in the table `path[..len - 1]`, if written.
    pub(crate) fn value(&self, path: &[&str]) -> Option<Range<usize>> {
        let (key, table) = path.split_last()?;
        self.table(table)?.get(key)?.span()
    }

    /// Every table with a header, in no particular order.
    fn headers(&self) -> Vec<Header> {
        fn walk(table: &Table, path: &mut Vec<String>, out: &mut Vec<Header>) {
            for (key, item) in table.iter() {
                path.push(key.to_string());
                match item {
                    Item::Table(t) => {
                        out.extend(Header::of(t, path, None));
                        walk(t, path, out);
                    }
                    Item::ArrayOfTables(a) => {
                        for (i, t) in a.iter().enumerate() {
                            out.extend(Header::of(t, path, Some(i + 1)));
                            walk(t, path, out);
                        }
                    }
                    _ => {}
                }
                path.pop();
            }
        }
        let mut out = Vec::new();
        if let Some(doc) = &self.doc {
            walk(doc.as_table(), &mut Vec::new(), &mut out);
        }
        out
    }

    /// The table whose header comes last before byte `offset`: `("framer", None)` for
    /// `[framer]`, `("schedule.phase", Some(2))` for the second `[[schedule.phase]]`, `("", None)`
    /// at the top level; and whether `offset` lies in that header (before the table's first key).
    pub(crate) fn table_at(&self, offset: usize) -> ((String, Option<usize>), bool) {
        self.headers()
            .into_iter()
            .filter(|h| h.span.start <= offset)
            .max_by_key(|h| h.span.start)
            .map_or(((String::new(), None), false), |h| {
                ((h.path.join("."), h.index), h.span.contains(&offset))
            })
    }

    /// The key whose value holds byte `offset` (the innermost, for inline tables and arrays).
    pub(crate) fn key_at(&self, offset: usize) -> Option<String> {
        fn find(table: &dyn TableLike, offset: usize) -> Option<String> {
            for (key, item) in table.iter() {
                let inner = match item {
                    Item::Table(t) => find(t, offset),
                    Item::ArrayOfTables(a) => a.iter().find_map(|t| find(t, offset)),
                    Item::Value(toml_edit::Value::InlineTable(t)) => find(t, offset),
                    _ => None,
                };
                if inner.is_some() {
                    return inner;
                }
                if let Item::Value(v) = item
                    && v.span().is_some_and(|s| s.contains(&offset))
                {
                    return Some(key.to_string());
                }
            }
            None
        }
        find(self.doc.as_ref()?.as_table(), offset)
    }
}
