//! The send buffer: bytes the application wrote that the peer has not acknowledged yet, both
//! in flight and unsent, in one ring that grows as the application writes (up to its configured
//! size) and is given up (to the stack's spare buffers, at its next sweep) once the peer has
//! acknowledged everything: an idle connection holds no send memory.
//!
//! Byte 0 of the buffer is the oldest unacknowledged byte; the connection maps sequence numbers
//! onto offsets. The buffer knows nothing of sequence numbers, windows or segments.

use crate::wire::bytes::{copy, get, get_mut};
use std::collections::VecDeque;

#[derive(Debug)]
pub struct SendBuffer {
    data: VecDeque<u8>,
    capacity: usize,
}

impl SendBuffer {
    pub fn new(capacity: usize) -> Self {
        SendBuffer {
            data: VecDeque::new(),
            capacity,
        }
    }

    /// Bytes held (unacknowledged plus unsent).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Heap bytes held now; 0 when everything was acknowledged.
    pub fn footprint(&self) -> usize {
        self.data.capacity()
    }

    /// Free room.
    pub fn free(&self) -> usize {
        self.capacity - self.data.len()
    }

    /// Appends as much of `bytes` as fits; returns how much.
    pub fn write(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.free());
        // Grow by doubling, never past the configured size.
        let want = (self.data.len() + n)
            .max(self.data.capacity().saturating_mul(2))
            .min(self.capacity);
        if want > self.data.capacity() {
            self.data.reserve_exact(want - self.data.len());
        }
        self.data.extend(bytes.get(..n).unwrap_or_default());
        n
    }

    /// Copies bytes starting at `offset` into `out`; returns how many were copied.
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> usize {
        if offset >= self.data.len() {
            return 0;
        }
        let n = out.len().min(self.data.len() - offset);
        let (a, b) = self.data.as_slices();
        let mut copied = 0;
        if offset < a.len() {
            let m = n.min(a.len() - offset);
            copy(get_mut(out, ..m), get(a, offset..offset + m));
            copied = m;
        }
        if copied < n {
            let start = offset + copied - a.len();
            copy(get_mut(out, copied..n), get(b, start..start + n - copied));
        }
        n
    }

    /// Drops the first `n` bytes (they were acknowledged); the ring goes once it is empty.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.data.len());
        self.data.drain(..n);
    }

    /// Gives the ring to `spares` once everything was acknowledged.
    pub fn release_into(&mut self, spares: &mut super::SpareBuffers) {
        if self.data.is_empty() && self.data.capacity() > 0 {
            spares.put_send(std::mem::take(&mut self.data));
        }
    }

    /// Takes a ring from `spares` while holding none (one larger than this buffer's size is
    /// not taken).
    pub fn adopt(&mut self, spares: &mut super::SpareBuffers) {
        if self.data.capacity() == 0 {
            if let Some(d) = spares.take_send() {
                if d.capacity() <= self.capacity {
                    self.data = d;
                } else {
                    spares.put_send(d);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_bounded_read_at_across_wrap() {
        let mut b = SendBuffer::new(8);
        assert_eq!(b.write(b"abcdef"), 6);
        b.consume(4);
        assert_eq!(b.write(b"ghijklmn"), 6);
        assert_eq!(b.free(), 0);
        let mut out = [0u8; 8];
        assert_eq!(b.read_at(0, &mut out), 8);
        assert_eq!(&out, b"efghijkl");
        assert_eq!(b.read_at(5, &mut out[..2]), 2);
        assert_eq!(&out[..2], b"jk");
        assert_eq!(b.read_at(8, &mut out), 0);
    }

    #[test]
    fn acknowledged_buffer_is_given_up_and_taken_again() {
        let mut b = SendBuffer::new(256 * 1024);
        let mut spares = crate::tcp::SpareBuffers::default();
        assert_eq!(b.footprint(), 0);
        assert_eq!(b.free(), 256 * 1024);
        for round in 0..3u8 {
            // From the second round on, the ring comes back from the spares.
            b.adopt(&mut spares);
            assert_eq!(spares.bytes(), 0);
            let msg: Vec<u8> = (0..1000u32)
                .map(|i| (i as u8).wrapping_add(round))
                .collect();
            assert_eq!(b.write(&msg), 1000);
            assert!(b.footprint() >= 1000 && b.footprint() < 256 * 1024);
            let mut out = vec![0u8; 1000];
            assert_eq!(b.read_at(0, &mut out), 1000);
            assert_eq!(out, msg);
            b.consume(600);
            // Not all acknowledged: nothing to give up.
            b.release_into(&mut spares);
            assert!(b.footprint() > 0);
            assert_eq!(b.read_at(0, &mut out[..400]), 400);
            assert_eq!(&out[..400], &msg[600..]);
            b.consume(400);
            assert_eq!(b.free(), 256 * 1024);
            let held = b.footprint();
            b.release_into(&mut spares);
            assert_eq!(b.footprint(), 0);
            assert_eq!(spares.bytes(), held);
        }
    }
}
