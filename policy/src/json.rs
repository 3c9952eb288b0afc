//! The fast path for large tables: a policy file written as JSON (a subset of YAML, so the same
//! file is valid either way) is read by this hand-written parser into the same located tree the
//! YAML path builds, and validated by the same code.
//!
//! Why: serde-saphyr reads YAML at a few MB/s, so a 1,000,000-host file (65 MB as YAML) takes
//! tens of seconds to load, while this reads JSON at hundreds of MB/s. Small, hand-edited files
//! stay YAML; generated bulk tables (and fleet bundles) can be JSON.
//!
//! Strict RFC 8259: no comments, no trailing commas, no NaN; duplicate keys are passed through
//! (validation reports them, as for YAML); nesting is capped like the YAML budget.

use std::borrow::Cow;

use crate::parse::{Node, Value};

/// Nesting deeper than this is refused (the YAML budget's default depth).
const MAX_DEPTH: u32 = 64;

/// A JSON syntax error and the 1-based line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonError {
    pub(crate) line: u32,
    pub(crate) message: String,
}

/// Whether the text looks like JSON (its first significant byte opens an object).
pub(crate) fn looks_like_json(text: &str) -> bool {
    text.trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('{')
}

/// Parses one JSON document.
pub(crate) fn parse_json(text: &str) -> Result<Node<'_>, JsonError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut p = Parser {
        text,
        b: text.as_bytes(),
        i: 0,
        line: 1,
    };
    let node = p.value(0)?;
    p.ws();
    if p.i < p.b.len() {
        return Err(p.err("unexpected text after the document"));
    }
    Ok(node)
}

struct Parser<'a> {
    /// The document; `b` is its bytes.
    text: &'a str,
    b: &'a [u8],
    i: usize,
    line: u32,
}

impl<'a> Parser<'a> {
    fn err(&self, message: &str) -> JsonError {
        JsonError {
            line: self.line,
            message: message.to_owned(),
        }
    }

    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' => {}
                _ => return,
            }
            self.i += 1;
        }
    }

    fn value(&mut self, depth: u32) -> Result<Node<'a>, JsonError> {
        crate::pause::point();
        self.ws();
        let line = self.line;
        let value = match self.b.get(self.i) {
            None => return Err(self.err("unexpected end of input")),
            Some(b'{') => self.object(depth + 1)?,
            Some(b'[') => self.array(depth + 1)?,
            Some(b'"') => Value::Str(self.string()?),
            Some(b't') => self.literal("true", Value::Bool(true))?,
            Some(b'f') => self.literal("false", Value::Bool(false))?,
            Some(b'n') => self.literal("null", Value::Null)?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(_) => return Err(self.err("expected a value")),
        };
        Ok(Node { line, value })
    }

    fn literal(&mut self, word: &str, value: Value<'a>) -> Result<Value<'a>, JsonError> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(value)
        } else {
            Err(self.err("expected a value"))
        }
    }

    fn object(&mut self, depth: u32) -> Result<Value<'a>, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.i += 1; // '{'
        let mut pairs = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Value::Map(pairs));
        }
        loop {
            self.ws();
            let line = self.line;
            if self.b.get(self.i) != Some(&b'"') {
                return Err(self.err("expected a string key"));
            }
            let key = Node {
                line,
                value: Value::Str(self.string()?),
            };
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return Err(self.err("expected ':' after a key"));
            }
            self.i += 1;
            let value = self.value(depth)?;
            pairs.push((key, value));
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Value::Map(pairs));
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: u32) -> Result<Value<'a>, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.i += 1; // '['
        let mut items = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Value::Seq(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::Seq(items));
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.i += 1; // '"'
        let start = self.i;
        // Fast path: no escapes.
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b'"' => {
                    let s = self.slice(start, self.i)?;
                    self.i += 1;
                    return Ok(Cow::Borrowed(s));
                }
                b'\\' => break,
                0..=0x1f => return Err(self.err("control character in a string")),
                _ => self.i += 1,
            }
        }
        let mut out = self.slice(start, self.i)?.to_owned();
        loop {
            match self.b.get(self.i) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = match self.b.get(self.i) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.i += 1;
                            let c = self.unicode_escape()?;
                            out.push(c);
                            continue;
                        }
                        _ => return Err(self.err("invalid escape in a string")),
                    };
                    self.i += 1;
                    out.push(c);
                }
                Some(0..=0x1f) => return Err(self.err("control character in a string")),
                Some(_) => {
                    let start = self.i;
                    while let Some(&c) = self.b.get(self.i) {
                        if c == b'"' || c == b'\\' || c < 0x20 {
                            break;
                        }
                        self.i += 1;
                    }
                    out.push_str(self.slice(start, self.i)?);
                }
            }
        }
    }

    /// The text between two byte offsets that sit on character boundaries (ASCII delimiters
    /// of valid UTF-8 input; the text is a `str`, so only the boundaries are checked).
    fn slice(&self, start: usize, end: usize) -> Result<&'a str, JsonError> {
        self.text
            .get(start..end)
            .ok_or_else(|| self.err("invalid UTF-8 in a string"))
    }

    /// `XXXX` after `\u`, with a following `\uXXXX` low surrogate when needed.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if !self.b[self.i..].starts_with(b"\\u") {
                return Err(self.err("unpaired surrogate in a \\u escape"));
            }
            self.i += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(self.err("unpaired surrogate in a \\u escape"));
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).ok_or_else(|| self.err("invalid \\u escape"))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .b
            .get(self.i..self.i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or_else(|| self.err("invalid \\u escape"))?;
        self.i += 4;
        Ok(digits)
    }

    fn number(&mut self) -> Result<Value<'a>, JsonError> {
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.i;
            while p.b.get(p.i).is_some_and(u8::is_ascii_digit) {
                p.i += 1;
            }
            p.i > s
        };
        let int_start = self.i;
        if !digits(self) {
            return Err(self.err("invalid number"));
        }
        if self.i - int_start > 1 && self.b[int_start] == b'0' {
            return Err(self.err("invalid number (leading zero)"));
        }
        let mut float = false;
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            float = true;
            if !digits(self) {
                return Err(self.err("invalid number"));
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            float = true;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return Err(self.err("invalid number"));
            }
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).unwrap_or("");
        if float {
            text.parse::<f64>()
                .map(Value::Float)
                .map_err(|_| self.err("invalid number"))
        } else {
            text.parse::<i128>()
                .map(Value::Int)
                .map_err(|_| self.err("number out of range"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Value<'_> {
        parse_json(text).map(|n| n.value).unwrap()
    }

    #[test]
    fn values_and_lines() {
        let n = parse_json("{\n  \"a\": [1, -2, 3.5, true, null],\n  \"b\": \"x\\u00e9\\n\"\n}")
            .unwrap();
        let Value::Map(pairs) = n.value else {
            panic!("not a map")
        };
        assert_eq!(pairs[0].0.line, 2);
        assert_eq!(
            pairs[0].1.value,
            Value::Seq(vec![
                Node {
                    line: 2,
                    value: Value::Int(1)
                },
                Node {
                    line: 2,
                    value: Value::Int(-2)
                },
                Node {
                    line: 2,
                    value: Value::Float(3.5)
                },
                Node {
                    line: 2,
                    value: Value::Bool(true)
                },
                Node {
                    line: 2,
                    value: Value::Null
                },
            ])
        );
        assert_eq!(pairs[1].0.line, 3);
        assert_eq!(pairs[1].1.value, Value::Str("xé\n".into()));
        assert_eq!(v("\"\\ud83d\\ude00\""), Value::Str("😀".into()));
        assert_eq!(v("0"), Value::Int(0));
        assert_eq!(v("-0"), Value::Int(0));
    }

    #[test]
    fn duplicate_keys_pass_through() {
        let Value::Map(pairs) = v("{\"a\":1,\"a\":2}") else {
            panic!("not a map")
        };
        assert_eq!(pairs.len(), 2);
    }

    #[test]
    fn errors_name_their_line() {
        for (text, line) in [
            ("{\n\"a\": 1,\n}", 3),
            ("{\"a\" 1}", 1),
            ("{\"a\": [1 2]}", 1),
            ("{\"a\": \"x\ny\"}", 1),
            ("{\"a\": 01}", 1),
            ("{\"a\": tru}", 1),
            ("{\"a\": 1} x", 1),
            ("{\n\n\"a\": \"\\q\"}", 3),
            ("{\"a\": \"\\ud800\"}", 1),
            ("{", 1),
        ] {
            let e = parse_json(text).expect_err(text);
            assert_eq!(e.line, line, "{text}: {e:?}");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse_json(&format!("{{\"a\": {deep}}}")).is_err());
    }

    #[test]
    fn detection() {
        assert!(looks_like_json("\u{feff}  \n{\"serial\": 1}"));
        assert!(!looks_like_json("serial: 1"));
        assert!(!looks_like_json("# comment\n{a: 1}"));
    }
}
