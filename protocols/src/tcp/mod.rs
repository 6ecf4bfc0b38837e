//! One TCP connection (RFC 9293), sans-IO.
//!
//! This module owns the per-connection state machine and everything it needs: the send buffer
//! ([`send_buffer`]), the receive buffer with out-of-order reassembly ([`recv_buffer`]), the RFC
//! 6298 RTT/RTO estimator ([`rtt`]), the timer table ([`timer`]), the RFC 6675 SACK scoreboard
//! ([`sack`]), congestion control behind a trait ([`congestion`]: CUBIC by default, NewReno),
//! the RFC 6528 ISN generator ([`isn`]) and the RFC 4987 SYN cookie codec ([`syn_cookie`]). It never reads a clock, never
//! draws randomness and never touches a socket: segments come in through
//! [`Connection::handle_segment`], time through `now` arguments, and segments go out through
//! [`Connection::poll_transmit`]. Listening sockets, demultiplexing and checksums belong to the
//! caller.

mod checks;
pub mod congestion;
mod connection;
mod event;
mod isn;
mod rack;
mod recv_buffer;
mod rtt;
mod sack;
mod send_buffer;
mod spare;
mod syn_cookie;
mod time_wait;
mod timer;

#[cfg(test)]
mod tests;

use core::fmt;

use crate::time::Duration;
use crate::wire::tcp::{SeqNumber, TcpFlags, TcpRepr};

pub use congestion::{CongestionAlgorithm, CongestionController, Cubic, NewReno};
pub use connection::{Connection, PathMtu, BUFFER_SWEEP, MIN_PATH_MTU};
pub use event::{RetransmitReason, TcpEvent};
pub use isn::IsnGenerator;
pub use rtt::RttEstimator;
pub use spare::{SpareBuffers, MAX_SPARE_BYTES};
pub use syn_cookie::SynCookies;
pub use time_wait::{TimeWait, TimeWaitOutcome};

/// Per-connection settings. `Default` gives the values documented on each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// MSS we advertise, and the cap on the payload of the segments we send (default 1460).
    pub mss: u16,
    /// Receive buffer bytes (default 256 KiB); the advertised window is its free space.
    pub rx_buffer: usize,
    /// Send buffer bytes (default 256 KiB).
    pub tx_buffer: usize,
    /// Offer/accept the RFC 7323 window scale option; our shift follows from `rx_buffer`.
    pub window_scaling: bool,
    /// Offer/accept RFC 7323 timestamps; RTT is sampled from them when they are on.
    pub timestamps: bool,
    /// Offer/accept SACK-permitted (RFC 2018) and send SACK blocks for out-of-order data.
    pub sack: bool,
    /// Nagle's algorithm (RFC 9293 §3.7.4), default on.
    pub nagle: bool,
    /// Delayed ACK timeout (default 40 ms); an ACK also goes out for every second full segment.
    pub delayed_ack: Duration,
    /// RFC 6298 (2.1): 1 s.
    pub initial_rto: Duration,
    /// Lower clamp on the RTO (default 200 ms, below RFC 6298's 1 s as every modern stack does).
    pub min_rto: Duration,
    /// Upper clamp on the RTO (default 60 s).
    pub max_rto: Duration,
    /// R2 (RFC 9293 §3.8.3): give up with [`ConnError::TimedOut`] after this many consecutive
    /// retransmission timeouts on a synchronized connection (default 15).
    pub max_retransmissions: u32,
    /// The same for SYN and SYN-ACK (default 6).
    pub max_syn_retransmissions: u32,
    /// TIME-WAIT length, 2*MSL (default 60 s).
    pub time_wait: Duration,
    /// The congestion controller a connection starts with (default CUBIC).
    pub congestion: CongestionAlgorithm,
    /// Keep-alive (RFC 9293 §3.8.4): off by default; `Some(idle)` sends a probe after `idle`
    /// without a segment from the peer.
    pub keepalive: Option<Duration>,
    /// Time between unanswered keep-alive probes (default 75 s).
    pub keepalive_interval: Duration,
    /// Unanswered probes before the connection fails with [`ConnError::TimedOut`] (default 9).
    pub keepalive_count: u32,
    /// RFC 5482-style user timeout: fail with [`ConnError::TimedOut`] when sent data stays
    /// unacknowledged this long (default off; R2 applies). When set it replaces the R2 count.
    pub user_timeout: Option<Duration>,
    /// Close a connection idle this long in FIN-WAIT-2 (default 60 s, Linux `tcp_fin_timeout`;
    /// every segment from the peer restarts it). `None` waits forever.
    pub fin_wait2_timeout: Option<Duration>,
    /// RFC 5961 §7: challenge ACKs sent per second at most, per connection (default 1000, the
    /// figure of Linux's former global limit; per connection, so that the count leaks nothing
    /// across connections as the global one did, CVE-2016-5696).
    pub challenge_ack_limit: u32,
    /// Answer SYNs with RFC 4987 SYN cookies when a listener's queue is full (default on).
    pub syn_cookies: bool,
    /// TCP segmentation offload: the largest TCP segment (header included) handed to the
    /// device, which cuts it into MSS-sized segments (default 0: off, every segment at most
    /// one MSS). Congestion and peer windows, Nagle and SWS avoidance still apply per MSS.
    pub tso_max: usize,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mss: 1460,
            rx_buffer: 256 * 1024,
            tx_buffer: 256 * 1024,
            window_scaling: true,
            timestamps: true,
            sack: true,
            nagle: true,
            delayed_ack: Duration::from_millis(40),
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            max_retransmissions: 15,
            max_syn_retransmissions: 6,
            time_wait: Duration::from_secs(60),
            congestion: CongestionAlgorithm::Cubic,
            keepalive: None,
            keepalive_interval: Duration::from_secs(75),
            keepalive_count: 9,
            user_timeout: None,
            fin_wait2_timeout: Some(Duration::from_secs(60)),
            challenge_ack_limit: 1000,
            syn_cookies: true,
            tso_max: 0,
        }
    }
}

/// Connection states of RFC 9293 §3.3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl State {
    /// States in which both sequence spaces are known (RFC 9293 "synchronized").
    pub fn is_synchronized(self) -> bool {
        !matches!(self, State::Closed | State::Listen | State::SynSent)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
        };
        f.write_str(name)
    }
}

/// Why a connection ended abnormally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// The peer answered our SYN with a RST.
    #[error("connection refused")]
    Refused,
    /// The peer reset an established connection.
    #[error("connection reset by peer")]
    Reset,
    /// Retransmissions went unanswered R2 times.
    #[error("connection timed out")]
    TimedOut,
    /// An ICMP error answered our SYN: no route to the host (host unreachable, or
    /// administratively prohibited, or the SYN's TTL ran out on the way).
    #[error("no route to host")]
    HostUnreachable,
    /// An ICMP error answered our SYN: the host's network is unreachable.
    #[error("network is unreachable")]
    NetUnreachable,
}

/// A segment the connection dropped, or an answer it held back, for the caller's counters
/// ([`Connection::take_drop`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentDrop {
    /// RFC 7323 §5: TSval older than TS.Recent (answered by an ACK).
    Paws,
    /// RFC 5961: a challenge ACK was due but this second's budget is spent.
    ChallengeAckLimited,
    /// RFC 5961 §5: the ACK field acknowledges data never sent, or older than the window.
    BadAck,
    /// Outside the receive window (answered by an ACK unless it is a RST).
    OutOfWindow,
    /// New data for a connection its application let go of: nobody will read it, so the
    /// connection is reset (RFC 1122 §4.2.2.13, Linux's `TCPAbortOnData`).
    DataAfterClose,
}

/// Why [`Connection::send`] could not take data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Not established yet, or the connection failed ([`Connection::error`] says why) or was
    /// aborted.
    #[error("not connected")]
    NotConnected,
    /// The write side was shut down by [`Connection::close`].
    #[error("connection closed for writing")]
    Closed,
}

/// Why [`Connection::recv`] returned no data. End of stream is `Ok(0)`, not an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// Nothing to read yet.
    #[error("no data yet")]
    WouldBlock,
    /// The connection was closed locally (aborted, or closed before it was established)
    /// without an end of stream from the peer.
    #[error("not connected")]
    NotConnected,
    /// The connection failed.
    #[error(transparent)]
    Conn(#[from] ConnError),
}

/// The reply to a segment that matches no connection (RFC 9293 §3.10.7.1): a RST whose sequence
/// number makes it acceptable to the sender, or `None` for an incoming RST.
pub fn rst_for_unexpected(seg: &TcpRepr) -> Option<TcpRepr> {
    if seg.flags.rst() {
        return None;
    }
    let mut rst = TcpRepr {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        ..TcpRepr::default()
    };
    match seg.ack_number {
        Some(ack) => {
            rst.flags = TcpFlags::RST;
            rst.seq_number = ack;
        }
        None => {
            rst.flags = TcpFlags::RST | TcpFlags::ACK;
            rst.seq_number = SeqNumber(0);
            rst.ack_number = Some(seg.seq_number + seg.segment_len());
        }
    }
    Some(rst)
}
