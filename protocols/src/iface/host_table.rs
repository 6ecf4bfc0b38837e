//! What a stack learned per destination host from the wire (path MTUs, redirects): a bounded
//! map whose entries age out, and the news since the node last took it, for the node's other
//! stacks.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::time::Instant;

/// Learned entries not yet taken as news, at most (the engine takes them every batch).
const NEWS_MAX: usize = 64;

#[derive(Debug)]
pub(super) struct HostTable<V> {
    entries: HashMap<Ipv4Addr, (V, Instant)>,
    /// Entries at most; past it, expired ones go, then the one that expires first.
    capacity: usize,
    news: Vec<(Ipv4Addr, V)>,
}

impl<V: Copy> HostTable<V> {
    pub fn new(capacity: usize) -> Self {
        HostTable {
            entries: HashMap::new(),
            capacity,
            news: Vec::new(),
        }
    }

    /// The value for `dst` still valid at `now`.
    pub fn get(&self, dst: Ipv4Addr, now: Instant) -> Option<V> {
        self.entries
            .get(&dst)
            .filter(|&&(_, expires)| expires > now)
            .map(|&(v, _)| v)
    }

    /// Holds `v` for `dst` until `expires`, making room if the table is full.
    pub fn insert(&mut self, dst: Ipv4Addr, v: V, now: Instant, expires: Instant) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&dst) {
            self.entries.retain(|_, &mut (_, e)| e > now);
            if self.entries.len() >= self.capacity {
                let soonest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, &(_, e))| e)
                    .map(|(&a, _)| a);
                if let Some(a) = soonest {
                    self.entries.remove(&a);
                }
            }
        }
        self.entries.insert(dst, (v, expires));
    }

    /// Keeps `(dst, v)` as news for the node's other stacks (bounded: beyond it, lost).
    pub fn tell(&mut self, dst: Ipv4Addr, v: V) {
        if self.news.len() < NEWS_MAX {
            self.news.push((dst, v));
        }
    }

    /// The news since the last call.
    pub fn take_news(&mut self, out: &mut Vec<(Ipv4Addr, V)>) {
        out.append(&mut self.news);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}
