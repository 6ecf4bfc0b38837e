//! The buffer pool's steady state never touches the heap: a counting global allocator watches 100k
//! alloc/write/free cycles on this thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use engine::pool::BufferPool;

struct Counting;

thread_local! {
    // Const-initialized and without a destructor, so touching it never allocates.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every method forwards to the system allocator unchanged; the thread-local counter does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

#[test]
fn steady_state_alloc_write_free_does_not_allocate() {
    let mut pool = BufferPool::new(256, 2048).unwrap();
    let mut held = [None; 8];
    let before = allocs();
    let mut checksum = 0u64;
    for i in 0..100_000u32 {
        let slot = (i % 8) as usize;
        if let Some(old) = held[slot].take() {
            checksum = checksum.wrapping_add(u64::from(pool.get(old)[7]));
            pool.free(old);
        }
        let id = pool.alloc().expect("pool has room");
        let buf = pool.get_mut(id);
        buf[..8].copy_from_slice(&u64::from(i).to_le_bytes());
        buf[2047] = i as u8;
        held[slot] = Some(id);
    }
    let after = allocs();
    for id in held.into_iter().flatten() {
        pool.free(id);
    }
    assert_eq!(pool.available(), 256);
    assert_eq!(
        after - before,
        0,
        "heap allocations during 100k pool cycles (checksum {checksum})"
    );
}
