//! TIME-WAIT without the connection. Once no application holds a connection in TIME-WAIT and its
//! last ACK is out, all it does for the rest of 2·MSL is acknowledge the peer's FIN again if the
//! peer sends it again, keep old duplicates of its 4-tuple away from a later incarnation, and
//! give way to a SYN that RFC 6191 lets through. [`TimeWait`] keeps what that takes: 80
//! bytes, where the [`Connection`](super::Connection) it replaces is over a kilobyte without its
//! buffers, and a server that closes first holds one per connection of the last minute.
//!
//! Its answers are the connection's own in TIME-WAIT (RFC 9293 §3.10.7.4 with RFC 7323 PAWS and
//! RFC 5961 challenge ACKs); the connection tests and these check the same cases.

use super::checks::{self, ChallengeBudget};
use super::SegmentDrop;
use crate::time::{Duration, Instant};
use crate::wire::tcp::{SeqNumber, TcpFlags, TcpRepr, TcpTimestamp};

/// A connection in TIME-WAIT, reduced to what TIME-WAIT still needs.
#[derive(Debug, Clone)]
pub struct TimeWait {
    pub(super) local_port: u16,
    pub(super) remote_port: u16,
    /// SND.NXT: all we sent, our FIN included, is acknowledged.
    pub(super) snd_nxt: SeqNumber,
    /// The largest window the peer offered (RFC 5961 §5.2's bound on acceptable ACKs).
    pub(super) max_snd_wnd: usize,
    /// RCV.NXT, past the peer's FIN; our last ACK acknowledged it.
    pub(super) rcv_nxt: SeqNumber,
    /// The right edge of the window we last advertised: what lies in it is acceptable.
    pub(super) rcv_adv_edge: SeqNumber,
    /// The window field that advertises that same edge again.
    pub(super) window_field: u16,
    /// The connection's timestamps, if it used them.
    pub(super) ts: Option<Timestamps>,
    /// When 2·MSL runs out (moved on by a FIN sent again).
    pub(super) expires: Instant,
    /// Challenge ACKs sent in the current second.
    pub(super) challenge: ChallengeBudget,
}

/// RFC 7323 state: our clock's offset for this 4-tuple, TS.Recent and when it last moved.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timestamps {
    pub offset: u32,
    pub recent: u32,
    pub recent_at: Instant,
}

/// What a segment made of a [`TimeWait`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeWaitOutcome {
    /// Send [`TimeWait::ack`] now.
    pub ack: bool,
    /// The segment was dropped, and why (for the counters).
    pub drop: Option<SegmentDrop>,
    /// An exact RST ended it: forget the 4-tuple.
    pub closed: bool,
}

impl TimeWait {
    /// When 2·MSL runs out, unless the peer sends its FIN again.
    pub fn expires(&self) -> Instant {
        self.expires
    }

    /// RFC 6191: whether a new incarnation opened by `syn` may take this 4-tuple (see
    /// [`checks::reopens_time_wait`]).
    pub fn accepts(&self, syn: &TcpRepr) -> bool {
        checks::reopens_time_wait(self.ts.map(|t| t.recent), self.rcv_nxt, syn)
    }

    /// Processes a segment of this 4-tuple (checksum verified), as a connection in TIME-WAIT
    /// does: `linger` is 2·MSL, `challenge_limit` the challenge ACKs allowed per second.
    pub fn handle_segment(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        linger: Duration,
        challenge_limit: u32,
    ) -> TimeWaitOutcome {
        let mut out = TimeWaitOutcome::default();
        if seg.dst_port != self.local_port || seg.src_port != self.remote_port {
            return out;
        }
        let rst = seg.flags.rst();
        // RFC 7323 §5.3 R1 (PAWS): an older TSval is an old duplicate: ACK and drop.
        if let (Some(ts), Some(s), false) = (self.ts, seg.timestamp, rst) {
            if checks::paws_rejects(ts.recent, ts.recent_at, now, s.tsval) {
                out.ack = true;
                out.drop = Some(SegmentDrop::Paws);
                return out;
            }
        }
        if seg.flags.syn() && !rst {
            // RFC 5961 §4: a SYN the table did not let open a new incarnation draws a
            // challenge ACK.
            self.challenge(now, challenge_limit, &mut out);
            return out;
        }
        if !checks::acceptable(self.rcv_nxt, self.rcv_adv_edge, seg) {
            out.drop = Some(SegmentDrop::OutOfWindow);
            if !rst {
                out.ack = true;
                if seg.flags.fin() {
                    // The FIN again: our last ACK was lost. 2·MSL starts over.
                    self.expires = now + linger;
                }
            }
            return out;
        }
        if let (Some(ts), Some(s)) = (self.ts.as_mut(), seg.timestamp) {
            // RFC 7323 §4.3: a segment at the left window edge (our last ACK was RCV.NXT).
            if seg.seq_number <= self.rcv_nxt {
                ts.recent = s.tsval;
                ts.recent_at = now;
            }
        }
        if rst {
            if seg.seq_number == self.rcv_nxt {
                out.closed = true;
            } else {
                // RFC 5961 §3.2: in the window but not exact.
                self.challenge(now, challenge_limit, &mut out);
            }
            return out;
        }
        let Some(ack) = seg.ack_number else {
            return out;
        };
        // RFC 5961 §5.2: an ACK of data never sent, or older than any window.
        if ack > self.snd_nxt || ack < self.snd_nxt - self.max_snd_wnd {
            out.drop = Some(SegmentDrop::BadAck);
            self.challenge(now, challenge_limit, &mut out);
            return out;
        }
        if seg.flags.fin() {
            out.ack = true;
            self.expires = now + linger;
        }
        out
    }

    /// The ACK TIME-WAIT sends: SND.NXT, RCV.NXT, the window last advertised.
    pub fn ack(&self, now: Instant) -> TcpRepr {
        TcpRepr {
            src_port: self.local_port,
            dst_port: self.remote_port,
            flags: TcpFlags::ACK,
            seq_number: self.snd_nxt,
            ack_number: Some(self.rcv_nxt),
            window_len: self.window_field,
            timestamp: self.ts.map(|ts| TcpTimestamp {
                tsval: (now.total_millis() as u32).wrapping_add(ts.offset),
                tsecr: ts.recent,
            }),
            ..TcpRepr::default()
        }
    }

    /// RFC 5961 §7: a challenge ACK, at most `limit` a second.
    fn challenge(&mut self, now: Instant, limit: u32, out: &mut TimeWaitOutcome) {
        if self.challenge.allow(now, limit) {
            out.ack = true;
        } else {
            out.drop = Some(SegmentDrop::ChallengeAckLimited);
        }
    }
}
