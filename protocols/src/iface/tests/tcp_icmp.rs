//! ICMP errors for TCP other than "fragmentation needed" (RFC 1122 §4.2.3.9, RFC 5927): one
//! that answers our SYN ends the attempt at once with the error Linux gives (a firewall's REJECT
//! is "connection refused", a router without a route "no route to host"); one quoting anything
//! else, or reaching an established connection, is ignored and counted.

use super::*;
use crate::wire::SeqNumber;

/// B connects to A:81 from port 50000; returns the handle and B's SYN as sent (a frame).
fn b_connects(b: &mut Stack, now: Instant) -> (SocketHandle, Vec<u8>) {
    let h = b
        .tcp_connect(now, SocketAddrV4::new(IP_A, 81), Some(50000), &|_| true)
        .unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.poll(now, &mut out);
    assert!(parse_tcp(&out[0]).flags.syn());
    (h, out.remove(0))
}

/// An ICMP error quoting `sent` (a frame B sent).
fn icmp_about(sent: &[u8], msg_type: u8, code: u8) -> Vec<u8> {
    icmp_error(msg_type, code, 0, &sent[14..14 + 20 + 8])
}

#[test]
fn an_icmp_error_answering_our_syn_ends_the_attempt_with_linux_s_error() {
    use icmpv4::dst_unreachable as du;
    use icmpv4::msg_type::{DST_UNREACHABLE, TIME_EXCEEDED};
    let cases = [
        (
            "port unreachable",
            DST_UNREACHABLE,
            du::PORT_UNREACHABLE,
            TcpError::Refused,
        ),
        (
            "protocol unreachable",
            DST_UNREACHABLE,
            du::PROTO_UNREACHABLE,
            TcpError::Refused,
        ),
        (
            "host unreachable",
            DST_UNREACHABLE,
            du::HOST_UNREACHABLE,
            TcpError::HostUnreachable,
        ),
        (
            "admin prohibited",
            DST_UNREACHABLE,
            13,
            TcpError::HostUnreachable,
        ),
        (
            "net unreachable",
            DST_UNREACHABLE,
            du::NET_UNREACHABLE,
            TcpError::NetUnreachable,
        ),
        ("TTL exceeded", TIME_EXCEEDED, 0, TcpError::HostUnreachable),
    ];
    for (what, msg_type, code, want) in cases {
        let mut b = node_b();
        let now = Instant::from_secs(2);
        let (h, syn) = b_connects(&mut b, now);
        let mut out: Vec<Vec<u8>> = Vec::new();
        b.receive(now, &icmp_about(&syn, msg_type, code), &mut out);
        let r = b.tcp_readiness(h).unwrap();
        assert_eq!(r.state, State::Closed, "{what}");
        assert_eq!(r.error, Some(want), "{what}");
        assert_eq!(b.tcp_send(h, b"x"), Err(want), "{what}");
        // No SYN goes out again.
        b.poll(now + Duration::from_secs(5), &mut out);
        assert!(out.is_empty(), "{what}: {:?}", out.len());
    }
}

#[test]
fn other_icmp_errors_for_tcp_are_ignored_and_counted() {
    let mut b = node_b();
    let now = Instant::from_secs(2);
    let (h, syn) = b_connects(&mut b, now);
    // Quoting another sequence number than our SYN's: stale or forged.
    let mut other = syn.clone();
    let seq_at = 14 + 20 + 4;
    let isn = u32::from_be_bytes(other[seq_at..seq_at + 4].try_into().unwrap());
    other[seq_at..seq_at + 4].copy_from_slice(&isn.wrapping_add(7).to_be_bytes());
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(now, &icmp_about(&other, 3, 3), &mut out);
    assert_eq!(b.tcp_readiness(h).unwrap().state, State::SynSent);
    assert_eq!(b.counters().drops(DropReason::IcmpUnhandled), 1);
    // Established: a port unreachable is a soft error, and the connection carries on.
    let synack = TcpRepr {
        src_port: 81,
        dst_port: 50000,
        flags: TcpFlags::SYN | TcpFlags::ACK,
        seq_number: SeqNumber(9000),
        ack_number: Some(SeqNumber(isn) + 1),
        ..syn_repr()
    };
    b.receive(now, &tcp_frame(&synack, &[]), &mut out);
    assert_eq!(b.tcp_readiness(h).unwrap().state, State::Established);
    b.tcp_send(h, b"hello").unwrap();
    out.clear();
    b.poll(now, &mut out);
    let data = out.last().unwrap().clone();
    b.receive(now, &icmp_about(&data, 3, 3), &mut out);
    let r = b.tcp_readiness(h).unwrap();
    assert_eq!((r.state, r.error), (State::Established, None));
    assert_eq!(b.counters().drops(DropReason::IcmpUnhandled), 2);
}

fn syn_repr() -> TcpRepr {
    TcpRepr {
        max_seg_size: Some(1460),
        ..syn(50000)
    }
}
