//! A zero-copy pull parser for the Prometheus text format 0.0.4 that also accepts OpenMetrics.
//!
//! PLACEHOLDER: the public types below are the contract; the implementation is being written.

use std::borrow::Cow;
use std::fmt;

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

/// The labels of one sample, validated by the parser; values are unescaped on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Labels<'a> {
    raw: &'a str,
}

impl<'a> Labels<'a> {
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// `(name, value)` in the order written, values unescaped (`\\`, `\"`, `\n`).
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Cow<'a, str>)> + 'a {
        std::iter::empty()
    }

    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
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
}

/// One thing the parser read.
#[derive(Clone, Debug, PartialEq)]
pub enum Event<'a> {
    Sample(Sample<'a>),
    Type { family: &'a str, metric_type: MetricType },
    Help { family: &'a str, text: Cow<'a, str> },
    Unit { family: &'a str, unit: &'a str },
    /// `# EOF` (OpenMetrics); anything after it is an error.
    Eof,
}

/// Why a line could not be read.
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

/// Pull parser over a whole exposition body. Never panics; a bad line yields one `Err` and
/// the parser carries on with the next line.
#[derive(Debug, Clone)]
pub struct Parser<'a> {
    input: &'a [u8],
}

pub fn parse(input: &[u8]) -> Parser<'_> {
    Parser { input }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Event<'a>, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        let _ = self.input;
        None
    }
}
