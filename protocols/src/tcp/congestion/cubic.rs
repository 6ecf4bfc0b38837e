//! CUBIC (RFC 9438): the window grows as a cubic function of the time since the last
//! congestion event, `W_cubic(t) = C*(t-K)^3 + W_max` (§4.2), never slower than a Reno flow
//! would (the Reno-friendly region, §4.3), with fast convergence (§4.7) and β = 0.7.
//!
//! Window arithmetic is done in segments as `f64`, as the RFC writes it; the window handed to the
//! connection is in bytes. HyStart is not implemented: slow start is plain RFC 5681.

use super::{initial_window, CongestionController};
use crate::time::{Duration, Instant};

/// RFC 9438 §5.1: C = 0.4 (segments / s^3).
pub const C: f64 = 0.4;
/// RFC 9438 §4.6: multiplicative decrease factor.
pub const BETA: f64 = 0.7;
/// RFC 9438 §4.3: the Reno-friendly additive increase, 3(1-β)/(1+β).
pub const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// RFC 9438 equation (1): the cubic window (segments) `t` seconds into an epoch.
pub fn w_cubic(t: f64, k: f64, w_max: f64) -> f64 {
    C * (t - k).powi(3) + w_max
}

/// RFC 9438 equation (2): the time (s) the cubic function takes to climb from `cwnd_epoch` back
/// to `w_max` (both in segments); 0 when the epoch starts at or above `w_max`.
pub fn cubic_k(w_max: f64, cwnd_epoch: f64) -> f64 {
    ((w_max - cwnd_epoch).max(0.0) / C).cbrt()
}

#[derive(Debug, Clone)]
pub struct Cubic {
    mss: usize,
    /// Bytes, fractional so that sub-byte increments accumulate.
    cwnd: f64,
    ssthresh: usize,
    /// Segments: the window just before the last reduction (after fast convergence).
    w_max: f64,
    /// Segments: the window before the last reduction, for the α switch of §4.3.
    cwnd_prior: f64,
    /// Seconds from the epoch start to the plateau at `w_max`.
    k: f64,
    /// Start of the current congestion-avoidance epoch.
    epoch_start: Option<Instant>,
    /// Segments: the Reno-friendly estimate W_est.
    w_est: f64,
    /// Smoothed RTT from the samples the connection passes in.
    srtt: Option<Duration>,
}

impl Cubic {
    pub fn new(mss: usize) -> Self {
        let mss = mss.max(1);
        Cubic {
            mss,
            cwnd: initial_window(mss) as f64,
            ssthresh: usize::MAX,
            w_max: 0.0,
            cwnd_prior: 0.0,
            k: 0.0,
            epoch_start: None,
            w_est: 0.0,
            srtt: None,
        }
    }

    fn seg(&self) -> f64 {
        self.mss as f64
    }

    /// W_max, K and the epoch start, for statistics and tests.
    pub fn epoch(&self) -> (f64, f64, Option<Instant>) {
        (self.w_max, self.k, self.epoch_start)
    }

    /// Multiplicative decrease shared by fast recovery and timeouts (§4.6, §4.7).
    fn reduce(&mut self) {
        let cwnd_seg = self.cwnd / self.seg();
        self.epoch_start = None;
        self.cwnd_prior = cwnd_seg;
        // §4.7 fast convergence: a flow that lost before reaching its previous W_max releases
        // bandwidth for newcomers.
        self.w_max = if cwnd_seg < self.w_max {
            cwnd_seg * (1.0 + BETA) / 2.0
        } else {
            cwnd_seg
        };
        let ssthresh = (self.cwnd * BETA).round() as usize;
        self.ssthresh = ssthresh.max(2 * self.mss);
    }

    fn congestion_avoidance(&mut self, now: Instant, bytes_acked: usize) {
        let seg = self.seg();
        let cwnd_seg = self.cwnd / seg;
        let start = match self.epoch_start {
            Some(t) => t,
            None => {
                self.epoch_start = Some(now);
                if self.w_max <= cwnd_seg {
                    self.w_max = cwnd_seg;
                }
                self.k = cubic_k(self.w_max, cwnd_seg);
                self.w_est = cwnd_seg;
                now
            }
        };
        let t = (now - start).as_secs_f64();
        let rtt = self.srtt.map_or(0.0, |d| d.as_secs_f64());
        let acked_seg = bytes_acked as f64 / seg;
        // §4.3: W_est grows by α per window acknowledged; α becomes 1 once W_est reaches the
        // window held before the last reduction.
        let alpha = if self.w_est >= self.cwnd_prior {
            1.0
        } else {
            ALPHA
        };
        self.w_est += alpha * acked_seg / cwnd_seg;
        if w_cubic(t, self.k, self.w_max) < self.w_est {
            // Reno-friendly region: at least as fast as Reno.
            self.cwnd = self.cwnd.max(self.w_est * seg);
        } else {
            // §4.4/§4.5: aim at W_cubic one RTT ahead, at most 1.5x the window.
            let target = w_cubic(t + rtt, self.k, self.w_max).clamp(cwnd_seg, 1.5 * cwnd_seg);
            self.cwnd += (target - cwnd_seg) / cwnd_seg * acked_seg * seg;
        }
    }
}

impl CongestionController for Cubic {
    fn window(&self) -> usize {
        self.cwnd as usize
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn set_mss(&mut self, mss: usize) {
        let mss = mss.max(1);
        if self.ssthresh == usize::MAX && self.window() == initial_window(self.mss) {
            self.cwnd = initial_window(mss) as f64;
        }
        self.mss = mss;
    }

    fn on_ack(&mut self, now: Instant, bytes_acked: usize, rtt: Option<Duration>) {
        if let Some(r) = rtt {
            self.srtt = Some(match self.srtt {
                None => r,
                Some(s) => (s * 7 + r) / 8,
            });
        }
        if self.window() < self.ssthresh {
            self.cwnd += bytes_acked.min(self.mss) as f64;
        } else {
            self.congestion_avoidance(now, bytes_acked);
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, _flight: usize) {
        self.reduce();
        self.cwnd = self.ssthresh as f64;
    }

    fn on_recovery_end(&mut self, _now: Instant, _flight: usize) {
        // RFC 6675 leaves cwnd at ssthresh; with NewReno inflation undone, the same.
        self.cwnd = self.ssthresh as f64;
    }

    fn on_rto(&mut self, _now: Instant, _flight: usize) {
        // §4.8: the reduction of a congestion event, then one segment.
        self.reduce();
        self.cwnd = self.seg();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1000;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// A controller in congestion avoidance at `segs` segments, RTT `rtt_ms`.
    fn cubic_at(segs: usize, rtt_ms: u64) -> Cubic {
        let mut cc = Cubic::new(MSS);
        cc.cwnd = (segs * MSS) as f64;
        cc.srtt = Some(Duration::from_millis(rtt_ms));
        cc
    }

    /// Acknowledges a whole window, one segment per ACK, at `now`.
    fn ack_window(cc: &mut Cubic, now: Instant) {
        for _ in 0..cc.window() / MSS {
            cc.on_ack(now, MSS, None);
        }
    }

    #[test]
    fn formulas_match_rfc9438() {
        assert!((ALPHA - 0.529_411_764_7).abs() < 1e-9);
        // W_max = 100, cwnd_epoch = 70 (β = 0.7): K = cbrt(30 / 0.4) = cbrt(75).
        let k = cubic_k(100.0, 70.0);
        assert!((k - 75f64.cbrt()).abs() < 1e-12);
        assert!((w_cubic(0.0, k, 100.0) - 70.0).abs() < 1e-9);
        assert!((w_cubic(k, k, 100.0) - 100.0).abs() < 1e-12);
        // Convex past the plateau: C * 2^3 above W_max two seconds after K.
        assert!((w_cubic(k + 2.0, k, 100.0) - 103.2).abs() < 1e-9);
        assert_eq!(cubic_k(50.0, 60.0), 0.0);
    }

    #[test]
    fn loss_reduces_by_beta_and_window_follows_the_cubic_curve() {
        let mut cc = cubic_at(100, 100);
        cc.ssthresh = 0; // congestion avoidance from the start
        cc.on_congestion_event(at(0), 100 * MSS);
        assert_eq!(cc.window(), 70 * MSS);
        assert_eq!(cc.ssthresh(), 70 * MSS);
        assert!((cc.w_max - 100.0).abs() < 1e-9);
        // One window acknowledged per 100 ms RTT. The first ACK after the loss opens the epoch.
        let k = cubic_k(100.0, 70.0);
        let mut now = 0;
        while now < 8000 {
            now += 100;
            ack_window(&mut cc, at(now));
            let t = now as f64 / 1000.0;
            let cwnd_seg = cc.window() as f64 / MSS as f64;
            // The window tracks W_cubic: between W_cubic(t) and W_cubic(t + RTT), the target
            // it aims at, within a couple of segments of per-ACK granularity.
            // Past about 5.7 s W_est (α = 0.53 per RTT from 70, then 1 per RTT past 100)
            // overtakes W_cubic: the Reno-friendly region, where cwnd follows W_est.
            let low = w_cubic(t, k, 100.0);
            let high = w_cubic(t + 0.1, k, 100.0).max(cc.w_est);
            assert!(
                cwnd_seg > low - 2.0 && cwnd_seg < high + 2.0,
                "t={t}: cwnd {cwnd_seg} vs W_cubic {low}..{high}"
            );
            if t < 5.0 {
                assert!(cwnd_seg < w_cubic(t + 0.1, k, 100.0) + 2.0);
            }
        }
        // Past K (about 4.2 s) it left the plateau and grows convexly.
        assert!(cc.window() > 101 * MSS);
        assert_eq!(cc.epoch().1, k);
    }

    #[test]
    fn growth_per_rtt_is_capped_at_one_and_a_half() {
        let mut cc = cubic_at(10, 100);
        cc.ssthresh = 0;
        cc.w_max = 1000.0; // far below the plateau: W_cubic climbs steeply
        cc.cwnd_prior = 1000.0;
        let before = cc.window();
        ack_window(&mut cc, at(2000));
        assert!(cc.window() <= before * 3 / 2 + MSS, "{}", cc.window());
    }

    #[test]
    fn fast_convergence_lowers_w_max() {
        let mut cc = cubic_at(100, 100);
        cc.ssthresh = 0;
        cc.on_congestion_event(at(0), 0);
        assert!((cc.w_max - 100.0).abs() < 1e-9);
        // Lost again at 90 segments, below the old W_max: W_max = 90 * (1 + β) / 2 = 76.5.
        cc.cwnd = (90 * MSS) as f64;
        cc.on_congestion_event(at(1000), 0);
        assert!((cc.w_max - 76.5).abs() < 1e-9);
        assert_eq!(cc.window(), 63 * MSS);
        // Lost above W_max: no fast convergence.
        cc.cwnd = (80 * MSS) as f64;
        cc.on_congestion_event(at(2000), 0);
        assert!((cc.w_max - 80.0).abs() < 1e-9);
    }

    #[test]
    fn reno_friendly_region_with_a_short_rtt() {
        // 1 ms RTT, W_max 10: W_cubic barely moves in 100 ms, Reno would add about one segment
        // per RTT; CUBIC must be at least as fast as Reno.
        let mut cc = cubic_at(10, 1);
        cc.ssthresh = 0;
        cc.on_congestion_event(at(0), 0);
        assert_eq!(cc.window(), 7 * MSS);
        // Independent W_est: α per window until W_est reaches 10 (cwnd_prior), then 1.
        let mut w_est = 7.0f64;
        for now in 1..=100u64 {
            let cwnd_seg = cc.window() as f64 / MSS as f64;
            let n = cc.window() / MSS;
            for _ in 0..n {
                let alpha = if w_est >= 10.0 { 1.0 } else { ALPHA };
                w_est += alpha / cwnd_seg;
            }
            ack_window(&mut cc, at(now));
        }
        let k = cubic_k(10.0, 7.0);
        let cwnd_seg = cc.window() as f64 / MSS as f64;
        assert!(w_cubic(0.1, k, 10.0) < 8.0);
        assert!(cwnd_seg > 50.0, "Reno-like growth: {cwnd_seg}");
        assert!((cwnd_seg - cc.w_est).abs() < 1.0);
        assert!((cc.w_est - w_est).abs() < 2.0, "{} vs {w_est}", cc.w_est);
    }

    #[test]
    fn timeout_resets_to_one_segment_then_slow_start() {
        let mut cc = cubic_at(40, 50);
        cc.ssthresh = usize::MAX;
        cc.on_rto(at(0), 40 * MSS);
        assert_eq!(cc.window(), MSS);
        assert_eq!(cc.ssthresh(), 28 * MSS);
        cc.on_ack(at(10), MSS, None);
        assert_eq!(cc.window(), 2 * MSS);
    }

    #[test]
    fn initial_window_follows_rfc6928_and_mss() {
        let mut cc = Cubic::new(536);
        assert_eq!(cc.window(), 5360);
        cc.set_mss(1448);
        assert_eq!(cc.window(), 14_480);
    }
}
