use super::*;
use proptest::prelude::*;

const MAC: EthernetAddress = EthernetAddress([0x02, 0x74, 0x0a, 0x07, 0x00, 0x02]);

/// A DHCPOFFER as dnsmasq sends it for `--dhcp-range=10.7.0.50,10.7.0.99,2m` to the client
/// above: yiaddr 10.7.0.57, siaddr 10.7.0.1, broadcast flag echoed, options 53, 54, 51, 58, 59,
/// 1, 28 (broadcast address: an option this module keeps raw), 3, 6, 15, 26, END.
fn offer_bytes() -> Vec<u8> {
    let mut b = vec![
        0x02, 0x01, 0x06, 0x00, // op reply, htype ethernet, hlen 6, hops 0
        0xde, 0xad, 0xbe, 0xef, // xid
        0x00, 0x00, 0x80, 0x00, // secs 0, flags broadcast
        0, 0, 0, 0, // ciaddr
        10, 7, 0, 57, // yiaddr
        10, 7, 0, 1, // siaddr
        0, 0, 0, 0, // giaddr
        0x02, 0x74, 0x0a, 0x07, 0x00, 0x02, // chaddr
    ];
    b.resize(236, 0); // chaddr padding, sname, file
    b.extend_from_slice(&[0x63, 0x82, 0x53, 0x63]);
    b.extend_from_slice(&[
        53, 1, 2, // OFFER
        54, 4, 10, 7, 0, 1, // server id
        51, 4, 0, 0, 0, 120, // lease 120 s
        58, 4, 0, 0, 0, 60, // T1
        59, 4, 0, 0, 0, 105, // T2
        1, 4, 255, 255, 255, 0, // mask
        28, 4, 10, 7, 0, 255, // broadcast address (kept raw)
        3, 4, 10, 7, 0, 1, // router
        6, 8, 10, 7, 0, 1, 10, 7, 0, 53, // DNS servers
        15, 8, b'l', b'a', b'b', b'.', b't', b'e', b's', b't', // domain
        26, 2, 0x05, 0xdc, // MTU 1500
        255,
    ]);
    b
}

fn offer_repr() -> DhcpRepr {
    let mut r = DhcpRepr::new(Op::Reply, MessageType::Offer, 0xdead_beef, MAC);
    r.broadcast = true;
    r.yiaddr = Ipv4Addr::new(10, 7, 0, 57);
    r.siaddr = Ipv4Addr::new(10, 7, 0, 1);
    r.server_id = Some(Ipv4Addr::new(10, 7, 0, 1));
    r.lease_time = Some(120);
    r.renewal_time = Some(60);
    r.rebinding_time = Some(105);
    r.subnet_mask = Some(Ipv4Addr::new(255, 255, 255, 0));
    r.other_options = vec![(28, vec![10, 7, 0, 255])];
    r.routers = vec![Ipv4Addr::new(10, 7, 0, 1)];
    r.dns_servers = vec![Ipv4Addr::new(10, 7, 0, 1), Ipv4Addr::new(10, 7, 0, 53)];
    r.domain_name = Some(b"lab.test".to_vec());
    r.interface_mtu = Some(1500);
    r
}

#[test]
fn parse_offer() {
    let b = offer_bytes();
    let p = DhcpPacket::new_checked(&b[..]).unwrap();
    assert_eq!(p.op(), Op::Reply);
    assert_eq!(p.xid(), 0xdead_beef);
    assert_eq!(p.yiaddr(), Ipv4Addr::new(10, 7, 0, 57));
    assert_eq!(DhcpRepr::parse(&p), Ok(offer_repr()));
}

#[test]
fn emit_is_padded_and_parses_back() {
    let r = offer_repr();
    let b = r.to_bytes();
    assert_eq!(b.len(), r.buffer_len());
    assert!(b.len() >= MIN_EMIT_LEN);
    let mut d = DhcpRepr::new(Op::Request, MessageType::Release, 1, MAC);
    d.server_id = r.server_id;
    assert_eq!(d.to_bytes().len(), MIN_EMIT_LEN);
    // Same fixed part as dnsmasq's; options in this module's order.
    assert_eq!(&b[..OPTIONS_OFFSET], &offer_bytes()[..OPTIONS_OFFSET]);
    assert_eq!(
        DhcpRepr::parse(&DhcpPacket::new_checked(&b[..]).unwrap()),
        Ok(r)
    );
    let mut small = [0u8; 299];
    assert_eq!(offer_repr().emit(&mut small), Err(Error::Truncated));
}

#[test]
fn discover_bytes() {
    let mut r = DhcpRepr::new(Op::Request, MessageType::Discover, 1, MAC);
    r.broadcast = true;
    r.parameter_request_list = Some(vec![1, 3, 6, 15, 26, 51, 58, 59]);
    r.client_id = Some(vec![1, 0x02, 0x74, 0x0a, 0x07, 0x00, 0x02]);
    let b = r.to_bytes();
    assert_eq!(&b[..4], &[1, 1, 6, 0]);
    assert_eq!(&b[10..12], &[0x80, 0]);
    assert_eq!(
        &b[240..262],
        &[
            53, 1, 1, 61, 7, 1, 0x02, 0x74, 0x0a, 0x07, 0x00, 0x02, 55, 8, 1, 3, 6, 15, 26, 51, 58,
            59
        ]
    );
    assert_eq!(b[262], 255);
    assert!(b[263..].iter().all(|&x| x == 0));
}

#[test]
fn truncations_and_bad_options() {
    let b = offer_bytes();
    for n in 0..OPTIONS_OFFSET {
        assert_eq!(
            DhcpPacket::new_checked(&b[..n]).err(),
            Some(Error::Truncated)
        );
    }
    // Cut inside an option.
    let p = DhcpPacket::new_checked(&b[..OPTIONS_OFFSET + 5]).unwrap();
    assert_eq!(DhcpRepr::parse(&p), Err(Error::Truncated));
    // Without END the options simply stop at the end of the buffer.
    let p = DhcpPacket::new_checked(&b[..b.len() - 1]).unwrap();
    assert_eq!(DhcpRepr::parse(&p), Ok(offer_repr()));
    // Wrong cookie: BOOTP, not DHCP.
    let mut c = b.clone();
    c[236] = 0;
    assert_eq!(
        DhcpPacket::new_checked(&c[..]).err(),
        Some(Error::Unsupported)
    );
    // A lease time of 3 bytes.
    let mut c = b.clone();
    c.pop();
    c.extend_from_slice(&[0xfd, 0, 51, 3, 1, 2, 3, 255]);
    let p = DhcpPacket::new_checked(&c[..]).unwrap();
    assert_eq!(DhcpRepr::parse(&p), Err(Error::Malformed));
    // A router list that is not a whole number of addresses (appended to the first: RFC 3396).
    let mut c = b.clone();
    c.pop();
    c.extend_from_slice(&[3, 3, 1, 2, 3, 255]);
    let p = DhcpPacket::new_checked(&c[..]).unwrap();
    assert_eq!(DhcpRepr::parse(&p), Err(Error::Malformed));
    // No message type.
    let mut c = b.clone();
    c[OPTIONS_OFFSET] = 0xfe; // an unknown option of the same length
    let p = DhcpPacket::new_checked(&c[..]).unwrap();
    assert_eq!(DhcpRepr::parse(&p), Err(Error::Malformed));
    // Not Ethernet.
    let mut c = b;
    c[1] = 6;
    let p = DhcpPacket::new_checked(&c[..]).unwrap();
    assert_eq!(DhcpRepr::parse(&p), Err(Error::Unsupported));
}

#[test]
fn repeated_and_long_options_concatenate() {
    // RFC 3396: a domain name split over two instances of option 15.
    let mut b = offer_bytes();
    b.truncate(b.len() - 1);
    b.extend_from_slice(&[15, 2, b'.', b'x', 255]);
    let r = DhcpRepr::parse(&DhcpPacket::new_checked(&b[..]).unwrap()).unwrap();
    assert_eq!(r.domain_name.as_deref(), Some(&b"lab.test.x"[..]));
    // And a 600-byte option is emitted as three and parsed back as one.
    let mut r = offer_repr();
    r.other_options = vec![(200, vec![7; 600])];
    let b = r.to_bytes();
    assert_eq!(
        DhcpRepr::parse(&DhcpPacket::new_checked(&b[..]).unwrap()),
        Ok(r)
    );
}

fn arb_addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..300)
}

fn arb_repr() -> impl Strategy<Value = DhcpRepr> {
    let fixed = (
        any::<u8>(),
        any::<u8>(),
        any::<u32>(),
        any::<u16>(),
        any::<bool>(),
        [arb_addr(), arb_addr(), arb_addr(), arb_addr()],
        any::<[u8; 6]>(),
        any::<u8>(),
    );
    let opts1 = (
        proptest::option::of(arb_addr()),
        proptest::collection::vec(arb_addr(), 0..4),
        proptest::collection::vec(arb_addr(), 0..4),
        proptest::option::of(arb_bytes()),
        proptest::option::of(arb_bytes()),
        proptest::option::of(any::<u16>()),
        proptest::option::of(arb_addr()),
        proptest::option::of(any::<u32>()),
    );
    let opts2 = (
        proptest::option::of(arb_addr()),
        proptest::option::of(arb_bytes()),
        proptest::option::of(arb_bytes()),
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(arb_bytes()),
        proptest::collection::btree_map(100u8..=200, arb_bytes(), 0..3),
    );
    (fixed, opts1, opts2).prop_map(|(f, o1, o2)| {
        let mut r = DhcpRepr::new(
            Op::from(f.0),
            MessageType::from(f.7),
            f.2,
            EthernetAddress(f.6),
        );
        r.hops = f.1;
        r.secs = f.3;
        r.broadcast = f.4;
        [r.ciaddr, r.yiaddr, r.siaddr, r.giaddr] = f.5;
        r.subnet_mask = o1.0;
        r.routers = o1.1;
        r.dns_servers = o1.2;
        r.host_name = o1.3;
        r.domain_name = o1.4;
        r.interface_mtu = o1.5;
        r.requested_ip = o1.6;
        r.lease_time = o1.7;
        r.server_id = o2.0;
        r.parameter_request_list = o2.1;
        r.message = o2.2;
        r.max_message_size = o2.3;
        r.renewal_time = o2.4;
        r.rebinding_time = o2.5;
        r.client_id = o2.6;
        r.other_options = o2.7.into_iter().collect();
        r
    })
}

proptest! {
    #[test]
    fn roundtrip(repr in arb_repr()) {
        let b = repr.to_bytes();
        prop_assert_eq!(b.len(), repr.buffer_len());
        let p = DhcpPacket::new_checked(&b[..]).unwrap();
        prop_assert_eq!(DhcpRepr::parse(&p), Ok(repr));
    }

    #[test]
    fn random_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..400), head in any::<[u8; 8]>()) {
        let mut b = offer_bytes()[..OPTIONS_OFFSET].to_vec();
        b[..8].copy_from_slice(&head);
        b.extend_from_slice(&tail);
        if let Ok(p) = DhcpPacket::new_checked(&b[..]) {
            let _ = DhcpRepr::parse(&p);
        }
        let _ = DhcpPacket::new_checked(&tail[..]).map(|p| DhcpRepr::parse(&p));
    }
}
