//! The device under a worker, as layers stacked around its tap queue (in the manner of
//! smoltcp's `phy` middlewares): the queue itself, the virtio-net header (offload metadata in
//! front of each frame), and `--impair`'s seeded faults. The worker's loop sees only frames:
//! [`Device::receive`] hands it each frame read with whether the kernel vouched for its
//! checksums, [`Device::transmit`] writes a batch the stack built, tracing each frame.

use std::io;

use crate::fault::{FaultInjector, ImpairSpec};
use crate::sys::tap::TapQueue;
use crate::trace::{unix_micros, Direction};
use crate::vnet;

use super::tracing::Tracing;
use super::tx::{TxFrame, TxPools};
use super::WorkerCounters;

/// Frames read per wake-up before the stack is polled and replies are written.
pub const RX_BATCH: usize = 64;
/// Receive buffer with offloads on: a `virtio_net_hdr` and a GRO'd frame of up to 64 KiB of IP.
const RX_GSO_BUF: usize = vnet::LEN + 14 + 65536;

/// A worker's fault injectors (`--impair`): one for the frames it reads, one for those it
/// writes, each with its own generator. (With corruption on, the node runs without offloads, so
/// every checksum is real and verified.)
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

/// One worker's device: its tap queue, the virtio-net header length (0 without offloads), the
/// receive buffer, and the fault injectors when `--impair` is on.
pub(crate) struct Device {
    queue: TapQueue,
    /// This worker's index, for the trace.
    me: u16,
    hdr: usize,
    rx_buf: Vec<u8>,
    faults: Option<Faults>,
    /// What the receive side counted: frames read, GRO'd frames among them, read errors.
    rx_frames: u64,
    rx_gso_frames: u64,
    rx_errors: u64,
}

impl Device {
    /// `offload`: the tap carries a virtio-net header; `mtu_buf` the receive buffer without it.
    pub fn new(
        queue: TapQueue,
        me: usize,
        offload: bool,
        mtu_buf: usize,
        faults: Option<Faults>,
    ) -> Self {
        let (hdr, rx) = if offload {
            (vnet::LEN, RX_GSO_BUF)
        } else {
            (0, mtu_buf)
        };
        Device {
            queue,
            me: me as u16,
            hdr,
            rx_buf: vec![0u8; rx],
            faults,
            rx_frames: 0,
            rx_gso_frames: 0,
            rx_errors: 0,
        }
    }

    /// Takes the tap's steering program away (see `Node::kernel_steering`); best effort.
    pub fn clear_steering(&self) {
        let _ = self.queue.set_steering_program(None);
    }

    /// Bytes of virtio-net header in front of each frame (0 without offloads).
    pub fn hdr(&self) -> usize {
        self.hdr
    }

    /// Reads up to [`RX_BATCH`] frames; each frame that comes through the layers goes to
    /// `frame(trusted, bytes)`. True when the batch filled (more are likely waiting).
    pub fn receive(&mut self, mut frame: impl FnMut(bool, &[u8])) -> bool {
        let hdr = self.hdr;
        let mut full = true;
        for _ in 0..RX_BATCH {
            let n = match self.queue.read(&mut self.rx_buf) {
                Ok(0) => {
                    full = false;
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    full = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.rx_errors += 1;
                    full = false;
                    break;
                }
            };
            self.rx_frames += 1;
            let raw = &self.rx_buf[..n];
            // The virtio-net header layer.
            let (trusted, bytes) = if hdr == 0 {
                (false, raw)
            } else {
                match (vnet::parse(raw), raw.get(hdr..)) {
                    (Some(info), Some(bytes)) => {
                        if info.gso {
                            self.rx_gso_frames += 1;
                        }
                        (info.checksum_trusted, bytes)
                    }
                    _ => {
                        self.rx_errors += 1;
                        continue;
                    }
                }
            };
            // The impairment layer.
            match self.faults.as_mut() {
                None => frame(trusted, bytes),
                Some(f) => f.rx.apply(bytes, |b| frame(trusted, b)),
            }
        }
        if let Some(f) = self.faults.as_mut() {
            // Nothing stays held while the worker sleeps.
            f.rx.flush(|b| frame(false, b));
        }
        full
    }

    /// Copies what the receive side counted into the worker's counters.
    pub fn report(&self, counters: &mut WorkerCounters) {
        counters.rx_frames = self.rx_frames;
        counters.rx_gso_frames = self.rx_gso_frames;
        counters.rx_errors = self.rx_errors;
        if let Some(f) = &self.faults {
            counters.impair_rx = f.rx.counters;
        }
    }

    /// Writes the batch (through `--impair` if asked), tracing each frame; events recorded
    /// since the batch began go with its first frame.
    pub fn transmit(
        &mut self,
        pool: &mut TxPools,
        frames: &mut Vec<TxFrame>,
        counters: &mut WorkerCounters,
        tracing: &mut Tracing,
    ) {
        let (queue, me, hdr) = (&self.queue, self.me, self.hdr);
        let trace = tracing.on();
        let trace_out = |frame: &[u8], tracing: &mut Tracing| {
            if trace {
                let ts = unix_micros();
                for t in &tracing.tracers {
                    t.frame_with_events(ts, me, Direction::Out, frame, None, &tracing.events);
                }
                tracing.events.clear();
            }
        };
        match self.faults.as_mut() {
            None => {
                for f in frames.drain(..) {
                    if trace && hdr > 0 {
                        // Traced as it will be on the wire: the checksum the kernel would
                        // finish is finished here (only while tracing).
                        vnet::finish_checksum(pool.get_mut(&f));
                    }
                    let buf = pool.get(&f);
                    match queue.write(buf) {
                        Ok(_) => {
                            counters.tx_frames += 1;
                            counters.tx_gso_frames += u64::from(f.gso);
                        }
                        Err(_) => counters.tx_errors += 1,
                    }
                    trace_out(buf.get(hdr..).unwrap_or_default(), tracing);
                    pool.free(&f);
                }
            }
            Some(f) => {
                // Impaired frames go out with a plain header: never claim a checksum we may have
                // broken.
                let plain = [0u8; vnet::LEN];
                let write = |frame: &[u8], counters: &mut WorkerCounters| {
                    let r = if hdr == 0 {
                        queue.write(frame)
                    } else {
                        queue.write_vectored(&[
                            io::IoSlice::new(&plain[..hdr]),
                            io::IoSlice::new(frame),
                        ])
                    };
                    match r {
                        Ok(_) => counters.tx_frames += 1,
                        Err(_) => counters.tx_errors += 1,
                    }
                };
                for fr in frames.drain(..) {
                    let frame = pool.get(&fr).get(hdr..).unwrap_or_default();
                    trace_out(frame, tracing);
                    f.tx.apply(frame, |fr| write(fr, counters));
                    pool.free(&fr);
                }
                f.tx.flush(|fr| write(fr, counters));
                counters.impair_tx = f.tx.counters;
            }
        }
    }
}
