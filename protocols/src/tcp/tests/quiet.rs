//! No segment without a cause: a connection that has nothing to send and receives nothing
//! sends nothing, whatever options the peer offered, and a received segment draws at most one
//! segment when there is no data to send. The bug this guards against: with a 256 KiB receive
//! buffer and a peer that did not offer window scaling, every poll decided that a window update
//! was due (the wanted window could never fit the unscaled field), and the stack sent pure ACKs
//! as fast as it was polled.

use super::*;
use crate::wire::tcp::TcpTimestamp;

/// Segments a poll drains at most here: a storm shows as a full drain, not as a test that never
/// ends.
const DRAIN_CAP: usize = 64;

/// What one poll sends (at most [`DRAIN_CAP`] segments).
fn poll(h: &mut Harness) -> Vec<TcpRepr> {
    core::iter::from_fn(|| h.recv().map(|(r, _)| r))
        .take(DRAIN_CAP)
        .collect()
}

/// Polls `h` as an engine would, `polls` times, and runs the clock to `until` one timer at a
/// time: every segment that comes out.
fn idle_output(h: &mut Harness, polls: usize, until: Instant) -> Vec<TcpRepr> {
    let mut out = Vec::new();
    for _ in 0..polls {
        out.extend(poll(h));
    }
    let mut timers = 0;
    while let Some(at) = h.conn.poll_at() {
        if at > until || timers > 1000 {
            break;
        }
        timers += 1;
        h.advance_to(at);
        out.extend(poll(h));
    }
    out
}

/// The SYNs a peer may open with: every combination of window scale, SACK, timestamps, MSS.
fn peer_syns() -> Vec<(&'static str, TcpRepr)> {
    let base = TcpRepr {
        seq_number: REMOTE_ISS,
        ..peer(SYN, 0, None, 29200)
    };
    let ts = Some(TcpTimestamp { tsval: 7, tsecr: 0 });
    vec![
        ("no options", base),
        (
            "MSS only",
            TcpRepr {
                max_seg_size: Some(1460),
                ..base
            },
        ),
        (
            "MSS, SACK, timestamps, no window scale",
            TcpRepr {
                max_seg_size: Some(1460),
                sack_permitted: true,
                timestamp: ts,
                ..base
            },
        ),
        (
            "everything",
            TcpRepr {
                max_seg_size: Some(1460),
                sack_permitted: true,
                timestamp: ts,
                window_scale: Some(7),
                ..base
            },
        ),
    ]
}

/// The peer's ACK completing the handshake, with a timestamp when the SYN had one.
fn completing_ack(syn: &TcpRepr, synack: &TcpRepr) -> TcpRepr {
    TcpRepr {
        timestamp: syn.timestamp.map(|_| TcpTimestamp {
            tsval: 8,
            tsecr: synack.timestamp.map_or(0, |t| t.tsval),
        }),
        ..peer(ACK, 0, Some(0), 29200)
    }
}

#[test]
fn an_idle_connection_is_silent_whatever_the_peer_offered() {
    for buffer in [16 * 1024, 64 * 1024 - 1, 64 * 1024, 256 * 1024, 4 << 20] {
        for (name, syn) in peer_syns() {
            let cfg = TcpConfig {
                rx_buffer: buffer,
                ..TcpConfig::default()
            };
            let mut h = Harness {
                conn: Connection::accept(&cfg, &syn, LOCAL_ISS, ms(0)),
                now: ms(0),
            };
            let (synack, _) = h.expect();
            assert_eq!(synack.flags, SYN | ACK);
            h.expect_nothing();
            h.now = ms(1);
            h.send(completing_ack(&syn, &synack), &[]);
            assert_eq!(h.conn.state(), State::Established, "{name}");
            // The completing ACK draws nothing: the window the scale allows beyond the
            // SYN-ACK's unscaled 65,535 rides on the first ACK of data (a pure ACK for it cost a
            // segment each way on every connection).
            let reply = poll(&mut h);
            assert!(
                reply.is_empty(),
                "{name}: {:?} in reply to the ACK",
                reply.first()
            );
            let out = idle_output(&mut h, 1000, ms(600_000));
            assert!(
                out.is_empty(),
                "peer SYN with {name}, rx_buffer {buffer}: an idle connection sent {} segments, \
                 first {:?}",
                out.len(),
                out.first()
            );
        }
    }
}

#[test]
fn data_read_draws_at_most_one_window_update() {
    for (name, syn) in peer_syns() {
        let cfg = TcpConfig::default();
        let mut h = Harness {
            conn: Connection::accept(&cfg, &syn, LOCAL_ISS, ms(0)),
            now: ms(0),
        };
        let (synack, _) = h.expect();
        h.now = ms(1);
        h.send(completing_ack(&syn, &synack), &[]);
        // The peer fills the whole window it was offered; each segment draws at most one ACK.
        let window = usize::from(synack.window_len);
        let mut sent = 0;
        let mut acks = 0;
        while sent < window {
            let len = (window - sent).min(1000);
            let seg = TcpRepr {
                timestamp: syn.timestamp.map(|_| TcpTimestamp { tsval: 9, tsecr: 0 }),
                ..peer(ACK, sent, Some(0), 29200)
            };
            h.send(seg, &vec![0x5a; len]);
            let replies = poll(&mut h);
            assert!(
                replies.len() <= 1,
                "{name}: {} replies to one segment",
                replies.len()
            );
            acks += replies.len();
            sent += len;
        }
        assert!(acks > 0, "{name}: no ACK for a whole window of data");
        // Reading it all opens the window: one update at most, then silence.
        let mut buf = vec![0; window];
        assert_eq!(h.conn.recv(&mut buf), Ok(window));
        let out = idle_output(&mut h, 1000, ms(600_000));
        assert!(
            out.len() <= 1,
            "{name}: {} segments after the application read (first {:?})",
            out.len(),
            out.first()
        );
    }
}
