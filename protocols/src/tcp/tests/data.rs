//! Data transfer: acceptability, delayed ACK, reassembly with SACK, flow control, Nagle,
//! zero-window probing.

use super::*;
use crate::tcp::RecvError;

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn read_all(h: &mut Harness) -> Vec<u8> {
    let mut out = vec![0; 1 << 17];
    match h.conn.recv(&mut out) {
        Ok(n) => out[..n].to_vec(),
        Err(RecvError::WouldBlock) => Vec::new(),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn unacceptable_segments_get_an_ack() {
    let mut h = established(&plain_config(), 8192);
    h.send(peer(ACK, 0, Some(0), 8192), &bytes(500, 1));
    h.advance(Duration::from_millis(40));
    let (ack, _) = h.expect();
    assert_eq!(ack.ack_number, Some(rseq(500)));
    // An old duplicate: ACK again, nothing delivered twice.
    h.send(peer(ACK, 0, Some(0), 8192), &bytes(500, 1));
    let (dup, _) = h.expect();
    assert_eq!(
        (dup.flags, dup.seq_number, dup.ack_number),
        (ACK, lseq(0), Some(rseq(500)))
    );
    // Beyond the window (65535 - 500 free): ACK, dropped.
    h.send(peer(ACK, 500 + 70_000, Some(0), 8192), &bytes(10, 2));
    let (a, _) = h.expect();
    assert_eq!(a.ack_number, Some(rseq(500)));
    // A RST outside the window is dropped silently; one in it but not at RCV.NXT is challenged.
    h.send(peer(RST, 500 + 70_000, None, 0), &[]);
    h.expect_nothing();
    h.send(peer(RST, 600, None, 0), &[]);
    let (challenge, _) = h.expect();
    assert_eq!(challenge.ack_number, Some(rseq(500)));
    assert_eq!(h.conn.state(), State::Established);
    // A SYN in a synchronized state: challenge ACK too.
    h.send(peer(SYN, 500, None, 0), &[]);
    assert_eq!(h.expect().0.ack_number, Some(rseq(500)));
    assert_eq!(read_all(&mut h), bytes(500, 1));
}

#[test]
fn delayed_ack_timing_and_every_second_segment() {
    let mut h = established(&plain_config(), 8192);
    h.now = ms(100);
    h.send(peer(ACK, 0, Some(0), 8192), &bytes(100, 0));
    h.expect_nothing();
    assert!(h.conn.take_wakeup());
    assert_eq!(h.conn.poll_at(), Some(ms(140)));
    h.advance_to(ms(139));
    h.expect_nothing();
    h.advance_to(ms(140));
    let (ack, _) = h.expect();
    assert_eq!(ack.ack_number, Some(rseq(100)));
    assert_eq!(ack.window_len, 65535 - 100);
    assert_eq!(h.conn.poll_at(), None);

    // Two full-size segments: the second is ACKed at once.
    h.now = ms(200);
    h.send(peer(ACK, 100, Some(0), 8192), &bytes(1000, 1));
    h.expect_nothing();
    h.send(peer(ACK, 1100, Some(0), 8192), &bytes(1000, 2));
    let (ack, _) = h.expect();
    assert_eq!(ack.ack_number, Some(rseq(2100)));
    assert_eq!(h.conn.poll_at(), None, "the delayed ACK timer is stopped");
    assert_eq!(h.conn.recv_queue(), 2100);

    // Outgoing data carries the pending ACK.
    h.send(peer(ACK, 2100, Some(0), 8192), &bytes(10, 3));
    h.conn.send(b"reply").unwrap();
    let (data, payload) = h.expect();
    assert_eq!(payload, b"reply");
    assert_eq!(data.ack_number, Some(rseq(2110)));
    h.expect_nothing();
    assert!(
        h.conn
            .poll_at()
            .is_some_and(|t| t > h.now + Duration::from_millis(100)),
        "only the RTO"
    );
}

#[test]
fn out_of_order_data_held_with_sack_blocks() {
    let cfg = TcpConfig {
        sack: true,
        ..plain_config()
    };
    let mut h = Harness {
        conn: Connection::connect(&cfg, LOCAL_PORT, REMOTE_PORT, LOCAL_ISS, ms(0)),
        now: ms(0),
    };
    assert!(h.expect().0.sack_permitted);
    h.send(
        TcpRepr {
            seq_number: REMOTE_ISS,
            sack_permitted: true,
            ..peer(SYN, 0, Some(0), 8192)
        },
        &[],
    );
    h.expect();
    let data = bytes(4000, 9);

    h.send(peer(ACK, 1000, Some(0), 8192), &data[1000..2000]);
    let (a, _) = h.expect();
    assert_eq!(
        a.ack_number,
        Some(rseq(0)),
        "out of order: immediate duplicate ACK"
    );
    assert_eq!(a.sack_ranges[0], Some((rseq(1000), rseq(2000))));
    assert_eq!(a.sack_ranges[1], None);
    assert_eq!(h.conn.recv(&mut [0; 10]), Err(RecvError::WouldBlock));

    h.send(peer(ACK, 3000, Some(0), 8192), &data[3000..4000]);
    let (a, _) = h.expect();
    assert_eq!(a.ack_number, Some(rseq(0)));
    assert_eq!(
        a.sack_ranges[..3],
        [
            Some((rseq(3000), rseq(4000))),
            Some((rseq(1000), rseq(2000))),
            None
        ],
        "most recent first"
    );

    h.send(peer(ACK, 0, Some(0), 8192), &data[..1000]);
    let (a, _) = h.expect();
    assert_eq!(a.ack_number, Some(rseq(2000)));
    assert_eq!(a.sack_ranges[..2], [Some((rseq(3000), rseq(4000))), None]);
    // The window counts only in-order data not yet read.
    assert_eq!(a.window_len, 65535 - 2000);

    h.send(peer(ACK, 2000, Some(0), 8192), &data[2000..3000]);
    let (a, _) = h.expect();
    assert_eq!(a.ack_number, Some(rseq(4000)), "hole filled: immediate ACK");
    assert_eq!(a.sack_ranges[0], None);
    assert_eq!(read_all(&mut h), data);
}

#[test]
fn out_of_order_fin_taken_when_the_hole_fills() {
    let mut h = established(&plain_config(), 8192);
    h.send(peer(FIN | ACK, 500, Some(0), 8192), &bytes(500, 1)[..]);
    h.expect();
    assert_eq!(h.conn.state(), State::Established);
    h.send(peer(ACK, 0, Some(0), 8192), &bytes(500, 0));
    let (a, _) = h.expect();
    assert_eq!(a.ack_number, Some(rseq(1001)));
    assert_eq!(h.conn.state(), State::CloseWait);
    assert_eq!(read_all(&mut h).len(), 1000);
    assert_eq!(h.conn.recv(&mut [0; 4]), Ok(0));
}

#[test]
fn respects_peer_window_and_scale() {
    let mut h = established(&plain_config(), 2500);
    assert_eq!(h.conn.send(&bytes(10_000, 0)), Ok(10_000));
    let segs = h.drain();
    let lens: Vec<usize> = segs.iter().map(|(r, _)| r.payload_len).collect();
    // 500 bytes more would fit, but that is under half the largest window: sender SWS avoidance.
    assert_eq!(lens, vec![1000, 1000]);
    h.now = ms(20);
    h.send(peer(ACK, 0, Some(2000), 3000), &[]);
    let lens: Vec<usize> = h.drain().iter().map(|(r, _)| r.payload_len).collect();
    assert_eq!(lens, vec![1000, 1000, 1000]);
    assert_eq!(h.conn.send_queue(), 8000);
    assert_eq!(h.conn.send_capacity(), 64 * 1024 - 8000);
}

#[test]
fn receive_window_closes_and_reopens_with_an_update() {
    let cfg = TcpConfig {
        rx_buffer: 4000,
        ..plain_config()
    };
    let mut h = established(&cfg, 8192);
    for i in 0..4 {
        h.send(peer(ACK, i * 1000, Some(0), 8192), &bytes(1000, i as u8));
    }
    let acks = h.drain();
    assert_eq!(
        acks.last().map(|(r, _)| (r.ack_number, r.window_len)),
        Some((Some(rseq(4000)), 0))
    );
    // Zero window: data is not acceptable, but a probe at RCV.NXT is answered.
    h.send(peer(ACK, 4000, Some(0), 8192), &bytes(1, 0));
    let (a, _) = h.expect();
    assert_eq!((a.ack_number, a.window_len), (Some(rseq(4000)), 0));
    // Reading a little is not worth an update (SWS avoidance); reading most of it is.
    let mut small = [0u8; 100];
    assert_eq!(h.conn.recv(&mut small), Ok(100));
    h.expect_nothing();
    let mut big = [0u8; 3000];
    assert_eq!(h.conn.recv(&mut big), Ok(3000));
    let (update, _) = h.expect();
    assert_eq!(
        (update.ack_number, update.window_len),
        (Some(rseq(4000)), 3100)
    );
    h.expect_nothing();
}

#[test]
fn nagle_holds_small_segments_until_acked() {
    let mut h = established(&plain_config(), 8192);
    h.conn.send(b"a").unwrap();
    assert_eq!(h.expect().1, b"a");
    h.conn.send(b"b").unwrap();
    h.conn.send(b"c").unwrap();
    h.expect_nothing();
    h.now = ms(30);
    h.send(peer(ACK, 0, Some(1), 8192), &[]);
    let (seg, payload) = h.expect();
    assert_eq!((seg.seq_number, payload.as_slice()), (lseq(1), &b"bc"[..]));

    h.conn.set_nodelay(true);
    h.conn.send(b"d").unwrap();
    assert_eq!(h.expect().1, b"d", "no Nagle: sent with data in flight");
}

#[test]
fn zero_window_probe_with_backoff() {
    let mut h = established(&plain_config(), 0);
    assert_eq!(h.conn.send(b"hello"), Ok(5));
    h.expect_nothing();
    // The handshake RTT was 10 ms: the RTO is the 200 ms floor.
    let mut at = h.now;
    for i in 0..4 {
        at += Duration::from_millis(200 << i);
        assert_eq!(h.fire_next_timer(), at);
        let (probe, payload) = h.expect();
        assert_eq!(
            (probe.flags, probe.seq_number, payload.len()),
            (ACK, LOCAL_ISS, 0)
        );
        h.expect_nothing();
        // The peer answers with its still-closed window.
        h.send(peer(ACK, 0, Some(0), 0), &[]);
        h.expect_nothing();
        assert_eq!(h.conn.state(), State::Established);
    }
    // The window opens: the data goes and the persist timer stops.
    h.send(peer(ACK, 0, Some(0), 1000), &[]);
    let (seg, payload) = h.expect();
    assert_eq!(
        (seg.seq_number, payload.as_slice()),
        (lseq(0), &b"hello"[..])
    );
    assert_eq!(
        h.conn.poll_at(),
        Some(h.now + Duration::from_millis(200)),
        "retransmission timer"
    );
}

/// RFC 9293 §3.8.6.2.1: data held by sender-side SWS avoidance with nothing in flight is sent
/// when the override (persist) timer fires: a peer whose window update was lost must not stall
/// the connection (the smoltcp sweep's seeds 1002, 1043, 1149, ... found this).
#[test]
fn sws_held_data_goes_out_when_the_override_timer_fires() {
    let mut h = established(&plain_config(), 4000);
    let data = bytes(6000, 9);
    assert_eq!(h.conn.send(&data), Ok(6000));
    let first: usize = h.drain().iter().map(|(_, p)| p.len()).sum();
    assert_eq!(first, 4000, "the peer's whole window");
    // The peer takes it all but offers only 900 bytes: less than an MSS (1000) and than half its
    // largest window, so SWS avoidance holds the rest; its later window update is lost.
    h.now = ms(20);
    h.send(peer(ACK, 0, Some(4000), 900), &[]);
    h.expect_nothing();
    let at = h
        .conn
        .poll_at()
        .expect("a timer must run while data is held");
    h.advance_to(at);
    let (seg, payload) = h.expect();
    assert_eq!((seg.seq_number, payload.len()), (lseq(4000), 900));
    assert_eq!(payload, &data[4000..4000 + 900]);
    h.expect_nothing();
}

#[test]
fn tso_segments_fill_the_congestion_window_in_whole_mss() {
    let cfg = TcpConfig {
        tso_max: 65_000,
        ..plain_config()
    };
    let mut h = established(&cfg, 60_000);
    let data = bytes(30_500, 9);
    assert_eq!(h.conn.send(&data), Ok(30_500));
    let mut buf = vec![0u8; 65_535];
    let seg = h
        .conn
        .poll_transmit(h.now, &mut buf)
        .expect("a TSO segment");
    // The initial window (10 MSS) in one segment, cut by the device into 1000-byte pieces.
    assert_eq!(seg.payload_len, 10_000);
    assert_eq!(h.conn.gso_size(&seg), 1000);
    assert_eq!(&buf[20..20 + 10_000], &data[..10_000]);
    assert!(
        h.conn.poll_transmit(h.now, &mut buf).is_none(),
        "cwnd is full"
    );
    // With MTU room only, segments stay one MSS.
    h.send(peer(ACK, 0, Some(10_000), 60_000), &[]);
    let mut small = [0u8; 1500];
    let seg = h.conn.poll_transmit(h.now, &mut small).expect("a segment");
    assert_eq!(seg.payload_len, 1000);
    // A TSO segment that does not empty the queue ends on an MSS boundary.
    let seg = h
        .conn
        .poll_transmit(h.now, &mut buf)
        .expect("a TSO segment");
    assert_eq!(seg.payload_len % 1000, 0);
    assert!(seg.payload_len > 1000);
}
