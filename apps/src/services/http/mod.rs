//! An HTTP/1.1 static file server: GET and HEAD of a built-in page or of files under a directory
//! (byte ranges, a directory index, If-Modified-Since, Content-Type by extension), keep-alive and
//! pipelining answered in order, the right status for each bad request, limits on the request
//! head, the URI, bodies and connections, and an access log line per request (common log format,
//! on stdout) when asked.
//!
//! Requests are parsed by httparse. Each connection runs on a thread of its own over the blocking
//! socket API (the engine has no run-to-completion API for applications yet).

mod files;
mod response;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engine::{TcpListener, TcpStream};

use response::{Body, Response};

/// Largest request head accepted (431 beyond, or 414 when the request line alone is longer).
const MAX_HEAD: usize = 16 * 1024;
/// Longest request target (414 beyond).
const MAX_URI: usize = 8 * 1024;
/// Most header fields in a request (431 beyond).
const MAX_HEADERS: usize = 64;
/// Largest request body read and thrown away (413 beyond): this server takes no uploads.
const MAX_BODY: u64 = 1 << 20;
/// Idle time after which a keep-alive connection is closed.
const IDLE: Duration = Duration::from_secs(30);
/// A client that does not read its response for this long is given up on.
const SEND_STALL: Duration = Duration::from_secs(60);
/// Connections served at once unless told otherwise.
pub const DEFAULT_MAX_CONNS: usize = 1024;

const PAGE: &str =
    "<!doctype html>\n<html><head><title>tapir</title></head>\n<body>\n<h1>tapir</h1>\n\
<p>Served by tapir, a user-space TCP/IP stack on a Linux tap.</p>\n</body></html>\n";

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory served; None serves the built-in page.
    pub root: Option<PathBuf>,
    /// Print an access log line per request.
    pub access_log: bool,
    /// Connections served at once; more are answered 503 and closed.
    pub max_conns: usize,
}

#[derive(Clone)]
pub struct Server {
    config: Arc<Config>,
    conns: Arc<AtomicUsize>,
}

/// One parsed request, as much as the response needs.
struct Request {
    method: String,
    target: String,
    version: u8,
    keep: bool,
    range: Option<String>,
    if_modified_since: Option<String>,
    has_host: bool,
}

/// What to do after answering.
enum Next {
    Continue,
    Close,
}

/// Holds a connection slot; frees it on drop.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Server {
    pub fn new(config: Config) -> Self {
        Server {
            config: Arc::new(config),
            conns: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn run(self, listener: TcpListener) {
        while let Ok((mut stream, peer)) = listener.accept() {
            let held = self.conns.fetch_add(1, Ordering::SeqCst);
            let slot = Slot(self.conns.clone());
            if held >= self.config.max_conns {
                let r = Response::error(503, "Service Unavailable");
                stream.set_write_timeout(Some(Duration::from_secs(5)));
                let _ = r.write_to(&mut stream, true, false);
                self.log(peer, "-", 503, 0);
                thread::spawn(move || {
                    close(stream);
                    drop(slot);
                });
                continue;
            }
            let me = self.clone();
            let _ = thread::Builder::new()
                .name("http-conn".into())
                .spawn(move || {
                    me.serve(stream, peer);
                    drop(slot);
                });
        }
    }

    fn log(&self, peer: SocketAddrV4, request_line: &str, status: u16, bytes: u64) {
        if !self.config.access_log {
            return;
        }
        let line = format!(
            "{} - - [{}] \"{}\" {} {}\n",
            peer.ip(),
            clf_time(SystemTime::now()),
            request_line.escape_default(),
            status,
            bytes
        );
        // A closed stdout must not stop the server.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }

    /// Answers an unparseable or refused request and says to close.
    fn refuse(
        &self,
        stream: &mut TcpStream,
        peer: SocketAddrV4,
        buf: &[u8],
        status: u16,
        reason: &'static str,
    ) -> Next {
        let first = buf.split(|&b| b == b'\n').next().unwrap_or(b"");
        let first = String::from_utf8_lossy(&first[..first.len().min(200)]);
        let r = Response::error(status, reason);
        let n = r.body_len();
        let _ = r.write_to(stream, true, false);
        self.log(peer, first.trim_end(), status, n);
        Next::Close
    }

    fn serve(&self, mut stream: TcpStream, peer: SocketAddrV4) {
        stream.set_read_timeout(Some(IDLE));
        stream.set_write_timeout(Some(SEND_STALL));
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut chunk = vec![0u8; 16 * 1024];
        // Request body bytes still to read and throw away.
        let mut skip: u64 = 0;
        loop {
            // Answer every complete request already buffered (pipelining), in order.
            loop {
                if skip > 0 {
                    let n = buf.len().min(usize::try_from(skip).unwrap_or(usize::MAX));
                    buf.drain(..n);
                    skip -= n as u64;
                    if skip > 0 {
                        break;
                    }
                }
                if buf.is_empty() {
                    break;
                }
                match self.next_request(&mut stream, peer, &mut buf, &mut skip) {
                    Some(Next::Continue) => {}
                    Some(Next::Close) => return close(stream),
                    None => break, // incomplete: read more
                }
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return close(stream),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Parses and answers the request at the front of `buf`; None when it is not complete yet.
    fn next_request(
        &self,
        stream: &mut TcpStream,
        peer: SocketAddrV4,
        buf: &mut Vec<u8>,
        skip: &mut u64,
    ) -> Option<Next> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let used = match req.parse(buf) {
            Ok(httparse::Status::Complete(used)) if used <= MAX_HEAD => used,
            Ok(httparse::Status::Complete(_)) => {
                return Some(self.refuse(stream, peer, buf, 431, "Request Header Fields Too Large"))
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() <= MAX_HEAD {
                    return None;
                }
                return Some(if !buf.contains(&b'\n') {
                    self.refuse(stream, peer, buf, 414, "URI Too Long")
                } else {
                    self.refuse(stream, peer, buf, 431, "Request Header Fields Too Large")
                });
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Some(self.refuse(stream, peer, buf, 431, "Request Header Fields Too Large"))
            }
            Err(_) => return Some(self.refuse(stream, peer, buf, 400, "Bad Request")),
        };
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
        };
        let version = req.version.unwrap_or(1);
        let keep = match header("connection").map(|v| v.to_ascii_lowercase()) {
            Some(v) if v.contains("close") => false,
            Some(v) if v.contains("keep-alive") => true,
            _ => version == 1,
        };
        let request = Request {
            method: req.method.unwrap_or("").to_string(),
            target: req.path.unwrap_or("").to_string(),
            version,
            keep,
            range: header("range"),
            if_modified_since: header("if-modified-since"),
            has_host: header("host").is_some(),
        };
        let body_len = header("content-length");
        let chunked_body = header("transfer-encoding").is_some();
        if request.target.len() > MAX_URI {
            return Some(self.refuse(stream, peer, buf, 414, "URI Too Long"));
        }
        let body_len = match body_len.map(|v| v.parse::<u64>()) {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(_)) => return Some(self.refuse(stream, peer, buf, 400, "Bad Request")),
        };
        if body_len > MAX_BODY {
            return Some(self.refuse(stream, peer, buf, 413, "Content Too Large"));
        }
        if chunked_body {
            // No uploads here, so no chunked request bodies either (RFC 9112 §6.1).
            return Some(self.refuse(stream, peer, buf, 411, "Length Required"));
        }
        buf.drain(..used);
        *skip = body_len;
        let request_line = format!(
            "{} {} HTTP/1.{}",
            request.method, request.target, request.version
        );
        let response = self.respond(&request);
        let status = response.status;
        let head_only = request.method == "HEAD";
        let keep = request.keep && status != 400;
        let sent = response.write_to(stream, !head_only, keep);
        self.log(peer, &request_line, status, *sent.as_ref().unwrap_or(&0));
        Some(if sent.is_ok() && keep {
            Next::Continue
        } else {
            Next::Close
        })
    }

    fn respond(&self, req: &Request) -> Response {
        if req.version == 1 && !req.has_host {
            // RFC 9112 §3.2: a 1.1 request without Host is answered 400.
            return Response::error(400, "Bad Request");
        }
        if req.method != "GET" && req.method != "HEAD" {
            let mut r = Response::error(405, "Method Not Allowed");
            r.headers.push(("Allow".into(), "GET, HEAD".into()));
            return r;
        }
        if !req.target.starts_with('/') {
            return Response::error(400, "Bad Request");
        }
        let Some(root) = &self.config.root else {
            let path = req.target.split(['?', '#']).next().unwrap_or("/");
            return if path == "/" || path == "/index.html" {
                let mut r = Response::new(200, "OK", "text/html; charset=utf-8");
                r.body = Body::Bytes(PAGE.as_bytes().to_vec());
                r
            } else {
                Response::error(404, "Not Found")
            };
        };
        let ask = files::Ask {
            range: req.range.as_deref(),
            if_modified_since: req.if_modified_since.as_deref(),
        };
        files::get(root, &req.target, &ask)
    }
}

fn close(stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.wait_closed(Some(Duration::from_secs(10)));
}

/// The common log format's time, e.g. `10/Oct/2000:13:55:36 +0000` (in UTC).
fn clf_time(t: SystemTime) -> String {
    // httpdate's IMF-fixdate is "Tue, 10 Oct 2000 13:55:36 GMT": rearrange its fields.
    let s = httpdate::fmt_http_date(t);
    let f: Vec<&str> = s.split_whitespace().collect();
    match f.as_slice() {
        [_, d, m, y, hms, _] => format!("{d}/{m}/{y}:{hms} +0000"),
        _ => t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs().to_string())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_time_is_apache_style() {
        let t = UNIX_EPOCH + Duration::from_secs(971_186_136);
        assert_eq!(clf_time(t), "10/Oct/2000:13:55:36 +0000");
    }
}
