//! The send buffer: bytes the application wrote that the peer has not acknowledged yet, both
//! in flight and unsent, in one ring allocated once at its configured size.
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
            data: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Bytes held (unacknowledged plus unsent).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Free room.
    pub fn free(&self) -> usize {
        self.capacity - self.data.len()
    }

    /// Appends as much of `bytes` as fits; returns how much.
    pub fn write(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.free());
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

    /// Drops the first `n` bytes (they were acknowledged).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.data.len());
        self.data.drain(..n);
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
}
