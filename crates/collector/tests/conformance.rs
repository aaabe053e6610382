//! Runs the parser over every case of the OpenMetrics parser test suite
//! (`shared/conformance/openmetrics-parsers/`). A case parses when the parser yields no error.
//! The verdict must match the suite's `shouldParse`, except for the cases listed in
//! [`DIFFER`], whose verdict differs on purpose; a listed case that stops differing fails too.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use tailship_collector::parse;

const SUITE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/conformance/openmetrics-parsers"
);

/// Cases the parser accepts although OpenMetrics rejects them (all are `shouldParse: false`),
/// with the reason. The parser reads Prometheus text 0.0.4, which tailscaled speaks, and
/// OpenMetrics only where the two agree.
const DIFFER: &[(&str, &str)] = &[
    // 0.0.4: "tokens can be separated by any number of blanks and/or tabs; leading and
    // trailing whitespace is ignored"; empty lines are allowed.
    ("bad_blank_line", "0.0.4 allows empty lines"),
    ("bad_help_4", "0.0.4 ignores whitespace before '#'"),
    (
        "bad_value_1",
        "0.0.4 allows two blanks between name and value",
    ),
    ("bad_value_2", "0.0.4 ignores a trailing tab"),
    ("bad_value_3", "0.0.4 ignores a trailing blank"),
    (
        "bad_type_6",
        "0.0.4 ignores a trailing blank after the type",
    ),
    (
        "bad_help_3",
        "0.0.4 lets a tab separate the HELP name from an empty docstring",
    ),
    (
        "bad_invalid_labels_6",
        "0.0.4 needs no blank between '}' and the value (they cannot merge)",
    ),
    // 0.0.4 HELP: "at least one more token is expected, which is the metric name. All
    // remaining tokens are the docstring"; only TYPE must precede a family's samples.
    (
        "bad_help_2",
        "0.0.4 allows a HELP line with a name and no docstring",
    ),
    (
        "bad_metadata_in_wrong_place_1",
        "0.0.4 allows HELP after the family's samples",
    ),
    // 0.0.4: a '#' line whose first token is not HELP or TYPE is a comment.
    ("bad_metadata", "'# FOO a x' is a 0.0.4 comment"),
    (
        "bad_histograms_4",
        "'#a_sum 0' is a 0.0.4 comment, so the histogram has neither _sum nor _count",
    ),
    (
        "bad_histograms_5",
        "'#a_count 0' is a 0.0.4 comment, so the histogram has neither _sum nor _count",
    ),
    // 0.0.4 has no '# EOF' (tailscaled never writes one).
    ("bad_no_eof", "an empty body is a valid 0.0.4 exposition"),
    // 0.0.4 spells the unknown type 'untyped'.
    ("bad_type_7", "'untyped' is a 0.0.4 type"),
    // The 0.0.4 grammar ends a label set with [ "," ] "}".
    (
        "bad_missing_or_extra_commas_2",
        "0.0.4 allows a trailing comma in a label set",
    ),
    // Counter values are not judged by the parser: NaN and negative counters reach the tracker,
    // which counts them as anomalies of their own kind and never ships them (DESIGN §4).
    (
        "bad_counter_values_0",
        "a NaN counter is the tracker's anomaly",
    ),
    (
        "bad_counter_values_1",
        "a negative counter is the tracker's anomaly",
    ),
    // 0.0.4 client libraries observe any float: sums and quantiles may be negative or NaN, and
    // a histogram with negative buckets still has a _sum.
    (
        "bad_counter_values_15",
        "a NaN summary _sum is valid 0.0.4 (a NaN was observed)",
    ),
    (
        "bad_counter_values_17",
        "a negative summary _sum is valid 0.0.4 (negative observations)",
    ),
    (
        "bad_counter_values_19",
        "a negative quantile is valid 0.0.4 (negative observations)",
    ),
    (
        "bad_histograms_3",
        "a histogram with negative buckets and a _sum is valid 0.0.4",
    ),
    // The parser keeps only the current family; these need memory of every family seen.
    (
        "bad_clashing_names_2",
        "family a_created declared before counter a, whose _created it clashes with",
    ),
    (
        "bad_grouping_or_ordering_3",
        "summary a's samples interleaved with family quantile",
    ),
];

struct Case {
    name: String,
    should_parse: bool,
    parses: bool,
    first_error: Option<String>,
}

fn run_case(dir: &Path) -> Case {
    let name = dir
        .file_name()
        .expect("case name")
        .to_string_lossy()
        .into_owned();
    let test: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("test.json")).expect("read test.json"))
            .expect("test.json is JSON");
    let file = test["file"].as_str().expect("test.json names its file");
    let should_parse = test["shouldParse"]
        .as_bool()
        .expect("test.json has shouldParse");
    let body = fs::read(dir.join(file)).expect("read the case's metrics");
    let first_error = parse(&body).find_map(Result::err).map(|e| e.to_string());
    Case {
        name,
        should_parse,
        parses: first_error.is_none(),
        first_error,
    }
}

#[test]
fn openmetrics_parser_suite() {
    let mut dirs: Vec<_> = fs::read_dir(SUITE)
        .expect("the conformance suite is in shared/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let differ: BTreeMap<&str, &str> = DIFFER.iter().copied().collect();
    assert_eq!(differ.len(), DIFFER.len(), "a case is listed twice");

    let (mut agree, mut on_purpose, mut failures) = (0, 0, Vec::new());
    for dir in &dirs {
        let case = run_case(dir);
        let listed = differ.get(case.name.as_str());
        let verdict = |parses: bool| if parses { "parses" } else { "fails" };
        match (case.parses == case.should_parse, listed) {
            (true, None) => agree += 1,
            (false, Some(_)) => on_purpose += 1,
            (true, Some(reason)) => failures.push(format!(
                "{}: listed as differing ({reason}) but now agrees with the suite",
                case.name
            )),
            (false, None) => failures.push(format!(
                "{}: suite says it {}, parser {}{}",
                case.name,
                verdict(case.should_parse),
                verdict(case.parses),
                case.first_error
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )),
        }
    }
    for name in differ.keys() {
        if !dirs
            .iter()
            .any(|d| d.file_name().is_some_and(|f| f == *name))
        {
            failures.push(format!("{name}: listed but not in the suite"));
        }
    }
    println!(
        "openmetrics-parsers: {} cases, {agree} agree, {on_purpose} differ on purpose (0.0.4)",
        dirs.len()
    );
    assert!(
        dirs.len() >= 200,
        "the suite looks incomplete: {} cases",
        dirs.len()
    );
    assert!(
        failures.is_empty(),
        "{} conformance failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
