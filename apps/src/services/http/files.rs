//! What a GET of a path under the root means: a file (whole, or a byte range), a directory index,
//! a redirect to a directory's slash, or an error. Paths that leave the root are refused before
//! the file system is touched, and again after symlinks are resolved.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Component, Path};
use std::time::{SystemTime, UNIX_EPOCH};

use super::encoded;
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
    pub if_modified_since: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub accept_encoding: Option<&'a str>,
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The response for `target` (the request path, still escaped) under `root`.
pub fn get(root: &Path, target: &str, ask: &Ask<'_>) -> Response {
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
    let full = root.join(rel);
    // Symlinks may still point outside: compare the resolved path with the root.
    let real = match full.canonicalize() {
        Ok(r) if r.starts_with(root) => r,
        Ok(_) => return Response::error(403, "Forbidden"),
        Err(_) => return Response::error(404, "Not Found"),
    };
    if real.is_dir() {
        if !decoded.ends_with('/') {
            let mut r = Response::error(301, "Moved Permanently");
            r.headers.push(("Location".into(), format!("{path}/")));
            return r;
        }
        let index = real.join("index.html");
        if index.is_file() {
            return file(root, &index, ask);
        }
        return listing(&real, &decoded);
    }
    file(root, &real, ask)
}

fn file(root: &Path, path: &Path, ask: &Ask<'_>) -> Response {
    let (variant, vary) = encoded::pick(root, path, ask.accept_encoding);
    let served = variant.as_ref().map_or(path, |v| v.path.as_path());
    let Ok(f) = File::open(served) else {
        return Response::error(403, "Forbidden");
    };
    let Ok(meta) = f.metadata() else {
        return Response::error(404, "Not Found");
    };
    let len = meta.len();
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    let last_modified = httpdate::fmt_http_date(mtime);
    let etag = validators::etag(&meta);
    let base = |status, reason| {
        let mut r = Response::new(status, reason, content_type(path));
        r.headers
            .push(("Last-Modified".into(), last_modified.clone()));
        r.headers.push(("ETag".into(), etag.clone()));
        r.headers.push(("Accept-Ranges".into(), "bytes".into()));
        if let Some(v) = &variant {
            r.headers
                .push(("Content-Encoding".into(), v.coding.to_string()));
        }
        if vary {
            r.headers.push(("Vary".into(), "Accept-Encoding".into()));
        }
        r
    };
    // RFC 9110 §13.2.2: If-None-Match first, If-Modified-Since only without it.
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
                    .push(("Content-Range".into(), format!("bytes {start}-{end}/{len}")));
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
            r.headers
                .push(("Content-Range".into(), format!("bytes */{len}")));
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
        let root = dir.canonicalize().unwrap();
        let none = Ask {
            range: None,
            if_modified_since: None,
            ..Ask::default()
        };
        let r = get(&root, "/f.txt", &none);
        assert_eq!((r.status, r.body_len()), (200, 10));
        let ranged = Ask {
            range: Some("bytes=3-4"),
            if_modified_since: None,
            ..Ask::default()
        };
        let r = get(&root, "/f.txt", &ranged);
        assert_eq!((r.status, r.body_len()), (206, 2));
        let two = Ask {
            range: Some("bytes=0-1,4-5"),
            if_modified_since: None,
            ..Ask::default()
        };
        let r = get(&root, "/f.txt", &two);
        assert_eq!(r.status, 206);
        assert!(
            r.content_type
                .starts_with("multipart/byteranges; boundary=tapir"),
            "{}",
            r.content_type
        );
        assert!(!r.headers.iter().any(|(k, _)| k == "Content-Range"));
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
        assert_eq!(get(&root, "/f.txt", &missing).status, 416);
        let later = httpdate::fmt_http_date(SystemTime::now() + std::time::Duration::from_secs(60));
        let ims = Ask {
            range: None,
            if_modified_since: Some(&later),
            ..Ask::default()
        };
        assert_eq!(get(&root, "/f.txt", &ims).status, 304);
        let old = Ask {
            range: None,
            if_modified_since: Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            ..Ask::default()
        };
        assert_eq!(get(&root, "/f.txt", &old).status, 200);
        assert_eq!(get(&root, "/d", &none).status, 301);
        let idx = get(&root, "/", &none);
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
        assert_eq!(get(&root, "/%2e%2e/etc/passwd", &none).status, 403);
        assert_eq!(get(&root, "/../etc/passwd", &none).status, 403);
        assert_eq!(get(&root, "/nope", &none).status, 404);
        fs::remove_dir_all(&dir).unwrap();
    }
}
