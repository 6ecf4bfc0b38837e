//! Stack events, as the stack emits them (state changes, retransmissions and their reason,
//! RTO expiries, congestion window changes, SACK blocks received, drops). Sans-IO: the stack
//! records them only when asked ([`super::Stack::set_events`]), bounded, and the engine hands
//! them to the tracer, which writes them as pcapng packet comments and to observers.

use core::fmt;
use core::net::Ipv4Addr;

use super::DropReason;
use crate::tcp::{RetransmitReason, State, TcpEvent};

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

impl StackEvent {
    /// The stack-wide form of one connection's event.
    pub fn from_tcp(conn: ConnId, ev: TcpEvent) -> StackEvent {
        match ev {
            TcpEvent::State { from, to } => StackEvent::TcpState { conn, from, to },
            TcpEvent::Retransmit { seq, len, reason } => StackEvent::Retransmit {
                conn,
                seq,
                len,
                reason,
            },
            TcpEvent::RtoFired { rto_ms, backoff } => StackEvent::RtoFired {
                conn,
                rto_ms,
                backoff,
            },
            TcpEvent::Congestion { cwnd, ssthresh } => StackEvent::Congestion {
                conn,
                cwnd,
                ssthresh,
            },
            TcpEvent::SackReceived { blocks } => StackEvent::SackReceived { conn, blocks },
        }
    }
}
