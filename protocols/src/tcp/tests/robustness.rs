//! RFC 5961 challenge ACKs and ACK validation, PAWS (RFC 7323 §5), urgent marks, window scale
//! limits.

use super::*;
use crate::tcp::{ConnError, SegmentDrop};
use crate::wire::tcp::TcpTimestamp;

#[test]
fn rst_in_window_but_not_exact_draws_a_challenge_ack() {
    let mut h = established(&plain_config(), 8192);
    h.now = ms(20);
    h.send(peer(RST, 100, None, 0), &[]);
    assert_eq!(h.conn.state(), State::Established);
    let (ack, _) = h.expect();
    assert_eq!(ack.flags, ACK);
    assert_eq!(ack.ack_number, Some(rseq(0)));
    h.expect_nothing();
    // Out of the window: dropped silently.
    h.send(peer(RST, 1_000_000, None, 0), &[]);
    h.expect_nothing();
    assert_eq!(h.conn.take_drop(), Some(SegmentDrop::OutOfWindow));
    // Exactly RCV.NXT: the connection is reset.
    h.send(peer(RST, 0, None, 0), &[]);
    assert_eq!(h.conn.error(), Some(ConnError::Reset));
}

#[test]
fn syn_in_a_synchronized_state_draws_a_challenge_ack() {
    let mut h = established(&plain_config(), 8192);
    for seq in [5usize, 0, 3_000_000_000] {
        let syn = TcpRepr {
            seq_number: REMOTE_ISS + seq,
            ..peer(SYN, 0, None, 8192)
        };
        h.send(syn, &[]);
        assert_eq!(h.conn.state(), State::Established);
        let (ack, _) = h.expect();
        assert_eq!((ack.flags, ack.ack_number), (ACK, Some(rseq(0))));
        h.expect_nothing();
    }
}

#[test]
fn challenge_acks_are_rate_limited_per_second() {
    let cfg = TcpConfig {
        challenge_ack_limit: 2,
        ..plain_config()
    };
    let mut h = established(&cfg, 8192);
    h.now = ms(1100);
    for _ in 0..2 {
        h.send(peer(RST, 10, None, 0), &[]);
        h.expect();
    }
    h.send(peer(RST, 10, None, 0), &[]);
    h.expect_nothing();
    assert_eq!(h.conn.take_drop(), Some(SegmentDrop::ChallengeAckLimited));
    // A new second, a new budget.
    h.now = ms(2000);
    h.send(peer(RST, 10, None, 0), &[]);
    h.expect();
}

#[test]
fn acks_of_unsent_or_ancient_data_are_dropped_with_an_ack() {
    let mut h = established(&plain_config(), 8192);
    h.conn.send(&[1; 3000]).unwrap();
    h.drain();
    // Acknowledges data never sent: dropped, payload not taken, ACK back.
    h.send(peer(ACK, 0, Some(5000), 8192), b"xyz");
    assert_eq!(h.conn.take_drop(), Some(SegmentDrop::BadAck));
    assert_eq!(h.conn.recv_queue(), 0);
    let (ack, _) = h.expect();
    assert_eq!(ack.ack_number, Some(rseq(0)));
    assert_eq!(h.conn.send_queue(), 3000);
    // Advance SND.UNA well past MAX.SND.WND (8192).
    h.conn.send(&[1; 20_000]).unwrap();
    let mut acked = 0;
    while acked < 20_000 {
        let out = h.drain();
        let Some((last, _)) = out.last() else { break };
        acked = (last.seq_number - lseq(0)) + last.payload_len;
        h.send(peer(ACK, 0, Some(acked), 8192), &[]);
    }
    assert!(acked > 8192 + 1);
    // An ACK older than SND.UNA - MAX.SND.WND: dropped with an ACK, its data ignored.
    h.send(peer(ACK, 0, Some(0), 8192), b"old");
    assert_eq!(h.conn.take_drop(), Some(SegmentDrop::BadAck));
    assert_eq!(h.conn.recv_queue(), 0);
    assert!(h.recv().is_some());
    // An old ACK within the window is fine: the data is taken.
    h.send(peer(ACK, 0, Some(acked - 100), 8192), b"new");
    assert_eq!(h.conn.recv_queue(), 3);
}

fn ts(tsval: u32, tsecr: u32) -> Option<TcpTimestamp> {
    Some(TcpTimestamp { tsval, tsecr })
}

#[test]
fn paws_drops_old_timestamps_until_ts_recent_is_24_days_stale() {
    let cfg = TcpConfig {
        timestamps: true,
        ..plain_config()
    };
    let mut h = established_with(&cfg, 8192, |s| s.timestamp = ts(1000, 0));
    h.expect_nothing();
    h.send(
        TcpRepr {
            timestamp: ts(1005, 0),
            ..peer(ACK, 0, Some(0), 8192)
        },
        b"abc",
    );
    assert_eq!(h.conn.recv_queue(), 3);
    h.drain();
    // TSval 1004 < TS.Recent 1005: an old duplicate (wrapped sequence numbers look fresh).
    h.send(
        TcpRepr {
            timestamp: ts(1004, 0),
            ..peer(ACK, 3, Some(0), 8192)
        },
        b"def",
    );
    assert_eq!(h.conn.take_drop(), Some(SegmentDrop::Paws));
    assert_eq!(h.conn.recv_queue(), 3);
    let (ack, _) = h.expect();
    assert_eq!(ack.ack_number, Some(rseq(3)));
    // After 25 idle days TS.Recent is stale and the old TSval is accepted (§5.5).
    h.now = ms(25 * 24 * 3600 * 1000);
    h.send(
        TcpRepr {
            timestamp: ts(1004, 0),
            ..peer(ACK, 3, Some(0), 8192)
        },
        b"def",
    );
    assert_eq!(h.conn.recv_queue(), 6);
    // A RST is exempt from PAWS (§5.3 R1): an exact RST with an old TSval still resets.
    h.send(
        TcpRepr {
            timestamp: ts(1, 0),
            ..peer(RST, 6, None, 0)
        },
        &[],
    );
    assert_eq!(h.conn.error(), Some(ConnError::Reset));
}

/// An urgent segment from the peer at stream offset `off` with pointer `pointer`.
fn urgent(h: &mut Harness, off: usize, pointer: u16, data: &[u8]) {
    h.send(
        TcpRepr {
            urgent_pointer: pointer,
            ..peer(TcpFlags::URG, off, Some(0), 8192)
        },
        data,
    );
}

/// rlogind's control byte: `send(fd, "\x80", 1, MSG_OOB)` after some data. The byte stays in
/// line (RFC 6093 §6); the pointer (the byte after it, RFC 6093 §4) marks where it is, a read
/// stops short of it, and the read that starts at it says so.
#[test]
fn urgent_byte_is_delivered_in_line_at_a_mark_reads_stop_at() {
    let mut h = established(&plain_config(), 8192);
    h.send(peer(ACK, 0, Some(0), 8192), b"Password: ");
    urgent(&mut h, 10, 1, b"\x80");
    h.send(peer(ACK, 11, Some(0), 8192), b"$ ");
    assert_eq!(h.conn.urgent_mark(), Some(10));
    let mut buf = [0u8; 64];
    assert_eq!(h.conn.recv_marked(&mut buf), Ok((10, false)));
    assert_eq!(&buf[..10], b"Password: ");
    assert_eq!(h.conn.urgent_mark(), Some(0));
    // At the mark: the urgent byte and what follows it, flagged.
    assert_eq!(h.conn.recv_marked(&mut buf), Ok((3, true)));
    assert_eq!(&buf[..3], b"\x80$ ");
    assert_eq!(h.conn.urgent_mark(), None);
    assert_eq!(h.conn.state(), State::Established);
}

#[test]
fn urgent_pointer_cases_zero_ahead_stale_and_newer() {
    let mut h = established(&plain_config(), 8192);
    let mut buf = [0u8; 64];
    // A pointer of 0 names no byte of the segment: no mark, the data is plain.
    urgent(&mut h, 0, 0, b"ab");
    assert_eq!(h.conn.urgent_mark(), None);
    // A retransmission whose pointer names data already received (not yet read) is not a
    // new mark.
    urgent(&mut h, 0, 2, b"ab");
    assert_eq!(h.conn.urgent_mark(), None);
    // A pointer past the end of the data (and one on a bare ACK): the mark waits ahead and
    // reads stop short of it.
    urgent(&mut h, 2, 5, b"cd");
    assert_eq!(h.conn.urgent_mark(), Some(6));
    urgent(&mut h, 4, 3, b"");
    assert_eq!(h.conn.urgent_mark(), Some(6));
    assert_eq!(h.conn.recv(&mut buf), Ok(4));
    assert_eq!(&buf[..4], b"abcd");
    assert_eq!(h.conn.urgent_mark(), Some(2));
    // A newer pointer moves the mark (one mark at a time, as in BSD and Linux); the older
    // urgent byte becomes plain data.
    h.send(peer(ACK, 4, Some(0), 8192), b"ef");
    urgent(&mut h, 6, 4, b"ghij");
    assert_eq!(h.conn.urgent_mark(), Some(5));
    assert_eq!(h.conn.recv_marked(&mut buf), Ok((5, false)));
    assert_eq!(&buf[..5], b"efghi");
    assert_eq!(h.conn.recv_marked(&mut buf), Ok((1, true)));
    assert_eq!(buf[0], b'j');
    assert_eq!(h.conn.urgent_mark(), None);
    assert_eq!(h.conn.state(), State::Established);
}

/// The peer's ISN is 0xffff_ff00: the mark sits past the sequence-number wrap.
#[test]
fn urgent_mark_across_the_sequence_wrap() {
    let mut h = established(&plain_config(), 8192);
    let data = vec![7u8; 400];
    urgent(&mut h, 0, 300, &data);
    assert_eq!(h.conn.urgent_mark(), Some(299));
    let mut buf = [0u8; 1000];
    assert_eq!(h.conn.recv_marked(&mut buf), Ok((299, false)));
    assert_eq!(h.conn.recv_marked(&mut buf), Ok((101, true)));
    assert_eq!(h.conn.urgent_mark(), None);
}

#[test]
fn window_scale_above_14_is_clamped() {
    let cfg = TcpConfig {
        window_scaling: true,
        ..plain_config()
    };
    let h = established_with(&cfg, 1000, |s| s.window_scale = Some(20));
    assert_eq!(h.conn.window_scales().1, 14);
}

/// Found by the `tcp_conn` fuzz target: a SYN-ACK announcing MSS 0 made every byte of the send
/// buffer its own segment (thousands per poll). The send MSS has a floor of 48 bytes.
#[test]
fn a_tiny_peer_mss_is_raised_to_the_floor() {
    for announced in [0u16, 1, 47] {
        let cfg = plain_config();
        let mut h = Harness {
            conn: Connection::connect(&cfg, LOCAL_PORT, REMOTE_PORT, LOCAL_ISS, ms(0)),
            now: ms(0),
        };
        h.expect();
        let synack = TcpRepr {
            seq_number: REMOTE_ISS,
            max_seg_size: Some(announced),
            ..peer(SYN, 0, Some(0), 65535)
        };
        h.send(synack, &[]);
        assert_eq!(h.conn.state(), State::Established);
        h.expect();
        assert_eq!(h.conn.send(&[7u8; 480]), Ok(480));
        let mut segments = 0;
        while let Some((seg, _)) = h.recv() {
            assert_eq!(seg.payload_len, 48, "MSS {announced}");
            segments += 1;
        }
        assert!(segments <= 10, "{segments} segments for 480 bytes");
    }
}
