//! Interop for issue 17: tapir's HTTP server against raw requests from the kernel and curl, each
//! answer checked for its exact status and for whether the connection stays open (a second
//! request on it answered) or closes. Needs root and /dev/net/tun; every namespace is made by
//! the test (names start with `tapir`) and removed on every path by a Drop guard; every process
//! a test starts is killed by its pid.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

mod common;
use common::http::{addr_of, curl, header, http_site, serve, split_head, Served};
use common::{interop_allowed, kernel, text, TempDir};

/// One answer read off a connection.
#[derive(Debug)]
struct Answer {
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn status(&self) -> u16 {
        self.head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

/// Splits what a server sent into answers (each framed by its Content-Length; 1xx and 304 have
/// no body).
fn answers(mut out: &[u8]) -> Vec<Answer> {
    let mut v = Vec::new();
    while !out.is_empty() {
        let (head, _) = split_head(out);
        let mut a = Answer {
            head: head.clone(),
            body: Vec::new(),
        };
        let status = a.status();
        let len = match header(&head, "content-length") {
            _ if (100..200).contains(&status) || status == 304 => 0,
            Some(l) => l.parse().expect("a length"),
            None => 0,
        };
        let end = (head.len() + len).min(out.len());
        a.body = out[head.len()..end].to_vec();
        out = &out[end..];
        v.push(a);
    }
    v
}

/// A connection from the kernel to tapir's server.
struct Client {
    c: TcpStream,
    got: Vec<u8>,
}

impl Client {
    fn open(addr: SocketAddr) -> Client {
        let c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client { c, got: Vec::new() }
    }

    fn send(&mut self, raw: &[u8]) {
        self.c.write_all(raw).expect("send");
    }

    /// Reads until `needle` has arrived (bounded by the read timeout).
    fn read_until(&mut self, needle: &[u8]) {
        let mut buf = [0u8; 4096];
        while !self.got.windows(needle.len()).any(|w| w == needle) {
            let n = self.c.read(&mut buf).unwrap_or_else(|e| {
                panic!("waiting for {}: {e}: {}", text(needle), text(&self.got))
            });
            assert!(n > 0, "closed before {}: {}", text(needle), text(&self.got));
            self.got.extend_from_slice(&buf[..n]);
        }
    }

    /// Reads to the server's close: every answer, and whether the server did close (rather
    /// than leave the connection open past the read timeout).
    fn finish(mut self) -> (Vec<Answer>, bool) {
        let closed = self.c.read_to_end(&mut self.got).is_ok();
        (answers(&self.got), closed)
    }
}

/// A request on the same connection that shows it is still served, and closes it after.
const FOLLOW: &[u8] = b"GET /digits.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// Sends `raw` on a fresh connection and reads to the close: the statuses answered, and whether
/// the server closed the connection.
fn exchange(s: &Served, raw: &[u8]) -> (Vec<u16>, bool) {
    let addr = addr_of(s, 8080);
    kernel(&s.lab, || {
        let mut c = Client::open(addr);
        c.send(raw);
        let (a, closed) = c.finish();
        (a.iter().map(Answer::status).collect(), closed)
    })
}

/// `raw` followed by [`FOLLOW`]: the first answer's status must be `status`, then the follow-up
/// answered 200 with the file (the connection stayed open and in step).
fn answered_and_kept(s: &Served, raw: &[u8], status: u16) {
    let mut both = raw.to_vec();
    both.extend_from_slice(FOLLOW);
    let addr = addr_of(s, 8080);
    let (a, closed) = kernel(&s.lab, || {
        let mut c = Client::open(addr);
        c.send(&both);
        c.finish()
    });
    let statuses: Vec<u16> = a.iter().map(Answer::status).collect();
    assert_eq!(statuses, [status, 200], "{}: {a:?}", text(raw));
    assert_eq!(text(&a[1].body), "0123456789", "{}", text(raw));
    assert!(closed, "closed after the follow-up's Connection: close");
}

/// `raw` answered `status` alone, and the connection closed after it (nothing after the
/// refused request, the follow-up included, is read as a request).
fn refused_and_closed(s: &Served, raw: &[u8], status: u16) {
    let mut both = raw.to_vec();
    both.extend_from_slice(FOLLOW);
    let (statuses, closed) = exchange(s, &both);
    assert_eq!(statuses, [status], "{}", text(raw));
    assert!(closed, "{}: the connection closes", text(raw));
}

fn site_with_index() -> TempDir {
    let site = http_site();
    std::fs::write(site.0.join("index.html"), "<p>index</p>\n").unwrap();
    site
}

#[test]
fn http_targets_host_rules_and_options_as_rfc_9112_says() {
    if !interop_allowed() {
        return;
    }
    let site = site_with_index();
    let spec = format!("http:8080={}", site.0.display());
    let s = serve(&[], &[&spec]);
    let ip = s.lab.node.address();

    // Absolute form (§3.2.2): the target's path is served, whatever Host says.
    answered_and_kept(
        &s,
        format!("GET http://{ip}:8080/digits.txt HTTP/1.1\r\nHost: elsewhere\r\n\r\n").as_bytes(),
        200,
    );
    let out = curl(
        &s.lab,
        &[
            "-D",
            "-",
            "--request-target",
            &format!("http://{ip}/index.html"),
            &format!("http://{ip}:8080/"),
        ],
    );
    let (head, body) = split_head(&out.stdout);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(text(&body), "<p>index</p>\n");
    refused_and_closed(
        &s,
        b"GET ftp://h/digits.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
    );
    refused_and_closed(
        &s,
        b"GET http://u@h/digits.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
    );

    // Host (§3.2): missing on 1.1, twice, or malformed: 400 and close; 1.0 needs none.
    refused_and_closed(&s, b"GET /digits.txt HTTP/1.1\r\n\r\n", 400);
    refused_and_closed(
        &s,
        b"GET /digits.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
    );
    refused_and_closed(&s, b"GET /digits.txt HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
    let (statuses, closed) = exchange(&s, b"GET /digits.txt HTTP/1.0\r\n\r\n");
    assert_eq!((statuses, closed), (vec![200], true), "1.0 without Host");

    // OPTIONS * (§9.3.7 of RFC 9110): 200 with Allow, and the connection goes on.
    let addr = addr_of(&s, 8080);
    let (a, _) = kernel(&s.lab, || {
        let mut c = Client::open(addr);
        c.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
        c.send(FOLLOW);
        c.finish()
    });
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(a[0].head.starts_with("HTTP/1.1 200 OK\r\n"), "{a:?}");
    assert_eq!(header(&a[0].head, "allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(header(&a[0].head, "content-length"), Some("0"));
    assert_eq!(a[1].status(), 200);
    let (statuses, _) = exchange(&s, b"GET * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(statuses, [400], "* is for OPTIONS only");
    let (statuses, _) = exchange(
        &s,
        b"DELETE /digits.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(statuses, [405]);

    // obs-fold (§5.2): refused with 400.
    refused_and_closed(
        &s,
        b"GET /digits.txt HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
        400,
    );
}

#[test]
fn http_request_bodies_are_framed_one_way_only() {
    if !interop_allowed() {
        return;
    }
    let site = http_site();
    let spec = format!("http:8080={}", site.0.display());
    let s = serve(&[], &[&spec]);

    // Smuggling guards (RFC 9112 §6.3): what two parsers could read differently is a 400, and
    // nothing after it (here a request hidden in the body) is answered.
    let hidden = "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    refused_and_closed(
        &s,
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}",
            5 + hidden.len()
        )
        .as_bytes(),
        400,
    );
    refused_and_closed(
        &s,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc",
        400,
    );
    refused_and_closed(
        &s,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabc",
        400,
    );
    refused_and_closed(
        &s,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc",
        400,
    );
    refused_and_closed(
        &s,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc",
        400,
    );
    refused_and_closed(
        &s,
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
    refused_and_closed(
        &s,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        400,
    );
    // The same length twice is one length (RFC 9110 §8.6): read, and the connection goes on.
    answered_and_kept(
        &s,
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        200,
    );

    // Chunked bodies are read and thrown away before the answer; the next request follows.
    let chunked =
        "5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n";
    answered_and_kept(
        &s,
        format!(
            "GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"
        )
        .as_bytes(),
        200,
    );
    answered_and_kept(
        &s,
        format!(
            "POST /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"
        )
        .as_bytes(),
        405,
    );
    // Cut into pieces the server reads one at a time.
    let addr = addr_of(&s, 8080);
    let (a, closed) = kernel(&s.lab, || {
        let mut c = Client::open(addr);
        c.send(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        for piece in chunked.as_bytes().chunks(7) {
            c.send(piece);
            c.c.flush().unwrap();
        }
        c.send(FOLLOW);
        c.finish()
    });
    let statuses: Vec<u16> = a.iter().map(Answer::status).collect();
    assert_eq!((statuses, closed), (vec![200, 200], true), "{a:?}");
    // A broken chunk: 400 and close.
    refused_and_closed(
        &s,
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        400,
    );
    // curl's chunked upload.
    let body = TempDir::new("upload");
    std::fs::write(body.0.join("b"), vec![b'u'; 100_000]).unwrap();
    let url = format!("http://{}:8080/hello.txt", s.lab.node.address());
    let out = curl(
        &s.lab,
        &[
            "-X",
            "GET",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &format!("@{}", body.0.join("b").display()),
            "-w",
            " %{http_code} %{num_connects}",
            &url,
            &url,
        ],
    );
    assert_eq!(
        text(&out.stdout),
        "hello from a file\n 200 1hello from a file\n 200 0",
        "both answered, on one connection"
    );
}

#[test]
fn http_expect_100_continue_is_answered_before_the_body() {
    if !interop_allowed() {
        return;
    }
    let site = http_site();
    let spec = format!("http:8080={}", site.0.display());
    let s = serve(&[], &[&spec]);
    let addr = addr_of(&s, 8080);

    // RFC 9110 §10.1.1: 100 Continue first; the body is only sent once it has come (a server
    // that did not send it would leave this client waiting until its read timeout).
    let (a, closed) = kernel(&s.lab, || {
        let mut c = Client::open(addr);
        c.send(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
        c.read_until(b"\r\n\r\n");
        assert_eq!(
            text(&c.got),
            "HTTP/1.1 100 Continue\r\n\r\n",
            "only the 100 before the body"
        );
        c.send(b"hello");
        c.send(FOLLOW);
        c.finish()
    });
    let statuses: Vec<u16> = a.iter().map(Answer::status).collect();
    assert_eq!((statuses, closed), (vec![100, 200, 200], true), "{a:?}");
    assert_eq!(text(&a[1].body), "hello from a file\n");

    // Refusing (405 for POST), the final status comes without 100 and the connection closes:
    // the client may never send the body.
    let (statuses, closed) = exchange(
        &s,
        b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    assert_eq!((statuses, closed), (vec![405], true));
    // An expectation this server cannot meet: 417.
    refused_and_closed(
        &s,
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n",
        417,
    );

    // curl's Expect: the 100, then the answer; over the body limit, the 413 without a 100.
    let body = TempDir::new("expect");
    std::fs::write(body.0.join("small"), vec![b'e'; 1000]).unwrap();
    let out = curl(
        &s.lab,
        &[
            "-X",
            "GET",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &format!("@{}", body.0.join("small").display()),
            "-D",
            "-",
            &format!("http://{}:8080/digits.txt", s.lab.node.address()),
        ],
    );
    let got = text(&out.stdout);
    assert!(
        got.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
            && got.ends_with("0123456789"),
        "{got}"
    );
    std::fs::write(body.0.join("b"), vec![b'e'; 2 << 20]).unwrap();
    let out = curl(
        &s.lab,
        &[
            "-X",
            "GET",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &format!("@{}", body.0.join("b").display()),
            "-D",
            "-",
            &format!("http://{}:8080/digits.txt", s.lab.node.address()),
        ],
    );
    let got = text(&out.stdout);
    assert!(
        got.starts_with("HTTP/1.1 413 "),
        "2 MiB is over the limit: {got}"
    );
}
