//! The way in: Ethernet, ARP, IPv4 checks, and dispatch to ICMP, UDP and TCP. Every frame that
//! is not handed to a protocol is dropped for a counted reason; nothing here can panic on input.

use std::net::Ipv4Addr;

use super::counters::DropReason;
use super::icmp::IcmpError;
use super::{Sink, Stack};
use crate::time::Instant;
use crate::wire::ipv4_options::{self, Received};
use crate::wire::{
    self, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, IpProtocol, Ipv4Packet,
    Ipv4Repr,
};

/// What the IPv4 layer tells a transport about a received packet.
#[derive(Debug, Clone, Copy)]
pub(super) struct IpMeta {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    /// Sent to a broadcast address: never answered with an error or a RST.
    pub broadcast: bool,
    /// Its DSCP (the ECN bits cleared): an echo or timestamp reply carries the request's
    /// (RFC 1349 §5.1), as Linux's do.
    pub dscp: u8,
}

impl Stack {
    /// Processes one received Ethernet frame. Immediate answers (ARP replies, echo replies, RSTs,
    /// ICMP errors, TCP ACKs) go into `sink`.
    pub fn receive(&mut self, now: Instant, frame: &[u8], sink: &mut impl Sink) {
        self.counters.rx_frames += 1;
        self.counters.rx_bytes += frame.len() as u64;
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.counters.drop(DropReason::EthTruncated);
            return;
        };
        let dst = eth.dst_addr();
        if dst != self.config.mac && !dst.is_broadcast() {
            self.counters.drop(DropReason::NotForUs);
            return;
        }
        match eth.ethertype() {
            EtherType::Arp => self.receive_arp(now, eth.payload(), sink),
            EtherType::Ipv4 => self.receive_ipv4(now, eth.payload(), sink),
            _ => self.counters.drop(DropReason::UnknownEthertype),
        }
    }

    fn receive_arp(&mut self, now: Instant, payload: &[u8], sink: &mut impl Sink) {
        let repr = match ArpPacket::new_checked(payload).and_then(|p| ArpRepr::parse(&p)) {
            Ok(r) => r,
            Err(_) => {
                self.counters.drop(DropReason::ArpMalformed);
                return;
            }
        };
        let target = repr.target_protocol_addr;
        let sender = repr.source_protocol_addr;
        if self.dhcp.is_some() {
            self.dhcp_check_arp(
                now,
                sender,
                repr.target_protocol_addr,
                repr.source_hardware_addr,
                repr.operation == ArpOperation::Request,
            );
        }
        // RFC 5227 §2.4: another host claims our address.
        let me = self.address();
        if sender == me && !me.is_unspecified() && repr.source_hardware_addr != self.config.mac {
            return self.arp_conflict(now, repr.source_hardware_addr, sink);
        }
        // Without an address (DHCP not bound) nothing is for us and we answer nobody; replies
        // for a next hop we wait for (a RELEASE to the server) are still taken below.
        // Multi-address: any address the node owns is "me" (see `StackConfig::extra_addrs`).
        let for_me = !target.is_unspecified() && self.is_local(target);
        let sender_ok = !sender.is_unspecified()
            && !sender.is_broadcast()
            && !self.is_local(sender)
            && repr.source_hardware_addr.is_unicast();
        // RFC 826 merge: update an address we already know or wait for; add it when the packet
        // was meant for us.
        if sender_ok && (for_me || self.arp.knows(sender)) {
            let reply = repr.operation == ArpOperation::Reply;
            if !self
                .arp
                .accepts(sender, repr.source_hardware_addr, reply, now)
            {
                return self.counters.drop(DropReason::ArpUnsolicited);
            }
            let waiting = self.arp.insert(sender, repr.source_hardware_addr, now);
            if !waiting.is_empty() {
                self.egress()
                    .flush_pending(sink, repr.source_hardware_addr, waiting);
            }
        }
        // RFC 5227 §2.1.1: an ARP probe (sender 0.0.0.0) for an address of ours, from a host
        // about to take it, is answered to the prober as Linux answers it: it finds the
        // address in use instead of taking it too.
        let probe = repr.operation == ArpOperation::Request && sender.is_unspecified();
        if probe && for_me && repr.source_hardware_addr.is_unicast() {
            self.counters.arp_probes_answered += 1;
            return self.egress().send_arp_from(
                sink,
                ArpOperation::Reply,
                target,
                sender,
                repr.source_hardware_addr,
            );
        }
        if !for_me {
            if repr.operation == ArpOperation::Request || !sender_ok {
                self.counters.drop(DropReason::NotForUs);
            }
            return;
        }
        if repr.operation == ArpOperation::Request && sender_ok {
            self.egress().send_arp_from(
                sink,
                ArpOperation::Reply,
                target,
                sender,
                repr.source_hardware_addr,
            );
        }
    }

    pub(super) fn receive_ipv4(&mut self, now: Instant, payload: &[u8], sink: &mut impl Sink) {
        let packet = match Ipv4Packet::new_checked(payload) {
            Ok(p) => p,
            Err(wire::Error::Truncated) => return self.counters.drop(DropReason::Ipv4Truncated),
            Err(_) => return self.counters.drop(DropReason::Ipv4Malformed),
        };
        let repr = match Ipv4Repr::parse(&packet, self.config.rx_verify_checksums) {
            Ok(r) => r,
            Err(wire::Error::BadChecksum) => {
                return self.counters.drop(DropReason::Ipv4BadChecksum)
            }
            Err(wire::Error::Truncated) => return self.counters.drop(DropReason::Ipv4Truncated),
            Err(_) => return self.counters.drop(DropReason::Ipv4Malformed),
        };
        let me = self.address();
        let cidr = self.config.cidr;
        let broadcast = repr.dst_addr.is_broadcast() || repr.dst_addr == cidr.broadcast();
        // Without an address, DHCP replies unicast to the offered address are ours too.
        let unbound_dhcp = me.is_unspecified()
            && self.dhcp.is_some()
            && super::dhcp::is_dhcp_reply(repr.protocol, packet.payload());
        // Multi-address: packets to any address the node owns are for us.
        let to_me =
            (repr.dst_addr == me && !me.is_unspecified()) || self.config.in_extra(repr.dst_addr);
        if !to_me && !broadcast && !unbound_dhcp {
            return self.counters.drop(DropReason::NotForUs);
        }
        let src = repr.src_addr;
        let src_local = src == me || self.config.in_extra(src);
        if src.is_broadcast() || src.is_multicast() || src == cidr.broadcast() || src_local {
            return self.counters.drop(DropReason::Ipv4BadSource);
        }
        let meta = IpMeta {
            src,
            dst: repr.dst_addr,
            ttl: repr.ttl,
            broadcast,
            dscp: repr.dscp_ecn & !0x03,
        };
        let header = payload.get(..packet.header_len()).unwrap_or_default();
        let body = packet.payload();
        if packet.header_len() > wire::ipv4::HEADER_LEN {
            match ipv4_options::check_received(packet.options()) {
                Received::Fine => {}
                Received::SourceRouted => {
                    return self.counters.drop(DropReason::Ipv4SourceRouted);
                }
                Received::Malformed { pointer } => {
                    self.counters.drop(DropReason::Ipv4BadOptions);
                    let problem = IcmpError::ParamProblem(pointer);
                    return self.send_icmp_error(now, sink, meta, problem, header, body);
                }
            }
        }
        if repr.more_frags || repr.frag_offset != 0 {
            return self.receive_fragment(now, meta, payload, sink);
        }
        let whole = payload
            .get(..usize::from(packet.total_len()))
            .unwrap_or_default();
        let raw_took = self.deliver_raw(now, repr.protocol, whole);
        match repr.protocol {
            IpProtocol::Icmp => self.receive_icmp(now, meta, header, body, sink),
            IpProtocol::Udp => self.receive_udp(now, meta, header, body, sink),
            IpProtocol::Tcp => self.receive_tcp(now, meta, header, body, sink),
            _ if raw_took => {}
            _ => {
                self.counters.drop(DropReason::UnknownProtocol);
                // RFC 1122 §3.2.2.1: protocol unreachable.
                let unreachable =
                    IcmpError::Unreachable(wire::icmpv4::dst_unreachable::PROTO_UNREACHABLE);
                self.send_icmp_error(now, sink, meta, unreachable, header, body);
            }
        }
    }
}
