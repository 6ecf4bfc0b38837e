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

/// Frames B sends for one datagram to A at `now`: (ARP requests, with their Ethernet
/// destination), then whether the datagram itself left at once (framed to A's MAC).
fn send_to_a(b: &mut Stack, now: Instant) -> (Vec<EthernetAddress>, bool) {
    let out = frames_for_one_datagram(b, IP_A, now);
    let mut requests = Vec::new();
    let mut sent = false;
    for f in &out {
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        match eth.ethertype() {
            EtherType::Arp => requests.push(eth.dst_addr()),
            _ => sent |= eth.dst_addr() == MAC_A,
        }
    }
    (requests, sent)
}

#[test]
fn a_neighbour_in_use_is_confirmed_by_a_unicast_request_before_it_expires() {
    let mut b = node_b(); // A learnt at 1 s, for 60 s
    assert_eq!(send_to_a(&mut b, Instant::from_secs(50)), (vec![], true));
    // Within 5 s of expiry: a request to A's MAC alone, and the datagram still goes at once.
    let near = Instant::from_secs(57);
    assert_eq!(send_to_a(&mut b, near), (vec![MAC_A], true));
    assert_eq!(
        send_to_a(&mut b, near + Duration::from_millis(500)),
        (vec![], true),
        "one request a second"
    );
    // A answers: the entry is good for another minute, and nothing waits past the old expiry.
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(
        near + Duration::from_millis(600),
        &arp_frame(ArpOperation::Reply, IP_B),
        &mut out,
    );
    assert_eq!(b.counters().drops(DropReason::ArpUnsolicited), 0);
    assert_eq!(send_to_a(&mut b, Instant::from_secs(62)), (vec![], true));
    // Unconfirmed, it expires as before: the next datagram waits for a broadcast request.
    let later = Instant::from_secs(200);
    assert_eq!(
        send_to_a(&mut b, later),
        (vec![EthernetAddress::BROADCAST], false)
    );
}

#[test]
fn a_follower_has_the_owner_confirm_a_neighbour_about_to_expire() {
    let now = Instant::from_secs(1);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut follower = with_role(ArpRole::Follower, 2);
    follower.learn_neighbour(now, IP_A, MAC_A, &mut out);
    let near = Instant::from_secs(57);
    assert_eq!(send_to_a(&mut follower, near), (vec![], true));
    let mut wanted = Vec::new();
    follower.take_arp_wanted(&mut wanted);
    assert_eq!(wanted, [IP_A]);
    // The owner, its own entry as old, confirms it with a unicast request and shares it.
    let mut owner = with_role(ArpRole::Owner, 1);
    owner.receive(now, &arp_frame(ArpOperation::Request, IP_B), &mut out);
    out.clear();
    let mut learned = Vec::new();
    owner.take_arp_learned(&mut learned);
    learned.clear();
    owner.resolve_for_follower(near, IP_A, &mut out);
    assert_eq!(out.len(), 1);
    let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
    assert_eq!((eth.ethertype(), eth.dst_addr()), (EtherType::Arp, MAC_A));
    owner.take_arp_learned(&mut learned);
    assert_eq!(learned, [(IP_A, MAC_A)]);
}
