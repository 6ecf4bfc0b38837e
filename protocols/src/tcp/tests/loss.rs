//! Loss: retransmission timeout with backoff and Karn's rule, R2 give-up, fast retransmit and
//! NewReno recovery.

use super::*;
use crate::tcp::{ConnError, RecvError, SendError};

#[test]
fn rto_backoff_and_karn() {
    // Handshake RTT 10 ms (no timestamps): SRTT 10, RTTVAR 5, RTO = max(200, 30) = 200 ms.
    let mut h = established(&plain_config(), 8192);
    assert_eq!(h.conn.rto(), Duration::from_millis(200));
    h.now = ms(100);
    h.conn.send(&[1; 500]).unwrap();
    let (first, _) = h.expect();
    assert_eq!(h.conn.poll_at(), Some(ms(300)));
    // Timeouts at +200, +400, +800 ms, each resending the same segment.
    for (at, rto_after) in [(300, 400), (700, 800), (1500, 1600)] {
        assert_eq!(h.fire_next_timer(), ms(at));
        let (again, payload) = h.expect();
        assert_eq!((again.seq_number, payload.len()), (first.seq_number, 500));
        h.expect_nothing();
        assert_eq!(h.conn.rto(), Duration::from_millis(rto_after));
    }
    assert_eq!(h.conn.cwnd(), 1000, "one segment after a timeout");
    // The ACK of a retransmitted segment gives no RTT sample (Karn): the backed-off RTO stays
    // until a fresh segment is timed.
    h.now = ms(1510);
    h.send(peer(ACK, 0, Some(500), 8192), &[]);
    assert_eq!(h.conn.rtt(), Some(Duration::from_millis(10)));
    assert_eq!(h.conn.rto(), Duration::from_millis(1600));
    assert_eq!(h.conn.poll_at(), None);
    // A new segment, acknowledged after 50 ms: a valid sample, backoff cleared.
    h.conn.send(&[2; 100]).unwrap();
    h.expect();
    h.now = ms(1560);
    h.send(peer(ACK, 0, Some(600), 8192), &[]);
    // SRTT = 7/8*10 + 1/8*50 = 15; RTTVAR = 3/4*5 + 1/4*40 = 13.75; RTO = max(200, 70) = 200.
    assert_eq!(h.conn.rtt(), Some(Duration::from_millis(15)));
    assert_eq!(h.conn.rto(), Duration::from_millis(200));
}

#[test]
fn timestamps_give_samples_even_for_retransmissions() {
    let cfg = TcpConfig {
        timestamps: true,
        ..plain_config()
    };
    let mut h = Harness {
        conn: Connection::connect(&cfg, LOCAL_PORT, REMOTE_PORT, LOCAL_ISS, ms(0)),
        now: ms(0),
    };
    let tsval0 = h.expect().0.timestamp.expect("offered").tsval;
    h.now = ms(40);
    let ts = |tsval, tsecr| Some(crate::wire::tcp::TcpTimestamp { tsval, tsecr });
    h.send(
        TcpRepr {
            seq_number: REMOTE_ISS,
            timestamp: ts(1, tsval0),
            ..peer(SYN, 0, Some(0), 8192)
        },
        &[],
    );
    assert_eq!(h.conn.rtt(), Some(Duration::from_millis(40)));
    h.expect();
    h.conn.send(&[0; 10]).unwrap();
    let (seg, _) = h.expect();
    let sent_ts = seg.timestamp.expect("on").tsval;
    assert_eq!(sent_ts, tsval0 + 40);
    h.now = ms(140);
    h.send(
        TcpRepr {
            timestamp: ts(2, sent_ts),
            ..peer(ACK, 0, Some(10), 8192)
        },
        &[],
    );
    // SRTT = 7/8*40 + 1/8*100 = 47.5.
    assert_eq!(h.conn.rtt(), Some(Duration::from_micros(47_500)));
    // PAWS: a segment with an older TSval is dropped (and ACKed).
    h.send(
        TcpRepr {
            timestamp: ts(1, sent_ts),
            ..peer(ACK, 0, Some(10), 8192)
        },
        b"old",
    );
    let (a, _) = h.expect();
    assert_eq!(a.ack_number, Some(rseq(0)));
    assert_eq!(h.conn.recv_queue(), 0);
}

#[test]
fn r2_gives_up_with_timed_out() {
    let cfg = TcpConfig {
        max_retransmissions: 3,
        ..plain_config()
    };
    let mut h = established(&cfg, 8192);
    h.conn.send(b"data").unwrap();
    h.expect();
    for _ in 0..3 {
        h.fire_next_timer();
        assert_eq!(h.expect().1, b"data");
    }
    h.fire_next_timer();
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.conn.error(), Some(ConnError::TimedOut));
    assert!(h.conn.take_wakeup());
    assert!(h.conn.is_closed());
    assert_eq!(h.conn.poll_at(), None);
    h.expect_nothing();
    assert_eq!(
        h.conn.recv(&mut [0; 8]),
        Err(RecvError::Conn(ConnError::TimedOut))
    );
    assert_eq!(h.conn.send(b"x"), Err(SendError::NotConnected));
}

#[test]
fn fast_retransmit_after_three_dupacks_with_newreno_recovery() {
    let cfg = TcpConfig {
        congestion: crate::tcp::CongestionAlgorithm::NewReno,
        ..plain_config()
    };
    let mut h = established(&cfg, 60_000);
    h.conn.send(&vec![7; 20_000]).unwrap();
    let segs = h.drain();
    assert_eq!(segs.len(), 10, "initial window: 10 segments of 1000");
    assert_eq!(h.conn.cwnd(), 10_000);
    h.now = ms(20);
    // Segments 0 and 3 are lost; the peer ACKs segments 1, 2, 4.. with duplicate ACKs.
    // RFC 3042 limited transmit: each of the first two duplicates lets one new segment out.
    h.send(peer(ACK, 0, Some(0), 60_000), &[]);
    assert_eq!(h.expect().0.seq_number, lseq(10_000));
    h.expect_nothing();
    h.send(peer(ACK, 0, Some(0), 60_000), &[]);
    assert_eq!(h.expect().0.seq_number, lseq(11_000));
    h.expect_nothing();
    h.send(peer(ACK, 0, Some(0), 60_000), &[]);
    let (rexmit, payload) = h.expect();
    assert_eq!(
        (rexmit.seq_number, payload.len()),
        (lseq(0), 1000),
        "fast retransmit on the 3rd dupack"
    );
    // ssthresh = flight 12000 / 2, cwnd = ssthresh + 3*MSS.
    assert_eq!(h.conn.ssthresh(), 6000);
    assert_eq!(h.conn.cwnd(), 9000);
    h.expect_nothing();
    // More dupacks inflate the window: after 4 more, cwnd 13000 allows one new segment.
    for _ in 0..4 {
        h.send(peer(ACK, 0, Some(0), 60_000), &[]);
    }
    assert_eq!(h.conn.cwnd(), 13_000);
    let (new, _) = h.expect();
    assert_eq!(new.seq_number, lseq(12_000));
    h.expect_nothing();
    // Partial ACK (up to the second hole at 3000): the next hole is retransmitted at once.
    h.now = ms(40);
    h.send(peer(ACK, 0, Some(3000), 60_000), &[]);
    let out = h.drain();
    // cwnd = 13000 - 3000 + 1000 = 11000 over a flight of 10000: one new segment too.
    assert_eq!(h.conn.cwnd(), 11_000);
    assert_eq!(
        out.iter().map(|(r, _)| r.seq_number).collect::<Vec<_>>(),
        vec![lseq(3000), lseq(13_000)]
    );
    // Full ACK (past the recovery point, 12000): recovery ends, cwnd deflates.
    h.send(peer(ACK, 0, Some(13_000), 60_000), &[]);
    // min(ssthresh 6000, flight 1000 + MSS).
    assert_eq!(h.conn.cwnd(), 2000);
    assert!(!h.conn.in_recovery());
    assert_eq!(h.conn.send_queue(), 7000);
}
