//! Just enough of Structured Field Values (RFC 8941) to read a Dictionary, the type of
//! `CDN-Cache-Control` (RFC 9213 §2.1). Parameters are parsed (so they are validated) and
//! dropped; only the item types a cache directive can take are kept apart.

/// The value of one dictionary member, reduced to what cache directives need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Item {
    Integer(i64),
    String(String),
    Boolean(bool),
    /// Decimal, Token, Byte Sequence or Inner List: no cache directive takes one.
    Other,
}

/// Parses a Dictionary (RFC 8941 §4.2.2). A key given twice keeps its last value. `Err` on any
/// syntax error: RFC 9213 §2.1 then has the whole field ignored.
pub(super) fn parse_dictionary(input: &str) -> Result<Vec<(String, Item)>, ()> {
    let mut p = Parser {
        s: input.as_bytes(),
        i: 0,
    };
    let mut out: Vec<(String, Item)> = Vec::new();
    p.skip_sp();
    while !p.eof() {
        let key = p.key()?;
        let item = if p.eat(b'=') {
            p.item_or_inner_list()?
        } else {
            p.parameters()?;
            Item::Boolean(true)
        };
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = item,
            None => out.push((key, item)),
        }
        p.skip_ows();
        if p.eof() {
            break;
        }
        if !p.eat(b',') {
            return Err(());
        }
        p.skip_ows();
        if p.eof() {
            return Err(()); // trailing comma
        }
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn eof(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn next(&mut self) -> Result<u8, ()> {
        let c = self.peek().ok_or(())?;
        self.i += 1;
        Ok(c)
    }

    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn key(&mut self) -> Result<String, ()> {
        let start = self.i;
        match self.peek() {
            Some(c) if c.is_ascii_lowercase() || c == b'*' => self.i += 1,
            _ => return Err(()),
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.*".contains(&c) {
                self.i += 1;
            } else {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn item_or_inner_list(&mut self) -> Result<Item, ()> {
        if self.eat(b'(') {
            loop {
                self.skip_sp();
                if self.eat(b')') {
                    self.parameters()?;
                    return Ok(Item::Other);
                }
                self.bare_item()?;
                self.parameters()?;
                match self.peek() {
                    Some(b' ' | b')') => {}
                    _ => return Err(()),
                }
            }
        }
        let item = self.bare_item()?;
        self.parameters()?;
        Ok(item)
    }

    fn parameters(&mut self) -> Result<(), ()> {
        while self.eat(b';') {
            self.skip_sp();
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Ok(())
    }

    fn bare_item(&mut self) -> Result<Item, ()> {
        match self.peek().ok_or(())? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string(),
            b'*' | b'A'..=b'Z' | b'a'..=b'z' => {
                self.i += 1;
                while let Some(c) = self.peek() {
                    if is_tchar(c) || c == b':' || c == b'/' {
                        self.i += 1;
                    } else {
                        break;
                    }
                }
                Ok(Item::Other)
            }
            b':' => {
                self.i += 1;
                loop {
                    match self.next()? {
                        b':' => return Ok(Item::Other),
                        c if c.is_ascii_alphanumeric() || b"+/=".contains(&c) => {}
                        _ => return Err(()),
                    }
                }
            }
            b'?' => {
                self.i += 1;
                match self.next()? {
                    b'0' => Ok(Item::Boolean(false)),
                    b'1' => Ok(Item::Boolean(true)),
                    _ => Err(()),
                }
            }
            _ => Err(()),
        }
    }

    /// RFC 8941 §4.2.4: at most 15 integer digits, or 12 + "." + 1 to 3 for a decimal.
    fn number(&mut self) -> Result<Item, ()> {
        let negative = self.eat(b'-');
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let int_digits = self.i - start;
        if int_digits == 0 {
            return Err(());
        }
        if self.eat(b'.') {
            let frac_start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            let frac = self.i - frac_start;
            if int_digits > 12 || frac == 0 || frac > 3 {
                return Err(());
            }
            return Ok(Item::Other);
        }
        if int_digits > 15 {
            return Err(());
        }
        let mut n: i64 = 0;
        for &d in &self.s[start..self.i] {
            n = n * 10 + i64::from(d - b'0');
        }
        Ok(Item::Integer(if negative { -n } else { n }))
    }

    fn string(&mut self) -> Result<Item, ()> {
        self.i += 1; // the opening quote
        let mut out = String::new();
        loop {
            match self.next()? {
                b'\\' => match self.next()? {
                    c @ (b'"' | b'\\') => out.push(char::from(c)),
                    _ => return Err(()),
                },
                b'"' => return Ok(Item::String(out)),
                c @ 0x20..=0x7e => out.push(char::from(c)),
                _ => return Err(()),
            }
        }
    }
}

/// `tchar` of RFC 9110 §5.6.2.
pub(super) fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}
