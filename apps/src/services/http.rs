//! A small HTTP/1.1 server: GET and HEAD of a built-in page or of files under a directory, with
//! keep-alive. Requests are parsed by httparse; paths that leave the root are refused.

use std::fs;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::path::{Component, Path, PathBuf};
use std::thread;
use std::time::Duration;

use engine::{TcpListener, TcpStream};

/// Largest request head accepted (431 beyond).
const MAX_HEAD: usize = 16 * 1024;
/// Idle time after which a keep-alive connection is closed.
const IDLE: Duration = Duration::from_secs(30);

const PAGE: &str =
    "<!doctype html>\n<html><head><title>tapir</title></head>\n<body>\n<h1>tapir</h1>\n\
<p>Served by tapir, a user-space TCP/IP stack on a Linux tap.</p>\n</body></html>\n";

#[derive(Clone)]
pub struct Server {
    root: Option<PathBuf>,
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    extra: Vec<(&'static str, String)>,
}

impl Response {
    fn error(status: u16, reason: &'static str) -> Response {
        let body = format!("<html><body><h1>{status} {reason}</h1></body></html>\n").into_bytes();
        Response {
            status,
            reason,
            content_type: "text/html; charset=utf-8",
            body,
            extra: Vec::new(),
        }
    }
}

impl Server {
    pub fn new(root: Option<PathBuf>) -> Self {
        Server { root }
    }

    pub fn run(self, listener: TcpListener) {
        while let Ok((stream, _)) = listener.accept() {
            let me = self.clone();
            let _ = thread::Builder::new()
                .name("http-conn".into())
                .spawn(move || me.serve(stream));
        }
    }

    fn serve(&self, mut stream: TcpStream) {
        stream.set_read_timeout(Some(IDLE));
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            // Answer every complete request already buffered (pipelining), in order.
            loop {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut req = httparse::Request::new(&mut headers);
                let (resp, head_only, keep, used) = match req.parse(&buf) {
                    Ok(httparse::Status::Complete(used)) => {
                        let (resp, head_only, keep) = self.respond(&req);
                        (resp, head_only, keep, used)
                    }
                    Ok(httparse::Status::Partial) => {
                        if buf.len() > MAX_HEAD {
                            let r = Response::error(431, "Request Header Fields Too Large");
                            let _ = write_response(&mut stream, &r, false, false);
                            return close(stream);
                        }
                        break;
                    }
                    Err(httparse::Error::TooManyHeaders) => {
                        let r = Response::error(431, "Request Header Fields Too Large");
                        let _ = write_response(&mut stream, &r, false, false);
                        return close(stream);
                    }
                    Err(_) => {
                        let r = Response::error(400, "Bad Request");
                        let _ = write_response(&mut stream, &r, false, false);
                        return close(stream);
                    }
                };
                buf.drain(..used);
                if write_response(&mut stream, &resp, head_only, keep).is_err() || !keep {
                    return close(stream);
                }
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return close(stream),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The response to one request, whether it is HEAD, and whether to keep the connection.
    fn respond(&self, req: &httparse::Request<'_, '_>) -> (Response, bool, bool) {
        let version = req.version.unwrap_or(1);
        let conn_header = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("connection"))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase());
        let keep = match conn_header.as_deref() {
            Some(v) if v.contains("close") => false,
            Some(v) if v.contains("keep-alive") => true,
            _ => version == 1,
        };
        let method = req.method.unwrap_or("");
        let head_only = method == "HEAD";
        if method != "GET" && method != "HEAD" {
            let mut r = Response::error(405, "Method Not Allowed");
            r.extra.push(("Allow", "GET, HEAD".into()));
            return (r, false, keep);
        }
        let path = req.path.unwrap_or("/");
        if path.len() > 4096 {
            return (Response::error(414, "URI Too Long"), head_only, keep);
        }
        (self.get(path), head_only, keep)
    }

    fn get(&self, target: &str) -> Response {
        let path = target.split(['?', '#']).next().unwrap_or("/");
        let Some(decoded) = percent_decode(path) else {
            return Response::error(400, "Bad Request");
        };
        let Some(root) = &self.root else {
            return if decoded == "/" || decoded == "/index.html" {
                Response {
                    status: 200,
                    reason: "OK",
                    content_type: "text/html; charset=utf-8",
                    body: PAGE.as_bytes().to_vec(),
                    extra: Vec::new(),
                }
            } else {
                Response::error(404, "Not Found")
            };
        };
        // Refuse any path that names a parent, before touching the file system.
        let rel = Path::new(decoded.trim_start_matches('/'));
        if rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Response::error(403, "Forbidden");
        }
        let mut file = root.join(rel);
        if file.is_dir() {
            file = file.join("index.html");
        }
        // Symlinks may still point outside: compare the resolved path with the root.
        match file.canonicalize() {
            Ok(real) if real.starts_with(root) => match fs::read(&real) {
                Ok(body) => Response {
                    status: 200,
                    reason: "OK",
                    content_type: content_type(&real),
                    body,
                    extra: Vec::new(),
                },
                Err(_) => Response::error(404, "Not Found"),
            },
            Ok(_) => Response::error(403, "Forbidden"),
            Err(_) => Response::error(404, "Not Found"),
        }
    }
}

fn close(stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.wait_closed(Some(Duration::from_secs(10)));
}

fn write_response(
    stream: &mut TcpStream,
    r: &Response,
    head_only: bool,
    keep: bool,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nServer: tapir\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
        r.status,
        r.reason,
        r.content_type,
        r.body.len(),
        if keep { "keep-alive" } else { "close" }
    );
    for (k, v) in &r.extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(&r.body)?;
    }
    Ok(())
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("svg") => "image/svg+xml",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// Decodes %XX escapes; None for a bad escape or a decoded NUL.
fn percent_decode(s: &str) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_and_traversal() {
        assert_eq!(percent_decode("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(percent_decode("/%2e%2e/etc"), Some("/../etc".to_string()));
        assert_eq!(percent_decode("/%zz"), None);
        assert_eq!(percent_decode("/%00"), None);
        let dir = std::env::temp_dir().join(format!("tapir-http-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("f.txt"), b"hi").unwrap();
        let s = Server::new(Some(dir.canonicalize().unwrap()));
        let ok = s.get("/f.txt");
        assert_eq!(
            (ok.status, ok.body.as_slice(), ok.content_type),
            (200, &b"hi"[..], "text/plain; charset=utf-8")
        );
        assert_eq!(s.get("/%2e%2e/etc/passwd").status, 403);
        assert_eq!(s.get("/../etc/passwd").status, 403);
        assert_eq!(s.get("/nope").status, 404);
        fs::remove_dir_all(&dir).unwrap();
        let builtin = Server::new(None);
        assert_eq!(builtin.get("/").status, 200);
        assert_eq!(builtin.get("/x").status, 404);
    }
}
