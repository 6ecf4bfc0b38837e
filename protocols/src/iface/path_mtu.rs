//! Path MTUs learned from ICMP "fragmentation needed" (RFC 1191), per destination: a new TCP
//! connection to a host whose path is narrower than the link starts with the MSS the path
//! allows, instead of losing its first full-sized segments again. Bounded, and each entry ages
//! out after [`PMTU_EXPIRES`] (RFC 1191 §6.3: the path may have grown since), as Linux's
//! `ip_rt_mtu_expires`.

use std::net::Ipv4Addr;

use super::host_table::HostTable;
use super::Stack;
use crate::time::{Duration, Instant};

/// How long a learned path MTU holds.
pub const PMTU_EXPIRES: Duration = Duration::from_secs(600);

/// Destinations remembered at most; past it, the entry that expires first gives way.
pub const PMTU_ENTRIES: usize = 1024;

#[derive(Debug)]
pub(super) struct PathMtuCache(HostTable<usize>);

impl Default for PathMtuCache {
    fn default() -> Self {
        PathMtuCache(HostTable::new(PMTU_ENTRIES))
    }
}

impl PathMtuCache {
    /// The path MTU towards `dst` learned and still valid at `now`.
    pub fn get(&self, dst: Ipv4Addr, now: Instant) -> Option<usize> {
        self.0.get(dst, now)
    }

    /// A report said the path to `dst` takes `mtu`-byte packets at most: learned, and kept
    /// as news for the node's other stacks.
    pub fn learn_from_report(&mut self, dst: Ipv4Addr, mtu: usize, now: Instant) {
        if self.learn(dst, mtu, now) {
            self.0.tell(dst, mtu.max(crate::tcp::MIN_PATH_MTU));
        }
    }

    /// What reports taught since the last call.
    pub fn take_news(&mut self, out: &mut Vec<(Ipv4Addr, usize)>) {
        self.0.take_news(out);
    }

    /// Records that the path to `dst` takes `mtu`-byte packets at most, never less than
    /// [`crate::tcp::MIN_PATH_MTU`] (a smaller value than a valid one already held wins; a
    /// larger one does not replace it before it expires). Returns whether it changed anything.
    pub fn learn(&mut self, dst: Ipv4Addr, mtu: usize, now: Instant) -> bool {
        let mtu = mtu.max(crate::tcp::MIN_PATH_MTU);
        if self.get(dst, now).is_some_and(|held| held <= mtu) {
            return false;
        }
        self.0.insert(dst, mtu, now, now + PMTU_EXPIRES);
        true
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl Stack {
    /// Path MTUs this stack learned from reports since the last call (each destination, the
    /// MTU): for the node to give its other stacks, whose connections to those hosts then start
    /// small too.
    pub fn take_path_mtus(&mut self, out: &mut Vec<(Ipv4Addr, usize)>) {
        self.pmtu.take_news(out);
    }

    /// Takes a path MTU another stack of the node learned (see [`Stack::take_path_mtus`]); it is
    /// no news to pass on.
    pub fn learn_path_mtu(&mut self, dst: Ipv4Addr, mtu: usize, now: Instant) {
        self.pmtu.learn(dst, mtu, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_mtu_holds_until_it_expires_and_the_table_is_bounded() {
        let mut c = PathMtuCache::default();
        let dst = Ipv4Addr::new(10, 0, 0, 9);
        let t0 = Instant::from_secs(1);
        c.learn(dst, 1400, t0);
        c.learn(dst, 1000, t0);
        c.learn(dst, 1200, t0);
        assert_eq!(c.get(dst, t0), Some(1000));
        assert_eq!(c.get(dst, t0 + PMTU_EXPIRES), None);
        c.learn(dst, 1200, t0 + PMTU_EXPIRES);
        assert_eq!(c.get(dst, t0 + PMTU_EXPIRES), Some(1200));
        for i in 0..3 * PMTU_ENTRIES as u32 {
            c.learn(Ipv4Addr::from(0x0a01_0000 + i), 1000, t0);
        }
        assert!(c.len() <= PMTU_ENTRIES);
    }
}
