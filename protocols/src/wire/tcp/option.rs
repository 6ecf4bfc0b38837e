//! TCP options (RFC 9293 §3.2): MSS, window scale and timestamps (RFC 7323), SACK-permitted
//! and SACK blocks (RFC 2018).

use super::{SeqNumber, TcpTimestamp, MAX_SACK_BLOCKS};
use crate::wire::bytes::{be16, be32, copy, get, get_mut, set_u8};
use crate::wire::{Error, Result};

mod kind {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WS: u8 = 3;
    pub const SACK_PERM: u8 = 4;
    pub const SACK_RANGE: u8 = 5;
    pub const TSTAMP: u8 = 8;
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    EndOfList,
    NoOperation,
    MaxSegmentSize(u16),
    /// The raw shift count as received (`TcpRepr::parse` clamps it to 14).
    WindowScale(u8),
    SackPermitted,
    /// Used blocks first, then `None`.
    SackRange([Option<(SeqNumber, SeqNumber)>; MAX_SACK_BLOCKS]),
    Timestamps(TcpTimestamp),
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

pub(super) fn be_u16(b: &[u8]) -> u16 {
    be16(b)
}

pub(super) fn be_u32(b: &[u8]) -> u32 {
    be32(b)
}

impl<'a> TcpOption<'a> {
    /// Parses the option at the start of `buffer` (the rest of the option area) and returns
    /// what follows it. Any inconsistency is `Malformed`: a length below 2 or past the area,
    /// or a wrong length for a known kind.
    pub fn parse(buffer: &'a [u8]) -> Result<(&'a [u8], TcpOption<'a>)> {
        let (&kind, after_kind) = buffer.split_first().ok_or(Error::Malformed)?;
        match kind {
            kind::END => return Ok((after_kind, TcpOption::EndOfList)),
            kind::NOP => return Ok((after_kind, TcpOption::NoOperation)),
            _ => {}
        }
        let len = usize::from(*after_kind.first().ok_or(Error::Malformed)?);
        if len < 2 || len > buffer.len() {
            return Err(Error::Malformed);
        }
        let data = buffer.get(2..len).ok_or(Error::Malformed)?;
        let option = match (kind, len) {
            (kind::MSS, 4) => TcpOption::MaxSegmentSize(be_u16(data)),
            (kind::WS, 3) => TcpOption::WindowScale(data.first().copied().unwrap_or(0)),
            (kind::SACK_PERM, 2) => TcpOption::SackPermitted,
            (kind::SACK_RANGE, 10 | 18 | 26 | 34) => {
                let mut ranges = [None; MAX_SACK_BLOCKS];
                for (slot, block) in ranges.iter_mut().zip(data.chunks_exact(8)) {
                    *slot = Some((SeqNumber(be_u32(block)), SeqNumber(be_u32(get(block, 4..)))));
                }
                TcpOption::SackRange(ranges)
            }
            (kind::TSTAMP, 10) => TcpOption::Timestamps(TcpTimestamp {
                tsval: be_u32(data),
                tsecr: be_u32(get(data, 4..)),
            }),
            (kind::MSS | kind::WS | kind::SACK_PERM | kind::SACK_RANGE | kind::TSTAMP, _) => {
                return Err(Error::Malformed)
            }
            (kind, _) => TcpOption::Unknown { kind, data },
        };
        Ok((get(buffer, len..), option))
    }

    /// Bytes the option occupies on the wire.
    pub fn buffer_len(&self) -> usize {
        match self {
            TcpOption::EndOfList | TcpOption::NoOperation => 1,
            TcpOption::MaxSegmentSize(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::SackRange(ranges) => 2 + 8 * ranges.iter().flatten().count(),
            TcpOption::Timestamps(_) => 10,
            TcpOption::Unknown { data, .. } => 2 + data.len(),
        }
    }

    /// Writes the option at the start of `buffer` (which must hold `buffer_len()` bytes) and
    /// returns the bytes written. Only the `Some` SACK blocks are written.
    pub fn emit(&self, buffer: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let (kind, data) = match self {
            TcpOption::EndOfList => {
                set_u8(buffer, 0, kind::END);
                return 1;
            }
            TcpOption::NoOperation => {
                set_u8(buffer, 0, kind::NOP);
                return 1;
            }
            TcpOption::MaxSegmentSize(_) => (kind::MSS, get_mut(buffer, 2..len)),
            TcpOption::WindowScale(_) => (kind::WS, get_mut(buffer, 2..len)),
            TcpOption::SackPermitted => (kind::SACK_PERM, get_mut(buffer, 2..len)),
            TcpOption::SackRange(_) => (kind::SACK_RANGE, get_mut(buffer, 2..len)),
            TcpOption::Timestamps(_) => (kind::TSTAMP, get_mut(buffer, 2..len)),
            TcpOption::Unknown { kind, .. } => (*kind, get_mut(buffer, 2..len)),
        };
        match self {
            TcpOption::MaxSegmentSize(mss) => copy(data, &mss.to_be_bytes()),
            TcpOption::WindowScale(shift) => set_u8(data, 0, *shift),
            TcpOption::SackRange(ranges) => {
                for (block, (left, right)) in data.chunks_exact_mut(8).zip(ranges.iter().flatten())
                {
                    copy(get_mut(block, ..4), &left.0.to_be_bytes());
                    copy(get_mut(block, 4..), &right.0.to_be_bytes());
                }
            }
            TcpOption::Timestamps(ts) => {
                copy(get_mut(data, ..4), &ts.tsval.to_be_bytes());
                copy(get_mut(data, 4..), &ts.tsecr.to_be_bytes());
            }
            TcpOption::Unknown { data: bytes, .. } => copy(data, bytes),
            TcpOption::EndOfList | TcpOption::NoOperation | TcpOption::SackPermitted => {}
        }
        set_u8(buffer, 0, kind);
        set_u8(buffer, 1, len as u8);
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_known_kinds() {
        let bytes = [
            2, 4, 0x05, 0xb4, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 5, 10, 0, 0, 0, 10, 0,
            0, 0, 20, 1, 0, 0xee, 2,
        ];
        let mut rest = &bytes[..];
        let mut got = Vec::new();
        while !rest.is_empty() {
            let (next, option) = TcpOption::parse(rest).unwrap();
            got.push(option);
            rest = next;
        }
        let block = Some((SeqNumber(10), SeqNumber(20)));
        assert_eq!(
            got,
            [
                TcpOption::MaxSegmentSize(1460),
                TcpOption::WindowScale(7),
                TcpOption::SackPermitted,
                TcpOption::Timestamps(TcpTimestamp { tsval: 1, tsecr: 2 }),
                TcpOption::SackRange([block, None, None, None]),
                TcpOption::NoOperation,
                TcpOption::EndOfList,
                TcpOption::Unknown {
                    kind: 0xee,
                    data: &[]
                }
            ][..]
        );
    }

    #[test]
    fn unknown_kind() {
        let bytes = [0x1e, 4, 0xaa, 0xbb, 1];
        let unknown = TcpOption::Unknown {
            kind: 0x1e,
            data: &[0xaa, 0xbb],
        };
        assert_eq!(TcpOption::parse(&bytes), Ok((&bytes[4..], unknown)));
        let mut out = [0u8; 4];
        assert_eq!(unknown.emit(&mut out), 4);
        assert_eq!(out, bytes[..4]);
    }

    #[test]
    fn malformed() {
        let cases: [&[u8]; 10] = [
            &[],
            &[2],
            &[2, 3, 5],
            &[2, 5, 5, 0xb4],
            &[3, 4, 7, 0],
            &[4, 3, 0],
            &[8, 9, 0, 0, 0, 0, 0, 0, 0],
            &[5, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[5, 2],
            &[0x99, 1],
        ];
        for bytes in cases {
            assert_eq!(TcpOption::parse(bytes), Err(Error::Malformed), "{bytes:?}");
        }
        // Five SACK blocks (42 bytes) exceed the protocol's maximum.
        let mut five = vec![5u8, 42];
        five.resize(42, 0);
        assert_eq!(TcpOption::parse(&five), Err(Error::Malformed));
    }

    fn arb_option() -> impl Strategy<Value = (u8, Vec<u8>, u8, u16, [u32; 8], usize)> {
        (
            0u8..8,
            proptest::collection::vec(any::<u8>(), 0..20),
            any::<u8>(),
            any::<u16>(),
            any::<[u32; 8]>(),
            1usize..=MAX_SACK_BLOCKS,
        )
    }

    proptest! {
        #[test]
        fn roundtrip((which, data, byte, word, longs, blocks) in arb_option()) {
            let mut ranges = [None; MAX_SACK_BLOCKS];
            for (i, slot) in ranges.iter_mut().enumerate().take(blocks) {
                *slot = Some((SeqNumber(longs[2 * i]), SeqNumber(longs[2 * i + 1])));
            }
            let option = match which {
                0 => TcpOption::EndOfList,
                1 => TcpOption::NoOperation,
                2 => TcpOption::MaxSegmentSize(word),
                3 => TcpOption::WindowScale(byte),
                4 => TcpOption::SackPermitted,
                5 => TcpOption::SackRange(ranges),
                6 => TcpOption::Timestamps(TcpTimestamp { tsval: longs[0], tsecr: longs[1] }),
                // Kinds 0..=8 are known; pick an unknown one.
                _ => TcpOption::Unknown { kind: byte.max(9), data: &data },
            };
            let mut buf = [0u8; 40];
            let len = option.emit(&mut buf);
            prop_assert_eq!(len, option.buffer_len());
            prop_assert_eq!(TcpOption::parse(&buf[..len]), Ok((&[][..], option)));
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            let mut rest = &bytes[..];
            while let Ok((next, option)) = TcpOption::parse(rest) {
                prop_assert!(next.len() < rest.len());
                prop_assert!(option.buffer_len() <= rest.len());
                rest = next;
            }
        }
    }
}
