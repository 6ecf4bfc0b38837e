//! RACK (RFC 8985 §6): time-based loss detection from per-segment transmit times, and the
//! sender's view of each segment in flight (SACKed, marked lost, retransmitted) that SACK
//! recovery counts `pipe` from and picks lost segments out of.
//!
//! One entry per segment sent, in sequence order, with its latest transmit time: a
//! retransmission moves the time forward, which is what lets RACK find a lost retransmission
//! (a segment sent after it was delivered and a reordering window passed). The ring is bounded
//! ([`MAX_SEGMENTS`]): past that, new data joins the last entry (coarser, never wrong data).
//! Entries never outlive SND.UNA.

use std::collections::VecDeque;

use crate::time::{Duration, Instant};
use crate::wire::tcp::SeqNumber;

use super::sack::Scoreboard;

/// Entries kept at most.
pub const MAX_SEGMENTS: usize = 8192;

#[derive(Clone, Copy, Debug)]
pub(super) struct Sent {
    start: SeqNumber,
    end: SeqNumber,
    /// Latest transmission.
    xmit: Instant,
    /// Sent more than once.
    retransmitted: bool,
    /// Copies believed in the network: 1 once sent, 0 once lost, 2 when resent without
    /// being deemed lost (the original may still arrive).
    copies: u8,
    /// Marked lost and not sent again since.
    lost: bool,
    /// Wholly SACKed.
    sacked: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Rack {
    segs: VecDeque<Sent>,
    /// RACK.xmit_ts / RACK.end_seq: the most recently sent segment delivered so far.
    xmit_ts: Option<Instant>,
    end_seq: SeqNumber,
    /// RACK.rtt: the RTT measured from that segment.
    rtt: Duration,
    /// Entries with `retransmitted` set: while none, send times rise with sequence numbers
    /// and the loss scan stops at the first segment sent after RACK.xmit_ts.
    resent: usize,
    /// Smallest RACK.rtt seen (RFC 8985 §6.2 step 3 uses it to reject ambiguous samples).
    min_rtt: Option<Duration>,
}

impl Rack {
    /// Gives the records' room to `spares` when nothing is in flight.
    pub(super) fn release_into(&mut self, spares: &mut super::SpareBuffers) {
        if self.segs.is_empty() && self.segs.capacity() > 0 {
            spares.put_rack(std::mem::take(&mut self.segs));
        }
    }

    /// Takes room for records from `spares` while holding none.
    pub(super) fn adopt(&mut self, spares: &mut super::SpareBuffers) {
        if self.segs.capacity() == 0 {
            if let Some(s) = spares.take_rack() {
                self.segs = s;
            }
        }
    }

    /// Heap bytes held for the per-segment records; 0 when nothing is in flight.
    pub fn footprint(&self) -> usize {
        self.segs.capacity() * core::mem::size_of::<Sent>()
    }

    /// Smallest RTT measured from send times (microsecond precision, unlike timestamps).
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// `[start, end)` went out at `now`: new data is appended, a resend updates what it covers.
    pub fn on_send(&mut self, start: SeqNumber, end: SeqNumber, now: Instant) {
        if end <= start {
            return;
        }
        let top = self.segs.back().map(|s| s.end);
        if top.is_none_or(|t| start >= t) {
            if self.segs.len() >= MAX_SEGMENTS {
                if let Some(last) = self.segs.back_mut() {
                    last.end = end;
                    last.xmit = now;
                    return;
                }
            }
            self.segs.push_back(Sent {
                start,
                end,
                xmit: now,
                retransmitted: false,
                copies: 1,
                lost: false,
                sacked: false,
            });
            return;
        }
        let first = self.segs.partition_point(|s| s.end <= start);
        for s in self.segs.range_mut(first..) {
            if s.start >= end {
                break;
            }
            s.xmit = now;
            if !s.retransmitted {
                self.resent += 1;
            }
            s.retransmitted = true;
            s.copies = if s.lost { 1 } else { 2 };
            s.lost = false;
        }
        if let Some(t) = top {
            if end > t {
                self.on_send(t, end, now);
            }
        }
    }

    /// An ACK moved SND.UNA to `snd_una` and the scoreboard took its SACK blocks: retire what
    /// is acknowledged, note what is newly SACKed and update RACK.xmit_ts/rtt from the
    /// delivered segments (RFC 8985 §6.2). With `sack_lost`, segments never retransmitted that
    /// RFC 6675 `IsLost` holds for are marked lost too. Returns whether anything was delivered.
    pub fn on_ack(
        &mut self,
        now: Instant,
        snd_una: SeqNumber,
        sack: &Scoreboard,
        smss: usize,
        sack_lost: bool,
    ) -> bool {
        let mut delivered = false;
        while let Some(s) = self.segs.front() {
            if s.end > snd_una {
                break;
            }
            let s = *s;
            self.segs.pop_front();
            if s.retransmitted {
                self.resent -= 1;
            }
            if !s.sacked {
                self.update(now, &s);
                delivered = true;
            }
        }
        // Nothing in flight: the records' room stays until the stack's sweep takes it.
        let mut holes = sack.holes(snd_una, smss).peekable();
        let top = sack.high_sacked();
        for i in 0..self.segs.len() {
            let Some(&s) = self.segs.get(i) else { break };
            if top.is_none_or(|t| s.start >= t) {
                break;
            }
            if !s.sacked && sack.sacked_until(s.start).is_some_and(|e| e >= s.end) {
                if let Some(seg) = self.segs.get_mut(i) {
                    seg.sacked = true;
                }
                self.update(now, &s);
                delivered = true;
                continue;
            }
            if !sack_lost || s.sacked || s.retransmitted || s.lost {
                continue;
            }
            while holes.peek().is_some_and(|&(_, e, _)| e <= s.start) {
                holes.next();
            }
            if let Some(&(hs, _, lost)) = holes.peek() {
                if lost && hs <= s.start {
                    if let Some(seg) = self.segs.get_mut(i) {
                        seg.lost = true;
                        seg.copies = 0;
                    }
                }
            }
        }
        delivered
    }

    /// RFC 8985 §6.2 steps 2-4 for one delivered segment.
    fn update(&mut self, now: Instant, s: &Sent) {
        let rtt = now - s.xmit;
        // A retransmitted segment delivered sooner than any RTT: the ACK is for the original.
        if s.retransmitted && self.min_rtt.is_some_and(|m| rtt < m) {
            return;
        }
        self.rtt = rtt;
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        let newer = match self.xmit_ts {
            None => true,
            Some(t) => s.xmit > t || (s.xmit == t && s.end > self.end_seq),
        };
        if newer {
            self.xmit_ts = Some(s.xmit);
            self.end_seq = s.end;
        }
    }

    /// RFC 8985 §6.2 step 5: marks lost every unSACKed segment sent before the most recently
    /// delivered one whose deadline (send time + RACK.rtt + `reo_wnd`) has passed. Returns
    /// whether any was newly marked, and the earliest deadline still to come (the reordering
    /// timer).
    pub fn detect_loss(&mut self, now: Instant, reo_wnd: Duration) -> (bool, Option<Instant>) {
        let Some(xmit_ts) = self.xmit_ts else {
            return (false, None);
        };
        let mut marked = false;
        let mut timer: Option<Instant> = None;
        let ordered = self.resent == 0;
        for s in self.segs.iter_mut() {
            if ordered && s.xmit > xmit_ts {
                break;
            }
            if s.sacked || s.lost {
                continue;
            }
            let before = s.xmit < xmit_ts || (s.xmit == xmit_ts && s.end < self.end_seq);
            if !before {
                continue;
            }
            let deadline = s.xmit + self.rtt + reo_wnd;
            if deadline <= now {
                s.lost = true;
                s.copies = 0;
                marked = true;
            } else {
                timer = Some(timer.map_or(deadline, |t| t.min(deadline)));
            }
        }
        (marked, timer)
    }

    /// After a retransmission timeout: everything unSACKed is lost (RFC 8985 §6.3 at RTO).
    pub fn mark_all_lost(&mut self) {
        for s in self.segs.iter_mut().filter(|s| !s.sacked) {
            s.lost = true;
            s.copies = 0;
        }
    }

    /// The scoreboard was cleared (the peer may have reneged): nothing counts as SACKed.
    pub fn forget_sacks(&mut self) {
        for s in self.segs.iter_mut() {
            s.sacked = false;
        }
    }

    /// Bytes believed in the network: unSACKed segments not marked lost, once more each if
    /// resent while not believed lost (RFC 6675 `pipe` with RACK's marks).
    pub fn pipe(&self) -> usize {
        self.segs
            .iter()
            .filter(|s| !s.sacked)
            .map(|s| usize::from(s.copies) * (s.end - s.start))
            .sum()
    }

    /// The lowest segment marked lost and not sent again, as `(start, end)`.
    pub fn first_lost(&self) -> Option<(SeqNumber, SeqNumber)> {
        self.segs
            .iter()
            .find(|s| s.lost && !s.sacked)
            .map(|s| (s.start, s.end))
    }

    /// RFC 6675 `NextSeg` rule (3): the lowest unSACKed segment below `below` never sent again.
    pub fn first_unretransmitted(&self, below: SeqNumber) -> Option<(SeqNumber, SeqNumber)> {
        self.segs
            .iter()
            .take_while(|s| s.start < below)
            .find(|s| !s.sacked && !s.retransmitted && !s.lost)
            .map(|s| (s.start, s.end))
    }

    /// The last segment sent (for a probe that resends it).
    pub fn last(&self) -> Option<(SeqNumber, SeqNumber)> {
        self.segs.back().map(|s| (s.start, s.end))
    }

    /// Segments outstanding (entries, so coarse once the ring is full).
    pub fn segments(&self) -> usize {
        self.segs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn later_delivery_marks_earlier_lost_after_reo_wnd() {
        let mut r = Rack::default();
        for i in 0..4u32 {
            r.on_send(s(i * 100), s(i * 100 + 100), t(u64::from(i)));
        }
        // Segment 3 (sent at 3 ms) SACKed at 13 ms: RACK.rtt = 10 ms.
        let mut sb = Scoreboard::default();
        sb.add_blocks(s(0), s(400), [(s(300), s(400))]);
        assert!(r.on_ack(t(13), s(0), &sb, 100, false));
        // Deadlines: sent + 10 + 2 ms: 12, 13, 14.
        let (marked, timer) = r.detect_loss(t(13), Duration::from_millis(2));
        assert!(marked);
        assert_eq!(timer, Some(t(14)));
        assert_eq!(r.first_lost(), Some((s(0), s(100))));
        assert_eq!(r.pipe(), 100, "0 and 1 lost, 3 SACKed, 2 in flight");
        // Resending segment 0 at 14 ms puts it back in flight with a new time.
        r.on_send(s(0), s(100), t(14));
        assert_eq!(r.first_lost(), Some((s(100), s(200))));
        assert_eq!(
            r.pipe(),
            100 + 100,
            "0 resent after its loss counts once, 2 in flight"
        );
    }

    #[test]
    fn lost_retransmission_is_found() {
        let mut r = Rack::default();
        r.on_send(s(0), s(100), t(0));
        r.on_send(s(100), s(200), t(1));
        let mut sb = Scoreboard::default();
        sb.add_blocks(s(0), s(200), [(s(100), s(200))]);
        r.on_ack(t(11), s(0), &sb, 100, true);
        r.detect_loss(t(11), Duration::ZERO);
        // Retransmitted at 11 ms, then new data at 12 ms delivered at 22 ms: the
        // retransmission (deadline 21 ms) is lost again.
        r.on_send(s(0), s(100), t(11));
        r.on_send(s(200), s(300), t(12));
        sb.add_blocks(s(0), s(300), [(s(200), s(300))]);
        r.on_ack(t(22), s(0), &sb, 100, true);
        assert_eq!(r.detect_loss(t(22), Duration::ZERO), (true, None));
        assert_eq!(r.first_lost(), Some((s(0), s(100))));
    }
}
