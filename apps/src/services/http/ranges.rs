//! Byte ranges (RFC 9110 §14): the `Range` header against a representation's length, and the
//! `multipart/byteranges` body that answers several ranges at once (§14.6).

use super::response::Piece;

/// More ranges than this in one header are not worth the parts: the whole body is sent
/// instead (RFC 9110 §14.2 lets a server ignore such a header).
pub const MAX_RANGES: usize = 16;

/// A `Range: bytes=...` header against a body of `len` bytes (RFC 9110 §14.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAsk {
    /// Serve the whole body: no header, one this server does not honour (another unit, a
    /// malformed range-set, too many ranges).
    Whole,
    /// These inclusive byte ranges, in the order asked, overlapping and adjacent ones
    /// coalesced (§14.2); never empty.
    Parts(Vec<(u64, u64)>),
    /// No byte of it exists: 416.
    Unsatisfiable,
}

/// One range-spec: None when malformed, Some(None) when well-formed but past the end.
fn range_spec(spec: &str, len: u64) -> Option<Option<(u64, u64)>> {
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if a.is_empty() {
        // A suffix: the last n bytes.
        if !digits(b) {
            return None;
        }
        let n = b.parse::<u64>().unwrap_or(u64::MAX);
        if n == 0 || len == 0 {
            return Some(None);
        }
        return Some(Some((len.saturating_sub(n), len - 1)));
    }
    if !digits(a) {
        return None;
    }
    let start = a.parse::<u64>().ok()?;
    let end = if b.is_empty() {
        u64::MAX
    } else if digits(b) {
        // A last-pos past u64 is as good as the end.
        let e = b.parse::<u64>().unwrap_or(u64::MAX);
        if e < start {
            return None;
        }
        e
    } else {
        return None;
    };
    if start >= len {
        return Some(None);
    }
    Some(Some((start, end.min(len - 1))))
}

/// Merges ranges that overlap or touch into the first of them, keeping the order asked
/// (RFC 9110 §15.3.7.2: parts in the order of their range-specs, less those coalesced).
fn coalesce(ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for mut r in ranges {
        // Absorb every kept range that `r` meets, then put `r` where the first of them was.
        let mut at = None;
        let mut i = 0;
        while i < out.len() {
            let m = out[i];
            if r.0 <= m.1.saturating_add(1) && m.0 <= r.1.saturating_add(1) {
                r = (r.0.min(m.0), r.1.max(m.1));
                out.remove(i);
                at.get_or_insert(i);
            } else {
                i += 1;
            }
        }
        match at {
            Some(i) => out.insert(i, r),
            None => out.push(r),
        }
    }
    out
}

pub fn parse_range(header: Option<&str>, len: u64) -> RangeAsk {
    let Some(set) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    // A list may hold empty elements, which do not count (RFC 9110 §5.6.1).
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if specs.is_empty() || specs.len() > MAX_RANGES {
        return RangeAsk::Whole;
    }
    let mut ranges = Vec::with_capacity(specs.len());
    for spec in specs {
        match range_spec(spec, len) {
            None => return RangeAsk::Whole,
            Some(None) => {}
            Some(Some(r)) => ranges.push(r),
        }
    }
    if ranges.is_empty() {
        return RangeAsk::Unsatisfiable;
    }
    RangeAsk::Parts(coalesce(ranges))
}

/// A `multipart/byteranges` body: its pieces (part heads and file spans) and the boundary that
/// the Content-Type names.
pub fn multipart(ranges: &[(u64, u64)], len: u64, content_type: &str) -> (String, Vec<Piece>) {
    let boundary = boundary();
    let mut pieces = Vec::with_capacity(ranges.len() * 2 + 1);
    for (i, &(start, end)) in ranges.iter().enumerate() {
        // The CRLF before a delimiter belongs to it (RFC 2046 §5.1.1); the first has no
        // preamble to end.
        let lead = if i == 0 { "" } else { "\r\n" };
        let head = format!(
            "{lead}--{boundary}\r\nContent-Type: {content_type}\r\n\
Content-Range: bytes {start}-{end}/{len}\r\n\r\n"
        );
        pieces.push(Piece::Bytes(head.into_bytes()));
        pieces.push(Piece::Span {
            start,
            len: end - start + 1,
        });
    }
    pieces.push(Piece::Bytes(format!("\r\n--{boundary}--\r\n").into_bytes()));
    (boundary, pieces)
}

/// A boundary unlikely to occur in a file: 20 hex digits from the clock and a counter.
fn boundary() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mix = (nanos ^ n.rotate_left(40)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!("tapir{mix:016x}{:04x}", n & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeAsk::*;

    #[test]
    fn single_ranges_parse_as_rfc_9110_says() {
        assert_eq!(parse_range(None, 10), Whole);
        assert_eq!(parse_range(Some("bytes=2-5"), 10), Parts(vec![(2, 5)]));
        assert_eq!(parse_range(Some("bytes=2-"), 10), Parts(vec![(2, 9)]));
        assert_eq!(parse_range(Some("bytes=2-99"), 10), Parts(vec![(2, 9)]));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Parts(vec![(7, 9)]));
        assert_eq!(parse_range(Some("bytes=-30"), 10), Parts(vec![(0, 9)]));
        assert_eq!(
            parse_range(Some("bytes=0-99999999999999999999999"), 10),
            Parts(vec![(0, 9)])
        );
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), Whole);
        assert_eq!(parse_range(Some("bytes=x-1"), 10), Whole);
        assert_eq!(parse_range(Some("bytes=+1-2"), 10), Whole);
        assert_eq!(parse_range(Some("bytes="), 10), Whole);
    }

    #[test]
    fn several_ranges_keep_their_order_and_coalesce_when_they_meet() {
        assert_eq!(
            parse_range(Some("bytes=0-1,4-5"), 10),
            Parts(vec![(0, 1), (4, 5)])
        );
        assert_eq!(
            parse_range(Some("bytes=6-7, 0-1"), 10),
            Parts(vec![(6, 7), (0, 1)])
        );
        // Overlapping, adjacent, and a later range that bridges two earlier ones.
        assert_eq!(parse_range(Some("bytes=0-4,3-6"), 10), Parts(vec![(0, 6)]));
        assert_eq!(parse_range(Some("bytes=0-1,2-3"), 10), Parts(vec![(0, 3)]));
        assert_eq!(
            parse_range(Some("bytes=0-1,5-6,8-9,2-4"), 10),
            Parts(vec![(0, 6), (8, 9)])
        );
        // Unsatisfiable specs drop out; all of them unsatisfiable is 416.
        assert_eq!(
            parse_range(Some("bytes=0-1,50-60"), 10),
            Parts(vec![(0, 1)])
        );
        assert_eq!(parse_range(Some("bytes=50-60,70-"), 10), Unsatisfiable);
        // Empty list elements are ignored; one malformed spec ignores the header.
        assert_eq!(
            parse_range(Some("bytes=0-1,,4-5,"), 10),
            Parts(vec![(0, 1), (4, 5)])
        );
        assert_eq!(parse_range(Some("bytes=0-1,x"), 10), Whole);
        let many: Vec<String> = (0..=MAX_RANGES)
            .map(|i| format!("{}-{}", 2 * i, 2 * i))
            .collect();
        let many = format!("bytes={}", many.join(","));
        assert_eq!(parse_range(Some(&many), 100), Whole);
    }

    #[test]
    fn a_multipart_body_names_each_part() {
        let (b, pieces) = multipart(&[(0, 1), (4, 5)], 10, "text/plain");
        let text: String = pieces
            .iter()
            .map(|p| match p {
                Piece::Bytes(v) => String::from_utf8(v.clone()).unwrap(),
                Piece::Span { start, len } => format!("<{start}+{len}>"),
            })
            .collect();
        assert_eq!(
            text,
            format!(
                "--{b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n<0+2>\
\r\n--{b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 4-5/10\r\n\r\n<4+2>\r\n--{b}--\r\n"
            )
        );
        assert_ne!(boundary(), boundary());
    }
}
