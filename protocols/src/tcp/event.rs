//! What a connection did that a capture on the wire cannot show: state changes,
//! retransmissions and why, RTO expiries, congestion window changes, SACK blocks received.
//!
//! Off by default: a connection records events only after [`super::Connection::set_events`],
//! into a small bounded queue (the oldest are dropped when nobody drains it), so a node that
//! does not trace pays one branch per event site.

use core::fmt;

use super::State;

/// Why a segment was sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetransmitReason {
    /// The retransmission timer expired (RFC 6298 §5.4).
    Rto,
    /// Three duplicate ACKs (RFC 5681 §3.2).
    FastRetransmit,
    /// The SACK scoreboard marked the range lost (RFC 6675).
    SackLoss,
    /// A SYN or SYN-ACK sent again.
    Syn,
    /// A tail loss probe.
    Probe,
}

impl RetransmitReason {
    pub fn name(self) -> &'static str {
        match self {
            RetransmitReason::Rto => "rto",
            RetransmitReason::FastRetransmit => "fast-retransmit",
            RetransmitReason::SackLoss => "sack-loss",
            RetransmitReason::Syn => "syn",
            RetransmitReason::Probe => "probe",
        }
    }
}

impl fmt::Display for RetransmitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One event of one connection. Sequence numbers are absolute (as on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpEvent {
    State {
        from: State,
        to: State,
    },
    Retransmit {
        seq: u32,
        len: u32,
        reason: RetransmitReason,
    },
    RtoFired {
        rto_ms: u32,
        backoff: u8,
    },
    Congestion {
        cwnd: u32,
        ssthresh: u32,
    },
    SackReceived {
        blocks: [Option<(u32, u32)>; 4],
    },
}

/// Events held per connection before the oldest are dropped.
pub(crate) const EVENT_QUEUE: usize = 32;
