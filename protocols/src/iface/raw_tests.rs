//! Raw sockets: copies of received packets, sends with and without a caller-built header.

use std::net::Ipv4Addr;

use super::*;
use crate::iface::{DropReason, StackConfig};
use crate::rand::Rng;
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    Icmpv4Packet, Icmpv4Repr, Ipv4Repr,
};

const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn t(s: u64) -> Instant {
    Instant::from_secs(s)
}

/// Node B with A in its ARP cache.
fn node_b() -> Stack {
    let mut b = Stack::new(
        StackConfig::new(MAC_B, "10.0.0.2/24".parse().unwrap()),
        Rng::new(1),
    );
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: MAC_A,
        source_protocol_addr: IP_A,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: IP_B,
    };
    let mut buf = vec![0u8; 14 + repr.buffer_len()];
    EthernetRepr {
        src_addr: MAC_A,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EtherType::Arp,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[14..]));
    b.receive(t(1), &buf, &mut Vec::new());
    b
}

fn ip_frame(protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 14 + 20 + payload.len()];
    EthernetRepr {
        src_addr: MAC_A,
        dst_addr: MAC_B,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    buf[34..].copy_from_slice(payload);
    Ipv4Repr {
        src_addr: IP_A,
        dst_addr: IP_B,
        protocol,
        payload_len: payload.len(),
        ttl: 64,
        ident: 1,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..]));
    buf
}

fn echo(request: bool) -> Vec<u8> {
    let data = b"raw!";
    let repr = if request {
        Icmpv4Repr::EchoRequest {
            ident: 7,
            seq_no: 1,
            data,
        }
    } else {
        Icmpv4Repr::EchoReply {
            ident: 7,
            seq_no: 1,
            data,
        }
    };
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut b[..]));
    b
}

#[test]
fn a_raw_icmp_socket_gets_a_copy_and_the_stack_still_answers() {
    let mut b = node_b();
    let h = b.raw().bind(IpProtocol::Icmp);
    let mut out = Vec::new();
    let frame = ip_frame(IpProtocol::Icmp, &echo(true));
    b.receive(t(2), &frame, &mut out);
    assert_eq!(out.len(), 1, "the echo request is still answered");
    let p = b.raw().recv(h).unwrap().expect("a copy");
    assert_eq!(p.packet, &frame[14..], "the whole IPv4 packet");
    assert_eq!(p.src(), IP_A);
    assert_eq!(p.payload(), &echo(true)[..]);
    // An echo reply nobody's echo socket waits for still reaches the raw socket.
    b.receive(t(2), &ip_frame(IpProtocol::Icmp, &echo(false)), &mut out);
    assert!(b.raw().recv(h).unwrap().is_some());
    // Other protocols do not.
    b.receive(t(2), &ip_frame(IpProtocol::Udp, &[0; 8]), &mut out);
    assert_eq!(b.raw().recv(h).unwrap(), None);
    assert_eq!(b.counters().raw_delivered, 2);
}

#[test]
fn an_unknown_protocol_with_a_raw_socket_draws_no_unreachable() {
    let mut b = node_b();
    let mut out = Vec::new();
    b.receive(
        t(2),
        &ip_frame(IpProtocol::Unknown(253), b"hello"),
        &mut out,
    );
    assert_eq!(out.len(), 1, "protocol unreachable without a raw socket");
    let h = b.raw().bind(IpProtocol::Unknown(253));
    let mut out = Vec::new();
    b.receive(
        t(2),
        &ip_frame(IpProtocol::Unknown(253), b"hello"),
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(b.raw().recv(h).unwrap().unwrap().payload(), b"hello");
    assert_eq!(b.counters().drops(DropReason::UnknownProtocol), 1);
}

#[test]
fn raw_send_builds_the_header() {
    let mut b = node_b();
    let h = b.raw().bind(IpProtocol::Unknown(253));
    b.raw().send(h, IP_A, Some(9), b"payload").unwrap();
    let mut out = Vec::new();
    b.poll(t(2), &mut out);
    assert_eq!(out.len(), 1);
    let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
    assert_eq!(eth.dst_addr(), MAC_A);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let repr = Ipv4Repr::parse(&ip, true).unwrap();
    assert_eq!((repr.src_addr, repr.dst_addr), (IP_B, IP_A));
    assert_eq!(repr.protocol, IpProtocol::Unknown(253));
    assert_eq!(repr.ttl, 9);
    assert_eq!(ip.payload(), b"payload");
}

/// A caller-built echo request from `src` to A.
fn built(src: Ipv4Addr, ident: u16) -> Vec<u8> {
    let icmp = echo(true);
    let mut p = vec![0u8; 20 + icmp.len()];
    Ipv4Repr {
        src_addr: src,
        dst_addr: IP_A,
        protocol: IpProtocol::Icmp,
        payload_len: icmp.len(),
        ttl: 33,
        ident,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut p[..]));
    p[20..].copy_from_slice(&icmp);
    // A wrong checksum: the stack recomputes it.
    p[10] ^= 0xff;
    p
}

#[test]
fn a_caller_built_header_is_checked_completed_and_sent() {
    let mut b = node_b();
    let h = b.raw().bind(IpProtocol::Icmp);
    b.raw()
        .send_packet(h, &built(Ipv4Addr::UNSPECIFIED, 0))
        .unwrap();
    b.raw().send_packet(h, &built(IP_B, 77)).unwrap();
    let mut out = Vec::new();
    b.poll(t(2), &mut out);
    assert_eq!(out.len(), 2);
    for (f, want_ident) in out.iter().zip([None, Some(77)]) {
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let repr = Ipv4Repr::parse(&ip, true).expect("checksum filled");
        assert_eq!(repr.src_addr, IP_B, "0.0.0.0 filled with ours");
        assert_eq!(repr.ttl, 33, "the caller's TTL kept");
        assert_ne!(repr.ident, 0);
        if let Some(i) = want_ident {
            assert_eq!(repr.ident, i);
        }
        assert_eq!(ip.payload(), &echo(true)[..]);
    }
}

#[test]
fn bad_caller_built_headers_are_refused() {
    let mut b = node_b();
    let h = b.raw().bind(IpProtocol::Icmp);
    let good = built(IP_B, 1);
    assert_eq!(
        b.raw()
            .send_packet(h, &built(Ipv4Addr::new(10, 0, 0, 99), 1)),
        Err(RawError::NotOurSource(Ipv4Addr::new(10, 0, 0, 99)))
    );
    let mut v6 = good.clone();
    v6[0] = 0x65;
    assert!(matches!(
        b.raw().send_packet(h, &v6),
        Err(RawError::BadHeader(_))
    ));
    let mut ihl = good.clone();
    ihl[0] = 0x44;
    assert!(matches!(
        b.raw().send_packet(h, &ihl),
        Err(RawError::BadHeader(_))
    ));
    let mut long = good.clone();
    long[3] += 1;
    assert!(matches!(
        b.raw().send_packet(h, &long),
        Err(RawError::BadHeader(_))
    ));
    assert!(matches!(
        b.raw().send_packet(h, &good[..12]),
        Err(RawError::BadHeader(_))
    ));
    assert_eq!(
        b.raw().send_packet(h, &vec![0x45; 1600]),
        Err(RawError::TooBig)
    );
    b.raw().close(h);
    assert_eq!(b.raw().send_packet(h, &good), Err(RawError::BadHandle));
    let mut out = Vec::new();
    b.poll(t(2), &mut out);
    assert!(out.is_empty());
}
