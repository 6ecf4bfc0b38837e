//! The requests a load run sends (RFC 9112 §3): built once, before the run, from the method,
//! the URLs' paths, the user's header fields and body; every worker shares the bytes.

use anyhow::{bail, Context, Result};

/// A header field from `-H 'Name: value'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// Fields tapir sets itself from the other options; `-H` may not give them.
const OWN_FIELDS: [&str; 2] = ["content-length", "transfer-encoding"];

/// RFC 9110 §5.6.2: a token (a method or a field name).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks `-m METHOD`.
pub fn check_method(m: &str) -> Result<()> {
    if !is_token(m) {
        bail!("-m {m:?}: give an HTTP method, e.g. -m GET, -m POST, -m HEAD");
    }
    Ok(())
}

/// Parses `-H 'Name: value'`.
pub fn parse_header(s: &str) -> Result<Header> {
    let Some((name, value)) = s.split_once(':') else {
        bail!("-H {s:?}: give a header field as 'Name: value'");
    };
    let (name, value) = (name.trim(), value.trim());
    if !is_token(name) {
        bail!("-H {s:?}: {name:?} is not a header field name (letters, digits, '-' and the like)");
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        bail!("-H {s:?}: a header value cannot hold a line break");
    }
    if OWN_FIELDS.iter().any(|f| name.eq_ignore_ascii_case(f)) {
        bail!("-H {name}: tapir load sets it from --body; leave it out");
    }
    Ok(Header {
        name: name.to_string(),
        value: value.to_string(),
    })
}

/// Reads `--body FILE`.
pub fn read_body(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path)
        .with_context(|| format!("--body {path}: cannot read it; give a readable file"))
}

/// What every request of a run has in common.
#[derive(Debug, Clone)]
pub struct Template<'a> {
    pub method: &'a str,
    /// The Host field (host, and port unless 80).
    pub host: &'a str,
    pub headers: &'a [Header],
    pub body: Option<&'a [u8]>,
    /// Ask the server to close after each response (one connection per request).
    pub close: bool,
}

impl Template<'_> {
    /// The bytes of one request for `path`. Host, User-Agent and Connection are tapir's
    /// unless `-H` gives them.
    pub fn build(&self, path: &str) -> Vec<u8> {
        let given = |name: &str| {
            self.headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(name))
        };
        let mut s = format!("{} {path} HTTP/1.1\r\n", self.method);
        if !given("host") {
            s += &format!("Host: {}\r\n", self.host);
        }
        if !given("user-agent") {
            s += "User-Agent: tapir-load\r\n";
        }
        if !given("connection") {
            s += if self.close {
                "Connection: close\r\n"
            } else {
                "Connection: keep-alive\r\n"
            };
        }
        for h in self.headers {
            s += &format!("{}: {}\r\n", h.name, h.value);
        }
        if let Some(body) = self.body {
            s += &format!("Content-Length: {}\r\n", body.len());
        }
        s += "\r\n";
        let mut bytes = s.into_bytes();
        if let Some(body) = self.body {
            bytes.extend_from_slice(body);
        }
        bytes
    }
}

/// RFC 9110 §9.2.2: a request that may be sent again when a connection closed before its
/// answer (POST and PATCH are not).
pub fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_carries_the_method_headers_and_body() {
        let headers = [
            parse_header("X-Tapir: yes").unwrap(),
            parse_header("accept:  text/html ").unwrap(),
        ];
        let t = Template {
            method: "POST",
            host: "10.7.0.1:8080",
            headers: &headers,
            body: Some(b"a=1&b=2"),
            close: false,
        };
        assert_eq!(
            t.build("/form?x=1"),
            b"POST /form?x=1 HTTP/1.1\r\nHost: 10.7.0.1:8080\r\nUser-Agent: tapir-load\r\n\
Connection: keep-alive\r\nX-Tapir: yes\r\naccept: text/html\r\nContent-Length: 7\r\n\r\na=1&b=2"
        );
        // Fields given with -H replace tapir's own.
        let headers = [
            parse_header("Host: www.lab.test").unwrap(),
            parse_header("User-Agent: other").unwrap(),
        ];
        let t = Template {
            method: "GET",
            host: "10.7.0.1",
            headers: &headers,
            body: None,
            close: true,
        };
        assert_eq!(
            t.build("/"),
            b"GET / HTTP/1.1\r\nConnection: close\r\nHost: www.lab.test\r\nUser-Agent: other\r\n\r\n"
        );
    }

    #[test]
    fn bad_methods_and_headers_are_usage_errors() {
        assert!(check_method("GET").is_ok());
        assert!(check_method("M-SEARCH").is_ok());
        for bad in ["", "GET /", "G\rET"] {
            assert!(check_method(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "NoColon",
            ": value",
            "Bad Name: v",
            "X: a\r\nInjected: 1",
            "Content-Length: 5",
            "transfer-encoding: chunked",
        ] {
            assert!(parse_header(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_header("X-Empty:").unwrap().value, "");
        assert!(read_body("/nonexistent/tapir-body").is_err());
    }

    #[test]
    fn only_idempotent_methods_are_retried() {
        assert!(idempotent("GET") && idempotent("HEAD") && idempotent("PUT"));
        assert!(!idempotent("POST") && !idempotent("PATCH"));
    }
}
