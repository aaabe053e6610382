//! Drives the exposition parser over arbitrary bytes and checks what must hold for any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tailship_collector::{Event, parse};

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|&b| b == b'\n').count() as u32;
    let (mut last_line, mut items, mut after_eof) = (0, 0usize, 0);
    let mut parser = parse(data);
    for item in parser.by_ref() {
        items += 1;
        assert!(after_eof < 2, "more than one item after # EOF");
        if after_eof > 0 {
            after_eof += 1;
        }
        match item {
            Err(e) => {
                // Line numbers are 1-based, never go back, and stay within the body.
                assert!(
                    e.line >= 1 && e.line >= last_line && e.line <= lines + 1,
                    "{e} after line {last_line}"
                );
                assert!(
                    !e.reason.is_empty() && !e.reason.starts_with(char::is_uppercase),
                    "{e}"
                );
                last_line = e.line;
            }
            Ok(Event::Sample(s)) => {
                assert!(!s.name.is_empty() && s.name.is_ascii() && s.name.starts_with(s.family));
                let mut n = 0;
                for (name, value) in s.labels.iter() {
                    n += 1;
                    assert!(!name.is_empty() && name.is_ascii());
                    // `get` finds the first label of that name, and names do not repeat.
                    assert_eq!(s.labels.get(name).as_deref(), Some(&*value));
                }
                assert_eq!(n == 0, s.labels.is_empty());
                let v: f64 = s.value_text.parse().expect("value_text parses");
                assert!(v.to_bits() == s.value.to_bits() || (v.is_nan() && s.value.is_nan()));
                if let Some(ts) = s.timestamp {
                    assert!(
                        ts.parse::<f64>().is_ok_and(f64::is_finite),
                        "timestamp {ts}"
                    );
                }
            }
            Ok(Event::Eof) => after_eof = 1,
            Ok(
                Event::Type { family, .. }
                | Event::Unit { family, .. }
                | Event::Help { family, .. },
            ) => {
                assert!(!family.is_empty() && family.is_ascii());
            }
        }
    }
    // At most a line error, a histogram error and an event per line, plus the end.
    assert!(
        items <= 3 * lines as usize + 2,
        "{items} items for {lines} lines"
    );
    assert!(parser.next().is_none(), "the parser is fused");
});
