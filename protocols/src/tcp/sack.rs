//! The sender's SACK scoreboard (RFC 2018, RFC 6675 §2-§4): which bytes above SND.UNA the peer
//! reported holding, and the three questions RFC 6675 asks of it: `IsLost`, `pipe` and
//! `NextSeg`.
//!
//! The board keeps at most [`MAX_RANGES`] disjoint, sorted ranges; a block that would need one
//! more is ignored (recovery then leans on timeouts, never on wrong data). Blocks at or below
//! SND.UNA (D-SACK, RFC 2883) or past SND.MAX (bogus) are ignored safely. Reneging (the peer
//! dropping SACKed data) is survived because SACKed data is never freed before it is
//! cumulatively acknowledged; the connection clears the board after repeated timeouts.
//!
//! `IsLost` is constant over a hole (the SACKed data above every byte of one hole is the same),
//! so the questions are answered per hole, not per byte.

use crate::wire::tcp::SeqNumber;

/// Ranges remembered at most.
pub const MAX_RANGES: usize = 64;

/// RFC 6675 §2: DupThresh.
pub const DUP_THRESH: usize = 3;

#[derive(Clone, Debug, Default)]
pub struct Scoreboard {
    /// Sorted, disjoint, not touching, all above SND.UNA.
    ranges: Vec<(SeqNumber, SeqNumber)>,
}

impl Scoreboard {
    pub fn clear(&mut self) {
        self.ranges = Vec::new();
    }

    /// Heap bytes held; 0 when nothing above SND.UNA is SACKed.
    pub fn footprint(&self) -> usize {
        self.ranges.capacity() * core::mem::size_of::<(SeqNumber, SeqNumber)>()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ranges, lowest first.
    #[cfg(test)]
    pub fn ranges(&self) -> &[(SeqNumber, SeqNumber)] {
        &self.ranges
    }

    /// HighACK moved to `snd_una`: forget what it covers.
    pub fn advance(&mut self, snd_una: SeqNumber) {
        self.ranges.retain(|&(_, e)| e > snd_una);
        if self.ranges.is_empty() {
            self.ranges = Vec::new();
        }
        if let Some(first) = self.ranges.first_mut() {
            if first.0 < snd_una {
                first.0 = snd_una;
            }
        }
    }

    /// Adds the SACK blocks of one ACK; returns the bytes newly SACKed. Blocks that are empty,
    /// reversed, at or below `snd_una` or reaching past `snd_max` are ignored.
    pub fn add_blocks(
        &mut self,
        snd_una: SeqNumber,
        snd_max: SeqNumber,
        blocks: impl IntoIterator<Item = (SeqNumber, SeqNumber)>,
    ) -> usize {
        let mut added = 0;
        for (start, end) in blocks {
            if end <= start || end <= snd_una || end > snd_max {
                continue;
            }
            let start = start.max(snd_una);
            added += self.insert(start, end);
        }
        added
    }

    fn insert(&mut self, start: SeqNumber, end: SeqNumber) -> usize {
        let first = self
            .ranges
            .iter()
            .position(|&(_, e)| e >= start)
            .unwrap_or(self.ranges.len());
        let mut last = first;
        let (mut s, mut e) = (start, end);
        let mut covered = 0;
        while let Some(&(rs, re)) = self.ranges.get(last).filter(|r| r.0 <= end) {
            covered += re.min(end) - rs.max(start);
            s = s.min(rs);
            e = e.max(re);
            last += 1;
        }
        if first == last && self.ranges.len() >= MAX_RANGES {
            return 0;
        }
        self.ranges.drain(first..last);
        self.ranges.insert(first, (s, e));
        (end - start).saturating_sub(covered)
    }

    /// The highest SACKed sequence number (end of the top range).
    pub fn high_sacked(&self) -> Option<SeqNumber> {
        self.ranges.last().map(|&(_, e)| e)
    }

    /// If `seq` is SACKed, the end of its range.
    pub fn sacked_until(&self, seq: SeqNumber) -> Option<SeqNumber> {
        self.ranges
            .iter()
            .find(|&&(s, e)| s <= seq && seq < e)
            .map(|&(_, e)| e)
    }

    /// Bytes from `seq` (not SACKed) to the next SACKed range above it; `usize::MAX` when
    /// none lies above.
    pub fn unsacked_run(&self, seq: SeqNumber) -> usize {
        self.ranges
            .iter()
            .find(|&&(s, _)| s > seq)
            .map_or(usize::MAX, |&(s, _)| s - seq)
    }

    /// The holes below the highest SACKed byte, lowest first: `(start, end, lost)`, where
    /// `lost` is RFC 6675 `IsLost` for every byte of the hole: DupThresh discontiguous SACKed
    /// ranges above it, or more than (DupThresh - 1) * SMSS bytes SACKed above it.
    pub fn holes(
        &self,
        snd_una: SeqNumber,
        smss: usize,
    ) -> impl Iterator<Item = (SeqNumber, SeqNumber, bool)> + '_ {
        let total: usize = self.ranges.iter().map(|&(s, e)| e - s).sum();
        let n = self.ranges.len();
        let mut pos = snd_una;
        let mut above = total;
        self.ranges
            .iter()
            .enumerate()
            .filter_map(move |(i, &(s, e))| {
                let hole = (pos < s).then(|| {
                    let lost = n - i >= DUP_THRESH || above > (DUP_THRESH - 1) * smss;
                    (pos, s, lost)
                });
                above -= e - s;
                pos = pos.max(e);
                hole
            })
    }

    /// RFC 6675 `IsLost(seq)`.
    pub fn is_lost(&self, snd_una: SeqNumber, seq: SeqNumber, smss: usize) -> bool {
        self.holes(snd_una, smss)
            .any(|(s, e, lost)| lost && s <= seq && seq < e)
    }

    /// RFC 6675 `SetPipe` (the connection counts per segment instead, `rack.rs`).
    #[cfg(test)]
    /// RFC 6675 `SetPipe`: bytes believed in the network. Every byte from SND.UNA to SND.MAX
    /// not SACKed counts once unless lost, and once more if it was retransmitted (below
    /// `high_rxt`).
    pub fn pipe(
        &self,
        snd_una: SeqNumber,
        snd_max: SeqNumber,
        high_rxt: SeqNumber,
        smss: usize,
    ) -> usize {
        let mut pipe = 0;
        for (s, e, lost) in self.holes(snd_una, smss) {
            if !lost {
                pipe += e - s;
            }
            if high_rxt > s {
                pipe += high_rxt.min(e) - s;
            }
        }
        let top = self.high_sacked().unwrap_or(snd_una).max(snd_una);
        if snd_max > top {
            pipe += snd_max - top;
            if high_rxt > top {
                pipe += high_rxt.min(snd_max) - top;
            }
        }
        pipe
    }

    #[cfg(test)]
    /// RFC 6675 `NextSeg` rules (1) and (3): the first not-yet-retransmitted unSACKed range
    /// above `high_rxt` and below the highest SACKed byte, as `(start, end)`; with
    /// `lost_only`, only a range for which `IsLost` holds (rule 1).
    pub fn next_hole(
        &self,
        snd_una: SeqNumber,
        high_rxt: SeqNumber,
        smss: usize,
        lost_only: bool,
    ) -> Option<(SeqNumber, SeqNumber)> {
        self.holes(snd_una, smss).find_map(|(s, e, lost)| {
            let s = s.max(high_rxt);
            (s < e && (lost || !lost_only)).then_some((s, e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    fn board(blocks: &[(u32, u32)]) -> Scoreboard {
        let mut b = Scoreboard::default();
        b.add_blocks(s(0), s(100_000), blocks.iter().map(|&(a, z)| (s(a), s(z))));
        b
    }

    #[test]
    fn blocks_merge_and_count_new_bytes() {
        let mut b = Scoreboard::default();
        assert_eq!(b.add_blocks(s(0), s(10_000), [(s(2000), s(3000))]), 1000);
        assert_eq!(b.add_blocks(s(0), s(10_000), [(s(4000), s(5000))]), 1000);
        // Fills the gap, overlapping both: only 1000 bytes are new.
        assert_eq!(b.add_blocks(s(0), s(10_000), [(s(2500), s(4500))]), 1000);
        assert_eq!(b.ranges(), &[(s(2000), s(5000))]);
        assert_eq!(b.add_blocks(s(0), s(10_000), [(s(2000), s(5000))]), 0);
        assert_eq!(b.high_sacked(), Some(s(5000)));
        assert_eq!(b.sacked_until(s(2500)), Some(s(5000)));
        assert_eq!(b.sacked_until(s(5000)), None);
    }

    #[test]
    fn dsack_and_bogus_blocks_are_ignored() {
        let mut b = Scoreboard::default();
        // D-SACK below SND.UNA, past SND.MAX, reversed, empty.
        let blocks = [
            (s(500), s(1000)),
            (s(9000), s(12_000)),
            (s(3000), s(2000)),
            (s(4000), s(4000)),
        ];
        assert_eq!(b.add_blocks(s(1000), s(10_000), blocks), 0);
        assert!(b.is_empty());
        // A block straddling SND.UNA is cut at it.
        assert_eq!(b.add_blocks(s(1000), s(10_000), [(s(500), s(1500))]), 500);
        assert_eq!(b.ranges(), &[(s(1000), s(1500))]);
        b.advance(s(1200));
        assert_eq!(b.ranges(), &[(s(1200), s(1500))]);
        b.advance(s(2000));
        assert!(b.is_empty());
    }

    #[test]
    fn is_lost_by_bytes_or_by_discontiguous_ranges() {
        // SMSS 1000; one hole [0, 1000) with 2000 bytes SACKed above: not lost (needs > 2000).
        let b = board(&[(1000, 3000)]);
        assert!(!b.is_lost(s(0), s(0), 1000));
        let b = board(&[(1000, 3001)]);
        assert!(b.is_lost(s(0), s(0), 1000));
        // Three small discontiguous ranges above: lost, however few bytes.
        let b = board(&[(100, 110), (200, 210), (300, 310)]);
        assert!(b.is_lost(s(0), s(50), 1000));
        assert!(!b.is_lost(s(0), s(150), 1000), "only two ranges above");
        assert!(!b.is_lost(s(0), s(105), 1000), "SACKed bytes are not lost");
    }

    #[test]
    fn pipe_counts_unsacked_unlost_and_retransmitted() {
        // Sent [0, 10000); SACKed [1000, 4000) and [5000, 6000). Holes: [0,1000) lost (4000
        // bytes SACKed above), [4000,5000) not lost (1000 above, one range). Beyond the top:
        // [6000, 10000) in flight.
        let b = board(&[(1000, 4000), (5000, 6000)]);
        let holes: Vec<_> = b.holes(s(0), 1000).collect();
        assert_eq!(
            holes,
            vec![(s(0), s(1000), true), (s(4000), s(5000), false)]
        );
        assert_eq!(b.pipe(s(0), s(10_000), s(0), 1000), 1000 + 4000);
        // After retransmitting the lost hole: it counts again.
        assert_eq!(b.pipe(s(0), s(10_000), s(1000), 1000), 1000 + 1000 + 4000);
        assert_eq!(b.next_hole(s(0), s(0), 1000, true), Some((s(0), s(1000))));
        // Rule 1 finds nothing more once the lost hole was retransmitted; rule 3 finds the
        // unlost hole.
        assert_eq!(b.next_hole(s(0), s(1000), 1000, true), None);
        assert_eq!(
            b.next_hole(s(0), s(1000), 1000, false),
            Some((s(4000), s(5000)))
        );
        assert_eq!(b.next_hole(s(0), s(5000), 1000, false), None);
    }

    #[test]
    fn range_count_is_bounded() {
        let mut b = Scoreboard::default();
        for i in 0..(MAX_RANGES as u32 + 10) {
            b.add_blocks(s(0), s(1_000_000), [(s(100 * i + 50), s(100 * i + 60))]);
        }
        assert_eq!(b.ranges().len(), MAX_RANGES);
    }
}
