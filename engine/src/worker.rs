//! One worker: reads its tap queue, runs its stack to completion, writes on its own queue.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, TrySendError};
use protocols::iface::Sink;

use crate::node::{lock, Inner};
use crate::pool::{BufId, BufferPool};
use crate::steer::{classify, Steer};
use crate::sys::event::Poller;
use crate::sys::tap::TapQueue;
use crate::vnet;

/// Buffers per worker pool.
pub const POOL_BUFFERS: usize = 1024;
/// Bytes per pool buffer: an Ethernet frame of the largest MTU we accept, with headroom.
pub const BUF_SIZE: usize = 2048;
/// Frames read per wake-up before the stack is polled and replies are written.
const RX_BATCH: usize = 64;
/// Receive buffer with offloads on: a `virtio_net_hdr` and a GRO'd frame of up to 64 KiB of IP.
const RX_GSO_BUF: usize = vnet::LEN + 14 + 65536;

/// What one worker counted (the stack counts the rest).
#[derive(Debug, Clone, Default)]
pub struct WorkerCounters {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Frames this worker read that belonged to another worker's flow.
    pub handed_off: u64,
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
}

/// Collects the frames a stack sends into pool buffers, written after the stack lock is let go.
struct TxBatch<'a> {
    pool: &'a mut BufferPool,
    frames: &'a mut Vec<(BufId, usize)>,
    no_buffer: u64,
    /// Bytes of `virtio_net_hdr` in front of each frame (0 without offloads).
    hdr: usize,
}

impl Sink for TxBatch<'_> {
    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, max_len: usize, fill: F) {
        let Some(id) = self.pool.alloc() else {
            self.no_buffer += 1;
            return;
        };
        let buf = self.pool.get_mut(id);
        let hdr = self.hdr;
        let room = max_len.min(buf.len() - hdr);
        let n = fill(&mut buf[hdr..hdr + room]);
        if n == 0 {
            self.pool.free(id);
        } else {
            if hdr > 0 {
                vnet::write_plain(buf);
            }
            self.frames.push((id, hdr + n));
        }
    }
}

pub(crate) fn run(
    inner: Arc<Inner>,
    me: usize,
    queue: TapQueue,
    mut pool: BufferPool,
    handoff_rx: Receiver<Vec<u8>>,
    core: Option<usize>,
) {
    if let Some(c) = core {
        // Pinning is an optimisation: a worker that cannot pin still works.
        let _ = crate::sys::affinity::pin_current_thread(c);
    }
    let shared = &inner.workers[me];
    let workers = inner.workers.len();
    let mut poller = Poller::new(&[queue.as_raw_fd(), shared.wake.as_raw_fd()]);
    let mut frames: Vec<(BufId, usize)> = Vec::with_capacity(RX_BATCH * 4);
    let offload = inner.config.offload;
    let hdr = if offload { vnet::LEN } else { 0 };
    let mut rx_buf = vec![0u8; if offload { RX_GSO_BUF } else { BUF_SIZE }];
    let mut counters = crate::worker::WorkerCounters::default();
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
    write_frames(&queue, &mut pool, &mut frames, &mut counters);

    while !inner.stop.load(Ordering::SeqCst) {
        let timeout = {
            let mut st = lock(&shared.stack);
            let at = st.stack.poll_at();
            st.sleep_until = at;
            let now = inner.clock.now();
            at.map(|t| Duration::from_micros(t.total_micros().saturating_sub(now.total_micros())))
        };
        if poller.wait(timeout).is_err() {
            // EINTR and friends: go round again.
            continue;
        }
        let _ = shared.wake.drain();
        if inner.stop.load(Ordering::SeqCst) {
            break;
        }
        let mut news = false;
        {
            let mut st = lock(&shared.stack);
            let now = inner.clock.now();
            let mut tx = TxBatch {
                pool: &mut pool,
                frames: &mut frames,
                no_buffer: 0,
                hdr,
            };
            // Frames other workers handed over first: they have waited longest.
            while let Ok(raw) = handoff_rx.try_recv() {
                counters.handed_in += 1;
                deliver(&mut st.stack, now, &raw, hdr, &mut tx, &mut counters);
            }
            for _ in 0..RX_BATCH {
                match queue.read(&mut rx_buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        counters.rx_frames += 1;
                        // Hand-offs carry the raw read, header included: the owner needs it.
                        let raw = &rx_buf[..n];
                        let frame = raw.get(hdr..).unwrap_or_default();
                        match classify(frame, me, workers) {
                            Steer::Here => {
                                deliver(&mut st.stack, now, raw, hdr, &mut tx, &mut counters)
                            }
                            Steer::Owner(o) => hand_off(&inner, o, raw, &mut counters),
                            Steer::All => {
                                for o in (0..workers).filter(|&o| o != me) {
                                    hand_off(&inner, o, raw, &mut counters);
                                }
                                deliver(&mut st.stack, now, raw, hdr, &mut tx, &mut counters);
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        counters.rx_errors += 1;
                        break;
                    }
                }
            }
            st.stack.poll(now, &mut tx);
            counters.tx_no_buffer += tx.no_buffer;
            news |= st.stack.take_wakeup();
        }
        write_frames(&queue, &mut pool, &mut frames, &mut counters);
        if news {
            inner.publish_news();
        }
        *lock(&shared.counters) = counters.clone();
    }
    inner.publish_news();
}

/// Gives one raw read (a `virtio_net_hdr` of `hdr` bytes, then the frame) to the stack.
fn deliver(
    stack: &mut protocols::iface::Stack,
    now: protocols::time::Instant,
    raw: &[u8],
    hdr: usize,
    tx: &mut TxBatch<'_>,
    counters: &mut WorkerCounters,
) {
    if hdr == 0 {
        stack.receive(now, raw, tx);
        return;
    }
    let (Some(info), Some(frame)) = (vnet::parse(raw), raw.get(hdr..)) else {
        counters.rx_errors += 1;
        return;
    };
    if info.gso {
        counters.rx_gso_frames += 1;
    }
    if info.checksum_trusted {
        counters.rx_csum_trusted += 1;
        stack.receive_trusted(now, frame, tx);
    } else {
        stack.receive(now, frame, tx);
    }
}

fn hand_off(inner: &Inner, owner: usize, frame: &[u8], counters: &mut WorkerCounters) {
    let Some(w) = inner.workers.get(owner) else {
        return;
    };
    match w.handoff_tx.try_send(frame.to_vec()) {
        Ok(()) => {
            counters.handed_off += 1;
            let _ = w.wake.notify();
        }
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            counters.handoff_dropped += 1;
        }
    }
}

fn write_frames(
    queue: &TapQueue,
    pool: &mut BufferPool,
    frames: &mut Vec<(BufId, usize)>,
    counters: &mut WorkerCounters,
) {
    for (id, len) in frames.drain(..) {
        let buf = pool.get(id);
        match queue.write(&buf[..len]) {
            Ok(_) => counters.tx_frames += 1,
            Err(_) => counters.tx_errors += 1,
        }
        pool.free(id);
    }
}
