//! A response: status, headers and what follows the head. A file body is a list of pieces
//! (spans of the file, and for a multipart answer the part heads between them) that
//! [`super::send::Outgoing`] reads as the socket takes them, never the whole file at once.

use std::fmt::Write as _;
use std::fs::File;
use std::sync::Arc;
use std::time::SystemTime;

/// A piece of a file body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Bytes(Vec<u8>),
    /// `len` bytes of the file from `start`.
    Span {
        start: u64,
        len: u64,
    },
}

impl Piece {
    pub fn len(&self) -> u64 {
        match self {
            Piece::Bytes(b) => b.len() as u64,
            Piece::Span { len, .. } => *len,
        }
    }
}

/// What follows the head.
pub enum Body {
    /// No body at all (304).
    None,
    Bytes(Vec<u8>),
    File {
        file: Arc<File>,
        pieces: Vec<Piece>,
    },
}

pub struct Response {
    pub status: u16,
    pub reason: &'static str,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16, reason: &'static str, content_type: &str) -> Response {
        Response {
            status,
            reason,
            content_type: content_type.to_string(),
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
        }
    }

    /// A small HTML page naming the status.
    pub fn error(status: u16, reason: &'static str) -> Response {
        let mut r = Response::new(status, reason, "text/html; charset=utf-8");
        r.body = Body::Bytes(
            format!("<html><body><h1>{status} {reason}</h1></body></html>\n").into_bytes(),
        );
        r
    }

    pub fn body_len(&self) -> u64 {
        match &self.body {
            Body::None => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File { pieces, .. } => pieces.iter().map(Piece::len).sum(),
        }
    }

    /// The status line and headers, up to and including the blank line.
    pub fn head(&self, keep: bool) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nServer: tapir\r\nDate: {}\r\n",
            self.status,
            self.reason,
            httpdate::fmt_http_date(SystemTime::now())
        );
        if !matches!(self.body, Body::None) {
            if !self.content_type.is_empty() {
                let _ = write!(head, "Content-Type: {}\r\n", self.content_type);
            }
            let _ = write!(head, "Content-Length: {}\r\n", self.body_len());
        }
        for (k, v) in &self.headers {
            let _ = write!(head, "{k}: {v}\r\n");
        }
        head.push_str(if keep {
            "Connection: keep-alive\r\n\r\n"
        } else {
            "Connection: close\r\n\r\n"
        });
        head.into_bytes()
    }
}
