//! Stack events: what the stack did that a capture on the wire cannot show.
//!
//! The stack emits a [`StackEvent`] when a TCP connection changes state, retransmits, fires its
//! RTO, changes its congestion window, receives SACK blocks, or drops a frame. An event is
//! `Copy` and holds no heap data, so emitting one never allocates. Events reach two places:
//! the [`StackObserver`]s registered with a [`super::Tracer`], and the pcapng comment of the
//! frame that caused them ([`super::Tracer::frame_with_events`]).

use core::fmt;
use core::net::Ipv4Addr;

use protocols::iface::DropReason;
use protocols::tcp::State;

/// A TCP connection as the stack sees it: local and remote endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub local: (Ipv4Addr, u16),
    pub remote: (Ipv4Addr, u16),
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}-{}:{}",
            self.local.0, self.local.1, self.remote.0, self.remote.1
        )
    }
}

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

/// One event of the stack. Sequence numbers are absolute (as on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackEvent {
    TcpState {
        conn: ConnId,
        from: State,
        to: State,
    },
    Retransmit {
        conn: ConnId,
        seq: u32,
        len: u32,
        reason: RetransmitReason,
    },
    RtoFired {
        conn: ConnId,
        rto_ms: u32,
        /// How many times the timer has backed off, this expiry included.
        backoff: u8,
    },
    Congestion {
        conn: ConnId,
        cwnd: u32,
        ssthresh: u32,
    },
    SackReceived {
        conn: ConnId,
        /// (left, right) edges; used blocks first.
        blocks: [Option<(u32, u32)>; 4],
    },
    Drop {
        reason: DropReason,
    },
}

/// The comment text of an event, as it appears in pcapng `opt_comment` and trace output.
impl fmt::Display for StackEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackEvent::TcpState { conn, from, to } => {
                write!(f, "tcp {conn}: state {from} -> {to}")
            }
            StackEvent::Retransmit {
                conn,
                seq,
                len,
                reason,
            } => write!(
                f,
                "tcp {conn}: retransmit seq {seq} len {len} ({})",
                reason.name()
            ),
            StackEvent::RtoFired {
                conn,
                rto_ms,
                backoff,
            } => write!(f, "tcp {conn}: rto fired ({rto_ms} ms, backoff {backoff})"),
            StackEvent::Congestion {
                conn,
                cwnd,
                ssthresh,
            } => write!(f, "tcp {conn}: cwnd {cwnd} ssthresh {ssthresh}"),
            StackEvent::SackReceived { conn, blocks } => {
                write!(f, "tcp {conn}: sack")?;
                for (l, r) in blocks.iter().flatten() {
                    write!(f, " {l}-{r}")?;
                }
                Ok(())
            }
            StackEvent::Drop { reason } => write!(f, "dropped: {reason}"),
        }
    }
}

/// Subscribes to stack events. Called on the worker thread that emitted the event, so an
/// implementation must be quick and must not block (count, or push to its own bounded queue).
pub trait StackObserver: Send + Sync {
    fn on_event(&self, queue: u16, ts_micros: u64, event: &StackEvent);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> ConnId {
        ConnId {
            local: (Ipv4Addr::new(10, 0, 0, 2), 80),
            remote: (Ipv4Addr::new(10, 0, 0, 1), 40000),
        }
    }

    #[test]
    fn events_read_as_comments() {
        let e = StackEvent::Retransmit {
            conn: conn(),
            seq: 1001,
            len: 100,
            reason: RetransmitReason::Rto,
        };
        assert_eq!(
            e.to_string(),
            "tcp 10.0.0.2:80-10.0.0.1:40000: retransmit seq 1001 len 100 (rto)"
        );
        let e = StackEvent::TcpState {
            conn: conn(),
            from: State::SynReceived,
            to: State::Established,
        };
        assert_eq!(
            e.to_string(),
            "tcp 10.0.0.2:80-10.0.0.1:40000: state SYN-RECEIVED -> ESTABLISHED"
        );
        let e = StackEvent::Drop {
            reason: DropReason::TcpBadChecksum,
        };
        assert_eq!(e.to_string(), "dropped: tcp_bad_checksum");
        let e = StackEvent::SackReceived {
            conn: conn(),
            blocks: [Some((1, 2)), Some((5, 9)), None, None],
        };
        assert!(e.to_string().ends_with("sack 1-2 5-9"));
    }
}
