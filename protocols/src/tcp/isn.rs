//! Initial sequence numbers per RFC 6528: `ISN = M + F(localip, localport, remoteip,
//! remoteport, secretkey)`, where M is a timer ticking every 4 microseconds and F is SipHash-2-4
//! keyed with a secret drawn once by the caller. The generator holds only the key; the clock
//! comes in as `now`.

use core::hash::Hasher;
use std::net::Ipv4Addr;

use siphasher::sip::SipHasher24;

use crate::time::Instant;
use crate::wire::tcp::SeqNumber;

/// RFC 6528 ISN generator.
#[derive(Clone)]
pub struct IsnGenerator {
    pub(super) key: [u8; 16],
    /// Key of the timestamp offsets (RFC 7323 §7.1), apart from the ISN's.
    ts_key: [u8; 16],
}

impl core::fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The key is a secret: never print it.
        f.write_str("IsnGenerator { .. }")
    }
}

impl IsnGenerator {
    pub fn new(key: [u8; 16], ts_key: [u8; 16]) -> Self {
        IsnGenerator { key, ts_key }
    }

    /// The ISN for a connection between `local` and `remote` opened at `now`.
    pub fn isn(&self, local: (Ipv4Addr, u16), remote: (Ipv4Addr, u16), now: Instant) -> SeqNumber {
        let f = keyed(&self.key, local, remote);
        // RFC 6528 §3: M is a timer incremented every 4 microseconds (wraps, by design).
        let m = (now.total_micros() / 4) as u32;
        SeqNumber(m.wrapping_add(f))
    }

    /// The timestamp offset of the connection between `local` and `remote` (RFC 7323 §7.1):
    /// the same for every incarnation of a 4-tuple under one key, so that with a clock that
    /// only goes forward a new incarnation's timestamps are newer than an old one's.
    pub fn ts_offset(&self, local: (Ipv4Addr, u16), remote: (Ipv4Addr, u16)) -> u32 {
        keyed(&self.ts_key, local, remote)
    }
}

/// SipHash-2-4 of a 4-tuple under `key`, 32 bits.
fn keyed(key: &[u8; 16], local: (Ipv4Addr, u16), remote: (Ipv4Addr, u16)) -> u32 {
    let mut h = SipHasher24::new_with_key(key);
    h.write(&local.0.octets());
    h.write(&local.1.to_be_bytes());
    h.write(&remote.0.octets());
    h.write(&remote.1.to_be_bytes());
    h.finish() as u32
}
