//! Byte classes and searches shared by the line readers.

/// Byte classes, one bit each: test with [`is`], skip runs with [`skip`].
pub(super) const NAME_START: u8 = 1; // [a-zA-Z_]
pub(super) const LABEL: u8 = 2; // [a-zA-Z0-9_]
pub(super) const METRIC: u8 = 4; // [a-zA-Z0-9_:]
pub(super) const WS: u8 = 8; // blank and tab
pub(super) const SEP: u8 = 16; // blank, tab and ',' (between labels)
pub(super) const ASSIGN: u8 = 32; // blank, tab and '=' (between a label's name and value)

static CLASSES: [u8; 256] = {
    let mut t = [0; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphabetic() || c == b'_' {
            t[b] |= NAME_START;
        }
        if c.is_ascii_alphanumeric() || c == b'_' {
            t[b] |= LABEL | METRIC;
        }
        match c {
            b':' => t[b] |= METRIC,
            b' ' | b'\t' => t[b] = WS | SEP | ASSIGN,
            b',' => t[b] |= SEP,
            b'=' => t[b] |= ASSIGN,
            _ => {}
        }
        b += 1;
    }
    t
};

/// Whether `b` is of `class` (one class or several or-ed).
pub(super) fn is(b: u8, class: u8) -> bool {
    CLASSES[usize::from(b)] & class != 0
}

/// The first index from `i` on whose byte is not of `class`.
pub(super) fn skip(s: &[u8], mut i: usize, class: u8) -> usize {
    while s.get(i).is_some_and(|&b| is(b, class)) {
        i += 1;
    }
    i
}

/// The index of the first byte that is `a` or `b`, eight bytes at a time.
pub(super) fn find2(s: &[u8], a: u8, b: u8) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // The lowest zero byte of `w` is the lowest one whose high bit this sets (higher ones
    // may be set wrongly by a borrow, never lower ones).
    let zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let (wa, wb) = (u64::from_ne_bytes([a; 8]), u64::from_ne_bytes([b; 8]));
    let mut chunks = s.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().ok()?);
        let found = zero(word ^ wa) | zero(word ^ wb);
        if found != 0 {
            return Some(base + found.trailing_zeros() as usize / 8);
        }
        base += 8;
    }
    let tail = chunks.remainder().iter().position(|&c| c == a || c == b);
    tail.map(|i| base + i)
}

/// Whether `a` and `b` are the same bytes, compared eight at a time. `==` on slices calls
/// `bcmp`, which in musl (the static release build) is a byte loop behind a call; what the
/// parser and the tracker compare per sample (a name with its family's, a series key) is a
/// few dozen bytes, mostly equal.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], i: usize| {
        s.get(i..i + 8)
            .and_then(|w| w.try_into().ok())
            .map(u64::from_ne_bytes)
    };
    // Whole words, then the last eight bytes (overlapping the words before when `n` is not a
    // multiple of eight).
    (0..n / 8).all(|k| word(a, 8 * k) == word(b, 8 * k)) && word(a, n - 8) == word(b, n - 8)
}

/// Whether `s` starts with `prefix`, as [`same`] compares.
pub(crate) fn starts_with(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len()).is_some_and(|head| same(head, prefix))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn classes() {
        let all = |class| (0..=255u8).filter(|&b| is(b, class)).collect::<Vec<_>>();
        let ascii = |s: &str| {
            let mut v = s.bytes().collect::<Vec<_>>();
            v.sort_unstable();
            v
        };
        let letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        assert_eq!(all(NAME_START), ascii(&format!("{letters}_")));
        assert_eq!(all(LABEL), ascii(&format!("{letters}_0123456789")));
        assert_eq!(all(METRIC), ascii(&format!("{letters}_:0123456789")));
        assert_eq!(all(WS), ascii(" \t"));
        assert_eq!(all(SEP), ascii(" \t,"));
        assert_eq!(all(ASSIGN), ascii(" \t="));
    }

    proptest! {
        #[test]
        fn find2_matches_a_plain_scan(
            input in proptest::collection::vec(prop_oneof![Just(b'"'), Just(b'\\'), Just(0xa2), any::<u8>()], 0..40),
        ) {
            let plain = input.iter().position(|&c| c == b'"' || c == b'\\');
            prop_assert_eq!(find2(&input, b'"', b'\\'), plain);
        }

        /// Pairs that differ in one byte anywhere, or in length, as well as equal ones.
        #[test]
        fn same_is_slice_equality(
            a in proptest::collection::vec(any::<u8>(), 0..40),
            flip in any::<proptest::sample::Index>(),
            bit in 0..8u8,
            cut in 0..3usize,
        ) {
            let mut b = a.clone();
            prop_assert!(same(&a, &b));
            if !b.is_empty() {
                let i = flip.index(b.len());
                b[i] ^= 1 << bit;
                prop_assert!(!same(&a, &b));
                prop_assert!(!starts_with(&a, &b));
                b[i] ^= 1 << bit;
            }
            b.truncate(b.len().saturating_sub(cut));
            prop_assert_eq!(same(&a, &b), a == b);
            prop_assert!(starts_with(&a, &b));
            prop_assert_eq!(starts_with(&b, &a), a == b);
        }
    }
}
