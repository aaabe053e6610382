//! CBOR diagnostic notation for snapshots of what the SDK sent.

use std::fmt::Write as _;

use ciborium::Value;

/// CBOR diagnostic notation (RFC 8949 §8), maps in the order sent: stable for snapshots.
pub(crate) fn diagnostic(v: &Value) -> String {
    let mut out = String::new();
    write_diagnostic(&mut out, v, 0);
    out
}

fn write_diagnostic(out: &mut String, v: &Value, depth: usize) {
    let pad = "  ".repeat(depth + 1);
    match v {
        Value::Integer(i) => {
            let _ = write!(out, "{}", i128::from(*i));
        }
        Value::Float(f) => {
            let _ = write!(out, "{f:?}");
        }
        Value::Text(s) => {
            let _ = write!(out, "{s:?}");
        }
        Value::Bytes(b) => {
            let _ = write!(
                out,
                "h'{}'",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            );
        }
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Null => out.push_str("null"),
        Value::Tag(t, inner) => {
            let _ = write!(out, "{t}(");
            write_diagnostic(out, inner, depth);
            out.push(')');
        }
        Value::Array(items) => {
            out.push_str("[\n");
            for item in items {
                out.push_str(&pad);
                write_diagnostic(out, item, depth + 1);
                out.push_str(",\n");
            }
            out.push_str(&"  ".repeat(depth));
            out.push(']');
        }
        Value::Map(entries) => {
            out.push_str("{\n");
            for (k, v) in entries {
                out.push_str(&pad);
                write_diagnostic(out, k, depth + 1);
                out.push_str(": ");
                write_diagnostic(out, v, depth + 1);
                out.push_str(",\n");
            }
            out.push_str(&"  ".repeat(depth));
            out.push('}');
        }
        other => {
            let _ = write!(out, "{other:?}");
        }
    }
}
