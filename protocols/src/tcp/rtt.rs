//! The RFC 6298 round-trip estimator: SRTT, RTTVAR and the retransmission timeout, with
//! exponential backoff (§5.5) and the configured min/max clamp (§2.4, §2.5).
//!
//! Karn's rule (§3) is the caller's business: it must not feed samples taken from retransmitted
//! segments (unless they come from the timestamps option, RFC 7323 §4.1).

use crate::time::Duration;

/// Clock granularity G of RFC 6298 §2.
const GRANULARITY: Duration = Duration::from_millis(1);

/// RTT estimator and RTO state.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    /// RTO from the estimate, clamped, before backoff.
    base_rto: Duration,
    /// Number of backoffs since the last sample.
    backoff: u32,
    min_rto: Duration,
    max_rto: Duration,
}

impl RttEstimator {
    pub fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            base_rto: initial_rto.clamp(min_rto, max_rto.max(min_rto)),
            backoff: 0,
            min_rto,
            max_rto: max_rto.max(min_rto),
        }
    }

    /// Feeds one RTT measurement (RFC 6298 §2.2, §2.3) and clears any backoff.
    pub fn on_sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                // RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|, then SRTT <- 7/8 SRTT + 1/8 R'.
                let delta = srtt.max(r) - srtt.min(r);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        let rto = srtt + GRANULARITY.max(self.rttvar * 4);
        self.base_rto = rto.clamp(self.min_rto, self.max_rto);
        self.backoff = 0;
    }

    /// Doubles the timeout after a retransmission timer expiry (RFC 6298 §5.5).
    pub fn back_off(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// The current retransmission timeout, backoff included.
    pub fn rto(&self) -> Duration {
        let shift = self.backoff.min(31);
        self.base_rto
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max_rto)
            .min(self.max_rto)
    }

    /// The smoothed RTT, once there is a sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est() -> RttEstimator {
        RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn initial_rto_before_samples() {
        assert_eq!(est().rto(), Duration::from_secs(1));
        assert_eq!(est().srtt(), None);
    }

    #[test]
    fn follows_rfc6298_for_a_sample_sequence() {
        let mut e = est();
        // First sample: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4*RTTVAR.
        e.on_sample(Duration::from_millis(100));
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(e.rttvar(), Duration::from_millis(50));
        assert_eq!(e.rto(), Duration::from_millis(300));
        // R' = 200: RTTVAR = 3/4*50 + 1/4*100 = 62.5; SRTT = 7/8*100 + 1/8*200 = 112.5.
        e.on_sample(Duration::from_millis(200));
        assert_eq!(e.rttvar(), Duration::from_micros(62_500));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), Duration::from_micros(112_500 + 250_000));
        // R' = 112.5 (no deviation): RTTVAR = 3/4*62.5 = 46.875; SRTT unchanged.
        e.on_sample(Duration::from_micros(112_500));
        assert_eq!(e.rttvar(), Duration::from_micros(46_875));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), Duration::from_micros(112_500 + 187_500));
    }

    #[test]
    fn clamps_to_min_and_max() {
        let mut e = est();
        e.on_sample(Duration::from_millis(1));
        assert_eq!(e.rto(), Duration::from_millis(200));
        let mut e = est();
        e.on_sample(Duration::from_secs(50));
        assert_eq!(e.rto(), Duration::from_secs(60));
    }

    #[test]
    fn backoff_doubles_until_max_and_resets_on_sample() {
        let mut e = est();
        e.back_off();
        assert_eq!(e.rto(), Duration::from_secs(2));
        e.back_off();
        assert_eq!(e.rto(), Duration::from_secs(4));
        for _ in 0..40 {
            e.back_off();
        }
        assert_eq!(e.rto(), Duration::from_secs(60));
        e.on_sample(Duration::from_millis(100));
        assert_eq!(e.rto(), Duration::from_millis(300));
    }
}
