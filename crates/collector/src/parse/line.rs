//! The syntax of one line, with no knowledge of the lines around it.

use std::borrow::Cow;

use super::bytes::find2;
use super::labels::{self, Labels, PairAt, ascii, unescape};
use super::{MetricType, Reason};

/// OpenMetrics' limit on an exemplar's label names and values, in characters.
const EXEMPLAR_LABEL_CHARS: usize = 128;

/// A sample line, checked for syntax only.
#[derive(Debug)]
pub(super) struct RawSample<'a> {
    pub name: &'a str,
    pub labels: Labels<'a>,
    pub value_text: &'a str,
    pub value: f64,
    pub timestamp: Option<(&'a str, f64)>,
    pub exemplar: bool,
    /// Where the last label is, if the reader noted it (the fast path does): where the Go
    /// client writes `le` and `quantile`, so that they need no walk of the labels.
    pub last: Option<PairAt>,
    /// `name{labels}` as written, when the reader took the line in one pass (the fast path:
    /// no blanks inside the braces).
    pub written: Option<&'a str>,
}

/// A HELP, TYPE or UNIT line.
#[derive(Debug)]
pub(super) enum Meta<'a> {
    Help(&'a str, Cow<'a, str>),
    Type(&'a str, MetricType),
    Unit(&'a str, &'a str),
}

/// The index of the first `\n`.
pub(super) fn find_newline(s: &[u8]) -> Option<usize> {
    find2(s, b'\n', b'\n')
}

/// Blank and tab separate tokens in 0.0.4.
pub(super) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(super) fn skip_ws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_ws(b)).count();
    s.get(n..).unwrap_or_default()
}

/// Splits at the first blank or tab.
fn token(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|&&b| !is_ws(b)).count();
    s.split_at(n)
}

/// A token for an error message: quoted, escaped, at most 40 characters.
pub(super) fn quote(s: &[u8]) -> String {
    let text = String::from_utf8_lossy(s);
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{:?}...", text.get(..cut).unwrap_or_default()),
        None => format!("{text:?}"),
    }
}

fn is_metric_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

/// A metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) at the start of `s`, possibly empty, and the rest.
fn metric_name(s: &[u8]) -> (&str, &[u8]) {
    if s.first().is_some_and(u8::is_ascii_digit) {
        return ("", s);
    }
    let n = s.iter().take_while(|&&b| is_metric_char(b)).count();
    let (name, rest) = s.split_at(n);
    (ascii(name), rest)
}

/// A float as both formats write it: decimal with an optional exponent, or `NaN`, `Inf`,
/// `+Inf`, `-Inf` in any case. Hexadecimal and `_` are refused.
pub(super) fn float(s: &str) -> Option<f64> {
    s.parse().ok()
}

/// A timestamp: a finite decimal number.
fn timestamp(s: &[u8]) -> Option<(&str, f64)> {
    let text = std::str::from_utf8(s).ok()?;
    float(text).filter(|t| t.is_finite()).map(|t| (text, t))
}

/// A `#` line: `Ok(None)` for a comment.
pub(super) fn metadata(line: &[u8]) -> Result<Option<Meta<'_>>, Reason> {
    let rest = skip_ws(line.get(1..).unwrap_or_default());
    let (keyword, rest) = token(rest);
    match keyword {
        b"HELP" => help(rest).map(Some),
        b"TYPE" => declared_type(rest).map(Some),
        b"UNIT" => unit(rest).map(Some),
        _ => Ok(None),
    }
}

/// A metadata line's metric name, which must end at whitespace or the end of the line.
fn meta_name<'a>(rest: &'a [u8], keyword: &str) -> Result<(&'a str, &'a [u8]), Reason> {
    let (name, after) = metric_name(rest);
    if name.is_empty() || after.first().is_some_and(|&b| !is_ws(b)) {
        if rest.is_empty() {
            return Err(format!("missing metric name in {keyword} line").into());
        }
        return Err(format!(
            "invalid metric name {} in {keyword} line",
            quote(token(rest).0)
        )
        .into());
    }
    Ok((name, after))
}

/// `# HELP name text`: 0.0.4 lets the text be empty and strips the separating whitespace.
fn help(rest: &[u8]) -> Result<Meta<'_>, Reason> {
    let (name, rest) = meta_name(skip_ws(rest), "HELP")?;
    let text = std::str::from_utf8(skip_ws(rest)).map_err(|_| "invalid UTF-8 in HELP text")?;
    Ok(Meta::Help(name, unescape(text)))
}

/// `# TYPE name type`, with any whitespace around the type.
fn declared_type(rest: &[u8]) -> Result<Meta<'_>, Reason> {
    let (name, rest) = meta_name(skip_ws(rest), "TYPE")?;
    let (ty, rest) = token(skip_ws(rest));
    if ty.is_empty() {
        return Err(format!("missing type in TYPE line for {name:?}").into());
    }
    let Some(metric_type) = MetricType::from_bytes(ty) else {
        return Err(format!("unknown metric type {}", quote(ty)).into());
    };
    if !skip_ws(rest).is_empty() {
        return Err(format!("unexpected text after the type in TYPE line for {name:?}").into());
    }
    Ok(Meta::Type(name, metric_type))
}

/// `# UNIT name unit`, OpenMetrics only, so with exactly one space before each token.
fn unit(rest: &[u8]) -> Result<Meta<'_>, Reason> {
    let Some(rest) = rest.strip_prefix(b" ") else {
        if rest.is_empty() {
            return Err("missing metric name in UNIT line".into());
        }
        return Err("expected one space after UNIT".into());
    };
    let (name, rest) = meta_name(rest, "UNIT")?;
    let Some(unit) = rest.strip_prefix(b" ") else {
        return Err(format!("expected one space and a unit after {name:?} in UNIT line").into());
    };
    if !unit.iter().all(|&b| is_metric_char(b)) {
        return Err(format!("invalid unit {}", quote(unit)).into());
    }
    Ok(Meta::Unit(name, ascii(unit)))
}

/// A sample line: `name[{labels}] value [timestamp] [# {labels} value [timestamp]]`.
pub(super) fn sample<'a>(
    line: &'a [u8],
    names: &mut Vec<&'a [u8]>,
) -> Result<RawSample<'a>, Reason> {
    let (name, rest) = metric_name(line);
    if name.is_empty() || rest.first().is_some_and(|&b| !is_ws(b) && b != b'{') {
        let bad = line.iter().take_while(|&&b| !is_ws(b) && b != b'{').count();
        return Err(format!(
            "invalid metric name {}",
            quote(line.get(..bad).unwrap_or_default())
        )
        .into());
    }
    let mut rest = skip_ws(rest);
    let mut labels = Labels::default();
    if let Some(inner) = rest.strip_prefix(b"{") {
        let (scanned, after) = labels::scan(inner, names)?;
        labels = scanned;
        rest = skip_ws(after);
    }
    if rest.is_empty() {
        return Err("missing value".into());
    }
    let (value, rest) = token(rest);
    let value_text = std::str::from_utf8(value).ok();
    let Some((value_text, value)) = value_text.and_then(|t| Some((t, float(t)?))) else {
        return Err(format!("invalid value {}", quote(value)).into());
    };
    let mut rest = skip_ws(rest);
    let mut ts = None;
    if !rest.is_empty() && !rest.starts_with(b"#") {
        let (text, after) = token(rest);
        ts = Some(timestamp(text).ok_or_else(|| format!("invalid timestamp {}", quote(text)))?);
        rest = skip_ws(after);
    }
    let exemplar = !rest.is_empty();
    if exemplar {
        if !rest.starts_with(b"#") {
            return Err(format!(
                "unexpected text {} after the timestamp",
                quote(token(rest).0)
            )
            .into());
        }
        self::exemplar(rest, names)?;
    }
    Ok(RawSample {
        name,
        labels,
        value_text,
        value,
        timestamp: ts,
        exemplar,
        last: None,
        written: None,
    })
}

/// `# {labels} value [timestamp]`, OpenMetrics only: single spaces, nothing after.
fn exemplar<'a>(s: &'a [u8], names: &mut Vec<&'a [u8]>) -> Result<(), Reason> {
    let Some(inner) = s.strip_prefix(b"# {") else {
        return Err("invalid exemplar: expected '# {' after the value".into());
    };
    let (labels, rest) =
        labels::scan(inner, names).map_err(|e| format!("invalid exemplar: {e}"))?;
    if labels.chars() > EXEMPLAR_LABEL_CHARS {
        return Err(
            format!("exemplar labels longer than {EXEMPLAR_LABEL_CHARS} characters").into(),
        );
    }
    let Some(rest) = rest.strip_prefix(b" ") else {
        return Err("invalid exemplar: expected one space and a value after its labels".into());
    };
    let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let (value, rest) = rest.split_at(end);
    if std::str::from_utf8(value).ok().and_then(float).is_none() {
        return Err(format!("invalid exemplar value {}", quote(value)).into());
    }
    if let Some(ts) = rest.strip_prefix(b" ")
        && (ts.iter().any(|&b| is_ws(b)) || timestamp(ts).is_none())
    {
        return Err(format!("invalid exemplar timestamp {}", quote(ts)).into());
    }
    Ok(())
}
