//! RFC 5961 challenge ACKs and ACK validation, PAWS (RFC 7323 §5), urgent data, window scale
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

#[test]
fn urgent_data_is_delivered_in_line_and_the_pointer_ignored() {
    let mut h = established(&plain_config(), 8192);
    let urg = TcpFlags::URG;
    // Pointer inside, past the end of and with no payload at all: all harmless.
    for (pointer, data) in [(3u16, &b"abcdef"[..]), (60_000, b"gh"), (5, b"")] {
        let off = h.conn.recv_queue();
        h.send(
            TcpRepr {
                urgent_pointer: pointer,
                ..peer(urg, off, Some(0), 8192)
            },
            data,
        );
    }
    let mut buf = [0u8; 16];
    assert_eq!(h.conn.recv(&mut buf), Ok(8));
    assert_eq!(&buf[..8], b"abcdefgh");
    assert_eq!(h.conn.state(), State::Established);
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
