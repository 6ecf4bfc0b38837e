//! Seeded fault injection on the real device (`--impair loss=P,reorder=P,dup=P,corrupt=P,seed=N`):
//! the kernel here has no netem, so a worker impairs the frames it reads and the frames it writes
//! itself, the way smoltcp's `phy::FaultInjector` wraps a device.
//!
//! Each worker owns two injectors (receive and send), each with its own generator derived from
//! the seed, so a run is repeatable frame-for-frame given the same frame sequence. What they do:
//! - loss: the frame is dropped;
//! - reorder: the frame is held and released after the next one (or at the end of the worker's
//!   batch, so that nothing is held while the worker sleeps);
//! - dup: the frame is passed twice;
//! - corrupt: one bit of the IPv4 packet (header or payload) is flipped, for the checksums to
//!   catch; non-IPv4 frames (ARP carries no checksum) are left alone.
//!
//! Nothing here allocates when no impairment is configured: the worker holds no injector then.

use core::fmt;
use core::str::FromStr;

use protocols::impair::flip_ipv4_bit;
use protocols::rand::Rng;

/// What `--impair` asked for. Probabilities are in 0.0..=1.0.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ImpairSpec {
    pub loss: f64,
    pub reorder: f64,
    pub dup: f64,
    pub corrupt: f64,
    /// Seed of the injectors' generators; None draws one from the node's seed.
    pub seed: Option<u64>,
}

/// The form `--impair` expects, for error messages.
pub const IMPAIR_FORM: &str =
    "loss=P,reorder=P,dup=P,corrupt=P,seed=N (any subset, P a probability from 0 to 1, e.g. loss=0.01,reorder=0.02)";

/// Why an `--impair` spec did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImpairError {
    #[error("empty impairment; expected {IMPAIR_FORM}")]
    Empty,
    #[error("'{0}' is not KEY=VALUE; expected {IMPAIR_FORM}")]
    NotKeyValue(String),
    #[error("unknown impairment '{0}'; expected {IMPAIR_FORM}")]
    UnknownKey(String),
    #[error("'{0}' is given twice; expected {IMPAIR_FORM}")]
    Repeated(String),
    #[error("{key}={value}: not a probability from 0 to 1; expected {IMPAIR_FORM}")]
    BadProbability { key: String, value: String },
    #[error("seed={0}: not a non-negative integer; expected {IMPAIR_FORM}")]
    BadSeed(String),
}

impl FromStr for ImpairSpec {
    type Err = ImpairError;

    fn from_str(s: &str) -> Result<Self, ImpairError> {
        let mut spec = ImpairSpec::default();
        let mut seen: Vec<&str> = Vec::new();
        if s.trim().is_empty() {
            return Err(ImpairError::Empty);
        }
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(ImpairError::NotKeyValue(part.to_string()));
            };
            let (key, value) = (key.trim(), value.trim());
            if seen.contains(&key) {
                return Err(ImpairError::Repeated(key.to_string()));
            }
            seen.push(key);
            let prob = || match value.parse::<f64>() {
                Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
                _ => Err(ImpairError::BadProbability {
                    key: key.to_string(),
                    value: value.to_string(),
                }),
            };
            match key {
                "loss" => spec.loss = prob()?,
                "reorder" => spec.reorder = prob()?,
                "dup" => spec.dup = prob()?,
                "corrupt" => spec.corrupt = prob()?,
                "seed" => {
                    spec.seed = Some(
                        value
                            .parse()
                            .map_err(|_| ImpairError::BadSeed(value.to_string()))?,
                    )
                }
                _ => return Err(ImpairError::UnknownKey(key.to_string())),
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for ImpairSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loss={},reorder={},dup={},corrupt={}",
            self.loss, self.reorder, self.dup, self.corrupt
        )?;
        if let Some(s) = self.seed {
            write!(f, ",seed={s}")?;
        }
        Ok(())
    }
}

/// What one injector did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounters {
    /// Frames offered.
    pub frames: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    pub reordered: u64,
}

impl FaultCounters {
    pub fn merge(&mut self, o: &FaultCounters) {
        self.frames += o.frames;
        self.dropped += o.dropped;
        self.duplicated += o.duplicated;
        self.corrupted += o.corrupted;
        self.reordered += o.reordered;
    }
}

/// Impairs one stream of frames (one worker, one direction).
#[derive(Debug)]
pub struct FaultInjector {
    spec: ImpairSpec,
    rng: Rng,
    held: Option<Vec<u8>>,
    scratch: Vec<u8>,
    pub counters: FaultCounters,
}

impl FaultInjector {
    pub fn new(spec: ImpairSpec, seed: u64) -> Self {
        FaultInjector {
            spec,
            rng: Rng::new(seed),
            held: None,
            scratch: Vec::new(),
            counters: FaultCounters::default(),
        }
    }

    /// Runs `frame` through the impairments; `out` gets every frame to pass on, in order (none,
    /// the frame, the frame twice, and after it a frame held earlier).
    pub fn apply(&mut self, frame: &[u8], mut out: impl FnMut(&[u8])) {
        self.counters.frames += 1;
        if self.rng.chance(self.spec.loss) {
            self.counters.dropped += 1;
            return;
        }
        if self.held.is_none() && self.rng.chance(self.spec.reorder) {
            self.counters.reordered += 1;
            self.held = Some(frame.to_vec());
            return;
        }
        let copies = if self.rng.chance(self.spec.dup) {
            self.counters.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.rng.chance(self.spec.corrupt) {
                self.scratch.clear();
                self.scratch.extend_from_slice(frame);
                if flip_ipv4_bit(&mut self.scratch, &mut self.rng) {
                    self.counters.corrupted += 1;
                }
                out(&self.scratch);
            } else {
                out(frame);
            }
        }
        if let Some(h) = self.held.take() {
            out(&h);
        }
    }

    /// Releases a held frame (the worker calls this at the end of each batch).
    pub fn flush(&mut self, mut out: impl FnMut(&[u8])) {
        if let Some(h) = self.held.take() {
            out(&h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_form_and_any_subset() {
        let s: ImpairSpec = "loss=0.05,reorder=0.02,dup=0.01,corrupt=0.001,seed=9"
            .parse()
            .unwrap();
        assert_eq!(
            s,
            ImpairSpec {
                loss: 0.05,
                reorder: 0.02,
                dup: 0.01,
                corrupt: 0.001,
                seed: Some(9)
            }
        );
        let s: ImpairSpec = "loss=0.01".parse().unwrap();
        assert_eq!(s.loss, 0.01);
        assert_eq!(s.seed, None);
        assert_eq!(s.to_string().parse::<ImpairSpec>().unwrap(), s);
    }

    #[test]
    fn bad_specs_say_what_form_is_expected() {
        for bad in [
            "",
            "loss",
            "loss=2",
            "loss=-0.1",
            "loss=x",
            "drop=0.1",
            "loss=0.1,loss=0.2",
            "seed=-1",
        ] {
            let e = bad.parse::<ImpairSpec>().unwrap_err().to_string();
            assert!(e.contains("expected loss=P,reorder=P"), "{bad}: {e}");
        }
    }

    fn ipv4_frame(tag: u8) -> Vec<u8> {
        let mut f = vec![tag; 60];
        f[12] = 0x08;
        f[13] = 0x00;
        f[16..18].copy_from_slice(&46u16.to_be_bytes());
        f
    }

    fn run(spec: ImpairSpec, n: u8) -> (Vec<Vec<u8>>, FaultCounters) {
        let mut inj = FaultInjector::new(spec, 42);
        let mut out = Vec::new();
        for i in 0..n {
            inj.apply(&ipv4_frame(i), |f| out.push(f.to_vec()));
        }
        inj.flush(|f| out.push(f.to_vec()));
        (out, inj.counters)
    }

    #[test]
    fn counts_match_what_happened() {
        let (out, c) = run(
            ImpairSpec {
                loss: 0.1,
                dup: 0.1,
                ..ImpairSpec::default()
            },
            200,
        );
        assert_eq!(c.frames, 200);
        assert!(c.dropped > 0 && c.duplicated > 0);
        assert_eq!(out.len() as u64, 200 - c.dropped + c.duplicated);
    }

    #[test]
    fn reorder_releases_a_held_frame_after_the_next() {
        let (out, c) = run(
            ImpairSpec {
                reorder: 0.3,
                ..ImpairSpec::default()
            },
            100,
        );
        assert!(c.reordered > 0);
        assert_eq!(out.len(), 100, "reordering must not lose frames");
        let order: Vec<u8> = out.iter().map(|f| f[0]).collect();
        let swaps = order.windows(2).filter(|w| w[0] > w[1]).count() as u64;
        // Every held frame swapped places with its successor, but for one held at the very end.
        assert!(c.reordered - swaps <= 1, "{swaps} swaps, {c:?}");
    }

    #[test]
    fn corruption_flips_one_bit_after_the_ethernet_header() {
        let (out, c) = run(
            ImpairSpec {
                corrupt: 0.5,
                ..ImpairSpec::default()
            },
            100,
        );
        assert!(c.corrupted > 20);
        let flipped: u64 = out
            .iter()
            .map(|f| {
                let orig = ipv4_frame(f[0]);
                assert_eq!(f[..14], orig[..14]);
                u64::from(
                    f.iter()
                        .zip(&orig)
                        .map(|(a, b)| (a ^ b).count_ones())
                        .sum::<u32>(),
                )
            })
            .sum();
        assert_eq!(flipped, c.corrupted);
    }
}
