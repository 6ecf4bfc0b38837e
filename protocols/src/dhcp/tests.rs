//! Scripts of messages in and out with explicit times, over the whole lifecycle.

use super::*;

const MAC: EthernetAddress = EthernetAddress([0x02, 0x74, 0, 0, 0, 1]);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 7, 0, 1);
const ADDR: Ipv4Addr = Ipv4Addr::new(10, 7, 0, 57);

fn t(secs: f64) -> Instant {
    Instant::from_micros((secs * 1e6) as u64)
}

fn secs(i: Instant) -> f64 {
    i.total_micros() as f64 / 1e6
}

fn reply(to: &DhcpRepr, t: MessageType) -> DhcpRepr {
    let mut m = DhcpRepr::new(Op::Reply, t, to.xid, to.chaddr);
    m.yiaddr = ADDR;
    m.server_id = Some(SERVER);
    m.lease_time = Some(120);
    m.renewal_time = Some(60);
    m.rebinding_time = Some(105);
    m.subnet_mask = Some(Ipv4Addr::new(255, 255, 255, 0));
    m.routers = vec![SERVER];
    m.dns_servers = vec![SERVER];
    m.domain_name = Some(b"lab.test".to_vec());
    m.interface_mtu = Some(1400);
    m
}

fn nak(to: &DhcpRepr) -> DhcpRepr {
    let mut m = DhcpRepr::new(Op::Reply, MessageType::Nak, to.xid, to.chaddr);
    m.server_id = Some(SERVER);
    m.message = Some(b"wrong network".to_vec());
    m
}

fn one_transmit(c: &mut Client) -> Transmit {
    let tx = c.poll_transmit().expect("a message to send");
    assert_eq!(c.poll_transmit(), None, "only one message");
    tx
}

fn events(c: &mut Client) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn changed(from: State, to: State) -> Event {
    Event::StateChanged { from, to }
}

/// INIT → SELECTING → REQUESTING → PROBING → BOUND at t = 3 s, the REQUEST sent at t = 1 s.
fn bound_client(rng: &mut Rng) -> Client {
    let mut c = Client::new(Config::new(MAC), t(0.0), rng);
    let discover = one_transmit(&mut c);
    c.handle_message(t(1.0), rng, &reply(&discover.message, MessageType::Offer))
        .unwrap();
    let request = one_transmit(&mut c);
    c.handle_message(t(1.5), rng, &reply(&request.message, MessageType::Ack))
        .unwrap();
    c.handle_probe_result(t(3.0), ProbeResult::Free);
    assert_eq!(c.state(), State::Bound);
    events(&mut c);
    c
}

#[test]
fn acquire_probe_bind() {
    let mut rng = Rng::new(1);
    let mut c = Client::new(Config::new(MAC), t(0.0), &mut rng);
    assert_eq!(events(&mut c), vec![changed(State::Init, State::Selecting)]);
    let d = one_transmit(&mut c);
    assert_eq!(d.src, Ipv4Addr::UNSPECIFIED);
    assert_eq!(d.dst, Destination::Broadcast);
    assert_eq!(d.message.message_type, MessageType::Discover);
    assert!(d.message.broadcast);
    assert_eq!(d.message.client_id, Some(vec![1, 0x02, 0x74, 0, 0, 0, 1]));
    assert!(d.message.parameter_request_list.is_some());
    let first = secs(c.poll_timeout().unwrap());
    assert!(
        (3.0..=5.0).contains(&first),
        "first retransmission at {first}"
    );

    // OFFER → REQUEST, same xid, for the offered address from the offering server.
    c.handle_message(t(1.0), &mut rng, &reply(&d.message, MessageType::Offer))
        .unwrap();
    assert_eq!(
        events(&mut c),
        vec![changed(State::Selecting, State::Requesting)]
    );
    let r = one_transmit(&mut c);
    assert_eq!(r.message.message_type, MessageType::Request);
    assert_eq!(r.message.xid, d.message.xid);
    assert_eq!(r.message.requested_ip, Some(ADDR));
    assert_eq!(r.message.server_id, Some(SERVER));
    assert_eq!(r.message.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.message.secs, 1);
    assert_eq!(r.dst, Destination::Broadcast);

    // ACK → the driver is asked to probe; no timer meanwhile, no lease yet.
    c.handle_message(t(1.5), &mut rng, &reply(&r.message, MessageType::Ack))
        .unwrap();
    assert_eq!(
        events(&mut c),
        vec![
            changed(State::Requesting, State::Probing),
            Event::ProbeRequested { address: ADDR }
        ]
    );
    assert_eq!(c.poll_timeout(), None);
    assert!(c.lease().is_none());
    assert_eq!(c.poll_transmit(), None);

    c.handle_probe_result(t(3.0), ProbeResult::Free);
    let ev = events(&mut c);
    assert_eq!(ev[0], changed(State::Probing, State::Bound));
    let Event::Bound(lease) = &ev[1] else {
        panic!("{ev:?}")
    };
    assert_eq!(lease.address, Ipv4Cidr::new(ADDR, 24).unwrap());
    assert_eq!(lease.router, Some(SERVER));
    assert_eq!(lease.dns_servers, vec![SERVER]);
    assert_eq!(lease.mtu, Some(1400));
    assert_eq!(lease.domain_name.as_deref(), Some("lab.test"));
    // Times count from the REQUEST (t = 1), not the ACK or the probe.
    assert_eq!(lease.start, t(1.0));
    assert_eq!(lease.renew_at, Some(t(61.0)));
    assert_eq!(lease.rebind_at, Some(t(106.0)));
    assert_eq!(lease.expires_at, Some(t(121.0)));
    assert_eq!(c.poll_timeout(), Some(t(61.0)));
    assert_eq!(c.lease(), Some(lease));
}

#[test]
fn discover_backoff_doubles_to_64s_with_jitter() {
    let mut rng = Rng::new(7);
    let mut c = Client::new(Config::new(MAC), t(0.0), &mut rng);
    let xid = one_transmit(&mut c).message.xid;
    let mut last = 0.0;
    for base in [4.0, 8.0, 16.0, 32.0, 64.0, 64.0, 64.0] {
        let at = c.poll_timeout().unwrap();
        let gap = secs(at) - last;
        assert!(
            (base - 1.0..=base + 1.0).contains(&gap),
            "gap {gap}, wanted {base}±1"
        );
        // Early timeouts do nothing.
        c.handle_timeout(at - Duration::from_millis(1), &mut rng);
        assert_eq!(c.poll_transmit(), None);
        c.handle_timeout(at, &mut rng);
        let d = one_transmit(&mut c);
        assert_eq!(d.message.message_type, MessageType::Discover);
        assert_eq!(d.message.xid, xid, "retransmissions keep the xid");
        last = secs(at);
    }
}

#[test]
fn requesting_gives_up_and_restarts() {
    let mut rng = Rng::new(3);
    let mut c = Client::new(Config::new(MAC), t(0.0), &mut rng);
    let d = one_transmit(&mut c);
    c.handle_message(t(0.5), &mut rng, &reply(&d.message, MessageType::Offer))
        .unwrap();
    one_transmit(&mut c);
    for _ in 1..MAX_REQUEST_TRIES {
        let at = c.poll_timeout().unwrap();
        c.handle_timeout(at, &mut rng);
        assert_eq!(
            one_transmit(&mut c).message.message_type,
            MessageType::Request
        );
    }
    let at = c.poll_timeout().unwrap();
    c.handle_timeout(at, &mut rng);
    let again = one_transmit(&mut c);
    assert_eq!(again.message.message_type, MessageType::Discover);
    assert_ne!(again.message.xid, d.message.xid);
    assert_eq!(c.state(), State::Selecting);
}

#[test]
fn renew_at_t1_unicast() {
    let mut rng = Rng::new(2);
    let mut c = bound_client(&mut rng);
    c.handle_timeout(t(61.0), &mut rng);
    assert_eq!(events(&mut c), vec![changed(State::Bound, State::Renewing)]);
    let r = one_transmit(&mut c);
    assert_eq!(r.src, ADDR);
    assert_eq!(r.dst, Destination::Unicast(SERVER));
    assert_eq!(r.message.message_type, MessageType::Request);
    assert_eq!(r.message.ciaddr, ADDR);
    assert_eq!(r.message.requested_ip, None);
    assert_eq!(r.message.server_id, None);
    assert!(!r.message.broadcast);
    // Next try: half of the 45 s left to T2 is under 60 s, so at T2 itself.
    assert_eq!(c.poll_timeout(), Some(t(106.0)));

    c.handle_message(t(61.2), &mut rng, &reply(&r.message, MessageType::Ack))
        .unwrap();
    let ev = events(&mut c);
    assert_eq!(ev[0], changed(State::Renewing, State::Bound));
    let Event::Renewed(lease) = &ev[1] else {
        panic!("{ev:?}")
    };
    assert_eq!(lease.address.address(), ADDR);
    assert_eq!(lease.start, t(61.0));
    assert_eq!(c.poll_timeout(), Some(t(121.0)));
}

#[test]
fn rebind_at_t2_broadcast_then_expire() {
    let mut rng = Rng::new(4);
    let mut c = bound_client(&mut rng);
    c.handle_timeout(t(61.0), &mut rng);
    one_transmit(&mut c);
    events(&mut c);
    // No answer: at T2, REBINDING, broadcast from the leased address.
    c.handle_timeout(t(106.0), &mut rng);
    assert_eq!(
        events(&mut c),
        vec![changed(State::Renewing, State::Rebinding)]
    );
    let r = one_transmit(&mut c);
    assert_eq!(r.dst, Destination::Broadcast);
    assert_eq!(r.src, ADDR);
    assert_eq!(r.message.ciaddr, ADDR);
    assert_eq!(c.poll_timeout(), Some(t(121.0)));
    // No answer: the lease ends, the address goes, acquisition restarts.
    c.handle_timeout(t(121.0), &mut rng);
    assert_eq!(
        events(&mut c),
        vec![
            Event::Lost {
                address: ADDR,
                reason: LostReason::Expired
            },
            changed(State::Rebinding, State::Selecting)
        ]
    );
    assert_eq!(
        one_transmit(&mut c).message.message_type,
        MessageType::Discover
    );
    assert!(c.lease().is_none());
}

#[test]
fn rebind_answered() {
    let mut rng = Rng::new(5);
    let mut c = bound_client(&mut rng);
    c.handle_timeout(t(61.0), &mut rng);
    one_transmit(&mut c);
    c.handle_timeout(t(106.0), &mut rng);
    let r = one_transmit(&mut c);
    events(&mut c);
    c.handle_message(t(106.5), &mut rng, &reply(&r.message, MessageType::Ack))
        .unwrap();
    let ev = events(&mut c);
    assert_eq!(ev[0], changed(State::Rebinding, State::Bound));
    assert!(matches!(ev[1], Event::Renewed(_)));
    assert_eq!(c.poll_timeout(), Some(t(166.0)));
}

#[test]
fn nak_while_renewing_restarts() {
    let mut rng = Rng::new(6);
    let mut c = bound_client(&mut rng);
    c.handle_timeout(t(61.0), &mut rng);
    let r = one_transmit(&mut c);
    events(&mut c);
    c.handle_message(t(61.1), &mut rng, &nak(&r.message))
        .unwrap();
    assert_eq!(
        events(&mut c),
        vec![
            Event::Lost {
                address: ADDR,
                reason: LostReason::Nak
            },
            changed(State::Renewing, State::Selecting)
        ]
    );
    let d = one_transmit(&mut c);
    assert_eq!(d.message.message_type, MessageType::Discover);
    assert_eq!(d.src, Ipv4Addr::UNSPECIFIED);
    assert!(c.lease().is_none());
}

#[test]
fn nak_while_requesting_restarts() {
    let mut rng = Rng::new(8);
    let mut c = Client::new(Config::new(MAC), t(0.0), &mut rng);
    let d = one_transmit(&mut c);
    c.handle_message(t(1.0), &mut rng, &reply(&d.message, MessageType::Offer))
        .unwrap();
    let r = one_transmit(&mut c);
    events(&mut c);
    c.handle_message(t(1.1), &mut rng, &nak(&r.message))
        .unwrap();
    assert_eq!(
        events(&mut c),
        vec![
            Event::Nak {
                message: Some("wrong network".into())
            },
            changed(State::Requesting, State::Selecting)
        ]
    );
    let d2 = one_transmit(&mut c);
    assert_eq!(d2.message.message_type, MessageType::Discover);
    assert_ne!(d2.message.xid, d.message.xid);
}

#[test]
fn conflict_declines_and_waits() {
    let mut rng = Rng::new(9);
    let mut c = Client::new(Config::new(MAC), t(0.0), &mut rng);
    let d = one_transmit(&mut c);
    c.handle_message(t(1.0), &mut rng, &reply(&d.message, MessageType::Offer))
        .unwrap();
    let r = one_transmit(&mut c);
    c.handle_message(t(1.5), &mut rng, &reply(&r.message, MessageType::Ack))
        .unwrap();
    events(&mut c);
    c.handle_probe_result(t(3.0), ProbeResult::Conflict);
    let dec = one_transmit(&mut c);
    assert_eq!(dec.message.message_type, MessageType::Decline);
    assert_eq!(dec.message.requested_ip, Some(ADDR));
    assert_eq!(dec.message.server_id, Some(SERVER));
    assert_eq!(dec.message.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(dec.src, Ipv4Addr::UNSPECIFIED);
    assert_eq!(dec.dst, Destination::Broadcast);
    assert_eq!(
        events(&mut c),
        vec![
            Event::Declined { address: ADDR },
            changed(State::Probing, State::Init)
        ]
    );
    assert!(c.lease().is_none());
    assert_eq!(c.poll_timeout(), Some(t(13.0)));
    c.handle_timeout(t(13.0), &mut rng);
    assert_eq!(
        one_transmit(&mut c).message.message_type,
        MessageType::Discover
    );
    assert_eq!(c.state(), State::Selecting);
}

#[test]
fn release_on_exit() {
    let mut rng = Rng::new(10);
    let mut c = bound_client(&mut rng);
    c.release(t(30.0));
    let rel = one_transmit(&mut c);
    assert_eq!(rel.message.message_type, MessageType::Release);
    assert_eq!(rel.message.ciaddr, ADDR);
    assert_eq!(rel.message.server_id, Some(SERVER));
    assert_eq!(rel.src, ADDR);
    assert_eq!(rel.dst, Destination::Unicast(SERVER));
    assert_eq!(
        events(&mut c),
        vec![
            Event::Lost {
                address: ADDR,
                reason: LostReason::Released
            },
            changed(State::Bound, State::Released)
        ]
    );
    assert_eq!(c.poll_timeout(), None);
    // Released without a lease: nothing sent.
    let mut c = Client::new(Config::new(MAC), t(0.0), &mut rng);
    one_transmit(&mut c);
    c.release(t(1.0));
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(c.state(), State::Released);
}

#[test]
fn strangers_ignored() {
    let mut rng = Rng::new(11);
    let mut c = Client::new(Config::new(MAC), t(0.0), &mut rng);
    let d = one_transmit(&mut c).message;
    events(&mut c);
    let mut other_xid = reply(&d, MessageType::Offer);
    other_xid.xid ^= 1;
    assert_eq!(
        c.handle_message(t(1.0), &mut rng, &other_xid),
        Err(Ignored::NotOurs)
    );
    let mut other_mac = reply(&d, MessageType::Offer);
    other_mac.chaddr = EthernetAddress([2, 0, 0, 0, 0, 9]);
    assert_eq!(
        c.handle_message(t(1.0), &mut rng, &other_mac),
        Err(Ignored::NotOurs)
    );
    let mut request = reply(&d, MessageType::Offer);
    request.op = Op::Request;
    assert_eq!(
        c.handle_message(t(1.0), &mut rng, &request),
        Err(Ignored::NotReply)
    );
    assert_eq!(
        c.handle_message(t(1.0), &mut rng, &reply(&d, MessageType::Ack)),
        Err(Ignored::Unexpected)
    );
    let mut no_server = reply(&d, MessageType::Offer);
    no_server.server_id = None;
    assert_eq!(
        c.handle_message(t(1.0), &mut rng, &no_server),
        Err(Ignored::MissingOption)
    );
    assert_eq!(c.state(), State::Selecting);
    assert_eq!(c.poll_transmit(), None);
    assert!(events(&mut c).is_empty());
}

#[test]
fn max_lease_and_default_timers() {
    let mut rng = Rng::new(12);
    let mut cfg = Config::new(MAC);
    cfg.max_lease = Some(40);
    cfg.probe = false;
    cfg.requested_lease = Some(40);
    let mut c = Client::new(cfg, t(0.0), &mut rng);
    let d = one_transmit(&mut c);
    assert_eq!(d.message.lease_time, Some(40));
    c.handle_message(t(0.0), &mut rng, &reply(&d.message, MessageType::Offer))
        .unwrap();
    let r = one_transmit(&mut c);
    let mut ack = reply(&r.message, MessageType::Ack);
    ack.subnet_mask = None;
    c.handle_message(t(0.5), &mut rng, &ack).unwrap();
    let l = c.lease().unwrap();
    // Clamped to 40 s; the server's T1/T2 (60/105) no longer fit, so the RFC defaults.
    assert_eq!(l.duration, Some(Duration::from_secs(40)));
    assert_eq!(l.renew_at, Some(t(20.0)));
    assert_eq!(l.rebind_at, Some(t(35.0)));
    // No mask option: the classful prefix (10/8).
    assert_eq!(l.address.prefix_len(), 8);
}

#[test]
fn infinite_lease_has_no_timers() {
    let mut rng = Rng::new(13);
    let mut cfg = Config::new(MAC);
    cfg.probe = false;
    let mut c = Client::new(cfg, t(0.0), &mut rng);
    let d = one_transmit(&mut c);
    c.handle_message(t(0.0), &mut rng, &reply(&d.message, MessageType::Offer))
        .unwrap();
    let r = one_transmit(&mut c);
    let mut ack = reply(&r.message, MessageType::Ack);
    ack.lease_time = Some(u32::MAX);
    c.handle_message(t(0.5), &mut rng, &ack).unwrap();
    assert_eq!(c.state(), State::Bound);
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.lease().unwrap().expires_at, None);
}
