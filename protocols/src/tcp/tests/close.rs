//! Closing in every order, TIME-WAIT, half-close, RST and abort.

use super::*;
use crate::tcp::{ConnError, RecvError, SendError};

#[test]
fn active_close_to_time_wait_and_expiry() {
    let mut h = established(&plain_config(), 8192);
    h.conn.send(b"bye").unwrap();
    h.conn.close();
    assert_eq!(h.conn.state(), State::FinWait1);
    assert_eq!(h.conn.send(b"more"), Err(SendError::Closed));
    let (seg, payload) = h.expect();
    assert_eq!(payload, b"bye");
    assert_eq!(seg.flags, ACK | PSH | FIN, "FIN rides on the last data");
    assert_eq!(seg.seq_number, lseq(0));
    h.expect_nothing();

    h.now = ms(50);
    h.send(peer(ACK, 0, Some(4), 8192), &[]);
    assert_eq!(h.conn.state(), State::FinWait2);
    assert_eq!(
        h.conn.poll_at(),
        Some(ms(50) + Duration::from_secs(60)),
        "FIN-WAIT-2 timeout"
    );
    // Half-close: the peer can still send to us.
    h.send(peer(ACK, 0, Some(4), 8192), b"late data");
    assert_eq!(h.conn.recv_queue(), 9);
    h.now = ms(60);
    h.send(peer(FIN, 9, Some(4), 8192), &[]);
    assert_eq!(h.conn.state(), State::TimeWait);
    let (ack, _) = h.expect();
    assert_eq!(
        (ack.flags, ack.seq_number, ack.ack_number),
        (ACK, lseq(4), Some(rseq(10)))
    );
    assert_eq!(h.conn.poll_at(), Some(ms(60) + Duration::from_secs(60)));

    // A retransmitted FIN: ACKed again and TIME-WAIT restarts.
    h.now = ms(1060);
    h.send(peer(FIN, 9, Some(4), 8192), &[]);
    let (again, _) = h.expect();
    assert_eq!(again.ack_number, Some(rseq(10)));
    assert_eq!(h.conn.poll_at(), Some(ms(1060) + Duration::from_secs(60)));
    h.expect_nothing();

    let mut buf = [0u8; 32];
    assert_eq!(h.conn.recv(&mut buf), Ok(9));
    assert_eq!(h.conn.recv(&mut buf), Ok(0), "EOF");
    h.fire_next_timer();
    assert_eq!(h.conn.state(), State::Closed);
    assert!(h.conn.is_closed());
    assert_eq!(h.conn.error(), None);
    assert_eq!(h.conn.recv(&mut buf), Ok(0));
}

#[test]
fn fin_and_ack_together_go_straight_to_time_wait() {
    let mut h = established(&plain_config(), 8192);
    h.conn.close();
    h.expect();
    h.send(peer(FIN, 0, Some(1), 8192), &[]);
    assert_eq!(h.conn.state(), State::TimeWait);
    assert_eq!(h.expect().0.ack_number, Some(rseq(1)));
}

#[test]
fn passive_close_via_close_wait_and_last_ack() {
    let mut h = established(&plain_config(), 8192);
    h.send(peer(FIN, 0, Some(0), 8192), b"end");
    assert_eq!(h.conn.state(), State::CloseWait);
    assert!(h.conn.take_wakeup());
    let (ack, _) = h.expect();
    assert_eq!(ack.ack_number, Some(rseq(4)), "FIN ACKed at once");
    let mut buf = [0u8; 8];
    assert_eq!(h.conn.recv(&mut buf), Ok(3));
    assert_eq!(h.conn.recv(&mut buf), Ok(0));
    assert!(!h.conn.may_recv());
    // We can still send in CLOSE-WAIT.
    assert!(h.conn.may_send());
    h.conn.send(b"reply").unwrap();
    h.conn.close();
    assert_eq!(h.conn.state(), State::LastAck);
    let (fin, payload) = h.expect();
    assert_eq!(payload, b"reply");
    assert!(fin.flags.fin());
    // The FIN is lost: retransmitted on timeout.
    h.fire_next_timer();
    let (again, payload) = h.expect();
    assert_eq!((again.seq_number, payload.len()), (lseq(0), 5));
    assert!(again.flags.fin());
    h.send(peer(ACK, 4, Some(6), 8192), &[]);
    assert_eq!(h.conn.state(), State::Closed);
    assert!(h.conn.is_closed());
    assert_eq!(h.conn.poll_at(), None);
    h.expect_nothing();
}

#[test]
fn simultaneous_close_via_closing() {
    let mut h = established(&plain_config(), 8192);
    h.conn.close();
    let (fin, _) = h.expect();
    assert_eq!(fin.flags, ACK | FIN);
    // The peer's FIN crosses ours: it has not seen our FIN yet.
    h.send(peer(FIN, 0, Some(0), 8192), &[]);
    assert_eq!(h.conn.state(), State::Closing);
    assert_eq!(h.expect().0.ack_number, Some(rseq(1)));
    h.send(peer(ACK, 1, Some(1), 8192), &[]);
    assert_eq!(h.conn.state(), State::TimeWait);
    h.advance(Duration::from_secs(60));
    assert!(h.conn.is_closed());
}

#[test]
fn rst_in_established_is_reset() {
    let mut h = established(&plain_config(), 8192);
    h.send(peer(ACK, 0, Some(0), 8192), b"abc");
    h.send(peer(RST, 3, None, 0), &[]);
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.conn.error(), Some(ConnError::Reset));
    assert!(h.conn.take_wakeup());
    h.expect_nothing();
    let mut buf = [0u8; 8];
    assert_eq!(
        h.conn.recv(&mut buf),
        Ok(3),
        "data received before the reset stays readable"
    );
    assert_eq!(
        h.conn.recv(&mut buf),
        Err(RecvError::Conn(ConnError::Reset))
    );
    assert_eq!(h.conn.send(b"x"), Err(SendError::NotConnected));
}

#[test]
fn rst_in_last_ack_closes_without_error() {
    let mut h = established(&plain_config(), 8192);
    h.send(peer(FIN, 0, Some(0), 8192), &[]);
    h.conn.close();
    h.drain();
    h.send(peer(RST, 1, None, 0), &[]);
    assert!(h.conn.is_closed());
    assert_eq!(h.conn.error(), None);
}

#[test]
fn abort_sends_rst() {
    let mut h = established(&plain_config(), 8192);
    h.conn.send(b"unsent?").unwrap();
    h.expect();
    h.conn.abort();
    assert_eq!(h.conn.state(), State::Closed);
    assert!(!h.conn.is_closed(), "the RST is still to go out");
    let (rst, _) = h.expect();
    assert_eq!((rst.flags, rst.seq_number), (RST, lseq(7)));
    assert!(h.conn.is_closed());
    h.expect_nothing();
    assert_eq!(h.conn.recv(&mut [0; 4]), Err(RecvError::NotConnected));
}
