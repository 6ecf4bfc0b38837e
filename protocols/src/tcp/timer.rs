//! The connection's timers: one deadline per kind, in a table indexed by [`Timer`].

use crate::time::Instant;

/// Every timer a connection runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Retransmission of SYN, data or FIN (RFC 6298).
    Retransmit,
    /// Delayed ACK (RFC 9293 §3.8.6.3).
    DelayedAck,
    /// Zero-window probe (RFC 9293 §3.8.6.1).
    Persist,
    /// End of TIME-WAIT (2*MSL).
    TimeWait,
    /// Keep-alive idle time or probe interval (RFC 9293 §3.8.4).
    KeepAlive,
    /// FIN-WAIT-2 idle limit (Linux `tcp_fin_timeout`).
    FinWait2,
    /// Data unacknowledged for longer than the user timeout (RFC 5482).
    UserTimeout,
    /// Tail loss probe (RFC 8985 §7).
    LossProbe,
    /// RACK reordering window of the oldest segment not yet deemed lost (RFC 8985 §6.2).
    Reorder,
}

/// Number of [`Timer`] kinds.
const COUNT: usize = 9;

/// Deadlines, `None` when a timer is stopped.
#[derive(Clone, Debug, Default)]
pub struct TimerTable {
    deadlines: [Option<Instant>; COUNT],
}

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        if let Some(d) = self.deadlines.get_mut(timer as usize) {
            *d = Some(at);
        }
    }

    /// Sets the timer unless it is already running.
    pub fn set_if_stopped(&mut self, timer: Timer, at: Instant) {
        if self.get(timer).is_none() {
            self.set(timer, at);
        }
    }

    pub fn stop(&mut self, timer: Timer) {
        if let Some(d) = self.deadlines.get_mut(timer as usize) {
            *d = None;
        }
    }

    pub fn stop_all(&mut self) {
        self.deadlines = [None; COUNT];
    }

    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines.get(timer as usize).copied().flatten()
    }

    pub fn is_set(&self, timer: Timer) -> bool {
        self.get(timer).is_some()
    }

    /// The earliest deadline of all running timers.
    pub fn earliest(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Stops and returns `timer` if its deadline has passed at `now`.
    pub fn take_expired(&mut self, timer: Timer, now: Instant) -> bool {
        match self.get(timer) {
            Some(at) if at <= now => {
                self.stop(timer);
                true
            }
            _ => false,
        }
    }
}
