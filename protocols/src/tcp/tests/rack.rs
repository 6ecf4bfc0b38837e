//! RACK-TLP (RFC 8985): the tail loss probe at PTO, recovery started by the probe's SACK, and a
//! lost retransmission found by RACK's send times instead of the retransmission timer.

use super::*;
use crate::tcp::{RetransmitReason, TcpEvent};
use crate::wire::tcp::MAX_SACK_BLOCKS;

fn sack_config() -> TcpConfig {
    TcpConfig {
        sack: true,
        ..plain_config()
    }
}

fn sack_ack(ack: usize, blocks: &[(usize, usize)]) -> TcpRepr {
    let mut ranges = [None; MAX_SACK_BLOCKS];
    for (slot, &(s, e)) in ranges.iter_mut().zip(blocks) {
        *slot = Some((lseq(s), lseq(e)));
    }
    TcpRepr {
        sack_ranges: ranges,
        ..peer(ACK, 0, Some(ack), 60_000)
    }
}

fn seqs(out: &[(TcpRepr, Vec<u8>)]) -> Vec<SeqNumber> {
    out.iter().map(|(r, _)| r.seq_number).collect()
}

fn events(h: &mut Harness) -> Vec<TcpEvent> {
    core::iter::from_fn(|| h.conn.take_event()).collect()
}

fn rtos(evs: &[TcpEvent]) -> usize {
    evs.iter()
        .filter(|e| matches!(e, TcpEvent::RtoFired { .. }))
        .count()
}

/// SACK negotiated, SRTT 10 ms from the handshake, events on.
fn setup() -> Harness {
    let mut h = established_with(&sack_config(), 60_000, |s| s.sack_permitted = true);
    assert_eq!(h.conn.rtt(), Some(Duration::from_millis(10)));
    h.conn.set_events(true);
    events(&mut h);
    h
}

#[test]
fn probe_at_pto_resends_the_last_segment_and_its_sack_starts_recovery() {
    let mut h = setup();
    // Five segments at 10 ms, the whole tail lost but the last.
    h.conn.send(&[7; 5000]).unwrap();
    assert_eq!(h.drain().len(), 5);
    // PTO = 2 * SRTT + 2 ms = 22 ms, well before the RTO (200 ms).
    assert_eq!(h.fire_next_timer(), ms(32));
    let out = h.drain();
    assert_eq!(
        seqs(&out),
        vec![lseq(4000)],
        "the last segment, nothing new to send"
    );
    assert_eq!(out[0].1.len(), 1000);
    let evs = events(&mut h);
    assert!(evs.contains(&TcpEvent::Retransmit {
        seq: lseq(4000).0,
        len: 1000,
        reason: RetransmitReason::Probe,
    }));
    // Unanswered, a second probe would follow after twice the PTO (the RTO was re-armed
    // from the first probe, to 232 ms).
    assert_eq!(h.conn.poll_at(), Some(ms(32 + 44)));
    // The probe's SACK arrives 10 ms later: RACK finds 0..4000, sent 22 ms before the
    // delivered probe, lost (RACK.rtt 10 ms + reo_wnd 2.5 ms have passed): fast recovery,
    // the four segments resent at once (cwnd 7000, pipe 0).
    h.now = ms(42);
    h.send(sack_ack(0, &[(4000, 5000)]), &[]);
    assert!(h.conn.in_recovery());
    assert_eq!(
        seqs(&h.drain()),
        vec![lseq(0), lseq(1000), lseq(2000), lseq(3000)]
    );
    h.now = ms(52);
    h.send(sack_ack(5000, &[]), &[]);
    assert!(!h.conn.in_recovery());
    assert_eq!(h.conn.poll_at(), None);
    assert_eq!(rtos(&events(&mut h)), 0);
}

#[test]
fn probe_sends_new_data_when_there_is_some() {
    let mut h = setup();
    // 20 segments queued, 10 (the initial window) out; all their ACKs lost.
    h.conn.send(&[7; 20_000]).unwrap();
    assert_eq!(h.drain().len(), 10);
    assert_eq!(h.fire_next_timer(), ms(32));
    // The probe is the next new segment, beyond cwnd (RFC 8985 §7.3).
    assert_eq!(seqs(&h.drain()), vec![lseq(10_000)]);
    // Its ACK covers everything: the flight had arrived, only the ACKs were lost.
    h.now = ms(42);
    h.send(sack_ack(11_000, &[]), &[]);
    assert!(!h.conn.in_recovery());
    assert!(!h.drain().is_empty(), "sending goes on");
    assert_eq!(rtos(&events(&mut h)), 0);
}

#[test]
fn lost_retransmission_is_found_by_rack_not_by_the_rto() {
    let mut h = setup();
    h.conn.send(&[7; 30_000]).unwrap();
    assert_eq!(h.drain().len(), 10, "0..10000 at 10 ms");
    // At 20 ms: 1000..7000 SACKed, segment 0 IsLost: recovery, 0 resent at 20 ms, then new
    // data as cwnd (7000) - pipe (0 resent + 7000..10000) allows.
    h.now = ms(20);
    h.send(sack_ack(0, &[(1000, 7000)]), &[]);
    assert!(h.conn.in_recovery());
    let out = seqs(&h.drain());
    assert_eq!(out[0], lseq(0));
    assert_eq!(out, vec![lseq(0), lseq(10_000), lseq(11_000), lseq(12_000)]);
    // The retransmission of 0 is lost too. At 35 ms everything else up to 11000 is SACKed:
    // the new segment sent at 20 ms after the retransmission was delivered, so the
    // retransmission is lost once RACK.rtt (15 ms) + reo_wnd (min RTT 10 ms / 4) passed
    // since it went out: at 37.5 ms, the reordering timer.
    h.now = ms(35);
    h.send(sack_ack(0, &[(1000, 11_000)]), &[]);
    let out = seqs(&h.drain());
    assert!(!out.contains(&lseq(0)), "not yet: {out:?}");
    assert_eq!(h.fire_next_timer(), Instant::from_micros(37_500));
    let out = seqs(&h.drain());
    assert_eq!(out.first(), Some(&lseq(0)), "resent again: {out:?}");
    assert_eq!(rtos(&events(&mut h)), 0);
    // It arrives: recovery ends (the recovery point was 10000) without a timeout.
    h.now = ms(48);
    h.send(sack_ack(13_000, &[]), &[]);
    assert!(!h.conn.in_recovery());
    assert_eq!(rtos(&events(&mut h)), 0);
}
