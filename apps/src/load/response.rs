//! HTTP/1.x response framing for the load generator (RFC 9112 §6): where each response on a
//! connection ends, its status, and whether the server closes the connection after it. Bodies
//! are skipped, never kept. Headers are parsed straight from what a read returned; only a head
//! cut off at the end of a read is kept (and freed once whole), so an idle connection holds no
//! parse buffer.

use super::chunked::{Chunked, Progress};
use super::report::ErrorKind;

/// Longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Header fields accepted in one response.
const MAX_HEADERS: usize = 64;

/// What a connection's reader found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A final response ended; with `close` the server closes the connection after it
    /// (`Connection: close`, or HTTP/1.0 without keep-alive).
    Response { status: u16, close: bool },
    /// The stream is not (or is no longer) HTTP/1.x, or it ended mid-response: nothing more
    /// can be read from this connection.
    Bad(ErrorKind),
}

/// How the body of the response being read ends.
#[derive(Debug)]
enum Body {
    Length(usize),
    Chunked(Chunked),
    /// Neither a length nor chunked: the body runs to the end of the connection (§6.3 rule 8).
    UntilClose,
}

/// One connection's response reader.
#[derive(Debug, Default)]
pub struct Reader {
    /// A head cut off at the end of a read.
    head: Vec<u8>,
    body: Option<Body>,
    status: u16,
    close: bool,
    /// Some of the current response (or an interim one before it) has arrived.
    started: bool,
    /// A response said the connection closes, or the stream went bad: the rest is ignored.
    ended: bool,
}

impl Reader {
    /// Whether any byte of the response being awaited has arrived.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Bytes held between reads (a cut-off head).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.head.capacity()
    }

    /// Feeds received bytes; events go to `done`. `no_body`: the requests on this connection
    /// are HEAD, whose responses carry no body whatever their headers say (§6.3 rule 1).
    pub fn feed(&mut self, data: &[u8], no_body: bool, done: &mut Vec<Event>) {
        if self.ended || data.is_empty() {
            return;
        }
        if !self.head.is_empty() {
            let mut buf = std::mem::take(&mut self.head);
            buf.extend_from_slice(data);
            self.feed_parts(&buf, no_body, done);
        } else {
            self.feed_parts(data, no_body, done);
        }
    }

    /// The peer closed its side: ends a body that runs to the close; a response cut off is
    /// truncated. Nothing is said when no response was under way.
    pub fn eof(&mut self, done: &mut Vec<Event>) {
        if self.ended {
            return;
        }
        match self.body {
            Some(Body::UntilClose) => {
                self.body = None;
                self.end(
                    Event::Response {
                        status: self.status,
                        close: true,
                    },
                    done,
                );
            }
            Some(_) => self.end(Event::Bad(ErrorKind::Truncated), done),
            None if !self.head.is_empty() => self.end(Event::Bad(ErrorKind::Truncated), done),
            None => {}
        }
    }

    fn end(&mut self, e: Event, done: &mut Vec<Event>) {
        self.ended = true;
        self.head = Vec::new();
        done.push(e);
    }

    fn feed_parts(&mut self, mut data: &[u8], no_body: bool, done: &mut Vec<Event>) {
        while !data.is_empty() && !self.ended {
            match &mut self.body {
                Some(Body::Length(left)) => {
                    let left = *left;
                    let take = left.min(data.len());
                    data = &data[take..];
                    self.finish_body(left - take, done);
                    continue;
                }
                Some(Body::Chunked(c)) => match c.feed(data) {
                    Progress::More => return,
                    Progress::Done(n) => {
                        data = &data[n..];
                        self.finish_body(0, done);
                        continue;
                    }
                    Progress::Bad => return self.end(Event::Bad(ErrorKind::BadResponse), done),
                },
                Some(Body::UntilClose) => return,
                None => {}
            }
            self.started = true;
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            let n = match resp.parse(data) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => {
                    if data.len() > MAX_HEAD {
                        self.end(Event::Bad(ErrorKind::BadResponse), done);
                    } else {
                        self.head = data.to_vec();
                    }
                    return;
                }
                Err(httparse::Error::Status | httparse::Error::Version) => {
                    return self.end(Event::Bad(ErrorKind::BadStatusLine), done)
                }
                Err(_) => return self.end(Event::Bad(ErrorKind::BadResponse), done),
            };
            data = &data[n..];
            let status = resp.code.unwrap_or(0);
            if (100..200).contains(&status) {
                // 101 would switch protocols, which no request asked for.
                if status == 101 {
                    return self.end(Event::Bad(ErrorKind::BadResponse), done);
                }
                // Interim responses (100 Continue, 103 Early Hints) have no body and are
                // followed by the final one (§15.2 of RFC 9110).
                continue;
            }
            let Some(head) = Head::of(&resp, status, no_body) else {
                return self.end(Event::Bad(ErrorKind::BadResponse), done);
            };
            self.status = status;
            self.close = head.close;
            match head.body {
                Body::Length(len) => self.finish_body(len, done),
                body => self.body = Some(body),
            }
        }
    }

    fn finish_body(&mut self, left: usize, done: &mut Vec<Event>) {
        if left > 0 {
            self.body = Some(Body::Length(left));
            return;
        }
        self.body = None;
        self.started = false;
        let e = Event::Response {
            status: self.status,
            close: self.close,
        };
        if self.close {
            self.end(e, done);
        } else {
            done.push(e);
        }
    }
}

/// What a final response's head says about its body and its connection.
struct Head {
    body: Body,
    close: bool,
}

impl Head {
    /// `None` when the body cannot be delimited (a coding other than chunked last, a bad
    /// length).
    fn of(resp: &httparse::Response<'_, '_>, status: u16, no_body: bool) -> Option<Head> {
        let mut length: Option<Option<usize>> = None;
        let mut chunked = None;
        let (mut close, mut keep_alive) = (false, false);
        for h in resp.headers.iter() {
            let value = std::str::from_utf8(h.value).ok();
            if h.name.eq_ignore_ascii_case("transfer-encoding") {
                // RFC 9112 §6.1: chunked is the final coding, and overrides any
                // Content-Length; anything else we cannot delimit.
                chunked = Some(value.is_some_and(|v| {
                    v.rsplit(',')
                        .next()
                        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
                }));
            } else if h.name.eq_ignore_ascii_case("content-length") {
                length = Some(value.and_then(|v| v.trim().parse().ok()));
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in value.unwrap_or("").split(',') {
                    let token = token.trim();
                    close |= token.eq_ignore_ascii_case("close");
                    keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                }
            }
        }
        // RFC 9112 §9.3: HTTP/1.1 persists unless told to close; HTTP/1.0 closes unless told
        // to keep alive.
        let mut close = close || (resp.version == Some(0) && !keep_alive);
        let body = if no_body || status == 204 || status == 304 {
            Body::Length(0)
        } else {
            match (chunked, length) {
                (Some(true), _) => Body::Chunked(Chunked::default()),
                (Some(false), _) | (None, Some(None)) => return None,
                (None, Some(Some(n))) => Body::Length(n),
                (None, None) => {
                    close = true;
                    Body::UntilClose
                }
            }
        };
        Some(Head { body, close })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds the stream in two reads, cut at every place, then the end of the stream; each time
    /// the events must be `want`. Returns each cut's reader.
    fn fed_at_every_cut(
        responses: &[&[u8]],
        no_body: bool,
        want: &[Event],
    ) -> Vec<(usize, Reader)> {
        let stream = responses.concat();
        (0..stream.len())
            .map(|cut| {
                let mut r = Reader::default();
                let mut done = Vec::new();
                r.feed(&stream[..cut], no_body, &mut done);
                r.feed(&stream[cut..], no_body, &mut done);
                r.eof(&mut done);
                assert_eq!(done, want, "cut at {cut}");
                (cut, r)
            })
            .collect()
    }

    /// The events of `data` read in one go.
    fn events(data: &[u8], no_body: bool) -> Vec<Event> {
        let mut r = Reader::default();
        let mut done = Vec::new();
        r.feed(data, no_body, &mut done);
        done
    }

    const fn ok(status: u16) -> Event {
        Event::Response {
            status,
            close: false,
        }
    }

    const fn closing(status: u16) -> Event {
        Event::Response {
            status,
            close: true,
        }
    }

    #[test]
    fn responses_split_anywhere_are_parsed_whole() {
        let one = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let bad = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        for (cut, r) in fed_at_every_cut(&[one, bad, one], false, &[ok(200), ok(404), ok(200)]) {
            // Nothing is kept between complete responses.
            assert_eq!(r.held(), 0, "cut at {cut}");
            assert!(!r.started(), "cut at {cut}");
        }
    }

    #[test]
    fn chunked_responses_split_anywhere_are_counted_whole() {
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n";
        let plain = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno";
        fed_at_every_cut(
            &[chunked, plain, chunked],
            false,
            &[ok(200), ok(404), ok(200)],
        );
        // A coding we cannot delimit is a bad response.
        assert_eq!(
            events(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx",
                false
            ),
            [Event::Bad(ErrorKind::BadResponse)]
        );
    }

    #[test]
    fn connection_close_and_http_1_0_end_the_connection() {
        let close = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
        // Whatever follows a response that closes is not read.
        fed_at_every_cut(&[close, b"HTTP/1.1 200 OK\r\n"], false, &[closing(200)]);
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
        fed_at_every_cut(&[old], false, &[closing(200)]);
        let kept = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: Keep-Alive\r\n\r\nok";
        fed_at_every_cut(&[kept, kept], false, &[ok(200), ok(200)]);
        let tokens = b"HTTP/1.1 200 OK\r\nConnection: upgrade, close\r\nContent-Length: 0\r\n\r\n";
        fed_at_every_cut(&[tokens], false, &[closing(200)]);
    }

    #[test]
    fn a_body_without_a_length_runs_to_the_close() {
        let r = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nsome body bytes";
        fed_at_every_cut(&[r], false, &[closing(200)]);
        // HTTP/1.1 alike: the connection cannot be reused.
        let r = b"HTTP/1.1 200 OK\r\n\r\nbody";
        fed_at_every_cut(&[r], false, &[closing(200)]);
    }

    #[test]
    fn interim_responses_are_skipped() {
        let r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
        fed_at_every_cut(&[r], false, &[ok(200)]);
        assert_eq!(
            events(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", false),
            [Event::Bad(ErrorKind::BadResponse)]
        );
    }

    #[test]
    fn head_responses_and_204_304_have_no_body() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 600\r\n\r\n";
        fed_at_every_cut(&[head, head], true, &[ok(200), ok(200)]);
        let chunked_head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        fed_at_every_cut(&[chunked_head, head], true, &[ok(200), ok(200)]);
        let empty = b"HTTP/1.1 204 No Content\r\n\r\n";
        let unchanged = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n";
        fed_at_every_cut(&[empty, unchanged], false, &[ok(204), ok(304)]);
    }

    #[test]
    fn a_response_cut_off_by_the_close_is_truncated() {
        let trunc = Event::Bad(ErrorKind::Truncated);
        for cut in [
            &b"HTTP/1.1 200 OK\r\nContent-Len"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab",
        ] {
            let mut r = Reader::default();
            let mut done = Vec::new();
            r.feed(cut, false, &mut done);
            assert!(r.started());
            r.eof(&mut done);
            assert_eq!(done, [trunc], "{cut:?}");
        }
        // A close between responses is no error.
        let mut r = Reader::default();
        let mut done = Vec::new();
        r.feed(
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            false,
            &mut done,
        );
        r.eof(&mut done);
        assert_eq!(done, [ok(200)]);
    }

    #[test]
    fn garbage_is_a_bad_status_line() {
        let line = [Event::Bad(ErrorKind::BadStatusLine)];
        assert_eq!(events(b"SSH-2.0-OpenSSH\r\n\r\n", false), line);
        assert_eq!(events(b"HTTP/1.1 2x0 OK\r\n\r\n", false), line);
        let bad_length = b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n";
        assert_eq!(
            events(bad_length, false),
            [Event::Bad(ErrorKind::BadResponse)]
        );
    }
}
