//! A fixed pool of packet buffers carved out of one anonymous memory mapping.
//!
//! One worker owns one pool (`Send`, used through `&mut self`, never shared). Every buffer has the same size and a
//! stable address for the pool's life; a frame is read from the tap straight into a buffer and written back from
//! one, so packets are never copied or heap-allocated inside the process. The free list is a stack preallocated at
//! creation: `alloc` and `free` never touch the heap.
//!
//! A bitmap of buffers in use guards the free list: freeing a buffer that is not allocated (a double free, or an id
//! from another pool) is refused, so the free list can never hold a buffer twice. Debug builds also assert on it,
//! because it is always a bug in the caller.

use std::fmt;
use std::io;

use memmap2::{MmapMut, MmapOptions};
use thiserror::Error;

/// Handle of one buffer of a [`BufferPool`]. Only the pool mints them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufId(u32);

impl BufId {
    /// Position of the buffer in its pool, `0..capacity()`.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Debug for BufId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "buf#{}", self.0)
    }
}

/// Why [`BufferPool::try_free`] refused a buffer.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FreeError {
    #[error("{0:?} is not allocated (double free)")]
    NotAllocated(BufId),
    #[error("{0:?} does not belong to this pool")]
    Foreign(BufId),
}

/// A single-owner pool of `capacity()` buffers of `buf_size()` bytes each.
pub struct BufferPool {
    map: MmapMut,
    buf_size: usize,
    count: usize,
    /// Stack of free buffer indices; its capacity is `count` from creation on.
    free: Vec<u32>,
    /// Bit `i` set while buffer `i` is allocated.
    in_use: Vec<u64>,
    huge: bool,
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("capacity", &self.count)
            .field("buf_size", &self.buf_size)
            .field("available", &self.free.len())
            .field("huge", &self.huge)
            .finish()
    }
}

impl BufferPool {
    /// Maps `count * buf_size` bytes, on huge pages when the system has them reserved, else on ordinary pages
    /// (pre-faulted, so the first packets do not pay for page faults).
    pub fn new(count: usize, buf_size: usize) -> io::Result<BufferPool> {
        let invalid =
            |msg: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("buffer pool: {msg}"));
        if count == 0 || buf_size == 0 {
            return Err(invalid("count and buffer size must be non-zero"));
        }
        if u32::try_from(count).is_err() {
            return Err(invalid("at most 2^32 - 1 buffers"));
        }
        let len = count
            .checked_mul(buf_size)
            .ok_or_else(|| invalid("count * buf_size overflows"))?;

        let (map, huge) = match map_huge(len) {
            Some(map) => (map, true),
            None => (MmapOptions::new().len(len).populate().map_anon()?, false),
        };
        // Reversed so that the first allocations hand out buffers 0, 1, 2, ... (adjacent memory).
        let free: Vec<u32> = (0..count as u32).rev().collect();
        let in_use = vec![0u64; count.div_ceil(64)];
        Ok(BufferPool {
            map,
            buf_size,
            count,
            free,
            in_use,
            huge,
        })
    }

    /// Takes a free buffer, or `None` when all are in use. Its contents are whatever the last user left.
    pub fn alloc(&mut self) -> Option<BufId> {
        let index = self.free.pop()?;
        let (word, bit) = split(index);
        self.in_use[word] |= bit;
        Some(BufId(index))
    }

    /// Returns a buffer to the pool. A buffer that is not allocated is ignored (and asserted on in debug builds).
    pub fn free(&mut self, id: BufId) {
        let result = self.try_free(id);
        debug_assert!(
            result.is_ok(),
            "BufferPool::free: {}",
            result.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }

    /// Returns a buffer to the pool, refusing a double free or a foreign id without changing anything.
    pub fn try_free(&mut self, id: BufId) -> Result<(), FreeError> {
        if id.index() >= self.count {
            return Err(FreeError::Foreign(id));
        }
        let (word, bit) = split(id.0);
        if self.in_use[word] & bit == 0 {
            return Err(FreeError::NotAllocated(id));
        }
        self.in_use[word] &= !bit;
        // Cannot grow the vector: each index is pushed at most once per allocation and capacity is `count`.
        self.free.push(id.0);
        Ok(())
    }

    /// Whether `id` is currently allocated.
    pub fn is_allocated(&self, id: BufId) -> bool {
        let (word, bit) = split(id.0);
        self.in_use.get(word).is_some_and(|w| w & bit != 0)
    }

    /// The buffer's bytes (`buf_size()` of them). An id from another pool yields an empty slice.
    pub fn get(&self, id: BufId) -> &[u8] {
        debug_assert!(
            self.is_allocated(id),
            "BufferPool::get on {id:?}, which is not allocated"
        );
        let start = id.index() * self.buf_size;
        self.map.get(start..start + self.buf_size).unwrap_or(&[])
    }

    /// The buffer's bytes, writable. An id from another pool yields an empty slice.
    pub fn get_mut(&mut self, id: BufId) -> &mut [u8] {
        debug_assert!(
            self.is_allocated(id),
            "BufferPool::get_mut on {id:?}, which is not allocated"
        );
        let start = id.index() * self.buf_size;
        self.map
            .get_mut(start..start + self.buf_size)
            .unwrap_or(&mut [])
    }

    /// Free buffers left.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Total number of buffers.
    pub fn capacity(&self) -> usize {
        self.count
    }

    /// Size of every buffer in bytes.
    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// Whether the mapping sits on huge pages.
    pub fn is_huge(&self) -> bool {
        self.huge
    }
}

fn split(index: u32) -> (usize, u64) {
    ((index / 64) as usize, 1u64 << (index % 64))
}

/// A huge-page mapping of at least `len` bytes, when the system has a default huge page size and enough free huge
/// pages reserved (`vm.nr_hugepages`); `None` otherwise. Small pools are not worth a whole huge page.
fn map_huge(len: usize) -> Option<MmapMut> {
    let page = default_huge_page_size()?;
    if len < page / 2 {
        return None;
    }
    // Rounded up to whole huge pages so that the unmap length matches what the kernel mapped.
    let rounded = len.checked_next_multiple_of(page)?;
    MmapOptions::new().len(rounded).huge(None).map_anon().ok()
}

/// `Hugepagesize` from /proc/meminfo, in bytes.
fn default_huge_page_size() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("Hugepagesize:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024).filter(|&b| b > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_all_then_exhausted_then_reuse() {
        let mut pool = BufferPool::new(100, 2048).unwrap();
        assert_eq!(
            (pool.capacity(), pool.available(), pool.buf_size()),
            (100, 100, 2048)
        );
        let ids: Vec<BufId> = (0..100).map(|_| pool.alloc().unwrap()).collect();
        assert_eq!(pool.available(), 0);
        assert_eq!(pool.alloc(), None);
        let mut sorted: Vec<usize> = ids.iter().map(|id| id.index()).collect();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());

        pool.free(ids[42]);
        assert_eq!(pool.available(), 1);
        assert_eq!(pool.alloc(), Some(ids[42]));
        assert_eq!(pool.alloc(), None);
        for id in ids {
            pool.free(id);
        }
        assert_eq!(pool.available(), 100);
    }

    #[test]
    fn buffers_do_not_overlap() {
        let mut pool = BufferPool::new(64, 1500).unwrap();
        let ids: Vec<BufId> = (0..64).map(|_| pool.alloc().unwrap()).collect();
        for (n, &id) in ids.iter().enumerate() {
            let buf = pool.get_mut(id);
            assert_eq!(buf.len(), 1500);
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (n * 7 + i) as u8;
            }
        }
        for (n, &id) in ids.iter().enumerate() {
            assert!(
                pool.get(id)
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == (n * 7 + i) as u8),
                "buffer {n} was clobbered"
            );
        }
        let ptrs: Vec<usize> = ids
            .iter()
            .map(|&id| pool.get(id).as_ptr() as usize)
            .collect();
        for (a, pa) in ptrs.iter().enumerate() {
            for pb in &ptrs[a + 1..] {
                assert!(pa.abs_diff(*pb) >= 1500);
            }
        }
    }

    #[test]
    fn double_free_is_refused_and_free_list_stays_sound() {
        let mut pool = BufferPool::new(4, 64).unwrap();
        let a = pool.alloc().unwrap();
        assert_eq!(pool.try_free(a), Ok(()));
        assert_eq!(pool.try_free(a), Err(FreeError::NotAllocated(a)));
        assert_eq!(pool.try_free(BufId(9)), Err(FreeError::Foreign(BufId(9))));
        assert_eq!(pool.available(), 4);
        // Four distinct buffers, then exhaustion: the refused frees did not duplicate `a` on the free list.
        let mut got: Vec<usize> = (0..4).map(|_| pool.alloc().unwrap().index()).collect();
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2, 3]);
        assert_eq!(pool.alloc(), None);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "double free")]
    fn double_free_asserts_in_debug_builds() {
        let mut pool = BufferPool::new(2, 64).unwrap();
        let a = pool.alloc().unwrap();
        pool.free(a);
        pool.free(a);
    }

    #[test]
    fn foreign_id_is_refused() {
        let mut big = BufferPool::new(8, 64).unwrap();
        let mut small = BufferPool::new(1, 64).unwrap();
        let far = (0..8).map(|_| big.alloc().unwrap()).last().unwrap();
        assert!(!small.is_allocated(far));
        assert_eq!(small.try_free(far), Err(FreeError::Foreign(far)));
    }

    #[test]
    fn large_buffers_for_gso_segments() {
        // 64 KiB segments plus header room, enough to be worth huge pages when the machine has them.
        let mut pool = BufferPool::new(64, 65536 + 256).unwrap();
        let id = pool.alloc().unwrap();
        pool.get_mut(id)[65536 + 255] = 0xab;
        assert_eq!(pool.get(id)[65536 + 255], 0xab);
        eprintln!("pool on huge pages: {}", pool.is_huge());
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(BufferPool::new(0, 2048).is_err());
        assert!(BufferPool::new(16, 0).is_err());
        assert!(BufferPool::new(usize::MAX / 2, 4).is_err());
    }
}
