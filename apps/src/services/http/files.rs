//! What a GET of a path under the root means: a file (whole, or a byte range), a directory index,
//! a redirect to a directory's slash, or an error. Paths that leave the root are refused before
//! the file system is touched, and again after symlinks are resolved.

use std::fmt::Write as _;
use std::fs::{self, File, Metadata};
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use engine::sys::fs::BeneathError;

use super::encoded;
use super::open_cache::{OpenCache, Refused};
use super::ranges::{multipart, parse_range, RangeAsk};
use super::response::{Body, Piece, Response};
use super::validators;

/// Decodes %XX escapes; None for a bad escape, a decoded NUL or bytes that are not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            let v = u8::from_str_radix(hex, 16).ok()?;
            if v == 0 {
                return None;
            }
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Escapes a path segment for an href.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Content-Type by extension.
pub fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt" | "text" | "log" | "md") => "text/plain; charset=utf-8",
        Some("css") => "text/css",
        Some("js" | "mjs") => "text/javascript",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("csv") => "text/csv",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        Some("webp") => "image/webp",
        Some("pdf") => "application/pdf",
        Some("wasm") => "application/wasm",
        Some("gz") => "application/gzip",
        Some("zip") => "application/zip",
        Some("tar") => "application/x-tar",
        Some("mp4") => "video/mp4",
        Some("mp3") => "audio/mpeg",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// What the request asked for, beyond the path.
#[derive(Default)]
pub struct Ask<'a> {
    pub range: Option<&'a str>,
    pub if_range: Option<&'a str>,
    pub if_match: Option<&'a str>,
    pub if_unmodified_since: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub accept_encoding: Option<&'a str>,
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The directory served: its resolved path and a handle that request paths are opened beneath
/// in one system call (openat2 with `RESOLVE_BENEATH`), so a request costs no walk of the whole
/// path in user space. Without the handle (openat2 refused) paths are resolved as before:
/// canonicalized, then compared with the root.
pub struct Root {
    path: PathBuf,
    dir: Option<File>,
}

impl Root {
    /// `path` is the root already canonicalized.
    pub fn new(path: PathBuf) -> Root {
        let dir = engine::sys::fs::open_dir(&path).ok();
        Root { path, dir }
    }

    /// Opens `rel` (relative, `..`-free) beneath the root, symlinks followed while they stay in.
    fn open(&self, rel: &Path) -> Result<File, Refused> {
        if let Some(dir) = &self.dir {
            match engine::sys::fs::open_beneath(dir, rel) {
                Ok(f) => return Ok(f),
                Err(BeneathError::Unsupported) => {}
                Err(BeneathError::Outside) => return Err(Refused::Outside),
                Err(BeneathError::Io(e))
                    if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) =>
                {
                    return Err(Refused::Missing)
                }
                Err(BeneathError::Io(_)) => return Err(Refused::Denied),
            }
        }
        match self.path.join(rel).canonicalize() {
            Ok(real) if real.starts_with(&self.path) => {
                File::open(real).map_err(|_| Refused::Denied)
            }
            Ok(_) => Err(Refused::Outside),
            Err(_) => Err(Refused::Missing),
        }
    }

    /// A precompressed variant's file and metadata, if it is there and inside.
    pub fn open_variant(&self, rel: &Path, cache: &mut OpenCache) -> Option<(Arc<File>, Metadata)> {
        self.open_meta(rel, cache).ok()
    }

    /// Opens `rel` (or takes the worker's recent open of it) and reads its metadata, always
    /// fresh from the descriptor.
    fn open_meta(
        &self,
        rel: &Path,
        cache: &mut OpenCache,
    ) -> Result<(Arc<File>, Metadata), Refused> {
        let f = cache.open(rel, |rel| self.open(rel).map(Arc::new))?;
        let meta = f.metadata().map_err(|_| Refused::Missing)?;
        Ok((f, meta))
    }
}

/// The response for `target` (the request path, still escaped) under `root`; `cache` is the
/// worker's recent opens.
pub fn get(root: &Root, target: &str, ask: &Ask<'_>, cache: &mut OpenCache) -> Response {
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let Some(decoded) = percent_decode(path) else {
        return Response::error(400, "Bad Request");
    };
    let rel = Path::new(decoded.trim_start_matches('/'));
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Response::error(403, "Forbidden");
    }
    // Symlinks may still point outside: the open refuses to leave the root.
    let (f, meta) = match root.open_meta(rel, cache) {
        Ok(opened) => opened,
        Err(Refused::Missing) => return Response::error(404, "Not Found"),
        Err(Refused::Outside | Refused::Denied) => return Response::error(403, "Forbidden"),
    };
    if meta.is_dir() {
        if !decoded.ends_with('/') {
            let mut r = Response::error(301, "Moved Permanently");
            r.headers.push(("Location", format!("{path}/")));
            return r;
        }
        let index = rel.join("index.html");
        if let Ok((f, meta)) = root.open_meta(&index, cache) {
            if meta.is_file() {
                return file(root, &index, f, meta, ask, cache);
            }
        }
        return listing(&root.path.join(rel), &decoded);
    }
    if !meta.is_file() {
        // A FIFO, socket or device in the tree is not a document.
        return Response::error(403, "Forbidden");
    }
    file(root, rel, f, meta, ask, cache)
}

/// Answers with the file `rel` (opened as `f`, with `meta`), or the precompressed variant the
/// request accepts.
fn file(
    root: &Root,
    rel: &Path,
    f: Arc<File>,
    meta: Metadata,
    ask: &Ask<'_>,
    cache: &mut OpenCache,
) -> Response {
    let (variant, vary) = encoded::pick(root, rel, ask.accept_encoding, cache);
    let (f, meta, coding) = match variant {
        Some(v) => (v.file, v.meta, Some(v.coding)),
        None => (f, meta, None),
    };
    let path = rel;
    let len = meta.len();
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    let last_modified = httpdate::fmt_http_date(mtime);
    let etag = validators::etag(&meta);
    let base = |status, reason| {
        let mut r = Response::new(status, reason, content_type(path));
        r.headers.push(("Last-Modified", last_modified.clone()));
        r.headers.push(("ETag", etag.clone()));
        r.headers.push(("Accept-Ranges", "bytes".into()));
        if let Some(coding) = coding {
            r.headers.push(("Content-Encoding", coding.to_string()));
        }
        if vary {
            r.headers.push(("Vary", "Accept-Encoding".into()));
        }
        r
    };
    // RFC 9110 §13.2.2, in its order: If-Match, or If-Unmodified-Since without it, failing is
    // 412; then If-None-Match, or If-Modified-Since without it, failing is 304 for GET/HEAD.
    let precondition_fails = match ask.if_match {
        Some(tags) => !validators::match_holds(tags, &etag),
        None => ask
            .if_unmodified_since
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| unix_secs(mtime) > unix_secs(since)),
    };
    if precondition_fails {
        let mut r = Response::error(412, "Precondition Failed");
        r.headers.push(("ETag", etag.clone()));
        return r;
    }
    let not_modified = match ask.if_none_match {
        Some(tags) => validators::none_match_fails(tags, &etag),
        None => ask
            .if_modified_since
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| unix_secs(mtime) <= unix_secs(since)),
    };
    if not_modified {
        let mut r = base(304, "Not Modified");
        r.body = Body::None;
        return r;
    }
    // §13.1.5: a Range whose If-Range no longer matches is ignored: the whole file.
    let range = ask.range.filter(|_| {
        ask.if_range
            .is_none_or(|v| validators::if_range_holds(v, &etag, mtime))
    });
    match parse_range(range, len) {
        RangeAsk::Whole => {
            let mut r = base(200, "OK");
            r.body = Body::File {
                file: f,
                pieces: vec![Piece::Span { start: 0, len }],
            };
            r
        }
        RangeAsk::Parts(parts) => {
            let mut r = base(206, "Partial Content");
            let pieces = if let [(start, end)] = parts[..] {
                r.headers
                    .push(("Content-Range", format!("bytes {start}-{end}/{len}")));
                vec![Piece::Span {
                    start,
                    len: end - start + 1,
                }]
            } else {
                // Several ranges: one part each (RFC 9110 §14.6).
                let (boundary, pieces) = multipart(&parts, len, &r.content_type);
                r.content_type = format!("multipart/byteranges; boundary={boundary}");
                pieces
            };
            r.body = Body::File { file: f, pieces };
            r
        }
        RangeAsk::Unsatisfiable => {
            let mut r = Response::error(416, "Range Not Satisfiable");
            r.headers.push(("Content-Range", format!("bytes */{len}")));
            r
        }
    }
}

/// An HTML listing of `dir`, shown at `url_path` (which ends with '/').
fn listing(dir: &Path, url_path: &str) -> Response {
    let Ok(entries) = fs::read_dir(dir) else {
        return Response::error(403, "Forbidden");
    };
    let mut items: Vec<(String, bool, u64)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let meta = e.metadata().ok()?;
            Some((name, meta.is_dir(), meta.len()))
        })
        .collect();
    items.sort_by(|a, b| (!a.1, &a.0).cmp(&(!b.1, &b.0)));
    let title = html_escape(url_path);
    let mut page = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
<body>\n<h1>Index of {title}</h1>\n<ul>\n"
    );
    if url_path != "/" {
        page.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for (name, is_dir, size) in items {
        let slash = if is_dir { "/" } else { "" };
        let size = if is_dir {
            String::new()
        } else {
            format!(" ({size} bytes)")
        };
        let _ = writeln!(
            page,
            "<li><a href=\"{}{slash}\">{}{slash}</a>{size}</li>",
            percent_encode(&name),
            html_escape(&name)
        );
    }
    page.push_str("</ul>\n</body></html>\n");
    let mut r = Response::new(200, "OK", "text/html; charset=utf-8");
    r.body = Body::Bytes(page.into_bytes());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_escaping_and_types() {
        assert_eq!(percent_decode("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(percent_decode("/%2e%2e/etc"), Some("/../etc".to_string()));
        assert_eq!(percent_decode("/%zz"), None);
        assert_eq!(percent_decode("/%00"), None);
        assert_eq!(percent_encode("b & c.txt"), "b%20%26%20c.txt");
        assert_eq!(
            html_escape("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
        assert_eq!(content_type(Path::new("x.CSS")), "text/css");
        assert_eq!(content_type(Path::new("x")), "application/octet-stream");
    }

    #[test]
    fn files_directories_and_traversal() {
        let dir = std::env::temp_dir().join(format!("tapir-http-files-{}", std::process::id()));
        fs::create_dir_all(dir.join("d")).unwrap();
        fs::write(dir.join("f.txt"), b"0123456789").unwrap();
        let root = Root::new(dir.canonicalize().unwrap());
        let none = Ask {
            range: None,
            if_modified_since: None,
            ..Ask::default()
        };
        let r = get(&root, "/f.txt", &none, &mut OpenCache::default());
        assert_eq!((r.status, r.body_len()), (200, 10));
        let ranged = Ask {
            range: Some("bytes=3-4"),
            if_modified_since: None,
            ..Ask::default()
        };
        let r = get(&root, "/f.txt", &ranged, &mut OpenCache::default());
        assert_eq!((r.status, r.body_len()), (206, 2));
        let two = Ask {
            range: Some("bytes=0-1,4-5"),
            if_modified_since: None,
            ..Ask::default()
        };
        let r = get(&root, "/f.txt", &two, &mut OpenCache::default());
        assert_eq!(r.status, 206);
        assert!(
            r.content_type
                .starts_with("multipart/byteranges; boundary=tapir"),
            "{}",
            r.content_type
        );
        assert!(!r.headers.iter().any(|(k, _)| *k == "Content-Range"));
        let Body::File { pieces, .. } = &r.body else {
            panic!("a file body")
        };
        let spans: Vec<&Piece> = pieces
            .iter()
            .filter(|p| matches!(p, Piece::Span { .. }))
            .collect();
        assert_eq!(
            spans,
            [
                &Piece::Span { start: 0, len: 2 },
                &Piece::Span { start: 4, len: 2 }
            ]
        );
        let missing = Ask {
            range: Some("bytes=10-20,30-"),
            if_modified_since: None,
            ..Ask::default()
        };
        assert_eq!(
            get(&root, "/f.txt", &missing, &mut OpenCache::default()).status,
            416
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + std::time::Duration::from_secs(60));
        let ims = Ask {
            range: None,
            if_modified_since: Some(&later),
            ..Ask::default()
        };
        assert_eq!(
            get(&root, "/f.txt", &ims, &mut OpenCache::default()).status,
            304
        );
        let old = Ask {
            range: None,
            if_modified_since: Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            ..Ask::default()
        };
        assert_eq!(
            get(&root, "/f.txt", &old, &mut OpenCache::default()).status,
            200
        );
        assert_eq!(
            get(&root, "/d", &none, &mut OpenCache::default()).status,
            301
        );
        let idx = get(&root, "/", &none, &mut OpenCache::default());
        assert_eq!(idx.status, 200);
        match idx.body {
            Body::Bytes(b) => {
                let t = String::from_utf8(b).unwrap();
                assert!(
                    t.contains("href=\"d/\"") && t.contains("href=\"f.txt\""),
                    "{t}"
                );
            }
            _ => panic!("a listing is built in memory"),
        }
        assert_eq!(
            get(
                &root,
                "/%2e%2e/etc/passwd",
                &none,
                &mut OpenCache::default()
            )
            .status,
            403
        );
        assert_eq!(
            get(&root, "/../etc/passwd", &none, &mut OpenCache::default()).status,
            403
        );
        assert_eq!(
            get(&root, "/nope", &none, &mut OpenCache::default()).status,
            404
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn symlinks_are_followed_only_while_they_stay_beneath_the_root() {
        let base = std::env::temp_dir().join(format!("tapir-http-links-{}", std::process::id()));
        let dir = base.join("site");
        fs::create_dir_all(dir.join("d")).unwrap();
        fs::write(dir.join("d/in.txt"), b"inside").unwrap();
        fs::write(base.join("secret.txt"), b"outside").unwrap();
        std::os::unix::fs::symlink("d/in.txt", dir.join("near")).unwrap();
        std::os::unix::fs::symlink("../secret.txt", dir.join("escape")).unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), dir.join("absolute")).unwrap();
        std::os::unix::fs::symlink("..", dir.join("up")).unwrap();
        let fifo = dir.join("pipe");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let root = Root::new(dir.canonicalize().unwrap());
        let none = Ask::default();
        let r = get(&root, "/near", &none, &mut OpenCache::default());
        assert_eq!((r.status, r.body_len()), (200, 6));
        assert_eq!(
            get(&root, "/escape", &none, &mut OpenCache::default()).status,
            403
        );
        assert_eq!(
            get(&root, "/absolute", &none, &mut OpenCache::default()).status,
            403
        );
        assert_eq!(
            get(&root, "/up/secret.txt", &none, &mut OpenCache::default()).status,
            403
        );
        // A FIFO is neither a file nor a directory: refused, and the open does not wait for a writer.
        assert_eq!(
            get(&root, "/pipe", &none, &mut OpenCache::default()).status,
            403
        );
        fs::remove_dir_all(&base).unwrap();
    }
}
