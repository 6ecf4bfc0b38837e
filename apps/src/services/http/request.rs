//! The request head at the front of a connection's input, parsed by httparse and checked against
//! the server's limits and RFC 9112's framing rules: a request to answer (with how its body is
//! framed), a refusal with its status, or "not complete yet".

/// Largest request head accepted (431 beyond, or 414 when the request line alone is longer).
pub const MAX_HEAD: usize = 16 * 1024;
/// Longest request target (414 beyond).
pub const MAX_URI: usize = 8 * 1024;
/// Most header fields in a request (431 beyond).
pub const MAX_HEADERS: usize = 64;
/// Largest request body read and thrown away (413 beyond): this server takes no uploads.
pub const MAX_BODY: u64 = 1 << 20;

/// One parsed request, as much as the response and the access log need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent (the access log shows it).
    pub target: String,
    /// The target in origin form: path and query (an absolute-form target's own path, RFC 9112
    /// §3.2.2), or `*` for `OPTIONS *`.
    pub path: String,
    /// The minor version: HTTP/1.0 or HTTP/1.1.
    pub version: u8,
    /// The client wants the connection kept open (RFC 9112 §9.3).
    pub keep: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request (RFC 9110 §10.1.1).
    pub expect_continue: bool,
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub if_match: Option<String>,
    pub if_unmodified_since: Option<String>,
    pub if_modified_since: Option<String>,
    pub if_none_match: Option<String>,
    pub accept_encoding: Option<String>,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
}

impl Request {
    /// The request line as the access log shows it.
    pub fn line(&self) -> String {
        format!("{} {} HTTP/1.{}", self.method, self.target, self.version)
    }
}

/// How the request's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the front of the input holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// Not a whole head yet: read more.
    Partial,
    /// A request whose head takes `used` bytes, followed by a body framed as `body`.
    Request {
        req: Box<Request>,
        used: usize,
        body: Framing,
    },
    /// A request refused with this status; the connection closes after the answer.
    Refuse(u16, &'static str),
}

const BAD: Head = Head::Refuse(400, "Bad Request");

/// A status and its reason phrase, for a request refused.
type Refusal = (u16, &'static str);

/// Parses the request head at the front of `buf`.
pub fn parse(buf: &[u8]) -> Head {
    const HEAD_TOO_LARGE: Head = Head::Refuse(431, "Request Header Fields Too Large");
    const URI_TOO_LONG: Head = Head::Refuse(414, "URI Too Long");
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // httparse refuses a folded line (obs-fold, RFC 9112 §5.2) as a bad header name: a server
    // MUST reject it or unfold it, and a 400 is the rejection.
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
    let all = |name: &str| -> Vec<String> {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
            .collect()
    };
    let header = |name: &str| all(name).into_iter().next();
    let version = req.version.unwrap_or(1);
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    if target.len() > MAX_URI {
        return URI_TOO_LONG;
    }
    let Some(path) = origin_form(method, target) else {
        return BAD;
    };
    // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, for more than one Host line,
    // and for a Host that is not a host[:port]. An absolute-form target names the host
    // itself and the Host field is then ignored (§3.2.2), but it must still be there.
    let hosts = all("host");
    match hosts.as_slice() {
        [] if version == 1 => return BAD,
        [] => {}
        [h] if valid_host(h) => {}
        _ => return BAD,
    }
    let body = match framing(&all("content-length"), &all("transfer-encoding"), version) {
        Ok(b) => b,
        Err((status, reason)) => return Head::Refuse(status, reason),
    };
    let keep = match header("connection").map(|v| v.to_ascii_lowercase()) {
        Some(v) if v.contains("close") => false,
        Some(v) if v.contains("keep-alive") => true,
        _ => version == 1,
    };
    // RFC 9110 §10.1.1: 100-continue is the only expectation; an HTTP/1.0 request's is ignored.
    let expect_continue = match header("expect") {
        None => false,
        Some(_) if version == 0 => false,
        Some(e) if e.eq_ignore_ascii_case("100-continue") => true,
        Some(_) => return Head::Refuse(417, "Expectation Failed"),
    };
    Head::Request {
        req: Box::new(Request {
            method: method.to_string(),
            target: target.to_string(),
            path,
            version,
            keep,
            expect_continue,
            range: header("range"),
            if_range: header("if-range"),
            if_match: header("if-match"),
            if_unmodified_since: header("if-unmodified-since"),
            if_modified_since: header("if-modified-since"),
            if_none_match: header("if-none-match"),
            accept_encoding: header("accept-encoding"),
            referer: header("referer"),
            user_agent: header("user-agent"),
        }),
        used,
        body,
    }
}

/// The path and query a target asks for (RFC 9112 §3.2): origin form as it is, absolute form
/// (`http://host/path`) cut to its path, `*` only for OPTIONS; None for anything else
/// (authority form, another scheme, userinfo, an empty host).
fn origin_form(method: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return Some(target.to_string());
    }
    if target == "*" {
        return (method == "OPTIONS").then(|| "*".to_string());
    }
    let (scheme, rest) = target.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let cut = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(cut);
    // RFC 9110 §4.2.4: userinfo in an http URI is an error; §4.2.1: the host is not empty.
    if authority.is_empty() || authority.contains('@') || !valid_host(authority) {
        return None;
    }
    Some(match tail.chars().next() {
        Some('/') => tail.to_string(),
        _ => format!("/{tail}"),
    })
}

/// A Host value: `uri-host [":" port]` (RFC 9110 §7.2), checked for the characters a reg-name,
/// an IPv4 address or an IP literal can hold; empty is allowed (a URI without authority).
fn valid_host(h: &str) -> bool {
    let (host, port) = match h.rsplit_once(':') {
        // A colon inside brackets is the literal's own; a bare IPv6 address is refused below.
        Some((a, _)) if !a.ends_with(']') && a.contains(':') => (h, ""),
        Some((a, p)) => (a, p),
        None => (h, ""),
    };
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    if let Some(literal) = host.strip_prefix('[') {
        return literal.strip_suffix(']').is_some_and(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_hexdigit() || b".:".contains(&b))
        });
    }
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+;=%".contains(&b))
}

/// The body's framing from every Content-Length and Transfer-Encoding line (RFC 9112 §6.3),
/// refusing what could be read two ways (request smuggling): both fields at once, lengths
/// that disagree or are not digits, chunked not last, Transfer-Encoding on HTTP/1.0.
fn framing(lengths: &[String], codings: &[String], version: u8) -> Result<Framing, Refusal> {
    const BAD: Refusal = (400, "Bad Request");
    if !codings.is_empty() {
        if !lengths.is_empty() || version == 0 {
            // §6.1: TE with CL "ought to be handled as an error"; TE in 1.0 is faulty framing.
            return Err(BAD);
        }
        let list: Vec<String> = codings
            .iter()
            .flat_map(|v| v.split(','))
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty())
            .collect();
        return match list.as_slice() {
            [only] if only == "chunked" => Ok(Framing::Chunked),
            // §6.3 rule 4: chunked not the final coding of a request is a 400.
            [.., last] if last != "chunked" => Err(BAD),
            [] => Err(BAD),
            // §6.1: a coding this server does not know (or chunked twice) is a 501.
            _ => Err((501, "Not Implemented")),
        };
    }
    let mut length = None;
    for v in lengths.iter().flat_map(|v| v.split(',')) {
        let v = v.trim();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BAD);
        }
        let n = v.parse::<u64>().map_err(|_| BAD)?;
        // RFC 9110 §8.6: repeated identical values may be taken as one; differing ones not.
        if length.is_some_and(|l| l != n) {
            return Err(BAD);
        }
        length = Some(n);
    }
    match length {
        None | Some(0) => Ok(Framing::None),
        Some(n) if n > MAX_BODY => Err((413, "Content Too Large")),
        Some(n) => Ok(Framing::Length(n)),
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

    fn request(raw: &[u8]) -> (Request, Framing) {
        match parse(raw) {
            Head::Request { req, body, .. } => (*req, body),
            other => panic!("{other:?}"),
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
        assert_eq!(body, Framing::Length(3));
        assert_eq!(req.line(), "GET /a?b HTTP/1.1");
        assert!(req.keep);
        assert_eq!(req.range.as_deref(), Some("bytes=0-1"));
        let (req, _) = request(b"GET / HTTP/1.0\r\n\r\n");
        assert!(!req.keep, "1.0 closes unless asked to keep");
        let (req, _) = request(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
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
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n"),
            400
        );
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
        let upload = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n";
        assert_eq!(status(upload), 413);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nExpect: x\r\n\r\n"),
            417
        );
    }

    #[test]
    fn targets_in_absolute_form_and_asterisk_form() {
        let (req, _) = request(b"GET http://h.example:8080/a/b?c HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(
            (req.path.as_str(), req.target.as_str()),
            ("/a/b?c", "http://h.example:8080/a/b?c")
        );
        let (req, _) = request(b"GET HTTP://10.7.0.2 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(req.path, "/");
        let (req, _) = request(b"GET http://10.7.0.2?q HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(req.path, "/?q");
        let (req, _) = request(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(req.path, "*");
        for bad in [
            "GET * HTTP/1.1",
            "GET ftp://h/x HTTP/1.1",
            "GET http:///x HTTP/1.1",
            "GET http://u@h/x HTTP/1.1",
            "CONNECT h:443 HTTP/1.1",
            "GET x HTTP/1.1",
        ] {
            assert_eq!(
                status(format!("{bad}\r\nHost: x\r\n\r\n").as_bytes()),
                400,
                "{bad}"
            );
        }
    }

    #[test]
    fn host_rules() {
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400, "1.1 without Host");
        assert_eq!(status(b"GET / HTTP/1.0\r\n\r\n"), 200, "1.0 needs none");
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a:x\r\n\r\n"), 400);
        for good in [
            "10.7.0.2",
            "10.7.0.2:8080",
            "www.lab.test",
            "[fe80::1]:80",
            "",
        ] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {good}\r\n\r\n");
            assert_eq!(status(raw.as_bytes()), 200, "{good}");
        }
    }

    #[test]
    fn framing_that_could_be_read_two_ways_is_refused() {
        let h = "POST / HTTP/1.1\r\nHost: x\r\n";
        let st = |more: &str| status(format!("{h}{more}\r\n").as_bytes());
        assert_eq!(
            st("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"),
            400
        );
        assert_eq!(st("Content-Length: 3\r\nContent-Length: 4\r\n"), 400);
        assert_eq!(st("Content-Length: 3, 4\r\n"), 400);
        assert_eq!(st("Content-Length: +3\r\n"), 400);
        assert_eq!(st("Content-Length: -3\r\n"), 400);
        assert_eq!(st("Content-Length: \r\n"), 400);
        assert_eq!(st("Content-Length: 99999999999999999999999\r\n"), 400);
        assert_eq!(st("Transfer-Encoding: chunked, gzip\r\n"), 400);
        assert_eq!(st("Transfer-Encoding: gzip, chunked\r\n"), 501);
        assert_eq!(
            st("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            501
        );
        let old = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(status(old), 400, "TE in HTTP/1.0");
        assert_eq!(
            request(format!("{h}Content-Length: 3\r\nContent-Length: 3\r\n\r\n").as_bytes()).1,
            Framing::Length(3)
        );
        assert_eq!(
            request(format!("{h}Content-Length: 3, 3\r\n\r\n").as_bytes()).1,
            Framing::Length(3)
        );
        assert_eq!(
            request(format!("{h}Transfer-Encoding: Chunked\r\n\r\n").as_bytes()).1,
            Framing::Chunked
        );
        assert_eq!(
            request(format!("{h}Content-Length: 0\r\n\r\n").as_bytes()).1,
            Framing::None
        );
    }

    #[test]
    fn obs_fold_is_refused_and_expect_is_read() {
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n"),
            400
        );
        let (req, _) = request(b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n\r\n");
        assert!(req.expect_continue);
        let (req, _) = request(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
        assert!(!req.expect_continue, "ignored in HTTP/1.0");
    }

    #[test]
    fn no_input_makes_the_parser_panic() {
        let good = b"POST http://h:1/a?b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\
Transfer-Encoding: chunked\r\nExpect: 100-continue\r\nRange: bytes=0-1\r\n\r\n";
        for seed in 1..3000u32 {
            let noise = crate::lab::pseudo_random_bytes(good.len(), seed);
            // Flip some bytes of a rich request, and cut it anywhere.
            let mut raw = good.to_vec();
            for (i, n) in noise.iter().enumerate() {
                if n.is_multiple_of(11) {
                    raw[i] = noise[(i * 7) % noise.len()];
                }
            }
            raw.truncate(usize::from(noise[0]) % (good.len() + 1));
            let _ = parse(&raw);
            let _ = parse(&noise);
        }
    }
}
