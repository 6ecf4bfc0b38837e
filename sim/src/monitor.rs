//! The invariant "no segment without a cause", checked on every frame a monitored node sends.
//!
//! The [`crate::Network`] hands the monitor everything a node emits, labelled with its cause:
//! - [`Cause::Frame`]: one frame delivered to the node (the network polls the node right after
//!   each delivery, so what that poll sends is that frame's doing);
//! - [`Cause::Poll`]: a poll with no frame: timers due at that instant, or what the application
//!   did since the last step (a send, a read, a close).
//!
//! Per cause and per connection (the 4-tuple seen from the sending node), two bounds hold:
//! - **Control segments** (no payload, no SYN, no FIN: pure ACKs, window updates, duplicate
//!   ACKs, zero-window and keep-alive probes without data, RSTs): at most [`MAX_CONTROL`] = 1.
//!   A correct stack never needs more: one frame in is at most one acknowledgment out (an ACK
//!   covers everything received so far, and a window update rides on it), and a timer instant is
//!   one delayed ACK, one probe or one RST. tapir meets 1 in every scenario of this crate.
//! - **Data segments** (payload, SYN or FIN) are paid for from a per-connection *credit* in
//!   bytes. Every frame from the peer that opens room adds `2 × opened` to it, where `opened` is
//!   the larger of (bytes newly acknowledged + bytes newly SACKed) and (how far the peer's
//!   window right edge moved), both in sequence space with the peer's window scale applied.
//!   Twice, because in slow start an ACK of `n` bytes both frees `n` bytes and grows the
//!   congestion window by `n` (RFC 5681 §3.1 with RFC 3465's byte counting): a stretch ACK of
//!   many segments lets a sender send twice that many, and no more. A data segment whose payload
//!   the credit covers is paid for; any other (a retransmission after a timeout, a tail-loss
//!   probe, a SYN or FIN, data beyond the credit) is *unpaid*, and each cause may send at most
//!   [`MAX_UNPAID`] = 1 unpaid data segment per connection ([`PEER_MAX_UNPAID`] = 2 for a
//!   smoltcp node). The credit is capped at twice the
//!   largest window the peer offered plus [`CREDIT_SLACK_SEGMENTS`] segments, so saved-up
//!   credit cannot hide a storm for long: a sender that resends its window at every duplicate
//!   ACK, or sends segments nobody asked for, runs dry within a window and then fails.
//!
//! What the bounds catch: an ACK storm (a connection that answers every poll, the window-update
//! bug of issue 13, 64 pure ACKs in one poll), an ACK war between two stacks (each side's reply
//! is bounded, and the idle-silence check of [`crate::Network::expect_idle_silence`] sees the
//! war), a retransmission storm. What they let through: slow start after a stretch ACK,
//! recovery driven by SACK, an RTO retransmission, window updates.
//!
//! A violation is a [`crate::SimError::Invariant`] naming the seed, the node, the connection, the
//! cause, every segment the cause drew, and the replay command.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use protocols::time::Instant;
use protocols::wire::{
    EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr,
};

use crate::network::NodeId;

/// Control segments (no payload, SYN or FIN) one cause may draw per connection.
pub const MAX_CONTROL: usize = 1;

/// Data segments beyond the credit that one cause may draw per connection from a tapir node:
/// one retransmission after a timeout, one tail-loss probe (RFC 8985 §7), one SYN or FIN. tapir
/// needs 1 in every scenario of this crate (thousands of seeds); a second one in the same
/// cause would be a retransmission burst nothing asked for.
pub const MAX_UNPAID: usize = 1;

/// The same for a [`crate::Peer`] node. smoltcp 0.12 needs 2: on a duplicate ACK after its fast
/// retransmit it goes back to the first unacknowledged byte and sends two segments (go-back-N),
/// which is its design, not a storm.
pub const PEER_MAX_UNPAID: usize = 2;

/// Segments of slack on top of twice the peer's largest window in the credit's cap.
pub const CREDIT_SLACK_SEGMENTS: u64 = 4;

/// Segments per connection that one ARP frame may release: what tapir's ARP queue holds per
/// unresolved address (`ArpConfig::pending_per_addr`, 128).
pub const MAX_ARP_RELEASE: usize = 128;

/// What made a node send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// One frame delivered to the node, summarised.
    Frame { at: Instant, frame: String },
    /// A poll with no frame: timers due, application calls since the last step.
    Poll { at: Instant },
    /// An ARP frame delivered to the node: it releases what waited for the address to resolve.
    /// Those segments were made earlier, each by a cause of its own that the monitor could not
    /// see (they sat in the stack's ARP queue), so the bound is the queue's:
    /// [`MAX_ARP_RELEASE`] segments per connection.
    Arp { at: Instant },
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Frame { at, frame } => write!(f, "frame delivered at {at}: {frame}"),
            Cause::Poll { at } => write!(f, "poll at {at} (timers, application calls)"),
            Cause::Arp { at } => write!(f, "ARP frame delivered at {at} (releases queued frames)"),
        }
    }
}

/// A connection as the sending node sees it: (local address, local port, remote address,
/// remote port).
pub type FourTuple = (Ipv4Addr, u16, Ipv4Addr, u16);

/// One broken bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub node: NodeId,
    pub conn: FourTuple,
    pub cause: Cause,
    /// Which bound, in words.
    pub rule: String,
    /// Every TCP segment of this connection that the cause drew, one line each.
    pub segments: Vec<String>,
}

/// A TCP segment parsed out of an Ethernet frame, with its addresses.
pub(crate) struct Segment {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub repr: TcpRepr,
}

/// Parses a frame as an IPv4 TCP segment with good checksums; None for anything else.
pub(crate) fn parse_tcp(frame: &[u8]) -> Option<Segment> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let ipr = Ipv4Repr::parse(&ip, true).ok()?;
    if ipr.protocol != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    let repr = TcpRepr::parse(&tcp, ipr.src_addr, ipr.dst_addr, true).ok()?;
    Some(Segment {
        src: ipr.src_addr,
        dst: ipr.dst_addr,
        repr,
    })
}

/// What the monitor knows of one connection of one node.
#[derive(Debug, Default)]
struct Track {
    /// The node's own SYN was seen, with this window-scale option.
    local_syn: Option<Option<u8>>,
    /// The peer's SYN was seen, with this window-scale option.
    remote_syn: Option<Option<u8>>,
    /// Highest acknowledgment the peer sent.
    peer_ack: Option<u32>,
    /// Highest right window edge the peer offered.
    peer_edge: Option<u32>,
    /// SACKed ranges above `peer_ack`, disjoint.
    sacked: Vec<(u32, u32)>,
    credit: u64,
    max_window: u64,
    /// The peer's MSS (536 without the option, RFC 9293 §3.7.1).
    mss: u64,
}

fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl Track {
    /// The shift that applies to the peer's window fields (RFC 7323 §2.3: only when both SYNs
    /// carried the option).
    fn peer_shift(&self) -> u8 {
        match (self.local_syn, self.remote_syn) {
            (Some(Some(_)), Some(Some(s))) => s.min(14),
            _ => 0,
        }
    }

    fn cap(&self) -> u64 {
        2 * self.max_window + CREDIT_SLACK_SEGMENTS * self.mss.max(536)
    }

    /// A segment from the peer arrived: the room it opened goes into the credit.
    fn inbound(&mut self, t: &TcpRepr) {
        if t.flags.syn() {
            self.remote_syn = Some(t.window_scale);
            self.mss = u64::from(t.max_seg_size.unwrap_or(536));
        }
        if self.mss == 0 {
            self.mss = 536;
        }
        if t.flags.rst() {
            return;
        }
        let Some(ack) = t.ack_number.map(|a| a.0) else {
            return;
        };
        let shift = if t.flags.syn() { 0 } else { self.peer_shift() };
        let window = u64::from(t.window_len) << shift;
        self.max_window = self.max_window.max(window);
        let edge = ack.wrapping_add(window as u32);
        let mut acked = 0u64;
        match self.peer_ack {
            Some(old) if after(ack, old) => {
                acked = u64::from(ack.wrapping_sub(old));
                self.peer_ack = Some(ack);
            }
            Some(_) => {}
            None => self.peer_ack = Some(ack),
        }
        // Newly delivered (acknowledged or SACKed): bytes between the old and the new ACK that
        // were SACKed before count once.
        let sacked_before = self.sacked_bytes();
        self.sacked.retain(|&(_, r)| after(r, ack));
        for range in self.sacked.iter_mut() {
            if after(ack, range.0) {
                range.0 = ack;
            }
        }
        for (l, r) in t.sack_ranges.iter().flatten() {
            self.add_sack(l.0, r.0, ack);
        }
        let delivered = (acked + self.sacked_bytes()).saturating_sub(sacked_before);
        let edge_moved = match self.peer_edge {
            Some(old) if after(edge, old) => u64::from(edge.wrapping_sub(old)),
            Some(_) => 0,
            None => window,
        };
        if self.peer_edge.is_none_or(|old| after(edge, old)) {
            self.peer_edge = Some(edge);
        }
        let opened = delivered.max(edge_moved);
        self.credit = (self.credit + 2 * opened).min(self.cap());
    }

    fn sacked_bytes(&self) -> u64 {
        self.sacked
            .iter()
            .map(|&(l, r)| u64::from(r.wrapping_sub(l)))
            .sum()
    }

    fn add_sack(&mut self, l: u32, r: u32, ack: u32) {
        let l = if after(ack, l) { ack } else { l };
        if !after(r, l) {
            return;
        }
        let (mut l, mut r) = (l, r);
        self.sacked.retain(|&(a, b)| {
            // Overlapping or touching: merge.
            if !after(a, r) && !after(l, b) {
                if after(l, a) {
                    l = a;
                }
                if after(b, r) {
                    r = b;
                }
                false
            } else {
                true
            }
        });
        self.sacked.push((l, r));
    }
}

/// The monitor of one network: a [`Track`] per (node, connection).
#[derive(Debug, Default)]
pub struct Monitor {
    tracks: HashMap<(NodeId, FourTuple), Track>,
}

impl Monitor {
    /// `frame` is about to be delivered to `node`: credits what it opens for the node's sending.
    pub fn inbound(&mut self, node: NodeId, frame: &[u8]) {
        let Some(s) = parse_tcp(frame) else { return };
        let key = (s.dst, s.repr.dst_port, s.src, s.repr.src_port);
        self.inbound_segment(node, key, &s.repr);
    }

    /// [`Monitor::inbound`] for a parsed segment; `key` as the receiving node sees it.
    pub fn inbound_segment(&mut self, node: NodeId, key: FourTuple, t: &TcpRepr) {
        self.tracks.entry((node, key)).or_default().inbound(t);
    }

    /// `node` sent `frames` because of `cause`: checks the bounds, charges the credit.
    pub fn outbound(
        &mut self,
        node: NodeId,
        cause: &Cause,
        frames: &[Vec<u8>],
        max_unpaid: usize,
    ) -> Result<(), Violation> {
        let segments: Vec<(FourTuple, TcpRepr, String)> = frames
            .iter()
            .filter_map(|f| {
                let s = parse_tcp(f)?;
                let key = (s.src, s.repr.src_port, s.dst, s.repr.dst_port);
                Some((key, s.repr, crate::trace::describe_frame(f)))
            })
            .collect();
        self.outbound_segments(node, cause, &segments, max_unpaid)
    }

    /// [`Monitor::outbound`] for parsed segments: (connection as the sender sees it, segment,
    /// a line describing it).
    pub fn outbound_segments(
        &mut self,
        node: NodeId,
        cause: &Cause,
        segments: &[(FourTuple, TcpRepr, String)],
        max_unpaid: usize,
    ) -> Result<(), Violation> {
        // Per connection: (control, unpaid, lines), in order of first segment.
        let mut tally: Vec<(FourTuple, usize, usize, Vec<String>)> = Vec::new();
        let mut broken: Option<(FourTuple, String)> = None;
        for (key, t, line) in segments {
            let key = *key;
            let track = self.tracks.entry((node, key)).or_default();
            if t.flags.syn() {
                track.local_syn = Some(t.window_scale);
            }
            let i = match tally.iter().position(|e| e.0 == key) {
                Some(i) => i,
                None => {
                    tally.push((key, 0, 0, Vec::new()));
                    tally.len() - 1
                }
            };
            let entry = &mut tally[i];
            entry.3.push(line.clone());
            let len = t.payload_len as u64;
            if matches!(cause, Cause::Arp { .. }) {
                track.credit = track.credit.saturating_sub(len);
                entry.1 += 1;
                if entry.1 > MAX_ARP_RELEASE && broken.is_none() {
                    broken = Some((
                        key,
                        format!("more than {MAX_ARP_RELEASE} segments released by one ARP frame"),
                    ));
                }
                continue;
            }
            if len == 0 && !t.flags.syn() && !t.flags.fin() {
                entry.1 += 1;
                if entry.1 > MAX_CONTROL && broken.is_none() {
                    broken = Some((
                        key,
                        format!("more than {MAX_CONTROL} control segment(s) for one cause"),
                    ));
                }
                continue;
            }
            if len > 0 && track.credit >= len {
                track.credit -= len;
                continue;
            }
            track.credit = track.credit.saturating_sub(len);
            entry.2 += 1;
            if entry.2 > max_unpaid && broken.is_none() {
                broken = Some((
                    key,
                    format!(
                        "more than {max_unpaid} data segment(s) beyond what the peer opened \
                         (credit left {} bytes)",
                        track.credit
                    ),
                ));
            }
        }
        let Some((key, rule)) = broken else {
            return Ok(());
        };
        let segments = tally
            .into_iter()
            .find(|e| e.0 == key)
            .map(|e| e.3)
            .unwrap_or_default();
        Err(Violation {
            node,
            conn: key,
            cause: cause.clone(),
            rule,
            segments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocols::wire::{SeqNumber, TcpFlags};

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    /// Node 0's connection as it sees it, and as its peer's segments address it.
    const OUT: FourTuple = (A, 1000, B, 80);
    const MSS: usize = 1000;

    fn seg(flags: TcpFlags, seq: u32, ack: Option<u32>, win: u16, len: usize) -> TcpRepr {
        TcpRepr {
            src_port: 1000,
            dst_port: 80,
            flags,
            seq_number: SeqNumber(seq),
            ack_number: ack.map(SeqNumber),
            window_len: win,
            urgent_pointer: 0,
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: Default::default(),
            timestamp: None,
            payload_len: len,
        }
    }

    fn ack_flags() -> TcpFlags {
        TcpFlags(TcpFlags::ACK.0)
    }

    /// Node 0 connected (SYN out, SYN-ACK in with MSS 1000 and a 64000-byte window).
    fn connected() -> Monitor {
        let mut m = Monitor::default();
        let poll = Cause::Poll { at: Instant::ZERO };
        let syn = seg(TcpFlags::SYN, 0, None, 65535, 0);
        m.outbound_segments(0, &poll, &[(OUT, syn, "syn".into())], MAX_UNPAID)
            .unwrap();
        let mut synack = seg(
            TcpFlags(TcpFlags::SYN.0 | TcpFlags::ACK.0),
            0,
            Some(1),
            64000,
            0,
        );
        synack.max_seg_size = Some(MSS as u16);
        m.inbound_segment(0, OUT, &synack);
        m
    }

    fn frame_cause() -> Cause {
        Cause::Frame {
            at: Instant::ZERO,
            frame: "test".into(),
        }
    }

    fn data(seq: u32, n: usize) -> Vec<(FourTuple, TcpRepr, String)> {
        (0..n)
            .map(|i| {
                let s = seg(ack_flags(), seq + (i * MSS) as u32, Some(1), 65535, MSS);
                (OUT, s, format!("data {i}"))
            })
            .collect()
    }

    #[test]
    fn one_pure_ack_per_cause_passes_two_fail() {
        let mut m = connected();
        let ack = (OUT, seg(ack_flags(), 1, Some(1), 65535, 0), "ack".into());
        m.outbound_segments(0, &frame_cause(), std::slice::from_ref(&ack), MAX_UNPAID)
            .unwrap();
        let v = m
            .outbound_segments(0, &frame_cause(), &[ack.clone(), ack], MAX_UNPAID)
            .unwrap_err();
        assert_eq!(v.conn, OUT);
        assert_eq!(v.segments.len(), 2);
        assert!(v.rule.contains("control"), "{}", v.rule);
    }

    #[test]
    fn slow_start_after_a_stretch_ack_passes_a_resent_window_fails() {
        let mut m = connected();
        // The initial window, paid from the credit the SYN-ACK's window opened.
        m.outbound_segments(0, &frame_cause(), &data(1, 10), MAX_UNPAID)
            .unwrap();
        // One stretch ACK for all ten: slow start may send twenty.
        let ack = seg(ack_flags(), 1, Some(1 + 10 * MSS as u32), 64000, 0);
        m.inbound_segment(0, OUT, &ack);
        m.outbound_segments(
            0,
            &frame_cause(),
            &data(1 + 10 * MSS as u32, 20),
            MAX_UNPAID,
        )
        .unwrap();
        // A duplicate ACK opens nothing: resending the whole flight for it drains the credit
        // left and then breaks the bound.
        let mut failed = None;
        for _ in 0..10 {
            m.inbound_segment(0, OUT, &ack);
            if let Err(v) = m.outbound_segments(
                0,
                &frame_cause(),
                &data(1 + 10 * MSS as u32, 20),
                MAX_UNPAID,
            ) {
                failed = Some(v);
                break;
            }
        }
        let v = failed.expect("a retransmission storm passed the monitor");
        assert!(v.rule.contains("beyond what the peer opened"), "{}", v.rule);
    }

    #[test]
    fn an_rto_retransmission_and_a_fin_need_no_credit() {
        // The whole credit spent first: what follows is unpaid.
        let mut m = connected();
        m.outbound_segments(0, &frame_cause(), &data(1, 128), MAX_UNPAID)
            .unwrap();
        let timer = Cause::Poll { at: Instant::ZERO };
        for _ in 0..5 {
            m.outbound_segments(0, &timer, &data(1, 1), MAX_UNPAID)
                .unwrap();
        }
        let fin = seg(
            TcpFlags(TcpFlags::FIN.0 | TcpFlags::ACK.0),
            1,
            Some(1),
            65535,
            0,
        );
        let fin = (OUT, fin, "fin".to_string());
        m.outbound_segments(0, &timer, std::slice::from_ref(&fin), MAX_UNPAID)
            .unwrap();
        // A retransmission and a FIN of their own in one cause: one too many for tapir, within
        // the peer's bound.
        let mut two = data(1, 1);
        two.push(fin);
        assert!(m.outbound_segments(0, &timer, &two, MAX_UNPAID).is_err());
        m.outbound_segments(0, &timer, &two, PEER_MAX_UNPAID)
            .unwrap();
        two.extend(data(1, 1));
        assert!(m
            .outbound_segments(0, &timer, &two, PEER_MAX_UNPAID)
            .is_err());
    }

    #[test]
    fn sacked_bytes_open_room_once() {
        let mut m = connected();
        m.outbound_segments(0, &frame_cause(), &data(1, 64), MAX_UNPAID)
            .unwrap();
        let mut t = seg(ack_flags(), 1, Some(1), 64000, 0);
        t.sack_ranges[0] = Some((SeqNumber(1 + MSS as u32), SeqNumber(1 + 3 * MSS as u32)));
        let track = |m: &Monitor| m.tracks.get(&(0, OUT)).map(|t| t.credit).unwrap();
        let before = track(&m);
        m.inbound_segment(0, OUT, &t);
        assert_eq!(track(&m) - before, 2 * 2 * MSS as u64);
        // The same SACK block again opens nothing; the ACK that covers it counts only the one
        // segment that was not SACKed.
        let mid = track(&m);
        m.inbound_segment(0, OUT, &t);
        assert_eq!(track(&m), mid);
        // (The window shrinks by as much, so the right edge stays put and only delivery counts.)
        let win = (64000 - 3 * MSS) as u16;
        m.inbound_segment(
            0,
            OUT,
            &seg(ack_flags(), 1, Some(1 + 3 * MSS as u32), win, 0),
        );
        assert_eq!(track(&m) - mid, 2 * MSS as u64);
    }
}
