//! The receive buffer: one ring allocated once at its configured size, holding in-order data the
//! application has not read yet and, past it, out-of-order data written at its offset, with a
//! small sorted list of the ranges held (at most [`MAX_HELD_RANGES`]).
//!
//! Positions are absolute stream offsets (bytes since the first data byte); ring index is the
//! position modulo the capacity. The buffer knows nothing of sequence numbers: the connection
//! passes offsets relative to RCV.NXT, which is the end of the in-order data.

use crate::wire::bytes::{copy, get, get_mut};

/// Out-of-order ranges kept at most; a segment that would need one more is dropped.
pub const MAX_HELD_RANGES: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    start: u64,
    end: u64,
    /// Insertion counter of the last segment that touched this range (for SACK ordering).
    stamp: u64,
}

#[derive(Debug)]
pub struct RecvBuffer {
    ring: Vec<u8>,
    /// Stream position of the first unread byte.
    read_pos: u64,
    /// In-order bytes ready for the application.
    ready: usize,
    /// Out-of-order ranges, sorted, disjoint and not touching, all past the in-order data.
    held: Vec<Held>,
    stamp: u64,
}

impl RecvBuffer {
    pub fn new(capacity: usize) -> Self {
        RecvBuffer {
            ring: vec![0; capacity],
            read_pos: 0,
            ready: 0,
            held: Vec::with_capacity(MAX_HELD_RANGES),
            stamp: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.ring.len()
    }

    /// In-order bytes ready to read.
    pub fn ready(&self) -> usize {
        self.ready
    }

    /// Room from RCV.NXT to the end of the buffer: the receive window.
    pub fn window(&self) -> usize {
        self.capacity() - self.ready
    }

    /// Whether out-of-order data is held.
    pub fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    fn ready_end(&self) -> u64 {
        self.read_pos + self.ready as u64
    }

    /// Stores `data`, which starts `offset` bytes past RCV.NXT. Bytes past the buffer's end are
    /// cut off. Returns how far RCV.NXT advances (0 for out-of-order data).
    pub fn insert(&mut self, offset: usize, data: &[u8]) -> usize {
        let cap = self.capacity();
        if offset >= self.window() || data.is_empty() {
            return 0;
        }
        let data = data.get(..self.window() - offset).unwrap_or(data);
        let start = self.ready_end() + offset as u64;
        let end = start + data.len() as u64;
        if offset > 0
            && self.held.len() >= MAX_HELD_RANGES
            && !self.held.iter().any(|h| h.start <= end && start <= h.end)
        {
            return 0;
        }
        // Copy into the ring, in up to two pieces.
        let idx = (start % cap as u64) as usize;
        let first = data.len().min(cap - idx);
        let (head, tail) = data.split_at_checked(first).unwrap_or((data, &[]));
        copy(get_mut(&mut self.ring, idx..idx + first), head);
        copy(get_mut(&mut self.ring, ..tail.len()), tail);

        self.stamp += 1;
        if offset == 0 {
            let before = self.ready_end();
            let mut new_end = end;
            // Absorb every held range the new in-order data reaches.
            while let Some(h) = self.held.first() {
                if h.start > new_end {
                    break;
                }
                new_end = new_end.max(h.end);
                self.held.remove(0);
            }
            self.ready += (new_end - before) as usize;
            return (new_end - before) as usize;
        }
        self.add_held(start, end);
        0
    }

    fn add_held(&mut self, start: u64, end: u64) {
        let mut merged = Held {
            start,
            end,
            stamp: self.stamp,
        };
        // Ranges that overlap or touch [start, end) are merged into it.
        let first = self
            .held
            .iter()
            .position(|h| h.end >= start)
            .unwrap_or(self.held.len());
        let mut last = first;
        while let Some(h) = self.held.get(last).filter(|h| h.start <= end) {
            merged.start = merged.start.min(h.start);
            merged.end = merged.end.max(h.end);
            last += 1;
        }
        self.held.drain(first..last);
        self.held.insert(first, merged);
    }

    /// Held ranges as (start, end) offsets past RCV.NXT, the most recently extended first
    /// (RFC 2018 §4: the first SACK block reports the most recent segment).
    pub fn held_recent_first(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let mut order: [(u64, usize); MAX_HELD_RANGES] = [(0, 0); MAX_HELD_RANGES];
        let n = self.held.len().min(MAX_HELD_RANGES);
        for (slot, (i, h)) in order.iter_mut().zip(self.held.iter().enumerate()) {
            *slot = (h.stamp, i);
        }
        if let Some(used) = order.get_mut(..n) {
            used.sort_unstable_by_key(|&(stamp, _)| core::cmp::Reverse(stamp));
        }
        let base = self.ready_end();
        order.into_iter().take(n).filter_map(move |(_, i)| {
            let h = self.held.get(i)?;
            Some(((h.start - base) as usize, (h.end - base) as usize))
        })
    }

    /// Copies in-order data into `out`; returns how much.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let cap = self.capacity();
        let n = out.len().min(self.ready);
        if n == 0 {
            return 0;
        }
        let idx = (self.read_pos % cap as u64) as usize;
        let first = n.min(cap - idx);
        copy(get_mut(out, ..first), get(&self.ring, idx..idx + first));
        copy(get_mut(out, first..n), get(&self.ring, ..n - first));
        self.read_pos += n as u64;
        self.ready -= n;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(b: &mut RecvBuffer) -> Vec<u8> {
        let mut out = vec![0; b.ready()];
        let n = b.read(&mut out);
        out.truncate(n);
        out
    }

    #[test]
    fn in_order_and_wrap() {
        let mut b = RecvBuffer::new(8);
        assert_eq!(b.insert(0, b"abcdef"), 6);
        assert_eq!(b.window(), 2);
        assert_eq!(read_all(&mut b), b"abcdef");
        assert_eq!(b.insert(0, b"ghijklmnop"), 8);
        assert_eq!(read_all(&mut b), b"ghijklmn");
    }

    #[test]
    fn out_of_order_reassembly() {
        let mut b = RecvBuffer::new(16);
        assert_eq!(b.insert(4, b"efgh"), 0);
        assert_eq!(b.insert(10, b"kl"), 0);
        assert_eq!(
            b.held_recent_first().collect::<Vec<_>>(),
            vec![(10, 12), (4, 8)]
        );
        assert_eq!(b.insert(8, b"ij"), 0);
        assert_eq!(b.held_recent_first().collect::<Vec<_>>(), vec![(4, 12)]);
        assert_eq!(b.insert(0, b"abcd"), 12);
        assert!(!b.has_held());
        assert_eq!(read_all(&mut b), b"abcdefghijkl");
    }

    #[test]
    fn range_count_is_bounded() {
        let mut b = RecvBuffer::new(1024);
        for i in 0..MAX_HELD_RANGES {
            b.insert(2 + 2 * i, b"x");
        }
        assert_eq!(b.held_recent_first().count(), MAX_HELD_RANGES);
        // A new disjoint range is refused, one touching a held range is merged.
        b.insert(500, b"y");
        assert_eq!(b.held_recent_first().count(), MAX_HELD_RANGES);
        b.insert(3, b"z");
        assert_eq!(b.held_recent_first().count(), MAX_HELD_RANGES - 1);
    }

    #[test]
    fn data_past_the_window_is_cut() {
        let mut b = RecvBuffer::new(4);
        assert_eq!(b.insert(2, b"cdef"), 0);
        assert_eq!(b.held_recent_first().collect::<Vec<_>>(), vec![(2, 4)]);
        assert_eq!(b.insert(4, b"zz"), 0);
        assert_eq!(b.insert(0, b"ab"), 4);
        assert_eq!(read_all(&mut b), b"abcd");
    }
}
