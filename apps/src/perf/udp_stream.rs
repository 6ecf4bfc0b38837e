//! The data phase of a UDP test on the workers, as [`super::stream`] runs TCP's: one
//! run-to-completion app per worker that owns streams, so a datagram is stamped, sent, received
//! and counted inside the worker's poll with no thread hop. Used by both roles: the server's
//! streams share its one socket (told apart by the peer's address), the client's have one each.
//!
//! A sender stamps iperf3's header into its block and paces each stream to the test's rate
//! ([`udp::Pacer`], woken by the instant it asks for); a receiver drains its sockets on every
//! poll and counts loss, reordering and jitter as iperf3 does ([`udp::RecvStats`]).

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;

use engine::{AppCtx, Node, WorkerApp};
use protocols::iface::{SocketHandle, Stack, UdpError};
use protocols::time::{Duration, Instant};

use super::interval::{Sample, Shared};
use super::proto::StreamResult;
use super::udp::{self, Pacer, RecvStats};

/// One stream: its index in the test, the socket it uses on this worker, its peer, and whether
/// this side sends on it.
#[derive(Debug, Clone, Copy)]
pub struct StreamSpec {
    pub index: usize,
    pub handle: SocketHandle,
    pub peer: SocketAddrV4,
    pub send: bool,
}

/// What every stream of a test shares.
#[derive(Debug, Clone, Copy)]
pub struct UdpTest {
    /// Datagrams of `len` bytes at `rate` bits per second per stream (0: no limit).
    pub len: usize,
    pub rate: u64,
    /// 64-bit sequence numbers.
    pub wide: bool,
    /// The first `omit` of the test is reported apart (iperf3's -O).
    pub omit: Duration,
    /// `-n`/`-k`: the bytes to send in all.
    pub limit: Option<u64>,
}

struct Stream {
    spec: StreamSpec,
    /// A receiver's figures; a sender counts its bytes and datagrams in `bytes` and `packets`.
    stats: RecvStats,
    pacer: Pacer,
}

/// One worker's UDP streams. When stopped it reports each stream's figures, by stream index,
/// on `done`.
pub struct UdpStreamsApp {
    shared: Arc<Shared>,
    wide: bool,
    omit: Duration,
    streams: Vec<Stream>,
    /// The distinct sockets the streams use (a server's streams share one).
    handles: Vec<SocketHandle>,
    block: Vec<u8>,
    start: Option<Instant>,
    omitting: bool,
    done: Sender<Vec<(usize, RecvStats)>>,
    finished: bool,
}

impl UdpStreamsApp {
    /// Streams owned by this worker.
    pub fn new(
        shared: Arc<Shared>,
        test: UdpTest,
        specs: Vec<StreamSpec>,
        done: Sender<Vec<(usize, RecvStats)>>,
    ) -> Self {
        let len = test.len.max(udp::header_len(test.wide));
        // Only the receiving streams' sockets are read.
        let mut handles: Vec<SocketHandle> =
            specs.iter().filter(|s| !s.send).map(|s| s.handle).collect();
        handles.sort_unstable();
        handles.dedup();
        let streams = specs
            .into_iter()
            .map(|spec| Stream {
                spec,
                stats: RecvStats::default(),
                pacer: Pacer::new(test.rate),
            })
            .collect();
        UdpStreamsApp {
            shared,
            wide: test.wide,
            omit: test.omit,
            streams,
            handles,
            block: super::stream::pattern(len).to_vec(),
            start: None,
            omitting: !test.omit.is_zero(),
            done,
            finished: false,
        }
    }

    /// Drains this worker's sockets, counting each data datagram on its stream.
    fn receive(&mut self, stack: &mut Stack) {
        for &h in &self.handles {
            while let Ok(Some(d)) = stack.udp().recv_from(h) {
                let arrival = udp::wall_clock().as_secs_f64();
                // A client's streams share a peer, a server's a socket.
                let Some(s) = self
                    .streams
                    .iter_mut()
                    .find(|s| !s.spec.send && s.spec.handle == h && s.spec.peer == d.from)
                else {
                    continue;
                };
                // A repeated connect datagram is not data.
                if udp::is_connect_msg(&d.data) {
                    continue;
                }
                if let Some((sent, count)) = udp::parse_header(&d.data, self.wide) {
                    s.stats.on_datagram(d.data.len(), count, sent, arrival);
                }
            }
        }
    }

    /// Sends what each stream's pacer allows by `elapsed`; when to come back.
    fn send(&mut self, stack: &mut Stack, now: Instant, elapsed: Duration) -> Instant {
        let mut next = now + Duration::from_millis(1);
        for s in self.streams.iter_mut().filter(|s| s.spec.send) {
            loop {
                if !self.shared.may_send() {
                    break;
                }
                let wait = s.pacer.wait(elapsed);
                if !wait.is_zero() {
                    next = next.min(now + wait);
                    break;
                }
                let count = s.stats.packets + 1;
                udp::write_header(&mut self.block, udp::wall_clock(), count, self.wide);
                match stack.udp().send_to(s.spec.handle, s.spec.peer, &self.block) {
                    Ok(()) => {
                        s.stats.packets = count;
                        s.stats.bytes += self.block.len() as u64;
                        s.pacer.sent(self.block.len());
                        self.shared.spent(self.block.len());
                    }
                    // The stack's queue is full: it drains after this poll; come straight back.
                    Err(UdpError::QueueFull) => {
                        next = now;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        next
    }

    fn finish(&mut self) {
        self.finished = true;
        let figures = self
            .streams
            .iter()
            .map(|s| (s.spec.index, s.stats.clone()))
            .collect();
        let _ = self.done.send(figures);
    }
}

impl WorkerApp for UdpStreamsApp {
    fn poll(&mut self, ctx: &mut AppCtx<'_>) -> Option<Instant> {
        if self.finished {
            return None;
        }
        let start = *self.start.get_or_insert(ctx.now);
        let elapsed = ctx.now.saturating_duration_since(start);
        if self.omitting && elapsed >= self.omit {
            self.omitting = false;
            self.streams.iter_mut().for_each(|s| s.stats.end_omit());
        }
        let stopping = self.shared.stop.load(Ordering::Acquire);
        let mut next = None;
        if !stopping {
            self.receive(ctx.stack);
            if self.streams.iter().any(|s| s.spec.send) {
                next = Some(self.send(ctx.stack, ctx.now, elapsed));
            }
            if self.omitting {
                let end = start + self.omit;
                next = Some(next.map_or(end, |n: Instant| n.min(end)));
            }
        }
        for s in &self.streams {
            let sample = Sample {
                bytes: s.stats.bytes,
                packets: s.stats.packets,
                errors: s.stats.errors,
                jitter: s.stats.jitter,
                ..Default::default()
            };
            self.shared.set(s.spec.index, &sample);
        }
        if stopping {
            self.finish();
        }
        next
    }

    fn done(&self) -> bool {
        self.finished
    }
}

/// Runs the streams `(worker, spec)` on their workers until `control` returns (the test has
/// ended), then stops them; `control` may sample them through the shared counters. Returns the
/// seconds the test ran, less the omitted ones, and each stream's figures by stream index.
pub fn run(
    node: &Node,
    specs: Vec<(usize, StreamSpec)>,
    test: UdpTest,
    control: impl FnOnce(&Shared) -> anyhow::Result<()>,
) -> anyhow::Result<(f64, Vec<RecvStats>)> {
    let n = specs.len();
    let shared = Arc::new(Shared::new(n, test.limit));
    let mut by_worker: BTreeMap<usize, Vec<StreamSpec>> = BTreeMap::new();
    for (w, spec) in specs {
        by_worker.entry(w).or_default().push(spec);
    }
    let workers: Vec<usize> = by_worker.keys().copied().collect();
    let (done_tx, done_rx) = mpsc::channel();
    let start = std::time::Instant::now();
    for (w, specs) in by_worker {
        let app = UdpStreamsApp::new(shared.clone(), test, specs, done_tx.clone());
        node.spawn_app(w, Box::new(app))?;
    }
    drop(done_tx);
    let r = control(&shared);
    let seconds = start.elapsed().saturating_sub(test.omit).as_secs_f64();
    shared.stop.store(true, Ordering::Release);
    for &w in &workers {
        node.wake_worker(w);
    }
    let mut stats = vec![RecvStats::default(); n];
    for _ in &workers {
        // An error: the node stopped, and its workers dropped the apps.
        let Ok(figures) = done_rx.recv() else { break };
        for (i, s) in figures {
            if let Some(slot) = stats.get_mut(i) {
                *slot = s;
            }
        }
    }
    r.map(|()| (seconds, stats))
}

/// Each stream's figures as a results message carries them, under the stream ids `ids` (`sends`:
/// which streams this side sent on); what the omitted seconds held is left out of the bytes and
/// sent apart, as iperf3 does.
pub fn results(
    stats: &[RecvStats],
    ids: &[u64],
    sends: &[bool],
    seconds: f64,
) -> Vec<StreamResult> {
    stats
        .iter()
        .zip(ids)
        .zip(sends)
        .map(|((s, &id), &sender)| StreamResult {
            id,
            sender,
            bytes: s.bytes.saturating_sub(s.omitted_bytes),
            seconds,
            jitter: s.jitter,
            errors: s.errors,
            omitted_errors: s.omitted_errors,
            packets: s.packets,
            omitted_packets: s.omitted_packets,
            ..Default::default()
        })
        .collect()
}
