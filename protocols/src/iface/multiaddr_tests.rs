//! A node that owns a range of addresses (`StackConfig::extra_addrs`): ARP for each of them,
//! packets to them accepted, and connections from them keyed by the whole 4-tuple.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::*;
use crate::time::{Duration, Instant};
use crate::wire::{ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr};

const MAC_K: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x1]);
const MAC_N: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x2]);
const IP_K: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP_N: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// The "kernel" (a plain stack routing the range through the node) and the node owning
/// 10.9.0.0/24 besides its own address.
fn pair() -> (Stack, Stack) {
    let mut kc = StackConfig::new(MAC_K, Ipv4Cidr::new(IP_K, 24).unwrap());
    kc.gateway = Some(IP_N);
    let mut nc = StackConfig::new(MAC_N, Ipv4Cidr::new(IP_N, 24).unwrap());
    nc.extra_addrs = Some(Ipv4Cidr::new(Ipv4Addr::new(10, 9, 0, 0), 24).unwrap());
    (Stack::new(kc, Rng::new(1)), Stack::new(nc, Rng::new(2)))
}

fn arp_request(target: Ipv4Addr) -> Vec<u8> {
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: MAC_K,
        source_protocol_addr: IP_K,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let mut buf = vec![0u8; 14 + repr.buffer_len()];
    EthernetRepr {
        src_addr: MAC_K,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EtherType::Arp,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[14..]));
    buf
}

#[test]
fn arp_is_answered_for_every_host_address_of_the_range_and_only_those() {
    let (_, mut n) = pair();
    let now = Instant::from_secs(1);
    for (target, answered) in [
        (Ipv4Addr::new(10, 9, 0, 7), true),
        (Ipv4Addr::new(10, 9, 0, 254), true),
        (IP_N, true),
        (Ipv4Addr::new(10, 9, 0, 0), false),
        (Ipv4Addr::new(10, 9, 0, 255), false),
        (Ipv4Addr::new(10, 9, 1, 1), false),
    ] {
        let mut out: Vec<Vec<u8>> = Vec::new();
        n.receive(now, &arp_request(target), &mut out);
        assert_eq!(out.len(), usize::from(answered), "{target}");
        if let Some(f) = out.first() {
            let eth = EthernetFrame::new_checked(&f[..]).unwrap();
            let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
            assert_eq!(arp.operation, ArpOperation::Reply);
            assert_eq!(arp.source_protocol_addr, target);
            assert_eq!(arp.source_hardware_addr, MAC_N);
        }
    }
    assert!(n.is_local(Ipv4Addr::new(10, 9, 0, 1)));
    assert!(!n.is_local(Ipv4Addr::new(10, 9, 0, 255)));
}

/// Runs both stacks until quiet, in virtual time.
fn run(k: &mut Stack, n: &mut Stack, now: &mut Instant, rounds: usize) {
    for _ in 0..rounds {
        let mut k_out: Vec<Vec<u8>> = Vec::new();
        let mut n_out: Vec<Vec<u8>> = Vec::new();
        k.poll(*now, &mut k_out);
        n.poll(*now, &mut n_out);
        while !k_out.is_empty() || !n_out.is_empty() {
            let mut next_k = Vec::new();
            let mut next_n = Vec::new();
            for f in k_out.drain(..) {
                n.receive(*now, &f, &mut next_n);
            }
            for f in n_out.drain(..) {
                k.receive(*now, &f, &mut next_k);
            }
            k_out = next_k;
            n_out = next_n;
        }
        *now += Duration::from_millis(1);
    }
}

#[test]
fn connections_from_two_local_addresses_may_share_a_port_to_one_remote() {
    let (mut k, mut n) = pair();
    let mut now = Instant::from_secs(1);
    k.tcp_listen(80, 16).unwrap();
    let server = SocketAddrV4::new(IP_K, 80);
    let a1 = Ipv4Addr::new(10, 9, 0, 1);
    let a2 = Ipv4Addr::new(10, 9, 0, 2);
    let h1 = n
        .tcp_connect_from(now, a1, server, Some(40000), &|_| true)
        .unwrap();
    let h2 = n
        .tcp_connect_from(now, a2, server, Some(40000), &|_| true)
        .unwrap();
    assert_eq!(
        n.tcp_connect_from(now, a1, server, Some(40000), &|_| true),
        Err(TcpError::AddrInUse)
    );
    assert_eq!(
        n.tcp_connect_from(now, Ipv4Addr::new(10, 9, 1, 1), server, None, &|_| true),
        Err(TcpError::BadAddress)
    );
    // A chosen port that listens is taken, as a kernel bind without SO_REUSEADDR says.
    n.tcp_listen(1023, 4).unwrap();
    assert_eq!(
        n.tcp_connect_from(now, a1, server, Some(1023), &|_| true),
        Err(TcpError::AddrInUse)
    );
    n.tcp_unlisten(1023);
    run(&mut k, &mut n, &mut now, 20);
    let mut remotes = Vec::new();
    while let Some((h, remote)) = k.tcp_accept(80).unwrap() {
        remotes.push(remote);
        k.tcp_send(h, remote.ip().to_string().as_bytes()).unwrap();
    }
    remotes.sort();
    assert_eq!(
        remotes,
        vec![SocketAddrV4::new(a1, 40000), SocketAddrV4::new(a2, 40000)]
    );
    run(&mut k, &mut n, &mut now, 20);
    for (h, a) in [(h1, a1), (h2, a2)] {
        let mut buf = [0u8; 64];
        let got = n.tcp_recv(h, &mut buf).unwrap();
        assert_eq!(&buf[..got], a.to_string().as_bytes());
        assert_eq!(n.tcp_info(h).unwrap().local, SocketAddrV4::new(a, 40000));
    }
}

/// A sink with room for `left` more frames, like the engine's buffer pool.
struct Budget {
    frames: Vec<Vec<u8>>,
    left: usize,
}

impl Sink for Budget {
    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, max_len: usize, fill: F) {
        if self.left == 0 {
            return; // dropped, as the engine counts tx_no_buffer
        }
        self.left -= 1;
        self.frames.transmit(max_len, fill);
    }

    fn has_room(&self) -> bool {
        self.left > 0
    }
}

#[test]
fn a_sink_out_of_room_holds_segments_back_for_the_next_poll() {
    let (mut k, mut n) = pair();
    let mut now = Instant::from_secs(1);
    k.tcp_listen(80, 1024).unwrap();
    let server = SocketAddrV4::new(IP_K, 80);
    // One connection first, so that the server's address is resolved.
    n.tcp_connect_from(now, IP_N, server, None, &|_| true)
        .unwrap();
    run(&mut k, &mut n, &mut now, 5);
    let conns = 200;
    for i in 0..conns {
        let src = Ipv4Addr::new(10, 9, 0, 1 + (i % 200) as u8);
        n.tcp_connect_from(now, src, server, None, &|_| true)
            .unwrap();
    }
    // Eight frames per poll, at one instant: every SYN goes out once, in turn, and the stack
    // asks to be polled again at once while any wait.
    let mut syns = Vec::new();
    for _ in 0..conns {
        let mut sink = Budget {
            frames: Vec::new(),
            left: 8,
        };
        n.poll(now, &mut sink);
        assert!(sink.frames.len() <= 8);
        syns.extend(sink.frames);
        if syns.len() < conns {
            assert!(n.poll_at().is_some_and(|t| t <= now), "{} sent", syns.len());
        } else {
            break;
        }
    }
    assert_eq!(syns.len(), conns);
    let mut replies = Vec::new();
    for f in &syns {
        k.receive(now, f, &mut replies);
    }
    for f in replies {
        n.receive(now, &f, &mut Vec::new());
    }
    run(&mut k, &mut n, &mut now, 5);
    // Everything is established without a retransmission (virtual time never reached an RTO).
    let mut accepted = 0;
    while k.tcp_accept(80).unwrap().is_some() {
        accepted += 1;
    }
    assert_eq!(accepted, conns + 1);
    assert_eq!(n.counters().nonzero_drops().count(), 0);
}
