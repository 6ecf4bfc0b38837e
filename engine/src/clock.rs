//! The one place the engine reads the monotonic clock for the protocols.

use protocols::time::Instant;

/// Maps `std::time::Instant` onto the protocols' [`Instant`], counted from the node's start.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: std::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            epoch: std::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Instant {
        let micros = self.epoch.elapsed().as_micros();
        // Starts at 1 s so that "zero" never means "now" to a timer.
        Instant::from_micros(
            u64::try_from(micros)
                .unwrap_or(u64::MAX)
                .saturating_add(1_000_000),
        )
    }

    /// The std instant at which protocols instant `t` falls.
    pub fn to_std(&self, t: Instant) -> std::time::Instant {
        let micros = t.total_micros().saturating_sub(1_000_000);
        self.epoch + std::time::Duration::from_micros(micros)
    }
}
