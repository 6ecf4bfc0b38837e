//! Precompressed variants: `FILE.br` or `FILE.gz` beside `FILE`, served in its place with
//! `Content-Encoding` when the request's `Accept-Encoding` allows that coding (RFC 9110
//! §12.5.3), as nginx's gzip_static and brotli_static do. Whenever a variant exists the answer
//! depends on the header, so it says `Vary: Accept-Encoding` (§12.5.5) either way.

use std::fs::{File, Metadata};
use std::path::Path;
use std::sync::Arc;

use super::files::Root;
use super::open_cache::OpenCache;

/// A variant to serve instead of the file itself, opened.
pub struct Variant {
    pub file: Arc<File>,
    pub meta: Metadata,
    /// The Content-Encoding it has.
    pub coding: &'static str,
}

/// Suffixes and their codings, in the order preferred.
const CODINGS: [(&str, &str); 2] = [("br", "br"), ("gz", "gzip")];

/// The variant of `rel` (under `root`) to serve for `accept` (None: the file itself), and
/// whether any variant exists. Looked up through the worker's `cache`: a variant that is not
/// there (the usual case) costs no open while the cache remembers so.
pub fn pick(
    root: &Root,
    rel: &Path,
    accept: Option<&str>,
    cache: &mut OpenCache,
) -> (Option<Variant>, bool) {
    let mut vary = false;
    for (suffix, coding) in CODINGS {
        let mut name = rel.as_os_str().to_owned();
        name.push(".");
        name.push(suffix);
        // A variant is a regular file inside the root, symlinks resolved; on the hot path it is
        // usually missing, which costs one failed open a second.
        let Some((file, meta)) = root
            .open_variant(Path::new(&name), cache)
            .filter(|(_, meta)| meta.is_file())
        else {
            continue;
        };
        vary = true;
        if accepts(accept, coding) {
            return (Some(Variant { file, meta, coding }), true);
        }
    }
    (None, vary)
}

/// `Accept-Encoding` allows `coding`: named (gzip also as x-gzip) with a q-value above 0, or
/// `*` above 0 when not named at all. No header: only identity (§12.5.3 lets a server assume
/// any, but a client that sent none may not decode one).
fn accepts(accept: Option<&str>, coding: &str) -> bool {
    let mut star = false;
    for item in accept.unwrap_or("").split(',') {
        let mut fields = item.split(';');
        let name = fields.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = fields
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if name == coding || (coding == "gzip" && name == "x-gzip") {
            return q > 0.0;
        }
        if name == "*" {
            star = q > 0.0;
        }
    }
    star
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_with_q_values() {
        assert!(accepts(Some("gzip, deflate, br"), "br"));
        assert!(accepts(Some("gzip, deflate"), "gzip"));
        assert!(!accepts(Some("gzip, deflate"), "br"));
        assert!(accepts(Some("x-gzip"), "gzip"));
        assert!(!accepts(Some("gzip;q=0"), "gzip"));
        assert!(!accepts(Some("gzip; q=0.000"), "gzip"));
        assert!(accepts(Some("gzip;q=0.5"), "gzip"));
        assert!(accepts(Some("*"), "br"));
        assert!(!accepts(Some("*, br;q=0"), "br"));
        assert!(!accepts(Some("*;q=0"), "gzip"));
        assert!(!accepts(None, "gzip"));
        assert!(!accepts(Some("identity"), "gzip"));
    }

    #[test]
    fn variants_are_picked_in_order_and_only_when_present() {
        let dir = std::env::temp_dir().join(format!("tapir-encoded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let root = Root::new(dir.canonicalize().unwrap());
        let f = Path::new("a.txt");
        std::fs::write(dir.join(f), b"a").unwrap();
        // One worker's cache, its clock moved by hand: what it learnt holds for VALID_US.
        let mut cache = OpenCache::default();
        let mut now = 0;
        let mut later = |cache: &mut OpenCache| {
            now += super::super::open_cache::VALID_US;
            cache.set_now(now);
        };
        assert!(matches!(
            pick(&root, f, Some("gzip"), &mut cache),
            (None, false)
        ));
        std::fs::write(dir.join("a.txt.gz"), b"gz").unwrap();
        assert!(
            matches!(pick(&root, f, Some("gzip"), &mut cache), (None, false)),
            "a variant created a moment ago is not looked for again yet"
        );
        later(&mut cache);
        let (v, vary) = pick(&root, f, Some("gzip, br"), &mut cache);
        assert_eq!((v.map(|v| v.coding), vary), (Some("gzip"), true));
        std::fs::write(dir.join("a.txt.br"), b"br").unwrap();
        later(&mut cache);
        let (v, _) = pick(&root, f, Some("gzip, br"), &mut cache);
        assert_eq!(v.map(|v| v.coding), Some("br"));
        let (v, vary) = pick(&root, f, None, &mut cache);
        assert!(v.is_none() && vary, "identity, but it varies");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
