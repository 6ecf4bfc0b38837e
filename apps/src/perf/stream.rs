//! The data phase of a test: every data connection moves its bytes on the worker that owns it,
//! inside that worker's poll (a run-to-completion app, one per worker holding streams), so no
//! read or write waits for a thread hop. The control connection stays on the blocking API in
//! [`super`], which starts the apps, stops them through [`Shared::stop`] and waits for them.
//!
//! A receiver drops what arrives without copying it ([`Stack::tcp_discard`]) and counts it; a
//! sender writes iperf3's pattern, a block at a time, as fast as the send buffer takes it. One
//! app may hold streams of both kinds (`--bidir`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;

use engine::{AppCtx, Node, TcpStream, WorkerApp};
use protocols::iface::{SocketHandle, Stack, TcpError};
use protocols::time::{Duration, Instant};

use super::interval::{Sample, Shared};

/// How long a sender told to stop may take to finish the block it started.
const GRACE: Duration = Duration::from_secs(2);

/// How long a receiver told to stop goes on reading (and dropping) what its sender still sends,
/// at most, before it lets go of the stream anyway (which then resets it).
const DRAIN: Duration = Duration::from_secs(10);

struct Stream {
    index: usize,
    send: bool,
    bytes: u64,
    /// Sender: where in the block the next write starts.
    off: usize,
    /// Receiver told to stop: our FIN is out, and what the sender still sends is dropped until
    /// it closes too.
    draining: bool,
}

/// One worker's data streams.
pub struct StreamsApp {
    shared: Arc<Shared>,
    /// The block a sender writes over and over.
    block: Arc<[u8]>,
    streams: HashMap<SocketHandle, Stream>,
    started: bool,
    give_up: Option<Instant>,
    /// Told once, when every stream has been closed or is only draining.
    done: Sender<()>,
    told: bool,
    finished: bool,
}

/// A block of `len` bytes of iperf3's default payload pattern.
pub fn pattern(len: usize) -> Arc<[u8]> {
    (0..len).map(|i| b"0123456789"[i % 10]).collect()
}

impl StreamsApp {
    /// Runs streams `(stream index, handle, sends)`, all owned by one worker, a sender writing
    /// `block`. The handles become the app's: it closes and releases them.
    pub fn new(
        shared: Arc<Shared>,
        block: Arc<[u8]>,
        streams: impl IntoIterator<Item = (usize, SocketHandle, bool)>,
        done: Sender<()>,
    ) -> Self {
        let streams = streams
            .into_iter()
            .map(|(index, h, send)| {
                let s = Stream {
                    index,
                    send,
                    bytes: 0,
                    off: 0,
                    draining: false,
                };
                (h, s)
            })
            .collect();
        StreamsApp {
            shared,
            block,
            streams,
            started: false,
            give_up: None,
            done,
            told: false,
            finished: false,
        }
    }

    /// Moves what can move on stream `h` now; closes it when it is over.
    fn drive(&mut self, stack: &mut Stack, h: SocketHandle, stopping: bool, late: bool) {
        let Some(s) = self.streams.get_mut(&h) else {
            return; // another app's connection on this worker
        };
        let over = if s.send {
            send(stack, h, s, &self.block, &self.shared, stopping, late)
        } else {
            receive(stack, h, s, stopping)
        };
        let mut sample = Sample {
            bytes: s.bytes,
            ..Default::default()
        };
        if s.send {
            if let Some(info) = stack.tcp_info(h) {
                sample.cwnd = info.cwnd as u64;
                sample.rtt_us = info.rtt.map_or(0, |r| r.as_micros() as u64);
            }
        }
        self.shared.set(s.index, &sample);
        if over {
            self.streams.remove(&h);
            let _ = stack.tcp_close(h);
            stack.tcp_release(h);
        }
    }
}

/// Reads and drops everything ready; true when the stream is over (ended, failed). Told to stop,
/// it sends its FIN and goes on dropping what arrives until the sender closes too: the sender
/// stops only when the control connection's TEST_END reaches it, which follows, and letting go
/// of a stream with data still arriving would reset it under the sender (RFC 1122 §4.2.2.13),
/// which a stock iperf3 server takes for a failed test.
fn receive(stack: &mut Stack, h: SocketHandle, s: &mut Stream, stopping: bool) -> bool {
    if stopping && !s.draining {
        s.draining = true;
        let _ = stack.tcp_close(h);
    }
    loop {
        match stack.tcp_discard(h, usize::MAX) {
            Ok(0) => return true,
            Ok(n) => s.bytes += n as u64,
            Err(TcpError::WouldBlock) => return false,
            Err(_) => return true,
        }
    }
}

/// Writes until the send buffer is full; true when the stream is over. Once stopping, a sender
/// finishes the block it started (iperf3's receiver reads whole blocks, and would wait for the
/// rest until the connection closed), unless that takes past the grace. With a `-n`/`-k` budget
/// it starts no block once the budget is spent (a block may go past it, as with iperf3).
fn send(
    stack: &mut Stack,
    h: SocketHandle,
    s: &mut Stream,
    block: &[u8],
    shared: &Shared,
    stopping: bool,
    late: bool,
) -> bool {
    loop {
        if stopping && (s.off == 0 || late) {
            return true;
        }
        if s.off == 0 && !shared.may_send() {
            return false;
        }
        match stack.tcp_send(h, block.get(s.off..).unwrap_or_default()) {
            Ok(n) => {
                s.bytes += n as u64;
                s.off = (s.off + n) % block.len();
                shared.spent(n);
            }
            Err(TcpError::WouldBlock) => return false,
            Err(_) => return true,
        }
    }
}

impl WorkerApp for StreamsApp {
    fn poll(&mut self, ctx: &mut AppCtx<'_>) -> Option<Instant> {
        if self.finished {
            return None;
        }
        let stopping = self.shared.stop.load(Ordering::Acquire);
        if stopping && self.give_up.is_none() {
            self.give_up = Some(ctx.now + GRACE);
        }
        let late = self.give_up.is_some_and(|t| ctx.now >= t);
        if self.give_up.is_some_and(|t| ctx.now >= t + DRAIN) {
            // Senders that never closed: let go of their streams anyway.
            for (h, _) in self.streams.drain() {
                ctx.stack.tcp_release(h);
            }
        }
        if self.started && !stopping {
            for &h in ctx.ready {
                self.drive(ctx.stack, h, false, false);
            }
        } else {
            // The first poll (news from before it was not kept for us) and the stop: every
            // stream, news or not.
            self.started = true;
            let all: Vec<SocketHandle> = self.streams.keys().copied().collect();
            for h in all {
                self.drive(ctx.stack, h, stopping, late);
            }
        }
        if !self.told && self.streams.values().all(|s| s.draining) {
            self.told = true;
            let _ = self.done.send(());
        }
        if self.streams.is_empty() {
            self.finished = true;
            return None;
        }
        // A sender finishing its block wants to be polled at the grace's end even if no room
        // opens; draining receivers at the drain's end.
        let drain_end = self.give_up.map(|t| t + DRAIN);
        match (late, self.give_up) {
            (false, at) => at,
            (true, _) => drain_end,
        }
    }

    fn done(&self) -> bool {
        self.finished
    }
}

/// Runs the data phase on the workers that own the streams `(stream, sends)` until `control`
/// returns (the test has ended), then until every stream has finished and closed. `limit`: the
/// bytes to send in all (`-n`/`-k`). `control` may sample the streams through the shared
/// counters. Returns the seconds the test ran, less the omitted ones, and the bytes per stream
/// at its end.
pub fn run(
    node: &Node,
    streams: Vec<(TcpStream, bool)>,
    len: usize,
    omit: std::time::Duration,
    limit: Option<u64>,
    control: impl FnOnce(&Shared) -> anyhow::Result<()>,
) -> anyhow::Result<(f64, Vec<u64>)> {
    let shared = Arc::new(Shared::new(streams.len(), limit));
    let counts = || shared.bytes();
    let senders: Vec<bool> = streams.iter().map(|&(_, send)| send).collect();
    let block = pattern(len);
    let mut by_worker: BTreeMap<usize, Vec<(usize, SocketHandle, bool)>> = BTreeMap::new();
    for (i, (s, send)) in streams.into_iter().enumerate() {
        let (w, h) = s.into_raw_parts();
        by_worker.entry(w).or_default().push((i, h, send));
    }
    let workers: Vec<usize> = by_worker.keys().copied().collect();
    let (done_tx, done_rx) = mpsc::channel();
    let start = std::time::Instant::now();
    for (w, handles) in by_worker {
        let app = StreamsApp::new(shared.clone(), block.clone(), handles, done_tx.clone());
        node.spawn_app(w, Box::new(app))?;
    }
    // iperf3's --omit: what the first `omit` seconds moved is left out, and so is their time.
    let (ended_tx, ended_rx) = mpsc::channel::<()>();
    let (r, omitted) = std::thread::scope(|scope| {
        let snapshot = (!omit.is_zero()).then(|| {
            let counts = &counts;
            scope.spawn(move || match ended_rx.recv_timeout(omit) {
                Err(mpsc::RecvTimeoutError::Timeout) => Some(counts()),
                _ => None,
            })
        });
        let r = control(&shared);
        drop(ended_tx);
        let omitted = snapshot.and_then(|h| h.join().ok().flatten());
        (r, omitted)
    });
    let seconds = (start.elapsed().saturating_sub(omit)).as_secs_f64();
    let mut at_end = counts();
    shared.stop.store(true, Ordering::Release);
    for &w in &workers {
        node.wake_worker(w);
    }
    drop(done_tx);
    for _ in &workers {
        // An error: the node stopped, and its workers dropped the apps.
        if done_rx.recv().is_err() {
            break;
        }
    }
    // What a sender wrote includes the end of its last block.
    for ((end, now), send) in at_end.iter_mut().zip(counts()).zip(senders) {
        if send {
            *end = now;
        }
    }
    if let Some(before) = omitted {
        for (end, early) in at_end.iter_mut().zip(before) {
            *end = end.saturating_sub(early);
        }
    }
    r.map(|()| (seconds, at_end))
}
