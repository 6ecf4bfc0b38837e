//! Host routes learned from ICMP redirects (RFC 1122 §3.2.2.2 and §3.3.1.2: a host MUST
//! update its routing from them). A router we send through says another router on our link is
//! the better first hop for one destination; from then on packets to it go there directly.
//! Taken only as Linux takes them by default (`accept_redirects` with `secure_redirects`):
//! from the router we use for that destination now, about a datagram we sent, naming a new
//! gateway on our subnet that is not us; a network redirect is taken for the one host (RFC
//! 1122). Anything else is counted and ignored. Bounded; each route ages out after
//! [`REDIRECT_EXPIRES`] (Linux's `gc_timeout`), and the worker that learns one gives it to the
//! others.

use std::net::Ipv4Addr;

use super::counters::DropReason;
use super::host_table::HostTable;
use super::ingress::IpMeta;
use super::Stack;
use crate::time::{Duration, Instant};
use crate::wire::bytes::{array, get, u8_at};

/// How long a learned host route holds.
pub const REDIRECT_EXPIRES: Duration = Duration::from_secs(300);

/// Destinations redirected at most.
pub const REDIRECT_ENTRIES: usize = 1024;

#[derive(Debug)]
pub(super) struct Redirects(pub(super) HostTable<Ipv4Addr>);

impl Default for Redirects {
    fn default() -> Self {
        Redirects(HostTable::new(REDIRECT_ENTRIES))
    }
}

impl Stack {
    /// An ICMP redirect from `meta.src` saying `gateway` is the better first hop for the
    /// datagram it quotes (`invoking`: its IPv4 header and more).
    pub(super) fn on_redirect(
        &mut self,
        now: Instant,
        meta: IpMeta,
        gateway: Ipv4Addr,
        invoking: &[u8],
    ) {
        let quoted_src = Ipv4Addr::from(array::<4>(get(invoking, 12..16)));
        let dst = Ipv4Addr::from(array::<4>(get(invoking, 16..20)));
        let cidr = self.config.cidr;
        let ours =
            invoking.len() >= 20 && u8_at(invoking, 0) >> 4 == 4 && self.is_local(quoted_src);
        let on_link_gateway = cidr.contains(gateway)
            && gateway != cidr.broadcast()
            && gateway != cidr.network()
            && !self.is_local(gateway)
            && gateway != meta.src;
        let first_hop = self.egress().next_hop(dst, now);
        if !ours || !on_link_gateway || cidr.contains(dst) || first_hop != Some(meta.src) {
            return self.counters.drop(DropReason::IcmpRedirectRefused);
        }
        self.counters.icmp_redirects_taken += 1;
        self.learn_redirect(dst, gateway, now);
        self.redirects.0.tell(dst, gateway);
    }

    /// Host routes this stack learned from redirects since the last call (destination, new
    /// first hop): for the node to give its other stacks.
    pub fn take_redirects(&mut self, out: &mut Vec<(Ipv4Addr, Ipv4Addr)>) {
        self.redirects.0.take_news(out);
    }

    /// Takes a host route: packets to `dst` go to `gateway` until it expires.
    pub fn learn_redirect(&mut self, dst: Ipv4Addr, gateway: Ipv4Addr, now: Instant) {
        let expires = now + REDIRECT_EXPIRES;
        self.redirects.0.insert(dst, gateway, now, expires);
    }
}
