//! IPv4 reassembly (RFC 791 §3.2, RFC 815) into a bounded pool.
//!
//! [`Reassembler`] owns every fragment a node holds. It never grows past its bounds:
//! - total memory ([`ReassemblyConfig::max_bytes`], fragment payloads plus a fixed per-fragment
//!   overhead): when a new fragment does not fit, the oldest datagrams in progress are evicted
//!   (as Linux does past `ipfrag_high_thresh`), so a flood of never-completing fragments cannot
//!   starve a datagram whose fragments arrive together;
//! - datagrams in progress ([`ReassemblyConfig::max_datagrams`]), evicting the oldest likewise;
//! - fragments per datagram ([`ReassemblyConfig::max_frags`]): one more drops the datagram;
//! - time ([`ReassemblyConfig::timeout`], 30 s): an expired datagram is dropped, and reported so
//!   that the node can send "fragment reassembly time exceeded" (RFC 792) when the first
//!   fragment had arrived.
//!
//! Overlapping fragments drop the whole datagram, and later fragments of it are discarded until
//! it times out (the RFC 5722 rule, applied to IPv4 as Linux and the BSDs do for IPv6). An exact
//! duplicate (same place, same bytes) is dropped alone. Every drop has a [`DropReason`].
//!
//! The module never reads a clock and never panics on input: offsets and lengths are checked
//! before any slice is taken.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;

use super::counters::{Counters, DropReason};
use super::ingress::IpMeta;
use super::{Sink, Stack};
use crate::time::{Duration, Instant};
use crate::wire::{icmpv4, ipv4, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet};

/// Bytes charged per fragment on top of its payload (the bookkeeping a fragment costs).
pub const FRAGMENT_OVERHEAD: usize = 64;
/// The largest IPv4 datagram (RFC 791: total length is 16 bits).
const MAX_DATAGRAM: usize = 65535;

/// Bounds of the reassembly pool.
#[derive(Debug, Clone)]
pub struct ReassemblyConfig {
    /// Most bytes held over all datagrams in progress (payloads plus [`FRAGMENT_OVERHEAD`] each).
    pub max_bytes: usize,
    /// Most datagrams in progress at once.
    pub max_datagrams: usize,
    /// Most fragments one datagram may arrive in (a 64 KiB datagram at MTU 1500 takes 45).
    pub max_frags: usize,
    /// How long a datagram may take to complete (RFC 1122 §3.3.2 suggests 60 to 120 s; Linux
    /// and the issue use 30 s).
    pub timeout: Duration,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            max_bytes: 4 << 20,
            max_datagrams: 1024,
            max_frags: 64,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A datagram is identified by source, destination, protocol and identification (RFC 791).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ident: u16,
}

/// One received fragment, as the caller parsed it.
#[derive(Debug, Clone, Copy)]
pub struct Fragment<'a> {
    pub key: FragKey,
    /// The fragment's IPv4 header (options included), kept from the first fragment.
    pub header: &'a [u8],
    /// Payload offset in bytes.
    pub offset: usize,
    pub more_frags: bool,
    pub payload: &'a [u8],
}

#[derive(Debug)]
struct Piece {
    offset: usize,
    data: Vec<u8>,
}

impl Piece {
    fn end(&self) -> usize {
        self.offset + self.data.len()
    }
}

#[derive(Debug)]
struct Datagram {
    /// Sorted by offset, never overlapping.
    pieces: Vec<Piece>,
    /// The first fragment's header, once it arrived.
    first_header: Option<Vec<u8>>,
    /// Payload length, known once the last fragment (MF=0) arrived.
    total: Option<usize>,
    /// Charged against the pool.
    bytes: usize,
    started: Instant,
    /// An overlap or a bound killed it: later fragments are discarded until it times out.
    dead: bool,
    /// Fragments received, dead or alive (the per-datagram bound).
    frags: usize,
}

/// A datagram that timed out, for the ICMP error: the first fragment's header and the start of
/// its payload (empty when the first fragment never arrived: no error is sent then).
#[derive(Debug)]
pub struct Expired {
    pub src: Ipv4Addr,
    pub quote: Vec<u8>,
}

/// The reassembly pool of one stack.
#[derive(Debug)]
pub struct Reassembler {
    config: ReassemblyConfig,
    datagrams: HashMap<FragKey, Datagram>,
    /// Datagrams by age, oldest first: (started, key). Entries of datagrams already gone are
    /// skipped when met and compacted away, so eviction and timeouts cost O(1) amortized.
    order: VecDeque<(Instant, FragKey)>,
    bytes: usize,
}

impl Reassembler {
    pub fn new(config: ReassemblyConfig) -> Self {
        Reassembler {
            config,
            datagrams: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Bytes the pool holds now (payloads plus overhead); never above `max_bytes`.
    pub fn bytes_held(&self) -> usize {
        self.bytes
    }

    /// Datagrams in progress (dead ones waiting out their timeout included).
    pub fn in_progress(&self) -> usize {
        self.datagrams.len()
    }

    /// When [`Reassembler::handle_timeout`] next has work.
    pub fn poll_at(&self) -> Option<Instant> {
        // The front may be stale (its datagram completed): that only wakes us early.
        self.order.front().map(|(t, _)| *t + self.config.timeout)
    }

    /// Drops the datagrams older than the timeout, counting each, and returns what an ICMP
    /// time-exceeded error needs for those whose first fragment had arrived.
    pub fn handle_timeout(&mut self, now: Instant, counters: &mut Counters) -> Vec<Expired> {
        let timeout = self.config.timeout;
        let mut out = Vec::new();
        while let Some(&(started, key)) = self.order.front() {
            if started + timeout > now {
                break;
            }
            self.order.pop_front();
            if self
                .datagrams
                .get(&key)
                .is_none_or(|d| d.started != started)
            {
                continue;
            }
            let Some(d) = self.remove(&key) else { continue };
            if d.dead {
                continue;
            }
            counters.drop(DropReason::FragTimeout);
            if let Some(header) = d.first_header {
                // RFC 792: the header and the first 64 bits of the datagram's data.
                let mut quote = header;
                if let Some(first) = d.pieces.first().filter(|p| p.offset == 0) {
                    quote.extend(first.data.iter().take(8));
                }
                out.push(Expired {
                    src: key.src,
                    quote,
                });
            }
        }
        out
    }

    fn remove(&mut self, key: &FragKey) -> Option<Datagram> {
        let d = self.datagrams.remove(key)?;
        self.bytes = self.bytes.saturating_sub(d.bytes);
        Some(d)
    }

    /// Frees a datagram's fragments but remembers it (dead) so its stragglers are discarded.
    fn kill(&mut self, key: &FragKey) {
        if let Some(d) = self.datagrams.get_mut(key) {
            self.bytes = self.bytes.saturating_sub(d.bytes);
            d.bytes = 0;
            d.pieces = Vec::new();
            d.first_header = None;
            d.dead = true;
        }
    }

    /// Evicts the oldest datagram other than `keep`; false when there is none.
    fn evict_oldest(&mut self, keep: &FragKey, counters: &mut Counters) -> bool {
        let mut kept = None;
        let mut evicted = false;
        while let Some((started, key)) = self.order.pop_front() {
            let live = self
                .datagrams
                .get(&key)
                .is_some_and(|d| d.started == started);
            if !live {
                continue;
            }
            if key == *keep {
                kept = Some((started, key));
                continue;
            }
            if let Some(d) = self.remove(&key) {
                if !d.dead {
                    counters.drop(DropReason::FragEvicted);
                }
            }
            evicted = true;
            break;
        }
        if let Some(k) = kept {
            self.order.push_front(k);
        }
        evicted
    }

    /// Takes one fragment. Returns the whole datagram (a complete IPv4 packet with a fresh
    /// header: MF and offset clear, total length and checksum set) when this fragment completes
    /// it. Every fragment not kept is counted in `counters`.
    pub fn insert(
        &mut self,
        now: Instant,
        frag: Fragment<'_>,
        counters: &mut Counters,
    ) -> Option<Vec<u8>> {
        let key = frag.key;
        let len = frag.payload.len();
        let end = frag.offset.saturating_add(len);
        let hlen = frag.header.len();
        // RFC 791: every fragment but the last carries a multiple of 8 bytes, none is empty,
        // and the whole must fit in 65535 bytes.
        let malformed = (frag.more_frags && (len == 0 || !len.is_multiple_of(8)))
            || hlen < ipv4::HEADER_LEN
            || end + hlen > MAX_DATAGRAM;
        if malformed {
            counters.drop(DropReason::FragMalformed);
            return None;
        }
        let cost = len + FRAGMENT_OVERHEAD + if frag.offset == 0 { hlen } else { 0 };
        if cost > self.config.max_bytes {
            counters.drop(DropReason::FragNoMemory);
            return None;
        }
        if !self.datagrams.contains_key(&key) {
            while self.datagrams.len() >= self.config.max_datagrams.max(1) {
                if !self.evict_oldest(&key, counters) {
                    break;
                }
            }
            self.order.push_back((now, key));
            self.datagrams.insert(
                key,
                Datagram {
                    pieces: Vec::new(),
                    first_header: None,
                    total: None,
                    bytes: 0,
                    started: now,
                    dead: false,
                    frags: 0,
                },
            );
            if self.order.len() > 2 * self.config.max_datagrams.max(1) + 16 {
                let live = &self.datagrams;
                self.order
                    .retain(|(t, k)| live.get(k).is_some_and(|d| d.started == *t));
            }
        }
        if self.datagrams.get(&key).is_some_and(|d| d.dead) {
            counters.drop(DropReason::FragOverlap);
            return None;
        }
        // Make room: the oldest datagrams give way to this one.
        while self.bytes + cost > self.config.max_bytes {
            if !self.evict_oldest(&key, counters) {
                break;
            }
        }
        if self.bytes + cost > self.config.max_bytes {
            // Only this datagram is left and it alone is too big for the pool.
            self.kill(&key);
            counters.drop(DropReason::FragNoMemory);
            return None;
        }
        let max_frags = self.config.max_frags;
        let d = self.datagrams.get_mut(&key)?;
        d.frags += 1;
        if d.frags > max_frags {
            self.kill(&key);
            counters.drop(DropReason::FragTooMany);
            return None;
        }
        // The last fragment fixes the length; a second, different one is inconsistent, and so
        // is data past it.
        if !frag.more_frags {
            if d.total.is_some_and(|t| t != end) {
                self.kill(&key);
                counters.drop(DropReason::FragOverlap);
                return None;
            }
            d.total = Some(end);
        }
        let past_end = d.total.is_some_and(|t| end > t);
        let beyond_last = !frag.more_frags && d.pieces.last().is_some_and(|p| p.end() > end);
        if past_end || beyond_last {
            self.kill(&key);
            counters.drop(DropReason::FragOverlap);
            return None;
        }
        // Where it goes: the first piece that starts at or after it.
        let at = d.pieces.partition_point(|p| p.offset < frag.offset);
        if let Some(p) = d.pieces.get(at) {
            if p.offset == frag.offset && p.data == frag.payload {
                counters.drop(DropReason::FragDuplicate);
                return None;
            }
        }
        let overlaps_next = d.pieces.get(at).is_some_and(|p| p.offset < end);
        let overlaps_prev = at
            .checked_sub(1)
            .and_then(|i| d.pieces.get(i))
            .is_some_and(|p| p.end() > frag.offset);
        if overlaps_next || overlaps_prev {
            self.kill(&key);
            counters.drop(DropReason::FragOverlap);
            return None;
        }
        d.pieces.insert(
            at,
            Piece {
                offset: frag.offset,
                data: frag.payload.to_vec(),
            },
        );
        if frag.offset == 0 {
            d.first_header = Some(frag.header.to_vec());
        }
        d.bytes += cost;
        self.bytes += cost;
        let total = d.total?;
        // Complete when the pieces cover 0..total without a hole.
        let mut covered = 0;
        for p in &d.pieces {
            if p.offset != covered {
                return None;
            }
            covered = p.end();
        }
        if covered != total {
            return None;
        }
        let d = self.remove(&key)?;
        let header = d.first_header?;
        let hlen = header.len();
        let mut packet = Vec::with_capacity(hlen + total);
        packet.extend_from_slice(&header);
        for p in &d.pieces {
            packet.extend_from_slice(&p.data);
        }
        let mut view = Ipv4Packet::new_unchecked(&mut packet[..]);
        view.set_total_len(u16::try_from(hlen + total).ok()?);
        view.set_more_frags(false);
        view.set_frag_offset(0);
        view.fill_checksum();
        Some(packet)
    }
}

impl Stack {
    /// A received fragment (the IPv4 checks passed): held, or, when it completes a datagram,
    /// the whole datagram goes through the IPv4 path again like any other packet.
    pub(super) fn receive_fragment(
        &mut self,
        now: Instant,
        meta: IpMeta,
        ip: &[u8],
        sink: &mut impl Sink,
    ) {
        if meta.broadcast {
            return self.counters.drop(DropReason::NotForUs);
        }
        let Ok(packet) = Ipv4Packet::new_checked(ip) else {
            return self.counters.drop(DropReason::Ipv4Truncated);
        };
        let Some(header) = ip.get(..packet.header_len()) else {
            return self.counters.drop(DropReason::Ipv4Truncated);
        };
        let frag = Fragment {
            key: FragKey {
                src: meta.src,
                dst: meta.dst,
                protocol: packet.protocol().into(),
                ident: packet.ident(),
            },
            header,
            offset: usize::from(packet.frag_offset()),
            more_frags: packet.more_frags(),
            payload: packet.payload(),
        };
        if let Some(whole) = self.frags.insert(now, frag, &mut self.counters) {
            self.counters.ipv4_reassembled += 1;
            self.receive_ipv4(now, &whole, sink);
        }
    }

    /// Bytes the reassembly pool holds now (within [`ReassemblyConfig::max_bytes`]).
    pub fn reassembly_bytes(&self) -> usize {
        self.frags.bytes_held()
    }

    /// Datagrams being reassembled now.
    pub fn reassembly_in_progress(&self) -> usize {
        self.frags.in_progress()
    }

    /// Times out datagrams that did not complete, with "fragment reassembly time exceeded"
    /// (RFC 792, type 11 code 1) to the source of each whose first fragment had arrived.
    pub(super) fn poll_reassembly(&mut self, now: Instant, sink: &mut impl Sink) {
        if self.frags.poll_at().is_none_or(|t| t > now) {
            return;
        }
        for e in self.frags.handle_timeout(now, &mut self.counters) {
            self.send_time_exceeded(now, sink, e);
        }
    }

    fn send_time_exceeded(&mut self, now: Instant, sink: &mut impl Sink, e: Expired) {
        if !self.take_icmp_token(now) {
            return;
        }
        let repr = Icmpv4Repr::TimeExceeded {
            code: icmpv4::time_exceeded::FRAG_EXPIRED,
            invoking: &e.quote,
        };
        let src = self.address();
        let ttl = self.config.ttl;
        self.counters.icmp_errors_sent += 1;
        let mut eg = self.egress();
        let ident = eg.next_ident();
        eg.send_ipv4(now, sink, e.src, |buf| {
            let len = repr.buffer_len();
            let Some(icmp) = buf.get_mut(ipv4::HEADER_LEN..ipv4::HEADER_LEN + len) else {
                return 0;
            };
            repr.emit(&mut Icmpv4Packet::new_unchecked(icmp));
            super::egress::emit_ipv4(buf, src, e.src, IpProtocol::Icmp, len, ident, ttl)
        });
    }
}
