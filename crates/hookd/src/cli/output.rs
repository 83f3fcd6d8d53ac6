//! Text for people: aligned [`Table`]s, [`Fields`] lists and indented blocks, built from the
//! API's JSON values.
//!
//! Everything shown may come from outside (event data, a receiver's response body, header
//! values): control characters and bidirectional overrides are printed escaped (`\u{1b}`), so
//! no answer can move the cursor, recolour or rewrite the operator's terminal.

use serde_json::Value;

/// Columns separated by two spaces, each as wide as its widest cell.
#[derive(Debug)]
pub struct Table {
    head: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(head: &[&'static str]) -> Table {
        Table {
            head: head.to_vec(),
            rows: Vec::new(),
        }
    }

    /// A row of already rendered cells (see [`cell`]); missing cells are blank.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.head.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, c) in row.iter().enumerate().take(widths.len()) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        let head: Vec<String> = self.head.iter().map(|h| (*h).to_owned()).collect();
        push_row(&mut out, &head, &widths);
        for row in &self.rows {
            push_row(&mut out, row, &widths);
        }
        if self.rows.is_empty() {
            out.push_str("(none)\n");
        }
        out
    }
}

fn push_row(out: &mut String, cells: &[String], widths: &[usize]) {
    let mut line = String::new();
    for (i, w) in widths.iter().enumerate() {
        let c = cells.get(i).map(String::as_str).unwrap_or("");
        line.push_str(c);
        if i + 1 < widths.len() {
            line.extend(std::iter::repeat_n(' ', w - c.chars().count() + 2));
        }
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// `label  value` lines with the values aligned.
#[derive(Debug, Default)]
pub struct Fields {
    rows: Vec<(String, String)>,
}

impl Fields {
    pub fn new() -> Fields {
        Fields::default()
    }

    /// A line with an already rendered value.
    pub fn text(mut self, label: &str, value: impl Into<String>) -> Fields {
        self.rows.push((label.to_owned(), value.into()));
        self
    }

    /// A line showing `value` with [`cell`].
    pub fn value(self, label: &str, value: &Value) -> Fields {
        self.text(label, cell(value))
    }

    pub fn render(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (label, value) in &self.rows {
            let line = format!("{label:<width$}  {value}");
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A JSON value as one line: `-` for null, absent or empty, strings without quotes, a list of strings
/// joined by `, `, anything else as compact JSON; escaped (see [`one_line`]).
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => one_line(s),
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let parts: Vec<String> = items.iter().map(cell).collect();
            if parts.is_empty() {
                "-".to_owned()
            } else {
                parts.join(", ")
            }
        }
        other => one_line(&other.to_string()),
    }
}

/// `s` with every control character (newlines and tabs too) and bidirectional control escaped.
pub fn one_line(s: &str) -> String {
    escape(s, false)
}

/// `s` on lines of its own, each indented by `indent` spaces; control characters other than
/// newline and tab escaped. Nothing at all gives one `(empty)` line.
pub fn block(s: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    if s.is_empty() {
        return format!("{pad}(empty)\n");
    }
    let mut out = String::new();
    for line in escape(s, true).lines() {
        out.push_str(format!("{pad}{line}").trim_end());
        out.push('\n');
    }
    out
}

fn escape(s: &str, keep_lines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let keep = keep_lines && (c == '\n' || c == '\t');
        if !keep && (c.is_control() || is_bidi_control(c)) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The `next_cursor` of a list, as the flag that fetches the next page.
pub fn next_page(list: &Value) -> String {
    match list["next_cursor"].as_str() {
        Some(c) => format!("next page: --cursor {}\n", one_line(c)),
        None => String::new(),
    }
}

/// The `data` array of a list answer.
pub fn items(list: &Value) -> &[Value] {
    list["data"].as_array().map(Vec::as_slice).unwrap_or(&[])
}
