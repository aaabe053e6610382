//! The common lines, read in one pass, as tailscaled and the Prometheus clients write them:
//! `name{a="x",b="y"} value` with no timestamp, no exemplar and no blanks inside the braces,
//! `# HELP name text` and `# TYPE name type`.
//!
//! [`sample`] and [`metadata`] take a subset of what [`line::sample`] and [`line::metadata`]
//! take and read it the same way; for anything else (an error included) they return `None`
//! and the caller asks `line`, which stays the one statement of the grammar and of its error
//! messages. They read a line already known to be UTF-8 and slice every token from it.

use super::MetricType;
use super::bytes::{LABEL, METRIC, NAME_START, WS, find2, is, same, skip, starts_with};
use super::labels::{Labels, PairAt, closing_quote, unescape};
use super::line::{self, Meta, RawSample};

/// More labels than this go to the general path (which sorts to find duplicates).
const MAX_LABELS: usize = 16;

/// `text` as [`line::sample`] would read it, if it is a common sample line. `known` is a
/// metric name the line is likely to start with (the current family's): bytes that match it
/// are not looked at twice.
pub(super) fn sample<'a>(text: &'a str, known: &str) -> Option<RawSample<'a>> {
    let b = text.as_bytes();
    if !b.first().is_some_and(|&c| is(c, NAME_START) || c == b':') {
        return None;
    }
    let from = if starts_with(b, known.as_bytes()) {
        known.len().max(1)
    } else {
        1
    };
    let name_end = skip(b, from, METRIC);
    let mut i = name_end;
    let mut labels = Labels::default();
    match b.get(i) {
        Some(&c) if is(c, WS) => i = skip(b, i, WS),
        Some(b'{') => {}
        _ => return None,
    }
    let mut last = None;
    let mut written = name_end;
    if b.get(i) == Some(&b'{') {
        let start = i + 1;
        let end = label_set(b, start, &mut last)?;
        if last.is_some() {
            labels = Labels::validated(text.get(start..end)?);
        }
        // Not with a blank before the braces, nor for empty braces.
        written = if i == name_end && last.is_some() {
            end + 1
        } else {
            0
        };
        i = skip(b, end + 1, WS);
    }
    let value_end = find2(b.get(i..)?, b' ', b'\t').map_or(b.len(), |n| i + n);
    if value_end == i || skip(b, value_end, WS) != b.len() {
        // No value, or more after it (a timestamp, an exemplar): the general path.
        return None;
    }
    let value_text = text.get(i..value_end)?;
    Some(RawSample {
        name: text.get(..name_end)?,
        labels,
        value_text,
        value: float(value_text)?,
        timestamp: None,
        exemplar: false,
        last,
        written: (written > 0).then(|| text.get(..written)).flatten(),
    })
}

/// `text` as [`line::metadata`] would read it, if it is a HELP or TYPE line with one blank
/// after the keyword. `known` is as for [`sample`].
pub(super) fn metadata<'a>(text: &'a str, known: &str) -> Option<Meta<'a>> {
    let b = text.as_bytes();
    let help = match b.get(..7)? {
        b"# HELP " => true,
        b"# TYPE " => false,
        _ => return None,
    };
    if !b.get(7).is_some_and(|&c| is(c, NAME_START) || c == b':') {
        return None;
    }
    let from = if starts_with(b.get(7..)?, known.as_bytes()) {
        (7 + known.len()).max(8)
    } else {
        8
    };
    let name_end = skip(b, from, METRIC);
    if b.get(name_end).is_some_and(|&c| !is(c, WS)) {
        return None;
    }
    let name = text.get(7..name_end)?;
    let i = skip(b, name_end, WS);
    if help {
        return Some(Meta::Help(name, unescape(text.get(i..)?)));
    }
    let end = skip(b, i, METRIC);
    if end == i || skip(b, end, WS) != b.len() {
        return None;
    }
    Some(Meta::Type(name, MetricType::from_bytes(b.get(i..end)?)?))
}

/// Reads `a="x",b="y"` from `start` (just after `{`) to the closing `}`, whose index it
/// returns, and notes where the last pair is (relative to `start`). A trailing comma is
/// allowed; blanks and repeated names are left to the general path. Allocates nothing.
fn label_set(b: &[u8], start: usize, last: &mut Option<PairAt>) -> Option<usize> {
    let mut names: [&[u8]; MAX_LABELS] = [&[]; MAX_LABELS];
    let mut count = 0;
    let mut i = start;
    let mut pair_start = i;
    loop {
        match b.get(i) {
            Some(b'}') => return Some(i),
            Some(&c) if is(c, NAME_START) => {}
            _ => return None,
        }
        let name_start = i;
        i = skip(b, i + 1, LABEL);
        let name = b.get(name_start..i)?;
        if names.get(..count)?.iter().any(|n| same(n, name)) {
            return None;
        }
        *names.get_mut(count)? = name;
        count += 1;
        if b.get(i..i + 2)? != b"=\"" {
            return None;
        }
        let value_start = i + 2;
        let value_end = value_start + closing_quote(b.get(value_start..)?)?;
        *last = Some(PairAt {
            start: pair_start - start,
            name: name_start - start..name_start - start + name.len(),
            value: value_start - start..value_end - start,
        });
        i = value_end + 1;
        pair_start = i;
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Some(i),
            _ => return None,
        }
    }
}

/// A value: digits alone are converted directly (exactly: an integer of up to 19 digits fits
/// a `u64`, and its conversion to `f64` rounds as the decimal parser does); the rest by
/// [`line::float`].
fn float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 19 {
        return line::float(s);
    }
    let mut n = 0u64;
    for &d in b {
        if !d.is_ascii_digit() {
            return line::float(s);
        }
        n = n * 10 + u64::from(d - b'0');
    }
    Some(n as f64)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Where the fast path reads a line, it reads it as the general path does.
    #[track_caller]
    fn agrees(line: &[u8]) -> bool {
        let mut names = Vec::new();
        let text = std::str::from_utf8(line).ok();
        let fast = text.and_then(|t| sample(t, "a_total"));
        let Some(fast) = fast else {
            return false;
        };
        let general = line::sample(line, &mut names);
        let Ok(general) = general else {
            panic!("{line:?}: fast {fast:?}, general {general:?}");
        };
        let shown = |s: &RawSample<'_>| {
            format!(
                "{} {:?} {} {:x} {:?} {}",
                s.name,
                s.labels,
                s.value_text,
                s.value.to_bits(),
                s.timestamp,
                s.exemplar
            )
        };
        assert_eq!(shown(&fast), shown(&general), "{line:?}");
        let last = fast.last.as_ref().and_then(|at| fast.labels.pair_at(at));
        assert_eq!(
            last,
            last.and_then(|p| fast.labels.pair(p.name)),
            "{line:?}"
        );
        assert_eq!(last.is_none(), fast.labels.is_empty(), "{line:?}");
        true
    }

    #[test]
    fn common_lines_take_the_fast_path() {
        for line in [
            "a 1",
            "a_total{path=\"derp\"} 41282",
            "a{x=\"1\",le=\"+Inf\"} 3",
            "a{x=\"1\",} 3",
            "a{} 3",
            "a {x=\"\\\"}\\\\\"}1e+06 ",
            "a:b\t\t-0",
            "a 18446744073709551615",
            "a 9999999999999999999",
            "a 00000000000000000001",
            "a NaN",
            "a{x=\"☃\"} 1",
            "a_total 1",
            "a_totalx:y 1",
        ] {
            assert!(agrees(line.as_bytes()), "{line}");
        }
    }

    #[test]
    fn the_rest_goes_to_the_general_path() {
        let lines: [&[u8]; 15] = [
            b"a 1 2",
            b"a 1 # {x=\"1\"} 1",
            b"a{x = \"1\"} 1",
            b"a{ x=\"1\"} 1",
            b"a{x=\"1\",x=\"2\"} 1",
            b"a{x=\"1\"",
            b"a{x=\"1} 1",
            b"a{1=\"1\"} 1",
            b"a{,} 1",
            b"a",
            b"a{}",
            b"1a 1",
            b"a 1x",
            b"a{x=\"\xff\"} 1",
            "a\u{e9} 1".as_bytes(),
        ];
        for line in lines {
            assert!(!agrees(line), "{}", String::from_utf8_lossy(line));
        }
    }

    /// Where the fast path reads a HELP or TYPE line, it reads it as the general path does.
    #[track_caller]
    fn meta_agrees(line: &str, known: &str) -> bool {
        let Some(fast) = metadata(line, known) else {
            return false;
        };
        let general = line::metadata(line.as_bytes());
        let general = general.as_ref().ok().and_then(Option::as_ref);
        assert_eq!(
            format!("{:?}", Some(&fast)),
            format!("{general:?}"),
            "{line:?}"
        );
        true
    }

    #[test]
    fn metadata_lines() {
        for line in [
            "# HELP a text",
            "# HELP a_b  spaced \\ and \\n escaped ",
            "# HELP a",
            "# HELP a ",
            "# HELP a\tb",
            "# HELP :a: ☃",
            "# TYPE a counter",
            "# TYPE a_b untyped ",
            "# TYPE a\t gauge",
        ] {
            for known in ["", "a", "a_b", "a_bc"] {
                assert!(meta_agrees(line, known), "{line} with {known}");
            }
        }
        for line in [
            "# HELP  a text",
            "#HELP a",
            "# HELP 1a text",
            "# HELP a{ text",
            "# TYPE a",
            "# TYPE a foo",
            "# TYPE a counter x",
            "# TYPE a counter,",
            "# UNIT a_b b",
            "# EOF",
            "# a comment",
        ] {
            assert!(!meta_agrees(line, "a"), "{line}");
        }
    }

    fn piece() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("a"),
            Just("_b:"),
            Just("9"),
            Just("{"),
            Just("}"),
            Just("x=\""),
            Just("le=\""),
            Just("\""),
            Just("\\"),
            Just(","),
            Just(" "),
            Just("\t"),
            Just("="),
            Just("1"),
            Just("-1.5e3"),
            Just("+Inf"),
            Just("#"),
            Just("☃"),
        ]
    }

    proptest! {
        #[test]
        fn fast_path_agrees_with_the_general_path(
            parts in proptest::collection::vec(piece(), 0..24),
        ) {
            agrees(parts.concat().as_bytes());
        }

        #[test]
        fn fast_metadata_agrees_with_the_general_path(
            parts in proptest::collection::vec(prop_oneof![
                Just("# HELP "), Just("# TYPE "), Just("a"), Just("a_b"), Just(" "), Just("\t"),
                Just("counter"), Just("gauge"), Just("\\"), Just("n"), Just("☃"), Just("1"),
            ], 0..8),
            known in prop_oneof![Just(""), Just("a"), Just("a_b")],
        ) {
            meta_agrees(&parts.concat(), known);
        }

        #[test]
        fn integers_convert_as_parsed(n in any::<u64>()) {
            let text = n.to_string();
            prop_assert_eq!(float(&text).map(f64::to_bits), line::float(&text).map(f64::to_bits));
        }
    }
}
