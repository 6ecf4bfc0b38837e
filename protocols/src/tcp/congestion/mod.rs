//! Congestion control behind a trait, so that an algorithm (NewReno here; CUBIC later) is a
//! swap of one boxed object.
//!
//! Division of labour: the connection detects loss (duplicate ACKs, partial ACKs, timeouts),
//! chooses what to retransmit and keeps the recovery point; a controller only turns those events
//! into a congestion window. A SACK-based loss detector can later drive the same events.

mod new_reno;

pub use new_reno::NewReno;

use crate::time::{Duration, Instant};

/// RFC 6928 initial window: min(10*MSS, max(2*MSS, 14600)).
pub fn initial_window(mss: usize) -> usize {
    (10 * mss).min((2 * mss).max(14_600))
}

/// A congestion control algorithm. All sizes are bytes.
pub trait CongestionController: core::fmt::Debug + Send {
    /// The congestion window.
    fn window(&self) -> usize;

    /// The slow-start threshold (for statistics).
    fn ssthresh(&self) -> usize;

    /// The sender's MSS changed (it is known once the handshake is done).
    fn set_mss(&mut self, mss: usize);

    /// New data was acknowledged outside loss recovery. `rtt` is the sample this ACK gave, if
    /// any.
    fn on_ack(&mut self, now: Instant, bytes_acked: usize, rtt: Option<Duration>);

    /// Loss detected by duplicate ACKs: fast retransmit, entering recovery (RFC 5681 §3.2
    /// step 2). `flight` is the data outstanding when the loss was detected.
    fn on_fast_retransmit(&mut self, now: Instant, flight: usize);

    /// Another duplicate ACK during recovery: one more segment left the network.
    fn on_recovery_dup_ack(&mut self) {}

    /// A partial ACK during recovery (RFC 6582 §3.2 step 5) acknowledged `bytes_acked`.
    fn on_partial_ack(&mut self, _bytes_acked: usize) {}

    /// Recovery ended with a full ACK; `flight` is the data still outstanding.
    fn on_recovery_end(&mut self, _now: Instant, _flight: usize) {}

    /// The retransmission timer expired (RFC 5681 §3.1 equation 4).
    fn on_rto(&mut self, now: Instant, flight: usize);
}
