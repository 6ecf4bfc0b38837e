//! The way out: routing (the attached subnet, else the gateway), next-hop resolution through the
//! ARP cache, and framing. A packet whose next hop is unresolved is built once into the ARP
//! pending queue and sent when the reply arrives.

use crate::wire::bytes::{copy, get_mut};
use std::net::Ipv4Addr;

use super::arp_cache::{ArpCache, Enqueued};
use super::counters::{Counters, DropReason};
use super::{Sink, Stack, StackConfig, TxOffload};
use crate::time::Instant;
use crate::wire::{
    checksum, ethernet, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress,
    EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr,
};

/// The parts of a stack that sending needs, borrowed apart from the socket tables so that a
/// socket can write its segment straight into the frame.
pub(super) struct Egress<'a> {
    pub config: &'a StackConfig,
    pub arp: &'a mut ArpCache,
    pub counters: &'a mut Counters,
    pub ip_ident: &'a mut u16,
    /// Path MTUs learned per destination (datagrams are cut to them).
    pub pmtu: &'a super::path_mtu::PathMtuCache,
    /// First hops learned from redirects, per destination.
    pub redirects: &'a super::redirect::Redirects,
}

impl Egress<'_> {
    /// The largest IPv4 packet to send to `dst` whole: the link's MTU, or the smaller path MTU
    /// learned towards `dst` (RFC 1191).
    pub fn mtu_to(&self, dst: Ipv4Addr, now: Instant) -> usize {
        match self.pmtu.get(dst, now) {
            Some(path) => path.min(self.config.mtu),
            None => self.config.mtu,
        }
    }

    /// The next hop for `dst`, or None when there is no route.
    pub fn next_hop(&self, dst: Ipv4Addr, now: Instant) -> Option<Ipv4Addr> {
        let cidr = self.config.cidr;
        if dst.is_broadcast() || cidr.contains(dst) {
            Some(dst)
        } else {
            self.redirects.0.get(dst, now).or(self.config.gateway)
        }
    }

    pub fn next_ident(&mut self) -> u16 {
        *self.ip_ident = self.ip_ident.wrapping_add(1);
        *self.ip_ident
    }

    /// Sends one IPv4 packet to `dst`. `fill` gets room for a whole IPv4 packet (the MTU) and
    /// returns the packet's length, 0 for nothing to send. Returns false when the packet could
    /// not go out (no route, or the ARP queue is full).
    pub fn send_ipv4<S: Sink, F: FnOnce(&mut [u8]) -> usize>(
        &mut self,
        now: Instant,
        sink: &mut S,
        dst: Ipv4Addr,
        fill: F,
    ) -> bool {
        let mtu = self.config.mtu;
        self.send_ipv4_offload(now, sink, dst, mtu, |buf| (fill(buf), TxOffload::default()))
    }

    /// [`Egress::send_ipv4`] with room for `max_ip_len` bytes (more than the MTU only for a
    /// TSO segment) and offload metadata from `fill`, whose offsets count from the IP header.
    /// A packet held for ARP gets MTU room and goes out without offloads, so `fill` must ask
    /// for none when given only the MTU.
    pub fn send_ipv4_offload<S: Sink, F: FnOnce(&mut [u8]) -> (usize, TxOffload)>(
        &mut self,
        now: Instant,
        sink: &mut S,
        dst: Ipv4Addr,
        max_ip_len: usize,
        fill: F,
    ) -> bool {
        if self.config.cidr.address().is_unspecified() && !dst.is_broadcast() {
            self.counters.drop(DropReason::NoAddress);
            return false;
        }
        let Some(hop) = self.next_hop(dst, now) else {
            self.counters.drop(DropReason::NoRoute);
            return false;
        };
        let bcast = dst.is_broadcast() || dst == self.config.cidr.broadcast();
        let mtu = self.config.mtu;
        let src_mac = self.config.mac;
        let mac = if bcast {
            Some(EthernetAddress::BROADCAST)
        } else {
            let found = self.arp.lookup_to_send(hop, now);
            if let Some((mac, true)) = found {
                // About to expire: confirmed by a request unicast to it (a follower asks its
                // node's ARP owner instead, which confirms it).
                if self.arp.request_due(hop) {
                    self.send_arp_request_to(sink, hop, mac);
                }
            }
            found.map(|(mac, _)| mac)
        };
        match mac {
            Some(dst_mac) => {
                let counters = &mut *self.counters;
                let room = ethernet::HEADER_LEN + max_ip_len.max(mtu);
                sink.transmit_offload(room, |buf| {
                    let (head, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
                    let (n, mut off) = fill(rest);
                    if n == 0 {
                        return (0, off);
                    }
                    write_eth(head, src_mac, dst_mac, EtherType::Ipv4);
                    counters.tx_frames += 1;
                    counters.tx_bytes += (ethernet::HEADER_LEN + n) as u64;
                    let eth = ethernet::HEADER_LEN as u16;
                    off.csum = off.csum.map(|(start, at)| (start + eth, at));
                    if off.hdr_len > 0 {
                        off.hdr_len += eth;
                    }
                    (ethernet::HEADER_LEN + n, off)
                });
                true
            }
            None => {
                let mut frame = vec![0u8; ethernet::HEADER_LEN + mtu];
                let (n, off) = fill(get_mut(&mut frame, ethernet::HEADER_LEN..));
                if n == 0 {
                    return true;
                }
                frame.truncate(ethernet::HEADER_LEN + n);
                // A held frame leaves without its offload request (ARP releases plain frames):
                // a checksum left to the device is finished here.
                if let Some((start, at)) = off.csum {
                    let start = ethernet::HEADER_LEN + usize::from(start);
                    checksum::complete_partial(&mut frame, start, usize::from(at));
                }
                write_eth(
                    &mut frame,
                    src_mac,
                    EthernetAddress::BROADCAST,
                    EtherType::Ipv4,
                );
                match self.arp.enqueue(hop, frame, now) {
                    Enqueued::HeldSendRequest => {
                        if self.arp.request_due(hop) {
                            self.send_arp(
                                sink,
                                ArpOperation::Request,
                                hop,
                                EthernetAddress([0; 6]),
                            );
                        }
                        true
                    }
                    Enqueued::Held => true,
                    Enqueued::QueueFull => {
                        self.counters.drop(DropReason::ArpQueueFull);
                        false
                    }
                }
            }
        }
    }

    /// An ARP request for `target` sent to `mac` alone (RFC 1122 §2.3.2.1's unicast poll).
    pub fn send_arp_request_to<S: Sink>(
        &mut self,
        sink: &mut S,
        target: Ipv4Addr,
        mac: EthernetAddress,
    ) {
        let me = self.config.cidr.address();
        self.send_arp_frame(
            sink,
            ArpOperation::Request,
            (me, target, EthernetAddress([0; 6])),
            mac,
        );
    }

    /// Sends an ARP packet: a request for `target` (broadcast) or a reply to `target` at
    /// `target_mac`.
    pub fn send_arp<S: Sink>(
        &mut self,
        sink: &mut S,
        operation: ArpOperation,
        target: Ipv4Addr,
        target_mac: EthernetAddress,
    ) {
        let me = self.config.cidr.address();
        self.send_arp_from(sink, operation, me, target, target_mac);
    }

    /// Like `send_arp`, speaking for `source`, one of the node's addresses (multi-address: a
    /// reply for an `extra_addrs` address names that address).
    pub fn send_arp_from<S: Sink>(
        &mut self,
        sink: &mut S,
        operation: ArpOperation,
        source: Ipv4Addr,
        target: Ipv4Addr,
        target_mac: EthernetAddress,
    ) {
        let dst_mac = match operation {
            ArpOperation::Reply => target_mac,
            _ => EthernetAddress::BROADCAST,
        };
        self.send_arp_frame(sink, operation, (source, target, target_mac), dst_mac);
    }

    /// An ARP frame from us speaking for `source` about `target` (at `target_mac` in the
    /// packet), framed to `dst_mac`.
    fn send_arp_frame<S: Sink>(
        &mut self,
        sink: &mut S,
        operation: ArpOperation,
        (source, target, target_mac): (Ipv4Addr, Ipv4Addr, EthernetAddress),
        dst_mac: EthernetAddress,
    ) {
        let repr = ArpRepr {
            operation,
            source_hardware_addr: self.config.mac,
            source_protocol_addr: source,
            target_hardware_addr: target_mac,
            target_protocol_addr: target,
        };
        let src_mac = self.config.mac;
        if operation == ArpOperation::Request {
            self.counters.arp_requests_sent += 1;
        }
        let counters = &mut *self.counters;
        // 60 bytes: the Ethernet minimum without FCS; the kernel does not need the padding but
        // some peers do.
        sink.transmit(60, |buf| {
            buf.fill(0);
            let (head, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
            write_eth(head, src_mac, dst_mac, EtherType::Arp);
            repr.emit(&mut ArpPacket::new_unchecked(get_mut(
                rest,
                ..repr.buffer_len(),
            )));
            counters.tx_frames += 1;
            counters.tx_bytes += 60;
            60
        });
    }

    /// Writes frames that waited for ARP, now that `mac` is known.
    pub fn flush_pending<S: Sink>(
        &mut self,
        sink: &mut S,
        mac: EthernetAddress,
        frames: Vec<Vec<u8>>,
    ) {
        for mut frame in frames {
            if let Some(dst) = frame.get_mut(0..6) {
                dst.copy_from_slice(&mac.0);
            }
            let len = frame.len();
            self.counters.tx_frames += 1;
            self.counters.tx_bytes += len as u64;
            sink.transmit(len, |buf| {
                copy(get_mut(buf, ..len), &frame);
                len
            });
        }
    }
}

fn write_eth(head: &mut [u8], src: EthernetAddress, dst: EthernetAddress, ethertype: EtherType) {
    let repr = EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        ethertype,
    };
    repr.emit(&mut EthernetFrame::new_unchecked(head));
}

/// Writes an IPv4 header (no options) at the front of `buf` for a payload of `payload_len`
/// bytes already in place after it; returns the packet length.
pub(super) fn emit_ipv4(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: IpProtocol,
    payload_len: usize,
    ident: u16,
    ttl: u8,
) -> usize {
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol,
        payload_len,
        ttl,
        ident,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: 0,
    };
    let len = repr.buffer_len() + payload_len;
    repr.emit(&mut Ipv4Packet::new_unchecked(get_mut(buf, ..len)));
    len
}

impl Stack {
    pub(super) fn egress(&mut self) -> Egress<'_> {
        Egress {
            config: &self.config,
            arp: &mut self.arp,
            counters: &mut self.counters,
            ip_ident: &mut self.ip_ident,
            pmtu: &self.pmtu,
            redirects: &self.redirects,
        }
    }

    pub(super) fn send_arp_request_for<S: Sink>(&mut self, target: Ipv4Addr, sink: &mut S) {
        self.egress()
            .send_arp(sink, ArpOperation::Request, target, EthernetAddress([0; 6]));
    }

    pub(super) fn poll_arp<S: Sink>(&mut self, now: Instant, sink: &mut S) {
        if self.arp.poll_at().is_none_or(|t| t > now) {
            return;
        }
        let timeouts = self.arp.handle_timeout(now);
        for _ in 0..timeouts.dropped {
            self.counters.drop(DropReason::ArpUnresolved);
        }
        for addr in timeouts.resend {
            if self.arp.request_due(addr) {
                self.send_arp_request_for(addr, sink);
            }
        }
    }
}
