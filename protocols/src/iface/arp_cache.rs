//! The ARP cache (RFC 826) with the RFC 1122 §2.3.2 rules: bounded, entries expire, at most one
//! request a second per destination, and a bounded queue of packets waiting for resolution.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;

use crate::time::{Duration, Instant};
use crate::wire::EthernetAddress;

/// Limits of the cache.
#[derive(Debug, Clone)]
pub struct ArpConfig {
    /// Most resolved entries held; the one closest to expiry is evicted beyond it.
    pub capacity: usize,
    /// How long a resolved entry is trusted.
    pub entry_ttl: Duration,
    /// Least time between two requests for one address (RFC 1122: one a second).
    pub request_interval: Duration,
    /// Requests sent for one address before its waiting packets are dropped.
    pub max_requests: u32,
    /// An entry in use is confirmed this long before it expires, by a request unicast to the
    /// MAC it holds (RFC 1122 §2.3.2.1's unicast poll, as Linux probes a neighbour it still
    /// uses): packets keep going to it meanwhile, instead of waiting for a broadcast request
    /// once it has expired.
    pub refresh_before: Duration,
    /// Packets held per unresolved address (default 128: every fragment of a largest IPv4
    /// datagram down to MTU 576, 119 of them, as Linux's 208 KiB `unres_qlen_bytes` holds one).
    pub pending_per_addr: usize,
    /// Packets held over all unresolved addresses.
    pub pending_total: usize,
    /// Anti-poisoning: a live entry's MAC changes only through a reply to our own request. An
    /// unsolicited reply neither changes nor creates an entry; a request or a gratuitous ARP
    /// claiming another MAC for a live entry is refused too (it may create or refresh one,
    /// per RFC 826). A host that really changed its MAC is learnt once the entry expires
    /// (`entry_ttl`). Off: RFC 826 merging as written, as the Linux kernel does.
    pub protect_live_entries: bool,
    /// This stack's part in its node's ARP: alone, or one of several stacks (workers) of
    /// one node, of which one owns ARP for all.
    pub role: ArpRole,
    /// RFC 5227 §2.4 (c): when another host claims our address, defend it with one
    /// gratuitous ARP at most this often (DEFEND_INTERVAL, 10 s).
    pub defend_interval: Duration,
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig {
            capacity: 1024,
            entry_ttl: Duration::from_secs(60),
            request_interval: Duration::from_secs(1),
            max_requests: 3,
            refresh_before: Duration::from_secs(5),
            pending_per_addr: 128,
            pending_total: 256,
            protect_live_entries: true,
            role: ArpRole::Alone,
            defend_interval: Duration::from_secs(10),
        }
    }
}

/// A stack's part in its node's ARP. A node whose workers each hold a stack gets every ARP
/// frame to one of them, the owner: it alone answers, announces, defends the address (RFC
/// 5227) and asks on the wire, and what it learns reaches the others as updates. The others
/// (followers) pass each request they would send to the owner instead (one request a
/// second per address for the whole node, and one reply per request on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArpRole {
    /// The node's only stack.
    #[default]
    Alone,
    /// Owns the node's ARP; records each entry it learns for the followers
    /// ([`super::Stack::take_arp_learned`]).
    Owner,
    /// Asks the owner ([`super::Stack::take_arp_wanted`]) and learns from it
    /// ([`super::Stack::learn_neighbour`]).
    Follower,
}

/// Most updates held for the node between two drains (the engine drains every batch): beyond
/// it they are dropped, and a follower asks again at its next request timer.
const SHARE_MAX: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: EthernetAddress,
    expires_at: Instant,
    /// When a confirming request last went out (see [`ArpConfig::refresh_before`]).
    refresh_sent: Option<Instant>,
}

impl Entry {
    /// Live, within `before` of expiring, and no confirming request in the last `interval`:
    /// one is due, and recorded as sent now.
    fn confirm_due(&mut self, now: Instant, before: Duration, interval: Duration) -> bool {
        let near = self.expires_at > now && self.expires_at <= now + before;
        if !near || self.refresh_sent.is_some_and(|t| now < t + interval) {
            return false;
        }
        self.refresh_sent = Some(now);
        true
    }
}

#[derive(Debug, Default)]
struct Pending {
    /// Whole frames, Ethernet destination still to be filled.
    frames: VecDeque<Vec<u8>>,
    last_request: Option<Instant>,
    requests_sent: u32,
}

/// What [`ArpCache::enqueue`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Held; a request should go out now.
    HeldSendRequest,
    /// Held; a request went out less than a second ago.
    Held,
    /// The pending queue is full: the packet was not kept.
    QueueFull,
}

/// Outcome of a timer pass: requests to (re)send and how many packets were given up on.
#[derive(Debug, Default)]
pub struct ArpTimeouts {
    pub resend: Vec<Ipv4Addr>,
    pub dropped: u64,
}

#[derive(Debug)]
pub struct ArpCache {
    config: ArpConfig,
    entries: HashMap<Ipv4Addr, Entry>,
    pending: HashMap<Ipv4Addr, Pending>,
    pending_total: usize,
    /// When we last defended our address (RFC 5227).
    defended_at: Option<Instant>,
    /// The first host seen claiming our address, until the application takes it.
    conflict: Option<EthernetAddress>,
    conflict_reported: bool,
    /// Owner: entries learnt since the node last took them, for the followers.
    learned: Vec<(Ipv4Addr, EthernetAddress)>,
    /// Follower: addresses to resolve since the node last took them, for the owner.
    wanted: Vec<Ipv4Addr>,
}

impl ArpCache {
    pub fn new(config: ArpConfig) -> Self {
        ArpCache {
            config,
            entries: HashMap::new(),
            pending: HashMap::new(),
            pending_total: 0,
            defended_at: None,
            conflict: None,
            conflict_reported: false,
            learned: Vec::new(),
            wanted: Vec::new(),
        }
    }

    /// Whether an ARP packet from `addr` at `mac` may be merged into the cache. Anything is
    /// taken while we ask (a request is outstanding); otherwise a reply only when it confirms
    /// the entry we have, and a request unless it would change a live entry: anything else
    /// could poison the cache.
    pub fn accepts(&self, addr: Ipv4Addr, mac: EthernetAddress, reply: bool, now: Instant) -> bool {
        if !self.config.protect_live_entries || self.pending.contains_key(&addr) {
            return true;
        }
        match self.entries.get(&addr) {
            Some(e) if e.mac == mac => true,
            Some(e) if e.expires_at > now => false,
            _ => !reply,
        }
    }

    /// Another host at `mac` claims our address. Records it (reported once through
    /// [`ArpCache::take_conflict`]) and says whether to defend now: at most once per
    /// `defend_interval` (RFC 5227 §2.4 (c)), so two defenders never loop.
    pub fn conflict(&mut self, mac: EthernetAddress, now: Instant) -> bool {
        if !self.conflict_reported && self.conflict.is_none() {
            self.conflict = Some(mac);
        }
        let due = self
            .defended_at
            .is_none_or(|t| now >= t + self.config.defend_interval);
        if due {
            self.defended_at = Some(now);
        }
        due && self.config.role != ArpRole::Follower
    }

    pub fn role(&self) -> ArpRole {
        self.config.role
    }

    /// A request for `addr` is due: true when this stack sends it on the wire; a follower
    /// passes it to the owner instead (taken with [`ArpCache::take_wanted`]).
    pub fn request_due(&mut self, addr: Ipv4Addr) -> bool {
        if self.config.role != ArpRole::Follower {
            return true;
        }
        if self.wanted.len() < SHARE_MAX && !self.wanted.contains(&addr) {
            self.wanted.push(addr);
        }
        false
    }

    /// Follower: the addresses it wants resolved since the last call.
    pub fn take_wanted(&mut self, out: &mut Vec<Ipv4Addr>) {
        out.append(&mut self.wanted);
    }

    /// Owner: the entries learnt since the last call.
    pub fn take_learned(&mut self, out: &mut Vec<(Ipv4Addr, EthernetAddress)>) {
        out.append(&mut self.learned);
    }

    /// Owner: records a live entry for the followers (asked for by one of them, or just
    /// learnt).
    pub fn share(&mut self, addr: Ipv4Addr, mac: EthernetAddress) {
        if self.config.role == ArpRole::Owner && self.learned.len() < SHARE_MAX {
            self.learned.push((addr, mac));
        }
    }

    /// The MAC of the first host that claimed our address, once (for a warning).
    pub fn take_conflict(&mut self) -> Option<EthernetAddress> {
        let c = self.conflict.take();
        if c.is_some() {
            self.conflict_reported = true;
        }
        c
    }

    /// The address's MAC if a live entry exists.
    pub fn lookup(&self, addr: Ipv4Addr, now: Instant) -> Option<EthernetAddress> {
        self.entries
            .get(&addr)
            .filter(|e| e.expires_at > now)
            .map(|e| e.mac)
    }

    /// The MAC to send a packet for `addr` to, if a live entry exists, in one lookup (the
    /// per-packet path), and whether to confirm it now ([`ArpCache::refresh_due`]).
    pub fn lookup_to_send(
        &mut self,
        addr: Ipv4Addr,
        now: Instant,
    ) -> Option<(EthernetAddress, bool)> {
        let (before, interval) = (self.config.refresh_before, self.config.request_interval);
        let e = self.entries.get_mut(&addr).filter(|e| e.expires_at > now)?;
        Some((e.mac, e.confirm_due(now, before, interval)))
    }

    /// The MAC to confirm `addr` at with a unicast request, when its entry, in use now, is
    /// within `refresh_before` of expiring and no request went out in the last second;
    /// recorded as sent.
    pub fn refresh_due(&mut self, addr: Ipv4Addr, now: Instant) -> Option<EthernetAddress> {
        let (before, interval) = (self.config.refresh_before, self.config.request_interval);
        let e = self.entries.get_mut(&addr)?;
        e.confirm_due(now, before, interval).then_some(e.mac)
    }

    /// True if an entry (live or not) exists for `addr`: RFC 826's "merge" rule updates only
    /// those, unless the packet was addressed to us.
    pub fn knows(&self, addr: Ipv4Addr) -> bool {
        self.entries.contains_key(&addr) || self.pending.contains_key(&addr)
    }

    /// True while packets wait for `addr` to be resolved.
    pub fn is_pending(&self, addr: Ipv4Addr) -> bool {
        self.pending.contains_key(&addr)
    }

    /// Records `addr` at `mac` (for the followers too, on the owner), and returns the frames
    /// that were waiting for it.
    pub fn insert(&mut self, addr: Ipv4Addr, mac: EthernetAddress, now: Instant) -> Vec<Vec<u8>> {
        self.share(addr, mac);
        if !self.entries.contains_key(&addr) && self.entries.len() >= self.config.capacity {
            self.evict_one(now);
        }
        self.entries.insert(
            addr,
            Entry {
                mac,
                expires_at: now + self.config.entry_ttl,
                refresh_sent: None,
            },
        );
        match self.pending.remove(&addr) {
            Some(p) => {
                self.pending_total -= p.frames.len();
                p.frames.into()
            }
            None => Vec::new(),
        }
    }

    fn evict_one(&mut self, now: Instant) {
        // Expired entries first, else the one closest to expiry.
        let victim = self
            .entries
            .iter()
            .min_by_key(|(_, e)| {
                if e.expires_at <= now {
                    Instant::ZERO
                } else {
                    e.expires_at
                }
            })
            .map(|(a, _)| *a);
        if let Some(a) = victim {
            self.entries.remove(&a);
        }
    }

    /// Holds `frame` until `addr` resolves; says whether a request should be sent now.
    pub fn enqueue(&mut self, addr: Ipv4Addr, frame: Vec<u8>, now: Instant) -> Enqueued {
        let interval = self.config.request_interval;
        let per_addr = self.config.pending_per_addr;
        if self.pending_total >= self.config.pending_total {
            return Enqueued::QueueFull;
        }
        let p = self.pending.entry(addr).or_default();
        if p.frames.len() >= per_addr {
            return Enqueued::QueueFull;
        }
        p.frames.push_back(frame);
        self.pending_total += 1;
        let due = p.last_request.is_none_or(|t| now >= t + interval);
        if due && p.requests_sent < self.config.max_requests {
            p.last_request = Some(now);
            p.requests_sent += 1;
            Enqueued::HeldSendRequest
        } else {
            Enqueued::Held
        }
    }

    /// Whether a request for `addr` (with nothing to hold) may go out now; records it if so.
    pub fn may_request(&mut self, addr: Ipv4Addr, now: Instant) -> bool {
        let interval = self.config.request_interval;
        let p = self.pending.entry(addr).or_default();
        if p.last_request.is_none_or(|t| now >= t + interval) {
            p.last_request = Some(now);
            p.requests_sent += 1;
            true
        } else {
            false
        }
    }

    /// The next instant at which [`ArpCache::handle_timeout`] has work.
    pub fn poll_at(&self) -> Option<Instant> {
        self.pending
            .values()
            .filter_map(|p| p.last_request.map(|t| t + self.config.request_interval))
            .min()
    }

    /// Re-sends due requests (one a second) and gives up on addresses that never answered.
    pub fn handle_timeout(&mut self, now: Instant) -> ArpTimeouts {
        let mut out = ArpTimeouts::default();
        let interval = self.config.request_interval;
        let max = self.config.max_requests;
        let mut given_up = Vec::new();
        for (addr, p) in self.pending.iter_mut() {
            let Some(last) = p.last_request else { continue };
            if now < last + interval {
                continue;
            }
            if p.requests_sent >= max {
                given_up.push(*addr);
            } else {
                p.last_request = Some(now);
                p.requests_sent += 1;
                out.resend.push(*addr);
            }
        }
        for addr in given_up {
            if let Some(p) = self.pending.remove(&addr) {
                self.pending_total -= p.frames.len();
                out.dropped += p.frames.len() as u64;
            }
        }
        out
    }

    /// Live entries, for `arp` in the shell: (address, MAC, time left).
    pub fn entries(&self, now: Instant) -> Vec<(Ipv4Addr, EthernetAddress, Duration)> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, e)| e.expires_at > now)
            .map(|(a, e)| (*a, e.mac, e.expires_at - now))
            .collect();
        v.sort_by_key(|(a, _, _)| *a);
        v
    }

    pub fn pending_frames(&self) -> usize {
        self.pending_total
    }
}

impl super::Stack {
    /// Another host (at `mac`) sent ARP with our address as its sender: counted, reported once
    /// through [`super::Stack::take_arp_conflict`], and defended with a gratuitous ARP (an
    /// announcement of our address) at most once per `defend_interval` (RFC 5227 §2.4 (c)).
    pub(super) fn arp_conflict(
        &mut self,
        now: Instant,
        mac: EthernetAddress,
        sink: &mut impl super::Sink,
    ) {
        self.counters.arp_conflicts += 1;
        self.counters.drop(super::DropReason::ArpConflict);
        if self.arp.conflict(mac, now) {
            self.counters.arp_defended += 1;
            let me = self.address();
            self.send_arp_request_for(me, sink);
        }
    }

    /// The MAC of the first other host that claimed our address, returned once, so that the
    /// node can warn about it; `counters().arp_conflicts` keeps counting.
    pub fn take_arp_conflict(&mut self) -> Option<EthernetAddress> {
        self.arp.take_conflict()
    }

    /// [`ArpRole::Owner`]: the entries learnt since the last call, for the followers'
    /// [`super::Stack::learn_neighbour`].
    pub fn take_arp_learned(&mut self, out: &mut Vec<(Ipv4Addr, EthernetAddress)>) {
        self.arp.take_learned(out);
    }

    /// [`ArpRole::Follower`]: the addresses this stack would have sent requests for since the
    /// last call, for the owner's [`super::Stack::resolve_for_follower`].
    pub fn take_arp_wanted(&mut self, out: &mut Vec<Ipv4Addr>) {
        self.arp.take_wanted(out);
    }

    /// [`ArpRole::Follower`]: the owner learnt `addr` at `mac`. Recorded, and the frames
    /// waiting for it leave.
    pub fn learn_neighbour(
        &mut self,
        now: Instant,
        addr: Ipv4Addr,
        mac: EthernetAddress,
        sink: &mut impl super::Sink,
    ) {
        if self.is_local(addr) || !mac.is_unicast() {
            return;
        }
        let waiting = self.arp.insert(addr, mac, now);
        if !waiting.is_empty() {
            self.egress().flush_pending(sink, mac, waiting);
        }
    }

    /// [`ArpRole::Owner`]: a follower wants `addr` resolved. A live entry goes back to the
    /// followers at once; otherwise a request goes out, at most one a second per address for
    /// the whole node, and the reply is taken as one to our own request.
    pub fn resolve_for_follower(
        &mut self,
        now: Instant,
        addr: Ipv4Addr,
        sink: &mut impl super::Sink,
    ) {
        if let Some(mac) = self.arp.lookup(addr, now) {
            self.arp.share(addr, mac);
            if let Some(at) = self.arp.refresh_due(addr, now) {
                self.egress().send_arp_request_to(sink, addr, at);
            }
        } else if self.arp.may_request(addr, now) {
            self.send_arp_request_for(addr, sink);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);

    fn small() -> ArpCache {
        ArpCache::new(ArpConfig {
            capacity: 2,
            pending_per_addr: 2,
            pending_total: 3,
            ..ArpConfig::default()
        })
    }

    #[test]
    fn entries_expire() {
        let mut c = small();
        let t0 = Instant::from_secs(1);
        c.insert(A, MAC, t0);
        assert_eq!(c.lookup(A, t0 + Duration::from_secs(59)), Some(MAC));
        assert_eq!(c.lookup(A, t0 + Duration::from_secs(60)), None);
    }

    #[test]
    fn capacity_is_bounded_evicting_the_oldest() {
        let mut c = small();
        for i in 1..=3u8 {
            c.insert(
                Ipv4Addr::new(10, 0, 0, i),
                MAC,
                Instant::from_secs(u64::from(i)),
            );
        }
        let now = Instant::from_secs(3);
        assert_eq!(c.entries(now).len(), 2);
        assert_eq!(c.lookup(Ipv4Addr::new(10, 0, 0, 1), now), None);
        assert_eq!(c.lookup(Ipv4Addr::new(10, 0, 0, 3), now), Some(MAC));
    }

    #[test]
    fn one_request_a_second_and_bounded_queue() {
        let mut c = small();
        let t0 = Instant::from_secs(10);
        assert_eq!(c.enqueue(A, vec![1], t0), Enqueued::HeldSendRequest);
        assert_eq!(
            c.enqueue(A, vec![2], t0 + Duration::from_millis(500)),
            Enqueued::Held
        );
        assert_eq!(c.enqueue(A, vec![3], t0), Enqueued::QueueFull);
        let b = Ipv4Addr::new(10, 0, 0, 9);
        assert_eq!(c.enqueue(b, vec![4], t0), Enqueued::HeldSendRequest);
        assert_eq!(
            c.enqueue(b, vec![5], t0),
            Enqueued::QueueFull,
            "total bound"
        );
        assert_eq!(c.poll_at(), Some(t0 + Duration::from_secs(1)));
        let waiting = c.insert(A, MAC, t0 + Duration::from_millis(700));
        assert_eq!(waiting, vec![vec![1], vec![2]]);
        assert_eq!(c.pending_frames(), 1);
    }

    #[test]
    fn unsolicited_replies_are_refused_unless_asked_or_confirming() {
        let mut c = small();
        let t0 = Instant::from_secs(1);
        let evil = EthernetAddress([2, 0, 0, 0, 0, 0x66]);
        // Nothing asked: a reply neither creates nor changes an entry; a request may create one.
        assert!(!c.accepts(A, MAC, true, t0));
        assert!(c.accepts(A, MAC, false, t0));
        c.insert(A, MAC, t0);
        assert!(
            !c.accepts(A, evil, true, t0),
            "a live entry is not poisoned by a reply"
        );
        assert!(
            !c.accepts(A, evil, false, t0),
            "nor by a request or gratuitous ARP"
        );
        assert!(c.accepts(A, MAC, true, t0), "a confirming reply refreshes");
        assert!(c.accepts(A, MAC, false, t0), "so does a confirming request");
        // Once the entry has expired, a request may teach the new MAC; a reply still may not.
        let later = t0 + Duration::from_secs(61);
        assert!(c.accepts(A, evil, false, later));
        assert!(!c.accepts(A, evil, true, later));
        // Once we ask, the answer is taken.
        let b = Ipv4Addr::new(10, 0, 0, 9);
        assert_eq!(c.enqueue(b, vec![1], t0), Enqueued::HeldSendRequest);
        assert!(c.accepts(b, evil, true, t0));
        // The flag off: RFC 826 as written.
        let mut open = ArpCache::new(ArpConfig {
            protect_live_entries: false,
            ..ArpConfig::default()
        });
        open.insert(A, MAC, t0);
        assert!(open.accepts(A, evil, true, t0));
        assert!(open.accepts(A, evil, false, t0));
    }

    #[test]
    fn conflicts_are_reported_once_and_defended_every_ten_seconds_at_most() {
        let mut c = small();
        let other = EthernetAddress([2, 0, 0, 0, 0, 0x77]);
        let t0 = Instant::from_secs(100);
        assert!(c.conflict(other, t0));
        assert!(!c.conflict(other, t0 + Duration::from_secs(9)));
        assert!(c.conflict(other, t0 + Duration::from_secs(10)));
        assert_eq!(c.take_conflict(), Some(other));
        assert_eq!(c.take_conflict(), None);
        c.conflict(other, t0 + Duration::from_secs(30));
        assert_eq!(c.take_conflict(), None, "warned once");
    }

    #[test]
    fn gives_up_after_max_requests() {
        let mut c = small();
        let mut now = Instant::from_secs(1);
        assert_eq!(c.enqueue(A, vec![1], now), Enqueued::HeldSendRequest);
        let mut resent = 0;
        let mut dropped = 0;
        for _ in 0..5 {
            now += Duration::from_secs(1);
            let t = c.handle_timeout(now);
            resent += t.resend.len();
            dropped += t.dropped;
        }
        assert_eq!(resent, 2, "3 requests in all");
        assert_eq!(dropped, 1);
        assert_eq!(c.pending_frames(), 0);
        assert_eq!(c.poll_at(), None);
    }
}
