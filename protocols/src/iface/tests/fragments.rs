//! IPv4 fragmentation and reassembly: the pool's rules fragment by fragment, then whole nodes
//! (a 3000-byte ping and a 4000-byte UDP datagram between two stacks, the time-exceeded error).

use super::*;
use crate::iface::counters::Counters;
use crate::iface::reassembly::{FragKey, Fragment, Reassembler, ReassemblyConfig};

const KEY: FragKey = FragKey {
    src: IP_A,
    dst: IP_B,
    protocol: 17,
    ident: 7,
};

fn header() -> Vec<u8> {
    let mut h = vec![0u8; 20];
    Ipv4Repr {
        src_addr: IP_A,
        dst_addr: IP_B,
        protocol: IpProtocol::Udp,
        payload_len: 0,
        ttl: 64,
        ident: 7,
        dont_frag: false,
        more_frags: true,
        frag_offset: 0,
        dscp_ecn: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut h[..]));
    h
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + i / 7) as u8).collect()
}

/// Offers `data[off..off+len]` as a fragment of `key`.
fn offer(
    r: &mut Reassembler,
    c: &mut Counters,
    now: Instant,
    key: FragKey,
    data: &[u8],
    off: usize,
    len: usize,
) -> Option<Vec<u8>> {
    let end = (off + len).min(data.len());
    let h = header();
    r.insert(
        now,
        Fragment {
            key,
            header: &h,
            offset: off,
            more_frags: end < data.len(),
            payload: &data[off..end],
        },
        c,
    )
}

fn check_whole(whole: &[u8], data: &[u8]) {
    let p = Ipv4Packet::new_checked(whole).unwrap();
    let repr = Ipv4Repr::parse(&p, true).unwrap();
    assert!(!repr.more_frags);
    assert_eq!(repr.frag_offset, 0);
    assert_eq!(repr.payload_len, data.len());
    assert_eq!(p.payload(), data);
}

const T: Instant = Instant::from_secs(5);

#[test]
fn in_order_fragments_reassemble() {
    let (mut r, mut c) = (
        Reassembler::new(ReassemblyConfig::default()),
        Counters::default(),
    );
    let d = data(3000);
    assert!(offer(&mut r, &mut c, T, KEY, &d, 0, 1480).is_none());
    assert!(offer(&mut r, &mut c, T, KEY, &d, 1480, 1480).is_none());
    let whole = offer(&mut r, &mut c, T, KEY, &d, 2960, 1480).expect("complete");
    check_whole(&whole, &d);
    assert_eq!(r.bytes_held(), 0);
    assert_eq!(r.in_progress(), 0);
    assert_eq!(c.total_drops(), 0);
}

#[test]
fn out_of_order_and_duplicate_fragments_reassemble() {
    let (mut r, mut c) = (
        Reassembler::new(ReassemblyConfig::default()),
        Counters::default(),
    );
    let d = data(4000);
    for off in [2400, 800, 2400, 3200, 1600] {
        assert!(offer(&mut r, &mut c, T, KEY, &d, off, 800).is_none());
    }
    assert_eq!(c.drops(DropReason::FragDuplicate), 1);
    let whole = offer(&mut r, &mut c, T, KEY, &d, 0, 800).expect("complete");
    check_whole(&whole, &d);
}

#[test]
fn overlapping_fragments_drop_the_datagram_and_its_stragglers() {
    let (mut r, mut c) = (
        Reassembler::new(ReassemblyConfig::default()),
        Counters::default(),
    );
    let d = data(2400);
    assert!(offer(&mut r, &mut c, T, KEY, &d, 0, 800).is_none());
    // Starts inside the first piece: an overlap, even with the same bytes.
    assert!(offer(&mut r, &mut c, T, KEY, &d, 400, 800).is_none());
    assert_eq!(c.drops(DropReason::FragOverlap), 1);
    assert_eq!(r.bytes_held(), 0, "the datagram's fragments are freed");
    // The rest would have completed it: discarded.
    assert!(offer(&mut r, &mut c, T, KEY, &d, 800, 800).is_none());
    assert!(offer(&mut r, &mut c, T, KEY, &d, 1600, 800).is_none());
    assert_eq!(c.drops(DropReason::FragOverlap), 3);
    // The same place with other bytes is an overlap too (not a duplicate).
    let key2 = FragKey { ident: 8, ..KEY };
    let mut other = d.clone();
    other[10] ^= 0xff;
    assert!(offer(&mut r, &mut c, T, key2, &d, 0, 800).is_none());
    assert!(offer(&mut r, &mut c, T, key2, &other, 0, 800).is_none());
    assert_eq!(c.drops(DropReason::FragOverlap), 4);
    // Two different ends are inconsistent.
    let key3 = FragKey { ident: 9, ..KEY };
    assert!(offer(&mut r, &mut c, T, key3, &d, 1600, 800).is_none());
    assert!(offer(&mut r, &mut c, T, key3, &d[..2000], 1600, 400).is_none());
    assert_eq!(c.drops(DropReason::FragOverlap), 5);
}

#[test]
fn malformed_fragments_are_dropped() {
    let (mut r, mut c) = (
        Reassembler::new(ReassemblyConfig::default()),
        Counters::default(),
    );
    let d = data(3000);
    // Not a multiple of 8 while more fragments follow.
    assert!(offer(&mut r, &mut c, T, KEY, &d, 0, 1001).is_none());
    // Past 65535 bytes.
    let big = data(65535);
    assert!(offer(&mut r, &mut c, T, KEY, &big, 65520, 15).is_none());
    assert_eq!(c.drops(DropReason::FragMalformed), 2);
    assert_eq!(r.in_progress(), 0);
}

#[test]
fn too_many_fragments_drop_the_datagram() {
    let config = ReassemblyConfig {
        max_frags: 4,
        ..ReassemblyConfig::default()
    };
    let (mut r, mut c) = (Reassembler::new(config), Counters::default());
    let d = data(48);
    for off in (0..40).step_by(8) {
        assert!(offer(&mut r, &mut c, T, KEY, &d, off, 8).is_none());
    }
    assert_eq!(c.drops(DropReason::FragTooMany), 1);
    assert!(offer(&mut r, &mut c, T, KEY, &d, 40, 8).is_none());
    assert_eq!(r.bytes_held(), 0);
}

#[test]
fn timeout_reports_the_first_fragment_only_when_it_arrived() {
    let (mut r, mut c) = (
        Reassembler::new(ReassemblyConfig::default()),
        Counters::default(),
    );
    let d = data(3000);
    let other = FragKey { ident: 99, ..KEY };
    offer(&mut r, &mut c, T, KEY, &d, 0, 1480);
    offer(&mut r, &mut c, T, other, &d, 1480, 1480);
    assert_eq!(r.poll_at(), Some(T + Duration::from_secs(30)));
    assert!(r
        .handle_timeout(T + Duration::from_secs(29), &mut c)
        .is_empty());
    let expired = r.handle_timeout(T + Duration::from_secs(30), &mut c);
    assert_eq!(c.drops(DropReason::FragTimeout), 2);
    assert_eq!(expired.len(), 1, "only the one whose first fragment came");
    assert_eq!(expired[0].src, IP_A);
    assert_eq!(expired[0].quote.len(), 28, "header and 8 bytes");
    assert_eq!(&expired[0].quote[20..], &d[..8]);
    assert_eq!(r.in_progress(), 0);
    assert_eq!(r.bytes_held(), 0);
    assert_eq!(r.poll_at(), None);
}

#[test]
fn a_flood_of_incomplete_fragments_stays_bounded_and_a_good_datagram_still_completes() {
    let config = ReassemblyConfig {
        max_bytes: 64 * 1024,
        max_datagrams: 64,
        ..ReassemblyConfig::default()
    };
    let max = config.max_bytes;
    let (mut r, mut c) = (Reassembler::new(config), Counters::default());
    let d = data(3000);
    let mut now = T;
    for i in 0..20_000u32 {
        let key = FragKey {
            src: Ipv4Addr::from(0x0a00_0000 + i),
            ident: i as u16,
            ..KEY
        };
        // First fragments only (never complete), and every 3rd an overlapping pair.
        offer(&mut r, &mut c, now, key, &d, 0, 1480);
        if i % 3 == 0 {
            offer(&mut r, &mut c, now, key, &d, 8, 1480);
        }
        assert!(r.bytes_held() <= max, "bound kept at {i}");
        assert!(r.in_progress() <= 64);
        if i % 1000 == 500 {
            // A good datagram in the middle of the flood.
            let good = FragKey {
                ident: 0xbeef,
                ..KEY
            };
            assert!(offer(&mut r, &mut c, now, good, &d, 1480, 1480).is_none());
            assert!(offer(&mut r, &mut c, now, good, &d, 0, 1480).is_none());
            let whole = offer(&mut r, &mut c, now, good, &d, 2960, 1480).expect("completes");
            check_whole(&whole, &d);
        }
        now += Duration::from_micros(10);
    }
    assert!(c.drops(DropReason::FragEvicted) > 10_000);
    assert!(c.drops(DropReason::FragOverlap) > 6_000);
}

#[test]
fn a_fragment_larger_than_the_pool_is_refused() {
    let config = ReassemblyConfig {
        max_bytes: 1000,
        ..ReassemblyConfig::default()
    };
    let (mut r, mut c) = (Reassembler::new(config), Counters::default());
    let d = data(3000);
    assert!(offer(&mut r, &mut c, T, KEY, &d, 0, 1480).is_none());
    assert_eq!(c.drops(DropReason::FragNoMemory), 1);
    assert_eq!(r.bytes_held(), 0);
}

/// Moves every frame each stack sends to the other, answers included, until both are quiet.
fn exchange(now: Instant, a: &mut Stack, b: &mut Stack) {
    let mut to_b: Vec<Vec<u8>> = Vec::new();
    let mut to_a: Vec<Vec<u8>> = Vec::new();
    for _ in 0..50 {
        a.poll(now, &mut to_b);
        b.poll(now, &mut to_a);
        if to_a.is_empty() && to_b.is_empty() {
            return;
        }
        for f in std::mem::take(&mut to_b) {
            b.receive(now, &f, &mut to_a);
        }
        for f in std::mem::take(&mut to_a) {
            a.receive(now, &f, &mut to_b);
        }
    }
}

#[test]
fn a_3000_byte_ping_goes_out_in_fragments_and_its_reply_comes_back_whole() {
    let mut a = stack(MAC_A, IP_A, 1);
    let mut b = stack(MAC_B, IP_B, 2);
    let now = Instant::from_secs(1);
    let h = a.icmp().bind(0x4242);
    let payload = data(3000);
    assert!(a.icmp().send_echo(h, IP_B, 1, None, &payload));
    // ARP for B, the fragments, the reply's fragments, and reassembly on both sides.
    exchange(now, &mut a, &mut b);
    let reply = a.icmp().recv(h).expect("echo reply");
    assert_eq!(reply.data, payload);
    assert_eq!(b.counters().ipv4_reassembled, 1);
    assert_eq!(a.counters().ipv4_reassembled, 1);
    assert_eq!(a.counters().ipv4_fragments_sent, 3);
    assert_eq!(b.counters().ipv4_fragments_sent, 3);
    assert_eq!(b.counters().icmp_echo_replied, 1);
}

#[test]
fn fragments_have_df_clear_and_fit_the_mtu_and_small_datagrams_keep_df() {
    let mut b = node_b();
    let now = Instant::from_secs(2);
    let h = b.udp().bind(7).unwrap();
    b.udp()
        .send_to(h, SocketAddrV4::new(IP_A, 9), &data(4000))
        .unwrap();
    b.udp()
        .send_to(h, SocketAddrV4::new(IP_A, 9), b"small")
        .unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.poll(now, &mut out);
    assert_eq!(out.len(), 4);
    let mut end = 0;
    for (i, f) in out[..3].iter().enumerate() {
        assert!(f.len() <= 14 + 1500);
        let (_, ip, body) = parse_ip(f);
        assert!(!ip.dont_frag);
        assert_eq!(ip.more_frags, i < 2);
        assert_eq!(usize::from(ip.frag_offset), end);
        end += body.len();
    }
    assert_eq!(end, 4008);
    let (_, ip, _) = parse_ip(&out[3]);
    assert!(ip.dont_frag && !ip.more_frags);
    // Too big for IPv4 at all: a clear error, nothing queued.
    assert_eq!(
        b.udp().send_to(h, SocketAddrV4::new(IP_A, 9), &data(65508)),
        Err(UdpError::TooBig)
    );
}

#[test]
fn a_4000_byte_udp_datagram_crosses_between_two_stacks() {
    let mut a = stack(MAC_A, IP_A, 1);
    let mut b = stack(MAC_B, IP_B, 2);
    let now = Instant::from_secs(1);
    let ha = a.udp().bind(5000).unwrap();
    let hb = b.udp().bind(7).unwrap();
    let payload = data(4000);
    a.udp()
        .send_to(ha, SocketAddrV4::new(IP_B, 7), &payload)
        .unwrap();
    exchange(now, &mut a, &mut b);
    let got = b.udp().recv_from(hb).unwrap().expect("datagram");
    assert_eq!(got.data, payload);
    assert_eq!(got.from, SocketAddrV4::new(IP_A, 5000));
}

#[test]
fn an_incomplete_datagram_times_out_with_fragment_reassembly_time_exceeded() {
    let mut b = node_b();
    let t0 = Instant::from_secs(2);
    let mut out: Vec<Vec<u8>> = Vec::new();
    // The first fragment of a 3000-byte UDP datagram, the rest never comes.
    let mut frame = udp_frame(7, &data(1472));
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
        ip.set_dont_frag(false);
        ip.set_more_frags(true);
        ip.fill_checksum();
    }
    b.receive(t0, &frame, &mut out);
    assert!(out.is_empty());
    assert_eq!(b.reassembly_in_progress(), 1);
    assert!(b.reassembly_bytes() > 1480);
    assert_eq!(b.poll_at(), Some(t0 + Duration::from_secs(30)));
    b.poll(t0 + Duration::from_secs(29), &mut out);
    assert!(out.is_empty());
    b.poll(t0 + Duration::from_secs(30), &mut out);
    assert_eq!(out.len(), 1);
    let (_, ip, body) = parse_ip(&out[0]);
    assert_eq!(ip.dst_addr, IP_A);
    match Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&body[..]).unwrap(), true).unwrap() {
        Icmpv4Repr::TimeExceeded { code, invoking } => {
            assert_eq!(code, icmpv4::time_exceeded::FRAG_EXPIRED);
            assert_eq!(invoking, &frame[14..14 + 28]);
        }
        other => panic!("expected time exceeded, got {other:?}"),
    }
    assert_eq!(b.counters().drops(DropReason::FragTimeout), 1);
    assert_eq!(b.reassembly_bytes(), 0);
}

#[test]
fn a_fragmented_tcp_syn_reaches_the_listener() {
    let mut b = node_b();
    b.tcp_listen(80, 4).unwrap();
    let now = Instant::from_secs(2);
    // A SYN with options, cut after 8 bytes of its TCP header.
    let whole = tcp_frame(&syn(80), &[]);
    let ip = &whole[14..];
    let (head, tcp) = ip.split_at(20);
    let mut out: Vec<Vec<u8>> = Vec::new();
    for (off, chunk, more) in [(8, &tcp[8..], false), (0, &tcp[..8], true)] {
        let mut p = head.to_vec();
        p.extend_from_slice(chunk);
        {
            let mut v = Ipv4Packet::new_unchecked(&mut p[..]);
            v.set_total_len((20 + chunk.len()) as u16);
            v.set_dont_frag(false);
            v.set_more_frags(more);
            v.set_frag_offset(off);
            v.fill_checksum();
        }
        let mut f = whole[..14].to_vec();
        f.extend_from_slice(&p);
        b.receive(now, &f, &mut out);
    }
    b.poll(now, &mut out);
    assert_eq!(out.len(), 1);
    let synack = parse_tcp(&out[0]);
    assert!(synack.flags.syn() && synack.flags.ack());
    assert_eq!(b.counters().ipv4_reassembled, 1);
}

/// The largest UDP datagram (65,507 bytes: 45 fragments at MTU 1500) sent to an address not yet
/// resolved waits whole for the ARP reply and then goes out whole (the per-address queue held 16
/// frames, so `ping -s 65507` lost its first request).
#[test]
fn a_largest_datagram_waits_whole_for_arp() {
    let mut b = stack(MAC_B, IP_B, 2);
    let h = b.udp().bind(5000).unwrap();
    let now = Instant::from_secs(1);
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.udp()
        .send_to(h, SocketAddrV4::new(IP_A, 9), &data(65507))
        .unwrap();
    b.poll(now, &mut out);
    assert_eq!(
        out.len(),
        1,
        "only the ARP request goes out before the reply"
    );
    assert_eq!(b.counters().drops(DropReason::ArpQueueFull), 0);
    out.clear();
    b.receive(now, &arp_frame(ArpOperation::Reply, IP_B), &mut out);
    b.poll(now, &mut out);
    let fragments = out
        .iter()
        .filter(|f| parse_ip(f).1.protocol == IpProtocol::Udp)
        .count();
    assert_eq!(fragments, 65515usize.div_ceil(1480));
}
