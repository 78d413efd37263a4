//! HTTP `Range` requests (RFC 9110, section 14), as much of them as a
//! video player uses: one byte range, `bytes=a-b`, `bytes=a-` or
//! `bytes=-n`. Anything else (another unit, several ranges, a malformed
//! header) is ignored and the whole asset served, as the RFC allows.

use std::ops::Range;

/// What to answer for a `Range` header on an asset of a known size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranged {
    /// 200 with the whole asset.
    Full,
    /// 206 with these bytes (never empty, within the asset).
    Partial(Range<u64>),
    /// 416: no byte of the asset is in the range.
    Unsatisfiable,
}

/// The answer to `header` for an asset of `size` bytes.
pub fn resolve(header: Option<&str>, size: u64) -> Ranged {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ranged::Full;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return Ranged::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ranged::Full;
    };
    let number = |text: &str| -> Option<u64> {
        let text = text.trim();
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    let (first, last) = (first.trim(), last.trim());
    match (first.is_empty(), last.is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match number(last) {
            Some(0) => Ranged::Unsatisfiable,
            Some(n) if size > 0 => Ranged::Partial(size.saturating_sub(n)..size),
            Some(_) => Ranged::Unsatisfiable,
            None => Ranged::Full,
        },
        // `a-`: from a to the end.
        (false, true) => match number(first) {
            Some(a) if a < size => Ranged::Partial(a..size),
            Some(_) => Ranged::Unsatisfiable,
            None => Ranged::Full,
        },
        // `a-b`: a to b inclusive (b past the end means the end).
        (false, false) => match (number(first), number(last)) {
            (Some(a), Some(b)) if a > b => Ranged::Full,
            (Some(a), Some(_)) if a >= size => Ranged::Unsatisfiable,
            (Some(a), Some(b)) => Ranged::Partial(a..b.saturating_add(1).min(size)),
            _ => Ranged::Full,
        },
        (true, true) => Ranged::Full,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_ranges_a_player_sends() {
        let size = 1000;
        for (header, expected) in [
            (None, Ranged::Full),
            (Some("bytes=0-"), Ranged::Partial(0..1000)),
            (Some("bytes=0-0"), Ranged::Partial(0..1)),
            (Some("bytes=100-199"), Ranged::Partial(100..200)),
            (Some("bytes=900-5000"), Ranged::Partial(900..1000)),
            (Some("bytes=-100"), Ranged::Partial(900..1000)),
            (Some("bytes=-5000"), Ranged::Partial(0..1000)),
            (Some(" bytes= 10 - 19 "), Ranged::Partial(10..20)),
            (Some("bytes=1000-"), Ranged::Unsatisfiable),
            (Some("bytes=1000-1001"), Ranged::Unsatisfiable),
            (Some("bytes=-0"), Ranged::Unsatisfiable),
            (Some("bytes=5-4"), Ranged::Full),
            (Some("bytes=0-1,5-6"), Ranged::Full),
            (Some("items=0-1"), Ranged::Full),
            (Some("bytes=a-b"), Ranged::Full),
            (Some("bytes=-"), Ranged::Full),
            (Some("bytes=+1-2"), Ranged::Full),
            (Some("bytes=99999999999999999999-"), Ranged::Full),
            (Some("bytes=0-99999999999999999999"), Ranged::Full),
            (
                Some("bytes=18446744073709551615-18446744073709551615"),
                Ranged::Unsatisfiable,
            ),
        ] {
            assert_eq!(resolve(header, size), expected, "{header:?}");
        }
        assert_eq!(resolve(Some("bytes=0-"), 0), Ranged::Unsatisfiable);
        assert_eq!(resolve(Some("bytes=-1"), 0), Ranged::Unsatisfiable);
        assert_eq!(resolve(None, 0), Ranged::Full);
    }

    proptest! {
        /// Whatever the header, a partial answer is a non-empty range
        /// inside the asset.
        #[test]
        fn a_partial_answer_is_never_empty_nor_past_the_end(header in ".{0,40}", size in 0u64..5000) {
            if let Ranged::Partial(range) = resolve(Some(&header), size) {
                prop_assert!(range.start < range.end && range.end <= size, "{header:?} {range:?}");
            }
        }

        #[test]
        fn every_well_formed_range_is_answered(a in 0u64..3000, b in 0u64..3000, size in 1u64..2000) {
            let header = format!("bytes={a}-{b}");
            let answer = resolve(Some(&header), size);
            let expected = if a > b {
                Ranged::Full
            } else if a >= size {
                Ranged::Unsatisfiable
            } else {
                Ranged::Partial(a..(b + 1).min(size))
            };
            prop_assert_eq!(answer, expected);
        }
    }
}
