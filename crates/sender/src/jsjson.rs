//! JSON printed the way JavaScript prints it: [`normalize`] returns exactly the bytes of
//! `JSON.stringify(JSON.parse(text))`, for verifiers that HMAC a re-serialised body (Huddle01's and
//! Cortex's Node snippets) rather than the bytes they received.
//!
//! What JavaScript does that a plain JSON printer does not:
//! - Numbers are doubles: parsed with correct rounding (so integers past 2^53 lose digits and
//!   `1e400` is `Infinity`), printed by ECMAScript's `Number::toString` (shortest round trip,
//!   `1e+21`, `-0` as `0`; `ryu-js` implements it); non-finite numbers print `null`.
//! - Object members: keys that are array indices (`"0"` ..= `"4294967294"` in canonical form)
//!   come first in ascending numeric order, then the others in insertion order; a duplicate key
//!   keeps its first position and takes the last value.
//! - Strings are UTF-16: escapes are `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u00xx` for other
//!   controls and `\udxxx` for lone surrogates (lower-case hex); everything else is literal.

use std::collections::HashMap;

/// Deeper input is refused rather than risking the stack: parsing, printing and dropping recurse
/// once per level (about 1-2 KiB of stack each in a debug build, far less optimised), so 256
/// levels stay well inside a tokio worker's 2 MiB. Ingest refuses events nested deeper than
/// `[server] max_json_depth`, which the config keeps below this (the envelope adds a level).
pub const MAX_DEPTH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not JSON at byte {0}")]
pub struct ParseError(pub usize);

/// A JavaScript string: UTF-16 code units, which may hold lone surrogates.
type JsString = Vec<u16>;

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(JsString),
    Array(Vec<Value>),
    Object(Vec<(JsString, Value)>),
}

/// `JSON.stringify(JSON.parse(text))`.
pub fn normalize(text: &[u8]) -> Result<Vec<u8>, ParseError> {
    let mut p = Parser { s: text, i: 0 };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != text.len() {
        return Err(ParseError(p.i));
    }
    let mut out = Vec::with_capacity(text.len());
    write_value(&mut out, &v);
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn err<T>(&self) -> Result<T, ParseError> {
        Err(ParseError(self.i))
    }

    fn eat(&mut self, lit: &[u8]) -> Result<(), ParseError> {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            self.err()
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return self.err();
        }
        match self.s.get(self.i) {
            Some(b'n') => self.eat(b"null").map(|_| Value::Null),
            Some(b't') => self.eat(b"true").map(|_| Value::Bool(true)),
            Some(b'f') => self.eat(b"false").map(|_| Value::Bool(false)),
            Some(b'"') => self.string().map(Value::String),
            Some(b'[') => self.array(depth),
            Some(b'{') => self.object(depth),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.err(),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.s.get(self.i), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.i;
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.s.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.err(),
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return self.err();
            }
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return self.err();
            }
        }
        // The JSON number grammar is a subset of Rust's, whose parse rounds correctly.
        let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|_| ParseError(start))?;
        text.parse::<f64>()
            .map(Value::Number)
            .map_err(|_| ParseError(start))
    }

    fn hex4(&mut self) -> Result<u16, ParseError> {
        let h = self.s.get(self.i..self.i + 4).ok_or(ParseError(self.i))?;
        let h = std::str::from_utf8(h).map_err(|_| ParseError(self.i))?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.err();
        }
        let v = u16::from_str_radix(h, 16).map_err(|_| ParseError(self.i))?;
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<JsString, ParseError> {
        self.i += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            // Copy the run of plain characters at once.
            let start = self.i;
            while matches!(self.s.get(self.i), Some(&b) if b != b'"' && b != b'\\' && b >= 0x20) {
                self.i += 1;
            }
            let run = std::str::from_utf8(&self.s[start..self.i]).map_err(|_| ParseError(start))?;
            out.extend(run.encode_utf16());
            match self.s.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = *self.s.get(self.i).ok_or(ParseError(self.i))?;
                    self.i += 1;
                    out.push(match c {
                        b'"' => 0x22,
                        b'\\' => 0x5c,
                        b'/' => 0x2f,
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => 0x0a,
                        b'r' => 0x0d,
                        b't' => 0x09,
                        b'u' => self.hex4()?,
                        _ => return Err(ParseError(self.i - 1)),
                    });
                }
                // A raw control character or the end of input.
                _ => return self.err(),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth + 1)?);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                _ => return self.err(),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.i += 1;
        let mut members: Vec<(JsString, Value)> = Vec::new();
        let mut index: HashMap<JsString, usize> = HashMap::new();
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return self.err();
            }
            let key = self.string()?;
            self.ws();
            self.eat(b":")?;
            self.ws();
            let value = self.value(depth + 1)?;
            // JSON.parse defines each member in turn: a repeated key keeps its slot.
            match index.get(&key) {
                Some(&at) => members[at].1 = value,
                None => {
                    index.insert(key.clone(), members.len());
                    members.push((key, value));
                }
            }
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Value::Object(members));
                }
                _ => return self.err(),
            }
        }
    }
}

/// The array index a key names, if it names one: canonical decimal, at most 2^32 - 2.
fn array_index(key: &[u16]) -> Option<u32> {
    if key.is_empty() || key.len() > 10 || (key.len() > 1 && key[0] == u16::from(b'0')) {
        return None;
    }
    let mut n: u64 = 0;
    for &c in key {
        let d = c.checked_sub(u16::from(b'0')).filter(|d| *d <= 9)?;
        n = n * 10 + u64::from(d);
    }
    (n < u64::from(u32::MAX)).then_some(n as u32)
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, *n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            let mut indexed: Vec<(u32, &(JsString, Value))> = Vec::new();
            let mut named: Vec<&(JsString, Value)> = Vec::new();
            for m in members {
                match array_index(&m.0) {
                    Some(n) => indexed.push((n, m)),
                    None => named.push(m),
                }
            }
            indexed.sort_unstable_by_key(|(n, _)| *n);
            out.push(b'{');
            let ordered = indexed.into_iter().map(|(_, m)| m).chain(named);
            for (i, (k, v)) in ordered.enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, k);
                out.push(b':');
                write_value(out, v);
            }
            out.push(b'}');
        }
    }
}

fn write_number(out: &mut Vec<u8>, n: f64) {
    if !n.is_finite() {
        out.extend_from_slice(b"null");
    } else if n == 0.0 {
        // Both zeros print `0`.
        out.push(b'0');
    } else {
        out.extend_from_slice(ryu_js::Buffer::new().format_finite(n).as_bytes());
    }
}

fn write_string(out: &mut Vec<u8>, s: &[u16]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let escape_unit = |out: &mut Vec<u8>, u: u16| {
        out.extend_from_slice(b"\\u");
        for shift in [12, 8, 4, 0] {
            out.push(HEX[usize::from((u >> shift) & 0xf)]);
        }
    };
    out.push(b'"');
    let mut buf = [0u8; 4];
    for unit in char::decode_utf16(s.iter().copied()) {
        match unit {
            Ok(c) => match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\u{8}' => out.extend_from_slice(b"\\b"),
                '\u{c}' => out.extend_from_slice(b"\\f"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 => escape_unit(out, c as u16),
                c => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
            },
            Err(lone) => escape_unit(out, lone.unpaired_surrogate()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests;
