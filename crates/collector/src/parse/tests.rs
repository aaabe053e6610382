//! Parser tests. [`check`] is the only place that touches the API: it renders every item the
//! parser yields as one line of text and compares that with the expected text.
//!
//! Rendering: a sample is `name{labels} value [ (=f64) ] [ @timestamp ] [family type]`, the
//! `(=f64)` shown only when it prints differently from the text; label values and HELP text
//! are shown unescaped, in Rust debug quotes. Other events: `type F T`, `help F "text"`,
//! `unit F "u"`, `eof`; errors: `error line N: reason`.

use std::fmt::Write as _;

use super::*;

fn render(input: &[u8]) -> String {
    let mut out = String::new();
    for item in parse(input) {
        let _ = match item {
            Ok(Event::Sample(s)) => {
                let mut line = s.name.to_owned();
                if !s.labels.is_empty() {
                    let labels: Vec<_> =
                        s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                    let _ = write!(line, "{{{}}}", labels.join(","));
                }
                let _ = write!(line, " {}", s.value_text);
                if s.value.to_string() != s.value_text {
                    let _ = write!(line, " (={})", s.value);
                }
                if let Some(ts) = s.timestamp {
                    let _ = write!(line, " @{ts}");
                }
                writeln!(out, "{line} [{} {}]", s.family, s.family_type)
            }
            Ok(Event::Type {
                family,
                metric_type,
            }) => writeln!(out, "type {family} {metric_type}"),
            Ok(Event::Help { family, text }) => writeln!(out, "help {family} {text:?}"),
            Ok(Event::Unit { family, unit }) => writeln!(out, "unit {family} {unit:?}"),
            Ok(Event::Eof) => writeln!(out, "eof"),
            Err(e) => writeln!(out, "error {e}"),
        };
    }
    out
}

#[track_caller]
fn check(input: impl AsRef<[u8]>, expected: &str) {
    let tidy = |s: &str| {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let actual = render(input.as_ref());
    assert_eq!(
        tidy(&actual),
        tidy(expected),
        "\ninput:\n{}",
        String::from_utf8_lossy(input.as_ref())
    );
}

#[test]
fn tailscaled_body() {
    check(
        "# TYPE tailscaled_outbound_bytes_total counter\n\
         # HELP tailscaled_outbound_bytes_total Counts the number of bytes sent to other peers\n\
         tailscaled_outbound_bytes_total{path=\"derp\"} 5684\n\
         tailscaled_outbound_bytes_total{path=\"direct_ipv4\"} 2681236\n\
         # TYPE tailscaled_inbound_dropped_packets_total counter\n\
         # HELP tailscaled_inbound_dropped_packets_total Dropped\n\
         # TYPE tailscaled_home_derp_region_id gauge\n\
         # HELP tailscaled_home_derp_region_id DERP region ID of this node's home relay server\n\
         tailscaled_home_derp_region_id 1e+06\n",
        r#"
        type tailscaled_outbound_bytes_total counter
        help tailscaled_outbound_bytes_total "Counts the number of bytes sent to other peers"
        tailscaled_outbound_bytes_total{path="derp"} 5684 [tailscaled_outbound_bytes_total counter]
        tailscaled_outbound_bytes_total{path="direct_ipv4"} 2681236 [tailscaled_outbound_bytes_total counter]
        type tailscaled_inbound_dropped_packets_total counter
        help tailscaled_inbound_dropped_packets_total "Dropped"
        type tailscaled_home_derp_region_id gauge
        help tailscaled_home_derp_region_id "DERP region ID of this node's home relay server"
        tailscaled_home_derp_region_id 1e+06 (=1000000) [tailscaled_home_derp_region_id gauge]
        "#,
    );
}

#[test]
fn openmetrics_body() {
    check(
        "# HELP a_seconds A counter\n# TYPE a_seconds counter\n# UNIT a_seconds seconds\n\
         a_seconds_total 1.0\na_seconds_created 123.456\n# EOF\n",
        r#"
        help a_seconds "A counter"
        type a_seconds counter
        unit a_seconds "seconds"
        a_seconds_total 1.0 (=1) [a_seconds counter]
        a_seconds_created 123.456 [a_seconds counter]
        eof
        "#,
    );
    // No newline after # EOF is fine; so are empty HELP text and unit.
    check(
        "# HELP a \n# UNIT a \n# EOF",
        "help a \"\"\nunit a \"\"\neof",
    );
}

#[test]
fn families_by_type_and_suffix() {
    // Each type owns the suffixes it allows; any other name opens an untyped family.
    check(
        "# TYPE c counter\nc_total 1\nc_created 2\nc 3\nc_sum 4\n\
         # TYPE g gauge\ng 1\ng_total 2\n\
         # TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n\
         # TYPE i info\ni_info{v=\"1\"} 1\n\
         # TYPE x untyped\nx 1\nx_total 1\n\
         plain 1\nplain{a=\"b\"} 2\n",
        r#"
        type c counter
        c_total 1 [c counter]
        c_created 2 [c counter]
        c 3 [c counter]
        c_sum 4 [c_sum unknown]
        type g gauge
        g 1 [g gauge]
        g_total 2 [g_total unknown]
        type s summary
        s{quantile="0.5"} 1 [s summary]
        s_sum 2 [s summary]
        s_count 3 [s summary]
        type i info
        i_info{v="1"} 1 [i info]
        type x unknown
        x 1 [x unknown]
        x_total 1 [x_total unknown]
        plain 1 [plain unknown]
        plain{a="b"} 2 [plain unknown]
        "#,
    );
    // HELP before TYPE, and HELP alone.
    check(
        "# HELP a help\n# TYPE a gauge\na 1\n# HELP b only help\nb_total 1\n",
        r#"
        help a "help"
        type a gauge
        a 1 [a gauge]
        help b "only help"
        b_total 1 [b_total unknown]
        "#,
    );
}

#[test]
fn histograms() {
    check(
        "# TYPE h histogram\n\
         h_bucket{x=\"1\",le=\"0.5\"} 1\nh_bucket{x=\"1\",le=\"1e+06\"} 2\nh_bucket{x=\"1\",le=\"+Inf\"} 3\n\
         h_sum{x=\"1\"} -7.5\nh_count{x=\"1\"} 3\nh_created{x=\"1\"} 1\n\
         h_bucket{x=\"2\",le=\"-1\"} 0\nh_bucket{x=\"2\",le=\"+Inf\"} 0\n\
         # TYPE g gaugehistogram\ng_bucket{le=\"-1\"} 1\ng_bucket{le=\"+Inf\"} 2\ng_gcount 2\ng_gsum -3\n",
        r#"
        type h histogram
        h_bucket{x="1",le="0.5"} 1 [h histogram]
        h_bucket{x="1",le="1e+06"} 2 [h histogram]
        h_bucket{x="1",le="+Inf"} 3 [h histogram]
        h_sum{x="1"} -7.5 [h histogram]
        h_count{x="1"} 3 [h histogram]
        h_created{x="1"} 1 [h histogram]
        h_bucket{x="2",le="-1"} 0 [h histogram]
        h_bucket{x="2",le="+Inf"} 0 [h histogram]
        type g gaugehistogram
        g_bucket{le="-1"} 1 [g gaugehistogram]
        g_bucket{le="+Inf"} 2 [g gaugehistogram]
        g_gcount 2 [g gaugehistogram]
        g_gsum -3 [g gaugehistogram]
        "#,
    );
}

#[test]
fn histogram_points_by_their_other_labels() {
    // However the labels are spaced or ordered, a point is the samples whose labels but `le`
    // are the same.
    check(
        "# TYPE h histogram\n\
         h_bucket{x=\"1\",le=\"1\"} 1\nh_bucket{x=\"1\", le=\"+Inf\"} 2\nh_sum{x=\"1\",} 3\n\
         h_count{ x = \"1\" } 2\nh_bucket{le=\"+Inf\",x=\"2\"} 1\nh_count{x=\"2\"} 1\nh_sum{x=\"2\"} 0\n\
         h_bucket{x=\"2\",y=\"3\",le=\"+Inf\"} 1\nh_bucket{x=\"2\",le=\"5\"} 0\n\
         h_bucket{x=\"2\",le=\"+Inf\"} 1\nh_sum{x=\"2\",y=\"3\"} 1\n",
        r#"
        type h histogram
        h_bucket{x="1",le="1"} 1 [h histogram]
        h_bucket{x="1",le="+Inf"} 2 [h histogram]
        h_sum{x="1"} 3 [h histogram]
        h_count{x="1"} 2 [h histogram]
        h_bucket{le="+Inf",x="2"} 1 [h histogram]
        h_count{x="2"} 1 [h histogram]
        h_sum{x="2"} 0 [h histogram]
        h_bucket{x="2",y="3",le="+Inf"} 1 [h histogram]
        h_bucket{x="2",le="5"} 0 [h histogram]
        h_bucket{x="2",le="+Inf"} 1 [h histogram]
        h_sum{x="2",y="3"} 1 [h histogram]
        error line 12: histogram "h" has no bucket with le="+Inf"
        "#,
    );
}

#[test]
fn histogram_errors() {
    // Found when the histogram ends, named at its last line; the next line still reads.
    check(
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\n# TYPE g gauge\ng 1\n",
        r#"
        type h histogram
        h_bucket{le="1"} 1 [h histogram]
        h_sum 1 [h histogram]
        error line 3: histogram "h" has no bucket with le="+Inf"
        type g gauge
        g 1 [g gauge]
        "#,
    );
    check(
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_bucket{a=\"b\",le=\"+Inf\"} 1\nh_count{a=\"b\"} 1\n",
        r#"
        type h histogram
        h_bucket{le="+Inf"} 1 [h histogram]
        h_sum 1 [h histogram]
        error line 3: histogram "h" has _sum but no _count
        h_bucket{a="b",le="+Inf"} 1 [h histogram]
        h_count{a="b"} 1 [h histogram]
        error line 5: histogram "h" has _count but no _sum
        "#,
    );
    check(
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 2\nh_sum 1\n\
         # TYPE g gaugehistogram\ng_bucket{le=\"+Inf\"} 1\ng_gsum -1\ng_gcount 1\n# EOF\n",
        r#"
        type h histogram
        h_bucket{le="+Inf"} 1 [h histogram]
        h_count 2 [h histogram]
        h_sum 1 [h histogram]
        error line 4: histogram "h" has _count 2, not the 1 of its +Inf bucket
        type g gaugehistogram
        g_bucket{le="+Inf"} 1 [g gaugehistogram]
        g_gsum -1 [g gaugehistogram]
        g_gcount 1 [g gaugehistogram]
        error line 8: gaugehistogram "g" has a negative _gsum but no negative bucket
        eof
        "#,
    );
    // Line by line: order of le, cumulative counts, the le label, counts that are not counts.
    check(
        "# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"3\"} 0\n\
         h_bucket{le=\"+Inf\"} 1\nh_bucket 1\nh_bucket{le=\"x\"} 1\nh_bucket{le=\"NaN\"} 1\n\
         h_bucket{le=\"5\"} -1\nh_count NaN\nh_sum 1\n\
         # TYPE g gaugehistogram\ng_gsum NaN\ng_gcount -1\n",
        r#"
        type h histogram
        h_bucket{le="2"} 1 [h histogram]
        error line 3: bucket le="1" is not above the previous bucket's le
        error line 4: bucket le="3" counts less than the bucket before it
        h_bucket{le="+Inf"} 1 [h histogram]
        error line 6: histogram bucket without an le label
        error line 7: invalid le label value "x"
        error line 8: invalid le label value "NaN"
        error line 9: bucket value -1 is not a count: negative or NaN
        error line 10: _count NaN is not a count: negative or NaN
        h_sum 1 [h histogram]
        error line 11: histogram "h" has _sum but no _count
        type g gaugehistogram
        error line 13: gaugehistogram _gsum is NaN
        error line 14: _gcount -1 is not a count: negative or NaN
        "#,
    );
    // A histogram cut short by the end of the body, or by an unterminated line.
    check(
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1",
        r#"
        type h histogram
        h_bucket{le="1"} 1 [h histogram]
        error line 3: last line not terminated by a newline; the body may be truncated
        error line 3: histogram "h" has no bucket with le="+Inf"
        "#,
    );
}

#[test]
fn summaries() {
    check(
        "# TYPE s summary\ns_count 1\ns_sum -2\ns{quantile=\"0\"} NaN\ns{quantile=\"1\"} -0.8\n\
         s{a=\"x\",quantile=\"0.5\"} 1\ns{a=\"x\",quantile=\"0.5\"} 2\ns{a=\"x\",quantile=\"0.1\"} 2\n\
         s 1\ns{quantile=\"1.5\"} 1\ns{quantile=\"x\"} 1\ns_count -1\n",
        r#"
        type s summary
        s_count 1 [s summary]
        s_sum -2 [s summary]
        s{quantile="0"} NaN [s summary]
        s{quantile="1"} -0.8 [s summary]
        s{a="x",quantile="0.5"} 1 [s summary]
        error line 7: the previous line has the same series; a repeated series needs timestamps
        error line 8: quantile 0.1 is not above the previous quantile
        error line 9: summary sample without a quantile label
        error line 10: invalid quantile "1.5": not a number from 0 to 1
        error line 11: invalid quantile "x": not a number from 0 to 1
        error line 12: _count -1 is not a count: negative or NaN
        "#,
    );
}

#[test]
fn info_and_stateset() {
    check(
        "# TYPE i info\ni_info{v=\"1\"} 1\ni_info{v=\"2\"} 2\n\
         # TYPE s stateset\ns{s=\"a\"} 0\ns{s=\"b\"} 1.0\ns{s=\"c\"} 2\ns{t=\"a\"} 1\n",
        r#"
        type i info
        i_info{v="1"} 1 [i info]
        error line 3: info value must be 1, not 2
        type s stateset
        s{s="a"} 0 [s stateset]
        s{s="b"} 1.0 (=1) [s stateset]
        error line 7: stateset value must be 0 or 1, not 2
        error line 8: stateset sample without a label named "s"
        "#,
    );
}

#[test]
fn counter_values_are_not_judged() {
    // NaN and negative counters reach the tracker, which counts them as anomalies.
    check(
        "# TYPE c counter\nc_total{a=\"1\"} NaN\nc_total{a=\"2\"} -1\n",
        r#"
        type c counter
        c_total{a="1"} NaN [c counter]
        c_total{a="2"} -1 [c counter]
        "#,
    );
}

#[test]
fn values() {
    check(
        "a NaN\nb +Inf\nc -Inf\nd Inf\ne nan\nf 1e+06\ng 1E-3\nh -0\ni 00001.5e1\nj .5\nk 1.\n\
         l 9223372036854775808\nm 18446744073709551615\nn +3\n",
        r#"
        a NaN [a unknown]
        b +Inf (=inf) [b unknown]
        c -Inf (=-inf) [c unknown]
        d Inf (=inf) [d unknown]
        e nan (=NaN) [e unknown]
        f 1e+06 (=1000000) [f unknown]
        g 1E-3 (=0.001) [g unknown]
        h -0 [h unknown]
        i 00001.5e1 (=15) [i unknown]
        j .5 (=0.5) [j unknown]
        k 1. (=1) [k unknown]
        l 9223372036854775808 (=9223372036854776000) [l unknown]
        m 18446744073709551615 (=18446744073709552000) [m unknown]
        n +3 (=3) [n unknown]
        "#,
    );
    check(
        "a x\nb 0x1p-3\nc 1_000\nd 0b1\ne 1e\nf --1\ng 1,5\nh\ni \nj{}\n",
        r#"
        error line 1: invalid value "x"
        error line 2: invalid value "0x1p-3"
        error line 3: invalid value "1_000"
        error line 4: invalid value "0b1"
        error line 5: invalid value "1e"
        error line 6: invalid value "--1"
        error line 7: invalid value "1,5"
        error line 8: missing value
        error line 9: missing value
        error line 10: missing value
        "#,
    );
}

#[test]
fn timestamps() {
    check(
        "a 1 1700000000000\nb 1 -5\nc 1 1.5e3\nd 1 0.000\n\
         e 1 z\nf 1 NaN\ng 1 +Inf\nh 1 1e400\ni 1 2 3\n",
        r#"
        a 1 @1700000000000 [a unknown]
        b 1 @-5 [b unknown]
        c 1 @1.5e3 [c unknown]
        d 1 @0.000 [d unknown]
        error line 5: invalid timestamp "z"
        error line 6: invalid timestamp "NaN"
        error line 7: invalid timestamp "+Inf"
        error line 8: invalid timestamp "1e400"
        error line 9: unexpected text "3" after the timestamp
        "#,
    );
    // A series may repeat on the next line only with a timestamp that does not go back.
    check(
        "a 1 10\na 2 10\na 3 11\na 4 9\na 5\nb 1\nb 2\nb{x=\"1\"} 3\n",
        r#"
        a 1 @10 [a unknown]
        a 2 @10 [a unknown]
        a 3 @11 [a unknown]
        error line 4: timestamp 9 goes back in time for a series repeated from the previous line
        error line 5: the previous line has the same series; a repeated series needs timestamps
        b 1 [b unknown]
        error line 7: the previous line has the same series; a repeated series needs timestamps
        b{x="1"} 3 [b unknown]
        "#,
    );
}

#[test]
fn label_escapes() {
    check(
        r#"a{q="say \"hi\"",bs="C:\\dir",nl="one\ntwo",other="\t\z",hash="} # {",utf="ünï ☃"} 1
"#,
        r#"
        a{q="say \"hi\"",bs="C:\\dir",nl="one\ntwo",other="\\t\\z",hash="} # {",utf="ünï ☃"} 1 [a unknown]
        "#,
    );
}

#[test]
fn labels_get_and_borrow() {
    let body = b"a{x=\"plain\",y=\"esc\\\"aped\",z=\"\"} 1\nb{} 2\n";
    let samples: Vec<_> = parse(body)
        .filter_map(|item| match item {
            Ok(Event::Sample(s)) => Some(s),
            _ => None,
        })
        .collect();
    let [a, b] = samples.as_slice() else {
        panic!("two samples: {samples:?}")
    };
    assert!(
        matches!(a.labels.get("x"), Some(Cow::Borrowed("plain"))),
        "no copy without escapes"
    );
    assert_eq!(a.labels.get("y").as_deref(), Some("esc\"aped"));
    assert_eq!(a.labels.get("z").as_deref(), Some(""));
    assert_eq!(a.labels.get("w"), None);
    assert!(!a.labels.is_empty());
    assert!(b.labels.is_empty());
    assert_eq!(b.labels.iter().count(), 0);
}

#[test]
fn help_escapes() {
    check(
        "# HELP a line one\\nline two \\\\ back \\\"q\\\" \\t kept\n# HELP b trailing\\\n# HELP c\n# HELP d \t spaced out \n",
        r#"
        help a "line one\nline two \\ back \"q\" \\t kept"
        help b "trailing\\"
        help c ""
        help d "spaced out "
        "#,
    );
}

#[test]
fn whitespace_as_0_0_4_allows() {
    check(
        "\n  \t\n  # TYPE a\tgauge \t\n  a  { x = \"1\" ,\ty=\"2\", }\t 1 \t 123 \t\na{}2\na{x=\"1\"}3\n",
        r#"
        type a gauge
        a{x="1",y="2"} 1 @123 [a gauge]
        a 2 [a gauge]
        a{x="1"} 3 [a gauge]
        "#,
    );
}

#[test]
fn comments_are_ignored() {
    check(
        b"# just a comment\n#a_sum 0\n#\n# HELPER text\n# FOO a b\n# \xff\xfe garbage\n# EOF x\na 1\n",
        "a 1 [a unknown]",
    );
}

#[test]
fn eof() {
    check("a 1\n# EOF\n", "a 1 [a unknown]\neof");
    check(
        "a 1\n# EOF\nb 2\nc 3\n",
        "a 1 [a unknown]\neof\nerror line 3: text after # EOF",
    );
    check(
        "a 1\n# EOF\n\n",
        "a 1 [a unknown]\neof\nerror line 3: text after # EOF",
    );
    check("# EOF", "eof");
    check("", "");
}

#[test]
fn unterminated_last_line() {
    // A body cut mid-line must not turn 5684 into a sample of 56.
    check(
        "# TYPE t counter\nt_total{path=\"derp\"} 56",
        r#"
        type t counter
        error line 2: last line not terminated by a newline; the body may be truncated
        "#,
    );
    check(
        "a 1\n# TYPE b coun",
        "a 1 [a unknown]\nerror line 2: last line not terminated by a newline; the body may be truncated",
    );
    check(
        "a 1\n  ",
        "a 1 [a unknown]\nerror line 2: last line not terminated by a newline; the body may be truncated",
    );
    check(
        "a 1\n# EOFblah",
        "a 1 [a unknown]\nerror line 2: last line not terminated by a newline; the body may be truncated",
    );
}

#[test]
fn metadata_rules() {
    check(
        "# TYPE a counter\n# TYPE a gauge\n# HELP a x\n# HELP a y\na_total 1\n# HELP b z\nb 1\n# HELP b late\n\
         # TYPE b gauge\n# UNIT b_s s\nb_s 1\n# UNIT b_s s\n# UNIT c_s x\n# UNIT c_s s\n# UNIT c_s s\n",
        r#"
        type a counter
        error line 2: second TYPE line for family "a"
        help a "x"
        error line 4: second HELP line for family "a"
        a_total 1 [a counter]
        help b "z"
        b 1 [b unknown]
        error line 8: second HELP line for family "b"
        error line 9: type of family "b" declared after its samples
        unit b_s "s"
        b_s 1 [b_s unknown]
        error line 12: second UNIT line for family "b_s"
        error line 13: unit "x" is not the suffix of family name "c_s"
        unit c_s "s"
        error line 15: second UNIT line for family "c_s"
        "#,
    );
    // HELP may follow the samples (0.0.4); a stray sample before TYPE opens its own family.
    check(
        "# TYPE a gauge\na 1\n# HELP a late\nx 1\n# TYPE x gauge\n",
        r#"
        type a gauge
        a 1 [a gauge]
        help a "late"
        x 1 [x unknown]
        error line 5: type of family "x" declared after its samples
        "#,
    );
    check(
        "# TYPE i_u info\n# UNIT i_u u\n# UNIT s_u u\n# TYPE s_u stateset\n# UNIT seconds seconds\n\
         # TYPE d_s gauge\nd_s 1\n# UNIT d_s s\n",
        r#"
        type i_u info
        error line 2: family "i_u" of type info cannot have a unit
        unit s_u "u"
        error line 4: family "s_u" has a unit, which type stateset does not allow
        error line 5: unit "seconds" is not the suffix of family name "seconds"
        type d_s gauge
        d_s 1 [d_s gauge]
        error line 8: unit of family "d_s" declared after its samples
        "#,
    );
}

#[test]
fn metadata_syntax_errors() {
    check(
        b"# HELP\n# HELP \n# HELP 1a x\n# HELP a.b x\n# HELP a \xff\n\
         # TYPE\n# TYPE a\n# TYPE a \t\n# TYPE a meh\n# TYPE a gauge x\n# TYPE a{ gauge\n\
         # UNIT\n# UNIT \n# UNIT a\n# UNIT a\t\n# UNIT\ta a\n# UNIT a_s s \n# UNIT a_s s.x\n",
        r#"
        error line 1: missing metric name in HELP line
        error line 2: missing metric name in HELP line
        error line 3: invalid metric name "1a" in HELP line
        error line 4: invalid metric name "a.b" in HELP line
        error line 5: invalid UTF-8 in HELP text
        error line 6: missing metric name in TYPE line
        error line 7: missing type in TYPE line for "a"
        error line 8: missing type in TYPE line for "a"
        error line 9: unknown metric type "meh"
        error line 10: unexpected text after the type in TYPE line for "a"
        error line 11: invalid metric name "a{" in TYPE line
        error line 12: missing metric name in UNIT line
        error line 13: missing metric name in UNIT line
        error line 14: expected one space and a unit after "a" in UNIT line
        error line 15: expected one space and a unit after "a" in UNIT line
        error line 16: expected one space after UNIT
        error line 17: invalid unit "s "
        error line 18: invalid unit "s.x"
        "#,
    );
}

#[test]
fn sample_syntax_errors() {
    check(
        b"0a 1\na.b 1\n{a=\"b\"} 1\n\xffa 1\n\
         a{1x=\"1\"} 1\na{,} 1\na{x} 1\na{x=1} 1\na{x='1'} 1\na{x=\"1} 1\na{x=\"1\"y=\"2\"} 1\n\
         a{x=\"1\",x=\"2\"} 1\na{x=\"1\" 1\na{x=\"\xff\"} 1\na{x=\"1\\\"} 1\na{\xc3\xa9=\"1\"} 1\n",
        r#"
        error line 1: invalid metric name "0a"
        error line 2: invalid metric name "a.b"
        error line 3: invalid metric name ""
        error line 4: invalid metric name "�a"
        error line 5: invalid label name "1x"
        error line 6: expected a label name, found ","
        error line 7: expected '=' after label name "x"
        error line 8: expected '"' to start the value of label "x"
        error line 9: expected '"' to start the value of label "x"
        error line 10: unterminated label value of "x"
        error line 11: expected ',' or '}' after the value of label "x"
        error line 12: duplicate label name "x"
        error line 13: expected ',' or '}' after the value of label "x"
        error line 14: invalid UTF-8 in label value
        error line 15: unterminated label value of "x"
        error line 16: expected a label name, found "�"
        "#,
    );
    check(
        "a{x=\"1\"",
        "error line 1: last line not terminated by a newline; the body may be truncated",
    );
    check(
        "a{x=\"1\"\n",
        "error line 1: unterminated label set: missing '}'",
    );
    // Many labels take the sorting path of the duplicate check.
    let many: String = (0..40).map(|i| format!("l{i}=\"v\",")).collect();
    check(
        format!("a{{{many}l7=\"again\"}} 1\n"),
        "error line 1: duplicate label name \"l7\"",
    );
}

#[test]
fn bad_bytes_spoil_only_their_line() {
    let mut body = b"# TYPE a counter\na_total{x=\"1\"} 1\n".to_vec();
    body.extend_from_slice(b"a_total{x=\"\xc3\x28\"} 2\n\x00\x01\x02\xff\n");
    body.extend_from_slice(b"a_total{x=\"3\"} 3\n");
    check(
        body,
        r#"
        type a counter
        a_total{x="1"} 1 [a counter]
        error line 3: invalid UTF-8 in label value
        error line 4: invalid metric name "\0\u{1}\u{2}�"
        a_total{x="3"} 3 [a counter]
        "#,
    );
}

#[test]
fn exemplars() {
    check(
        "# TYPE c counter\nc_total 1 # {id=\"a\"} 0.5\nc_total{x=\"1\"} 1 123 # {} 1 1.5\n\
         # TYPE h histogram\nh_bucket{le=\"+Inf\"} 1 # {a=\"☃b\"} 1 1\n",
        r#"
        type c counter
        c_total 1 [c counter]
        c_total{x="1"} 1 @123 [c counter]
        type h histogram
        h_bucket{le="+Inf"} 1 [h histogram]
        "#,
    );
    let long = "x".repeat(127);
    check(
        format!(
            "# TYPE c counter\nc_total{{n=\"1\"}} 1 # {{a=\"{long}\"}} 1\nc_total{{n=\"2\"}} 1 # {{ab=\"{long}\"}} 1\n\
             c_total{{n=\"3\"}} 1 #\nc_total{{n=\"4\"}} 1 #{{}} 1\nc_total{{n=\"5\"}} 1 # {{}}1\n\
             c_total{{n=\"6\"}} 1 # {{}} 1 \nc_total{{n=\"7\"}} 1 # {{}} x\nc_total{{n=\"8\"}} 1 # {{}} 1 NaN\n\
             c_total{{n=\"9\"}} 1 # {{1=\"\"}} 1\nc_created 1 # {{}} 1\n\
             # TYPE g gauge\ng 1 # {{}} 1\nu 1 # {{}} 1\n"
        ),
        r#"
        type c counter
        c_total{n="1"} 1 [c counter]
        error line 3: exemplar labels longer than 128 characters
        error line 4: invalid exemplar: expected '# {' after the value
        error line 5: invalid exemplar: expected '# {' after the value
        error line 6: invalid exemplar: expected one space and a value after its labels
        error line 7: invalid exemplar timestamp ""
        error line 8: invalid exemplar value "x"
        error line 9: invalid exemplar timestamp "NaN"
        error line 10: invalid exemplar: invalid label name "1"
        error line 11: exemplars are allowed only on counters and histogram buckets, not on a sample of type counter
        type g gauge
        error line 13: exemplars are allowed only on counters and histogram buckets, not on a sample of type gauge
        error line 14: exemplars are allowed only on counters and histogram buckets, not on a sample of type unknown
        "#,
    );
}

#[test]
fn long_tokens_are_cut_in_messages() {
    let long = "9".repeat(100);
    check(
        format!("a {long}x\n"),
        &format!("error line 1: invalid value \"{}\"...", "9".repeat(40)),
    );
}

mod fixtures {
    use super::*;

    const DIR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/tailscale"
    );

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(format!("{DIR}/{name}")).expect("fixture is in shared/")
    }

    /// `(family, type, samples)` per family in order, and `name{labels} value` per sample.
    fn summary(body: &[u8]) -> (Vec<(String, MetricType, usize)>, Vec<String>) {
        let (mut families, mut samples) = (Vec::<(String, MetricType, usize)>::new(), Vec::new());
        for item in parse(body) {
            match item.expect("fixture parses without errors") {
                Event::Type {
                    family,
                    metric_type,
                } => families.push((family.into(), metric_type, 0)),
                Event::Sample(s) => {
                    let last = families.last_mut().expect("typed family");
                    assert_eq!((last.0.as_str(), last.1), (s.family, s.family_type));
                    last.2 += 1;
                    let labels: Vec<_> =
                        s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                    samples.push(format!(
                        "{}{{{}}} {}",
                        s.name,
                        labels.join(","),
                        s.value_text
                    ));
                }
                Event::Help { family, .. } => {
                    assert_eq!(Some(family), families.last().map(|f| f.0.as_str()))
                }
                Event::Unit { .. } | Event::Eof => panic!("tailscaled writes no UNIT or EOF"),
            }
        }
        (families, samples)
    }

    #[test]
    fn every_fixture_parses() {
        let mut seen = 0;
        for entry in std::fs::read_dir(DIR).expect("fixtures dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "prom") {
                let body = std::fs::read(&path).expect("read fixture");
                let errors: Vec<_> = parse(&body).filter_map(Result::err).collect();
                assert!(errors.is_empty(), "{}: {errors:?}", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 3, "expected the tailscale fixtures, found {seen}");
    }

    #[test]
    fn v1_80() {
        let (families, samples) = summary(&read("usermetrics-v1.80.prom"));
        assert_eq!(families.len(), 9);
        assert_eq!(samples.len(), 17);
        let dropped = families
            .iter()
            .find(|f| f.0 == "tailscaled_inbound_dropped_packets_total");
        assert_eq!(
            dropped.map(|f| (f.1, f.2)),
            Some((MetricType::Counter, 0)),
            "empty family"
        );
        assert!(
            samples
                .contains(&r#"tailscaled_inbound_bytes_total{path="direct_ipv4"} 8102394"#.into())
        );
    }

    #[test]
    fn v1_96() {
        let (families, samples) = summary(&read("usermetrics-v1.96.prom"));
        assert_eq!(families.len(), 10);
        assert_eq!(samples.len(), 27);
        assert!(samples.contains(&r#"tailscaled_outbound_bytes_total{path="derp"} 5684"#.into()));
        assert!(samples.contains(&r#"tailscaled_home_derp_region_id{} 1"#.into()));
        let types: Vec<_> = families.iter().map(|f| f.1).collect();
        assert_eq!(types.iter().filter(|t| **t == MetricType::Gauge).count(), 4);
        assert_eq!(
            types.iter().filter(|t| **t == MetricType::Counter).count(),
            6
        );
    }

    #[test]
    fn v1_102_relay_serve() {
        let (families, samples) = summary(&read("usermetrics-v1.102-relay-serve.prom"));
        assert_eq!(families.len(), 15);
        assert_eq!(samples.len(), 39);
        for expected in [
            r#"tailscaled_peer_relay_forwarded_bytes_total{transport_in="udp4",transport_out="udp4"} 918273"#,
            r#"tailscaled_serve_outbound_bytes_total{service="svc:web"} 1048576"#,
            r#"tailscaled_peer_relay_endpoints{state="open"} 3"#,
        ] {
            assert!(samples.contains(&expected.into()), "{expected}");
        }
    }
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Drains the parser, checking what must hold for any input.
    fn drain(input: &[u8]) {
        let lines = input.split(|&b| b == b'\n').count() as u32;
        let mut last = 0;
        let mut items = 0;
        for item in parse(input) {
            items += 1;
            match item {
                Err(e) => {
                    assert!(
                        e.line >= last.max(1) && e.line <= lines + 1,
                        "{e} after line {last}"
                    );
                    assert!(
                        !e.reason.is_empty() && !e.reason.starts_with(char::is_uppercase),
                        "{e}"
                    );
                    last = e.line;
                }
                Ok(Event::Sample(s)) => {
                    assert!(s.name.starts_with(s.family), "{s:?}");
                    for (k, _) in s.labels.iter() {
                        assert!(s.labels.get(k).is_some(), "{s:?}");
                    }
                    let v: f64 = s.value_text.parse().expect("value text is a float");
                    assert!(v.to_bits() == s.value.to_bits() || (v.is_nan() && s.value.is_nan()));
                }
                Ok(_) => {}
            }
        }
        assert!(
            items <= 2 * lines as usize + 2,
            "{items} items for {lines} lines"
        );
    }

    /// Pieces that make the interesting paths likely.
    fn fragment() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"a".to_vec()),
            Just(b"a_total".to_vec()),
            Just(b"a_bucket".to_vec()),
            Just(b"{".to_vec()),
            Just(b"}".to_vec()),
            Just(b"le=\"+Inf\"".to_vec()),
            Just(b"x=\"".to_vec()),
            Just(b"\"".to_vec()),
            Just(b"\\".to_vec()),
            Just(b",".to_vec()),
            Just(b" ".to_vec()),
            Just(b"\t".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"1".to_vec()),
            Just(b"-1.5e3".to_vec()),
            Just(b"NaN".to_vec()),
            Just(b"# ".to_vec()),
            Just(b"# TYPE a histogram\n".to_vec()),
            Just(b"# TYPE a counter\n".to_vec()),
            Just(b"# TYPE a summary\n".to_vec()),
            Just(b"# HELP a ".to_vec()),
            Just(b"# UNIT a_b b\n".to_vec()),
            Just(b"# EOF".to_vec()),
            Just(b" # {a=\"1\"} 1".to_vec()),
            Just(b"\xff".to_vec()),
            Just("☃".as_bytes().to_vec()),
        ]
    }

    fn label_value() -> impl Strategy<Value = String> {
        prop_oneof![r#"[a-z0-9_:/.-]{0,12}"#, any::<String>()]
    }

    fn escape(v: &str) -> String {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            drain(&input);
        }

        #[test]
        fn newline_search_matches_a_plain_scan(
            input in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(0x8a), any::<u8>()], 0..64),
        ) {
            prop_assert_eq!(line::find_newline(&input), input.iter().position(|&b| b == b'\n'));
        }

        #[test]
        fn fragments_never_panic(parts in proptest::collection::vec(fragment(), 0..40)) {
            drain(&parts.concat());
        }

        #[test]
        fn valid_lines_round_trip(
            name in "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}",
            labels in proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,10}", label_value(), 0..5),
            value in prop_oneof![any::<u64>().prop_map(|v| v.to_string()), any::<f64>().prop_map(|v| format!("{v:e}"))],
            timestamp in proptest::option::of(any::<i64>()),
        ) {
            let mut line = name.clone();
            if !labels.is_empty() {
                let pairs: Vec<_> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
                line += &format!("{{{}}}", pairs.join(","));
            }
            line += &format!(" {value}");
            if let Some(ts) = timestamp {
                line += &format!(" {ts}");
            }
            line.push('\n');
            let items: Vec<_> = parse(line.as_bytes()).collect();
            let [Ok(Event::Sample(s))] = items.as_slice() else {
                panic!("{line:?} gave {items:?}");
            };
            prop_assert_eq!(s.name, name.as_str());
            prop_assert_eq!(s.family, name.as_str());
            let got: Vec<_> = s.labels.iter().map(|(k, v)| (k.to_owned(), v.into_owned())).collect();
            let want: Vec<_> = labels.into_iter().collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(s.value_text, value.as_str());
            let expected: f64 = value.parse().expect("float");
            prop_assert!(s.value.to_bits() == expected.to_bits() || s.value.is_nan() && expected.is_nan());
            let ts = timestamp.map(|t| t.to_string());
            prop_assert_eq!(s.timestamp, ts.as_deref());
        }
    }
}
