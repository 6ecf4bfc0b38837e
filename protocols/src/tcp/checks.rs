//! The tests every synchronized TCP endpoint applies to an arriving segment, shared by a
//! [`Connection`](super::Connection) and a compact [`TimeWait`](super::TimeWait): window
//! acceptability (RFC 9293 §3.10.7.4), PAWS (RFC 7323 §5) and the challenge ACK budget
//! (RFC 5961 §7).

use crate::time::{Duration, Instant};
use crate::wire::tcp::{SeqNumber, TcpRepr};

/// RFC 7323 §5.5: TS.Recent is not trusted after this long without an update (24 days).
const PAWS_IDLE_LIMIT: Duration = Duration::from_secs(24 * 24 * 3600);

/// RFC 9293 §3.10.7.4's four cases for a receive window from `rcv_nxt` to `edge` (the right
/// edge last advertised), with the allowance for ACKs (and a FIN) at a zero window: a segment
/// at exactly RCV.NXT is let through.
pub(super) fn acceptable(rcv_nxt: SeqNumber, edge: SeqNumber, seg: &TcpRepr) -> bool {
    let wnd = edge - rcv_nxt;
    let len = seg.segment_len();
    let seq = seg.seq_number;
    let in_window = |s: SeqNumber| rcv_nxt <= s && s < rcv_nxt + wnd;
    match (len, wnd) {
        (0, 0) => seq == rcv_nxt,
        (0, _) => in_window(seq),
        (_, 0) => seq == rcv_nxt,
        (_, _) => in_window(seq) || in_window(seq + (len - 1)),
    }
}

/// RFC 7323 §5.3 R1: whether `tsval` is older than TS.Recent (`recent`, last moved at
/// `recent_at`), so that the segment is an old duplicate; not once TS.Recent went stale.
pub(super) fn paws_rejects(recent: u32, recent_at: Instant, now: Instant, tsval: u32) -> bool {
    now - recent_at <= PAWS_IDLE_LIMIT && (tsval.wrapping_sub(recent) as i32) < 0
}

/// RFC 6191 §2: whether a SYN may open a new incarnation of a 4-tuple in TIME-WAIT whose last
/// sequence number seen is `rcv_nxt` and whose TS.Recent is `ts_recent` (when it used
/// timestamps). With timestamps on both: a newer TSval, or the same TSval and a higher ISN (a
/// client that reconnects within the millisecond of its FIN); without: a higher ISN.
pub(super) fn reopens_time_wait(ts_recent: Option<u32>, rcv_nxt: SeqNumber, syn: &TcpRepr) -> bool {
    match (ts_recent, syn.timestamp) {
        (Some(recent), Some(ts)) => {
            let newer = ts.tsval.wrapping_sub(recent) as i32;
            newer > 0 || (newer == 0 && syn.seq_number > rcv_nxt)
        }
        _ => syn.seq_number > rcv_nxt,
    }
}

/// RFC 5961 §7: challenge ACKs sent in the current second.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ChallengeBudget {
    second: u64,
    sent: u32,
}

impl ChallengeBudget {
    /// Whether one more challenge ACK may go out at `now`, `limit` a second; counts it if so.
    pub fn allow(&mut self, now: Instant, limit: u32) -> bool {
        let second = now.total_micros() / 1_000_000;
        if second != self.second {
            self.second = second;
            self.sent = 0;
        }
        if self.sent < limit {
            self.sent += 1;
            true
        } else {
            false
        }
    }
}
