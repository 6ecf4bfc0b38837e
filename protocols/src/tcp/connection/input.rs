//! Segment arrival (RFC 9293 §3.10.7): SYN-SENT processing, then for synchronized states the
//! acceptability test, RST, SYN, ACK, data and FIN, in that order.

use super::Connection;
use crate::tcp::timer::Timer;
use crate::tcp::{ConnError, State};
use crate::time::{Duration, Instant};
use crate::wire::tcp::{SeqNumber, TcpFlags, TcpRepr};

impl Connection {
    /// Processes one segment of this connection's 4-tuple (checksum already verified) and its
    /// payload.
    pub fn handle_segment(&mut self, now: Instant, seg: &TcpRepr, payload: &[u8]) {
        if seg.dst_port != self.local_port || seg.src_port != self.remote_port {
            return;
        }
        let payload = &payload[..seg.payload_len.min(payload.len())];
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
        // Data on a SYN is not kept: the peer sends it again once the handshake is done.
        self.snd_wnd = usize::from(seg.window_len);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq_number;
        match seg.ack_number {
            Some(ack) => {
                self.snd_wl2 = ack;
                self.on_new_ack(now, seg, ack);
                self.set_state(State::Established);
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
        // RFC 7323 §5.3 PAWS, minimal: a segment older than TS.Recent is a duplicate.
        if self.ts_on && !seg.flags.rst() {
            if let Some(ts) = seg.timestamp {
                if (ts.tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
                    self.ack_now = true;
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
        if !self.acceptable(seg) {
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
                }
            }
        }
        if seg.flags.rst() {
            self.process_rst(seg);
            return;
        }
        if seg.flags.syn() {
            // RFC 5961 §4: challenge ACK.
            self.ack_now = true;
            return;
        }
        let Some(ack) = seg.ack_number else {
            return;
        };
        if self.state == State::SynReceived {
            if !(self.snd_una < ack && ack <= self.snd_max) {
                self.queue_rst(ack);
                return;
            }
            self.set_state(State::Established);
        }
        if ack > self.snd_max {
            // Acknowledges something never sent.
            self.ack_now = true;
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
            self.process_data(now, seg, payload);
        }
        self.process_fin(now, seg);
    }

    /// The four cases of RFC 9293 §3.10.7.4, with the allowance for ACKs (and a FIN) at a
    /// zero window: a segment at exactly RCV.NXT is let through and its payload cut.
    fn acceptable(&self, seg: &TcpRepr) -> bool {
        let wnd = self.rcv_adv_edge - self.rcv_nxt;
        let len = seg.segment_len();
        let seq = seg.seq_number;
        let in_window = |s: SeqNumber| self.rcv_nxt <= s && s < self.rcv_nxt + wnd;
        match (len, wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => in_window(seq),
            (_, 0) => seq == self.rcv_nxt,
            (_, _) => in_window(seq) || in_window(seq + (len - 1)),
        }
    }

    fn process_rst(&mut self, seg: &TcpRepr) {
        if seg.seq_number != self.rcv_nxt {
            // RFC 5961 §3.2: in the window but not exact: challenge ACK.
            self.ack_now = true;
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
        if ack > self.snd_una {
            self.on_new_ack(now, seg, ack);
        } else if seg.payload_len == 0
            && !seg.flags.fin()
            && self.snd_max > self.snd_una
            && peer_wnd == self.snd_wnd
        {
            self.on_dup_ack(now);
        }
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
                State::FinWait1 => self.set_state(State::FinWait2),
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
        self.rto_count = 0;

        let sample = self.rtt_sample(now, seg, ack);
        if let Some(r) = sample {
            self.rtt.on_sample(r);
        }
        // RFC 6298 §5.2, §5.3.
        if self.snd_una == self.snd_max {
            self.timers.stop(Timer::Retransmit);
        } else {
            self.timers.set(Timer::Retransmit, now + self.rtt.rto());
        }

        let flight = self.snd_max - self.snd_una;
        if self.in_recovery {
            if ack >= self.recover {
                self.in_recovery = false;
                self.cc.on_recovery_end(now, flight);
            } else {
                // RFC 6582 §3.2 step 5: a partial ACK; the next hole is lost too.
                self.cc.on_partial_ack(acked);
                self.retransmit_una = true;
            }
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

    fn on_dup_ack(&mut self, now: Instant) {
        self.dupacks += 1;
        if self.in_recovery {
            self.cc.on_recovery_dup_ack();
        } else if self.dupacks == 3 && self.snd_una > self.recover {
            // RFC 5681 §3.2 / RFC 6582 §3.2 step 2: fast retransmit and enter recovery.
            let flight = self.snd_max - self.snd_una;
            self.in_recovery = true;
            self.recover = self.snd_max;
            self.cc.on_fast_retransmit(now, flight);
            self.retransmit_una = true;
            self.rtt_probe = None;
        }
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
        let advanced = self.rx.insert(offset, &payload[skip..]);
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
