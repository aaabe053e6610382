//! Label sets: validated once by [`scan`], then read lazily by [`Labels`].

use std::borrow::Cow;
use std::ops::Range;

use super::Reason;
use super::bytes::{ASSIGN, LABEL, SEP, WS, find2, skip};
use super::line::quote;

/// The labels of one sample, validated by the parser; values are unescaped on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Labels<'a> {
    /// The text between the braces, valid UTF-8 and well formed; empty when there are no
    /// labels.
    raw: &'a str,
}

impl<'a> Labels<'a> {
    /// Labels from text the caller has validated as [`scan`] does (the fast path).
    pub(super) fn validated(raw: &'a str) -> Self {
        Labels { raw }
    }

    /// The labels between the braces of a series key: [`crate::key::write_key`] writes them
    /// well formed, and [`crate::key::written_key`] takes text the parser validated.
    pub(crate) fn of_key(raw: &'a str) -> Self {
        Labels { raw }
    }

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
    pub(crate) fn raw_pairs(&self) -> RawPairs<'a> {
        RawPairs { rest: self.raw }
    }

    /// The pair at `at`, found by [`scan`] or the fast path in this label text.
    pub(super) fn pair_at(&self, at: &PairAt) -> Option<Pair<'a>> {
        Some(Pair {
            name: self.raw.get(at.name.clone())?,
            value: self.raw.get(at.value.clone())?,
            around: Around {
                before: self.raw.get(..at.start)?,
                after: self.raw.get(at.value.end + 1..)?,
            },
        })
    }

    /// The pair of label `name`.
    pub(super) fn pair(&self, name: &str) -> Option<Pair<'a>> {
        let mut pairs = self.raw_pairs();
        loop {
            let start = self.raw.len() - pairs.rest.len();
            let (k, value) = pairs.next()?;
            if k == name {
                let end = self.raw.len() - pairs.rest.len();
                let around = Around {
                    before: self.raw.get(..start)?,
                    after: self.raw.get(end..)?,
                };
                return Some(Pair {
                    name: k,
                    value,
                    around,
                });
            }
        }
    }

    /// Whether the two label sets are written the same.
    pub(super) fn same(&self, other: &Labels<'_>) -> bool {
        super::bytes::same(self.raw.as_bytes(), other.raw.as_bytes())
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

/// Where a label pair is in the label text: from the end of the pair before it (or the
/// start), its name, its value between the quotes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PairAt {
    pub start: usize,
    pub name: Range<usize>,
    pub value: Range<usize>,
}

/// One label of a set, as written, and the text around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Pair<'a> {
    pub name: &'a str,
    /// Between the quotes, escapes as written.
    pub value: &'a str,
    pub around: Around<'a>,
}

/// The text of a label set around one of its pairs: from the start to the end of the pair
/// before it, and from the end of the pair to the end. Both pieces are whole pairs, so two
/// label sets whose texts around their `le` are the same hold the same labels but `le`, and
/// a label set whose text is the two pieces joined holds those labels and no `le`. (The
/// converse need not hold: blanks and a trailing comma may differ.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Around<'a> {
    before: &'a str,
    after: &'a str,
}

impl Around<'_> {
    /// Whether `labels` is written exactly as the two pieces joined.
    pub(super) fn joins_to(&self, labels: &Labels<'_>) -> bool {
        let raw = labels.raw;
        raw.len() == self.before.len() + self.after.len()
            && raw.starts_with(self.before)
            && raw.ends_with(self.after)
    }
}

/// Walks a validated label text.
#[derive(Debug, Clone)]
pub(crate) struct RawPairs<'a> {
    rest: &'a str,
}

impl<'a> Iterator for RawPairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        // The text is validated: `name ws* = ws* "value"`, separated by commas and whitespace.
        let s = self.rest.as_bytes();
        let start = skip(s, 0, SEP);
        let end = skip(s, start, LABEL);
        let open = skip(s, end, ASSIGN);
        let value = open + 1;
        let close = value + closing_quote(s.get(value..)?)?;
        let pair = (self.rest.get(start..end)?, self.rest.get(value..close)?);
        self.rest = self.rest.get(close + 1..)?;
        Some(pair)
    }
}

/// Index of the quote that ends a label value starting at `s` (a backslash escapes the byte
/// after it, whatever it is).
pub(super) fn closing_quote(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        i += find2(s.get(i..)?, b'"', b'\\')?;
        match s.get(i) {
            Some(b'"') => return Some(i),
            _ => i += 2,
        }
    }
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
        i = skip(s, i, LABEL);
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
    skip(s, i, WS)
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
