//! ARP defences at node level: a live entry is not poisoned by a reply nobody asked for, and a
//! host claiming our address is counted, reported once and answered by a rate-limited
//! gratuitous ARP (RFC 5227 §2.4).

use super::*;

const EVIL: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x66]);

/// An ARP packet from `mac` claiming `sender`, to B.
fn arp_from(op: ArpOperation, mac: EthernetAddress, sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = arp_frame(op, target);
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_src_addr(mac);
    // ARP for Ethernet/IPv4: sender MAC at 8..14, sender address at 14..18.
    f[14 + 8..14 + 14].copy_from_slice(&mac.0);
    f[14 + 14..14 + 18].copy_from_slice(&sender.octets());
    f
}

/// The destination MAC of B's next UDP datagram to A.
fn next_hop_mac(b: &mut Stack, now: Instant) -> Option<EthernetAddress> {
    frames_for_one_datagram(b, IP_A, now)
        .iter()
        .map(|f| parse_ip_or_arp(f))
        .find_map(|(eth, is_ip)| is_ip.then_some(eth.dst_addr))
}

fn parse_ip_or_arp(f: &[u8]) -> (EthernetRepr, bool) {
    let eth = EthernetRepr::parse(&EthernetFrame::new_checked(f).unwrap()).unwrap();
    (eth, eth.ethertype == EtherType::Ipv4)
}

#[test]
fn an_unsolicited_reply_does_not_poison_a_live_entry() {
    let mut b = node_b();
    let now = Instant::from_secs(2);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let poison = arp_from(ArpOperation::Reply, EVIL, IP_A, IP_B);
    b.receive(now, &poison, &mut out);
    assert!(out.is_empty());
    assert_eq!(b.counters().drops(DropReason::ArpUnsolicited), 1);
    assert_eq!(next_hop_mac(&mut b, now), Some(MAC_A));
    // Nor does it create an entry for an address nobody asked about.
    let other = Ipv4Addr::new(10, 0, 0, 50);
    b.receive(
        now,
        &arp_from(ArpOperation::Reply, EVIL, other, IP_B),
        &mut out,
    );
    assert_eq!(b.counters().drops(DropReason::ArpUnsolicited), 2);
    assert!(b.arp_entries(now).iter().all(|(a, _, _)| *a != other));
}

#[test]
fn neither_a_request_nor_a_gratuitous_arp_poisons_a_live_entry() {
    let mut b = node_b();
    let now = Instant::from_secs(2);
    let mut out: Vec<Vec<u8>> = Vec::new();
    // A request from EVIL claiming A's address, asking for B: answered (to EVIL, as asked),
    // but A's entry keeps A's MAC.
    b.receive(
        now,
        &arp_from(ArpOperation::Request, EVIL, IP_A, IP_B),
        &mut out,
    );
    assert_eq!(b.counters().drops(DropReason::ArpUnsolicited), 1);
    // A gratuitous ARP (sender = target = A) from EVIL.
    out.clear();
    b.receive(
        now,
        &arp_from(ArpOperation::Request, EVIL, IP_A, IP_A),
        &mut out,
    );
    assert!(out.is_empty(), "nothing to answer");
    assert_eq!(b.counters().drops(DropReason::ArpUnsolicited), 2);
    assert_eq!(next_hop_mac(&mut b, now), Some(MAC_A));
    // Once A's entry has expired, a request may teach a new MAC (a host that changed its
    // NIC is learnt after the entry's lifetime).
    let later = now + Duration::from_secs(61);
    b.receive(
        later,
        &arp_from(ArpOperation::Request, EVIL, IP_A, IP_B),
        &mut out,
    );
    assert_eq!(next_hop_mac(&mut b, later), Some(EVIL));
}

#[test]
fn a_follower_stack_counts_the_conflict_but_sends_nothing() {
    let cidr = Ipv4Cidr::new(IP_B, 24).unwrap();
    let mut config = StackConfig::new(MAC_B, cidr);
    config.arp.role = ArpRole::Follower;
    let mut b = Stack::new(config, Rng::new(3));
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(
        Instant::from_secs(1),
        &arp_from(ArpOperation::Request, EVIL, IP_B, IP_A),
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(b.counters().arp_conflicts, 1);
    assert_eq!(b.counters().arp_defended, 0);
    assert_eq!(b.take_arp_conflict(), Some(EVIL));
}

#[test]
fn a_reply_to_our_own_request_is_taken() {
    let mut b = stack(MAC_B, IP_B, 2);
    let now = Instant::from_secs(2);
    let h = b.udp().bind(0).unwrap();
    b.udp()
        .send_to(h, SocketAddrV4::new(IP_A, 9), b"x")
        .unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.poll(now, &mut out);
    assert_eq!(out.len(), 1, "an ARP request");
    out.clear();
    b.receive(now, &arp_frame(ArpOperation::Reply, IP_B), &mut out);
    assert_eq!(out.len(), 1, "the waiting datagram goes out");
    assert_eq!(parse_ip_or_arp(&out[0]).0.dst_addr, MAC_A);
    assert_eq!(b.counters().drops(DropReason::ArpUnsolicited), 0);
}

#[test]
fn the_flag_off_gives_rfc_826_merging() {
    let cidr = Ipv4Cidr::new(IP_B, 24).unwrap();
    let mut config = StackConfig::new(MAC_B, cidr);
    config.arp.protect_live_entries = false;
    let mut b = Stack::new(config, Rng::new(3));
    let now = Instant::from_secs(1);
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(now, &arp_frame(ArpOperation::Request, IP_B), &mut out);
    b.receive(
        now,
        &arp_from(ArpOperation::Reply, EVIL, IP_A, IP_B),
        &mut out,
    );
    assert_eq!(next_hop_mac(&mut b, now), Some(EVIL));
}

#[test]
fn a_host_claiming_our_address_is_counted_reported_once_and_defended_at_most_every_10_s() {
    let mut b = node_b();
    let t0 = Instant::from_secs(5);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let claim = arp_from(ArpOperation::Request, EVIL, IP_B, IP_A);
    b.receive(t0, &claim, &mut out);
    assert_eq!(out.len(), 1, "one defence");
    let arp = ArpRepr::parse(&ArpPacket::new_checked(&out[0][14..]).unwrap()).unwrap();
    assert_eq!(arp.source_protocol_addr, IP_B);
    assert_eq!(arp.target_protocol_addr, IP_B, "an announcement");
    assert_eq!(arp.source_hardware_addr, MAC_B);
    out.clear();
    for s in 1..10 {
        b.receive(t0 + Duration::from_secs(s), &claim, &mut out);
    }
    assert!(out.is_empty(), "no second defence within 10 s");
    b.receive(t0 + Duration::from_secs(10), &claim, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(b.counters().arp_conflicts, 11);
    assert_eq!(b.counters().arp_defended, 2);
    assert_eq!(b.counters().drops(DropReason::ArpConflict), 11);
    assert_eq!(b.take_arp_conflict(), Some(EVIL));
    assert_eq!(b.take_arp_conflict(), None);
    // Our cache did not learn the impostor for our own address, and A is still A.
    assert!(b.arp_entries(t0).iter().all(|(a, _, _)| *a != IP_B));
    assert_eq!(next_hop_mac(&mut b, t0), Some(MAC_A));
}

#[test]
fn an_arp_probe_for_our_address_is_answered_to_the_prober() {
    let mut b = node_b();
    let now = Instant::from_secs(2);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let prober = EthernetAddress([2, 0, 0, 0, 0, 0x77]);
    // RFC 5227 probe: sender 0.0.0.0, target our address, from a host about to take it.
    b.receive(
        now,
        &arp_from(ArpOperation::Request, prober, Ipv4Addr::UNSPECIFIED, IP_B),
        &mut out,
    );
    assert_eq!(out.len(), 1, "one reply to a probe");
    assert_arp_reply_from_b(&out[0], prober, Ipv4Addr::UNSPECIFIED);
    assert_eq!(b.counters().arp_probes_answered, 1);
    // A probe for another address is none of ours, and the prober is not learnt.
    out.clear();
    let other = Ipv4Addr::new(10, 0, 0, 50);
    b.receive(
        now,
        &arp_from(ArpOperation::Request, prober, Ipv4Addr::UNSPECIFIED, other),
        &mut out,
    );
    assert!(out.is_empty());
    assert!(b.arp_entries(now).iter().all(|(_, m, _)| *m != prober));
}
