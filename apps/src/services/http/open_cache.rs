//! What a worker remembers of opening paths under the root, for a second: the open file (or
//! why there was none), so that a request for a file asked for a moment ago costs an `fstat` on
//! the descriptor it already holds instead of a path walk, an open and a close, and the
//! precompressed variants that are not there (`FILE.br`, `FILE.gz`: two failed opens on every
//! request otherwise) cost nothing. Like nginx's `open_file_cache`, with a short validity:
//!
//! - the metadata is never remembered: every request `fstat`s the descriptor, so a file changed
//!   in place is answered with its new length, validators and bytes at once;
//! - a path that now names another file (replaced by a rename, removed, created) is seen once
//!   its entry is [`VALID_US`] old, when the path is opened again;
//! - each worker has its own cache (nothing shared on the request path), at most [`CAPACITY`]
//!   entries, so it holds at most that many descriptors; entries past their validity are
//!   dropped by [`OpenCache::sweep`], which the app calls from its periodic scan.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How long an open (or a failure to open) is trusted: 1 s.
pub const VALID_US: u64 = 1_000_000;
/// Entries per worker at most (each holding at most one descriptor).
pub const CAPACITY: usize = 256;

/// Why a path under the root was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// It leaves the root (`..` above it, or a symlink pointing out): 403.
    Outside,
    /// Nothing there: 404.
    Missing,
    /// There, but not ours to read: 403.
    Denied,
}

/// An open file shared by the cache and the responses still sending from it.
pub type Opened = Result<Arc<File>, Refused>;

struct Entry {
    opened: Opened,
    at_us: u64,
}

/// One worker's recent opens, by path relative to the root.
#[derive(Default)]
pub struct OpenCache {
    entries: HashMap<PathBuf, Entry>,
    now_us: u64,
    hits: u64,
    misses: u64,
}

impl OpenCache {
    /// The time the next lookups happen at (the worker's clock, in µs).
    pub fn set_now(&mut self, now_us: u64) {
        self.now_us = now_us;
    }

    /// What opening `rel` gives: remembered while fresh, else from `open` (and remembered).
    pub fn open(&mut self, rel: &Path, open: impl FnOnce(&Path) -> Opened) -> Opened {
        let now = self.now_us;
        if let Some(e) = self.entries.get(rel) {
            if now.saturating_sub(e.at_us) < VALID_US {
                self.hits += 1;
                return e.opened.clone();
            }
        }
        self.misses += 1;
        let opened = open(rel);
        if self.entries.len() >= CAPACITY && !self.entries.contains_key(rel) {
            self.sweep();
            if self.entries.len() >= CAPACITY {
                self.entries.clear();
            }
        }
        self.entries.insert(
            rel.to_path_buf(),
            Entry {
                opened: opened.clone(),
                at_us: now,
            },
        );
        opened
    }

    /// Drops the entries past their validity (closing their descriptors, unless a response is
    /// still sending from one).
    pub fn sweep(&mut self) {
        let now = self.now_us;
        self.entries
            .retain(|_, e| now.saturating_sub(e.at_us) < VALID_US);
    }

    /// Entries held now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Lookups answered from the cache, and those that opened the path.
    #[cfg(test)]
    pub fn counts(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn an_open_is_trusted_for_its_validity_then_done_again() {
        let mut c = OpenCache::default();
        let opens = Cell::new(0);
        let open = |_: &Path| {
            opens.set(opens.get() + 1);
            Err(Refused::Missing)
        };
        c.set_now(10);
        assert_eq!(
            c.open(Path::new("a.gz"), open).err(),
            Some(Refused::Missing)
        );
        c.set_now(10 + VALID_US - 1);
        assert_eq!(
            c.open(Path::new("a.gz"), open).err(),
            Some(Refused::Missing)
        );
        assert_eq!(opens.get(), 1, "a fresh entry answers");
        c.set_now(10 + VALID_US);
        let _ = c.open(Path::new("a.gz"), open);
        assert_eq!(opens.get(), 2, "a stale entry opens again");
        assert_eq!(c.counts(), (1, 2));
    }

    #[test]
    fn the_cache_stays_within_its_capacity_and_sweeps_what_is_stale() {
        let mut c = OpenCache::default();
        for i in 0..CAPACITY * 3 {
            c.set_now(i as u64);
            let _ = c.open(Path::new(&format!("f{i}")), |_| Err(Refused::Missing));
            assert!(c.len() <= CAPACITY);
        }
        c.set_now(10 * VALID_US);
        c.sweep();
        assert_eq!(c.len(), 0);
    }
}
