//! ICMP redirects (RFC 1122 §3.2.2.2): taken from the router in use for the destination,
//! about a datagram we sent, naming another gateway on our subnet; anything else is refused
//! and counted.

use super::*;
use crate::iface::redirect::REDIRECT_EXPIRES;

const FAR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);
const BETTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

/// B with A as its gateway (A's MAC known), and the IPv4 packet of a datagram B sent to FAR.
fn routed_b() -> (Stack, Vec<u8>) {
    let mut config = StackConfig::new(MAC_B, Ipv4Cidr::new(IP_B, 24).unwrap());
    config.gateway = Some(IP_A);
    let mut b = Stack::new(config, Rng::new(5));
    let mut out: Vec<Vec<u8>> = Vec::new();
    let now = Instant::from_secs(1);
    b.receive(now, &arp_frame(ArpOperation::Request, IP_B), &mut out);
    out.clear();
    assert_eq!(next_hop(&mut b, now), IP_A);
    let h = b.udp().bind(5001).unwrap();
    b.udp().send_to(h, SocketAddrV4::new(FAR, 9), b"x").unwrap();
    b.poll(now, &mut out);
    (b, out[0][14..].to_vec())
}

/// Where B's next datagram to FAR is framed to: A (by its MAC), or the address an ARP request
/// asks for (the last frame of the poll: ARP's own timers go first).
fn next_hop(b: &mut Stack, now: Instant) -> Ipv4Addr {
    let out = frames_for_one_datagram(b, FAR, now);
    let eth = EthernetFrame::new_checked(&out.last().unwrap()[..]).unwrap();
    if eth.ethertype() == EtherType::Arp {
        let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        return arp.target_protocol_addr;
    }
    assert_eq!(eth.dst_addr(), MAC_A);
    IP_A
}

/// A redirect from `from` naming `gateway`, quoting `invoking`.
fn redirect(from: Ipv4Addr, gateway: Ipv4Addr, invoking: &[u8]) -> Vec<u8> {
    let repr = Icmpv4Repr::Other {
        msg_type: icmpv4::msg_type::REDIRECT,
        code: 1,
        rest: gateway.octets(),
        data: invoking,
    };
    let mut f = ip_frame(IpProtocol::Icmp, repr.buffer_len(), |seg| {
        repr.emit(&mut Icmpv4Packet::new_unchecked(seg))
    });
    let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.set_src_addr(from);
    ip.fill_checksum();
    f
}

#[test]
fn a_redirect_from_the_gateway_moves_the_destination_to_the_new_first_hop_for_a_while() {
    let (mut b, sent) = routed_b();
    let now = Instant::from_secs(2);
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(now, &redirect(IP_A, BETTER, &sent[..28]), &mut out);
    assert!(out.is_empty(), "a redirect is not answered");
    assert_eq!(b.counters().icmp_redirects_taken, 1);
    assert_eq!(next_hop(&mut b, now), BETTER);
    let mut news = Vec::new();
    b.take_redirects(&mut news);
    assert_eq!(news, [(FAR, BETTER)]);
    // The host route ages out; another stack of the node takes it without passing it on.
    assert_eq!(next_hop(&mut b, now + REDIRECT_EXPIRES), IP_A);
    let (mut c, _) = routed_b();
    c.learn_redirect(FAR, BETTER, now);
    assert_eq!(next_hop(&mut c, now), BETTER);
    news.clear();
    c.take_redirects(&mut news);
    assert!(news.is_empty());
}

#[test]
fn redirects_from_elsewhere_or_naming_a_gateway_off_the_link_are_refused() {
    let (mut b, sent) = routed_b();
    let now = Instant::from_secs(2);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut not_ours = sent.clone();
    not_ours[12..16].copy_from_slice(&[10, 0, 0, 77]);
    let cases = [
        // Not from the router B uses for FAR.
        redirect(Ipv4Addr::new(10, 0, 0, 7), BETTER, &sent[..28]),
        // A new gateway off the subnet, B itself, the subnet's broadcast.
        redirect(IP_A, Ipv4Addr::new(192, 0, 2, 1), &sent[..28]),
        redirect(IP_A, IP_B, &sent[..28]),
        redirect(IP_A, Ipv4Addr::new(10, 0, 0, 255), &sent[..28]),
        // About a datagram B did not send, or too short to say.
        redirect(IP_A, BETTER, &not_ours[..28]),
        redirect(IP_A, BETTER, &sent[..12]),
    ];
    for (i, f) in cases.iter().enumerate() {
        b.receive(now, f, &mut out);
        assert_eq!(
            b.counters().drops(DropReason::IcmpRedirectRefused),
            i as u64 + 1,
            "case {i}"
        );
    }
    assert_eq!(b.counters().icmp_redirects_taken, 0);
    assert_eq!(next_hop(&mut b, now), IP_A);
}
