//! NewReno (RFC 5681 slow start and congestion avoidance, RFC 6582 fast recovery).

use super::{initial_window, CongestionController};
use crate::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct NewReno {
    mss: usize,
    cwnd: usize,
    ssthresh: usize,
    /// Bytes acknowledged in congestion avoidance since cwnd last grew (RFC 5681 §3.1, the
    /// byte-counting variant).
    acked_in_ca: usize,
}

impl NewReno {
    pub fn new(mss: usize) -> Self {
        let mss = mss.max(1);
        NewReno {
            mss,
            cwnd: initial_window(mss),
            ssthresh: usize::MAX,
            acked_in_ca: 0,
        }
    }

    fn half_flight(&self, flight: usize) -> usize {
        // RFC 5681 equation (4): ssthresh = max(FlightSize / 2, 2*SMSS).
        (flight / 2).max(2 * self.mss)
    }
}

impl CongestionController for NewReno {
    fn window(&self) -> usize {
        self.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn set_mss(&mut self, mss: usize) {
        let mss = mss.max(1);
        if self.ssthresh == usize::MAX && self.cwnd == initial_window(self.mss) {
            self.cwnd = initial_window(mss);
        }
        self.mss = mss;
    }

    fn on_ack(&mut self, _now: Instant, bytes_acked: usize, _rtt: Option<Duration>) {
        if self.cwnd < self.ssthresh {
            // Slow start, RFC 5681 (2) with L = 1*SMSS per ACK (RFC 3465 would allow 2).
            self.cwnd += bytes_acked.min(self.mss);
        } else {
            // Congestion avoidance: one SMSS per cwnd of data acknowledged.
            self.acked_in_ca += bytes_acked;
            if self.acked_in_ca >= self.cwnd {
                self.acked_in_ca -= self.cwnd;
                self.cwnd += self.mss;
            }
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, flight: usize) {
        // The connection inflates the window by 3*SMSS (RFC 6582 §3.2 step 2) when it recovers
        // without SACK; with SACK, RFC 6675 uses cwnd = ssthresh and counts `pipe`.
        self.ssthresh = self.half_flight(flight);
        self.cwnd = self.ssthresh;
        self.acked_in_ca = 0;
    }

    fn on_recovery_end(&mut self, _now: Instant, flight: usize) {
        // RFC 6582 §3.2 step 6, option (1): min(ssthresh, max(FlightSize, SMSS) + SMSS).
        self.cwnd = self.ssthresh.min(flight.max(self.mss) + self.mss);
    }

    fn on_rto(&mut self, _now: Instant, flight: usize) {
        self.ssthresh = self.half_flight(flight);
        self.cwnd = self.mss;
        self.acked_in_ca = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Instant = Instant::ZERO;

    #[test]
    fn initial_window_follows_rfc6928() {
        assert_eq!(initial_window(1460), 14600);
        assert_eq!(initial_window(536), 5360);
        assert_eq!(initial_window(9000), 18000);
        assert_eq!(NewReno::new(1460).window(), 14600);
    }

    #[test]
    fn slow_start_then_avoidance() {
        let mut cc = NewReno::new(1000);
        assert_eq!(cc.window(), 10_000);
        cc.on_ack(T, 1000, None);
        cc.on_ack(T, 5000, None); // at most one MSS per ACK
        assert_eq!(cc.window(), 12_000);
        cc.on_rto(T, 12_000);
        assert_eq!(cc.ssthresh(), 6000);
        assert_eq!(cc.window(), 1000);
        for _ in 0..5 {
            cc.on_ack(T, 1000, None);
        }
        assert_eq!(cc.window(), 6000);
        // Now in congestion avoidance: +1 MSS per window acknowledged.
        cc.on_ack(T, 5999, None);
        assert_eq!(cc.window(), 6000);
        cc.on_ack(T, 1, None);
        assert_eq!(cc.window(), 7000);
    }

    #[test]
    fn fast_recovery() {
        let mut cc = NewReno::new(1000);
        cc.on_congestion_event(T, 10_000);
        assert_eq!(cc.ssthresh(), 5000);
        assert_eq!(cc.window(), 5000);
        cc.on_recovery_end(T, 2000);
        assert_eq!(cc.window(), 3000);
        cc.on_recovery_end(T, 9000);
        assert_eq!(cc.window(), 5000);
    }
}
