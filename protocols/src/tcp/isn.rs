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
}

impl core::fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The key is a secret: never print it.
        f.write_str("IsnGenerator { .. }")
    }
}

impl IsnGenerator {
    pub fn new(key: [u8; 16]) -> Self {
        IsnGenerator { key }
    }

    /// The ISN for a connection between `local` and `remote` opened at `now`.
    pub fn isn(&self, local: (Ipv4Addr, u16), remote: (Ipv4Addr, u16), now: Instant) -> SeqNumber {
        let mut h = SipHasher24::new_with_key(&self.key);
        h.write(&local.0.octets());
        h.write(&local.1.to_be_bytes());
        h.write(&remote.0.octets());
        h.write(&remote.1.to_be_bytes());
        let f = h.finish() as u32;
        // RFC 6528 §3: M is a timer incremented every 4 microseconds (wraps, by design).
        let m = (now.total_micros() / 4) as u32;
        SeqNumber(m.wrapping_add(f))
    }
}
