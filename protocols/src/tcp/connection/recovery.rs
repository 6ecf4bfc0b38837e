//! Loss recovery: duplicate ACK counting, entering and leaving fast recovery, and what to send
//! during it. With SACK negotiated this is RFC 6675 (scoreboard, `pipe`, `NextSeg`, `IsLost`
//! with DupThresh 3, holes retransmitted before new data); without, RFC 6582 NewReno with the
//! window inflated per duplicate ACK and a retransmission per partial ACK.

use super::Connection;
use crate::tcp::sack::DUP_THRESH;
use crate::tcp::TcpEvent;
use crate::time::Instant;
use crate::wire::tcp::{SeqNumber, TcpRepr};

impl Connection {
    /// Feeds the SACK blocks of an acceptable ACK to the scoreboard (after HighACK moved to
    /// `ack`); returns the bytes newly SACKed.
    pub(super) fn update_scoreboard(&mut self, seg: &TcpRepr, ack: SeqNumber) -> usize {
        if !self.sack_on {
            return 0;
        }
        self.sack.advance(ack);
        if seg.sack_ranges[0].is_some() && self.events.is_some() {
            let blocks = seg.sack_ranges.map(|b| b.map(|(l, r)| (l.0, r.0)));
            self.emit(TcpEvent::SackReceived { blocks });
        }
        self.sack
            .add_blocks(ack, self.snd_max, seg.sack_ranges.iter().flatten().copied())
    }

    /// A duplicate ACK (RFC 5681 §2, or with SACK one that SACKs new data, RFC 6675 §2).
    pub(super) fn on_dup_ack(&mut self, now: Instant) {
        self.dupacks = self.dupacks.saturating_add(1);
        if self.in_recovery {
            if !self.sack_on {
                // RFC 6582 §3.2 step 3: one more segment left the network.
                self.recovery_cwnd += self.smss();
            }
        } else if self.dupacks as usize >= self.dup_thresh() {
            self.enter_recovery(now);
        }
    }

    /// DupThresh: 3, lowered by RFC 5827 early retransmit when fewer than four segments are
    /// outstanding and no new data is waiting to go (so three duplicates can never come).
    fn dup_thresh(&self) -> usize {
        let smss = self.smss();
        let outstanding = (self.snd_max - self.snd_una).div_ceil(smss);
        let unsent = self.tx_start + self.tx.len() > self.snd_max;
        if outstanding < DUP_THRESH + 1 && !unsent {
            outstanding.saturating_sub(1).max(1)
        } else {
            DUP_THRESH
        }
    }

    /// RFC 6675 §5 step (2): with SACK, recovery also starts once `IsLost(HighACK + 1)`.
    pub(super) fn check_sack_loss(&mut self, now: Instant) {
        if self.sack_on
            && !self.in_recovery
            && self.snd_max > self.snd_una
            && self.sack.is_lost(self.snd_una, self.snd_una, self.smss())
        {
            self.enter_recovery(now);
        }
    }

    /// RFC 5681 §3.2 step 2 / RFC 6582 §3.2 step 2 / RFC 6675 §5 step 4: fast retransmit.
    fn enter_recovery(&mut self, now: Instant) {
        // RFC 6582 §4.1: no new recovery for losses of data sent before the last one (or the
        // last timeout) began.
        if self.snd_una < self.recover {
            return;
        }
        let flight = self.snd_max - self.snd_una;
        self.in_recovery = true;
        self.recover = self.snd_max;
        self.cc.on_congestion_event(now, flight);
        self.emit_congestion();
        self.recovery_cwnd = self.cc.window() + DUP_THRESH * self.smss();
        self.high_rxt = self.snd_una;
        self.retransmit_una = true;
        self.rtt_probe = None;
    }

    /// New data acknowledged during recovery: leave it on a full ACK, or handle a partial one.
    pub(super) fn on_ack_in_recovery(&mut self, now: Instant, ack: SeqNumber, acked: usize) {
        let flight = self.snd_max - self.snd_una;
        if ack >= self.recover {
            self.in_recovery = false;
            self.cc.on_recovery_end(now, flight);
        } else if !self.sack_on {
            // RFC 6582 §3.2 step 5: deflate by the amount acknowledged, add back one SMSS if
            // that was at least one SMSS, and retransmit the next hole at once.
            let smss = self.smss();
            self.recovery_cwnd = self.recovery_cwnd.saturating_sub(acked);
            if acked >= smss {
                self.recovery_cwnd += smss;
            }
            self.recovery_cwnd = self.recovery_cwnd.max(smss);
            self.retransmit_una = true;
        }
        // With SACK a partial ACK changes nothing but the scoreboard: NextSeg finds the holes.
    }

    /// `cwnd - pipe` during SACK recovery.
    pub(super) fn pipe_room(&self) -> usize {
        let pipe = self.sack.pipe(
            self.snd_una,
            self.snd_max,
            self.high_rxt.max(self.snd_una),
            self.smss(),
        );
        self.cc.window().saturating_sub(pipe)
    }

    /// RFC 6675 §5 step (C): while `cwnd - pipe >= SMSS`, the next segment by `NextSeg`: a
    /// lost hole (rule 1), new data (rule 2), any unSACKed hole below the highest SACK (rule 3).
    pub(super) fn sack_recovery_segment(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> Option<TcpRepr> {
        let smss = self.smss();
        if self.pipe_room() < smss {
            return None;
        }
        let from = self.high_rxt.max(self.snd_una);
        if let Some((s, e)) = self.sack.next_hole(self.snd_una, from, smss, true) {
            if let Some(seg) = self.retransmit_range(now, buf, s, e) {
                return Some(seg);
            }
        }
        let limit = self.sack.unsacked_run(self.snd_nxt);
        if let Some(seg) = self.send_from(now, buf, self.snd_nxt, false, limit) {
            return Some(seg);
        }
        let (s, e) = self.sack.next_hole(self.snd_una, from, smss, false)?;
        self.retransmit_range(now, buf, s, e)
    }

    /// Retransmits from `start`, at most up to `end`, and moves HighRxt past it.
    pub(super) fn retransmit_range(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        start: SeqNumber,
        end: SeqNumber,
    ) -> Option<TcpRepr> {
        let seg = self.send_from(now, buf, start, true, end - start)?;
        let seg_end = start + seg.segment_len();
        self.high_rxt = self.high_rxt.max(seg_end);
        Some(seg)
    }
}
