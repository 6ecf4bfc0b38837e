//! One worker: reads its tap queue, runs its stack to completion, writes on its own queue.
//!
//! [`run`] is the spine. Per wake-up: frames other workers handed over, then a batch from the
//! [`device`] (the tap queue with its virtio-net header and `--impair` layers), each frame to
//! this stack or handed to its flow's owner, then the apps ([`crate::rtc`]), the stack's timers
//! and pending sends, then every frame written in one go after the stack lock is let go
//! ([`tx`]). Tracing, when on, sees each frame with the drop reason or the stack events it
//! caused ([`tracing`]).

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, TrySendError};
use protocols::iface::{SocketHandle, Stack};
use protocols::time::Instant;

use crate::fault::FaultCounters;
use crate::node::{lock, Inner};
use crate::rtc::{AppCtx, WorkerApp};
use crate::steer::{classify, Steer};
use crate::sys::event::Poller;
use crate::sys::tap::TapQueue;
use crate::trace::Direction;
use crate::vnet;

mod device;
mod tracing;
mod tx;
mod updates;

use device::Device;
pub(crate) use device::Faults;
use tracing::Tracing;
pub(crate) use tx::TxPools;
use tx::{TxBatch, TxFrame};
pub(crate) use updates::NodeUpdate;
use updates::Sharing;

/// Buffers per worker pool.
pub const POOL_BUFFERS: usize = 1024;
/// Bytes per pool buffer at MTU 1500 and below: a virtio-net header and an Ethernet frame.
pub const BUF_SIZE: usize = 2048;

/// Bytes per pool buffer for `mtu`: [`BUF_SIZE`], or more for jumbo frames (a virtio-net header,
/// an Ethernet header and the MTU, rounded up to a KiB).
pub fn buf_size(mtu: usize) -> usize {
    (vnet::LEN + 14 + mtu).next_multiple_of(1024).max(BUF_SIZE)
}
/// Big buffers per worker, for TSO segments of up to 64 KiB (only with offloads on).
pub const BIG_BUFFERS: usize = 64;
/// Bytes per big buffer: a virtio-net header, an Ethernet header and a 64 KiB IPv4 packet.
pub const BIG_BUF_SIZE: usize = vnet::LEN + 14 + 65536;

/// What one worker counted (the stack counts the rest).
#[derive(Debug, Clone, Default)]
pub struct WorkerCounters {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// TSO segments written (frames the kernel cuts into MSS-sized segments).
    pub tx_gso_frames: u64,
    /// Frames this worker read and processed itself (its own flows, and everything that is
    /// not a TCP or UDP flow).
    pub delivered_local: u64,
    /// Frames this worker read that belonged to another worker's flow.
    pub handed_off: u64,
    /// TCP connections this worker's stack opened (accepted or connected): the ones it owns.
    pub tcp_conns_opened: u64,
    /// Frames other workers handed to this one.
    pub handed_in: u64,
    /// Hand-offs dropped because the owner's channel was full.
    pub handoff_dropped: u64,
    /// Frames not sent because the pool was empty.
    pub tx_no_buffer: u64,
    pub tx_errors: u64,
    pub rx_errors: u64,
    /// Frames larger than the MTU the kernel handed over as GRO/GSO segments.
    pub rx_gso_frames: u64,
    /// Frames whose checksum the kernel vouched for (not verified again).
    pub rx_csum_trusted: u64,
    /// What `--impair` did to frames read, and to frames written.
    pub impair_rx: FaultCounters,
    pub impair_tx: FaultCounters,
    /// Blocked callers this worker's news woke (each waits on the workers its socket lives on).
    pub callers_woken: u64,
}

/// A frame handed from the worker that read it to the worker that owns its flow. The buffer
/// goes back to worker `from` once the frame is processed, so that hand-offs allocate nothing
/// in steady state.
pub(crate) struct Handoff {
    /// The kernel vouched for its checksums.
    pub trusted: bool,
    /// The worker that read the frame and owns the buffer.
    pub from: usize,
    pub frame: Vec<u8>,
}

/// Everything a worker's receive path needs besides the stack.
struct Rx<'a> {
    inner: &'a Inner,
    me: usize,
    counters: &'a mut WorkerCounters,
    tracing: &'a mut Tracing,
    /// Workers handed frames in this batch (bit i: worker i), woken once at its end.
    to_wake: u64,
}

impl Rx<'_> {
    /// Wakes each worker this batch handed frames to, once. A SYN handed over is stamped when
    /// its owner takes it: still after it was read and before the owner's SYN-ACK, which is
    /// all the accept order needs.
    fn wake_owners(&mut self) {
        wake_workers(self.inner, std::mem::take(&mut self.to_wake));
    }

    /// One frame (after any impairment): to this worker's stack, or to its flow's owner.
    fn ingress(
        &mut self,
        stack: &mut Stack,
        now: Instant,
        trusted: bool,
        frame: &[u8],
        tx: &mut TxBatch<'_>,
    ) {
        let workers = self.inner.workers.len();
        match classify(frame, self.me, workers) {
            Steer::Here => {
                self.counters.delivered_local += 1;
                self.deliver(stack, now, trusted, frame, tx);
            }
            Steer::Owner(o) => {
                if hand_off(self.inner, self.me, o, trusted, frame, self.counters) {
                    self.counters.handed_off += 1;
                    self.to_wake |= 1 << o;
                }
            }
        }
    }

    /// Hands `frame` to the stack and traces it. A
    /// connection the frame opened (a SYN) is stamped with the clock read now, after the frame
    /// was read and before our SYN-ACK leaves (`now` was read before the batch): the stamp
    /// orders the accept queues of several workers, and must not precede our SYN-ACK to the
    /// connection a client made before it. Other frames cost no clock read.
    fn deliver(
        &mut self,
        stack: &mut Stack,
        now: Instant,
        trusted: bool,
        frame: &[u8],
        tx: &mut TxBatch<'_>,
    ) {
        if trusted {
            self.counters.rx_csum_trusted += 1;
            stack.receive_trusted(now, frame, tx);
        } else {
            stack.receive(now, frame, tx);
        }
        if let Some(h) = stack.tcp_take_opened() {
            stack.tcp_set_opened_at(h, self.inner.clock.now());
        }
        if self.tracing.on() {
            self.tracing
                .frame(stack, self.me as u16, Direction::In, frame);
        }
    }
}

/// What a worker owns: its tap queue, its pool, its inbound channels, where to pin it, and its
/// fault injectors.
pub(crate) struct WorkerIo {
    pub queue: TapQueue,
    pub pool: TxPools,
    pub handoff_rx: Receiver<Handoff>,
    pub apps_rx: Receiver<Box<dyn WorkerApp>>,
    pub updates_rx: Receiver<NodeUpdate>,
    pub core: Option<usize>,
    pub faults: Option<Faults>,
}

/// Run-to-completion apps on this worker and when they want to run next.
#[derive(Default)]
struct Apps {
    apps: Vec<(Box<dyn WorkerApp>, Option<Instant>)>,
    ready: Vec<SocketHandle>,
}

impl Apps {
    fn poll(&mut self, stack: &mut Stack, now: Instant, worker: usize, workers: usize) {
        if self.apps.is_empty() {
            return;
        }
        self.ready.clear();
        stack.tcp_take_ready(&mut self.ready);
        for (app, at) in &mut self.apps {
            let mut ctx = AppCtx {
                stack,
                now,
                worker,
                workers,
                ready: &self.ready,
            };
            *at = app.poll(&mut ctx);
        }
        self.apps.retain(|(app, _)| !app.done());
        if self.apps.is_empty() {
            stack.tcp_track_ready(false);
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        self.apps.iter().filter_map(|(_, at)| *at).min()
    }
}

pub(crate) fn run(inner: Arc<Inner>, me: usize, io: WorkerIo) {
    let WorkerIo {
        queue,
        mut pool,
        handoff_rx,
        apps_rx,
        updates_rx,
        core,
        faults,
    } = io;
    let mut sharing = Sharing::default();
    let mut apps = Apps::default();
    if let Some(c) = core {
        // Pinning is an optimisation: a worker that cannot pin still works.
        let _ = crate::sys::affinity::pin_current_thread(c);
    }
    let shared = &inner.workers[me];
    let mut poller = Poller::new(&[queue.as_raw_fd(), shared.wake.as_raw_fd()]);
    let mtu_buf = pool.small.buf_size();
    let mut device = Device::new(
        queue,
        me,
        inner.config.offload != crate::node::Offload::Off,
        mtu_buf,
        faults,
    );
    let hdr = device.hdr();
    let mut frames: Vec<TxFrame> = Vec::with_capacity(POOL_BUFFERS + BIG_BUFFERS);
    let mut counters = WorkerCounters::default();
    let mut tracing = Tracing::default();
    // What the stack said changed in a batch, for blocked callers (storage reused).
    let mut news = protocols::iface::News::default();
    {
        let mut st = lock(&shared.stack);
        let now = inner.clock.now();
        let mut tx = TxBatch {
            pool: &mut pool,
            frames: &mut frames,
            no_buffer: 0,
            hdr,
        };
        st.stack.start(now, &mut tx);
    }
    device.transmit(&mut pool, &mut frames, &mut counters, &mut tracing);

    // The last batch filled: more frames are likely waiting, so read on without asking poll.
    let mut more = false;
    while !inner.stop.load(Ordering::SeqCst) {
        // Sleep until a frame, a wake-up (hand-off, app, socket call) or the next timer.
        if !more {
            let timeout = {
                let mut st = lock(&shared.stack);
                let at = [st.stack.poll_at(), apps.poll_at()]
                    .into_iter()
                    .flatten()
                    .min();
                st.sleep_until = at;
                let now = inner.clock.now();
                at.map(|t| {
                    Duration::from_micros(t.total_micros().saturating_sub(now.total_micros()))
                })
            };
            match poller.wait(timeout) {
                Ok(ready) if ready.is_ready(1) => {
                    let _ = shared.wake.drain();
                }
                Ok(_) => {}
                // EINTR and friends: go round again.
                Err(_) => continue,
            }
        }
        if inner.stop.load(Ordering::SeqCst) {
            break;
        }
        tracing.refresh(&inner);
        {
            let mut st = lock(&shared.stack);
            let stack = &mut st.stack;
            let now = inner.clock.now();
            let mut tx = TxBatch {
                pool: &mut pool,
                frames: &mut frames,
                no_buffer: 0,
                hdr,
            };
            // What the other workers learned (the DHCP lease, ARP, path MTUs) first.
            sharing.take(&updates_rx, stack, now, &mut tx);
            let mut rx = Rx {
                inner: &inner,
                me,
                counters: &mut counters,
                tracing: &mut tracing,
                to_wake: 0,
            };
            // Frames other workers handed over first: they have waited longest.
            while let Ok(h) = handoff_rx.try_recv() {
                rx.counters.handed_in += 1;
                rx.deliver(stack, now, h.trusted, &h.frame, &mut tx);
                // The buffer goes home; if its owner's return queue is full it is freed.
                if let Some(w) = inner.workers.get(h.from) {
                    let _ = w.recycle_tx.try_send(h.frame);
                }
            }
            // A batch from the device: to this stack, or handed to the flow's owner.
            more = device.receive(|trusted, frame| rx.ingress(stack, now, trusted, frame, &mut tx));
            rx.wake_owners();
            // Apps, then the stack's timers and sends.
            while let Ok(app) = apps_rx.try_recv() {
                stack.tcp_track_ready(true);
                apps.apps.push((app, None));
            }
            apps.poll(stack, now, me, inner.workers.len());
            stack.poll(now, &mut tx);
            counters.tx_no_buffer += tx.no_buffer;
            if let Some(mac) = stack.take_arp_conflict() {
                warn_conflict(&inner, stack.address(), mac);
            }
            sharing.give(&inner, me, stack);
            counters.tcp_conns_opened = stack.counters().tcp_conns_opened;
            stack.take_news(&mut news);
            if tracing.on() {
                // Timer and application events go with the frames this poll sends.
                tracing.events.clear();
                stack.drain_events(&mut tracing.events);
            }
        }
        device.transmit(&mut pool, &mut frames, &mut counters, &mut tracing);
        shared.news.publish(&news);
        device.report(&mut counters);
        *lock(&shared.counters) = counters.clone();
    }
    // A persistent tap keeps its steering program after we go: give the kernel its own choice
    // back, for whoever attaches next.
    if me == 0 && inner.steering.is_ok() {
        device.clear_steering();
    }
    shared.news.publish_all();
}

/// Wakes worker `i` for each bit `i` set in `bits`, once.
pub(super) fn wake_workers(inner: &Inner, mut bits: u64) {
    while bits != 0 {
        let o = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        if let Some(w) = inner.workers.get(o) {
            let _ = w.wake.notify();
        }
    }
}

/// Another host claims our address: said once per node.
fn warn_conflict(inner: &Inner, me: std::net::Ipv4Addr, mac: protocols::wire::EthernetAddress) {
    if inner.conflict.set(mac).is_ok() {
        eprintln!(
            "tapir: warning: {mac} also claims this node's address {me} (RFC 5227 conflict): \
             defending it with a gratuitous ARP at most every 10 s; look for a duplicate on the LAN"
        );
    }
}

/// Queues `frame` for worker `owner` in a buffer of ours; the caller wakes the owner, once per
/// batch. False (and counted) when the owner's queue is full.
fn hand_off(
    inner: &Inner,
    me: usize,
    owner: usize,
    trusted: bool,
    frame: &[u8],
    counters: &mut WorkerCounters,
) -> bool {
    let Some(w) = inner.workers.get(owner) else {
        return false;
    };
    // A buffer an owner gave back, reused: it has grown to the frames it carried, so in steady
    // state the copy allocates nothing.
    let mut buf = inner.workers[me].recycle_rx.try_recv().unwrap_or_default();
    buf.clear();
    buf.extend_from_slice(frame);
    match w.handoff_tx.try_send(Handoff {
        trusted,
        from: me,
        frame: buf,
    }) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            counters.handoff_dropped += 1;
            false
        }
    }
}
