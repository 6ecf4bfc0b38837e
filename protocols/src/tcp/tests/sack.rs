//! SACK-based loss recovery (RFC 6675) driven by the scoreboard, with limited transmit; D-SACK
//! and bogus blocks ignored.

use super::*;
use crate::wire::tcp::MAX_SACK_BLOCKS;

fn sack_config() -> TcpConfig {
    TcpConfig {
        sack: true,
        ..plain_config()
    }
}

/// A peer ACK of `ack` carrying SACK blocks (offsets in our sequence space).
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

#[test]
fn sack_recovery_retransmits_holes_first_within_pipe() {
    let mut h = established_with(&sack_config(), 60_000, |s| s.sack_permitted = true);
    assert!(h.conn.sack_enabled());
    h.conn.send(&vec![1; 30_000]).unwrap();
    assert_eq!(h.drain().len(), 10, "initial window 10 x 1000");
    h.now = ms(30);
    // Segments 0 and 3 are lost. Each SACK of new data is a duplicate ACK; the first two let
    // one new segment out each (RFC 3042).
    h.send(sack_ack(0, &[(1000, 2000)]), &[]);
    assert_eq!(seqs(&h.drain()), vec![lseq(10_000)]);
    h.send(sack_ack(0, &[(1000, 3000)]), &[]);
    assert_eq!(seqs(&h.drain()), vec![lseq(11_000)]);
    assert!(!h.conn.in_recovery());
    // Third duplicate: recovery. CUBIC: ssthresh = cwnd = 0.7 * 10000. Only the first hole
    // goes out: pipe = 1000 (retransmitted) + 1000 (hole [3000,4000), not lost yet) + 7000
    // (above the highest SACK) = 9000 > cwnd.
    h.send(sack_ack(0, &[(4000, 5000), (1000, 3000)]), &[]);
    assert!(h.conn.in_recovery());
    assert_eq!(h.conn.cwnd(), 7000);
    let out = h.drain();
    assert_eq!(seqs(&out), vec![lseq(0)]);
    assert_eq!(out[0].1.len(), 1000, "up to the SACKed range only");
    // Segments 5..7 arrive: the hole at 3000 now has 4000 bytes SACKed above it, so it is lost
    // (IsLost); pipe = 1000 + 4000 = 5000: the hole first (rule 1), then new data (rule 2).
    h.send(sack_ack(0, &[(4000, 8000), (1000, 3000)]), &[]);
    let out = h.drain();
    assert_eq!(seqs(&out), vec![lseq(3000), lseq(12_000)]);
    // A duplicate of the same SACK information is no duplicate ACK and sends nothing.
    h.send(sack_ack(0, &[(4000, 8000), (1000, 3000)]), &[]);
    h.expect_nothing();
    // The retransmission of 0 (sent at 30 ms) arrives: partial ACK to 3000. Still in recovery
    // (the recovery point is 12000). RACK (RFC 8985 §6.2): 8000 and 9000, sent at 0 ms, are
    // still unSACKed a RACK.rtt (30 ms) plus reo_wnd after a segment sent later was
    // delivered: lost, sent again first; then new data as the pipe allows.
    h.now = ms(60);
    h.send(sack_ack(3000, &[(4000, 8000)]), &[]);
    assert!(h.conn.in_recovery());
    assert_eq!(seqs(&h.drain()), vec![lseq(8000), lseq(9000), lseq(13_000)]);
    // A D-SACK for data below SND.UNA is ignored safely.
    h.send(sack_ack(3000, &[(0, 1000), (4000, 8000)]), &[]);
    h.expect_nothing();
    // Everything up to 13000 acknowledged: recovery ends at cwnd = ssthresh.
    h.send(sack_ack(13_000, &[]), &[]);
    assert!(!h.conn.in_recovery());
    assert_eq!(h.conn.cwnd(), 7000);
    assert_eq!(h.conn.send_queue(), 17_000);
}

#[test]
fn sack_recovery_starts_on_is_lost_even_from_a_cumulative_ack() {
    let mut h = established_with(&sack_config(), 60_000, |s| s.sack_permitted = true);
    h.conn.send(&vec![1; 10_000]).unwrap();
    h.drain();
    h.now = ms(30);
    // The first ACK already reports 3 segments above a hole at 1000 (ACK moved to 1000).
    h.send(sack_ack(1000, &[(2000, 5000)]), &[]);
    assert!(h.conn.in_recovery());
    let out = h.drain();
    assert_eq!(out[0].0.seq_number, lseq(1000));
}

#[test]
fn bogus_sack_blocks_do_not_trigger_recovery() {
    let mut h = established_with(&sack_config(), 60_000, |s| s.sack_permitted = true);
    h.conn.send(&vec![1; 5000]).unwrap();
    h.drain();
    // Blocks beyond anything sent, reversed, and below SND.UNA.
    for _ in 0..5 {
        h.send(sack_ack(0, &[(9000, 20_000), (3000, 2000), (0, 0)]), &[]);
    }
    assert!(!h.conn.in_recovery());
    h.expect_nothing();
}

#[test]
fn without_sack_negotiated_recovery_is_newreno() {
    // We offer SACK, the peer does not: three plain duplicates, fast retransmit, inflation.
    let mut h = established(&sack_config(), 60_000);
    assert!(!h.conn.sack_enabled());
    h.conn.send(&vec![1; 10_000]).unwrap();
    h.drain();
    for _ in 0..2 {
        h.send(peer(ACK, 0, Some(0), 60_000), &[]);
        h.drain();
    }
    h.send(peer(ACK, 0, Some(0), 60_000), &[]);
    assert!(h.conn.in_recovery());
    assert_eq!(seqs(&h.drain()), vec![lseq(0)]);
    // CUBIC ssthresh 7000 over a flight of 10000, inflated by 3 segments.
    assert_eq!(h.conn.cwnd(), 10_000);
}
