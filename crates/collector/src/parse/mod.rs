//! A zero-copy pull parser for the Prometheus text format 0.0.4 that also accepts OpenMetrics 1.0.
//!
//! [`parse`] walks a body line by line and yields [`Event`]s that borrow from it. A line it
//! cannot read yields one [`LineError`] and the parser carries on with the next line; it never
//! panics and allocates nothing per sample (only an escape in a label value or HELP text, and
//! an error message, allocate).
//!
//! The body is checked as UTF-8 once. The common lines (`name{a="x"} value`, `# HELP`,
//! `# TYPE`) are read in one pass by `fast.rs`, which slices tokens from the checked text;
//! whatever it does not take, errors included, goes to `line.rs`, the one statement of the
//! grammar and its messages. `tests/allocations.rs` and `benches/parse.rs` hold it to that.
//!
//! Where the two formats disagree it takes the 0.0.4 reading: blank lines and `#` comments,
//! runs of blanks and tabs between tokens, leading and trailing whitespace, a trailing comma
//! in a label set, `untyped`, HELP after a family's samples, and no `# EOF`. What only
//! OpenMetrics has (`# UNIT`, `# EOF`, exemplars, info, stateset, gaugehistogram) follows
//! OpenMetrics strictly. Family rules that need only the current family are checked (metadata
//! order and repeats, histogram buckets, summary quantiles, a series repeated on consecutive
//! lines); rules that need memory of every family seen are not. Counter values are not judged:
//! NaN and negative counters reach the caller, whose tracker counts them as anomalies.
//!
//! One rule is tailship's own: a last line that `\n` does not end is an error, not a sample,
//! because a body cut off mid-line could turn `5684` into `56` and fake a counter reset.
//! `# EOF` is the exception, since it proves the body complete.

pub(crate) mod bytes;
mod family;
mod fast;
mod labels;
mod line;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;

use family::Family;
pub use labels::Labels;

/// The type a `# TYPE` line declares. Samples with no matching `# TYPE` are `Unknown`
/// (0.0.4 "untyped").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl MetricType {
    /// The name a `# TYPE` line uses (`unknown` for 0.0.4's `untyped` too).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }

    fn from_bytes(name: &[u8]) -> Option<MetricType> {
        Some(match name {
            b"counter" => MetricType::Counter,
            b"gauge" => MetricType::Gauge,
            b"histogram" => MetricType::Histogram,
            b"gaugehistogram" => MetricType::GaugeHistogram,
            b"summary" => MetricType::Summary,
            b"info" => MetricType::Info,
            b"stateset" => MetricType::StateSet,
            b"unknown" | b"untyped" => MetricType::Unknown,
            _ => return None,
        })
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample<'a> {
    /// The family the sample belongs to: the name of the `# TYPE`/`# HELP` block it sits in
    /// when its name is that name or that name plus a suffix the type allows (`_total`,
    /// `_bucket`, `_sum`, `_count`, `_created`, `_info`, `_gcount`, `_gsum`); else its own name.
    pub family: &'a str,
    /// The family's declared type, `Unknown` when it has none.
    pub family_type: MetricType,
    /// The sample's metric name as written.
    pub name: &'a str,
    pub labels: Labels<'a>,
    pub value: f64,
    /// The value exactly as written, e.g. `8102394` or `1e+06`.
    pub value_text: &'a str,
    /// The timestamp as written, if any (milliseconds in 0.0.4, seconds in OpenMetrics).
    pub timestamp: Option<&'a str>,
    /// The name and labels as written (`name{a="x"}`), when the line was read in one pass
    /// with no blanks inside the braces (as exporters write them): whoever keys series by
    /// their text can often use it as it is.
    pub written: Option<&'a str>,
}

/// One thing the parser read.
#[derive(Clone, Debug, PartialEq)]
pub enum Event<'a> {
    Sample(Sample<'a>),
    Type {
        family: &'a str,
        metric_type: MetricType,
    },
    Help {
        family: &'a str,
        text: Cow<'a, str>,
    },
    Unit {
        family: &'a str,
        unit: &'a str,
    },
    /// `# EOF` (OpenMetrics); anything after it is an error.
    Eof,
}

/// Why a line could not be read.
///
/// A problem with a whole histogram (a missing `+Inf` bucket, `_count` differing from it)
/// is found when the histogram ends and names its last line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: u32,
    pub reason: Cow<'static, str>,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for LineError {}

type Reason = Cow<'static, str>;
type Item<'a> = Result<Event<'a>, LineError>;

/// Pull parser over a whole exposition body. Never panics; a bad line yields one `Err` and
/// the parser carries on with the next line. Line numbers never decrease from one item to
/// the next.
#[derive(Debug, Clone)]
pub struct Parser<'a> {
    input: &'a [u8],
    /// `input` as text when it is all valid UTF-8, as it nearly always is: then lines are
    /// sliced from it instead of being checked one by one.
    text: Option<&'a str>,
    pos: usize,
    line: u32,
    /// The line of the last item yielded.
    reported: u32,
    state: State,
    /// An item to yield before reading on (a line's own item, when closing a histogram
    /// reported an error first).
    pending: Option<Item<'a>>,
    family: Family<'a>,
    /// The last sample yielded, to catch a series repeated on the next line.
    prev: Option<Prev<'a>>,
    /// Scratch space for the general path's duplicate label check, reused across lines.
    names: Vec<&'a [u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Lines,
    AfterEof,
    Done,
}

#[derive(Debug, Clone, Copy)]
struct Prev<'a> {
    name: &'a str,
    labels: Labels<'a>,
    timestamp: Option<f64>,
}

/// Parses a whole exposition body.
pub fn parse(input: &[u8]) -> Parser<'_> {
    Parser {
        input,
        text: std::str::from_utf8(input).ok(),
        pos: 0,
        line: 0,
        reported: 0,
        state: State::Lines,
        pending: None,
        family: Family::default(),
        prev: None,
        names: Vec::new(),
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        let mut item = self.advance()?;
        // An error found when a histogram ends names its last line, which may come before a
        // line already reported; never let line numbers go back.
        match &mut item {
            Ok(_) => self.reported = self.line,
            Err(e) => {
                e.line = e.line.max(self.reported);
                self.reported = e.line;
            }
        }
        Some(item)
    }
}

impl<'a> Parser<'a> {
    fn advance(&mut self) -> Option<Item<'a>> {
        loop {
            if let Some(item) = self.pending.take() {
                return Some(item);
            }
            match self.state {
                State::Done => return None,
                State::AfterEof => {
                    self.state = State::Done;
                    if self.pos < self.input.len() {
                        let line = self.line.saturating_add(1);
                        return Some(Err(error(line, "text after # EOF")));
                    }
                    return None;
                }
                State::Lines => {}
            }
            let Some((text, terminated)) = self.next_line() else {
                self.state = State::Done;
                return self.family.finish().map(Err);
            };
            self.line = self.line.saturating_add(1);
            if let Some(item) = self.read_line(text, terminated) {
                return Some(item);
            }
        }
    }

    /// The next line without its `\n`, and whether a `\n` ended it.
    fn next_line(&mut self) -> Option<(&'a [u8], bool)> {
        let rest = self.input.get(self.pos..).filter(|r| !r.is_empty())?;
        Some(match line::find_newline(rest) {
            Some(end) => {
                self.pos += end + 1;
                (rest.get(..end).unwrap_or_default(), true)
            }
            None => {
                self.pos = self.input.len();
                (rest, false)
            }
        })
    }

    /// The last `len` bytes of the current line (before its `\n`) as text, if valid UTF-8.
    fn line_text(&self, len: usize) -> Option<&'a str> {
        let end = match self.input.get(..self.pos) {
            Some([.., b'\n']) => self.pos - 1,
            _ => self.pos,
        };
        let start = end.checked_sub(len)?;
        match self.text {
            Some(text) => text.get(start..end),
            None => std::str::from_utf8(self.input.get(start..end)?).ok(),
        }
    }

    /// Reads one line: `None` for a blank line or a comment.
    fn read_line(&mut self, text: &'a [u8], terminated: bool) -> Option<Item<'a>> {
        let n = self.line;
        if text == b"# EOF" {
            self.state = State::AfterEof;
            let closed = self.family.finish();
            return Some(self.emit(closed, Ok(Event::Eof)));
        }
        if !terminated {
            let reason = "last line not terminated by a newline; the body may be truncated";
            return Some(Err(error(n, reason)));
        }
        let text = line::skip_ws(text);
        match text.first() {
            None => None,
            Some(b'#') => self.metadata(text, n),
            Some(_) => Some(self.sample(text, n)),
        }
    }

    /// A `#` line: HELP, TYPE or UNIT, else a comment.
    fn metadata(&mut self, text: &'a [u8], n: u32) -> Option<Item<'a>> {
        let known = self.family.name();
        let fast = (self.line_text(text.len())).and_then(|t| fast::metadata(t, known));
        let meta = match fast.map_or_else(|| line::metadata(text), |meta| Ok(Some(meta))) {
            Ok(Some(meta)) => meta,
            Ok(None) => return None,
            Err(reason) => return Some(Err(error(n, reason))),
        };
        let (closed, done) = match meta {
            line::Meta::Help(family, text) => {
                let step = self.family.help(family);
                (
                    step.closed,
                    step.result.map(|()| Event::Help { family, text }),
                )
            }
            line::Meta::Type(family, metric_type) => {
                let step = self.family.declare_type(family, metric_type);
                (
                    step.closed,
                    step.result.map(|()| Event::Type {
                        family,
                        metric_type,
                    }),
                )
            }
            line::Meta::Unit(family, unit) => {
                let step = self.family.unit(family, unit);
                (
                    step.closed,
                    step.result.map(|()| Event::Unit { family, unit }),
                )
            }
        };
        Some(self.emit(closed, done.map_err(|reason| error(n, reason))))
    }

    fn sample(&mut self, text: &'a [u8], n: u32) -> Item<'a> {
        let fast = self
            .line_text(text.len())
            .and_then(|t| fast::sample(t, self.family.name()));
        let raw = match fast {
            Some(raw) => raw,
            None => match line::sample(text, &mut self.names) {
                Ok(raw) => raw,
                Err(reason) => return Err(error(n, reason)),
            },
        };
        if let Err(reason) = self.check_repeat(&raw) {
            return Err(error(n, reason));
        }
        let step = self.family.sample(&raw, n);
        let closed = step.closed;
        let item = step
            .result
            .map_err(|reason| error(n, reason))
            .map(|(family, family_type)| {
                self.prev = Some(Prev {
                    name: raw.name,
                    labels: raw.labels,
                    timestamp: raw.timestamp.map(|(_, t)| t),
                });
                Event::Sample(Sample {
                    family,
                    family_type,
                    name: raw.name,
                    labels: raw.labels,
                    value: raw.value,
                    value_text: raw.value_text,
                    timestamp: raw.timestamp.map(|(text, _)| text),
                    written: raw.written,
                })
            });
        self.emit(closed, item)
    }

    /// A series may only repeat on the next line with a later (or equal) timestamp.
    fn check_repeat(&self, raw: &line::RawSample<'a>) -> Result<(), Reason> {
        let Some(prev) = self.prev else { return Ok(()) };
        // Labels first: consecutive samples mostly share their name.
        if !prev.labels.same(&raw.labels) || !bytes::same(prev.name.as_bytes(), raw.name.as_bytes())
        {
            return Ok(());
        }
        match (prev.timestamp, raw.timestamp) {
            (Some(before), Some((text, now))) if now < before => Err(format!(
                "timestamp {text} goes back in time for a series repeated from the previous line"
            )
            .into()),
            (Some(_), Some(_)) => Ok(()),
            _ => Err(
                "the previous line has the same series; a repeated series needs timestamps".into(),
            ),
        }
    }

    /// Yields `closed` (an error found when a histogram ended) before the line's own item.
    fn emit(&mut self, closed: Option<LineError>, item: Item<'a>) -> Item<'a> {
        match closed {
            Some(err) => {
                self.pending = Some(item);
                Err(err)
            }
            None => item,
        }
    }
}

fn error(line: u32, reason: impl Into<Reason>) -> LineError {
    LineError {
        line,
        reason: reason.into(),
    }
}
