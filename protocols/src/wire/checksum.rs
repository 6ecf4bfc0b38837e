//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums here are *folded but not inverted* 16-bit ones-complement sums, so that partial sums
//! (pseudo-header, header, payload) can be [`combine`]d; [`finish`] inverts the final sum into
//! the value that goes on the wire. A receiver checks a packet by summing everything, checksum
//! field included: a correct packet sums to `0xffff`.

use core::net::Ipv4Addr;

/// Folds a wide accumulator into 16 bits with end-around carry.
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Unfolded ones-complement sum of `data` read as big-endian 16-bit words (an odd last byte is
/// padded with a zero on the right, RFC 1071 §4.1).
///
/// Sums 32-bit big-endian words into a `u64`: since 2^16 ≡ 1 (mod 2^16 - 1), a 32-bit word
/// contributes the same as its two 16-bit halves, and a `u64` cannot overflow before 2^32
/// additions, far beyond any packet.
fn sum_wide(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        if let [a, b, c, d, e, f, g, h] = *c {
            acc += u64::from(u32::from_be_bytes([a, b, c, d]));
            acc += u64::from(u32::from_be_bytes([e, f, g, h]));
        }
    }
    // At most 7 bytes left: a 32-bit word, a 16-bit word, an odd byte, each if there.
    let mut rest = chunks.remainder();
    if let [a, b, c, d, tail @ ..] = rest {
        acc += u64::from(u32::from_be_bytes([*a, *b, *c, *d]));
        rest = tail;
    }
    if let [a, b, tail @ ..] = rest {
        acc += u64::from(u16::from_be_bytes([*a, *b]));
        rest = tail;
    }
    if let Some(&last) = rest.first() {
        acc += u64::from(u16::from_be_bytes([last, 0]));
    }
    acc
}

/// Ones-complement sum of `data`, folded to 16 bits, not inverted.
pub fn data(data: &[u8]) -> u16 {
    fold(sum_wide(data))
}

/// Combines partial sums (each from [`data`], [`pseudo_header`] or `combine`).
///
/// Every partial sum but the last must cover an even number of bytes, as the ones-complement
/// sum is defined over 16-bit words.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// Sum of the IPv4 pseudo-header (RFC 9293 §3.1, RFC 768) for a transport segment of
/// `length` bytes, folded, not inverted.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u16 {
    let src = u32::from(src);
    let dst = u32::from(dst);
    let acc = u64::from(src >> 16)
        + u64::from(src & 0xffff)
        + u64::from(dst >> 16)
        + u64::from(dst & 0xffff)
        + u64::from(protocol)
        + u64::from(length >> 16)
        + u64::from(length & 0xffff);
    fold(acc)
}

/// The value to put in a checksum field: the complement of the folded sum.
///
/// UDP transmits a computed zero as `0xffff` (RFC 768); that is handled in `udp`.
pub fn finish(sum: u16) -> u16 {
    !sum
}

/// Finishes a partial checksum as a device would (virtio-net `F_NEEDS_CSUM`): sums `buf` from
/// `start` to its end, where the field at `start + offset` holds the pseudo-header sum, and
/// stores the result there. Out-of-range offsets leave `buf` as it is.
pub fn complete_partial(buf: &mut [u8], start: usize, offset: usize) {
    let Some(covered) = buf.get(start..) else {
        return;
    };
    let sum = finish(data(covered));
    if let Some(field) = buf.get_mut(start + offset..start + offset + 2) {
        field.copy_from_slice(&sum.to_be_bytes());
    }
}

/// Incrementally updates `old_checksum` (as found in the header) after one 16-bit word of the
/// covered data changed from `old_word` to `new_word`: RFC 1624 eqn. 3,
/// `HC' = ~(~HC + ~m + m')`.
pub fn update(old_checksum: u16, old_word: u16, new_word: u16) -> u16 {
    let acc = u64::from(!old_checksum) + u64::from(!old_word) + u64::from(new_word);
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Byte-by-byte reference: big-endian 16-bit words with end-around carry after each add.
    fn naive(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        let mut i = 0;
        while i < data.len() {
            let hi = u32::from(data[i]);
            let lo = data.get(i + 1).map_or(0, |&b| u32::from(b));
            sum += (hi << 8) | lo;
            sum = (sum & 0xffff) + (sum >> 16);
            i += 2;
        }
        sum as u16
    }

    /// Equal in ones-complement arithmetic, where 0x0000 and 0xffff both mean zero.
    fn same_value(a: u16, b: u16) -> bool {
        a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2, checksum 220d.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
        assert_eq!(finish(data(&bytes)), 0x220d);
    }

    #[test]
    fn ipv4_header_vector() {
        // A real IPv4 header with its checksum (0xb861) zeroed, from the Wikipedia example.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(finish(data(&hdr)), 0xb861);
        hdr[10] = 0xb8;
        hdr[11] = 0x61;
        assert_eq!(data(&hdr), 0xffff);
    }

    #[test]
    fn empty_and_odd() {
        assert_eq!(data(&[]), 0);
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x6834);
    }

    #[test]
    fn pseudo_header_matches_bytes() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(192, 168, 200, 254);
        let bytes = [10, 0, 0, 1, 192, 168, 200, 254, 0, 6, 0x05, 0xdc];
        assert_eq!(pseudo_header(src, dst, 6, 1500), data(&bytes));
        let big = [10, 0, 0, 1, 192, 168, 200, 254, 0, 17, 0, 1, 0, 2];
        assert_eq!(
            pseudo_header(src, dst, 17, 0x0001_0002),
            combine(&[data(&big[..10]), data(&big[10..])])
        );
    }

    proptest! {
        #[test]
        fn wide_sum_matches_naive(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
                prop_assert!(same_value(data(&bytes), naive(&bytes)));
        }

        #[test]
        fn combine_even_split(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                              split in 0usize..100) {
            let split = (split * 2).min(bytes.len() & !1);
            let whole = finish(data(&bytes));
            let parts = finish(combine(&[data(&bytes[..split]), data(&bytes[split..])]));
            prop_assert!(same_value(whole, parts));
        }

        #[test]
        fn incremental_update(mut bytes in proptest::collection::vec(any::<u8>(), 2..100),
                              idx in 0usize..50, new_word in any::<u16>()) {
            let idx = (idx * 2) % (bytes.len() & !1);
            let old = finish(data(&bytes));
            let old_word = u16::from_be_bytes([bytes[idx], bytes[idx + 1]]);
            bytes[idx..idx + 2].copy_from_slice(&new_word.to_be_bytes());
            let fresh = finish(data(&bytes));
            let updated = update(old, old_word, new_word);
            prop_assert!(same_value(fresh, updated));
        }
    }
}
