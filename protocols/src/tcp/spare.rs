//! Buffers that connections gave up, kept for the next connections: on the connection path
//! (SYN, accept, request, answer, FIN, TIME-WAIT) a stack in steady state allocates nothing
//! for buffers, while an idle connection still holds none. Bounded: past [`MAX_SPARE_BYTES`]
//! of each kind a buffer is freed instead.

use std::collections::VecDeque;

use super::rack::Sent;

/// Heap bytes kept per kind of buffer at most (per stack, so per worker).
pub const MAX_SPARE_BYTES: usize = 1 << 20;

#[derive(Debug, Default)]
pub struct SpareBuffers {
    rings: Vec<Vec<u8>>,
    sends: Vec<VecDeque<u8>>,
    racks: Vec<VecDeque<Sent>>,
    ring_bytes: usize,
    send_bytes: usize,
    rack_bytes: usize,
}

impl SpareBuffers {
    pub(super) fn put_ring(&mut self, ring: Vec<u8>) {
        let n = ring.capacity();
        if n > 0 && self.ring_bytes + n <= MAX_SPARE_BYTES {
            self.ring_bytes += n;
            self.rings.push(ring);
        }
    }

    pub(super) fn take_ring(&mut self) -> Option<Vec<u8>> {
        let r = self.rings.pop()?;
        self.ring_bytes -= r.capacity();
        Some(r)
    }

    pub(super) fn put_send(&mut self, mut send: VecDeque<u8>) {
        let n = send.capacity();
        send.clear();
        if n > 0 && self.send_bytes + n <= MAX_SPARE_BYTES {
            self.send_bytes += n;
            self.sends.push(send);
        }
    }

    pub(super) fn take_send(&mut self) -> Option<VecDeque<u8>> {
        let s = self.sends.pop()?;
        self.send_bytes -= s.capacity();
        Some(s)
    }

    pub(super) fn put_rack(&mut self, mut segs: VecDeque<Sent>) {
        let n = segs.capacity() * core::mem::size_of::<Sent>();
        segs.clear();
        if n > 0 && self.rack_bytes + n <= MAX_SPARE_BYTES {
            self.rack_bytes += n;
            self.racks.push(segs);
        }
    }

    pub(super) fn take_rack(&mut self) -> Option<VecDeque<Sent>> {
        let s = self.racks.pop()?;
        self.rack_bytes -= s.capacity() * core::mem::size_of::<Sent>();
        Some(s)
    }

    /// Heap bytes kept.
    pub fn bytes(&self) -> usize {
        self.ring_bytes + self.send_bytes + self.rack_bytes
    }
}
