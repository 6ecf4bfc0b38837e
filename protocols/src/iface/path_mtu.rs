//! Path MTUs learned from ICMP "fragmentation needed" (RFC 1191), per destination: a new TCP
//! connection to a host whose path is narrower than the link starts with the MSS the path
//! allows, instead of losing its first full-sized segments again. Bounded, and each entry ages
//! out after [`PMTU_EXPIRES`] (RFC 1191 §6.3: the path may have grown since), as Linux's
//! `ip_rt_mtu_expires`.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::time::{Duration, Instant};

/// How long a learned path MTU holds.
pub const PMTU_EXPIRES: Duration = Duration::from_secs(600);

/// Destinations remembered at most; past it, the entry that expires first gives way.
pub const PMTU_ENTRIES: usize = 1024;

#[derive(Debug, Default)]
pub(super) struct PathMtuCache {
    entries: HashMap<Ipv4Addr, (usize, Instant)>,
}

impl PathMtuCache {
    /// The path MTU towards `dst` learned and still valid at `now`.
    pub fn get(&self, dst: Ipv4Addr, now: Instant) -> Option<usize> {
        self.entries
            .get(&dst)
            .filter(|&&(_, expires)| expires > now)
            .map(|&(mtu, _)| mtu)
    }

    /// Records that the path to `dst` takes `mtu`-byte packets at most (a smaller value than a
    /// valid one already held wins; a larger one does not replace it before it expires).
    pub fn learn(&mut self, dst: Ipv4Addr, mtu: usize, now: Instant) {
        if let Some(held) = self.get(dst, now) {
            if held <= mtu {
                return;
            }
        }
        if self.entries.len() >= PMTU_ENTRIES && !self.entries.contains_key(&dst) {
            self.entries.retain(|_, &mut (_, expires)| expires > now);
            if self.entries.len() >= PMTU_ENTRIES {
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
        self.entries.insert(dst, (mtu, now + PMTU_EXPIRES));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
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
