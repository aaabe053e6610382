//! The rules that span lines: which family a sample belongs to, where metadata may stand,
//! and the shape of one histogram or summary (its buckets, quantiles, `_count` and `_sum`).
//!
//! Only the current family and the current histogram are kept, so the state is a few words
//! whatever the body holds.

use std::borrow::Cow;

use super::labels::{Around, Pair, unescape};
use super::line::{RawSample, float};
use super::{Labels, LineError, MetricType, Reason, error};

/// What a line did to the family state: an error found by closing the previous histogram,
/// if any, and the line's own outcome.
#[derive(Debug)]
pub(super) struct Step<T> {
    pub closed: Option<LineError>,
    pub result: Result<T, Reason>,
}

impl<T> Step<T> {
    fn new(closed: Option<LineError>, result: Result<T, Reason>) -> Self {
        Step { closed, result }
    }
}

/// The current family: the block opened by a HELP, TYPE or UNIT line, or by a sample that
/// belongs to no open block.
#[derive(Debug, Clone)]
pub(super) struct Family<'a> {
    /// Empty before the first family.
    name: &'a str,
    ty: MetricType,
    has_type: bool,
    has_help: bool,
    has_unit: bool,
    has_samples: bool,
    point: Point<'a>,
}

impl Default for Family<'_> {
    fn default() -> Self {
        Family {
            name: "",
            ty: MetricType::Unknown,
            has_type: false,
            has_help: false,
            has_unit: false,
            has_samples: false,
            point: Point::default(),
        }
    }
}

/// One histogram, gaugehistogram or summary: the samples sharing its labels (but `le` or
/// `quantile`).
#[derive(Debug, Clone, Default)]
struct Point<'a> {
    open: bool,
    labels: Labels<'a>,
    /// Its labels around its `le` or `quantile`, when the line that opened it had one.
    around: Option<Around<'a>>,
    last_line: u32,
    buckets: u32,
    last_le: f64,
    last_bucket: f64,
    /// The value of the `le="+Inf"` bucket.
    inf: Option<f64>,
    negative_bucket: bool,
    count: Option<f64>,
    sum: Option<f64>,
    last_quantile: Option<f64>,
}

/// The `le` of a bucket or the `quantile` of a summary sample, as written and as a number.
#[derive(Debug)]
struct Bound<'a> {
    text: Cow<'a, str>,
    value: f64,
    /// The other labels.
    around: Around<'a>,
}

/// The suffixes a family's samples may add to its name, beside the name itself.
fn suffixes(ty: MetricType) -> &'static [&'static str] {
    match ty {
        MetricType::Counter => &["_total", "_created"],
        MetricType::Histogram => &["_bucket", "_count", "_sum", "_created"],
        MetricType::GaugeHistogram => &["_bucket", "_gcount", "_gsum"],
        MetricType::Summary => &["_count", "_sum", "_created"],
        MetricType::Info => &["_info"],
        MetricType::Gauge | MetricType::StateSet | MetricType::Unknown => &[],
    }
}

fn is_histogram(ty: MetricType) -> bool {
    matches!(ty, MetricType::Histogram | MetricType::GaugeHistogram)
}

impl<'a> Family<'a> {
    /// The current family's name, empty before the first.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Ends the input: checks the open histogram.
    pub fn finish(&mut self) -> Option<LineError> {
        self.close_point()
    }

    /// Opens a new family named `name` (closing the current one) unless `name` is current.
    fn enter(&mut self, name: &'a str) -> Option<LineError> {
        let closed = self.close_point();
        *self = Family {
            name,
            ..Family::default()
        };
        closed
    }

    pub fn help(&mut self, name: &'a str) -> Step<()> {
        if name != self.name {
            let closed = self.enter(name);
            self.has_help = true;
            return Step::new(closed, Ok(()));
        }
        if self.has_help {
            return Step::new(
                None,
                Err(format!("second HELP line for family {name:?}").into()),
            );
        }
        // 0.0.4 allows HELP after the family's samples.
        self.has_help = true;
        Step::new(None, Ok(()))
    }

    pub fn declare_type(&mut self, name: &'a str, ty: MetricType) -> Step<()> {
        if name != self.name {
            let closed = self.enter(name);
            (self.ty, self.has_type) = (ty, true);
            return Step::new(closed, Ok(()));
        }
        let problem = if self.has_type {
            format!("second TYPE line for family {name:?}")
        } else if self.has_samples {
            format!("type of family {name:?} declared after its samples")
        } else if self.has_unit && matches!(ty, MetricType::Info | MetricType::StateSet) {
            format!("family {name:?} has a unit, which type {ty} does not allow")
        } else {
            (self.ty, self.has_type) = (ty, true);
            return Step::new(None, Ok(()));
        };
        Step::new(None, Err(problem.into()))
    }

    pub fn unit(&mut self, name: &'a str, unit: &str) -> Step<()> {
        let suffix = name.strip_suffix(unit).and_then(|n| n.strip_suffix('_'));
        if !unit.is_empty() && suffix.is_none_or(str::is_empty) {
            let problem = format!("unit {unit:?} is not the suffix of family name {name:?}");
            return Step::new(None, Err(problem.into()));
        }
        if name != self.name {
            let closed = self.enter(name);
            self.has_unit = true;
            return Step::new(closed, Ok(()));
        }
        let problem = if self.has_unit {
            format!("second UNIT line for family {name:?}")
        } else if self.has_samples {
            format!("unit of family {name:?} declared after its samples")
        } else if matches!(self.ty, MetricType::Info | MetricType::StateSet) {
            format!("family {name:?} of type {} cannot have a unit", self.ty)
        } else {
            self.has_unit = true;
            return Step::new(None, Ok(()));
        };
        Step::new(None, Err(problem.into()))
    }

    /// Places a sample in its family; returns the family's name and type.
    pub fn sample(&mut self, s: &RawSample<'a>, line: u32) -> Step<(&'a str, MetricType)> {
        let suffix = super::bytes::starts_with(s.name.as_bytes(), self.name.as_bytes())
            .then(|| s.name.get(self.name.len()..))
            .flatten();
        let suffix = suffix
            .filter(|x| !self.name.is_empty() && (x.is_empty() || suffixes(self.ty).contains(x)));
        let Some(suffix) = suffix else {
            if s.exemplar {
                return Step::new(None, Err(no_exemplar(MetricType::Unknown)));
            }
            // Not of the current family: it opens one of its own, with no type.
            let closed = self.enter(s.name);
            self.has_samples = true;
            return Step::new(closed, Ok((s.name, MetricType::Unknown)));
        };
        let bound = match self.check_line(s, suffix) {
            Ok(bound) => bound,
            Err(problem) => return Step::new(None, Err(problem)),
        };
        let leaves_point = self.point.open && !self.same_point(&s.labels, bound.as_ref());
        let closed = if leaves_point {
            self.close_point()
        } else {
            None
        };
        let result = self.add_to_point(s, suffix, line, bound).map(|()| {
            self.has_samples = true;
            (self.name, self.ty)
        });
        Step::new(closed, result)
    }

    /// The rules one line of this family must follow on its own. Returns the `le` of a
    /// bucket or the `quantile` of a summary sample, read once here.
    fn check_line(&self, s: &RawSample<'a>, suffix: &str) -> Result<Option<Bound<'a>>, Reason> {
        let (ty, v) = (self.ty, s.value);
        let exemplar_allowed = match ty {
            MetricType::Counter => suffix != "_created",
            MetricType::Histogram | MetricType::GaugeHistogram => suffix == "_bucket",
            _ => false,
        };
        if s.exemplar && !exemplar_allowed {
            return Err(no_exemplar(ty));
        }
        match (ty, suffix) {
            (MetricType::Histogram | MetricType::GaugeHistogram, "_bucket") => {
                let Some(Pair {
                    value: le, around, ..
                }) = pair(s, "le")
                else {
                    return Err(format!("{ty} bucket without an le label").into());
                };
                let le = unescape(le);
                let Some(value) = float(&le).filter(|x| !x.is_nan()) else {
                    return Err(format!("invalid le label value {le:?}").into());
                };
                not_negative(s, "bucket value")?;
                let text = le;
                return Ok(Some(Bound {
                    text,
                    value,
                    around,
                }));
            }
            (MetricType::Summary, "") => {
                let Some(Pair {
                    value: q, around, ..
                }) = pair(s, "quantile")
                else {
                    return Err("summary sample without a quantile label".into());
                };
                let q = unescape(q);
                let Some(value) = float(&q).filter(|x| (0.0..=1.0).contains(x)) else {
                    return Err(format!("invalid quantile {q:?}: not a number from 0 to 1").into());
                };
                let text = q;
                return Ok(Some(Bound {
                    text,
                    value,
                    around,
                }));
            }
            (MetricType::Histogram | MetricType::Summary, "_count")
            | (MetricType::GaugeHistogram, "_gcount") => not_negative(s, suffix)?,
            (MetricType::GaugeHistogram, "_gsum") if v.is_nan() => {
                return Err("gaugehistogram _gsum is NaN".into());
            }
            (MetricType::Info, _) if v != 1.0 => {
                return Err(format!("info value must be 1, not {}", s.value_text).into());
            }
            (MetricType::StateSet, _) => {
                if s.labels.get(self.name).is_none() {
                    let name = self.name;
                    return Err(format!("stateset sample without a label named {name:?}").into());
                }
                if v != 0.0 && v != 1.0 {
                    let text = s.value_text;
                    return Err(format!("stateset value must be 0 or 1, not {text}").into());
                }
            }
            _ => {}
        }
        Ok(None)
    }

    /// Whether labels belong to the open histogram or summary. Comparing the text around
    /// `le` (or `quantile`) answers most lines without walking both label sets.
    fn same_point(&self, labels: &Labels<'_>, bound: Option<&Bound<'_>>) -> bool {
        if let Some(open) = self.point.around {
            let same = match bound {
                Some(bound) => open == bound.around,
                // `_sum` and `_count`, with the labels of the buckets but `le`.
                None => open.joins_to(labels),
            };
            if same {
                return true;
            }
        }
        let key = match self.ty {
            MetricType::Summary => "quantile",
            _ => "le",
        };
        self.point.labels.same_except(labels, key)
    }

    /// Adds a sample to the open histogram or summary (opening one if needed).
    fn add_to_point(
        &mut self,
        s: &RawSample<'a>,
        suffix: &str,
        line: u32,
        bound: Option<Bound<'a>>,
    ) -> Result<(), Reason> {
        if !is_histogram(self.ty) && self.ty != MetricType::Summary {
            return Ok(());
        }
        if !self.point.open {
            self.point = Point {
                open: true,
                labels: s.labels,
                around: bound.as_ref().map(|b| b.around),
                ..Point::default()
            };
        }
        let p = &mut self.point;
        let v = s.value;
        match (suffix, bound) {
            ("_bucket", Some(le)) => {
                if p.buckets > 0 && le.value <= p.last_le {
                    let text = le.text;
                    return Err(format!(
                        "bucket le={text:?} is not above the previous bucket's le"
                    )
                    .into());
                }
                if p.buckets > 0 && v < p.last_bucket {
                    let text = le.text;
                    return Err(format!(
                        "bucket le={text:?} counts less than the bucket before it"
                    )
                    .into());
                }
                (p.buckets, p.last_le, p.last_bucket) = (p.buckets + 1, le.value, v);
                p.negative_bucket |= le.value < 0.0;
                if le.text == "+Inf" {
                    p.inf = Some(v);
                }
            }
            ("", Some(q)) => {
                if p.last_quantile.is_some_and(|last| q.value <= last) {
                    let text = q.text;
                    return Err(
                        format!("quantile {text} is not above the previous quantile").into(),
                    );
                }
                p.last_quantile = Some(q.value);
            }
            ("_count" | "_gcount", _) => p.count = Some(v),
            ("_sum" | "_gsum", _) => p.sum = Some(v),
            _ => {}
        }
        p.last_line = line;
        Ok(())
    }

    /// Ends the open histogram: it needs a `+Inf` bucket, and `_count` (equal to that bucket)
    /// and `_sum` together or neither.
    fn close_point(&mut self) -> Option<LineError> {
        let p = std::mem::take(&mut self.point);
        if !p.open || !is_histogram(self.ty) {
            return None;
        }
        let (ty, name) = (self.ty, self.name);
        let (count, sum) = match ty {
            MetricType::GaugeHistogram => ("_gcount", "_gsum"),
            _ => ("_count", "_sum"),
        };
        let problem = match (p.inf, p.count, p.sum) {
            (None, _, _) => format!("{ty} {name:?} has no bucket with le=\"+Inf\""),
            (_, Some(_), None) => format!("{ty} {name:?} has {count} but no {sum}"),
            (_, None, Some(_)) => format!("{ty} {name:?} has {sum} but no {count}"),
            (Some(inf), Some(c), _) if c != inf => {
                format!("{ty} {name:?} has {count} {c}, not the {inf} of its +Inf bucket")
            }
            (_, _, Some(s))
                if ty == MetricType::GaugeHistogram && s < 0.0 && !p.negative_bucket =>
            {
                format!("{ty} {name:?} has a negative {sum} but no negative bucket")
            }
            _ => return None,
        };
        Some(error(p.last_line, problem))
    }
}

/// The pair of label `name`, found without a walk when it is the last one.
fn pair<'a>(s: &RawSample<'a>, name: &str) -> Option<Pair<'a>> {
    match s.last.as_ref().and_then(|at| s.labels.pair_at(at)) {
        Some(last) if last.name == name => Some(last),
        _ => s.labels.pair(name),
    }
}

/// Counts of observations cannot be negative or NaN.
fn not_negative(s: &RawSample<'_>, what: &str) -> Result<(), Reason> {
    if s.value.is_nan() || s.value < 0.0 {
        Err(format!("{what} {} is not a count: negative or NaN", s.value_text).into())
    } else {
        Ok(())
    }
}

fn no_exemplar(ty: MetricType) -> Reason {
    format!(
        "exemplars are allowed only on counters and histogram buckets, not on a sample of type {ty}"
    )
    .into()
}
