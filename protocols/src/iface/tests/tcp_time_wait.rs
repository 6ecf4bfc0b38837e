//! TIME-WAIT kept compact (`tcp_table::time_wait`): a connection the application let go of
//! answers in TIME-WAIT exactly as the connection it replaced, checked side by side with a
//! connection the application still holds (which stays a full connection), and ends after
//! 2·MSL, later when the peer's FIN comes again.

use super::tcp_listen::{b_closes_first, full_syn, segments};
use super::*;
use crate::wire::{SeqNumber, TcpTimestamp};

/// Two identical nodes (same seeds) that each accepted a connection from A:40000 and closed it
/// first: `held` still holds its handle, `compact` let go of it. Returns them and the time.
fn twins() -> (Stack, Stack, Instant) {
    let mut twins = [node_b(), node_b()];
    let mut now = Instant::ZERO;
    let mut handles = Vec::new();
    for b in &mut twins {
        b.config.tcp.challenge_ack_limit = 3;
        b.tcp_listen(80, 4).unwrap();
        let (h, t) = b_closes_first(b, 40000, Instant::from_secs(2));
        handles.push(h);
        now = t;
    }
    let [held, mut compact] = twins;
    compact.tcp_release(handles[1]);
    assert_eq!((held.tcp_conn_count(), held.tcp_time_wait_count()), (1, 0));
    assert_eq!(
        (compact.tcp_conn_count(), compact.tcp_time_wait_count()),
        (0, 1)
    );
    (held, compact, now)
}

/// Everything `b` sends in answer to `seg` at `now`.
fn answer(b: &mut Stack, now: Instant, seg: &TcpRepr, payload: &[u8]) -> Vec<TcpRepr> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(now, &tcp_frame(seg, payload), &mut out);
    b.poll(now, &mut out);
    segments(&out)
}

/// A's segment after the close: `flags`, sequence number `seq`, acknowledging `ack`, TSval
/// `tsval`.
fn from_a(flags: TcpFlags, seq: u32, ack: SeqNumber, tsval: u32) -> TcpRepr {
    TcpRepr {
        src_port: 40000,
        flags,
        seq_number: SeqNumber(seq),
        ack_number: Some(ack),
        max_seg_size: None,
        timestamp: Some(TcpTimestamp { tsval, tsecr: 1 }),
        window_len: 1000,
        ..syn(80)
    }
}

#[test]
fn compact_time_wait_answers_every_segment_as_the_connection_did() {
    let (mut held, mut compact, mut now) = twins();
    // A's FIN took sequence number 1001 (see `b_closes_first`): RCV.NXT is 1002.
    let fin_again = |ack| from_a(TcpFlags::FIN | TcpFlags::ACK, 1001, ack, 103);
    now += Duration::from_secs(1);
    let first = answer(&mut held, now, &fin_again(SeqNumber(0)), &[]);
    // B's SND.NXT, from its answer: an ACK of the FIN.
    assert_eq!(first.len(), 1, "{first:?}");
    let snd_nxt = first[0].seq_number;
    assert_eq!(first[0].ack_number, Some(SeqNumber(1002)));
    assert_eq!(
        answer(&mut compact, now, &fin_again(SeqNumber(0)), &[]),
        first
    );
    let ack = |seq: u32, tsval: u32| from_a(TcpFlags::ACK, seq, snd_nxt, tsval);
    let probes: Vec<(&str, TcpRepr, &[u8], usize)> = vec![
        ("the FIN again", fin_again(snd_nxt), b"", 1),
        ("an old duplicate (PAWS)", ack(1002, 50), b"", 1),
        ("data in the window", ack(1002, 104), b"x", 0),
        (
            "data beyond the window",
            ack(1002 + 10_000_000, 105),
            b"y",
            1,
        ),
        (
            "a RST in the window, not at RCV.NXT",
            TcpRepr {
                flags: TcpFlags::RST,
                ack_number: None,
                ..ack(1005, 106)
            },
            b"",
            1,
        ),
        (
            "an ACK of data never sent",
            from_a(TcpFlags::ACK, 1002, snd_nxt + 1000, 107),
            b"",
            1,
        ),
        // TS.Recent is 107 now. Challenge ACKs: three a second here, this the third.
        (
            "a SYN the table keeps out (same TSval, lower ISN)",
            full_syn(40000, 500, 107),
            b"",
            1,
        ),
        (
            "a fourth challenge in the second",
            from_a(TcpFlags::ACK, 1002, snd_nxt + 1000, 108),
            b"",
            0,
        ),
        ("an ACK", ack(1002, 108), b"", 0),
        (
            "a RST at RCV.NXT",
            TcpRepr {
                flags: TcpFlags::RST,
                ack_number: None,
                ..ack(1002, 109)
            },
            b"",
            0,
        ),
    ];
    for (what, seg, payload, replies) in probes {
        now += Duration::from_millis(10);
        let want = answer(&mut held, now, &seg, payload);
        let got = answer(&mut compact, now, &seg, payload);
        assert_eq!(want.len(), replies, "{what}: the connection sent {want:?}");
        assert_eq!(got, want, "{what}");
        assert_eq!(
            compact.counters().nonzero_drops().collect::<Vec<_>>(),
            held.counters().nonzero_drops().collect::<Vec<_>>(),
            "{what}"
        );
    }
    for reason in [
        DropReason::TcpPaws,
        DropReason::TcpOutOfWindow,
        DropReason::TcpBadAck,
        DropReason::TcpChallengeAckLimited,
    ] {
        assert!(compact.counters().drops(reason) > 0, "{reason:?}");
    }
    // The exact RST ended it: the 4-tuple is forgotten, and the listener's SYN-cookie check
    // refuses a further ACK with a RST. (The held connection is CLOSED until let go of.)
    assert_eq!(compact.tcp_time_wait_count(), 0);
    assert_eq!(held.tcp_conns()[0].state, State::Closed);
    let rst = answer(&mut compact, now, &ack(1002, 110), &[]);
    assert!(rst.len() == 1 && rst[0].flags.rst(), "{rst:?}");
}

#[test]
fn compact_time_wait_ends_after_two_msl_later_when_the_fin_comes_again() {
    let (_, mut b, entered) = twins();
    let two_msl = b.config.tcp.time_wait;
    assert!(b.poll_at().is_some_and(|t| t <= entered + two_msl));
    // The FIN again, late in 2·MSL: acknowledged, and 2·MSL starts over.
    let fin_at = entered + two_msl - Duration::from_secs(10);
    let fin = from_a(TcpFlags::FIN | TcpFlags::ACK, 1001, SeqNumber(0), 103);
    assert_eq!(answer(&mut b, fin_at, &fin, &[]).len(), 1);
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.poll(entered + two_msl + Duration::from_secs(1), &mut out);
    assert_eq!(b.tcp_time_wait_count(), 1, "still in TIME-WAIT");
    let end = fin_at + two_msl;
    assert!(b.poll_at().is_some_and(|t| t <= end));
    out.clear();
    b.poll(end, &mut out);
    assert!(out.is_empty(), "ended silently");
    assert_eq!(b.tcp_time_wait_count(), 0);
    assert!(b.tcp_conns().is_empty());
    // The 4-tuple is free: a new SYN opens a connection, whatever its timestamp. (Its SYN-ACK
    // waits for ARP: A's entry aged out meanwhile.)
    answer_frames(&mut b, end, &full_syn(40000, 5000, 1));
    let conns = b.tcp_conns();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].state, State::SynReceived);
}

fn answer_frames(b: &mut Stack, now: Instant, seg: &TcpRepr) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.receive(now, &tcp_frame(seg, &[]), &mut out);
    b.poll(now, &mut out);
    out
}

#[test]
fn an_active_close_in_compact_time_wait_keeps_its_port_from_a_new_connect() {
    let mut b = node_b();
    let remote = SocketAddrV4::new(IP_A, 80);
    let now = Instant::from_secs(2);
    let h = b
        .tcp_connect(now, remote, Some(50000), &|_| true)
        .expect("connect");
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.poll(now, &mut out);
    let syn_out = parse_tcp(&out[0]);
    let a = |flags: TcpFlags, seq: u32, ack: SeqNumber| TcpRepr {
        src_port: 80,
        dst_port: 50000,
        flags,
        seq_number: SeqNumber(seq),
        ack_number: Some(ack),
        max_seg_size: None,
        window_len: 1000,
        ..syn(50000)
    };
    out.clear();
    let synack = TcpRepr {
        max_seg_size: Some(1460),
        ..a(TcpFlags::SYN | TcpFlags::ACK, 7000, syn_out.seq_number + 1)
    };
    b.receive(now, &tcp_frame(&synack, &[]), &mut out);
    b.tcp_close(h).unwrap();
    b.tcp_release(h);
    b.poll(now, &mut out);
    let fin = segments(&out)
        .into_iter()
        .find(|s| s.flags.fin())
        .expect("FIN");
    out.clear();
    let fin_ack = a(TcpFlags::FIN | TcpFlags::ACK, 7001, fin.seq_number + 1);
    b.receive(now, &tcp_frame(&fin_ack, &[]), &mut out);
    b.poll(now, &mut out);
    assert_eq!((b.tcp_conn_count(), b.tcp_time_wait_count()), (0, 1));
    assert_eq!(
        b.tcp_connect(now, remote, Some(50000), &|_| true),
        Err(TcpError::AddrInUse)
    );
    // An ephemeral port never lands on it.
    for _ in 0..200 {
        let h = b.tcp_connect(now, remote, None, &|_| true).unwrap();
        assert_ne!(b.tcp_info(h).unwrap().local.port(), 50000);
        b.tcp_abort(h).unwrap();
        b.tcp_release(h);
    }
}

/// Entries a RST ends (or a new incarnation takes) leave their item in the expiry queue; the
/// queue is compacted as they pile up, so its length follows the table, not the connection rate.
#[test]
fn the_expiry_queue_stays_bounded_by_the_table_not_the_connection_rate() {
    let mut b = node_b();
    b.tcp_listen(80, 8).unwrap();
    let mut now = Instant::from_secs(2);
    for port in 40000..40600u16 {
        let (h, t) = b_closes_first(&mut b, port, now);
        b.tcp_release(h);
        let rst = TcpRepr {
            src_port: port,
            flags: TcpFlags::RST,
            ack_number: None,
            ..from_a(TcpFlags::RST, 1002, SeqNumber(0), 103)
        };
        assert!(answer(&mut b, t, &rst, &[]).is_empty());
        assert_eq!(b.tcp_time_wait_count(), 0, "port {port}");
        assert!(b.time_wait_queue_len() <= 64 + 1, "port {port}");
        now = t + Duration::from_millis(1);
    }
}

/// With events on (tracing), a compact TIME-WAIT's end is recorded as the connection's would
/// be: TIME-WAIT to CLOSED, at expiry and when a new incarnation takes the 4-tuple.
#[test]
fn a_compact_time_wait_s_end_is_an_event() {
    use crate::iface::event::StackEvent;
    let ended = |b: &mut Stack| {
        let mut evs = Vec::new();
        b.drain_events(&mut evs);
        evs.iter()
            .filter(|e| {
                matches!(
                    e,
                    StackEvent::TcpState {
                        from: State::TimeWait,
                        to: State::Closed,
                        ..
                    }
                )
            })
            .count()
    };
    // At expiry.
    let (_, mut b, entered) = twins();
    b.set_events(true);
    let mut out: Vec<Vec<u8>> = Vec::new();
    b.poll(entered + b.config.tcp.time_wait, &mut out);
    assert_eq!(b.tcp_time_wait_count(), 0);
    assert_eq!(ended(&mut b), 1);
    // Taken by a newer SYN.
    let (_, mut b, entered) = twins();
    b.set_events(true);
    answer_frames(&mut b, entered, &full_syn(40000, 5000, 500));
    assert_eq!(b.tcp_time_wait_count(), 0);
    assert_eq!(ended(&mut b), 1);
}
