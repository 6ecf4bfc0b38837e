//! What the data apps and the control thread share during a test: each stream's counters (which
//! the owning worker writes and the control thread samples for iperf3's `-i` intervals), the
//! stop flag, and the `-n`/`-k` budget. Also the client's clock: the loop that samples every
//! interval and ends the test at `-t`, or once the budget is sent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One stream's figures at an instant (or, in an [`Interval`], over it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub bytes: u64,
    /// UDP: datagrams (a receiver: the highest sequence number), and lost ones.
    pub packets: u64,
    pub errors: u64,
    /// UDP receiver: jitter in seconds.
    pub jitter: f64,
    /// TCP sender: congestion window in bytes and smoothed RTT in microseconds.
    pub cwnd: u64,
    pub rtt_us: u64,
}

#[derive(Default)]
struct Slot {
    bytes: AtomicU64,
    packets: AtomicU64,
    errors: AtomicU64,
    jitter_bits: AtomicU64,
    cwnd: AtomicU64,
    rtt_us: AtomicU64,
}

/// What the control thread and a test's apps share.
pub struct Shared {
    slots: Vec<Slot>,
    /// Set by the control thread when the test ends (then it wakes the workers).
    pub stop: AtomicBool,
    /// `-n`/`-k`: senders stop writing once this many bytes have gone, over all streams.
    limit: u64,
    sent: AtomicU64,
}

impl Shared {
    /// For `streams` streams; `limit`: the bytes to send in all (None: no limit).
    pub fn new(streams: usize, limit: Option<u64>) -> Self {
        Shared {
            slots: (0..streams).map(|_| Slot::default()).collect(),
            stop: AtomicBool::new(false),
            limit: limit.unwrap_or(u64::MAX),
            sent: AtomicU64::new(0),
        }
    }

    /// Stream `i`'s figures now (written by its owning worker only).
    pub fn set(&self, i: usize, s: &Sample) {
        if let Some(slot) = self.slots.get(i) {
            slot.bytes.store(s.bytes, Ordering::Relaxed);
            slot.packets.store(s.packets, Ordering::Relaxed);
            slot.errors.store(s.errors, Ordering::Relaxed);
            slot.jitter_bits
                .store(s.jitter.to_bits(), Ordering::Relaxed);
            slot.cwnd.store(s.cwnd, Ordering::Relaxed);
            slot.rtt_us.store(s.rtt_us, Ordering::Relaxed);
        }
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.slots
            .iter()
            .map(|s| Sample {
                bytes: s.bytes.load(Ordering::Relaxed),
                packets: s.packets.load(Ordering::Relaxed),
                errors: s.errors.load(Ordering::Relaxed),
                jitter: f64::from_bits(s.jitter_bits.load(Ordering::Relaxed)),
                cwnd: s.cwnd.load(Ordering::Relaxed),
                rtt_us: s.rtt_us.load(Ordering::Relaxed),
            })
            .collect()
    }

    pub fn bytes(&self) -> Vec<u64> {
        self.slots
            .iter()
            .map(|s| s.bytes.load(Ordering::Relaxed))
            .collect()
    }

    /// Whether a sender may start another block (or datagram) under the budget.
    pub fn may_send(&self) -> bool {
        self.sent.load(Ordering::Relaxed) < self.limit
    }

    /// Counts `n` bytes a sender wrote against the budget.
    pub fn spent(&self, n: usize) {
        if self.limit != u64::MAX {
            self.sent.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// The budget is spent.
    pub fn exhausted(&self) -> bool {
        !self.may_send()
    }
}

/// What the streams moved over one interval; `start` and `end` are seconds from the start of
/// the test (from the end of the omitted seconds, for the intervals after them).
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    pub start: f64,
    pub end: f64,
    pub omitted: bool,
    /// Each stream's bytes, datagrams and losses over the interval; jitter, window and RTT at
    /// its end.
    pub streams: Vec<Sample>,
}

/// How a client's test is timed.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub time: Duration,
    pub omit: Duration,
    /// `-i`: None for no intervals.
    pub every: Option<Duration>,
    /// `-n`/`-k` given: the test ends when the budget is spent, not at `time`.
    pub budget: bool,
}

/// How often the clock looks at the budget, and at whether the node was stopped.
const BUDGET_TICK: Duration = Duration::from_millis(5);
const STOP_TICK: Duration = Duration::from_millis(100);

impl Clock {
    /// Runs the test's time: samples `shared` at every interval's end, until `time` past the
    /// omitted seconds (or the budget is spent, or `stopped`), telling `each` of every interval
    /// as it ends. Returns the intervals.
    pub fn run(
        &self,
        shared: &Shared,
        stopped: &dyn Fn() -> bool,
        each: &mut dyn FnMut(&Interval),
    ) -> Vec<Interval> {
        let start = Instant::now();
        let omit_end = start + self.omit;
        let end = omit_end + self.time;
        let tick = if self.budget { BUDGET_TICK } else { STOP_TICK };
        let over = || stopped() || (self.budget && shared.exhausted());
        let mut intervals = Vec::new();
        let mut last = vec![Sample::default(); shared.slots.len()];
        let (mut began, mut began_secs, mut omitted) = (start, 0.0, !self.omit.is_zero());
        loop {
            let phase_end = if omitted { omit_end } else { end };
            let next = self.every.map_or(phase_end, |e| (began + e).min(phase_end));
            loop {
                let now = Instant::now();
                if now >= next || over() {
                    break;
                }
                std::thread::sleep((next - now).min(tick));
            }
            let now = Instant::now();
            let done = now >= end || over();
            let samples = shared.samples();
            let secs = (now - began).as_secs_f64();
            let interval = Interval {
                start: began_secs,
                end: began_secs + secs,
                omitted,
                streams: samples
                    .iter()
                    .zip(&last)
                    .map(|(s, l)| delta(s, l))
                    .collect(),
            };
            if self.every.is_some() {
                each(&interval);
            }
            intervals.push(interval);
            last = samples;
            if done {
                break;
            }
            if omitted && now >= omit_end {
                // iperf3 starts counting again from 0 after the omitted seconds.
                (omitted, began_secs) = (false, 0.0);
            } else {
                began_secs += secs;
            }
            began = now;
        }
        if self.every.is_none() {
            intervals.clear();
        }
        intervals
    }
}

fn delta(now: &Sample, before: &Sample) -> Sample {
    Sample {
        bytes: now.bytes.saturating_sub(before.bytes),
        packets: now.packets.saturating_sub(before.packets),
        errors: now.errors.saturating_sub(before.errors),
        ..*now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_holds_what_moved_in_it_and_the_state_at_its_end() {
        let a = Sample {
            bytes: 100,
            packets: 10,
            errors: 1,
            jitter: 0.5,
            cwnd: 10,
            rtt_us: 7,
        };
        let b = Sample {
            bytes: 250,
            packets: 25,
            errors: 3,
            jitter: 0.25,
            cwnd: 20,
            rtt_us: 9,
        };
        let d = delta(&b, &a);
        assert_eq!((d.bytes, d.packets, d.errors), (150, 15, 2));
        assert_eq!((d.jitter, d.cwnd, d.rtt_us), (0.25, 20, 9));
    }

    #[test]
    fn the_budget_is_shared_by_all_streams() {
        let s = Shared::new(2, Some(1000));
        assert!(s.may_send());
        s.spent(600);
        assert!(s.may_send());
        s.spent(600);
        assert!(s.exhausted());
        let unlimited = Shared::new(1, None);
        unlimited.spent(usize::MAX);
        assert!(unlimited.may_send());
    }

    #[test]
    fn samples_round_trip_through_the_shared_slots() {
        let s = Shared::new(2, None);
        let x = Sample {
            bytes: 5,
            jitter: 0.125,
            ..Default::default()
        };
        s.set(1, &x);
        s.set(7, &x); // no such stream: ignored
        assert_eq!(s.samples()[1], x);
        assert_eq!(s.bytes(), vec![0, 5]);
    }
}
