//! SYN cookies (RFC 4987 §3.6): when a listener cannot hold another half-open connection, the
//! SYN-ACK's ISN carries everything needed to build the connection from the returning ACK.
//!
//! Layout of the 32-bit cookie (after Linux and RFC 4987):
//! - bits 31..27: a counter that ticks every 64 s (mod 32), so a cookie is honoured for one to
//!   two ticks (64 to 128 s);
//! - bits 26..24: an index into [`MSS_TABLE`], the largest entry not above the peer's MSS;
//! - bits 23..0: SipHash-2-4 of the 4-tuple, the peer's ISN and the counter, keyed with a key
//!   derived from the stack's ISN secret.
//!
//! Only the MSS survives: window scaling, SACK-permitted and timestamps are not offered in a
//! cookie SYN-ACK (so the peer never uses them), and a connection made from a cookie runs
//! without them.

use core::hash::Hasher;
use std::net::Ipv4Addr;

use siphasher::sip::SipHasher24;

use super::IsnGenerator;
use crate::time::Instant;
use crate::wire::tcp::SeqNumber;

/// MSS values a cookie can encode (3 bits), ascending.
pub const MSS_TABLE: [u16; 8] = [536, 1200, 1300, 1360, 1400, 1440, 1460, 8960];

/// Seconds per counter tick.
const TICK_SECS: u64 = 64;

/// Ticks a cookie stays valid after the one it was made in.
const MAX_AGE_TICKS: u32 = 1;

/// A cookie maker and checker keyed from the stack's secret.
#[derive(Clone)]
pub struct SynCookies {
    key: [u8; 16],
}

impl core::fmt::Debug for SynCookies {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SynCookies { .. }")
    }
}

type Endpoint = (Ipv4Addr, u16);

impl SynCookies {
    /// Cookies keyed from `isn`'s secret (through a hash, so the ISN key is not reused as is).
    pub fn new(isn: &IsnGenerator) -> Self {
        let mut key = [0u8; 16];
        for (i, half) in key.chunks_exact_mut(8).enumerate() {
            let mut h = SipHasher24::new_with_key(&isn.key);
            h.write(b"tapir syn cookie");
            h.write_u8(i as u8);
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
        SynCookies { key }
    }

    fn tick(now: Instant) -> u32 {
        ((now.total_micros() / 1_000_000 / TICK_SECS) % 32) as u32
    }

    fn mac(&self, local: Endpoint, remote: Endpoint, peer_isn: SeqNumber, tick: u32) -> u32 {
        let mut h = SipHasher24::new_with_key(&self.key);
        h.write(&local.0.octets());
        h.write(&local.1.to_be_bytes());
        h.write(&remote.0.octets());
        h.write(&remote.1.to_be_bytes());
        h.write(&peer_isn.0.to_be_bytes());
        h.write_u32(tick);
        (h.finish() as u32) & 0x00ff_ffff
    }

    /// The cookie ISN for a SYN from `remote` with sequence number `peer_isn` offering
    /// `peer_mss`, and the MSS it encodes.
    pub fn make(
        &self,
        local: Endpoint,
        remote: Endpoint,
        peer_isn: SeqNumber,
        peer_mss: u16,
        now: Instant,
    ) -> (SeqNumber, u16) {
        let index = MSS_TABLE.iter().rposition(|&m| m <= peer_mss).unwrap_or(0);
        let tick = Self::tick(now);
        let cookie =
            (tick << 27) | ((index as u32) << 24) | self.mac(local, remote, peer_isn, tick);
        let mss = MSS_TABLE.get(index).copied().unwrap_or(536);
        (SeqNumber(cookie), mss)
    }

    /// Checks the ACK that completes a cookie handshake: `seq` is its sequence number (the
    /// peer's ISN + 1), `ack` its acknowledgment number (our cookie + 1). Returns the MSS the
    /// cookie encodes, or `None` for a forged, mangled or expired cookie.
    pub fn check(
        &self,
        local: Endpoint,
        remote: Endpoint,
        seq: SeqNumber,
        ack: SeqNumber,
        now: Instant,
    ) -> Option<u16> {
        let cookie = (ack - 1usize).0;
        let tick = cookie >> 27;
        let age = Self::tick(now).wrapping_sub(tick) % 32;
        if age > MAX_AGE_TICKS {
            return None;
        }
        let index = ((cookie >> 24) & 0x7) as usize;
        let peer_isn = seq - 1usize;
        if cookie & 0x00ff_ffff != self.mac(local, remote, peer_isn, tick) {
            return None;
        }
        MSS_TABLE.get(index).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Endpoint = (Ipv4Addr::new(10, 0, 0, 2), 80);
    const R: Endpoint = (Ipv4Addr::new(10, 0, 0, 1), 40000);

    fn cookies() -> SynCookies {
        SynCookies::new(&IsnGenerator::new([7; 16], [0; 16]))
    }

    #[test]
    fn round_trip_encodes_the_mss() {
        let c = cookies();
        let now = Instant::from_secs(1000);
        let (isn, mss) = c.make(L, R, SeqNumber(5000), 1460, now);
        assert_eq!(mss, 1460);
        assert_eq!(c.check(L, R, SeqNumber(5001), isn + 1, now), Some(1460));
        let (isn, mss) = c.make(L, R, SeqNumber(5000), 1450, now);
        assert_eq!(mss, 1440, "largest table entry not above the offer");
        assert_eq!(c.check(L, R, SeqNumber(5001), isn + 1, now), Some(1440));
        let (_, mss) = c.make(L, R, SeqNumber(5000), 100, now);
        assert_eq!(mss, 536);
    }

    #[test]
    fn forged_mangled_or_expired_cookies_fail() {
        let c = cookies();
        let now = Instant::from_secs(1000);
        let (isn, _) = c.make(L, R, SeqNumber(5000), 1460, now);
        // Another peer port, another peer ISN, a flipped bit.
        assert_eq!(
            c.check(L, (R.0, 40001), SeqNumber(5001), isn + 1, now),
            None
        );
        assert_eq!(c.check(L, R, SeqNumber(5002), isn + 1, now), None);
        assert_eq!(
            c.check(L, R, SeqNumber(5001), SeqNumber((isn + 1).0 ^ 1), now),
            None
        );
        // Another key.
        let other = SynCookies::new(&IsnGenerator::new([8; 16], [0; 16]));
        assert_eq!(other.check(L, R, SeqNumber(5001), isn + 1, now), None);
        // Valid up to the next tick, not two ticks later.
        let later = Instant::from_secs(1000 + 64);
        assert!(c.check(L, R, SeqNumber(5001), isn + 1, later).is_some());
        let too_late = Instant::from_secs(1000 + 192);
        assert_eq!(c.check(L, R, SeqNumber(5001), isn + 1, too_late), None);
    }
}
