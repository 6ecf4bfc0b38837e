//! A worker's transmit side: the pool buffers the stack builds frames in, and the batch of
//! frames waiting to be written after the stack lock is let go.

use protocols::iface::{Sink, TxOffload};

use crate::pool::{BufId, BufferPool};
use crate::vnet;

/// A worker's transmit buffers: MTU-sized ones, and big ones for TSO segments when the tap
/// takes them.
pub(crate) struct TxPools {
    pub small: BufferPool,
    pub big: Option<BufferPool>,
}

/// One frame waiting to be written: its buffer (in the big pool or not) and length.
#[derive(Clone, Copy)]
pub(super) struct TxFrame {
    pub(super) id: BufId,
    pub(super) len: usize,
    pub(super) big: bool,
    pub(super) gso: bool,
}

impl TxPools {
    pub(super) fn get(&self, f: &TxFrame) -> &[u8] {
        match (&self.big, f.big) {
            (Some(big), true) => &big.get(f.id)[..f.len],
            _ => &self.small.get(f.id)[..f.len],
        }
    }

    pub(super) fn get_mut(&mut self, f: &TxFrame) -> &mut [u8] {
        match (&mut self.big, f.big) {
            (Some(big), true) => &mut big.get_mut(f.id)[..f.len],
            _ => &mut self.small.get_mut(f.id)[..f.len],
        }
    }

    pub(super) fn free(&mut self, f: &TxFrame) {
        match (&mut self.big, f.big) {
            (Some(big), true) => big.free(f.id),
            _ => self.small.free(f.id),
        }
    }
}

/// Collects the frames a stack sends into pool buffers, written after the stack lock is let go.
pub(super) struct TxBatch<'a> {
    pub(super) pool: &'a mut TxPools,
    pub(super) frames: &'a mut Vec<TxFrame>,
    pub(super) no_buffer: u64,
    /// Bytes of `virtio_net_hdr` in front of each frame (0 without offloads).
    pub(super) hdr: usize,
}

impl Sink for TxBatch<'_> {
    /// The pool is what bounds a batch: with every buffer holding a frame to write, TCP waits
    /// for the next round (the worker writes this batch, frees the buffers and polls again at
    /// once) rather than losing segments to `tx_no_buffer`.
    fn has_room(&self) -> bool {
        self.pool.small.available() > 0
    }

    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, max_len: usize, fill: F) {
        self.transmit_offload(max_len, |buf| (fill(buf), TxOffload::default()));
    }

    fn transmit_offload<F: FnOnce(&mut [u8]) -> (usize, TxOffload)>(
        &mut self,
        max_len: usize,
        fill: F,
    ) {
        let hdr = self.hdr;
        // A big buffer only for what may not fit a small one; without one left, the stack gets
        // MTU room and builds an ordinary segment.
        let small_room = self.pool.small.buf_size() - hdr;
        let big = match &mut self.pool.big {
            Some(big) if max_len > small_room => big.alloc(),
            _ => None,
        };
        let (id, is_big) = match big {
            Some(id) => (id, true),
            None => match self.pool.small.alloc() {
                Some(id) => (id, false),
                None => {
                    self.no_buffer += 1;
                    return;
                }
            },
        };
        let pool = if is_big {
            self.pool
                .big
                .as_mut()
                .expect("big buffer from the big pool")
        } else {
            &mut self.pool.small
        };
        let buf = pool.get_mut(id);
        let room = max_len.min(buf.len() - hdr);
        let (n, off) = fill(&mut buf[hdr..hdr + room]);
        if n == 0 {
            pool.free(id);
        } else {
            if hdr > 0 {
                vnet::write_offload(buf, &off);
            }
            self.frames.push(TxFrame {
                id,
                len: hdr + n,
                big: is_big,
                gso: off.gso_size > 0,
            });
        }
    }
}
