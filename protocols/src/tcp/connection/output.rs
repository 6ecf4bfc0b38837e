//! Segment building: what goes out next, in priority order (RST, SYN/SYN-ACK, fast
//! retransmission, SACK recovery per RFC 6675 `NextSeg` or new data or FIN, zero-window probe,
//! keep-alive probe, pure ACK or window update).

use super::Connection;
use crate::tcp::timer::Timer;
use crate::tcp::{RetransmitReason, State, TcpEvent};
use crate::time::Instant;
use crate::wire::tcp::{SeqNumber, TcpFlags, TcpRepr, TcpTimestamp, MAX_SACK_BLOCKS};

/// Fixed TCP header bytes.
const BASE_HEADER_LEN: usize = 20;

/// Bytes of options `repr` carries, padded to a multiple of 4 (NOPs before each option as the
/// common layouts do).
fn options_len(repr: &TcpRepr) -> usize {
    let mut n = 0;
    if repr.max_seg_size.is_some() {
        n += 4;
    }
    if repr.window_scale.is_some() {
        n += 4;
    }
    if repr.sack_permitted {
        n += 4;
    }
    if repr.timestamp.is_some() {
        n += 12;
    }
    let blocks = repr.sack_ranges.iter().flatten().count();
    if blocks > 0 {
        n += 4 + 8 * blocks;
    }
    (n + 3) & !3
}

/// Header length of `repr`: 20 bytes plus options.
pub(crate) fn header_len(repr: &TcpRepr) -> usize {
    BASE_HEADER_LEN + options_len(repr)
}

impl Connection {
    /// The next segment to send, if any. `buf` is the room for the whole segment; the payload
    /// is written at `buf[header_len..header_len + payload_len]` where `header_len` is 20 plus
    /// the returned repr's options, and the caller emits the header into `buf[..header_len]`.
    /// Call until `None`.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<TcpRepr> {
        if let Some(rst) = self.pending_rst.take() {
            return Some(rst);
        }
        let out = self.next_segment(now, buf);
        self.update_persist(now);
        out
    }

    fn next_segment(&mut self, now: Instant, buf: &mut [u8]) -> Option<TcpRepr> {
        match self.state {
            State::Closed | State::Listen => return None,
            State::TimeWait => return self.pure_ack(now, buf.len()),
            _ => {}
        }
        if !self.syn_acked() && self.snd_nxt == self.iss {
            return Some(self.send_syn(now));
        }
        if self.state == State::SynSent {
            return None;
        }
        if self.tlp_send {
            if let Some(seg) = self.send_loss_probe(now, buf) {
                return Some(seg);
            }
        }
        if self.retransmit_una {
            self.retransmit_una = false;
            let end = self.snd_una + self.sack_limit(self.snd_una).min(u32::MAX as usize >> 1);
            if let Some(seg) = self.retransmit_range(now, buf, self.snd_una, end) {
                return Some(seg);
            }
        }
        if self.in_recovery && self.sack_on {
            if let Some(seg) = self.sack_recovery_segment(now, buf) {
                return Some(seg);
            }
        } else {
            if self.sack_on && self.snd_nxt < self.snd_max {
                // Going back after a timeout: what the peer SACKed is not sent again.
                if let Some(end) = self.sack.sacked_until(self.snd_nxt) {
                    self.snd_nxt = end.min(self.snd_max);
                }
            }
            let limit = self.sack_limit(self.snd_nxt);
            if let Some(seg) = self.send_from(now, buf, self.snd_nxt, false, limit) {
                return Some(seg);
            }
        }
        if self.send_probe {
            self.send_probe = false;
            // A zero-window probe: an old sequence number and no data, which any receiver
            // answers with an ACK carrying its current window.
            let repr = self.header(now, TcpFlags::ACK, self.snd_una - 1);
            if header_len(&repr) <= buf.len() {
                self.on_sent(&repr);
                return Some(repr);
            }
        }
        if self.send_keepalive {
            self.send_keepalive = false;
            // RFC 9293 §3.8.4: SEG.SEQ = SND.NXT - 1 and no data, which the peer answers with an
            // ACK (the form every stack answers, unlike one garbage byte).
            let repr = self.header(now, TcpFlags::ACK, self.snd_una - 1);
            if header_len(&repr) <= buf.len() {
                self.on_sent(&repr);
                return Some(repr);
            }
        }
        if self.ack_now || self.window_update_due() {
            return self.pure_ack(now, buf.len());
        }
        None
    }

    /// RFC 8985 §7.3: new data if the peer's window allows (the congestion window is not
    /// asked), else the last segment sent again.
    fn send_loss_probe(&mut self, now: Instant, buf: &mut [u8]) -> Option<TcpRepr> {
        let limit = self.sack_limit(self.snd_nxt);
        let seg = if self.snd_nxt == self.snd_max {
            self.send_from(now, buf, self.snd_nxt, false, limit)
        } else {
            None
        };
        let seg = seg.or_else(|| {
            let (s, e) = self.rack.last()?;
            let s = s.max(self.snd_una);
            self.send_from(now, buf, s, true, e - s)
        });
        self.tlp_send = false;
        if seg.is_some() {
            self.tlp_end = Some(self.snd_max);
            self.tlp_probes += 1;
            self.schedule_probe(now);
        }
        seg
    }

    fn pure_ack(&mut self, now: Instant, room: usize) -> Option<TcpRepr> {
        if !self.ack_now && self.state == State::TimeWait {
            return None;
        }
        // After a timeout SND.NXT went back; a pure ACK carries the highest sequence number
        // sent instead, or the peer, which has seen it, would find the ACK unacceptable
        // (as BSD does).
        let repr = self.header(now, TcpFlags::ACK, self.snd_max);
        if header_len(&repr) > room {
            return None;
        }
        self.on_sent(&repr);
        Some(repr)
    }

    /// SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED), with our options.
    pub(super) fn send_syn(&mut self, now: Instant) -> TcpRepr {
        let active = self.state == State::SynSent;
        let mut repr = TcpRepr {
            src_port: self.local_port,
            dst_port: self.remote_port,
            flags: TcpFlags::SYN,
            seq_number: self.iss,
            // Never scaled in a SYN (RFC 7323 §2.2).
            window_len: self.rx.window().min(usize::from(u16::MAX)) as u16,
            max_seg_size: Some(self.cfg.mss),
            ..TcpRepr::default()
        };
        if active {
            repr.window_scale = self.cfg.window_scaling.then_some(self.rcv_wscale);
            repr.sack_permitted = self.cfg.sack;
            if self.cfg.timestamps {
                repr.timestamp = Some(TcpTimestamp {
                    tsval: self.ts_now(now),
                    tsecr: 0,
                });
            }
        } else {
            repr.flags |= TcpFlags::ACK;
            repr.ack_number = Some(self.rcv_nxt);
            repr.window_scale = self.wscale_on.then_some(self.rcv_wscale);
            repr.sack_permitted = self.sack_on;
            if self.ts_on {
                repr.timestamp = Some(TcpTimestamp {
                    tsval: self.ts_now(now),
                    tsecr: self.ts_recent,
                });
            }
            self.ack_now = false;
            self.timers.stop(Timer::DelayedAck);
        }
        if self.rto_count == 0 {
            self.rtt_probe = Some((self.iss + 1, now));
        } else {
            let reason = RetransmitReason::Syn;
            self.emit(TcpEvent::Retransmit {
                seq: self.iss.0,
                len: 1,
                reason,
            });
        }
        self.snd_nxt = self.iss + 1;
        self.snd_max = self.snd_max.max(self.snd_nxt);
        self.timers
            .set_if_stopped(Timer::Retransmit, now + self.rtt.rto());
        repr
    }

    /// Bytes from `seq` up to the next range the peer SACKed (unbounded without SACK).
    fn sack_limit(&self, seq: SeqNumber) -> usize {
        if self.sack_on {
            self.sack.unsacked_run(seq)
        } else {
            usize::MAX
        }
    }

    /// Room the congestion window leaves for a segment starting at `seq`: `cwnd - pipe` in
    /// SACK recovery (RFC 6675), else what lies between `seq` and SND.UNA + cwnd (the window
    /// inflated during RFC 6582 recovery).
    fn cwnd_room(&self, seq: SeqNumber) -> usize {
        if self.tlp_send {
            // RFC 8985 §7.3: a loss probe of new data goes out whatever the congestion window.
            return usize::MAX;
        }
        if self.in_recovery && self.sack_on {
            self.pipe_room()
        } else {
            // RFC 3042 limited transmit: the first two duplicate ACKs each let one new
            // segment out beyond cwnd, to draw the duplicates fast retransmit needs.
            let extra = if self.in_recovery {
                0
            } else {
                self.dupacks.min(2) as usize * self.smss()
            };
            (self.snd_una + self.cwnd() + extra) - seq
        }
    }

    /// Data and/or FIN starting at `seq`, at most `limit` bytes of data (SND.NXT for new data;
    /// a retransmission ignores the windows, Nagle and the congestion window).
    pub(super) fn send_from(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        seq: SeqNumber,
        retransmit: bool,
        limit: usize,
    ) -> Option<TcpRepr> {
        if !self.sends_data() {
            return None;
        }
        if seq < self.tx_start {
            return None;
        }
        let offset = seq - self.tx_start;
        let unsent = self.tx.len().saturating_sub(offset);
        let data_end = self.tx_start + self.tx.len();
        let fin_pending = self.fin_queued && seq <= data_end;
        if unsent == 0 && !fin_pending {
            return None;
        }
        let mut repr = self.header(now, TcpFlags::ACK, seq);
        let hlen = header_len(&repr);
        if hlen >= buf.len() {
            return None;
        }
        let mss_payload = self.gso_size(&repr);
        let max_payload = mss_payload.min(buf.len() - hlen);
        // With TSO a segment may carry many MSS of payload; the device cuts it up.
        let seg_cap = if self.cfg.tso_max > hlen + mss_payload {
            let cap = (self.cfg.tso_max - hlen).min(buf.len() - hlen);
            (cap - cap % mss_payload).max(max_payload)
        } else {
            max_payload
        };
        let mut len = if retransmit {
            unsent.min(max_payload).min(limit)
        } else {
            let room = ((self.snd_una + self.snd_wnd) - seq).min(self.cwnd_room(seq));
            unsent.min(room).min(seg_cap).min(limit)
        };
        if len > mss_payload && len < unsent {
            // A TSO segment that does not empty the queue ends on an MSS boundary, so that the
            // device never cuts a short segment out of its middle (SWS avoidance).
            len -= len % mss_payload;
        }
        let fin = fin_pending && len == unsent;
        if len == 0 && !fin {
            return None;
        }
        // Data sent before (going back after a timeout, up to a SACKed range) is never held.
        let resend = seq < self.snd_max;
        if !retransmit && !resend && !fin && len < max_payload && !self.sws_override {
            // Nagle (RFC 9293 §3.7.4) and sender-side SWS avoidance (§3.8.6.2.1): a short
            // segment only when it empties the queue and nothing is in flight (or Nagle is
            // off), or when it is at least half the largest window the peer offered.
            let idle = self.snd_nxt == self.snd_una || self.nodelay;
            let sws_ok = self.max_snd_wnd > 0 && len >= self.max_snd_wnd / 2;
            if !((len == unsent && idle) || sws_ok) {
                return None;
            }
        }
        self.sws_override = false;
        self.tx
            .read_at(offset, buf.get_mut(hlen..hlen + len).unwrap_or_default());
        repr.payload_len = len;
        if fin {
            repr.flags |= TcpFlags::FIN;
        }
        if len > 0 && len == unsent {
            repr.flags |= TcpFlags::PSH;
        }
        let end = seq + repr.segment_len();
        if retransmit || end <= self.snd_max {
            // Karn's rule: nothing that was sent before is timed.
            if self.rtt_probe.is_some_and(|(probe_end, _)| probe_end > seq) {
                self.rtt_probe = None;
            }
        } else if self.rtt_probe.is_none() && seq >= self.snd_max {
            self.rtt_probe = Some((end, now));
        }
        if !retransmit {
            self.snd_nxt = end;
        }
        self.snd_max = self.snd_max.max(end);
        self.timers
            .set_if_stopped(Timer::Retransmit, now + self.rtt.rto());
        if let Some(t) = self.cfg.user_timeout {
            self.timers.set_if_stopped(Timer::UserTimeout, now + t);
        }
        self.rack.on_send(seq, end, now);
        if !retransmit && !resend {
            self.schedule_probe(now);
        }
        if (retransmit || resend) && self.events.is_some() {
            let reason = if self.tlp_send {
                RetransmitReason::Probe
            } else if self.in_recovery {
                if self.sack_on {
                    RetransmitReason::SackLoss
                } else {
                    RetransmitReason::FastRetransmit
                }
            } else if self.rto_count > 0 {
                RetransmitReason::Rto
            } else {
                RetransmitReason::Probe
            };
            let len = u32::try_from(repr.segment_len()).unwrap_or(u32::MAX);
            self.emit(TcpEvent::Retransmit {
                seq: seq.0,
                len,
                reason,
            });
        }
        self.on_sent(&repr);
        Some(repr)
    }

    /// Payload bytes per MSS-sized segment carrying `repr`'s options: the GSO size the device
    /// cuts a TSO segment into (every piece carries the same header).
    pub fn gso_size(&self, repr: &TcpRepr) -> usize {
        self.snd_mss.saturating_sub(options_len(repr)).max(1)
    }

    /// A header with ACK, window, timestamps and SACK blocks filled in; no side effects.
    fn header(&self, now: Instant, flags: TcpFlags, seq: SeqNumber) -> TcpRepr {
        let mut repr = TcpRepr {
            src_port: self.local_port,
            dst_port: self.remote_port,
            flags: flags | TcpFlags::ACK,
            seq_number: seq,
            ack_number: Some(self.rcv_nxt),
            window_len: self.window_field(),
            ..TcpRepr::default()
        };
        if self.ts_on {
            repr.timestamp = Some(TcpTimestamp {
                tsval: self.ts_now(now),
                tsecr: self.ts_recent,
            });
        }
        if self.sack_on && self.rx.has_held() {
            // RFC 2018 §3: three blocks fit beside timestamps, four without.
            let max = if self.ts_on { 3 } else { MAX_SACK_BLOCKS };
            for (slot, (s, e)) in repr
                .sack_ranges
                .iter_mut()
                .zip(self.rx.held_recent_first().take(max))
            {
                *slot = Some((self.rcv_nxt + s, self.rcv_nxt + e));
            }
        }
        repr
    }

    /// Bookkeeping for any segment that carries an ACK.
    fn on_sent(&mut self, repr: &TcpRepr) {
        self.ack_now = false;
        self.unacked_bytes = 0;
        self.send_probe = false;
        self.timers.stop(Timer::DelayedAck);
        self.last_ack_sent = self.rcv_nxt;
        self.read_since_sent = false;
        let edge = self.rcv_nxt + (usize::from(repr.window_len) << self.rcv_wscale);
        if edge > self.rcv_adv_edge {
            self.rcv_adv_edge = edge;
        }
    }

    /// The largest window the window field can carry: 65,535 bytes shifted by our scale
    /// (RFC 7323 §2.3), so 65,535 when the peer did not offer window scaling.
    fn max_window(&self) -> usize {
        usize::from(u16::MAX) << self.rcv_wscale
    }

    /// The receive window we may offer now, in bytes: the free buffer space as far as the field
    /// can carry it, but the right edge only moves when it can move by at least
    /// min(buffer / 2, MSS) (receiver-side SWS avoidance, RFC 9293 §3.8.6.2.2), and never moves
    /// left. Capping at [`Self::max_window`] here, not only in the field, is what keeps a
    /// 256 KiB buffer behind an unscaled window from deciding on every poll that a window update
    /// is due (a pure ACK per poll, millions a second, toward any peer without window scaling).
    fn window_to_offer(&self) -> usize {
        let current = self.rcv_adv_edge - self.rcv_nxt;
        let free = self.rx.window().min(self.max_window());
        let step = (self.rx.capacity() / 2)
            .min(usize::from(self.cfg.mss))
            .max(1);
        if free >= current + step {
            free
        } else {
            current
        }
    }

    /// The window field: [`Self::window_to_offer`] scaled, rounded up when rounding down would
    /// pull the right edge left of what was advertised.
    fn window_field(&self) -> u16 {
        let wnd = self.window_to_offer();
        let shift = self.rcv_wscale;
        let mut field = (wnd >> shift).min(usize::from(u16::MAX));
        let current = self.rcv_adv_edge - self.rcv_nxt;
        if (field << shift) < current && field < usize::from(u16::MAX) {
            field += 1;
        }
        field as u16
    }

    /// A window update is worth a segment of its own when the application's reads made the
    /// window at least double and grow by at least one step (which covers a window reopening
    /// from zero). A window that grew for another reason (the first scaled one after the
    /// handshake, where the SYN-ACK's was capped at 65,535) rides on the next ACK: a pure ACK
    /// for it would only cost both sides a segment per connection.
    fn window_update_due(&self) -> bool {
        if !self.read_since_sent {
            return false;
        }
        if !matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        ) {
            return false;
        }
        let current = self.rcv_adv_edge - self.rcv_nxt;
        let offered = self.window_to_offer();
        offered > current && offered >= 2 * current
    }
}
