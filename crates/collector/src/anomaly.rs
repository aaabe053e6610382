use std::collections::BTreeMap;
use std::fmt;

use crate::LineError;

/// Why a counter or gauge value cannot be shipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueProblem {
    NaN,
    Infinite,
    Negative,
    /// A counter with a fractional part: tailscaled's counters are whole numbers.
    NotInteger,
    /// A counter above 2^53 written as a float, or above 2^64: it cannot be counted exactly.
    TooLarge,
}

impl ValueProblem {
    pub const fn as_str(self) -> &'static str {
        match self {
            ValueProblem::NaN => "nan",
            ValueProblem::Infinite => "infinite",
            ValueProblem::Negative => "negative",
            ValueProblem::NotInteger => "not_integer",
            ValueProblem::TooLarge => "too_large",
        }
    }
}

/// One thing in a scrape that was read but not used. Anomalies are data: they are counted
/// and logged, and never fail a scrape or reach a sink.
#[derive(Clone, Debug, PartialEq)]
pub enum Anomaly {
    /// A line the parser could not read.
    Parse(LineError),
    /// A value that cannot be shipped; the series keeps its previous state.
    Value {
        series: String,
        problem: ValueProblem,
        text: String,
    },
    /// The same series twice in one body; the first one counts.
    Duplicate { series: String },
    /// A new series beyond the configured maximum number of tracked series.
    SeriesCap { series: String, max: usize },
    /// A series whose name and labels together are longer than [`MAX_SERIES_KEY`] bytes: no
    /// cloud takes such labels, and tracking them would let one body hold memory for an hour.
    /// `series` is its beginning only.
    TooLong { series: String, len: usize },
}

/// The longest raw series (`family{label="value",…}`) tracked, in bytes. CloudWatch takes
/// dimension values of 1024 characters at most and metric names of 255, Cloud Monitoring
/// label values of 1024: anything longer could not be published anyway.
pub const MAX_SERIES_KEY: usize = 4096;

/// How much of a series or value an anomaly keeps and prints.
const SHOWN: usize = 160;

/// The first `SHOWN` bytes of `s` (on a character boundary), marked when cut.
pub(crate) fn clip(s: &str) -> String {
    if s.len() <= SHOWN {
        return s.to_owned();
    }
    let mut end = SHOWN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

impl Anomaly {
    /// A short stable label, for self-metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Anomaly::Parse(_) => "parse",
            Anomaly::Value { problem, .. } => problem.as_str(),
            Anomaly::Duplicate { .. } => "duplicate",
            Anomaly::SeriesCap { .. } => "series_cap",
            Anomaly::TooLong { .. } => "too_long",
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::Parse(e) => write!(f, "{e}"),
            Anomaly::Value {
                series,
                problem,
                text,
            } => {
                let why = match problem {
                    ValueProblem::NaN => "is NaN",
                    ValueProblem::Infinite => "is infinite",
                    ValueProblem::Negative => "is negative",
                    ValueProblem::NotInteger => "is not a whole number",
                    ValueProblem::TooLarge => "is too large to count exactly",
                };
                write!(f, "{series}: value {:?} {why}; not shipped", clip(text))
            }
            Anomaly::Duplicate { series } => {
                write!(
                    f,
                    "{series}: appears more than once in the body; the first one counts"
                )
            }
            Anomaly::SeriesCap { series, max } => write!(
                f,
                "{series}: not tracked, already tracking the maximum of {max} series (raise the series limit if this node really has that many)"
            ),
            Anomaly::TooLong { series, len } => write!(
                f,
                "{series}: name and labels are {len} bytes, over the {MAX_SERIES_KEY} a series may have; not tracked"
            ),
        }
    }
}

/// The anomalies of one scrape: exact counts by kind, and the first few in full.
///
/// A hostile body can hold millions of bad lines; memory stays bounded by keeping only
/// [`Anomalies::DETAILS`] of them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Anomalies {
    first: Vec<Anomaly>,
    counts: BTreeMap<&'static str, u64>,
    total: u64,
}

impl Anomalies {
    /// How many anomalies are kept in full.
    pub const DETAILS: usize = 100;

    pub fn push(&mut self, a: Anomaly) {
        *self.counts.entry(a.kind()).or_default() += 1;
        self.total += 1;
        if self.first.len() < Self::DETAILS {
            self.first.push(a);
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The first [`Anomalies::DETAILS`] anomalies, in the order they were found.
    pub fn details(&self) -> &[Anomaly] {
        &self.first
    }

    /// Exact counts by [`Anomaly::kind`].
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.counts.iter().map(|(k, v)| (*k, *v))
    }
}

/// The exact value of a counter sample, from its text when it is an integer.
pub fn counter_value(text: &str, value: f64) -> Result<u64, ValueProblem> {
    if let Ok(v) = text.parse::<u64>() {
        return Ok(v);
    }
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if value.is_nan() {
        Err(ValueProblem::NaN)
    } else if value < 0.0 {
        Err(ValueProblem::Negative)
    } else if value.is_infinite() {
        Err(ValueProblem::Infinite)
    } else if value.fract() != 0.0 {
        Err(ValueProblem::NotInteger)
    } else if value > EXACT {
        Err(ValueProblem::TooLarge)
    } else {
        // A whole number in [0, 2^53]: the conversion is exact.
        Ok(value as u64)
    }
}

/// The value of a gauge sample, if it can be shipped.
pub fn gauge_value(value: f64) -> Result<f64, ValueProblem> {
    if value.is_nan() {
        Err(ValueProblem::NaN)
    } else if value.is_infinite() {
        Err(ValueProblem::Infinite)
    } else {
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_values_are_exact_or_refused() {
        let check = |text: &str, expected: Result<u64, ValueProblem>| {
            let value = text.parse::<f64>().unwrap_or(f64::NAN);
            assert_eq!(counter_value(text, value), expected, "{text}");
        };
        check("8102394", Ok(8_102_394));
        check("18446744073709551615", Ok(u64::MAX));
        check("9007199254740993", Ok(9_007_199_254_740_993)); // exact beyond 2^53 as text
        check("1e+06", Ok(1_000_000));
        check("0.0", Ok(0));
        check("-0", Ok(0));
        check("1.5", Err(ValueProblem::NotInteger));
        check("-1", Err(ValueProblem::Negative));
        check("NaN", Err(ValueProblem::NaN));
        check("+Inf", Err(ValueProblem::Infinite));
        check("-Inf", Err(ValueProblem::Negative));
        check("1e20", Err(ValueProblem::TooLarge));
        check("18446744073709551616", Err(ValueProblem::TooLarge));
    }

    #[test]
    fn anomalies_keep_exact_counts_and_bounded_details() {
        let mut a = Anomalies::default();
        for i in 0..(Anomalies::DETAILS + 50) {
            a.push(Anomaly::Duplicate {
                series: format!("s{i}"),
            });
        }
        a.push(Anomaly::Value {
            series: "x".into(),
            problem: ValueProblem::NaN,
            text: "NaN".into(),
        });
        assert_eq!(a.total(), 151);
        assert_eq!(a.details().len(), Anomalies::DETAILS);
        assert_eq!(
            a.counts().collect::<Vec<_>>(),
            [("duplicate", 150), ("nan", 1)]
        );
    }
}
