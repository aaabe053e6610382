use crate::Sample;

/// Writes the canonical key of a raw series: `name{a="x",b="y"}` with labels sorted by name
/// and values escaped as in the exposition.
pub fn write_key(buf: &mut String, sample: &Sample<'_>) {
    buf.push_str(sample.name);
    if sample.labels.is_empty() {
        return;
    }
    let sorted = sample
        .labels
        .iter()
        .zip(sample.labels.iter().skip(1))
        .all(|((a, _), (b, _))| a <= b);
    buf.push('{');
    let mut push = |i: usize, k: &str, v: &str| {
        if i > 0 {
            buf.push(',');
        }
        buf.push_str(k);
        buf.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => buf.push_str("\\\\"),
                '"' => buf.push_str("\\\""),
                '\n' => buf.push_str("\\n"),
                c => buf.push(c),
            }
        }
        buf.push('"');
    };
    if sorted {
        for (i, (k, v)) in sample.labels.iter().enumerate() {
            push(i, k, &v);
        }
    } else {
        let mut labels: Vec<_> = sample.labels.iter().collect();
        labels.sort_by(|a, b| a.0.cmp(b.0));
        for (i, (k, v)) in labels.iter().enumerate() {
            push(i, k, v);
        }
    }
    buf.push('}');
}
