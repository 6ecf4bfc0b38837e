//! One worker's share of a load run, as a run-to-completion app: it opens its connections
//! from source ports that hash to itself (so their flows stay on this worker), sends requests
//! closed-loop (each connection keeps `pipeline` requests outstanding) or open-loop (requests
//! due on a fixed schedule, latency measured from when each was due), and sends its results
//! over a channel when the run ends. Nothing it counts is shared with another worker.
//!
//! It speaks HTTP/1.x as a browser or wrk does: a response that closes the connection
//! (`Connection: close`, HTTP/1.0, a body read to the close) is a success and the connection
//! is replaced, with no request sent on it after; a request the server closed the connection
//! on before answering any of it (a keep-alive connection the server timed out as the request
//! went out) is sent once more on a new connection and counted only if that fails too. When
//! the run's time is up no request is sent, and the answers to those outstanding are awaited
//! (up to the request timeout), so the count is what the server answered.

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

use super::conn::{Conn, IoBufs, Pending};
use super::report::{ErrorKind, Results};
use super::response::Event;
use super::tls::TlsSetup;

/// How often connections are checked for a timeout.
const SCAN_US: u64 = 100_000;

/// What one worker does (its share of the run's connections and rate).
#[derive(Debug, Clone)]
pub struct Plan {
    pub remote: SocketAddrV4,
    /// The requests' bytes (with `Connection: close` in close mode), sent in turn.
    pub requests: Arc<Vec<Vec<u8>>>,
    /// The requests are HEAD: their responses have no body.
    pub head: bool,
    /// The method is idempotent: a request the server closed on before answering may be
    /// sent again.
    pub retry: bool,
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
    /// HTTPS: the TLS client configuration every connection starts a session from.
    pub tls: Option<Arc<TlsSetup>>,
}

/// How a connection ended, for what it had outstanding.
enum Ending {
    /// The response under way failed for this reason.
    Failed(ErrorKind),
    /// The server closed (FIN or RST, `reset`) after its last complete response, before any
    /// byte of the next: the oldest request is retried once, then counted as this error.
    Unanswered(ErrorKind),
    /// The server said it would close: nothing outstanding was read by it.
    Announced,
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
    /// Open loop: requests due but not yet sent (no connection was free).
    backlog: VecDeque<Pending>,
    /// Requests a connection ended without answering, for the next connections established.
    retries: VecDeque<Pending>,
    next_due_us: u64,
    /// Open loop: requests due so far (the next is due `dues / rate` seconds from the start,
    /// kept exact rather than summing a rounded interval).
    dues: u64,
    next_scan_us: u64,
    opened: u64,
    /// The next of the plan's requests to send.
    next_req: usize,
    /// The run's time is up: answers to requests outstanding are awaited.
    draining: bool,
    finished: bool,
    bufs: IoBufs,
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
            retries: VecDeque::new(),
            next_due_us: 0,
            dues: 0,
            next_scan_us: 0,
            opened: 0,
            next_req: 0,
            draining: false,
            finished: false,
            bufs: IoBufs::default(),
        }
    }

    fn open_loop(&self) -> bool {
        self.plan.rate.is_some()
    }

    /// A new request (the next URL in turn) whose latency counts from `since`.
    fn pending(&mut self, since: u64) -> Pending {
        let req = self.next_req as u32;
        self.next_req = (self.next_req + 1) % self.plan.requests.len();
        Pending {
            req,
            since,
            sent: since,
            retried: false,
        }
    }

    /// Connections wanted now: all of them, or as many as the ramp allows so far.
    fn conns_allowed(&self, now: u64, start: u64) -> usize {
        if self.draining {
            return 0;
        }
        let want = if self.open_loop() && self.plan.close {
            (self.backlog.len() + self.retries.len()).min(self.plan.conns)
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
        let tls = match self.plan.tls.as_ref().map(|t| t.session()).transpose() {
            Ok(s) => s.map(Box::new),
            Err(_) => {
                self.results.error(ErrorKind::Tls);
                return false;
            }
        };
        match ctx
            .stack
            .tcp_connect_from(ctx.now, src, remote, None, &port_ok)
        {
            Ok(h) => {
                if tls.is_some() {
                    // A handshake flight and a request go out as several records: sent at once,
                    // not held for the ACK of the first (Nagle) against the server's delayed ACK.
                    let _ = ctx.stack.tcp_set_nodelay(h, true);
                }
                self.opened += 1;
                self.results.conns_opened += 1;
                self.conns.insert(h, Conn::new(now, tls));
                self.results.conns_peak = self.results.conns_peak.max(self.conns.len() as u64);
                true
            }
            Err(_) => {
                self.results.error(ErrorKind::Local);
                false
            }
        }
    }

    /// Queues request `p` on `h` at `now`.
    fn send_request(&mut self, stack: &mut Stack, h: SocketHandle, now: u64, p: Pending) {
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        if c.inflight.is_empty() {
            // The timeout counts from here: an idle keep-alive connection (in open loop, one
            // waiting its turn behind all the others) has made no progress because it was
            // asked for none.
            c.last_progress_us = now;
        }
        c.queue(stack, h, &self.plan.requests, p, now);
    }

    /// A connection just established sends its first requests: those left unanswered by
    /// connections that ended come first.
    fn start_conn(&mut self, stack: &mut Stack, h: SocketHandle, now: u64) {
        if self.plan.rate.is_none() {
            for _ in 0..self.plan.pipeline {
                let p = match self.retries.pop_front() {
                    Some(p) => p,
                    None => self.pending(now),
                };
                self.send_request(stack, h, now, p);
            }
            return;
        }
        let mut sent = 0;
        while sent < self.plan.pipeline {
            let Some(p) = self
                .retries
                .pop_front()
                .or_else(|| self.backlog.pop_front())
            else {
                break;
            };
            self.send_request(stack, h, now, p);
            sent += 1;
        }
        if !self.plan.close && sent < self.plan.pipeline {
            self.make_idle(h, false);
        }
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

    /// Ends connection `h`: what it had outstanding fails, or goes to the next connections.
    fn end_conn(&mut self, stack: &mut Stack, h: SocketHandle, ending: Ending, abort: bool) {
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        let mut left = std::mem::take(&mut c.inflight);
        match ending {
            Ending::Failed(kind) => {
                self.results.error(kind);
                left.pop_front();
            }
            Ending::Unanswered(kind) => {
                if let Some(first) = left.front_mut() {
                    if first.retried || !self.plan.retry {
                        self.results.error(kind);
                        left.pop_front();
                    } else {
                        first.retried = true;
                    }
                }
            }
            Ending::Announced => {}
        }
        // Requests behind the one that failed were not read by the server.
        self.retries.extend(left);
        self.drop_conn(stack, h, abort);
    }

    /// Handles news on connection `h`.
    fn drive(&mut self, stack: &mut Stack, h: SocketHandle, now: u64) {
        let running = !self.draining;
        let Ok(r) = stack.tcp_readiness(h) else {
            if self.conns.remove(&h).is_some_and(|c| c.completed == 0) {
                self.results.conns_without_response += 1;
            }
            return;
        };
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        if !c.established {
            if let Some(e) = r.error {
                let kind = match e {
                    TcpError::TimedOut => ErrorKind::ConnectTimeout,
                    _ => ErrorKind::ConnectRefused,
                };
                self.results.error(kind);
                self.end_conn(stack, h, Ending::Announced, false);
                return;
            }
            if matches!(r.state, State::SynSent | State::SynReceived) {
                return;
            }
            c.established = true;
            c.last_progress_us = now;
            // The ClientHello.
            c.flush(stack, h, &self.plan.requests);
            if running {
                self.start_conn(stack, h, now);
            }
        }
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        c.flush(stack, h, &self.plan.requests);
        // Read all there is before looking at an error: responses that came before a reset
        // count.
        let out = c.read(stack, h, &mut self.bufs, self.plan.head, now);
        self.results.bytes += out.bytes;
        if let Some(resumed) = out.handshake {
            self.results.handshakes += 1;
            self.results.resumed += u64::from(resumed);
        }
        let (events, eof) = (out.events, out.eof);
        let mut completed = 0;
        let mut ending = None;
        for e in events {
            match e {
                Event::Response { status, close } => {
                    let (since, sent) = c
                        .inflight
                        .pop_front()
                        .map_or((now, now), |p| (p.since, p.sent));
                    let r = &mut self.results;
                    r.latency_us
                        .saturating_record(now.saturating_sub(since).max(1));
                    r.uncorrected_us
                        .saturating_record(now.saturating_sub(sent).max(1));
                    self.results.requests += 1;
                    c.completed += 1;
                    completed += 1;
                    if status >= 400 {
                        self.results.error(ErrorKind::HttpStatus);
                    }
                    if close {
                        ending = Some(Ending::Announced);
                    }
                }
                Event::Bad(kind) => ending = Some(Ending::Failed(kind)),
            }
        }
        let reset = r.error.is_some() || stack.tcp_readiness(h).is_ok_and(|r| r.error.is_some());
        let ending = ending.or_else(|| {
            let started = c.reader.started();
            let kind = if reset {
                ErrorKind::Reset
            } else {
                ErrorKind::Truncated
            };
            match (reset || eof, started) {
                (false, _) => None,
                (true, true) => Some(Ending::Failed(kind)),
                (true, false) => Some(Ending::Unanswered(kind)),
            }
        });
        if let Some(ending) = ending {
            let abort = matches!(ending, Ending::Failed(_));
            self.end_conn(stack, h, ending, abort);
            return;
        }
        if self.plan.close && completed > 0 {
            self.end_conn(stack, h, Ending::Announced, false);
            return;
        }
        if completed == 0 {
            return;
        }
        if self.plan.rate.is_none() {
            if running {
                for _ in 0..completed {
                    let p = self.pending(now);
                    self.send_request(stack, h, now, p);
                }
            }
        } else {
            // Open loop, draining too: the backlog holds only requests due before the end, and
            // a connection that just answered is the one free to take them (no other may be
            // idle when the loop fell behind).
            for _ in 0..completed {
                match self.backlog.pop_front() {
                    Some(p) => self.send_request(stack, h, now, p),
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
        let late: Vec<(SocketHandle, bool)> = self
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
            .map(|(h, c)| (*h, c.established))
            .collect();
        for (h, established) in late {
            let kind = if established {
                ErrorKind::Timeout
            } else {
                ErrorKind::ConnectTimeout
            };
            if established {
                self.end_conn(stack, h, Ending::Failed(kind), true);
            } else {
                self.results.error(kind);
                self.end_conn(stack, h, Ending::Announced, true);
            }
        }
    }

    /// The run's time is up: no more requests; connections with nothing outstanding close.
    /// What the connections held at the end is taken now.
    fn start_drain(&mut self, stack: &mut Stack) {
        self.draining = true;
        self.results.conns_at_end = self.conns.len() as u64;
        self.results.min_requests_at_end = self.conns.values().map(|c| c.completed).min();
        // Requests due before the end that wait for a free connection (the open loop fell
        // behind: a late wake-up, a slow answer) still go out while the run drains, those an
        // ended connection left unanswered first; no connection opens now, and a closed
        // loop's retries were only its next requests.
        if self.open_loop() {
            while let Some(p) = self.retries.pop_back() {
                self.backlog.push_front(p);
            }
        }
        self.retries.clear();
        if self.backlog.is_empty() {
            self.close_idle(stack);
        }
    }

    fn close_idle(&mut self, stack: &mut Stack) {
        let idle: Vec<SocketHandle> = self
            .conns
            .iter()
            .filter(|(_, c)| c.inflight.is_empty())
            .map(|(h, _)| *h)
            .collect();
        for h in idle {
            self.drop_conn(stack, h, false);
        }
    }

    fn finish(&mut self, stack: &mut Stack) {
        // Open loop: requests due before the end that never found a connection before the
        // drain's own deadline are counted, not lost from the total.
        let unsent = self.backlog.len()
            + if self.open_loop() {
                self.retries.len()
            } else {
                0
            };
        for _ in 0..unsent {
            self.results.error(ErrorKind::Timeout);
        }
        self.backlog.clear();
        self.retries.clear();
        let handles: Vec<SocketHandle> = self.conns.keys().copied().collect();
        for h in handles {
            self.drop_conn(stack, h, false);
        }
        self.finished = true;
        let results = std::mem::take(&mut self.results);
        let _ = self.tx.send(results);
    }

    /// Open loop: sends the requests due on idle connections.
    fn dispatch(&mut self, stack: &mut Stack, now: u64) {
        while !self.backlog.is_empty() {
            let Some(h) = self.idle.pop_front() else {
                break;
            };
            let Some(c) = self.conns.get_mut(&h) else {
                continue; // dropped since it went idle
            };
            if !c.idle {
                continue; // a handle reused by a later connection
            }
            c.idle = false;
            let Some(p) = self.backlog.pop_front() else {
                break;
            };
            self.send_request(stack, h, now, p);
            let room = self
                .conns
                .get(&h)
                .is_some_and(|c| c.inflight.len() < self.plan.pipeline);
            if room {
                self.make_idle(h, true);
            }
        }
    }
}

impl LoadApp {
    /// Queues every request due at or before `upto` (open loop): due instants are kept exact,
    /// `start` plus n intervals, not a rounded interval summed.
    fn queue_due(&mut self, rate: f64, start: u64, upto: u64) {
        while self.next_due_us <= upto {
            let p = self.pending(self.next_due_us);
            self.backlog.push_back(p);
            self.dues += 1;
            let offset = (self.dues as f64 * 1e6 / rate.max(1e-6)) as u64;
            self.next_due_us = (start + offset).max(self.next_due_us + 1);
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
        // Answers outstanding at the end are awaited up to the timeout (and then counted as
        // timeouts by the scan), not longer.
        let drain_end = end + self.plan.timeout_us + 2 * SCAN_US;
        if self.next_due_us == 0 {
            self.next_due_us = start;
        }
        // Every request due before the end goes out, also when this wake-up comes after the
        // end (a late timer must not lose the last ones: the run would send fewer than
        // rate x duration, and the server's log would disagree).
        if now >= end && !self.draining {
            if let Some(rate) = self.plan.rate {
                self.queue_due(rate, start, end - 1);
                self.dispatch(ctx.stack, now);
            }
            self.start_drain(ctx.stack);
        }
        for &h in ctx.ready {
            self.drive(ctx.stack, h, now);
        }
        if self.draining {
            self.dispatch(ctx.stack, now);
            if self.backlog.is_empty() {
                self.close_idle(ctx.stack);
            }
            if self.conns.is_empty() || now >= drain_end {
                self.finish(ctx.stack);
                return None;
            }
        }
        if let Some(rate) = self.plan.rate.filter(|_| !self.draining) {
            self.queue_due(rate, start, now);
            self.dispatch(ctx.stack, now);
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
        let mut wake = if self.draining { drain_end } else { end };
        wake = wake.min(self.next_scan_us);
        if self.plan.rate.is_some() && !self.draining {
            wake = wake.min(self.next_due_us);
        }
        if let Some(r) = self.plan.ramp {
            if self.conns.len() < self.plan.conns && !self.draining {
                wake = wake.min(now + (1e6 / r.max(1e-6)) as u64);
            }
        }
        Some(Instant::from_micros(wake.max(now + 1)))
    }

    fn done(&self) -> bool {
        self.finished
    }
}
