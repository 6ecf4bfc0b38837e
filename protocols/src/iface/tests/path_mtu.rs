//! Path MTU discovery (RFC 1191) for TCP: an ICMP "fragmentation needed" quoting a segment in
//! flight shrinks the connection's MSS and sends the flight again at once in segments the path
//! takes; one quoting anything else is dropped and counted (RFC 5927); later connections to the
//! host start small.

use super::tcp_listen::segments;
use super::*;
use crate::wire::SeqNumber;

/// B accepted a connection from A:`port` (A offers MSS 1460, no timestamps) and sent 30 KB on
/// it. Returns the frames B sent with data.
fn b_sends_30k(b: &mut Stack, port: u16, now: Instant) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(
        now,
        &tcp_frame(
            &TcpRepr {
                src_port: port,
                ..syn(80)
            },
            &[],
        ),
        &mut out,
    );
    b.poll(now, &mut out);
    let sa = parse_tcp(&out[0]);
    out.clear();
    let ack = TcpRepr {
        src_port: port,
        flags: TcpFlags::ACK,
        seq_number: SeqNumber(1001),
        ack_number: Some(sa.seq_number + 1),
        max_seg_size: None,
        ..syn(80)
    };
    b.receive(now, &tcp_frame(&ack, &[]), &mut out);
    let (h, _) = b.tcp_accept(80).unwrap().unwrap();
    assert_eq!(b.tcp_send(h, &[7u8; 30_000]).unwrap(), 30_000);
    b.poll(now, &mut out);
    out
}

/// "Fragmentation needed" from a router on the path, quoting `sent` (a frame B sent), with the
/// next hop's MTU.
fn frag_needed(sent: &[u8], next_hop_mtu: u16) -> Vec<u8> {
    icmp_error(
        icmpv4::msg_type::DST_UNREACHABLE,
        icmpv4::dst_unreachable::FRAG_REQUIRED,
        next_hop_mtu,
        &sent[14..14 + 20 + 8],
    )
}

/// IPv4 total length of each frame.
fn ip_lens(frames: &[Vec<u8>]) -> Vec<usize> {
    frames.iter().map(|f| f.len() - 14).collect()
}

#[test]
fn fragmentation_needed_resends_the_flight_in_segments_the_path_takes() {
    let mut b = node_b();
    b.tcp_listen(80, 4).unwrap();
    let now = Instant::from_secs(2);
    let flight = b_sends_30k(&mut b, 40000, now);
    assert!(
        ip_lens(&flight).iter().all(|&l| l == 1500),
        "{:?}",
        ip_lens(&flight)
    );
    let first = parse_tcp(&flight[0]).seq_number;
    // The router before a 1000-byte link drops the first segment and says so.
    let mut out: Vec<Vec<u8>> = Vec::new();
    let later = now + Duration::from_millis(5);
    b.receive(later, &frag_needed(&flight[0], 1000), &mut out);
    b.poll(later, &mut out);
    assert_eq!(b.counters().tcp_path_mtu_lowered, 1);
    let again = segments(&out);
    assert!(!again.is_empty(), "nothing sent again");
    assert_eq!(again[0].seq_number, first, "again from SND.UNA");
    assert!(
        ip_lens(&out).iter().all(|&l| l <= 1000),
        "{:?}",
        ip_lens(&out)
    );
    assert!(ip_lens(&out).contains(&1000), "full-sized for the path");
    // The same report for another segment of that flight changes nothing more.
    out.clear();
    b.receive(later, &frag_needed(&flight[3], 1000), &mut out);
    b.poll(later, &mut out);
    assert!(out.is_empty(), "{:?}", segments(&out));
    assert_eq!(b.counters().tcp_path_mtu_lowered, 1);
    assert_eq!(b.counters().drops(DropReason::IcmpTcpNotInFlight), 0);
    // A new connection to the same host starts with the path's MSS, whatever A offers.
    let next = b_sends_30k(&mut b, 40001, later);
    assert!(
        ip_lens(&next).iter().all(|&l| l <= 1000),
        "{:?}",
        ip_lens(&next)
    );
}

#[test]
fn fragmentation_needed_for_data_not_in_flight_is_dropped_and_counted() {
    let mut b = node_b();
    b.tcp_listen(80, 4).unwrap();
    let now = Instant::from_secs(2);
    let flight = b_sends_30k(&mut b, 40000, now);
    // A forged report: the quoted sequence number lies beyond what B sent.
    let mut forged = flight[0].clone();
    let seq_at = 14 + 20 + 4;
    forged[seq_at..seq_at + 4].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(now, &frag_needed(&forged, 576), &mut out);
    b.poll(now, &mut out);
    assert!(out.is_empty(), "{:?}", segments(&out));
    assert_eq!(b.counters().drops(DropReason::IcmpTcpNotInFlight), 1);
    assert_eq!(b.counters().tcp_path_mtu_lowered, 0);
    // And a tiny MTU is taken as 552 at the least (Linux's floor): no 28-byte segments.
    b.receive(now, &frag_needed(&flight[0], 68), &mut out);
    b.poll(now, &mut out);
    assert_eq!(b.counters().tcp_path_mtu_lowered, 1);
    assert!(
        ip_lens(&out).iter().all(|&l| l <= 552),
        "{:?}",
        ip_lens(&out)
    );
    assert!(ip_lens(&out).contains(&552), "{:?}", ip_lens(&out));
}

#[test]
fn a_router_that_gives_no_mtu_gets_the_plateau_below_the_datagram() {
    let mut b = node_b();
    b.tcp_listen(80, 4).unwrap();
    let now = Instant::from_secs(2);
    let flight = b_sends_30k(&mut b, 40000, now);
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(now, &frag_needed(&flight[0], 0), &mut out);
    b.poll(now, &mut out);
    // RFC 1191 §7: 1500 bytes did not pass; the next plateau is 1492.
    assert!(
        ip_lens(&out).iter().all(|&l| l <= 1492),
        "{:?}",
        ip_lens(&out)
    );
    assert!(ip_lens(&out).contains(&1492), "{:?}", ip_lens(&out));
}

/// UDP (and ICMP echo) datagrams: one too big for the path draws "fragmentation needed"; the
/// sending socket gets the error, and the next datagrams to that host are cut to the path's
/// MTU (fragments with DF clear), as Linux does for a socket left at its default.
#[test]
fn a_datagram_too_big_for_the_path_makes_the_next_ones_fragments_that_fit() {
    let mut b = node_b();
    let h = b.udp().bind(45000).unwrap();
    let to = SocketAddrV4::new(IP_A, 9000);
    let now = Instant::from_secs(2);
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.udp().send_to(h, to, &[5u8; 1400]).unwrap();
    b.poll(now, &mut out);
    assert_eq!(ip_lens(&out), vec![1428]);
    let (_, ip, _) = parse_ip(&out[0]);
    assert!(ip.dont_frag);
    let first = out.remove(0);
    b.receive(now, &frag_needed(&first, 1000), &mut out);
    let err = b
        .udp()
        .recv_error(h)
        .unwrap()
        .expect("the socket hears of it");
    assert_eq!(err.code, icmpv4::dst_unreachable::FRAG_REQUIRED);
    b.udp().send_to(h, to, &[6u8; 1400]).unwrap();
    b.poll(now, &mut out);
    let lens = ip_lens(&out);
    assert_eq!(lens.len(), 2, "{lens:?}");
    assert!(lens.iter().all(|&l| l <= 1000), "{lens:?}");
    assert!(out.iter().all(|f| !parse_ip(f).1.dont_frag));
    // Another host's datagrams are not cut.
    out.clear();
    b.udp()
        .send_to(
            h,
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 77), 9000),
            &[7u8; 1400],
        )
        .unwrap();
    b.poll(now, &mut out);
    let ip_frames: Vec<_> = out
        .iter()
        .filter(|f| f[12..14] == [8, 0])
        .cloned()
        .collect();
    assert!(
        ip_lens(&ip_frames).iter().all(|&l| l == 1428),
        "{:?}",
        ip_lens(&ip_frames)
    );
}
