use crate::Sample;

/// Up to this many labels out of order are sorted without allocating.
const FEW: usize = 8;

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
