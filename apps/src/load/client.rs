//! One worker's share of a load run, as a run-to-completion app: it opens its connections
//! from source ports that hash to itself (so their flows stay on this worker), sends requests
//! closed-loop (each connection keeps `pipeline` requests outstanding) or open-loop (requests
//! due on a fixed schedule, latency measured from when each was due), and sends its results
//! over a channel when the run ends. Nothing it counts is shared with another worker.

use super::chunked::{Chunked, Progress};
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

use engine::steer::flow_owner;
use engine::{AppCtx, WorkerApp};
use protocols::iface::{SocketHandle, Stack, TcpError};
use protocols::tcp::State;
use protocols::time::Instant;

use super::report::{ErrorKind, Results};

/// How often connections are checked for a timeout.
const SCAN_US: u64 = 100_000;

/// What one worker does (its share of the run's connections and rate).
#[derive(Debug, Clone)]
pub struct Plan {
    pub remote: SocketAddrV4,
    /// One request's bytes (with `Connection: close` in close mode).
    pub request: Arc<Vec<u8>>,
    /// Connections to hold (closed loop), or at most (open loop).
    pub conns: usize,
    /// Requests outstanding per connection.
    pub pipeline: usize,
    /// Open loop: this worker's requests per second.
    pub rate: Option<f64>,
    /// One connection per request.
    pub close: bool,
    pub duration_us: u64,
    /// Connections opened per second at most (this worker's share).
    pub ramp: Option<f64>,
    pub timeout_us: u64,
    /// Source addresses to spread connections over, and this worker's place among the workers.
    pub srcs: Arc<Vec<Ipv4Addr>>,
}

#[derive(Debug, Default)]
struct Conn {
    established: bool,
    opened_us: u64,
    /// Send instants (closed loop) or due instants (open loop) of the requests outstanding.
    inflight: VecDeque<u64>,
    /// Request bytes queued but not yet taken by the stack.
    unsent: usize,
    /// Response bytes read but not yet parsed (headers), and the body bytes still to come.
    head: Vec<u8>,
    body: Option<Body>,
    status: u16,
    last_progress_us: u64,
    /// Responses completed on this connection.
    completed: u64,
    /// On the open loop's idle list.
    idle: bool,
}

/// The body of the response being read: so many bytes still, or chunked.
#[derive(Debug)]
enum Body {
    Length(usize),
    Chunked(Chunked),
}

/// A response finished, or the stream was not HTTP.
enum Parsed {
    Response(u16),
    Bad,
}

impl Conn {
    /// Feeds received bytes; completed responses go to `done`. Headers are parsed straight
    /// from `data`; only a header cut off at the end of a read is kept (and freed once whole),
    /// so an idle connection holds no parse buffer.
    fn feed(&mut self, mut data: &[u8], done: &mut Vec<Parsed>) {
        if !self.head.is_empty() {
            let mut buf = std::mem::take(&mut self.head);
            buf.extend_from_slice(data);
            self.feed(&buf, done);
            return;
        }
        while !data.is_empty() {
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
                    Progress::Bad => {
                        done.push(Parsed::Bad);
                        return;
                    }
                },
                None => {}
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(data) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = resp.code.unwrap_or(0);
                    let mut body = Some(Body::Length(0));
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            // RFC 9112 §6.1: chunked is the final coding, and overrides any
                            // Content-Length; anything else we cannot delimit.
                            let chunked = std::str::from_utf8(h.value).is_ok_and(|v| {
                                v.rsplit(',')
                                    .next()
                                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
                            });
                            body = chunked.then(|| Body::Chunked(Chunked::default()));
                            break;
                        }
                        if h.name.eq_ignore_ascii_case("content-length") {
                            body = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse().ok())
                                .map(Body::Length);
                        }
                    }
                    let Some(body) = body else {
                        done.push(Parsed::Bad);
                        return;
                    };
                    self.status = status;
                    data = &data[n..];
                    match body {
                        Body::Length(len) => self.finish_body(len, done),
                        chunked => self.body = Some(chunked),
                    }
                }
                Ok(httparse::Status::Partial) => {
                    if data.len() > 64 * 1024 {
                        done.push(Parsed::Bad);
                    } else {
                        self.head = data.to_vec();
                    }
                    return;
                }
                Err(_) => {
                    done.push(Parsed::Bad);
                    return;
                }
            }
        }
    }

    fn finish_body(&mut self, left: usize, done: &mut Vec<Parsed>) {
        if left == 0 {
            self.body = None;
            done.push(Parsed::Response(self.status));
        } else {
            self.body = Some(Body::Length(left));
        }
    }
}

/// One worker's load generator.
pub struct LoadApp {
    plan: Plan,
    results: Results,
    tx: Sender<Results>,
    /// This worker's completed requests, read by the progress line (only this worker writes).
    progress: Arc<AtomicU64>,
    start_us: Option<u64>,
    conns: HashMap<SocketHandle, Conn>,
    /// Open loop: keep-alive connections with room for another request.
    idle: VecDeque<SocketHandle>,
    /// Open loop: due instants of requests not yet sent (no connection was free).
    backlog: VecDeque<u64>,
    next_due_us: u64,
    next_scan_us: u64,
    opened: u64,
    finished: bool,
    buf: Vec<u8>,
}

impl LoadApp {
    pub fn new(plan: Plan, tx: Sender<Results>, progress: Arc<AtomicU64>) -> Self {
        LoadApp {
            plan,
            results: Results::default(),
            tx,
            progress,
            start_us: None,
            conns: HashMap::new(),
            idle: VecDeque::new(),
            backlog: VecDeque::new(),
            next_due_us: 0,
            next_scan_us: 0,
            opened: 0,
            finished: false,
            buf: vec![0; 64 * 1024],
        }
    }

    fn open_loop(&self) -> bool {
        self.plan.rate.is_some()
    }

    /// Connections wanted now: all of them, or as many as the ramp allows so far.
    fn conns_allowed(&self, now: u64, start: u64) -> usize {
        let want = if self.open_loop() && self.plan.close {
            self.backlog.len().min(self.plan.conns)
        } else {
            self.plan.conns
        };
        match self.plan.ramp {
            Some(r) => {
                let ramped = ((now - start) as f64 / 1e6 * r) as u64 + 1;
                let live = self.conns.len() as u64;
                // The ramp limits connections opened, counting replacements.
                let budget = ramped.saturating_sub(self.opened) + live;
                want.min(budget as usize)
            }
            None => want,
        }
    }

    fn open(&mut self, ctx: &mut AppCtx<'_>, now: u64) -> bool {
        let (worker, workers) = (ctx.worker, ctx.workers);
        let remote = self.plan.remote;
        let ip = remote.ip().octets();
        let port_ok = move |p: u16| flow_owner(p, ip, remote.port(), workers) == worker;
        let srcs = &self.plan.srcs;
        let src = srcs[((self.opened as usize) * workers + worker) % srcs.len()];
        match ctx
            .stack
            .tcp_connect_from(ctx.now, src, remote, None, &port_ok)
        {
            Ok(h) => {
                self.opened += 1;
                self.results.conns_opened += 1;
                self.conns.insert(
                    h,
                    Conn {
                        opened_us: now,
                        last_progress_us: now,
                        ..Conn::default()
                    },
                );
                self.results.conns_peak = self.results.conns_peak.max(self.conns.len() as u64);
                true
            }
            Err(_) => {
                self.results.error(ErrorKind::Local);
                false
            }
        }
    }

    /// Queues one request on `h` at `now`, whose latency counts from `since`.
    fn send_request(&mut self, stack: &mut Stack, h: SocketHandle, now: u64, since: u64) {
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        if c.inflight.is_empty() {
            // The timeout counts from here: an idle keep-alive connection (in open loop, one
            // waiting its turn behind all the others) has made no progress because it was
            // asked for none.
            c.last_progress_us = now;
        }
        c.inflight.push_back(since);
        c.unsent += self.plan.request.len();
        flush(stack, h, c, &self.plan.request);
    }

    /// Puts `h` on the open loop's idle list (at the front when `front`) unless it is there.
    fn make_idle(&mut self, h: SocketHandle, front: bool) {
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        if !c.idle {
            c.idle = true;
            if front {
                self.idle.push_front(h);
            } else {
                self.idle.push_back(h);
            }
        }
    }

    /// Drops connection `h` (reset when `abort`).
    fn drop_conn(&mut self, stack: &mut Stack, h: SocketHandle, abort: bool) {
        if let Some(c) = self.conns.get(&h) {
            if c.completed == 0 {
                self.results.conns_without_response += 1;
            }
        }
        if abort {
            let _ = stack.tcp_abort(h);
        } else {
            let _ = stack.tcp_close(h);
        }
        stack.tcp_release(h);
        // Its entry on the idle list, if any, is skipped when it comes up.
        self.conns.remove(&h);
    }

    /// Handles news on connection `h`.
    fn drive(&mut self, stack: &mut Stack, h: SocketHandle, now: u64, running: bool) {
        let Ok(r) = stack.tcp_readiness(h) else {
            if self.conns.remove(&h).is_some_and(|c| c.completed == 0) {
                self.results.conns_without_response += 1;
            }
            return;
        };
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        if let Some(e) = r.error {
            let kind = match e {
                TcpError::Refused => ErrorKind::Refused,
                TcpError::TimedOut => ErrorKind::Timeout,
                _ if !c.established => ErrorKind::Refused,
                _ => ErrorKind::Reset,
            };
            self.results.error(kind);
            self.drop_conn(stack, h, false);
            return;
        }
        if !c.established && !matches!(r.state, State::SynSent | State::SynReceived) {
            c.established = true;
            c.last_progress_us = now;
            if running {
                if self.plan.rate.is_none() {
                    for _ in 0..self.plan.pipeline {
                        self.send_request(stack, h, now, now);
                    }
                } else if let Some(due) = self.backlog.pop_front() {
                    self.send_request(stack, h, now, due);
                    if !self.plan.close && self.plan.pipeline > 1 {
                        self.make_idle(h, false);
                    }
                } else if !self.plan.close {
                    self.make_idle(h, false);
                }
            }
        }
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        if c.unsent > 0 {
            flush(stack, h, c, &self.plan.request);
        }
        let mut parsed = Vec::new();
        let mut eof = false;
        loop {
            match stack.tcp_recv(h, &mut self.buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    self.results.bytes += n as u64;
                    c.last_progress_us = now;
                    c.feed(&self.buf[..n], &mut parsed);
                }
                Err(_) => break,
            }
        }
        let mut completed = 0;
        let mut bad = false;
        for p in parsed {
            match p {
                Parsed::Response(status) => {
                    let since = c.inflight.pop_front().unwrap_or(now);
                    let _ = self
                        .results
                        .latency_us
                        .record(now.saturating_sub(since).max(1));
                    self.results.requests += 1;
                    c.completed += 1;
                    if status >= 400 {
                        self.results.error(ErrorKind::BadStatus);
                    }
                    completed += 1;
                }
                Parsed::Bad => bad = true,
            }
        }
        let outstanding = c.inflight.len();
        if bad || (eof && outstanding > 0) {
            self.results.error(ErrorKind::BadResponse);
            self.drop_conn(stack, h, true);
            return;
        }
        if eof || (self.plan.close && completed > 0) {
            self.drop_conn(stack, h, false);
            return;
        }
        if !running || completed == 0 {
            return;
        }
        if self.plan.rate.is_none() {
            for _ in 0..completed {
                self.send_request(stack, h, now, now);
            }
        } else {
            for _ in 0..completed {
                match self.backlog.pop_front() {
                    Some(due) => self.send_request(stack, h, now, due),
                    None => {
                        self.make_idle(h, false);
                        break;
                    }
                }
            }
        }
    }

    fn scan_timeouts(&mut self, stack: &mut Stack, now: u64) {
        let timeout = self.plan.timeout_us;
        let late: Vec<SocketHandle> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                let waiting = !c.established || !c.inflight.is_empty();
                let since = if c.established {
                    c.last_progress_us
                } else {
                    c.opened_us
                };
                waiting && now.saturating_sub(since) > timeout
            })
            .map(|(h, _)| *h)
            .collect();
        for h in late {
            self.results.error(ErrorKind::Timeout);
            self.drop_conn(stack, h, true);
        }
    }

    fn finish(&mut self, stack: &mut Stack) {
        self.results.conns_at_end = self.conns.len() as u64;
        self.results.min_requests_at_end = self.conns.values().map(|c| c.completed).min();
        let handles: Vec<SocketHandle> = self.conns.keys().copied().collect();
        for h in handles {
            self.drop_conn(stack, h, false);
        }
        self.finished = true;
        let results = std::mem::take(&mut self.results);
        let _ = self.tx.send(results);
    }
}

/// Hands the stack as much of the queued request bytes as it takes.
fn flush(stack: &mut Stack, h: SocketHandle, c: &mut Conn, req: &[u8]) {
    while c.unsent > 0 {
        let off = (req.len() - c.unsent % req.len()) % req.len();
        let end = req.len().min(off + c.unsent);
        match stack.tcp_send(h, &req[off..end]) {
            Ok(n) if n > 0 => c.unsent -= n,
            _ => break,
        }
    }
}

impl WorkerApp for LoadApp {
    fn poll(&mut self, ctx: &mut AppCtx<'_>) -> Option<Instant> {
        if self.finished {
            return None;
        }
        let now = ctx.now.total_micros();
        let start = *self.start_us.get_or_insert(now);
        let end = start + self.plan.duration_us;
        if self.next_due_us == 0 {
            self.next_due_us = start;
        }
        if now >= end {
            self.finish(ctx.stack);
            return None;
        }
        for &h in ctx.ready {
            self.drive(ctx.stack, h, now, true);
        }
        if let Some(rate) = self.plan.rate {
            let interval = (1e6 / rate.max(1e-6)) as u64;
            while self.next_due_us <= now {
                self.backlog.push_back(self.next_due_us);
                self.next_due_us += interval.max(1);
            }
            while !self.backlog.is_empty() {
                let Some(h) = self.idle.pop_front() else {
                    break;
                };
                let Some(c) = self.conns.get_mut(&h) else {
                    continue; // dropped since it went idle
                };
                c.idle = false;
                let Some(due) = self.backlog.pop_front() else {
                    break;
                };
                self.send_request(ctx.stack, h, now, due);
                let room = self
                    .conns
                    .get(&h)
                    .is_some_and(|c| c.inflight.len() < self.plan.pipeline);
                if room {
                    self.make_idle(h, true);
                }
            }
        }
        let allowed = self.conns_allowed(now, start);
        while self.conns.len() < allowed {
            if !self.open(ctx, now) {
                break;
            }
        }
        if now >= self.next_scan_us {
            self.next_scan_us = now + SCAN_US;
            self.scan_timeouts(ctx.stack, now);
        }
        self.progress
            .store(self.results.requests, Ordering::Relaxed);
        let mut wake = end.min(self.next_scan_us);
        if self.plan.rate.is_some() {
            wake = wake.min(self.next_due_us);
        }
        if let Some(r) = self.plan.ramp {
            if self.conns.len() < self.plan.conns {
                wake = wake.min(now + (1e6 / r.max(1e-6)) as u64);
            }
        }
        Some(Instant::from_micros(wake.max(now + 1)))
    }

    fn done(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_split_anywhere_are_parsed_whole() {
        let one = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let bad = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        for (cut, c) in fed_at_every_cut(&[one, bad, one], &[200, 404, 200]) {
            // Nothing is kept between complete responses.
            assert_eq!(c.head.capacity(), 0, "cut at {cut}");
        }
    }

    /// Feeds the responses in two reads, cut at every place; each time the statuses must be
    /// `want`. Returns each cut's connection.
    fn fed_at_every_cut(responses: &[&[u8]], want: &[u16]) -> Vec<(usize, Conn)> {
        let stream = responses.concat();
        (0..stream.len())
            .map(|cut| {
                let mut c = Conn::default();
                let mut done = Vec::new();
                c.feed(&stream[..cut], &mut done);
                c.feed(&stream[cut..], &mut done);
                let statuses: Vec<u16> = done
                    .iter()
                    .map(|p| match p {
                        Parsed::Response(s) => *s,
                        Parsed::Bad => 0,
                    })
                    .collect();
                assert_eq!(statuses, want, "cut at {cut}");
                (cut, c)
            })
            .collect()
    }

    #[test]
    fn chunked_responses_split_anywhere_are_counted_whole() {
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n";
        let plain = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno";
        fed_at_every_cut(&[chunked, plain, chunked], &[200, 404, 200]);
        // A coding we cannot delimit is a bad response.
        let mut c = Conn::default();
        let mut done = Vec::new();
        c.feed(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx",
            &mut done,
        );
        assert!(matches!(done.as_slice(), [Parsed::Bad]));
    }

    #[test]
    fn garbage_is_a_bad_response() {
        let mut c = Conn::default();
        let mut done = Vec::new();
        c.feed(b"SSH-2.0-OpenSSH\r\n\r\n", &mut done);
        assert!(matches!(done.as_slice(), [Parsed::Bad]));
    }
}
