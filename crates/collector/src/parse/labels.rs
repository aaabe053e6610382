//! Label sets: validated once by [`scan`], then read lazily by [`Labels`].

use std::borrow::Cow;

use super::Reason;
use super::line::{is_ws, quote};

/// The labels of one sample, validated by the parser; values are unescaped on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Labels<'a> {
    /// The text between the braces, valid UTF-8 and well formed; empty when there are no
    /// labels.
    raw: &'a str,
}

impl<'a> Labels<'a> {
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// `(name, value)` in the order written, values unescaped (`\\`, `\"`, `\n`). A value
    /// is borrowed unless it holds an escape.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Cow<'a, str>)> + 'a {
        self.raw_pairs()
            .map(|(name, value)| (name, unescape(value)))
    }

    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.raw_pairs()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| unescape(v))
    }

    /// `(name, value)` with values as written between the quotes.
    pub(super) fn raw_pairs(&self) -> RawPairs<'a> {
        RawPairs { rest: self.raw }
    }

    /// Whether `self` and `other` hold the same labels in the same order, ignoring `except`.
    pub(super) fn same_except(&self, other: &Labels<'_>, except: &str) -> bool {
        let mut a = self.raw_pairs().filter(|(k, _)| *k != except);
        let mut b = other.raw_pairs().filter(|(k, _)| *k != except);
        loop {
            match (a.next(), b.next()) {
                (None, None) => return true,
                (Some(x), Some(y)) if x == y => {}
                _ => return false,
            }
        }
    }

    /// Length of names and unescaped values in characters (OpenMetrics' exemplar limit).
    pub(super) fn chars(&self) -> usize {
        self.raw_pairs()
            .map(|(k, v)| k.len() + unescaped_chars(v))
            .sum()
    }
}

/// Walks a validated label text.
#[derive(Debug, Clone)]
pub(super) struct RawPairs<'a> {
    rest: &'a str,
}

impl<'a> Iterator for RawPairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        // The text is validated: `name ws* = ws* "value"`, separated by commas and whitespace.
        let s = self.rest.as_bytes();
        let start = skip(s, 0, |b| is_ws(b) || b == b',');
        let end = skip(s, start, is_name_char);
        let open = skip(s, end, |b| is_ws(b) || b == b'=');
        let value = open + 1;
        let close = value + closing_quote(s.get(value..)?)?;
        let pair = (self.rest.get(start..end)?, self.rest.get(value..close)?);
        self.rest = self.rest.get(close + 1..)?;
        Some(pair)
    }
}

/// Index of the quote that ends a label value starting at `s`.
fn closing_quote(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match b {
            b'"' => return Some(i),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// Resolves `\\`, `\"` and `\n`; any other backslash is kept as written, as Prometheus does.
pub(super) fn unescape(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

fn unescaped_chars(raw: &str) -> usize {
    let mut n = 0;
    let mut escaped = false;
    for c in raw.chars() {
        if escaped {
            escaped = false;
            if matches!(c, '\\' | '"' | 'n') {
                continue;
            }
        } else if c == '\\' {
            escaped = true;
        }
        n += 1;
    }
    n
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Validates a label set; `s` starts just after `{`. Returns the labels and what follows the
/// closing `}`. `names` is scratch space for the duplicate check.
pub(super) fn scan<'a>(
    s: &'a [u8],
    names: &mut Vec<&'a [u8]>,
) -> Result<(Labels<'a>, &'a [u8]), Reason> {
    names.clear();
    let mut i = 0;
    let end = loop {
        i = skip_ws(s, i);
        match s.get(i) {
            None => return Err("unterminated label set: missing '}'".into()),
            Some(b'}') => break i,
            Some(_) => {}
        }
        let start = i;
        while s.get(i).copied().is_some_and(is_name_char) {
            i += 1;
        }
        let name = s.get(start..i).unwrap_or_default();
        match name.first() {
            None => {
                let found = s.get(i..i + 1).unwrap_or_default();
                return Err(format!("expected a label name, found {}", quote(found)).into());
            }
            Some(b) if b.is_ascii_digit() => {
                return Err(format!("invalid label name {}", quote(name)).into());
            }
            Some(_) => {}
        }
        i = skip_ws(s, i);
        if s.get(i) != Some(&b'=') {
            return Err(format!("expected '=' after label name {}", quote(name)).into());
        }
        i = skip_ws(s, i + 1);
        if s.get(i) != Some(&b'"') {
            let name = quote(name);
            return Err(format!("expected '\"' to start the value of label {name}").into());
        }
        i += 1;
        i += closing_quote(s.get(i..).unwrap_or_default())
            .ok_or_else(|| format!("unterminated label value of {}", quote(name)))?;
        names.push(name);
        i = skip_ws(s, i + 1);
        match s.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => break i,
            None => return Err("unterminated label set: missing '}'".into()),
            Some(_) => {
                let name = quote(name);
                return Err(format!("expected ',' or '}}' after the value of label {name}").into());
            }
        }
    };
    if let Some(dup) = duplicate(names) {
        return Err(format!("duplicate label name {}", quote(dup)).into());
    }
    let raw: &[u8] = if names.is_empty() {
        b""
    } else {
        s.get(..end).unwrap_or_default()
    };
    let raw = std::str::from_utf8(raw).map_err(|_| "invalid UTF-8 in label value")?;
    Ok((Labels { raw }, s.get(end + 1..).unwrap_or_default()))
}

fn skip_ws(s: &[u8], i: usize) -> usize {
    skip(s, i, is_ws)
}

/// The first index from `i` on whose byte is not `what`.
fn skip(s: &[u8], mut i: usize, what: impl Fn(u8) -> bool) -> usize {
    while s.get(i).copied().is_some_and(&what) {
        i += 1;
    }
    i
}

/// The first name that occurs twice. Sorts `names` when there are many.
fn duplicate<'a>(names: &mut [&'a [u8]]) -> Option<&'a [u8]> {
    if names.len() <= 16 {
        let mut seen = names.iter().enumerate();
        return seen.find_map(|(i, a)| names.get(..i)?.contains(a).then_some(*a));
    }
    names.sort_unstable();
    names.windows(2).find_map(|w| match w {
        [a, b] if a == b => Some(*a),
        _ => None,
    })
}

/// `s` as text; callers pass ASCII they have checked.
pub(super) fn ascii(s: &[u8]) -> &str {
    std::str::from_utf8(s).unwrap_or_default()
}
