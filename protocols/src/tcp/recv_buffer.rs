//! The receive buffer: a ring holding in-order data the application has not read yet and, past
//! it, out-of-order data written at its offset, with a small sorted list of the ranges held (at
//! most [`MAX_HELD_RANGES`]).
//!
//! Memory follows the data, not the configured size: the ring is allocated when data first
//! arrives, grows (doubling, re-laid out) up to the capacity as more is held, and is freed by
//! [`RecvBuffer::release_if_empty`] (the stack's once-a-second sweep) when the application has
//! read everything with nothing held out of order; the range list is allocated only while a
//! hole is open. An idle connection holds no buffer memory. The window
//! is always computed from the configured capacity, so none of this is visible on the wire.
//!
//! Positions are absolute stream offsets (bytes since the first data byte); ring index is the
//! position modulo the ring's current length. The buffer knows nothing of sequence numbers:
//! the connection passes offsets relative to RCV.NXT, which is the end of the in-order data.

use crate::wire::bytes::{copy, get, get_mut};

/// Out-of-order ranges kept at most; a segment that would need one more is dropped.
pub const MAX_HELD_RANGES: usize = 32;

/// The smallest ring allocated: one page, enough for a request or a short response.
const MIN_RING: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    start: u64,
    end: u64,
    /// Insertion counter of the last segment that touched this range (for SACK ordering).
    stamp: u64,
}

#[derive(Debug)]
pub struct RecvBuffer {
    /// Empty while nothing is held; otherwise at most `capacity` bytes.
    ring: Vec<u8>,
    capacity: usize,
    /// Stream position of the first unread byte.
    read_pos: u64,
    /// In-order bytes ready for the application.
    ready: usize,
    /// Out-of-order ranges, sorted, disjoint and not touching, all past the in-order data.
    held: Vec<Held>,
    stamp: u64,
}

/// Copies `data` into `ring` at stream position `pos`, wrapping.
fn ring_write(ring: &mut [u8], pos: u64, data: &[u8]) {
    let len = ring.len();
    if len == 0 {
        return;
    }
    let idx = (pos % len as u64) as usize;
    let first = data.len().min(len - idx);
    let (head, tail) = data.split_at_checked(first).unwrap_or((data, &[]));
    copy(get_mut(ring, idx..idx + first), head);
    copy(get_mut(ring, ..tail.len()), tail);
}

/// The (up to two) slices of `ring` holding stream positions `[pos, pos + n)`.
fn ring_slices(ring: &[u8], pos: u64, n: usize) -> (&[u8], &[u8]) {
    let len = ring.len();
    if len == 0 {
        return (&[], &[]);
    }
    let idx = (pos % len as u64) as usize;
    let n = n.min(len);
    let first = n.min(len - idx);
    (get(ring, idx..idx + first), get(ring, ..n - first))
}

impl RecvBuffer {
    pub fn new(capacity: usize) -> Self {
        RecvBuffer {
            ring: Vec::new(),
            capacity,
            read_pos: 0,
            ready: 0,
            held: Vec::new(),
            stamp: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Heap bytes held now (ring and range list); 0 when idle.
    pub fn footprint(&self) -> usize {
        self.ring.capacity() + self.held.capacity() * core::mem::size_of::<Held>()
    }

    /// In-order bytes ready to read.
    pub fn ready(&self) -> usize {
        self.ready
    }

    /// Room from RCV.NXT to the end of the buffer: the receive window.
    pub fn window(&self) -> usize {
        self.capacity - self.ready
    }

    /// Whether out-of-order data is held.
    pub fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    fn ready_end(&self) -> u64 {
        self.read_pos + self.ready as u64
    }

    /// End of the last byte held, in order or not.
    fn live_end(&self) -> u64 {
        self.held.last().map_or(self.ready_end(), |h| h.end)
    }

    /// Makes the ring hold positions up to `end` (at most `read_pos + capacity`): allocates it,
    /// or grows it and moves the bytes held to their places in the longer ring.
    fn reserve_to(&mut self, end: u64) {
        let need = (end.saturating_sub(self.read_pos) as usize).min(self.capacity);
        if need <= self.ring.len() {
            return;
        }
        let mut len = self.ring.len().max(MIN_RING);
        while len < need {
            len = len.saturating_mul(2);
        }
        let mut ring = vec![0; len.min(self.capacity)];
        let live = (self.live_end() - self.read_pos) as usize;
        let (a, b) = ring_slices(&self.ring, self.read_pos, live);
        ring_write(&mut ring, self.read_pos, a);
        ring_write(&mut ring, self.read_pos + a.len() as u64, b);
        self.ring = ring;
    }

    /// Gives an empty buffer's ring to `spares` (the stack's sweep, and a connection's end).
    pub fn release_into(&mut self, spares: &mut super::SpareBuffers) {
        if self.ready == 0 && self.held.is_empty() && !self.ring.is_empty() {
            self.held = Vec::new();
            spares.put_ring(std::mem::take(&mut self.ring));
        }
    }

    /// Takes a ring from `spares` while holding none; one of the wrong size for this buffer
    /// goes back.
    pub fn adopt(&mut self, spares: &mut super::SpareBuffers) {
        if self.ring.is_empty() {
            if let Some(r) = spares.take_ring() {
                if r.len() >= MIN_RING.min(self.capacity) && r.len() <= self.capacity {
                    self.ring = r;
                } else {
                    spares.put_ring(r);
                }
            }
        }
    }

    /// Frees what an empty buffer holds.
    #[cfg(test)]
    pub fn release_if_empty(&mut self) {
        if self.ready == 0 && self.held.is_empty() {
            self.ring = Vec::new();
            self.held = Vec::new();
        }
    }

    /// Stores `data`, which starts `offset` bytes past RCV.NXT. Bytes past the buffer's end are
    /// cut off. Returns how far RCV.NXT advances (0 for out-of-order data).
    pub fn insert(&mut self, offset: usize, data: &[u8]) -> usize {
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
        self.reserve_to(end);
        ring_write(&mut self.ring, start, data);

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
            if self.held.is_empty() {
                self.held = Vec::new();
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
        if self.held.capacity() == 0 {
            // One hole usually stays small; the list grows if more open.
            self.held.reserve_exact(4);
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
        let n = out.len().min(self.ready);
        if n == 0 {
            return 0;
        }
        let (a, b) = ring_slices(&self.ring, self.read_pos, n);
        copy(get_mut(out, ..a.len()), a);
        copy(get_mut(out, a.len()..n), b);
        self.read_pos += n as u64;
        self.ready -= n;
        n
    }

    /// Drops up to `max` bytes of in-order data unread, as if read; returns how many.
    pub fn discard(&mut self, max: usize) -> usize {
        let n = max.min(self.ready);
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
    fn discarded_data_frees_the_window_and_later_reads_resume_after_it() {
        let mut b = RecvBuffer::new(8);
        assert_eq!(b.insert(0, b"abcdef"), 6);
        assert_eq!(b.discard(4), 4);
        assert_eq!(b.window(), 6);
        assert_eq!(b.insert(0, b"ghijkl"), 6);
        assert_eq!(b.discard(1), 1);
        assert_eq!(read_all(&mut b), b"fghijkl");
        assert_eq!(b.discard(100), 0);
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

    #[test]
    fn idle_buffer_holds_no_memory() {
        let mut b = RecvBuffer::new(256 * 1024);
        assert_eq!(b.footprint(), 0);
        assert_eq!(b.window(), 256 * 1024);
        assert_eq!(b.insert(0, b"hello"), 5);
        // A small message takes a small ring, not the configured capacity.
        assert_eq!(b.footprint(), MIN_RING);
        assert_eq!(b.window(), 256 * 1024 - 5);
        let mut out = [0u8; 3];
        assert_eq!(b.read(&mut out), 3);
        assert!(b.footprint() > 0, "two bytes are still unread");
        assert_eq!(read_all(&mut b), b"lo");
        // Drained: kept for the next data until the stack's sweep frees it.
        assert_eq!(b.footprint(), MIN_RING);
        b.release_if_empty();
        assert_eq!(b.footprint(), 0);
        assert_eq!(b.window(), 256 * 1024);
        // A hole keeps the ring (and the range list) until it is filled and read.
        assert_eq!(b.insert(3, b"def"), 0);
        assert!(b.footprint() > MIN_RING);
        assert_eq!(b.insert(0, b"abc"), 6);
        assert!(!b.has_held());
        b.release_if_empty();
        assert!(b.footprint() > 0, "unread data is never freed");
        assert_eq!(read_all(&mut b), b"abcdef");
        b.release_if_empty();
        assert_eq!(b.footprint(), 0);
    }

    #[test]
    fn data_survives_growth_and_free_cycles() {
        // A deterministic stream sent in uneven pieces, some out of order, read in uneven
        // pieces: the ring is freed and grown many times, at every wrap position.
        let cap = 40_000;
        let stream: Vec<u8> = (0..600_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut b = RecvBuffer::new(cap);
        let (mut sent, mut got) = (0usize, Vec::new());
        let mut x = 12345u32;
        let mut frees = 0;
        while got.len() < stream.len() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let len = 1 + (x >> 8) as usize % 9000;
            let hole = 1 + (x >> 4) as usize % 700;
            let room = b.window();
            if sent < stream.len() && room > hole {
                let piece = &stream[sent..stream.len().min(sent + len)];
                // Out of order first (past a hole), then the hole.
                if x & 3 == 0 && piece.len() > hole {
                    b.insert(hole, &piece[hole..]);
                    assert!(b.has_held() || hole >= room);
                    b.insert(0, &piece[..hole]);
                } else {
                    b.insert(0, piece);
                }
                sent += piece.len().min(room);
                assert_eq!(b.window(), cap - b.ready());
                assert!(b.footprint() <= cap + MAX_HELD_RANGES * 24);
            }
            let mut out = vec![0u8; 1 + (x >> 12) as usize % 30_000];
            let n = b.read(&mut out);
            got.extend_from_slice(&out[..n]);
            // The stack's sweep, at arbitrary moments.
            if x & 0x300 == 0 {
                b.release_if_empty();
                if b.footprint() == 0 {
                    frees += 1;
                }
            }
        }
        assert_eq!(got, stream);
        assert!(frees > 10, "the ring was freed {frees} times");
    }
}
