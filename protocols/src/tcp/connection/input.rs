//! Segment arrival (RFC 9293 §3.10.7): SYN-SENT processing, then for synchronized states the
//! acceptability test, RST, SYN, ACK, data and FIN, in that order.

use super::Connection;
use crate::tcp::checks;
use crate::tcp::congestion::CongestionController;
use crate::tcp::timer::Timer;
use crate::tcp::{ConnError, SegmentDrop, State};
use crate::time::{Duration, Instant};
use crate::wire::tcp::{SeqNumber, TcpFlags, TcpRepr};

impl Connection {
    /// Processes one segment of this connection's 4-tuple (checksum already verified) and its
    /// payload.
    pub fn handle_segment(&mut self, now: Instant, seg: &TcpRepr, payload: &[u8]) {
        if seg.dst_port != self.local_port || seg.src_port != self.remote_port {
            return;
        }
        let payload = payload.get(..seg.payload_len).unwrap_or(payload);
        match self.state {
            State::Closed | State::Listen => {}
            State::SynSent => self.process_syn_sent(now, seg),
            _ => self.process_synchronized(now, seg, payload),
        }
        self.update_persist(now);
    }

    /// RFC 9293 §3.10.7.3.
    fn process_syn_sent(&mut self, now: Instant, seg: &TcpRepr) {
        if let Some(ack) = seg.ack_number {
            if ack <= self.iss || ack > self.snd_max {
                if !seg.flags.rst() {
                    self.queue_rst(ack);
                }
                return;
            }
        }
        if seg.flags.rst() {
            if seg.ack_number.is_some() {
                self.fail(ConnError::Refused);
            }
            return;
        }
        if !seg.flags.syn() {
            return;
        }
        self.take_peer_syn(seg);
        self.ts_recent_at = now;
        // Data on a SYN is not kept: the peer sends it again once the handshake is done.
        self.snd_wnd = usize::from(seg.window_len);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq_number;
        match seg.ack_number {
            Some(ack) => {
                self.snd_wl2 = ack;
                self.on_new_ack(now, seg, ack);
                self.set_state(State::Established);
                self.on_peer_activity(now);
                self.ack_now = true;
            }
            None => {
                // Simultaneous open: answer with a SYN-ACK.
                self.snd_wl2 = self.iss;
                self.snd_nxt = self.iss;
                self.set_state(State::SynReceived);
            }
        }
    }

    /// RFC 9293 §3.10.7.4, for SYN-RECEIVED and later.
    fn process_synchronized(&mut self, now: Instant, seg: &TcpRepr, payload: &[u8]) {
        // RFC 7323 §5.3 R1 (PAWS): a segment whose TSval is older than TS.Recent is an old
        // duplicate: ACK and drop. Not for RSTs; not once TS.Recent went stale (§5.5).
        if self.ts_on && !seg.flags.rst() {
            if let Some(ts) = seg.timestamp {
                if checks::paws_rejects(self.ts_recent, self.ts_recent_at, now, ts.tsval) {
                    self.ack_now = true;
                    self.last_drop = Some(SegmentDrop::Paws);
                    return;
                }
            }
        }
        if self.state == State::SynReceived
            && seg.flags.syn()
            && !seg.flags.rst()
            && seg.ack_number.is_none()
            && seg.seq_number == self.irs
        {
            // The peer did not see our SYN-ACK: send it again now rather than at our timeout.
            if !self.syn_acked() {
                self.snd_nxt = self.iss;
            }
            return;
        }
        if seg.flags.syn() && !seg.flags.rst() {
            // RFC 5961 §4 (RFC 9293 §3.10.7.4 fourth): a SYN in a synchronized state, in the
            // window or not, draws a challenge ACK and is dropped. (A SYN reopening a TIME-WAIT
            // 4-tuple, RFC 6191, is decided by the connection table before it gets here.)
            self.challenge_ack(now);
            return;
        }
        if !self.acceptable(seg) {
            self.last_drop = Some(SegmentDrop::OutOfWindow);
            if !seg.flags.rst() {
                self.ack_now = true;
                if self.state == State::TimeWait && seg.flags.fin() {
                    // A retransmitted FIN: our last ACK was lost. Restart 2*MSL.
                    self.timers.set(Timer::TimeWait, now + self.cfg.time_wait);
                }
            }
            return;
        }
        if self.ts_on {
            if let Some(ts) = seg.timestamp {
                // RFC 7323 §4.3: remember TSval of segments that reach the left window edge.
                if seg.seq_number <= self.last_ack_sent {
                    self.ts_recent = ts.tsval;
                    self.ts_recent_at = now;
                }
            }
        }
        if seg.flags.rst() {
            self.process_rst(now, seg);
            return;
        }
        let Some(ack) = seg.ack_number else {
            return;
        };
        self.on_peer_activity(now);
        if self.state == State::SynReceived {
            if !(self.snd_una < ack && ack <= self.snd_max) {
                self.queue_rst(ack);
                return;
            }
            self.set_state(State::Established);
        }
        // RFC 5961 §5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT]; others
        // (data never sent, or older than any window) are dropped with a (challenge) ACK.
        if ack > self.snd_max || ack < self.snd_una - self.max_snd_wnd {
            self.last_drop = Some(SegmentDrop::BadAck);
            self.challenge_ack(now);
            return;
        }
        self.process_ack(now, seg, ack);
        if self.state == State::Closed {
            return;
        }
        if matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        ) {
            let fresh = seg.seq_number + payload.len() > self.rcv_nxt;
            if self.orphaned && fresh && self.state == State::FinWait2 {
                // New data nobody will read, and all of ours is acknowledged: nothing is lost
                // by a reset (RFC 1122 §4.2.2.13).
                self.last_drop = Some(SegmentDrop::DataAfterClose);
                self.abort();
                return;
            }
            self.process_urgent(seg);
            self.process_data(now, seg, payload);
            if self.orphaned {
                // Ours still in flight: taken (and acknowledged) and dropped.
                let n = self.rx.ready();
                let n = self.rx.discard(n);
                self.consumed(n);
            }
        }
        self.process_fin(now, seg);
    }

    /// The four cases of RFC 9293 §3.10.7.4 ([`checks::acceptable`]).
    fn acceptable(&self, seg: &TcpRepr) -> bool {
        checks::acceptable(self.rcv_nxt, self.rcv_adv_edge, seg)
    }

    fn process_rst(&mut self, now: Instant, seg: &TcpRepr) {
        if seg.seq_number != self.rcv_nxt {
            // RFC 5961 §3.2: in the window but not exact: challenge ACK.
            self.challenge_ack(now);
            return;
        }
        match self.state {
            State::Closing | State::LastAck | State::TimeWait => {
                self.set_state(State::Closed);
                self.timers.stop_all();
            }
            _ => self.fail(ConnError::Reset),
        }
    }

    /// ACK field processing: retire acknowledged data, RTT, congestion control, duplicate ACKs,
    /// the send window and the FIN-acknowledged transitions.
    fn process_ack(&mut self, now: Instant, seg: &TcpRepr, ack: SeqNumber) {
        if ack < self.snd_una {
            return;
        }
        let peer_wnd = usize::from(seg.window_len) << self.snd_wscale;
        let classic_dup = ack == self.snd_una
            && seg.payload_len == 0
            && !seg.flags.fin()
            && self.snd_max > self.snd_una
            && peer_wnd == self.snd_wnd;
        let has_sack = seg.sack_ranges.iter().any(Option::is_some);
        let newly_sacked = self.update_scoreboard(seg, ack);
        if ack > self.snd_una {
            self.on_new_ack(now, seg, ack);
        }
        // RFC 6675 §2: with SACK, a duplicate is an ACK that SACKs new data (cumulative or
        // not); without SACK information, RFC 5681's definition.
        if (self.sack_on && newly_sacked > 0) || (classic_dup && !(self.sack_on && has_sack)) {
            self.on_dup_ack(now);
        }
        self.check_sack_loss(now);
        self.rack_on_ack(now, ack);
        // RFC 9293 §3.10.7.4: update the window from the newest segment.
        if self.snd_wl1 < seg.seq_number || (self.snd_wl1 == seg.seq_number && self.snd_wl2 <= ack)
        {
            self.snd_wnd = peer_wnd;
            self.max_snd_wnd = self.max_snd_wnd.max(peer_wnd);
            self.snd_wl1 = seg.seq_number;
            self.snd_wl2 = ack;
        }
        if self.fin_acked() {
            match self.state {
                State::FinWait1 => {
                    self.set_state(State::FinWait2);
                    self.on_peer_activity(now);
                }
                State::Closing => self.enter_time_wait(now),
                State::LastAck => {
                    self.set_state(State::Closed);
                    self.timers.stop_all();
                }
                _ => {}
            }
        }
    }

    /// SND.UNA < ack <= SND.MAX.
    fn on_new_ack(&mut self, now: Instant, seg: &TcpRepr, ack: SeqNumber) {
        let mut acked = ack - self.snd_una;
        if !self.syn_acked() {
            acked -= 1;
        }
        let data_end = self.tx_start + self.tx.len();
        let retired_to = ack.min(data_end);
        if retired_to > self.tx_start {
            self.tx.consume(retired_to - self.tx_start);
            self.tx_start = retired_to;
            self.wakeup = true;
        }
        self.snd_una = ack;
        if self.snd_nxt < ack {
            self.snd_nxt = ack;
        }
        let after_timeout = self.rto_count > 0;
        self.rto_count = 0;

        // Karn for timestamps too: the first ACK after a timeout may echo the TSval of a
        // segment sent long before (the peer only updates TS.Recent at the left window
        // edge), which would inflate the RTO without bound under repeated losses.
        let sample = if after_timeout && self.ts_on {
            None
        } else {
            self.rtt_sample(now, seg, ack)
        };
        if let Some(r) = sample {
            self.rtt.on_sample(r);
        }
        // RFC 6298 §5.2, §5.3.
        if self.snd_una == self.snd_max {
            self.timers.stop(Timer::Retransmit);
        } else {
            self.timers.set(Timer::Retransmit, now + self.rtt.rto());
        }

        if let Some(t) = self.cfg.user_timeout {
            if self.snd_una == self.snd_max {
                self.timers.stop(Timer::UserTimeout);
            } else {
                self.timers.set(Timer::UserTimeout, now + t);
            }
        }
        if self.in_recovery {
            self.on_ack_in_recovery(now, ack, acked);
        } else {
            self.cc.on_ack(now, acked, sample);
        }
        self.dupacks = 0;
    }

    /// An RTT sample from this ACK: from TSecr when timestamps are on (RFC 7323 §4.1), else
    /// from the one timed segment if it is covered (never from a retransmission: Karn).
    fn rtt_sample(&mut self, now: Instant, seg: &TcpRepr, ack: SeqNumber) -> Option<Duration> {
        if self.ts_on {
            let ts = seg.timestamp?;
            let ms = self.ts_now(now).wrapping_sub(ts.tsecr);
            // An echo from the future or older than a day is bogus.
            return (ms < 86_400_000).then(|| Duration::from_millis(u64::from(ms)));
        }
        match self.rtt_probe {
            Some((end, sent)) if ack >= end => {
                self.rtt_probe = None;
                Some(now - sent)
            }
            _ => None,
        }
    }

    /// RFC 9293 §3.10.7.4 sixth (URG): remember where the urgent byte is, RCV.UP <-
    /// max(RCV.UP, SEG.UP). The data stays in line; only its position is kept. A pointer of 0
    /// names no byte of this segment's sequence space, and one at data already received is
    /// not a new mark (Linux ignores both too).
    fn process_urgent(&mut self, seg: &TcpRepr) {
        if !seg.flags.urg() || seg.urgent_pointer == 0 {
            return;
        }
        let at = seg.seq_number + usize::from(seg.urgent_pointer - 1);
        if at < self.rcv_nxt || self.rcv_up.is_some_and(|up| at <= up) {
            return;
        }
        self.rcv_up = Some(at);
        self.wakeup = true;
    }

    /// Segment text: trim to RCV.NXT, hand to the reassembly buffer, schedule the ACK.
    fn process_data(&mut self, now: Instant, seg: &TcpRepr, payload: &[u8]) {
        if payload.is_empty() {
            return;
        }
        let seq = seg.seq_number;
        let (skip, offset) = if seq < self.rcv_nxt {
            (self.rcv_nxt - seq, 0)
        } else {
            (0, seq - self.rcv_nxt)
        };
        if skip >= payload.len() {
            self.ack_now = true;
            return;
        }
        let had_held = self.rx.has_held();
        let advanced = self
            .rx
            .insert(offset, payload.get(skip..).unwrap_or_default());
        self.rcv_nxt += advanced;
        if advanced > 0 {
            self.wakeup = true;
        }
        if offset > 0 || had_held || advanced < payload.len() - skip {
            // RFC 5681 §4.2: out-of-order data, data filling a hole, or data we could not take
            // is acknowledged at once.
            self.ack_now = true;
            return;
        }
        self.unacked_bytes += advanced;
        let full = usize::from(self.cfg.mss).saturating_sub(if self.ts_on {
            super::TIMESTAMP_OPTION_LEN
        } else {
            0
        });
        if self.cfg.delayed_ack.is_zero() || self.unacked_bytes >= 2 * full.max(1) {
            self.ack_now = true;
        } else {
            self.timers
                .set_if_stopped(Timer::DelayedAck, now + self.cfg.delayed_ack);
        }
    }

    fn process_fin(&mut self, now: Instant, seg: &TcpRepr) {
        if seg.flags.fin() {
            let fin_seq = seg.seq_number + seg.payload_len;
            if self.fin_received {
                // A retransmitted FIN: acknowledge it again.
                self.ack_now = true;
                if self.state == State::TimeWait {
                    self.timers.set(Timer::TimeWait, now + self.cfg.time_wait);
                }
                return;
            }
            if fin_seq > self.rcv_nxt && fin_seq <= self.rcv_adv_edge {
                self.pending_fin = Some(fin_seq);
                self.ack_now = true;
            }
            if fin_seq == self.rcv_nxt {
                self.pending_fin = Some(fin_seq);
            }
        }
        if self.fin_received || self.pending_fin != Some(self.rcv_nxt) {
            return;
        }
        if !matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        ) {
            return;
        }
        self.pending_fin = None;
        self.fin_received = true;
        self.rcv_nxt += 1;
        self.ack_now = true;
        self.wakeup = true;
        match self.state {
            State::Established => self.set_state(State::CloseWait),
            State::FinWait1 if self.fin_acked() => self.enter_time_wait(now),
            State::FinWait1 => self.set_state(State::Closing),
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.set_state(State::TimeWait);
        self.timers.stop_all();
        self.timers.set(Timer::TimeWait, now + self.cfg.time_wait);
    }

    /// Queues a RST answering an unacceptable ACK: `<SEQ=SEG.ACK><CTL=RST>`.
    fn queue_rst(&mut self, seq: SeqNumber) {
        self.pending_rst = Some(TcpRepr {
            src_port: self.local_port,
            dst_port: self.remote_port,
            flags: TcpFlags::RST,
            seq_number: seq,
            ..TcpRepr::default()
        });
    }
}
