//! A connection its application let go of (RFC 1122 §4.2.2.13): data still unread is dropped
//! and it closes gracefully, its response delivered; data arriving while some of ours is in
//! flight is taken and dropped; data arriving once all of ours is acknowledged resets it. Before,
//! a peer could keep it (and its buffer) in FIN-WAIT-2 for good by sending into it.

use super::*;
use crate::wire::SeqNumber;

/// B accepts a connection from A:40000. Returns the handle and A's segment maker (flags,
/// sequence number), acknowledging B's SYN-ACK plus `fin` (1 once B's FIN is out).
fn b_accepts(
    b: &mut Stack,
    now: Instant,
) -> (SocketHandle, impl Fn(TcpFlags, u32, u32) -> TcpRepr) {
    b.tcp_listen(80, 4).unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(now, &tcp_frame(&syn(80), &[]), &mut out);
    b.poll(now, &mut out);
    let isn = parse_tcp(&out[0]).seq_number;
    let a = move |flags: TcpFlags, seq: u32, fin: u32| TcpRepr {
        flags,
        seq_number: SeqNumber(seq),
        ack_number: Some(isn + 1 + fin as usize),
        max_seg_size: None,
        ..syn(80)
    };
    b.receive(now, &tcp_frame(&a(TcpFlags::ACK, 1001, 0), &[]), &mut out);
    let (h, _) = b.tcp_accept(80).unwrap().unwrap();
    (h, a)
}

fn tcp_out(out: &[Vec<u8>]) -> Vec<TcpRepr> {
    out.iter()
        .filter(|f| f[12..14] == [8, 0])
        .map(|f| parse_tcp(f))
        .collect()
}

#[test]
fn data_for_a_connection_let_go_of_resets_it() {
    let mut b = node_b();
    let mut now = Instant::from_secs(2);
    let (h, a) = b_accepts(&mut b, now);
    b.tcp_release(h);
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.poll(now, &mut out);
    assert!(tcp_out(&out).iter().any(|s| s.flags.fin()), "a FIN first");
    // A acknowledges the FIN (B in FIN-WAIT-2), then sends on: nobody will read it.
    out.clear();
    b.receive(now, &tcp_frame(&a(TcpFlags::ACK, 1001, 1), &[]), &mut out);
    assert_eq!(b.tcp_conns()[0].state, State::FinWait2);
    now += Duration::from_secs(1);
    b.receive(
        now,
        &tcp_frame(&a(TcpFlags::ACK, 1001, 1), b"more"),
        &mut out,
    );
    b.poll(now, &mut out);
    let segs = tcp_out(&out);
    assert!(segs.len() == 1 && segs[0].flags.rst(), "{segs:?}");
    assert_eq!(b.counters().drops(DropReason::TcpDataAfterClose), 1);
    assert!(b.tcp_conns().is_empty(), "freed");
}

#[test]
fn letting_go_with_data_unread_drops_it_and_still_delivers_the_answer() {
    let mut b = node_b();
    let now = Instant::from_secs(2);
    let (h, a) = b_accepts(&mut b, now);
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(
        now,
        &tcp_frame(&a(TcpFlags::ACK, 1001, 0), b"unread"),
        &mut out,
    );
    b.tcp_send(h, b"answer").unwrap();
    out.clear();
    b.tcp_release(h);
    b.poll(now, &mut out);
    let segs = tcp_out(&out);
    assert!(!segs.iter().any(|s| s.flags.rst()), "{segs:?}");
    assert!(segs.iter().any(|s| s.flags.fin()), "{segs:?}");
    assert_eq!(
        segs.iter().map(|s| s.payload_len).sum::<usize>(),
        6,
        "the answer"
    );
    assert_eq!(b.counters().tcp_unread_dropped, 6);
    // More data while the answer and FIN are unacknowledged: taken and dropped, no reset.
    out.clear();
    b.receive(
        now,
        &tcp_frame(&a(TcpFlags::ACK, 1007, 0), b"pipelined"),
        &mut out,
    );
    b.poll(now + Duration::from_millis(300), &mut out);
    let segs = tcp_out(&out);
    assert!(!segs.iter().any(|s| s.flags.rst()), "{segs:?}");
    assert!(
        segs.iter().any(|s| s.ack_number == Some(SeqNumber(1016))),
        "acknowledged: {segs:?}"
    );
    let c = &b.tcp_conns()[0];
    assert_eq!(
        (c.state, c.recv_queue),
        (State::FinWait1, 0),
        "held for nobody"
    );
    assert_eq!(b.counters().drops(DropReason::TcpDataAfterClose), 0);
}

/// Half-closed (shutdown of the write side only), the application still reads: data keeps
/// arriving and is delivered.
#[test]
fn a_half_closed_connection_still_takes_data() {
    let mut b = node_b();
    let now = Instant::from_secs(2);
    let (h, a) = b_accepts(&mut b, now);
    b.tcp_close(h).unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.poll(now, &mut out);
    b.receive(
        now,
        &tcp_frame(&a(TcpFlags::ACK, 1001, 1), b"still"),
        &mut out,
    );
    let mut buf = [0u8; 16];
    assert_eq!(b.tcp_recv(h, &mut buf), Ok(5));
    assert_eq!(b.counters().drops(DropReason::TcpDataAfterClose), 0);
}
