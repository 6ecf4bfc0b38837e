//! A response and how it goes on the wire: head first, then the body, a file streamed in
//! 64 KiB pieces rather than read whole.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::time::SystemTime;

/// What follows the head.
pub enum Body {
    /// No body at all (304).
    None,
    Bytes(Vec<u8>),
    /// `len` bytes of `file` from `start`.
    File {
        file: File,
        start: u64,
        len: u64,
    },
}

pub struct Response {
    pub status: u16,
    pub reason: &'static str,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16, reason: &'static str, content_type: &'static str) -> Response {
        Response {
            status,
            reason,
            content_type,
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
            Body::File { len, .. } => *len,
        }
    }

    /// Writes the response; the body only when `with_body` (not for HEAD). Returns the body
    /// bytes sent.
    pub fn write_to(self, w: &mut impl Write, with_body: bool, keep: bool) -> io::Result<u64> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nServer: tapir\r\nDate: {}\r\n",
            self.status,
            self.reason,
            httpdate::fmt_http_date(SystemTime::now())
        );
        if !matches!(self.body, Body::None) {
            head.push_str(&format!(
                "Content-Type: {}\r\nContent-Length: {}\r\n",
                self.content_type,
                self.body_len()
            ));
        }
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(if keep {
            "Connection: keep-alive\r\n\r\n"
        } else {
            "Connection: close\r\n\r\n"
        });
        if !with_body {
            w.write_all(head.as_bytes())?;
            return Ok(0);
        }
        match self.body {
            Body::None => {
                w.write_all(head.as_bytes())?;
                Ok(0)
            }
            Body::Bytes(b) => {
                // One write for a small response: head and body in the same segment.
                let mut all = head.into_bytes();
                all.extend_from_slice(&b);
                w.write_all(&all)?;
                Ok(b.len() as u64)
            }
            Body::File {
                mut file,
                start,
                len,
            } => {
                w.write_all(head.as_bytes())?;
                file.seek(SeekFrom::Start(start))?;
                let mut left = len;
                let mut buf = vec![0u8; 64 * 1024];
                while left > 0 {
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = file.read(&mut buf[..want])?;
                    if n == 0 {
                        // The file shrank under us: the length promised cannot be kept.
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "file shrank while being sent",
                        ));
                    }
                    w.write_all(&buf[..n])?;
                    left -= n as u64;
                }
                Ok(len)
            }
        }
    }
}
