//! The one place the engine reads the monotonic clock for the protocols.

use protocols::time::Instant;

/// Maps `std::time::Instant` onto the protocols' [`Instant`], counted from boot
/// (`CLOCK_MONOTONIC`), so that the clock goes on from one tapir process to the next: TCP
/// timestamps (milliseconds of this clock plus a per-4-tuple offset) then rise across a
/// restart, as a peer in TIME-WAIT expects of a new incarnation (RFC 6191).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: std::time::Instant,
    /// Microseconds since boot at `epoch`, plus 1 s so that "zero" never means "now" to a
    /// timer (0 + 1 s when the boot clock cannot be read: counted from the node's start).
    base: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        let epoch = std::time::Instant::now();
        let since_boot = crate::sys::time::monotonic_micros().unwrap_or(0);
        Clock {
            epoch,
            base: since_boot.saturating_add(1_000_000),
        }
    }

    pub fn now(&self) -> Instant {
        let micros = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        Instant::from_micros(micros.saturating_add(self.base))
    }

    /// The std instant at which protocols instant `t` falls.
    pub fn to_std(&self, t: Instant) -> std::time::Instant {
        let micros = t.total_micros().saturating_sub(self.base);
        self.epoch + std::time::Duration::from_micros(micros)
    }
}
