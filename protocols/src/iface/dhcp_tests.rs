//! The stack's DHCP driver, frame by frame: DISCOVER from 0.0.0.0, replies broadcast and
//! unicast, the RFC 5227 probe and its conflict, the lease applied, renewal, NAK and release.

use std::net::Ipv4Addr;

use super::*;
use crate::dhcp::State;
use crate::iface::{DropReason, StackConfig};
use crate::rand::Rng;
use crate::time::Instant;
use crate::wire::dhcp::{MessageType, Op};
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    Ipv4Packet, Ipv4Repr, TxChecksum,
};

const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);
const SERVER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 7, 0, 1);
const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 7, 0, 254);
const ADDR: Ipv4Addr = Ipv4Addr::new(10, 7, 0, 57);

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn dhcp_stack() -> Stack {
    let cidr = "192.0.2.9/24".parse().unwrap();
    let mut c = StackConfig::new(MAC, cidr);
    c.dhcp = true;
    c.mtu = 1500;
    Stack::new(c, Rng::new(7))
}

/// The DHCP messages in `frames`, with their IPv4 source and destination.
fn dhcp_out(frames: &[Vec<u8>]) -> Vec<(Ipv4Addr, Ipv4Addr, EthernetAddress, DhcpRepr)> {
    let mut v = Vec::new();
    for f in frames {
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        if eth.ethertype() != EtherType::Ipv4 {
            continue;
        }
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port()), (68, 67));
        let m = DhcpRepr::parse(&DhcpPacket::new_checked(udp.payload()).unwrap()).unwrap();
        v.push((ip.src_addr(), ip.dst_addr(), eth.dst_addr(), m));
    }
    v
}

/// ARP packets in `frames`.
fn arps(frames: &[Vec<u8>]) -> Vec<ArpRepr> {
    frames
        .iter()
        .filter_map(|f| {
            let eth = EthernetFrame::new_checked(&f[..]).ok()?;
            (eth.ethertype() == EtherType::Arp)
                .then(|| ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap())
        })
        .collect()
}

fn reply(to: &DhcpRepr, t: MessageType, lease: u32) -> DhcpRepr {
    let mut m = DhcpRepr::new(Op::Reply, t, to.xid, to.chaddr);
    m.yiaddr = ADDR;
    m.server_id = Some(SERVER);
    m.lease_time = Some(lease);
    m.subnet_mask = Some(Ipv4Addr::new(255, 255, 255, 0));
    m.routers = vec![ROUTER];
    m.dns_servers = vec![SERVER, ROUTER];
    m.interface_mtu = Some(1400);
    m
}

/// A server frame carrying `m` from SERVER:67 to `dst`:68.
fn server_frame(m: &DhcpRepr, dst: Ipv4Addr, eth_dst: EthernetAddress) -> Vec<u8> {
    let body = m.to_bytes();
    let udp_len = 8 + body.len();
    let mut buf = vec![0u8; 14 + 20 + udp_len];
    EthernetRepr {
        src_addr: SERVER_MAC,
        dst_addr: eth_dst,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    buf[42..].copy_from_slice(&body);
    UdpRepr {
        src_port: 67,
        dst_port: 68,
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut buf[34..]),
        SERVER,
        dst,
        body.len(),
        TxChecksum::Full,
    );
    Ipv4Repr {
        src_addr: SERVER,
        dst_addr: dst,
        protocol: IpProtocol::Udp,
        payload_len: udp_len,
        ttl: 64,
        ident: 9,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..]));
    buf
}

fn arp_from(sender: Ipv4Addr, target: Ipv4Addr, op: ArpOperation) -> Vec<u8> {
    let repr = ArpRepr {
        operation: op,
        source_hardware_addr: SERVER_MAC,
        source_protocol_addr: sender,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let mut buf = vec![0u8; 14 + repr.buffer_len()];
    EthernetRepr {
        src_addr: SERVER_MAC,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EtherType::Arp,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[14..]));
    buf
}

/// Polls at every instant the stack asks for until `until`, collecting what it sends.
fn run_until(s: &mut Stack, from: Instant, until: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut now = from;
    for _ in 0..1000 {
        s.poll(now, &mut out);
        match s.poll_at() {
            Some(t) if t <= until => now = t.max(now),
            _ => break,
        }
    }
    out
}

/// Starts the stack and takes it through DISCOVER, OFFER (broadcast), REQUEST, ACK (unicast to
/// the offered address) and the probe, to BOUND. Returns the REQUEST and when it bound.
fn bind(s: &mut Stack) -> (DhcpRepr, Instant) {
    let mut out = Vec::new();
    s.start(secs(1), &mut out);
    let sent = dhcp_out(&out);
    assert_eq!(sent.len(), 1, "one DISCOVER at start");
    let (src, dst, eth_dst, discover) = &sent[0];
    assert_eq!(discover.message_type, MessageType::Discover);
    assert_eq!((*src, *dst), (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST));
    assert!(eth_dst.is_broadcast());
    assert_eq!(s.address(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(s.dhcp_state(), Some(State::Selecting));

    let mut out = Vec::new();
    let offer = reply(discover, MessageType::Offer, 120);
    s.receive(
        secs(2),
        &server_frame(&offer, Ipv4Addr::BROADCAST, EthernetAddress::BROADCAST),
        &mut out,
    );
    s.poll(secs(2), &mut out);
    let sent = dhcp_out(&out);
    assert_eq!(sent.len(), 1);
    let request = sent[0].3.clone();
    assert_eq!(request.message_type, MessageType::Request);
    assert_eq!(request.requested_ip, Some(ADDR));

    // The ACK comes unicast to the offered address, which we do not hold yet.
    let mut out = Vec::new();
    let ack = reply(&request, MessageType::Ack, 120);
    s.receive(secs(3), &server_frame(&ack, ADDR, MAC), &mut out);
    assert_eq!(s.dhcp_state(), Some(State::Probing));
    let out = run_until(s, secs(3), secs(20));
    let probes = arps(&out);
    let (probe_list, rest) = probes.split_at(3);
    for p in probe_list {
        assert_eq!(
            p.source_protocol_addr,
            Ipv4Addr::UNSPECIFIED,
            "probes from 0.0.0.0"
        );
        assert_eq!(p.target_protocol_addr, ADDR);
    }
    assert_eq!(rest.len(), 1, "then one announcement");
    assert_eq!(rest[0].source_protocol_addr, ADDR);
    assert_eq!(rest[0].target_protocol_addr, ADDR);
    assert_eq!(s.dhcp_state(), Some(State::Bound));
    (request, secs(3))
}

#[test]
fn takes_a_lease_and_configures_address_router_dns_and_mtu() {
    let mut s = dhcp_stack();
    bind(&mut s);
    assert_eq!(s.cidr(), "10.7.0.57/24".parse().unwrap());
    assert_eq!(s.config().gateway, Some(ROUTER));
    assert_eq!(s.config().mtu, 1400);
    assert!(s.config().tcp.mss <= 1360);
    let lease = s.dhcp_lease().unwrap();
    assert_eq!(lease.dns_servers, vec![SERVER, ROUTER]);
    assert_eq!(lease.server, SERVER);
    assert_eq!(s.counters().dhcp_bound, 1);
    assert_eq!(s.counters().dhcp_probes_sent, 3);
    assert!(s.dhcp_log().any(|e| matches!(e.event, Event::Bound(_))));
}

#[test]
fn mtu_from_the_lease_never_exceeds_the_configured_one() {
    let mut s = {
        let mut c = StackConfig::new(MAC, "0.0.0.0/32".parse().unwrap());
        c.dhcp = true;
        c.mtu = 1300;
        Stack::new(c, Rng::new(3))
    };
    bind(&mut s);
    assert_eq!(s.config().mtu, 1300);
}

#[test]
fn sends_nothing_but_dhcp_before_it_has_an_address() {
    let mut s = dhcp_stack();
    let mut out = Vec::new();
    s.start(secs(1), &mut out);
    let h = s.udp().bind(0).unwrap();
    s.udp()
        .send_to(h, "10.7.0.1:53".parse().unwrap(), b"x")
        .unwrap();
    let mut out = Vec::new();
    s.poll(secs(1), &mut out);
    assert!(
        out.is_empty(),
        "a datagram to a unicast address waits for an address"
    );
    assert_eq!(s.counters().drops(DropReason::NoAddress), 1);
    // ARP requests for 0.0.0.0 and for others are not answered.
    s.receive(
        secs(1),
        &arp_from(SERVER, Ipv4Addr::UNSPECIFIED, ArpOperation::Request),
        &mut out,
    );
    assert!(out.is_empty());
}

#[test]
fn a_probe_conflict_declines_and_restarts_after_the_backoff() {
    let mut s = dhcp_stack();
    let mut out = Vec::new();
    s.start(secs(1), &mut out);
    let discover = dhcp_out(&out)[0].3.clone();
    let mut out = Vec::new();
    let offer = reply(&discover, MessageType::Offer, 120);
    s.receive(
        secs(2),
        &server_frame(&offer, Ipv4Addr::BROADCAST, EthernetAddress::BROADCAST),
        &mut out,
    );
    s.poll(secs(2), &mut out);
    let request = dhcp_out(&out)[0].3.clone();
    let ack = reply(&request, MessageType::Ack, 120);
    s.receive(
        secs(3),
        &server_frame(&ack, Ipv4Addr::BROADCAST, EthernetAddress::BROADCAST),
        &mut out,
    );
    assert_eq!(s.dhcp_state(), Some(State::Probing));
    // Someone answers for the address: a conflict.
    let mut out = Vec::new();
    s.receive(
        secs(3),
        &arp_from(ADDR, Ipv4Addr::UNSPECIFIED, ArpOperation::Reply),
        &mut out,
    );
    s.poll(secs(3), &mut out);
    let sent = dhcp_out(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].3.message_type, MessageType::Decline);
    assert_eq!(sent[0].3.requested_ip, Some(ADDR));
    assert_eq!(s.dhcp_state(), Some(State::Init));
    assert_eq!(s.address(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(s.counters().dhcp_conflicts, 1);
    assert_eq!(s.counters().dhcp_declined, 1);
    // A new DISCOVER after the back-off.
    let out = run_until(&mut s, secs(3), secs(14));
    let sent = dhcp_out(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].3.message_type, MessageType::Discover);
}

#[test]
fn another_hosts_probe_for_the_address_is_a_conflict_too() {
    let mut s = dhcp_stack();
    let mut out = Vec::new();
    s.start(secs(1), &mut out);
    let discover = dhcp_out(&out)[0].3.clone();
    let mut out = Vec::new();
    s.receive(
        secs(2),
        &server_frame(
            &reply(&discover, MessageType::Offer, 120),
            Ipv4Addr::BROADCAST,
            EthernetAddress::BROADCAST,
        ),
        &mut out,
    );
    s.poll(secs(2), &mut out);
    let request = dhcp_out(&out)[0].3.clone();
    s.receive(
        secs(3),
        &server_frame(&reply(&request, MessageType::Ack, 120), ADDR, MAC),
        &mut out,
    );
    s.receive(
        secs(3),
        &arp_from(Ipv4Addr::UNSPECIFIED, ADDR, ArpOperation::Request),
        &mut out,
    );
    assert_eq!(s.dhcp_state(), Some(State::Init));
    assert_eq!(s.counters().dhcp_conflicts, 1);
}

#[test]
fn renews_by_unicast_at_t1_and_keeps_the_address() {
    let mut s = dhcp_stack();
    let (_, _) = bind(&mut s);
    // Let the stack know the server's MAC (it asks for it at T1 anyway).
    let mut out = Vec::new();
    s.receive(
        secs(4),
        &arp_from(SERVER, ADDR, ArpOperation::Request),
        &mut out,
    );
    // T1 is half of 120 s after the REQUEST (sent at 2 s).
    let out = run_until(&mut s, secs(4), secs(63));
    let sent = dhcp_out(&out);
    assert_eq!(sent.len(), 1, "one renewal");
    let (src, dst, _, renew) = &sent[0];
    assert_eq!(
        (*src, *dst),
        (ADDR, SERVER),
        "unicast from the leased address"
    );
    assert_eq!(renew.ciaddr, ADDR);
    assert_eq!(s.dhcp_state(), Some(State::Renewing));
    let mut out = Vec::new();
    s.receive(
        secs(63),
        &server_frame(&reply(renew, MessageType::Ack, 120), ADDR, MAC),
        &mut out,
    );
    assert_eq!(s.dhcp_state(), Some(State::Bound));
    assert_eq!(s.address(), ADDR);
    assert_eq!(s.counters().dhcp_renewed, 1);
}

#[test]
fn a_nak_while_renewing_drops_the_address_and_restarts() {
    let mut s = dhcp_stack();
    bind(&mut s);
    let mut out = Vec::new();
    s.receive(
        secs(4),
        &arp_from(SERVER, ADDR, ArpOperation::Request),
        &mut out,
    );
    let out = run_until(&mut s, secs(4), secs(63));
    let renew = dhcp_out(&out)[0].3.clone();
    let mut nak = DhcpRepr::new(Op::Reply, MessageType::Nak, renew.xid, MAC);
    nak.server_id = Some(SERVER);
    let mut out = Vec::new();
    s.receive(secs(63), &server_frame(&nak, ADDR, MAC), &mut out);
    assert_eq!(s.address(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(s.config().gateway, None);
    assert_eq!(s.dhcp_state(), Some(State::Selecting));
    s.poll(secs(63), &mut out);
    assert_eq!(dhcp_out(&out)[0].3.message_type, MessageType::Discover);
}

#[test]
fn expiry_without_an_answer_drops_the_address() {
    let mut s = dhcp_stack();
    bind(&mut s);
    let out = run_until(&mut s, secs(4), secs(200));
    assert!(!out.is_empty());
    assert_eq!(s.address(), Ipv4Addr::UNSPECIFIED);
    assert!(s.dhcp_lease().is_none());
    assert_eq!(s.counters().dhcp_lost, 1);
}

#[test]
fn release_is_sent_from_the_address_then_the_address_goes() {
    let mut s = dhcp_stack();
    bind(&mut s);
    let mut out = Vec::new();
    s.receive(
        secs(4),
        &arp_from(SERVER, ADDR, ArpOperation::Request),
        &mut out,
    );
    assert_eq!(s.dhcp_release(secs(5)), Some(SERVER));
    assert!(!s.dhcp_release_sent());
    let mut out = Vec::new();
    s.poll(secs(5), &mut out);
    let sent = dhcp_out(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].3.message_type, MessageType::Release);
    assert_eq!((sent[0].0, sent[0].1), (ADDR, SERVER));
    assert!(s.dhcp_release_sent());
    assert_eq!(s.address(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(s.dhcp_state(), Some(State::Released));
    assert_eq!(s.poll_at(), None, "nothing more to do");
}

#[test]
fn replies_for_another_client_are_counted_and_ignored() {
    let mut s = dhcp_stack();
    let mut out = Vec::new();
    s.start(secs(1), &mut out);
    let discover = dhcp_out(&out)[0].3.clone();
    let mut other = reply(&discover, MessageType::Offer, 120);
    other.xid ^= 1;
    s.receive(
        secs(2),
        &server_frame(&other, Ipv4Addr::BROADCAST, EthernetAddress::BROADCAST),
        &mut out,
    );
    assert_eq!(s.dhcp_state(), Some(State::Selecting));
    assert_eq!(s.counters().drops(DropReason::DhcpIgnored), 1);
}

#[test]
fn a_release_waiting_for_the_servers_mac_still_goes_out() {
    let mut s = dhcp_stack();
    bind(&mut s);
    s.dhcp_release(secs(5));
    let mut out = Vec::new();
    s.poll(secs(5), &mut out);
    assert!(dhcp_out(&out).is_empty(), "held for ARP");
    let req = arps(&out);
    assert_eq!(req.len(), 1);
    assert_eq!(req[0].target_protocol_addr, SERVER);
    assert_eq!(
        req[0].source_protocol_addr, ADDR,
        "asked from the leased address"
    );
    assert!(!s.dhcp_release_sent());
    assert_eq!(s.address(), Ipv4Addr::UNSPECIFIED);
    // The server answers the leased address, which we no longer hold.
    let reply = ArpRepr {
        operation: ArpOperation::Reply,
        source_hardware_addr: SERVER_MAC,
        source_protocol_addr: SERVER,
        target_hardware_addr: MAC,
        target_protocol_addr: ADDR,
    };
    let mut frame = vec![0u8; 14 + reply.buffer_len()];
    EthernetRepr {
        src_addr: SERVER_MAC,
        dst_addr: MAC,
        ethertype: EtherType::Arp,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    reply.emit(&mut ArpPacket::new_unchecked(&mut frame[14..]));
    let mut out = Vec::new();
    s.receive(secs(5), &frame, &mut out);
    let sent = dhcp_out(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].3.message_type, MessageType::Release);
    assert_eq!(sent[0].2, SERVER_MAC);
    assert!(s.dhcp_release_sent());
}
