//! A response: status, headers and what follows the head. A file body is a list of pieces
//! (spans of the file, and for a multipart answer the part heads between them) that
//! [`super::send::Outgoing`] reads as the socket takes them, never the whole file at once.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::fs::File;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    /// The `Date` value of the current second on this worker, formatted once per second (as
    /// nginx keeps its cached time strings) rather than once per response.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Appends `now` as an HTTP date (RFC 9110 §5.6.7), formatting it only when the second changed.
fn push_date(head: &mut String, now: SystemTime) {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            *d = (secs, httpdate::fmt_http_date(now));
        }
        head.push_str(&d.1);
    });
}

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
    pub headers: Vec<(&'static str, String)>,
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
        let mut head = String::with_capacity(256);
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\nServer: tapir\r\nDate: ",
            self.status, self.reason
        );
        push_date(&mut head, SystemTime::now());
        head.push_str("\r\n");
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_cached_date_is_the_date_of_each_second() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        for (at, want) in [
            (t, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (
                t + Duration::from_millis(999),
                "Sun, 06 Nov 1994 08:49:37 GMT",
            ),
            (t + Duration::from_secs(1), "Sun, 06 Nov 1994 08:49:38 GMT"),
            (t, "Sun, 06 Nov 1994 08:49:37 GMT"),
        ] {
            let mut head = String::new();
            push_date(&mut head, at);
            assert_eq!(head, want);
        }
    }
}
