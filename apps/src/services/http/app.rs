//! The HTTP server's share on one worker, as a run-to-completion app: it listens on the port in
//! its worker's own stack (a flow's SYN reaches the worker that owns the flow, so every worker
//! listens), accepts, reads, parses and answers inside the worker's poll, with no thread hop
//! per request. Connections never leave the worker that accepted them.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use engine::{AppCtx, WorkerApp};
use protocols::iface::{SocketHandle, Stack, TcpError};
use protocols::tcp::State;
use protocols::time::Instant;

use super::conn::{Conn, Verdict};
use super::log::{AccessLog, Logged};
use super::open_cache::OpenCache;
use super::response::Response;
use super::send::{Outgoing, CHUNK};
use super::tls::Transport;
use super::{Responder, Shared};

/// Accept queue per worker (established connections not yet taken, half-open included), as
/// the blocking API's listeners have: beyond it a SYN flood meets SYN cookies, and the app
/// empties the queue at every poll anyway.
const BACKLOG: usize = 128;
/// How often connections are checked for the idle and send-stall timeouts (µs).
const SCAN_US: u64 = 1_000_000;
/// How often a draining worker looks at its lingering connections at the latest (µs).
const DRAIN_CHECK_US: u64 = 50_000;

/// What a worker's app tells the service that started it.
#[derive(Debug)]
pub enum Report {
    /// The first poll: listening on the port, or why not.
    Listening(Result<(), TcpError>),
    /// Draining is over: no longer listening, and every connection is closed with all it was
    /// sent acknowledged by the client.
    Drained,
    /// Stopped: the listener and every connection are closed.
    Stopped,
}

pub struct HttpApp {
    shared: Arc<Shared>,
    port: u16,
    report: Sender<Report>,
    /// The first poll has come (and tried to listen).
    started: bool,
    listening: bool,
    conns: HashMap<SocketHandle, Conn>,
    /// While draining: connections closed (FIN queued) whose data the client has not all
    /// acknowledged yet; still held, so that their state can be asked.
    lingering: Vec<SocketHandle>,
    /// Draining began (the listener is gone); `Drained` has been reported.
    draining: bool,
    drained: bool,
    log: AccessLog,
    /// This worker's recent opens under the root.
    files: OpenCache,
    scratch: Vec<u8>,
    next_scan_us: u64,
    finished: bool,
}

impl HttpApp {
    pub fn new(shared: Arc<Shared>, port: u16, report: Sender<Report>) -> HttpApp {
        let log = AccessLog::new(shared.config.log.clone(), shared.log_generation.clone());
        HttpApp {
            shared,
            port,
            report,
            started: false,
            listening: false,
            conns: HashMap::new(),
            lingering: Vec::new(),
            draining: false,
            drained: false,
            log,
            files: OpenCache::default(),
            scratch: vec![0; CHUNK],
            next_scan_us: 0,
            finished: false,
        }
    }

    /// Takes every connection waiting in the accept queue.
    fn accept(&mut self, stack: &mut Stack, now_us: u64) {
        while let Ok(Some((h, peer))) = stack.tcp_accept(self.port) {
            let held = self.shared.conns.fetch_add(1, Ordering::SeqCst);
            let transport = Transport::new(self.shared.config.tls.as_ref());
            if held >= self.shared.config.max_conns || transport.is_err() {
                self.shared.conns.fetch_sub(1, Ordering::SeqCst);
                let answer = Response::error(503, "Service Unavailable");
                self.log
                    .line(peer, &Logged::bare("-", 503, answer.body_len()));
                // A fresh connection's send buffer takes this small answer whole; through
                // TLS there is no answer before a handshake, so just the close.
                if self.shared.config.tls.is_none() {
                    let _ =
                        Outgoing::new(answer, true, false).write(stack, h, &mut Transport::Plain);
                }
                let _ = stack.tcp_close(h);
                stack.tcp_release(h);
                continue;
            }
            if let Ok(t) = transport {
                self.conns.insert(h, Conn::new(peer, now_us, t));
            }
            // Data that came with the handshake reached the socket before we owned it: no news
            // will say so, so look now.
            self.drive(stack, h, now_us);
        }
    }

    fn drive(&mut self, stack: &mut Stack, h: SocketHandle, now_us: u64) {
        let Some(c) = self.conns.get_mut(&h) else {
            return; // not ours: another app's socket on this worker
        };
        self.files.set_now(now_us);
        let mut site = Responder {
            site: &self.shared.site,
            files: &mut self.files,
        };
        let verdict = c.drive(
            stack,
            h,
            now_us,
            &mut site,
            &mut self.log,
            &mut self.scratch,
        );
        if verdict != Verdict::Open {
            self.end(stack, h, verdict == Verdict::Abort);
        }
    }

    /// Closes connection `h` (reset when `abort`) and frees its slot.
    fn end(&mut self, stack: &mut Stack, h: SocketHandle, abort: bool) {
        let Some(mut c) = self.conns.remove(&h) else {
            return;
        };
        self.shared.conns.fetch_sub(1, Ordering::SeqCst);
        if abort {
            let _ = stack.tcp_abort(h);
        } else {
            c.transport.close(stack, h);
            let _ = stack.tcp_close(h);
            if self.draining {
                // Exiting must wait until the client has it all: keep the handle to ask.
                self.lingering.push(h);
                return;
            }
        }
        stack.tcp_release(h);
    }

    /// Draining: stops listening (new connections are refused with a reset), ends idle
    /// connections, and lets each busy one finish the responses it has queued, then close.
    fn begin_drain(&mut self, stack: &mut Stack, now_us: u64) {
        self.draining = true;
        if self.listening {
            stack.tcp_unlisten(self.port);
            self.listening = false;
        }
        let all: Vec<SocketHandle> = self.conns.keys().copied().collect();
        for h in all {
            if let Some(c) = self.conns.get_mut(&h) {
                c.drain();
            }
            self.drive(stack, h, now_us);
        }
    }

    /// Releases lingering connections whose FIN the client has acknowledged (so every byte
    /// before it too), and reports `Drained` once nothing is left.
    fn check_drained(&mut self, stack: &mut Stack) {
        self.lingering.retain(|&h| {
            let delivered = stack.tcp_info(h).is_none_or(|i| {
                matches!(i.state, State::FinWait2 | State::TimeWait | State::Closed)
            });
            if delivered {
                stack.tcp_release(h);
            }
            !delivered
        });
        if !self.drained && self.conns.is_empty() && self.lingering.is_empty() {
            self.drained = true;
            self.shared.drained.fetch_add(1, Ordering::SeqCst);
            let _ = self.report.send(Report::Drained);
        }
    }

    /// Closes idle keep-alive connections and resets those whose client stopped reading.
    fn scan(&mut self, stack: &mut Stack, now_us: u64) {
        self.files.set_now(now_us);
        self.files.sweep();
        let idle_us = self.shared.config.idle.as_micros() as u64;
        let stall_us = self.shared.config.send_stall.as_micros() as u64;
        let late: Vec<(SocketHandle, bool)> = self
            .conns
            .iter()
            .filter_map(|(&h, c)| {
                let quiet = now_us.saturating_sub(c.last_progress_us);
                if c.sending() {
                    (quiet > stall_us).then_some((h, true))
                } else {
                    (quiet > idle_us).then_some((h, false))
                }
            })
            .collect();
        for (h, abort) in late {
            self.end(stack, h, abort);
        }
    }

    /// Stops: no more listening, every connection closed (reset mid-response, FIN when idle).
    fn stop(&mut self, stack: &mut Stack) {
        if self.listening {
            stack.tcp_unlisten(self.port);
        }
        let all: Vec<(SocketHandle, bool)> =
            self.conns.iter().map(|(&h, c)| (h, c.sending())).collect();
        self.draining = false;
        for (h, abort) in all {
            self.end(stack, h, abort);
        }
        // Past the grace period: what the clients have not acknowledged is given up.
        for h in self.lingering.drain(..) {
            let _ = stack.tcp_abort(h);
            stack.tcp_release(h);
        }
        self.log.flush();
        self.finished = true;
        let _ = self.report.send(Report::Stopped);
    }
}

impl WorkerApp for HttpApp {
    fn poll(&mut self, ctx: &mut AppCtx<'_>) -> Option<Instant> {
        if self.finished {
            return None;
        }
        if self.shared.stop.load(Ordering::SeqCst) {
            self.stop(ctx.stack);
            return None;
        }
        let now_us = ctx.now.total_micros();
        if !self.started {
            // Once only: a drain's unlisten must not be undone.
            self.started = true;
            let r = ctx.stack.tcp_listen(self.port, BACKLOG);
            self.listening = r.is_ok();
            let _ = self.report.send(Report::Listening(r));
            if r.is_err() {
                self.finished = true;
                return None;
            }
            self.next_scan_us = now_us + SCAN_US;
        }
        if self.shared.draining.load(Ordering::SeqCst) && !self.draining {
            self.begin_drain(ctx.stack, now_us);
        }
        if !self.draining {
            self.accept(ctx.stack, now_us);
        }
        for &h in ctx.ready {
            self.drive(ctx.stack, h, now_us);
        }
        if self.draining {
            self.check_drained(ctx.stack);
            self.log.flush();
            // Acknowledgements are news on the lingering sockets too; the timer is a backstop.
            return (!self.drained).then(|| Instant::from_micros(now_us + DRAIN_CHECK_US));
        }
        if now_us >= self.next_scan_us {
            self.next_scan_us = now_us + SCAN_US;
            self.scan(ctx.stack, now_us);
        }
        self.log.flush();
        // With no connection there is no timer to keep: sleep until the next frame.
        (!self.conns.is_empty()).then(|| Instant::from_micros(self.next_scan_us))
    }

    fn done(&self) -> bool {
        self.finished
    }
}
