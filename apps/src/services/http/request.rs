//! The request head at the front of a connection's input, parsed by httparse and checked against
//! the server's limits: a request to answer, a refusal with its status, or "not complete yet".

/// Largest request head accepted (431 beyond, or 414 when the request line alone is longer).
pub const MAX_HEAD: usize = 16 * 1024;
/// Longest request target (414 beyond).
pub const MAX_URI: usize = 8 * 1024;
/// Most header fields in a request (431 beyond).
pub const MAX_HEADERS: usize = 64;
/// Largest request body read and thrown away (413 beyond): this server takes no uploads.
pub const MAX_BODY: u64 = 1 << 20;

/// One parsed request, as much as the response needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// The minor version: HTTP/1.0 or HTTP/1.1.
    pub version: u8,
    /// The client wants the connection kept open (RFC 9112 §9.3).
    pub keep: bool,
    pub range: Option<String>,
    pub if_modified_since: Option<String>,
    pub has_host: bool,
}

impl Request {
    /// The request line as the access log shows it.
    pub fn line(&self) -> String {
        format!("{} {} HTTP/1.{}", self.method, self.target, self.version)
    }
}

/// What the front of the input holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// Not a whole head yet: read more.
    Partial,
    /// A request whose head takes `used` bytes, followed by `body` bytes to skip.
    Request {
        req: Request,
        used: usize,
        body: u64,
    },
    /// A request refused with this status; the connection closes after the answer.
    Refuse(u16, &'static str),
}

/// Parses the request head at the front of `buf`.
pub fn parse(buf: &[u8]) -> Head {
    const HEAD_TOO_LARGE: Head = Head::Refuse(431, "Request Header Fields Too Large");
    const URI_TOO_LONG: Head = Head::Refuse(414, "URI Too Long");
    const BAD: Head = Head::Refuse(400, "Bad Request");
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(used)) if used <= MAX_HEAD => used,
        Ok(httparse::Status::Complete(_)) => return HEAD_TOO_LARGE,
        Ok(httparse::Status::Partial) => {
            if buf.len() <= MAX_HEAD {
                return Head::Partial;
            }
            return if buf.contains(&b'\n') {
                HEAD_TOO_LARGE
            } else {
                URI_TOO_LONG
            };
        }
        Err(httparse::Error::TooManyHeaders) => return HEAD_TOO_LARGE,
        Err(_) => return BAD,
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
    let target = req.path.unwrap_or("");
    if target.len() > MAX_URI {
        return URI_TOO_LONG;
    }
    let body = match header("content-length").map(|v| v.parse::<u64>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return BAD,
    };
    if body > MAX_BODY {
        return Head::Refuse(413, "Content Too Large");
    }
    if header("transfer-encoding").is_some() {
        // No uploads here, so no chunked request bodies either (RFC 9112 §6.1).
        return Head::Refuse(411, "Length Required");
    }
    Head::Request {
        req: Request {
            method: req.method.unwrap_or("").to_string(),
            target: target.to_string(),
            version,
            keep,
            range: header("range"),
            if_modified_since: header("if-modified-since"),
            has_host: header("host").is_some(),
        },
        used,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(raw: &[u8]) -> u16 {
        match parse(raw) {
            Head::Refuse(s, _) => s,
            Head::Request { .. } => 200,
            Head::Partial => 0,
        }
    }

    #[test]
    fn a_request_its_length_and_what_follows() {
        let raw =
            b"GET /a?b HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nContent-Length: 3\r\n\r\nabcGET";
        let Head::Request { req, used, body } = parse(raw) else {
            panic!("{:?}", parse(raw));
        };
        assert_eq!(used, raw.len() - 6);
        assert_eq!(body, 3);
        assert_eq!(req.line(), "GET /a?b HTTP/1.1");
        assert!(req.keep && req.has_host);
        assert_eq!(req.range.as_deref(), Some("bytes=0-1"));
        let Head::Request { req, .. } = parse(b"GET / HTTP/1.0\r\n\r\n") else {
            panic!()
        };
        assert!(!req.keep, "1.0 closes unless asked to keep");
        let Head::Request { req, .. } = parse(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        else {
            panic!()
        };
        assert!(!req.keep);
    }

    #[test]
    fn every_head_cut_short_is_partial() {
        let raw = b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n";
        for cut in 0..raw.len() {
            assert_eq!(parse(&raw[..cut]), Head::Partial, "cut at {cut}");
        }
    }

    #[test]
    fn bad_requests_get_their_status() {
        assert_eq!(status(b"BLAH\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/2.0\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), 400);
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI));
        assert_eq!(status(long.as_bytes()), 414);
        let endless = format!("GET /{}", "a".repeat(MAX_HEAD));
        assert_eq!(status(endless.as_bytes()), 414);
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "b".repeat(MAX_HEAD));
        assert_eq!(status(big.as_bytes()), 431);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X{i}: y\r\n")).collect();
        assert_eq!(
            status(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            431
        );
        let upload = b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n";
        assert_eq!(status(upload), 413);
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(status(chunked), 411);
    }
}
