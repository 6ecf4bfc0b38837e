//! A file's validators and the conditions on them (RFC 9110 §8.8, §13): a strong entity tag
//! made of the file's inode, modification time and length (any change to the bytes served
//! changes one of them, a precompressed variant being another file), `If-None-Match` compared
//! weakly, `If-Match` and `If-Range` strongly, as the RFC says.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::{SystemTime, UNIX_EPOCH};

/// The file's strong entity tag, quoted.
pub fn etag(meta: &Metadata) -> String {
    let nanos = (meta.mtime() as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(meta.mtime_nsec() as u64);
    format!("\"{:x}-{:x}-{:x}\"", meta.ino(), nanos, meta.len())
}

/// The opaque part of an entity tag, and whether it is weak; None for something that is not
/// an entity tag.
fn opaque(tag: &str) -> Option<(&str, bool)> {
    let (t, weak) = match tag.strip_prefix("W/") {
        Some(t) => (t, true),
        None => (tag, false),
    };
    let inner = t.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('"')).then_some((inner, weak))
}

/// `If-None-Match: tags` fails for the representation tagged `etag` (so GET and HEAD are
/// answered 304): `*`, or one of the tags matches by weak comparison (§13.1.2).
pub fn none_match_fails(tags: &str, etag: &str) -> bool {
    let Some((ours, _)) = opaque(etag) else {
        return false;
    };
    tags.trim() == "*"
        || tags
            .split(',')
            .filter_map(|t| opaque(t.trim()))
            .any(|(theirs, _)| theirs == ours)
}

/// `If-Match: tags` holds for the representation tagged `etag`: `*` (it exists), or one of
/// the tags matches by strong comparison, a weak tag never (§13.1.1).
pub fn match_holds(tags: &str, etag: &str) -> bool {
    let Some((ours, false)) = opaque(etag) else {
        return false;
    };
    tags.trim() == "*"
        || tags
            .split(',')
            .filter_map(|t| opaque(t.trim()))
            .any(|(theirs, weak)| !weak && theirs == ours)
}

/// `If-Range: value` holds for the file tagged `etag` modified at `mtime`: an entity tag that
/// matches strongly (neither weak), or a date equal to Last-Modified (§13.1.5).
pub fn if_range_holds(value: &str, etag: &str, mtime: SystemTime) -> bool {
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return match (opaque(value), opaque(etag)) {
            (Some((theirs, false)), Some((ours, false))) => theirs == ours,
            _ => false,
        };
    }
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    httpdate::parse_http_date(value).is_ok_and(|d| secs(d) == secs(mtime))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn none_match_compares_weakly_and_if_range_strongly() {
        let ours = "\"1-2-3\"";
        assert!(none_match_fails("\"1-2-3\"", ours));
        assert!(none_match_fails("W/\"1-2-3\"", ours));
        assert!(none_match_fails("\"x\", \"1-2-3\"", ours));
        assert!(none_match_fails("*", ours));
        assert!(!none_match_fails("\"1-2-4\"", ours));
        assert!(!none_match_fails("1-2-3", ours), "unquoted is no tag");
        assert!(match_holds("\"1-2-3\"", ours));
        assert!(match_holds("\"x\", \"1-2-3\"", ours));
        assert!(match_holds("*", ours));
        assert!(
            !match_holds("W/\"1-2-3\"", ours),
            "If-Match compares strongly"
        );
        assert!(!match_holds("\"1-2-4\"", ours));
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert!(if_range_holds("\"1-2-3\"", ours, t));
        assert!(!if_range_holds("W/\"1-2-3\"", ours, t), "weak never holds");
        assert!(!if_range_holds("\"9\"", ours, t));
        assert!(if_range_holds("Sun, 06 Nov 1994 08:49:37 GMT", ours, t));
        assert!(!if_range_holds("Sun, 06 Nov 1994 08:49:38 GMT", ours, t));
        assert!(!if_range_holds("garbage", ours, t));
    }

    #[test]
    fn a_tag_changes_with_the_file() {
        let dir = std::env::temp_dir().join(format!("tapir-etag-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("f");
        std::fs::write(&f, b"one").unwrap();
        let a = etag(&std::fs::metadata(&f).unwrap());
        std::fs::write(&f, b"three").unwrap();
        let b = etag(&std::fs::metadata(&f).unwrap());
        assert!(a.starts_with('"') && a.ends_with('"'), "{a}");
        assert_ne!(a, b);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
