use crate::Sample;

/// Up to this many labels out of order are sorted without allocating.
const FEW: usize = 8;

/// The canonical key of `sample` without writing it, when the text as written already is
/// one: labels in name order, no escapes, nothing between the pairs but commas (as
/// tailscaled and the Prometheus clients write them). Else [`write_key`] makes one.
pub fn written_key<'a>(sample: &Sample<'a>) -> Option<&'a str> {
    if sample.labels.is_empty() {
        return Some(sample.name);
    }
    let written = sample.written?;
    // The name, the braces, and per pair its name, `="`, its value, `"`, and a comma
    // between pairs: the text holds at least these, and is canonical when it holds no more.
    let mut len = sample.name.len() + 2;
    let mut previous = "";
    for (i, (k, v)) in sample.labels.raw_pairs().enumerate() {
        if i > 0 {
            if !ascending(previous, k) {
                return None;
            }
            len += 1;
        }
        if v.as_bytes().contains(&b'\\') {
            return None;
        }
        len += k.len() + v.len() + 3;
        previous = k;
    }
    (len == written.len()).then_some(written)
}

/// `a < b`, settled by the first bytes when they differ (label names mostly do) without a
/// call to `memcmp`.
fn ascending(a: &str, b: &str) -> bool {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x < y,
        _ => a < b,
    }
}

/// Writes the canonical key of a raw series: `name{a="x",b="y"}` with labels sorted by name
/// and values escaped as in the exposition.
pub fn write_key(buf: &mut String, sample: &Sample<'_>) {
    buf.push_str(sample.name);
    if sample.labels.is_empty() {
        return;
    }
    buf.push('{');
    let start = buf.len();
    // Labels in order, as exporters write them: one pass. Else start again.
    let mut previous = "";
    let mut sorted = true;
    for (i, (k, v)) in sample.labels.iter().enumerate() {
        if k < previous {
            sorted = false;
            break;
        }
        push_label(buf, i, k, &v);
        previous = k;
    }
    if !sorted {
        buf.truncate(start);
        write_unsorted(buf, sample);
    }
    buf.push('}');
}

/// The labels of a sample whose labels are not in name order, in name order.
fn write_unsorted(buf: &mut String, sample: &Sample<'_>) {
    if sample.labels.iter().nth(FEW).is_none() {
        // A few labels: one pass per label for the next name up, which needs no buffer
        // (names do not repeat in a label set).
        let mut last: Option<&str> = None;
        for i in 0..=FEW {
            let above = sample
                .labels
                .iter()
                .filter(|(k, _)| last.is_none_or(|l| *k > l));
            let Some((k, v)) = above.min_by(|a, b| a.0.cmp(b.0)) else {
                break;
            };
            push_label(buf, i, k, &v);
            last = Some(k);
        }
    } else {
        let mut labels: Vec<_> = sample.labels.iter().collect();
        labels.sort_by(|a, b| a.0.cmp(b.0));
        for (i, (k, v)) in labels.iter().enumerate() {
            push_label(buf, i, k, v);
        }
    }
}

/// `k="v"`, after a comma unless it is the first (`i` 0), the value escaped.
fn push_label(buf: &mut String, i: usize, k: &str, v: &str) {
    if i > 0 {
        buf.push(',');
    }
    buf.push_str(k);
    buf.push_str("=\"");
    if !v.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        buf.push_str(v);
    } else {
        for c in v.chars() {
            match c {
                '\\' => buf.push_str("\\\\"),
                '"' => buf.push_str("\\\""),
                '\n' => buf.push_str("\\n"),
                c => buf.push(c),
            }
        }
    }
    buf.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(line: &str, expected: &str) {
        let body = format!("{line}\n");
        let Some(Ok(crate::Event::Sample(sample))) = crate::parse(body.as_bytes()).next() else {
            panic!("{line} is not a sample");
        };
        let mut key = String::new();
        write_key(&mut key, &sample);
        assert_eq!(key, expected);
        if let Some(written) = written_key(&sample) {
            assert_eq!(written, expected, "the text as written, taken as the key");
        }
    }

    fn sample_of(body: &str) -> crate::Sample<'_> {
        match crate::parse(body.as_bytes()).next() {
            Some(Ok(crate::Event::Sample(sample))) => sample,
            other => panic!("{body:?} is not a sample: {other:?}"),
        }
    }

    #[test]
    fn the_text_as_written_is_the_key_when_it_is_canonical() {
        for (line, key) in [
            ("a 1\n", "a"),
            ("a{a=\"1\"} 1\n", "a{a=\"1\"}"),
            ("a{a=\"1\",b=\"x y\"} 1\n", "a{a=\"1\",b=\"x y\"}"),
            ("a{a=\"\",b=\"é\"} 1\n", "a{a=\"\",b=\"é\"}"),
            ("a{} 1\n", "a"),
        ] {
            assert_eq!(written_key(&sample_of(line)), Some(key), "{line}");
        }
        // Out of order, an escape, a trailing comma, blanks, a timestamp: written out.
        for line in [
            "a{b=\"2\",a=\"1\"} 1\n",
            "a{a=\"x\\\"y\"} 1\n",
            "a{a=\"1\",} 1\n",
            "a{a=\"1\", b=\"2\"} 1\n",
            "a {a=\"1\"} 1\n",
            "a{a=\"1\"} 1 1700000000000\n",
        ] {
            assert_eq!(written_key(&sample_of(line)), None, "{line}");
        }
    }

    proptest::proptest! {
        /// Whatever the text, the key taken as written is the key written out, and the key's
        /// labels are the sample's.
        #[test]
        fn a_key_taken_as_written_is_the_written_key(
            labels in proptest::collection::vec(
                // Values as written: plain, or with escapes, `\q` (kept as written) among them.
                ("[a-c]{1,2}", proptest::prop_oneof![4 => "[a-z é]{0,4}", 1 => r#"(\\[\\"nq]|a){1,3}"#]),
                0..4,
            ),
            sep in proptest::prop_oneof![4 => proptest::strategy::Just(","), 1 => proptest::strategy::Just(", "), 1 => proptest::strategy::Just(" ,")],
            trailing in proptest::bool::weighted(0.2),
            blank in proptest::bool::weighted(0.2),
        ) {
            let mut seen = std::collections::BTreeSet::new();
            let pairs: Vec<String> = labels
                .iter()
                .filter(|(k, _)| seen.insert(k.clone()))
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            let mut text = pairs.join(sep);
            if trailing && !pairs.is_empty() {
                text.push(',');
            }
            let body = format!("m{}{{{text}}} 1\n", if blank { " " } else { "" });
            let sample = sample_of(&body);
            let mut key = String::new();
            write_key(&mut key, &sample);
            if let Some(written) = written_key(&sample) {
                proptest::prop_assert_eq!(written, key.as_str());
            }
            // The key's label text holds the sample's labels (the tracker reads them there).
            let pairs = |labels: crate::Labels<'_>| -> Vec<(String, String)> {
                let mut pairs: Vec<_> = labels.iter().map(|(k, v)| (k.to_owned(), v.into_owned())).collect();
                pairs.sort();
                pairs
            };
            let inner = key
                .strip_prefix(sample.name)
                .and_then(|rest| rest.strip_prefix('{'))
                .and_then(|rest| rest.strip_suffix('}'))
                .unwrap_or_default();
            proptest::prop_assert_eq!(pairs(crate::Labels::of_key(inner)), pairs(sample.labels));
        }
    }

    #[test]
    fn labels_in_name_order_values_escaped() {
        check("a 1", "a");
        check(r#"a{b="2",a="1"} 1"#, r#"a{a="1",b="2"}"#);
        check(r#"a{a="x\"y",b="\q", } 1"#, r#"a{a="x\"y",b="\\q"}"#);
        check(
            r#"a{c="x\"y\\z\n",a="1",b="2"} 1"#,
            r#"a{a="1",b="2",c="x\"y\\z\n"}"#,
        );
        let many: Vec<_> = (0..10).rev().map(|i| format!("l{i}=\"{i}\"")).collect();
        let sorted: Vec<_> = (0..10).map(|i| format!("l{i}=\"{i}\"")).collect();
        check(
            &format!("a{{{}}} 1", many.join(",")),
            &format!("a{{{}}}", sorted.join(",")),
        );
    }
}
