//! One node, several stacks: the ARP owner answers, announces and asks on the wire for all;
//! a follower passes its requests to the owner and learns from it.

use super::*;

fn with_role(role: ArpRole, seed: u64) -> Stack {
    let cidr = Ipv4Cidr::new(IP_B, 24).unwrap();
    let mut config = StackConfig::new(MAC_B, cidr);
    config.arp.role = role;
    Stack::new(config, Rng::new(seed))
}

fn is_arp(f: &[u8]) -> bool {
    EthernetFrame::new_checked(f).unwrap().ethertype() == EtherType::Arp
}

#[test]
fn a_follower_announces_nothing_and_asks_the_owner_instead_of_the_wire() {
    let mut owner = with_role(ArpRole::Owner, 1);
    let mut follower = with_role(ArpRole::Follower, 2);
    let now = Instant::from_secs(1);
    let mut out: Vec<Vec<u8>> = Vec::new();
    follower.start(now, &mut out);
    assert!(out.is_empty(), "only the owner announces the node");
    owner.start(now, &mut out);
    assert_eq!(out.len(), 1);
    out.clear();

    // The follower holds its datagram and wants A resolved, sending nothing itself.
    let h = follower.udp().bind(5000).unwrap();
    follower
        .udp()
        .send_to(h, SocketAddrV4::new(IP_A, 9), b"held")
        .unwrap();
    follower.poll(now, &mut out);
    assert!(out.is_empty(), "{} frames from a follower", out.len());
    let mut wanted = Vec::new();
    follower.take_arp_wanted(&mut wanted);
    assert_eq!(wanted, [IP_A]);
    // Its timer asks again a second later, still through the owner.
    follower.poll(now + Duration::from_secs(1), &mut out);
    assert!(out.is_empty());
    follower.take_arp_wanted(&mut wanted);
    assert_eq!(wanted, [IP_A, IP_A]);

    // The owner asks on the wire, once a second however often it is asked.
    owner.resolve_for_follower(now, IP_A, &mut out);
    owner.resolve_for_follower(now + Duration::from_millis(10), IP_A, &mut out);
    assert_eq!(out.len(), 1);
    assert!(is_arp(&out[0]));
    out.clear();
    // The reply to its request is taken (not an unsolicited one) and recorded for the
    // followers.
    owner.receive(
        now + Duration::from_millis(20),
        &arp_frame(ArpOperation::Reply, IP_B),
        &mut out,
    );
    assert_eq!(owner.counters().drops(DropReason::ArpUnsolicited), 0);
    let mut learned = Vec::new();
    owner.take_arp_learned(&mut learned);
    assert_eq!(learned, [(IP_A, MAC_A)]);

    // The follower learns it and its datagram leaves, to A's MAC.
    follower.learn_neighbour(now + Duration::from_millis(30), IP_A, MAC_A, &mut out);
    assert_eq!(out.len(), 1);
    let (eth, ip, _) = parse_ip(&out[0]);
    assert_eq!((eth.dst_addr, ip.dst_addr), (MAC_A, IP_A));
    // A live entry asked for again goes straight back, with nothing on the wire.
    out.clear();
    learned.clear();
    owner.resolve_for_follower(now + Duration::from_secs(5), IP_A, &mut out);
    assert!(out.is_empty());
    owner.take_arp_learned(&mut learned);
    assert_eq!(learned, [(IP_A, MAC_A)]);
}

#[test]
fn the_owner_shares_what_a_request_for_us_teaches_and_a_lone_stack_records_nothing() {
    let now = Instant::from_secs(1);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut learned = Vec::new();
    let mut owner = with_role(ArpRole::Owner, 1);
    owner.receive(now, &arp_frame(ArpOperation::Request, IP_B), &mut out);
    assert_eq!(out.len(), 1, "the owner answers");
    owner.take_arp_learned(&mut learned);
    assert_eq!(learned, [(IP_A, MAC_A)]);

    learned.clear();
    let mut alone = with_role(ArpRole::Alone, 2);
    alone.receive(now, &arp_frame(ArpOperation::Request, IP_B), &mut out);
    alone.take_arp_learned(&mut learned);
    assert!(learned.is_empty());
    let mut wanted = Vec::new();
    let h = alone.udp().bind(5000).unwrap();
    alone
        .udp()
        .send_to(h, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 7), 9), b"x")
        .unwrap();
    out.clear();
    alone.poll(now, &mut out);
    assert_eq!(out.len(), 1, "a lone stack asks on the wire itself");
    alone.take_arp_wanted(&mut wanted);
    assert!(wanted.is_empty());
}

#[test]
fn a_follower_ignores_neighbours_that_are_ours_or_not_unicast() {
    let now = Instant::from_secs(1);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut follower = with_role(ArpRole::Follower, 2);
    follower.learn_neighbour(now, IP_B, MAC_A, &mut out);
    follower.learn_neighbour(now, IP_A, EthernetAddress::BROADCAST, &mut out);
    assert!(follower.arp_entries(now).is_empty());
    assert!(out.is_empty());
}
