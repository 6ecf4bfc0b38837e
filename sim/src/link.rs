//! One direction of a path between two nodes: what it does to each frame, and what it counted.
//!
//! A frame offered to a link meets, in order: a blackout or random loss, the bottleneck queue
//! (tail drop when `queue_bytes` is full, then serialization at `bandwidth`), propagation `delay`
//! plus uniform `jitter`, an occasional extra `reorder_delay` that lets later frames overtake
//! it, duplication (the copy travels on its own), and corruption of one bit of the IPv4 packet.

use protocols::impair::flip_ipv4_bit;
use protocols::rand::Rng;
use protocols::time::{Duration, Instant};

/// How one direction of a path behaves. Every probability is 0.0..=1.0, drawn per frame from the
/// network's seeded generator.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per frame. Frames may overtake each other
    /// when it exceeds the gap between them, as on a real path with per-packet jitter.
    pub jitter: Duration,
    /// Bottleneck rate in bits per second (0: infinite, no serialization delay, no queue).
    pub bandwidth: u64,
    /// Bytes the bottleneck holds (the frame on the wire included) before it drops arrivals
    /// (tail drop). Only with a bandwidth.
    pub queue_bytes: usize,
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Probability that a frame is held back by `reorder_delay` so that later frames pass it.
    pub reorder: f64,
    /// How long a reordered frame is held back.
    pub reorder_delay: Duration,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that one bit of a delivered IPv4 packet is flipped. Only the IPv4 packet is
    /// touched (header or payload): this models corruption that an Ethernet FCS did not see
    /// (in a router's memory, a buggy NIC), which is what IP and TCP checksums are for. ARP
    /// carries no checksum, so ARP frames are never corrupted.
    pub corrupt: f64,
    /// Drop everything (a cable pulled). Counted apart from random loss.
    pub down: bool,
}

impl Default for LinkConfig {
    /// A perfect wire: 1 ms one way, no impairment, no bandwidth limit.
    fn default() -> Self {
        LinkConfig {
            delay: Duration::from_millis(1),
            jitter: Duration::ZERO,
            bandwidth: 0,
            queue_bytes: 0,
            loss: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(5),
            duplicate: 0.0,
            corrupt: 0.0,
            down: false,
        }
    }
}

impl LinkConfig {
    /// A perfect link with this one-way delay.
    pub fn with_delay(delay: Duration) -> Self {
        LinkConfig {
            delay,
            ..LinkConfig::default()
        }
    }

    /// The "everything at once" path: 25 ms each way (50 ms RTT), 5% loss, 2%
    /// reordering by up to 10 ms, 1% duplication, 0.1% corruption, 2 ms jitter.
    pub fn hostile() -> Self {
        LinkConfig {
            delay: Duration::from_millis(25),
            jitter: Duration::from_millis(2),
            loss: 0.05,
            reorder: 0.02,
            reorder_delay: Duration::from_millis(10),
            duplicate: 0.01,
            corrupt: 0.001,
            ..LinkConfig::default()
        }
    }
}

/// What one link did, frame by frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames offered to the link.
    pub offered: u64,
    /// Frames lost at random.
    pub lost: u64,
    /// Frames lost while the link was down.
    pub blackout: u64,
    /// Frames dropped because the bottleneck queue was full.
    pub tail_dropped: u64,
    /// Frames held back so that later ones could overtake them.
    pub reordered: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Copies with a flipped bit.
    pub corrupted: u64,
    /// Copies scheduled for delivery (duplicates included, corrupted included).
    pub delivered: u64,
}

/// One copy of a frame the link will hand over, `after` from now.
#[derive(Debug)]
pub(crate) struct Departure {
    pub at: Instant,
    pub frame: Vec<u8>,
    pub corrupted: bool,
}

/// One direction of a path.
#[derive(Debug)]
pub(crate) struct Link {
    pub config: LinkConfig,
    pub stats: LinkStats,
    /// When the bottleneck finishes sending what it already holds.
    busy_until: Instant,
}

impl Link {
    pub fn new(config: LinkConfig) -> Self {
        Link {
            config,
            stats: LinkStats::default(),
            busy_until: Instant::ZERO,
        }
    }

    /// Offers `frame` at `now`; pushes the copies to deliver (none, one or two) into `out`.
    pub fn offer(&mut self, now: Instant, frame: Vec<u8>, rng: &mut Rng, out: &mut Vec<Departure>) {
        let c = &self.config;
        self.stats.offered += 1;
        if c.down {
            self.stats.blackout += 1;
            return;
        }
        if rng.chance(c.loss) {
            self.stats.lost += 1;
            return;
        }
        let mut leaves = now;
        if c.bandwidth > 0 {
            let start = self.busy_until.max(now);
            // Bytes still waiting in front of this frame.
            let backlog = (start - now).as_micros() * u128::from(c.bandwidth) / 8_000_000;
            if backlog as usize + frame.len() > c.queue_bytes.max(frame.len()) {
                self.stats.tail_dropped += 1;
                return;
            }
            let tx_micros = (frame.len() as u128 * 8_000_000).div_ceil(u128::from(c.bandwidth));
            leaves = start + Duration::from_micros(tx_micros as u64);
            self.busy_until = leaves;
        }
        let copies = if rng.chance(c.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut frame = Some(frame);
        for i in 0..copies {
            let mut at = leaves + c.delay + random_up_to(rng, c.jitter);
            if rng.chance(c.reorder) {
                self.stats.reordered += 1;
                at += c.reorder_delay;
            }
            let mut copy = if i + 1 == copies {
                frame.take().unwrap_or_default()
            } else {
                frame.clone().unwrap_or_default()
            };
            let corrupted = rng.chance(c.corrupt) && flip_ipv4_bit(&mut copy, rng);
            if corrupted {
                self.stats.corrupted += 1;
            }
            self.stats.delivered += 1;
            out.push(Departure {
                at,
                frame: copy,
                corrupted,
            });
        }
    }
}

fn random_up_to(rng: &mut Rng, max: Duration) -> Duration {
    let m = max.as_micros() as u64;
    if m == 0 {
        Duration::ZERO
    } else {
        Duration::from_micros(rng.below(m + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_serializes_and_tail_drops() {
        // 1 Mbit/s: a 1250-byte frame takes 10 ms; the queue holds two of them, the one being
        // serialized included.
        let mut link = Link::new(LinkConfig {
            delay: Duration::ZERO,
            bandwidth: 1_000_000,
            queue_bytes: 2500,
            ..LinkConfig::default()
        });
        let mut rng = Rng::new(1);
        let mut out = Vec::new();
        for _ in 0..4 {
            link.offer(Instant::ZERO, vec![0u8; 1250], &mut rng, &mut out);
        }
        let times: Vec<u64> = out.iter().map(|d| d.at.total_millis()).collect();
        assert_eq!(times, vec![10, 20]);
        assert_eq!(link.stats.tail_dropped, 2);
        // Once the first has left, there is room again.
        link.offer(
            Instant::from_millis(10),
            vec![0u8; 1250],
            &mut rng,
            &mut out,
        );
        assert_eq!(out.last().map(|d| d.at.total_millis()), Some(30));
    }

    #[test]
    fn down_link_drops_everything_and_counts_it() {
        let mut link = Link::new(LinkConfig {
            down: true,
            ..LinkConfig::default()
        });
        let mut out = Vec::new();
        link.offer(Instant::ZERO, vec![1; 60], &mut Rng::new(1), &mut out);
        assert!(out.is_empty());
        assert_eq!(link.stats.blackout, 1);
    }
}
