//! Loss recovery: duplicate ACK counting, entering and leaving fast recovery, and what to send
//! during it. With SACK negotiated this is RFC 6675 (scoreboard, `pipe`, `NextSeg`, `IsLost`
//! with DupThresh 3, holes retransmitted before new data); without, RFC 6582 NewReno with the
//! window inflated per duplicate ACK and a retransmission per partial ACK.

use super::Connection;
use crate::tcp::congestion::CongestionController;
use crate::tcp::sack::DUP_THRESH;
use crate::tcp::timer::Timer;
use crate::tcp::{State, TcpEvent};
use crate::time::{Duration, Instant};
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

    /// `cwnd - pipe` during SACK recovery, `pipe` counted per segment from the scoreboard's
    /// and RACK's marks (a lost retransmission leaves the pipe, RFC 8985 §6).
    pub(super) fn pipe_room(&self) -> usize {
        self.cc.window().saturating_sub(self.rack.pipe())
    }

    /// RFC 6675 §5 step (C): while `cwnd - pipe >= SMSS`, the next segment by `NextSeg`: a
    /// segment marked lost, by `IsLost` or by RACK, retransmissions included (rule 1), new
    /// data (rule 2), any unSACKed segment below the highest SACK never sent again (rule 3).
    pub(super) fn sack_recovery_segment(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> Option<TcpRepr> {
        let smss = self.smss();
        if self.pipe_room() < smss {
            return None;
        }
        if let Some((s, e)) = self.rack.first_lost() {
            let s = self.sack.sacked_until(s).unwrap_or(s).max(self.snd_una);
            if s < e {
                let e = e.min(s + self.sack.unsacked_run(s).min(u32::MAX as usize >> 1));
                if let Some(seg) = self.retransmit_range(now, buf, s, e) {
                    return Some(seg);
                }
            }
        }
        let limit = self.sack.unsacked_run(self.snd_nxt);
        if let Some(seg) = self.send_from(now, buf, self.snd_nxt, false, limit) {
            return Some(seg);
        }
        let top = self.sack.high_sacked()?;
        let (s, e) = self.rack.first_unretransmitted(top)?;
        let s = s.max(self.snd_una);
        let e = e.min(s + self.sack.unsacked_run(s).min(u32::MAX as usize >> 1));
        self.retransmit_range(now, buf, s, e)
    }

    /// After an ACK: RACK learns what was delivered and marks what is lost (RFC 8985 §6.2);
    /// recovery starts on the first loss it finds; the loss probe is re-armed.
    pub(super) fn rack_on_ack(&mut self, now: Instant, ack: SeqNumber) {
        let smss = self.smss();
        let delivered = self
            .rack
            .on_ack(now, self.snd_una, &self.sack, smss, self.sack_on);
        if self.tlp_end.is_some_and(|end| ack >= end) {
            self.tlp_end = None;
        }
        if delivered {
            self.tlp_probes = 0;
            self.rack_detect(now);
        }
        self.schedule_probe(now);
    }

    /// RFC 8985 §6.2 step 5 (also when the reordering timer fires).
    pub(super) fn rack_detect(&mut self, now: Instant) {
        if !self.sack_on || self.snd_max == self.snd_una {
            self.timers.stop(Timer::Reorder);
            return;
        }
        // RFC 8985 §6.2 step 4: RACK.reo_wnd = RACK.min_RTT / 4, no more than SRTT.
        let mut reo_wnd = self.rack.min_rtt().unwrap_or(Duration::ZERO) / 4;
        if let Some(srtt) = self.rtt.srtt() {
            if srtt > Duration::ZERO {
                reo_wnd = reo_wnd.min(srtt);
            }
        }
        let (marked, timer) = self.rack.detect_loss(now, reo_wnd);
        match timer {
            Some(at) => self.timers.set(Timer::Reorder, at),
            None => self.timers.stop(Timer::Reorder),
        }
        if marked && !self.in_recovery {
            self.enter_recovery(now);
        }
    }

    /// RFC 8985 §7.2: arms the loss probe timeout while data is outstanding (not after a
    /// timeout), unless the RTO comes first. Two departures from the RFC (and from Linux),
    /// both because on a short path an RTO costs hundreds of round trips:
    /// - up to [`MAX_PROBES`] probes per episode, each after twice the wait of the one before,
    ///   until an ACK delivers something: where the peer acknowledges a whole burst with one
    ///   ACK, a lost ACK and a lost probe together would otherwise cost an RTO every few
    ///   hundred flights;
    /// - also in recovery: a lost retransmission that nothing sent after it can reveal, or a
    ///   lost burst of ACKs, would otherwise wait for the RTO; the probe's SACK lets RACK find
    ///   it instead.
    pub(super) fn schedule_probe(&mut self, now: Instant) {
        let open = self.sack_on
            && matches!(
                self.state,
                State::Established | State::CloseWait | State::FinWait1 | State::LastAck
            )
            && self.snd_max > self.snd_una
            && self.rto_count == 0
            && self.tlp_probes < MAX_PROBES;
        if !open {
            self.timers.stop(Timer::LossProbe);
            return;
        }
        let srtt = self
            .rack
            .min_rtt()
            .max(self.rtt.srtt())
            .unwrap_or(Duration::ZERO);
        let mut pto = srtt * 2 + TLP_MIN_EXTRA;
        if self.rack.segments() <= 1 {
            // The peer may hold its ACK of a lone segment for a delayed-ACK time.
            pto += WC_DEL_ACK;
        }
        // Each further probe of one episode waits twice as long.
        let at = now + pto * (1 << self.tlp_probes);
        match self.timers.get(Timer::Retransmit) {
            Some(rto_at) if at >= rto_at => self.timers.stop(Timer::LossProbe),
            _ => self.timers.set(Timer::LossProbe, at),
        }
    }

    /// RFC 8985 §7.3: the probe timeout passed without an ACK: the next poll sends a probe,
    /// and the RTO is re-armed from now.
    pub(super) fn on_probe_timeout(&mut self, now: Instant) {
        if self.snd_max == self.snd_una || self.tlp_probes >= MAX_PROBES {
            return;
        }
        self.tlp_send = true;
        if self.tlp_probes == 0 {
            self.timers.set(Timer::Retransmit, now + self.rtt.rto());
        }
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

/// Loss probes per episode (RFC 8985 sends one; see `schedule_probe`).
const MAX_PROBES: u32 = 3;

/// RFC 8985 §7.2 WCDelAckT: the longest a peer may delay the ACK of a single segment.
const WC_DEL_ACK: Duration = Duration::from_millis(200);

/// Added to 2*SRTT so that a path of a fraction of a millisecond does not probe before the
/// peer's ACK could have come back through its own scheduling (Linux adds 2 ms likewise).
const TLP_MIN_EXTRA: Duration = Duration::from_millis(2);
