//! Congestion control behind a trait, so that an algorithm (CUBIC by default, NewReno on
//! request, or one of the caller's own) is a swap of one object. The built-in ones sit in a
//! [`Controller`] by value: opening a connection allocates nothing for them.
//!
//! Division of labour: the connection detects loss (duplicate ACKs, SACK scoreboard, partial
//! ACKs, timeouts), chooses what to retransmit, keeps the recovery point and decides how much
//! may be in flight during recovery (RFC 6675 `pipe` with SACK, RFC 6582 window inflation
//! without). A controller only turns those events into a congestion window and a slow-start
//! threshold; during recovery the connection uses `window()` as the reduced `cwnd`.

mod cubic;
mod new_reno;

pub use cubic::Cubic;
pub use new_reno::NewReno;

use crate::time::{Duration, Instant};

/// RFC 6928 initial window: min(10*MSS, max(2*MSS, 14600)).
pub fn initial_window(mss: usize) -> usize {
    (10 * mss).min((2 * mss).max(14_600))
}

/// Which controller a connection starts with ([`crate::tcp::TcpConfig::congestion`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CongestionAlgorithm {
    /// RFC 9438 (the default, as in Linux).
    #[default]
    Cubic,
    /// RFC 5681 / RFC 6582.
    NewReno,
}

impl CongestionAlgorithm {
    /// A fresh controller for a sender MSS of `mss` bytes.
    pub fn build(self, mss: usize) -> Controller {
        match self {
            CongestionAlgorithm::Cubic => Controller::Cubic(Cubic::new(mss)),
            CongestionAlgorithm::NewReno => Controller::NewReno(NewReno::new(mss)),
        }
    }
}

/// A connection's controller: a built-in one held by value, or any other behind a box.
#[derive(Debug)]
pub enum Controller {
    Cubic(Cubic),
    NewReno(NewReno),
    Custom(Box<dyn CongestionController>),
}

impl Controller {
    fn get(&self) -> &dyn CongestionController {
        match self {
            Controller::Cubic(c) => c,
            Controller::NewReno(c) => c,
            Controller::Custom(c) => c.as_ref(),
        }
    }

    fn get_mut(&mut self) -> &mut dyn CongestionController {
        match self {
            Controller::Cubic(c) => c,
            Controller::NewReno(c) => c,
            Controller::Custom(c) => c.as_mut(),
        }
    }
}

impl CongestionController for Controller {
    fn window(&self) -> usize {
        self.get().window()
    }

    fn ssthresh(&self) -> usize {
        self.get().ssthresh()
    }

    fn set_mss(&mut self, mss: usize) {
        self.get_mut().set_mss(mss);
    }

    fn on_ack(&mut self, now: Instant, bytes_acked: usize, rtt: Option<Duration>) {
        self.get_mut().on_ack(now, bytes_acked, rtt);
    }

    fn on_congestion_event(&mut self, now: Instant, flight: usize) {
        self.get_mut().on_congestion_event(now, flight);
    }

    fn on_recovery_end(&mut self, now: Instant, flight: usize) {
        self.get_mut().on_recovery_end(now, flight);
    }

    fn on_rto(&mut self, now: Instant, flight: usize) {
        self.get_mut().on_rto(now, flight);
    }
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

    /// Loss detected by duplicate ACKs or SACK: recovery begins (RFC 5681 §3.2 step 2, RFC
    /// 6675 §5 step 4.2). The controller sets `ssthresh` and lowers the window to it. `flight`
    /// is the data outstanding when the loss was detected.
    fn on_congestion_event(&mut self, now: Instant, flight: usize);

    /// Recovery ended with a full ACK; `flight` is the data still outstanding.
    fn on_recovery_end(&mut self, _now: Instant, _flight: usize) {}

    /// The retransmission timer expired (RFC 5681 §3.1 equation 4).
    fn on_rto(&mut self, now: Instant, flight: usize);
}
