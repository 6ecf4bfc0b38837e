//! Node-level tests: frames in, frames out, over fixed scenarios; and two stacks joined by an
//! in-memory link running whole TCP connections in virtual time.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::*;
use crate::tcp::State;
use crate::time::{Duration, Instant};
use crate::wire::{
    icmpv4, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame,
    EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr, TcpFlags, TcpPacket,
    TcpRepr, TxChecksum, UdpPacket, UdpRepr,
};

const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn stack(mac: EthernetAddress, ip: Ipv4Addr, seed: u64) -> Stack {
    let cidr = Ipv4Cidr::new(ip, 24).unwrap();
    Stack::new(StackConfig::new(mac, cidr), Rng::new(seed))
}

/// A node B under test, with A (the "kernel") resolved in its ARP cache.
fn node_b() -> Stack {
    let mut b = stack(MAC_B, IP_B, 2);
    let mut out = Vec::new();
    b.receive(
        Instant::from_secs(1),
        &arp_frame(ArpOperation::Request, IP_B),
        &mut out,
    );
    b
}

fn arp_frame(op: ArpOperation, target: Ipv4Addr) -> Vec<u8> {
    let repr = ArpRepr {
        operation: op,
        source_hardware_addr: MAC_A,
        source_protocol_addr: IP_A,
        target_hardware_addr: if op == ArpOperation::Reply {
            MAC_B
        } else {
            EthernetAddress([0; 6])
        },
        target_protocol_addr: target,
    };
    let mut buf = vec![0u8; 14 + repr.buffer_len()];
    EthernetRepr {
        src_addr: MAC_A,
        dst_addr: if op == ArpOperation::Reply {
            MAC_B
        } else {
            EthernetAddress::BROADCAST
        },
        ethertype: EtherType::Arp,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[14..]));
    buf
}

/// An IPv4 frame from A to B carrying `payload` built by `fill` (given the transport region).
fn ip_frame(protocol: IpProtocol, payload_len: usize, fill: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut buf = vec![0u8; 14 + 20 + payload_len];
    EthernetRepr {
        src_addr: MAC_A,
        dst_addr: MAC_B,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    fill(&mut buf[34..]);
    let ip = Ipv4Repr {
        src_addr: IP_A,
        dst_addr: IP_B,
        protocol,
        payload_len,
        ttl: 64,
        ident: 1,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: 0,
    };
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..]));
    buf
}

fn udp_frame(dst_port: u16, data: &[u8]) -> Vec<u8> {
    ip_frame(IpProtocol::Udp, 8 + data.len(), |seg| {
        seg[8..].copy_from_slice(data);
        UdpRepr {
            src_port: 40000,
            dst_port,
        }
        .emit(
            &mut UdpPacket::new_unchecked(seg),
            IP_A,
            IP_B,
            data.len(),
            TxChecksum::Full,
        );
    })
}

fn tcp_frame(repr: &TcpRepr, payload: &[u8]) -> Vec<u8> {
    let repr = TcpRepr {
        payload_len: payload.len(),
        ..*repr
    };
    let hl = repr.header_len();
    ip_frame(IpProtocol::Tcp, hl + payload.len(), |seg| {
        seg[hl..].copy_from_slice(payload);
        repr.emit(
            &mut TcpPacket::new_unchecked(seg),
            IP_A,
            IP_B,
            TxChecksum::Full,
        );
    })
}

fn syn(dst_port: u16) -> TcpRepr {
    TcpRepr {
        src_port: 40000,
        dst_port,
        flags: TcpFlags::SYN,
        seq_number: crate::wire::SeqNumber(1000),
        window_len: 64240,
        max_seg_size: Some(1460),
        payload_len: 0,
        ..TcpRepr::default()
    }
}

/// Parses a frame B sent into (ethernet, ip payload-bearing repr, ip payload bytes).
fn parse_ip(frame: &[u8]) -> (EthernetRepr, Ipv4Repr, Vec<u8>) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let eth_repr = EthernetRepr::parse(&eth).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let ip_repr = Ipv4Repr::parse(&ip, true).unwrap();
    (eth_repr, ip_repr, ip.payload().to_vec())
}

fn parse_tcp(frame: &[u8]) -> TcpRepr {
    let (_, ip, body) = parse_ip(frame);
    assert_eq!(ip.protocol, IpProtocol::Tcp);
    TcpRepr::parse(
        &TcpPacket::new_checked(&body[..]).unwrap(),
        ip.src_addr,
        ip.dst_addr,
        true,
    )
    .unwrap()
}

#[test]
fn start_sends_a_gratuitous_arp() {
    let mut b = stack(MAC_B, IP_B, 1);
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.start(Instant::from_secs(1), &mut out);
    assert_eq!(out.len(), 1);
    let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
    assert_eq!(eth.dst_addr(), EthernetAddress::BROADCAST);
    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
    assert_eq!(arp.operation, ArpOperation::Request);
    assert_eq!(
        (arp.source_protocol_addr, arp.target_protocol_addr),
        (IP_B, IP_B)
    );
    assert_eq!(arp.source_hardware_addr, MAC_B);
}

/// The frames `b` sends in the poll after one UDP datagram to `dst` (ARP first, if any).
fn frames_for_one_datagram(b: &mut Stack, dst: Ipv4Addr, now: Instant) -> Vec<Vec<u8>> {
    let h = b.udp().bind(0).unwrap();
    b.udp().send_to(h, SocketAddrV4::new(dst, 9), b"x").unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.poll(now, &mut out);
    b.udp().close(h);
    out
}

/// `frame` is B's ARP reply to `mac` at `ip`, unicast to it.
fn assert_arp_reply_from_b(frame: &[u8], mac: EthernetAddress, ip: Ipv4Addr) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    assert_eq!(eth.dst_addr(), mac);
    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
    assert_eq!(arp.operation, ArpOperation::Reply);
    assert_eq!(
        (arp.source_hardware_addr, arp.source_protocol_addr),
        (MAC_B, IP_B)
    );
    assert_eq!(
        (arp.target_hardware_addr, arp.target_protocol_addr),
        (mac, ip)
    );
}

#[test]
fn arp_request_for_us_is_answered_and_sender_learned() {
    let mut b = stack(MAC_B, IP_B, 1);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let now = Instant::from_secs(1);
    b.receive(now, &arp_frame(ArpOperation::Request, IP_B), &mut out);
    assert_eq!(out.len(), 1);
    assert_arp_reply_from_b(&out[0], MAC_A, IP_A);
    assert_eq!(b.arp_entries(now).len(), 1);
    // A request for someone else is not answered and teaches nothing new.
    let mut c = stack(MAC_B, IP_B, 1);
    out.clear();
    c.receive(
        now,
        &arp_frame(ArpOperation::Request, Ipv4Addr::new(10, 0, 0, 9)),
        &mut out,
    );
    assert!(out.is_empty());
    assert!(c.arp_entries(now).is_empty());
}

#[test]
fn echo_request_gets_a_reply_with_the_same_data() {
    let mut b = node_b();
    let data = b"0123456789abcdef";
    let req = Icmpv4Repr::EchoRequest {
        ident: 7,
        seq_no: 3,
        data,
    };
    let frame = ip_frame(IpProtocol::Icmp, req.buffer_len(), |seg| {
        req.emit(&mut Icmpv4Packet::new_unchecked(seg));
    });
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(Instant::from_secs(2), &frame, &mut out);
    assert_eq!(out.len(), 1);
    let (eth, ip, body) = parse_ip(&out[0]);
    assert_eq!(eth.dst_addr, MAC_A);
    assert_eq!(
        (ip.src_addr, ip.dst_addr, ip.protocol),
        (IP_B, IP_A, IpProtocol::Icmp)
    );
    let pkt = Icmpv4Packet::new_checked(&body[..]).unwrap();
    let reply = Icmpv4Repr::parse(&pkt, true).unwrap();
    assert_eq!(
        reply,
        Icmpv4Repr::EchoReply {
            ident: 7,
            seq_no: 3,
            data
        }
    );
    assert_eq!(b.counters().icmp_echo_replied, 1);
}

#[test]
fn closed_udp_port_draws_port_unreachable_quoting_the_datagram() {
    let mut b = node_b();
    let frame = udp_frame(9999, b"hello");
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(Instant::from_secs(2), &frame, &mut out);
    assert_eq!(out.len(), 1);
    let (_, ip, body) = parse_ip(&out[0]);
    assert_eq!(ip.dst_addr, IP_A);
    let pkt = Icmpv4Packet::new_checked(&body[..]).unwrap();
    match Icmpv4Repr::parse(&pkt, true).unwrap() {
        Icmpv4Repr::DstUnreachable { code, invoking, .. } => {
            assert_eq!(code, icmpv4::dst_unreachable::PORT_UNREACHABLE);
            assert_eq!(invoking, &frame[14..], "the whole small datagram is quoted");
        }
        other => panic!("expected port unreachable, got {other:?}"),
    }
    assert_eq!(b.counters().drops(DropReason::UdpNoListener), 1);
}

#[test]
fn no_icmp_error_about_a_broadcast() {
    let mut b = node_b();
    let mut frame = udp_frame(9999, b"hello");
    // Re-address to the subnet broadcast (and the Ethernet broadcast).
    frame[..6].copy_from_slice(&EthernetAddress::BROADCAST.0);
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
        ip.set_dst_addr(Ipv4Addr::new(10, 0, 0, 255));
        ip.fill_checksum();
    }
    let mut udp = UdpPacket::new_unchecked(&mut frame[34..]);
    udp.set_checksum(0);
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(Instant::from_secs(2), &frame, &mut out);
    assert!(out.is_empty(), "no error about a broadcast");
    assert_eq!(b.counters().drops(DropReason::UdpNoListener), 1);
}

#[test]
fn udp_datagrams_reach_a_bound_socket() {
    let mut b = node_b();
    let h = b.udp().bind(7).unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(Instant::from_secs(2), &udp_frame(7, b"ping"), &mut out);
    assert!(out.is_empty());
    assert!(b.take_wakeup());
    let d = b.udp().recv_from(h).unwrap().unwrap();
    assert_eq!(d.from, SocketAddrV4::new(IP_A, 40000));
    assert_eq!(d.data, b"ping");
    b.udp().send_to(h, d.from, b"pong").unwrap();
    b.poll(Instant::from_secs(2), &mut out);
    assert_eq!(out.len(), 1);
    let (_, ip, body) = parse_ip(&out[0]);
    let pkt = UdpPacket::new_checked(&body[..]).unwrap();
    let r = UdpRepr::parse(&pkt, ip.src_addr, ip.dst_addr, true).unwrap();
    assert_eq!(
        (r.src_port, r.dst_port, pkt.payload()),
        (7, 40000, &b"pong"[..])
    );
}

#[test]
fn syn_to_closed_port_is_reset() {
    let mut b = node_b();
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(Instant::from_secs(2), &tcp_frame(&syn(81), &[]), &mut out);
    assert_eq!(out.len(), 1);
    let rst = parse_tcp(&out[0]);
    assert!(rst.flags.rst() && rst.flags.ack());
    assert_eq!(rst.ack_number, Some(crate::wire::SeqNumber(1001)));
    assert_eq!((rst.src_port, rst.dst_port), (81, 40000));
    assert_eq!(b.counters().drops(DropReason::TcpNoListener), 1);
    // An incoming RST is never answered.
    out.clear();
    let mut r = syn(81);
    r.flags = TcpFlags::RST;
    b.receive(Instant::from_secs(2), &tcp_frame(&r, &[]), &mut out);
    assert!(out.is_empty());
}

#[test]
fn syn_to_listener_gets_syn_ack_and_handshake_completes_into_accept_queue() {
    let mut b = node_b();
    b.tcp_listen(80, 4).unwrap();
    let now = Instant::from_secs(2);
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(now, &tcp_frame(&syn(80), &[]), &mut out);
    b.poll(now, &mut out);
    assert_eq!(out.len(), 1, "one SYN-ACK");
    let sa = parse_tcp(&out[0]);
    assert!(sa.flags.syn() && sa.flags.ack());
    assert_eq!(sa.ack_number, Some(crate::wire::SeqNumber(1001)));
    assert_eq!(sa.max_seg_size, Some(1460));
    assert_eq!(b.tcp_accept(80).unwrap(), None, "not established yet");
    let ack = TcpRepr {
        flags: TcpFlags::ACK,
        seq_number: crate::wire::SeqNumber(1001),
        ack_number: Some(sa.seq_number + 1),
        max_seg_size: None,
        ..syn(80)
    };
    out.clear();
    b.receive(now, &tcp_frame(&ack, b"GET"), &mut out);
    let (h, remote) = b
        .tcp_accept(80)
        .unwrap()
        .expect("established connection queued");
    assert_eq!(remote, SocketAddrV4::new(IP_A, 40000));
    let mut buf = [0u8; 16];
    assert_eq!(b.tcp_recv(h, &mut buf).unwrap(), 3);
    assert_eq!(&buf[..3], b"GET");
    assert_eq!(b.tcp_readiness(h).unwrap().state, State::Established);
}

#[test]
fn malformed_input_is_dropped_and_counted_by_reason() {
    let mut b = node_b();
    b.tcp_listen(80, 4).unwrap();
    let now = Instant::from_secs(2);
    let mut out: Vec<Vec<u8>> = Vec::new();

    // A frame too short for an Ethernet header.
    b.receive(now, &[0u8; 10], &mut out);
    assert_eq!(b.counters().drops(DropReason::EthTruncated), 1);

    // Too short for its IPv4 header.
    let good = udp_frame(7, b"x");
    b.receive(now, &good[..14 + 12], &mut out);
    assert_eq!(b.counters().drops(DropReason::Ipv4Truncated), 1);

    // A wrong IPv4 header checksum.
    let mut bad = good.clone();
    bad[14 + 10] ^= 0xff;
    b.receive(now, &bad, &mut out);
    assert_eq!(b.counters().drops(DropReason::Ipv4BadChecksum), 1);

    // An IPv4 header length beyond the packet: IHL 15 (60 bytes) in a 29-byte packet.
    let mut bad = good.clone();
    bad[14] = 0x4f;
    b.receive(now, &bad, &mut out);
    assert_eq!(
        b.counters().drops(DropReason::Ipv4Truncated)
            + b.counters().drops(DropReason::Ipv4Malformed),
        2
    );

    // A wrong UDP checksum.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 1] ^= 0x55;
    b.receive(now, &bad, &mut out);
    assert_eq!(b.counters().drops(DropReason::UdpBadChecksum), 1);

    // A TCP data offset beyond the segment: offset 15 (60 bytes) in a 20-byte segment.
    let mut bad = tcp_frame(&syn(80), &[]);
    let off = 14 + 20 + 12;
    bad[off] = 0xf0;
    b.receive(now, &bad, &mut out);
    assert_eq!(b.counters().drops(DropReason::TcpMalformed), 1);

    // A wrong TCP checksum.
    let mut bad = tcp_frame(&syn(80), &[]);
    bad[14 + 20 + 16] ^= 0x01;
    b.receive(now, &bad, &mut out);
    assert_eq!(b.counters().drops(DropReason::TcpBadChecksum), 1);

    assert!(out.is_empty(), "nothing answered any of it: {out:?}");
    assert_eq!(b.tcp_conns().len(), 0);
}

#[test]
fn every_truncation_of_valid_frames_is_survived() {
    let frames = [
        udp_frame(7, b"hello"),
        tcp_frame(&syn(80), &[]),
        arp_frame(ArpOperation::Request, IP_B),
    ];
    let mut b = node_b();
    b.tcp_listen(80, 4).unwrap();
    b.udp().bind(7).unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    for f in &frames {
        for len in 0..f.len() {
            b.receive(Instant::from_secs(2), &f[..len], &mut out);
        }
    }
    assert!(b.counters().total_drops() > 0);
}

/// Two stacks joined by a lossless in-memory link, in virtual time.
struct Pair {
    a: Stack,
    b: Stack,
    now: Instant,
    /// Drop every `drop_every`-th frame (0: none), to exercise retransmission.
    drop_every: usize,
    frames: usize,
}

impl Pair {
    fn new() -> Pair {
        let mut a = stack(MAC_A, IP_A, 11);
        let mut b = stack(MAC_B, IP_B, 22);
        let now = Instant::from_secs(1);
        let mut out = Vec::new();
        a.start(now, &mut out);
        b.start(now, &mut out);
        Pair {
            a,
            b,
            now,
            drop_every: 0,
            frames: 0,
        }
    }

    /// Delivers frames both ways until quiet, then jumps to the next timer. Returns false when
    /// nothing at all is pending.
    fn step(&mut self) -> bool {
        let mut a_out: Vec<Vec<u8>> = Vec::new();
        let mut b_out: Vec<Vec<u8>> = Vec::new();
        self.a.poll(self.now, &mut a_out);
        self.b.poll(self.now, &mut b_out);
        if a_out.is_empty() && b_out.is_empty() {
            let next = [self.a.poll_at(), self.b.poll_at()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t > self.now => {
                    self.now = t;
                    return true;
                }
                Some(_) => return true,
                None => return false,
            }
        }
        let now = self.now;
        for f in a_out {
            if self.pass() {
                deliver(now, &mut self.b, &mut self.a, &f);
            }
        }
        for f in b_out {
            if self.pass() {
                deliver(now, &mut self.a, &mut self.b, &f);
            }
        }
        self.now += Duration::from_micros(100);
        true
    }
}

impl Pair {
    /// Counts a frame on the link; false when it is to be lost.
    fn pass(&mut self) -> bool {
        self.frames += 1;
        self.drop_every == 0 || !self.frames.is_multiple_of(self.drop_every)
    }
}

/// `to` receives `frame`; its immediate answers go straight back to `from`.
fn deliver(now: Instant, to: &mut Stack, from: &mut Stack, frame: &[u8]) {
    let mut answers: Vec<Vec<u8>> = Vec::new();
    to.receive(now, frame, &mut answers);
    for a in answers {
        from.receive(now, &a, &mut Vec::new());
    }
}

fn transfer(drop_every: usize) {
    let mut p = Pair::new();
    p.drop_every = drop_every;
    p.b.tcp_listen(7, 8).unwrap();
    let ca =
        p.a.tcp_connect(p.now, SocketAddrV4::new(IP_B, 7), None, &|_| true)
            .unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    let mut cb = None;
    let mut closed_a = false;
    for _ in 0..2_000_000 {
        if cb.is_none() {
            cb = p.b.tcp_accept(7).unwrap().map(|(h, _)| h);
        }
        if sent < data.len() {
            if let Ok(n) = p.a.tcp_send(ca, &data[sent..]) {
                sent += n;
            }
        } else if !closed_a {
            p.a.tcp_close(ca).unwrap();
            closed_a = true;
        }
        if let Some(h) = cb {
            let mut buf = [0u8; 8192];
            loop {
                match p.b.tcp_recv(h, &mut buf) {
                    Ok(0) => {
                        p.b.tcp_close(h).unwrap();
                        break;
                    }
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(TcpError::WouldBlock) => break,
                    Err(e) => panic!("recv: {e}"),
                }
            }
        }
        if !p.step() {
            break;
        }
        let done = |s: &Stack, h| {
            s.tcp_readiness(h)
                .map(|r| matches!(r.state, State::Closed | State::TimeWait))
                .unwrap_or(true)
        };
        if closed_a && cb.is_some_and(|h| done(&p.b, h)) && done(&p.a, ca) {
            break;
        }
    }
    assert_eq!(got.len(), data.len());
    assert!(got == data, "byte stream differs");
    let sb =
        p.b.tcp_readiness(cb.unwrap())
            .map(|r| r.state)
            .unwrap_or(State::Closed);
    assert!(
        matches!(sb, State::Closed | State::TimeWait),
        "b ended in {sb:?}"
    );
}

#[test]
fn a_discarding_receiver_counts_the_whole_stream_and_sees_its_end() {
    // More than a receive window: discarding must reopen it as reading does.
    let total = 1_000_000;
    let mut p = Pair::new();
    p.b.tcp_listen(7, 8).unwrap();
    let ca =
        p.a.tcp_connect(p.now, SocketAddrV4::new(IP_B, 7), None, &|_| true)
            .unwrap();
    let block = [b'x'; 10_000];
    let (mut sent, mut got, mut cb, mut eof, mut closed) = (0, 0, None, false, false);
    while !eof {
        assert!(p.step(), "the transfer stalled at {got} bytes");
        cb = cb.or_else(|| p.b.tcp_accept(7).unwrap().map(|(h, _)| h));
        while sent < total {
            match p.a.tcp_send(ca, &block[..block.len().min(total - sent)]) {
                Ok(n) => sent += n,
                // Still connecting, or no room.
                Err(TcpError::NotConnected | TcpError::WouldBlock) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        if sent == total && !closed {
            p.a.tcp_close(ca).unwrap();
            closed = true;
        }
        if let Some(h) = cb {
            loop {
                match p.b.tcp_discard(h, 3000) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => got += n,
                    Err(TcpError::WouldBlock) => break,
                    Err(e) => panic!("discard: {e}"),
                }
            }
        }
    }
    assert_eq!(got, total);
    assert_eq!(
        p.b.tcp_readiness(cb.unwrap()).unwrap().state,
        State::CloseWait
    );
}

#[test]
fn an_idle_connection_s_receive_ring_is_freed_by_the_next_sweep() {
    let mut p = Pair::new();
    p.b.tcp_listen(7, 8).unwrap();
    let ca =
        p.a.tcp_connect(p.now, SocketAddrV4::new(IP_B, 7), None, &|_| true)
            .unwrap();
    let mut cb = None;
    let mut sent = false;
    let mut got = 0;
    while got < 2000 {
        assert!(p.step(), "the exchange stalled");
        cb = cb.or_else(|| p.b.tcp_accept(7).unwrap().map(|(h, _)| h));
        if !sent && p.a.tcp_send(ca, &[7u8; 2000]).is_ok() {
            sent = true;
        }
        if let Some(h) = cb {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = p.b.tcp_recv(h, &mut buf) {
                got += n;
            }
        }
    }
    // Everything read: the ring stays for the next data until the sweep.
    assert!(p.b.tcp_buffer_bytes() > 0);
    let drained_at = p.now;
    while p.b.tcp_buffer_bytes() > 0 {
        assert!(p.step(), "no wake-up for the sweep");
        assert!(p.now <= drained_at + Duration::from_secs(2), "not freed");
    }
    assert_eq!(
        p.b.tcp_readiness(cb.unwrap()).unwrap().state,
        State::Established
    );
}

#[test]
fn a_deadline_pushed_back_costs_no_timer_heap_entry() {
    // Request and response, 2,000 times on one connection: every segment moves a deadline
    // (RTO, tail-loss probe, delayed ACK); only one that moves earlier may push a heap entry
    // (each push is popped later at log(heap) cost: 6% of `tapir load`'s CPU when every
    // change pushed one, 4 per exchange here).
    let mut p = Pair::new();
    p.b.tcp_listen(7, 8).unwrap();
    let ca =
        p.a.tcp_connect(p.now, SocketAddrV4::new(IP_B, 7), None, &|_| true)
            .unwrap();
    let mut cb = None;
    let (mut asked, mut answered) = (0, 0);
    let mut buf = [0u8; 256];
    while answered < 2000 {
        assert!(p.step(), "the exchange stalled at {answered}");
        cb = cb.or_else(|| p.b.tcp_accept(7).unwrap().map(|(h, _)| h));
        if asked == answered && p.a.tcp_send(ca, &[1u8; 100]).is_ok() {
            asked += 1;
        }
        if let Some(h) = cb {
            while let Ok(n @ 1..) = p.b.tcp_recv(h, &mut buf) {
                assert_eq!(n, 100);
                p.b.tcp_send(h, &[2u8; 200]).unwrap();
            }
        }
        let mut got = 0;
        while let Ok(n @ 1..) = p.a.tcp_recv(ca, &mut buf) {
            got += n;
        }
        answered += got / 200;
    }
    let pushes = p.a.tcp_timer_pushes() + p.b.tcp_timer_pushes();
    assert!(
        pushes < 2 * answered as u64,
        "{pushes} timer heap pushes for {answered} exchanges"
    );
}

#[test]
fn two_stacks_transfer_and_close_over_a_clean_link() {
    transfer(0);
}

#[test]
fn two_stacks_transfer_and_close_despite_lost_frames() {
    transfer(13);
}

#[test]
fn unknown_protocol_draws_protocol_unreachable_but_fragments_draw_nothing() {
    let mut b = node_b();
    let now = Instant::from_secs(2);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let frame = ip_frame(IpProtocol::Unknown(200), 12, |seg| seg.fill(0xab));
    b.receive(now, &frame, &mut out);
    assert_eq!(out.len(), 1);
    let (_, _, body) = parse_ip(&out[0]);
    match Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&body[..]).unwrap(), true).unwrap() {
        Icmpv4Repr::DstUnreachable { code, .. } => {
            assert_eq!(code, icmpv4::dst_unreachable::PROTO_UNREACHABLE)
        }
        other => panic!("expected protocol unreachable, got {other:?}"),
    }
    assert_eq!(b.counters().drops(DropReason::UnknownProtocol), 1);

    // A non-first fragment of the same: held for reassembly, never answered.
    out.clear();
    let mut frag = frame.clone();
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut frag[14..]);
        ip.set_frag_offset(1480);
        ip.fill_checksum();
    }
    b.receive(now, &frag, &mut out);
    assert!(out.is_empty());
    assert_eq!(b.reassembly_in_progress(), 1);
}

#[test]
fn icmp_errors_are_rate_limited() {
    let mut b = node_b();
    let now = Instant::from_secs(2);
    let mut out: Vec<Vec<u8>> = Vec::new();
    for _ in 0..250 {
        b.receive(now, &udp_frame(9999, b"x"), &mut out);
    }
    let limit = b.config().icmp_error_rate as usize;
    assert_eq!(out.len(), limit, "at most {limit} errors a second");
    assert_eq!(b.counters().drops(DropReason::UdpNoListener), 250);
    out.clear();
    b.receive(
        now + Duration::from_secs(1),
        &udp_frame(9999, b"x"),
        &mut out,
    );
    assert_eq!(out.len(), 1, "the budget refills after a second");
}

#[test]
fn unresolved_next_hop_waits_for_arp_then_sends() {
    let mut b = stack(MAC_B, IP_B, 3);
    let now = Instant::from_secs(1);
    let h = b.udp().bind(5000).unwrap();
    b.udp()
        .send_to(h, SocketAddrV4::new(IP_A, 9), b"queued")
        .unwrap();
    b.udp()
        .send_to(h, SocketAddrV4::new(IP_A, 9), b"queued too")
        .unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.poll(now, &mut out);
    assert_eq!(out.len(), 1, "one ARP request for two packets");
    let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
    assert_eq!(eth.ethertype(), EtherType::Arp);
    // No second request within the second (RFC 1122), one after it.
    out.clear();
    b.poll(now + Duration::from_millis(500), &mut out);
    assert!(out.is_empty());
    b.poll(now + Duration::from_millis(1000), &mut out);
    assert_eq!(out.len(), 1, "the request is repeated after a second");
    // The reply releases both packets, addressed to the learned MAC.
    out.clear();
    b.receive(
        now + Duration::from_millis(1100),
        &arp_frame(ArpOperation::Reply, IP_B),
        &mut out,
    );
    assert_eq!(out.len(), 2);
    for f in &out {
        let (eth, ip, _) = parse_ip(f);
        assert_eq!((eth.dst_addr, ip.dst_addr), (MAC_A, IP_A));
    }
}

#[test]
fn off_subnet_goes_to_the_gateway_or_is_dropped_without_one() {
    let mut b = stack(MAC_B, IP_B, 4);
    let now = Instant::from_secs(1);
    let h = b.udp().bind(5000).unwrap();
    let far = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 9);
    b.udp().send_to(h, far, b"x").unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.poll(now, &mut out);
    assert!(out.is_empty());
    assert_eq!(b.counters().drops(DropReason::NoRoute), 1);

    let mut config = StackConfig::new(MAC_B, Ipv4Cidr::new(IP_B, 24).unwrap());
    config.gateway = Some(IP_A);
    let mut g = Stack::new(config, Rng::new(5));
    g.receive(now, &arp_frame(ArpOperation::Request, IP_B), &mut out);
    out.clear();
    let h = g.udp().bind(5000).unwrap();
    g.udp().send_to(h, far, b"x").unwrap();
    g.poll(now, &mut out);
    assert_eq!(out.len(), 1);
    let (eth, ip, _) = parse_ip(&out[0]);
    assert_eq!(eth.dst_addr, MAC_A, "framed to the gateway");
    assert_eq!(ip.dst_addr, *far.ip(), "addressed to the far host");
}

mod tcp_listen;

mod tcp_time_wait;

mod path_mtu;

mod tcp_icmp;

mod tcp_release;

mod fragments;

mod arp_defence;

mod arp_roles;

mod redirect;

/// An ICMP error frame from A to B quoting `invoking` (a datagram B sent).
fn icmp_error_frame(time_exceeded: bool, invoking: &[u8]) -> Vec<u8> {
    if time_exceeded {
        icmp_error(
            icmpv4::msg_type::TIME_EXCEEDED,
            icmpv4::time_exceeded::TTL_EXPIRED,
            0,
            invoking,
        )
    } else {
        icmp_error(
            icmpv4::msg_type::DST_UNREACHABLE,
            icmpv4::dst_unreachable::PORT_UNREACHABLE,
            0,
            invoking,
        )
    }
}

/// An ICMP error of `msg_type` (time exceeded, or else destination unreachable) and `code` from
/// A to B quoting `invoking`, with `next_hop_mtu` for "fragmentation needed".
fn icmp_error(msg_type: u8, code: u8, next_hop_mtu: u16, invoking: &[u8]) -> Vec<u8> {
    let repr = if msg_type == icmpv4::msg_type::TIME_EXCEEDED {
        Icmpv4Repr::TimeExceeded { code, invoking }
    } else {
        Icmpv4Repr::DstUnreachable {
            code,
            next_hop_mtu,
            invoking,
        }
    };
    ip_frame(IpProtocol::Icmp, repr.buffer_len(), |seg| {
        repr.emit(&mut Icmpv4Packet::new_unchecked(seg))
    })
}

#[test]
fn icmp_errors_reach_the_udp_socket_whose_datagram_they_quote() {
    let mut b = node_b();
    let h = b.udp().bind(45000).unwrap();
    let other = b.udp().bind(45001).unwrap();
    b.udp()
        .send_to_ttl(h, SocketAddrV4::new(IP_A, 33434), b"probe", Some(1))
        .unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.poll(Instant::from_secs(2), &mut out);
    assert_eq!(out.len(), 1);
    let (_, ip, _) = parse_ip(&out[0]);
    assert_eq!(ip.ttl, 1, "the probe carries the TTL asked for");
    let sent = out[0][14..].to_vec();
    let mut answers: Vec<Vec<u8>> = Vec::new();
    b.receive(
        Instant::from_secs(3),
        &icmp_error_frame(true, &sent[..28]),
        &mut answers,
    );
    assert!(answers.is_empty(), "never an error about an error");
    assert!(b.take_wakeup());
    let r = b.udp().recv_error(h).unwrap().expect("a report");
    assert_eq!(
        (r.from, r.msg_type, r.code, r.dst, r.detail),
        (IP_A, 11, 0, IP_A, 33434)
    );
    assert_eq!(b.udp().recv_error(h).unwrap(), None);
    assert_eq!(b.udp().recv_error(other).unwrap(), None);
    // A quote too short to name the port is malformed, not delivered.
    b.receive(
        Instant::from_secs(3),
        &icmp_error_frame(false, &sent[..24]),
        &mut answers,
    );
    assert_eq!(b.udp().recv_error(h).unwrap(), None);
    assert_eq!(b.counters().drops(DropReason::IcmpMalformed), 1);
}

#[test]
fn icmp_errors_reach_the_echo_socket_whose_request_they_quote() {
    let mut b = node_b();
    let h = b.icmp().bind(0x1234);
    assert!(b.icmp().send_echo(h, IP_A, 7, Some(3), b"abcdefgh"));
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.poll(Instant::from_secs(2), &mut out);
    assert_eq!(out.len(), 1);
    let (_, ip, _) = parse_ip(&out[0]);
    assert_eq!(ip.ttl, 3);
    let sent = out[0][14..].to_vec();
    b.receive(
        Instant::from_secs(3),
        &icmp_error_frame(false, &sent),
        &mut Vec::new(),
    );
    let r = b.icmp().recv_error(h).expect("a report");
    assert_eq!((r.from, r.msg_type, r.code, r.detail), (IP_A, 3, 3, 7));
    assert_eq!(b.icmp().recv(h), None, "an error is not an echo reply");
}

#[test]
fn events_record_state_changes_retransmissions_and_drops_when_asked() {
    let mut p = Pair::new();
    p.a.set_events(true);
    p.b.tcp_listen(7, 4).unwrap();
    let h =
        p.a.tcp_connect(p.now, SocketAddrV4::new(IP_B, 7), None, &|_| true)
            .unwrap();
    for _ in 0..50 {
        p.step();
    }
    let mut evs = Vec::new();
    p.a.drain_events(&mut evs);
    assert!(
        evs.iter().any(|e| matches!(
            e,
            StackEvent::TcpState {
                to: State::Established,
                ..
            }
        )),
        "{evs:?}"
    );
    // Data into a black hole: the RTO fires and the data is retransmitted, with its reason.
    p.drop_every = 1;
    p.a.tcp_send(h, &[7u8; 1000]).unwrap();
    for _ in 0..200 {
        p.step();
    }
    evs.clear();
    p.a.drain_events(&mut evs);
    assert!(
        evs.iter().any(|e| matches!(e, StackEvent::RtoFired { .. })),
        "{evs:?}"
    );
    assert!(
        evs.iter().any(|e| matches!(
            e,
            StackEvent::Retransmit {
                reason: crate::tcp::RetransmitReason::Rto,
                len: 1000,
                ..
            }
        )),
        "{evs:?}"
    );
    let shown = evs
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        shown.contains("10.0.0.1:"),
        "events name the connection: {shown}"
    );
    // The stack that did not ask records nothing.
    evs.clear();
    p.b.drain_events(&mut evs);
    assert!(evs.is_empty());
    // Drops are reported once for the frame that caused them.
    p.b.receive(p.now, &[0u8; 5], &mut Vec::new());
    assert_eq!(p.b.take_drop(), Some(DropReason::EthTruncated));
    assert_eq!(p.b.take_drop(), None);
}

/// With checksum offload, a segment is built with only its pseudo-header sum for the device to
/// finish. One held for ARP is released later without its offload request, so its checksum is
/// finished before it is held: the SYN that goes out once the peer answers ARP checks out.
#[test]
fn a_segment_held_for_arp_leaves_with_a_finished_checksum() {
    let cidr = Ipv4Cidr::new(IP_B, 24).unwrap();
    let mut cfg = StackConfig::new(MAC_B, cidr);
    cfg.tx_csum_offload = true;
    let mut b = Stack::new(cfg, Rng::new(5));
    let now = Instant::from_secs(1);
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.tcp_connect(now, SocketAddrV4::new(IP_A, 80), None, &|_| true)
        .unwrap();
    b.poll(now, &mut out);
    assert!(
        out.iter().all(|f| f[12..14] == [0x08, 0x06]),
        "only ARP before the peer answers"
    );
    out.clear();
    b.receive(now, &arp_frame(ArpOperation::Reply, IP_B), &mut out);
    b.poll(now, &mut out);
    let syn = out
        .iter()
        .find(|f| f[12..14] == [0x08, 0x00])
        .expect("the held SYN, released");
    // parse_tcp verifies the checksum.
    let seg = parse_tcp(syn);
    assert!(seg.flags.syn() && !seg.flags.ack());
}
