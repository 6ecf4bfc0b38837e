//! One worker: reads its tap queue, runs its stack to completion, writes on its own queue.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, TrySendError};
use protocols::iface::Sink;

use crate::fault::{FaultCounters, FaultInjector, ImpairSpec};
use crate::node::{lock, Inner};
use crate::pool::{BufId, BufferPool};
use crate::steer::{classify, Steer};
use crate::sys::event::Poller;
use crate::sys::tap::TapQueue;

/// Buffers per worker pool.
pub const POOL_BUFFERS: usize = 1024;
/// Bytes per pool buffer: an Ethernet frame of the largest MTU we accept, with headroom.
pub const BUF_SIZE: usize = 2048;
/// Frames read per wake-up before the stack is polled and replies are written.
const RX_BATCH: usize = 64;

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
    /// What `--impair` did to frames read, and to frames written.
    pub impair_rx: FaultCounters,
    pub impair_tx: FaultCounters,
}

/// A worker's fault injectors (`--impair`): one for the frames it reads, one for those it
/// writes, each with its own generator.
pub(crate) struct Faults {
    rx: FaultInjector,
    tx: FaultInjector,
}

impl Faults {
    pub fn new(spec: ImpairSpec, seed: u64, worker: usize) -> Self {
        let base = seed.wrapping_add((worker as u64) << 8);
        Faults {
            rx: FaultInjector::new(spec, base),
            tx: FaultInjector::new(spec, base ^ 0x7478),
        }
    }
}

/// Collects the frames a stack sends into pool buffers, written after the stack lock is let go.
struct TxBatch<'a> {
    pool: &'a mut BufferPool,
    frames: &'a mut Vec<(BufId, usize)>,
    no_buffer: u64,
}

impl Sink for TxBatch<'_> {
    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, max_len: usize, fill: F) {
        let Some(id) = self.pool.alloc() else {
            self.no_buffer += 1;
            return;
        };
        let buf = self.pool.get_mut(id);
        let room = max_len.min(buf.len());
        let n = fill(&mut buf[..room]);
        if n == 0 {
            self.pool.free(id);
        } else {
            self.frames.push((id, n));
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
    mut faults: Option<Faults>,
) {
    if let Some(c) = core {
        // Pinning is an optimisation: a worker that cannot pin still works.
        let _ = crate::sys::affinity::pin_current_thread(c);
    }
    let shared = &inner.workers[me];
    let mut poller = Poller::new(&[queue.as_raw_fd(), shared.wake.as_raw_fd()]);
    let mut frames: Vec<(BufId, usize)> = Vec::with_capacity(RX_BATCH * 4);
    let mut rx_buf = vec![0u8; BUF_SIZE];
    let mut counters = crate::worker::WorkerCounters::default();
    {
        let mut st = lock(&shared.stack);
        let now = inner.clock.now();
        let mut tx = TxBatch {
            pool: &mut pool,
            frames: &mut frames,
            no_buffer: 0,
        };
        st.stack.start(now, &mut tx);
    }
    write_frames(
        &queue,
        &mut pool,
        &mut frames,
        &mut counters,
        faults.as_mut(),
    );

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
            };
            // Frames other workers handed over first: they have waited longest.
            while let Ok(frame) = handoff_rx.try_recv() {
                counters.handed_in += 1;
                st.stack.receive(now, &frame, &mut tx);
            }
            for _ in 0..RX_BATCH {
                match queue.read(&mut rx_buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        counters.rx_frames += 1;
                        let frame = &rx_buf[..n];
                        let mut rx = |frame: &[u8]| {
                            ingress(
                                &inner,
                                me,
                                frame,
                                now,
                                &mut st.stack,
                                &mut tx,
                                &mut counters,
                            )
                        };
                        match faults.as_mut() {
                            None => rx(frame),
                            Some(f) => f.rx.apply(frame, rx),
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
            if let Some(f) = faults.as_mut() {
                f.rx.flush(|frame| {
                    ingress(
                        &inner,
                        me,
                        frame,
                        now,
                        &mut st.stack,
                        &mut tx,
                        &mut counters,
                    )
                });
                counters.impair_rx = f.rx.counters;
            }
            st.stack.poll(now, &mut tx);
            counters.tx_no_buffer += tx.no_buffer;
            news |= st.stack.take_wakeup();
        }
        write_frames(
            &queue,
            &mut pool,
            &mut frames,
            &mut counters,
            faults.as_mut(),
        );
        if news {
            inner.publish_news();
        }
        *lock(&shared.counters) = counters.clone();
    }
    inner.publish_news();
}

/// One received frame (after any impairment): to this worker's stack, or to its owner.
fn ingress(
    inner: &Inner,
    me: usize,
    frame: &[u8],
    now: protocols::time::Instant,
    stack: &mut protocols::iface::Stack,
    tx: &mut TxBatch<'_>,
    counters: &mut WorkerCounters,
) {
    let workers = inner.workers.len();
    match classify(frame, me, workers) {
        Steer::Here => stack.receive(now, frame, tx),
        Steer::Owner(o) => hand_off(inner, o, frame, counters),
        Steer::All => {
            for o in (0..workers).filter(|&o| o != me) {
                hand_off(inner, o, frame, counters);
            }
            stack.receive(now, frame, tx);
        }
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
    faults: Option<&mut Faults>,
) {
    let write = |frame: &[u8], counters: &mut WorkerCounters| match queue.write(frame) {
        Ok(_) => counters.tx_frames += 1,
        Err(_) => counters.tx_errors += 1,
    };
    match faults {
        None => {
            for (id, len) in frames.drain(..) {
                write(&pool.get(id)[..len], counters);
                pool.free(id);
            }
        }
        Some(f) => {
            for (id, len) in frames.drain(..) {
                f.tx.apply(&pool.get(id)[..len], |frame| write(frame, counters));
                pool.free(id);
            }
            f.tx.flush(|frame| write(frame, counters));
            counters.impair_tx = f.tx.counters;
        }
    }
}
