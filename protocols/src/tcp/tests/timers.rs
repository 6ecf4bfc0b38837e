//! Keep-alive (RFC 9293 §3.8.4), the user timeout (RFC 5482) and the FIN-WAIT-2 timeout.

use super::*;
use crate::tcp::{ConnError, RecvError};

#[test]
fn keepalive_probes_an_idle_peer_and_gives_up() {
    let cfg = TcpConfig {
        keepalive: Some(Duration::from_secs(10)),
        keepalive_interval: Duration::from_secs(1),
        keepalive_count: 3,
        ..plain_config()
    };
    let mut h = established(&cfg, 8192);
    // Established at 10 ms: first probe 10 s later, SEG.SEQ = SND.NXT - 1, no data.
    assert_eq!(h.conn.poll_at(), Some(ms(10_010)));
    h.fire_next_timer();
    let (probe, data) = h.expect();
    assert_eq!(
        (probe.seq_number, probe.flags, data.len()),
        (lseq(0) - 1, ACK, 0)
    );
    h.expect_nothing();
    // The peer answers: idle again for 10 s.
    h.now = ms(10_020);
    h.send(peer(ACK, 0, Some(0), 8192), &[]);
    assert_eq!(h.conn.poll_at(), Some(ms(20_020)));
    // Now it stays silent: three probes one second apart, then TimedOut.
    for at in [20_020, 21_020, 22_020] {
        assert_eq!(h.fire_next_timer(), ms(at));
        assert_eq!(h.expect().0.seq_number, lseq(0) - 1);
    }
    assert_eq!(h.fire_next_timer(), ms(23_020));
    assert_eq!(h.conn.error(), Some(ConnError::TimedOut));
    assert_eq!(h.conn.state(), State::Closed);
}

#[test]
fn keepalive_turned_on_and_off_on_an_established_connection() {
    let mut h = established(&plain_config(), 8192);
    assert_eq!(h.conn.poll_at(), None);
    // SO_KEEPALIVE at 1 s with a 5 s idle time: the probe is due 5 s later.
    h.now = ms(1_000);
    h.conn.set_keepalive(h.now, Some(Duration::from_secs(5)));
    assert_eq!(h.conn.poll_at(), Some(ms(6_000)));
    assert_eq!(h.fire_next_timer(), ms(6_000));
    let (probe, data) = h.expect();
    assert_eq!(
        (probe.seq_number, probe.flags, data.len()),
        (lseq(0) - 1, ACK, 0)
    );
    // Off again: nothing more is due.
    h.conn.set_keepalive(h.now, None);
    assert_eq!(h.conn.poll_at(), None);
    h.expect_nothing();
}

#[test]
fn keepalive_is_off_by_default() {
    let h = established(&plain_config(), 8192);
    assert_eq!(h.conn.poll_at(), None);
}

#[test]
fn user_timeout_replaces_r2() {
    let cfg = TcpConfig {
        user_timeout: Some(Duration::from_secs(3)),
        max_retransmissions: 1,
        ..plain_config()
    };
    let mut h = established(&cfg, 8192);
    h.now = ms(100);
    h.conn.send(b"data").unwrap();
    h.expect();
    // RTOs at +200, +400, +800, +1600 ms: more than R2 = 1, still alive.
    for _ in 0..3 {
        h.fire_next_timer();
        assert_eq!(h.expect().1, b"data");
        assert_eq!(h.conn.state(), State::Established);
    }
    // Three seconds after the data was sent without an ACK: TimedOut.
    while h.conn.state() == State::Established {
        let at = h.fire_next_timer();
        assert!(at <= ms(3100));
        h.drain();
    }
    assert_eq!(h.now, ms(3100));
    assert_eq!(h.conn.error(), Some(ConnError::TimedOut));
}

#[test]
fn user_timeout_restarts_on_progress() {
    let cfg = TcpConfig {
        user_timeout: Some(Duration::from_secs(1)),
        ..plain_config()
    };
    let mut h = established(&cfg, 8192);
    h.conn.send(&[1; 500]).unwrap();
    h.expect();
    h.now = ms(900);
    h.conn.send(&[2; 500]).unwrap();
    h.send(peer(ACK, 0, Some(500), 8192), &[]);
    h.drain();
    // The ACK at 900 ms restarted it: alive at 1.5 s, gone at 1.9 s.
    h.advance_to(ms(1500));
    h.drain();
    assert_eq!(h.conn.error(), None);
    h.advance_to(ms(1900));
    assert_eq!(h.conn.error(), Some(ConnError::TimedOut));
}

#[test]
fn fin_wait_2_times_out_when_the_peer_goes_quiet() {
    let cfg = TcpConfig {
        fin_wait2_timeout: Some(Duration::from_secs(30)),
        ..plain_config()
    };
    let mut h = established(&cfg, 8192);
    h.conn.close();
    h.expect();
    h.now = ms(100);
    h.send(peer(ACK, 0, Some(1), 8192), &[]);
    assert_eq!(h.conn.state(), State::FinWait2);
    assert_eq!(h.conn.poll_at(), Some(ms(30_100)));
    // Data from the peer (half-close) restarts the limit.
    h.now = ms(20_000);
    h.send(peer(ACK, 0, Some(1), 8192), b"more");
    assert_eq!(h.fire_next_timer(), ms(20_040), "delayed ACK");
    h.expect();
    assert_eq!(h.conn.poll_at(), Some(ms(50_000)));
    h.fire_next_timer();
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.conn.error(), None);
    let mut buf = [0u8; 8];
    assert_eq!(h.conn.recv(&mut buf), Ok(4));
    assert_eq!(h.conn.recv(&mut buf), Err(RecvError::NotConnected));
    assert!(h.conn.is_closed());
}
