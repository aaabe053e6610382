//! Printing a [`SimNode`] the way tailscaled does (`util/usermetric`, `metrics.MultiLabelMap`):
//! families sorted by name, `# TYPE` then `# HELP`, series sorted by their label string,
//! label values Go-quoted (`%q`), counters as integers (`%d`), gauges as Go floats (`%v`, so
//! `1e+06`), no timestamps, no `# EOF`, a newline after every line. A family with no series
//! prints nothing at all, not even its header.

use std::fmt::Write as _;

use super::SimNode;
use super::families::{FAMILIES, Family};

/// `{name="value",…}` with Go-quoted values; empty for no labels.
pub(super) fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

pub(super) fn exposition(node: &SimNode) -> String {
    let mut families = FAMILIES;
    families.sort_by_key(|family| family.name);
    let mut out = String::new();
    for Family {
        name,
        counter,
        help,
    } in families
    {
        let lines: Vec<String> = if counter {
            let series = node.counters.get(name).into_iter().flatten();
            series
                .map(|(labels, v)| format!("{name}{labels} {v}\n"))
                .collect()
        } else {
            let series = node.gauges.get(name).into_iter().flatten();
            series
                .map(|(labels, v)| format!("{name}{labels} {}\n", go_float(*v)))
                .collect()
        };
        if lines.is_empty() {
            continue;
        }
        let kind = if counter { "counter" } else { "gauge" };
        let _ = write!(out, "# TYPE {name} {kind}\n# HELP {name} {help}\n");
        out.extend(lines);
    }
    out
}

/// Go's `strconv.Quote`: `"…"` with `\"`, `\\`, the C escapes, `\xNN` for other ASCII
/// controls and `\uNNNN` / `\UNNNNNNNN` for other non-printable characters.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() && u32::from(c) <= 0xffff => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%v` for a `float64`: the shortest representation, in exponent form (`1e+06`,
/// `1.5e-05`) when the decimal exponent is below -4 or at least 6.
pub(crate) fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let scientific = format!("{v:e}");
    let (mantissa, exp) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format!("{v}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        let cases = [
            ("derp", r#""derp""#),
            ("svc:web", r#""svc:web""#),
            (r#"a"b\c"#, r#""a\"b\\c""#),
            ("line\nbreak\ttab", r#""line\nbreak\ttab""#),
            ("\u{1}\u{7f}", r#""\x01\x7f""#),
            ("\u{85}", r#""\u0085""#),
            ("héllo ☃", "\"héllo ☃\""),
        ];
        for (input, quoted) in cases {
            assert_eq!(go_quote(input), quoted, "{input:?}");
        }
    }

    #[test]
    fn floats_like_go() {
        let cases = [
            (0.0, "0"),
            (2.0, "2"),
            (123_456.0, "123456"),
            (1e6, "1e+06"),
            (1_234_567.0, "1.234567e+06"),
            (0.5, "0.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e21, "-2.5e+21"),
            (1e100, "1e+100"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (v, printed) in cases {
            assert_eq!(go_float(v), printed, "{v}");
        }
    }

    #[test]
    fn label_strings() {
        assert_eq!(labels(&[]), "");
        assert_eq!(labels(&[("path", "derp")]), r#"{path="derp"}"#);
        assert_eq!(
            labels(&[("transport_in", "udp4"), ("transport_out", "udp6")]),
            r#"{transport_in="udp4",transport_out="udp6"}"#
        );
    }
}
