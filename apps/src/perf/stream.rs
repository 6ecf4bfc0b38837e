//! The data phase of a test: every data connection moves its bytes on the worker that owns it,
//! inside that worker's poll (a run-to-completion app, one per worker holding streams), so no
//! read or write waits for a thread hop. The control connection stays on the blocking API in
//! [`super`], which starts the apps, stops them through [`Shared::stop`] and waits for them.
//!
//! A receiver drops what arrives without copying it ([`Stack::tcp_discard`]) and counts it; a
//! sender writes iperf3's pattern, a block at a time, as fast as the send buffer takes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

use engine::{AppCtx, WorkerApp};
use protocols::iface::{SocketHandle, Stack, TcpError};
use protocols::time::{Duration, Instant};

/// How long a sender told to stop may take to finish the block it started.
const GRACE: Duration = Duration::from_secs(2);

/// What the control thread and the apps share for one test.
pub struct Shared {
    /// Bytes moved on each stream, by stream index; each written by its owning worker only.
    pub counts: Vec<AtomicU64>,
    /// Set by the control thread when the test ends (then it wakes the workers).
    pub stop: AtomicBool,
}

struct Stream {
    index: usize,
    bytes: u64,
    /// Sender: where in the block the next write starts.
    off: usize,
}

/// One worker's data streams.
pub struct StreamsApp {
    shared: Arc<Shared>,
    /// The block a sender writes over and over; empty for a receiver.
    block: Arc<[u8]>,
    streams: HashMap<SocketHandle, Stream>,
    started: bool,
    give_up: Option<Instant>,
    /// Told once, when every stream has been closed.
    done: Sender<()>,
    finished: bool,
}

/// A block of `len` bytes of iperf3's default payload pattern.
pub fn pattern(len: usize) -> Arc<[u8]> {
    (0..len).map(|i| b"0123456789"[i % 10]).collect()
}

impl StreamsApp {
    /// Runs streams `(stream index, handle)`, all owned by one worker, sending `block` (receiving
    /// when it is empty). The handles become the app's: it closes and releases them.
    pub fn new(
        shared: Arc<Shared>,
        block: Arc<[u8]>,
        streams: impl IntoIterator<Item = (usize, SocketHandle)>,
        done: Sender<()>,
    ) -> Self {
        let streams = streams
            .into_iter()
            .map(|(index, h)| {
                let s = Stream {
                    index,
                    bytes: 0,
                    off: 0,
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
            finished: false,
        }
    }

    /// Moves what can move on stream `h` now; closes it when it is over.
    fn drive(&mut self, stack: &mut Stack, h: SocketHandle, stopping: bool, late: bool) {
        let Some(s) = self.streams.get_mut(&h) else {
            return; // another app's connection on this worker
        };
        let over = if self.block.is_empty() {
            receive(stack, h, s, stopping)
        } else {
            send(stack, h, s, &self.block, stopping, late)
        };
        if let Some(c) = self.shared.counts.get(s.index) {
            c.store(s.bytes, Ordering::Relaxed);
        }
        if over {
            self.streams.remove(&h);
            let _ = stack.tcp_close(h);
            stack.tcp_release(h);
        }
    }
}

/// Reads and drops everything ready; true when the stream is over (stopped, ended, failed).
fn receive(stack: &mut Stack, h: SocketHandle, s: &mut Stream, stopping: bool) -> bool {
    if stopping {
        return true;
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
/// rest until the connection closed), unless that takes past the grace.
fn send(
    stack: &mut Stack,
    h: SocketHandle,
    s: &mut Stream,
    block: &[u8],
    stopping: bool,
    late: bool,
) -> bool {
    loop {
        if stopping && (s.off == 0 || late) {
            return true;
        }
        match stack.tcp_send(h, block.get(s.off..).unwrap_or_default()) {
            Ok(n) => {
                s.bytes += n as u64;
                s.off = (s.off + n) % block.len();
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
        if self.streams.is_empty() {
            self.finished = true;
            let _ = self.done.send(());
            return None;
        }
        // A sender finishing its block wants to be polled at the grace's end even if no room
        // opens.
        self.give_up
    }

    fn done(&self) -> bool {
        self.finished
    }
}
