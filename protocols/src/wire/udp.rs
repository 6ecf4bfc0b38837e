//! UDP datagrams (RFC 768) over IPv4.

use super::bytes::{be16, copy, get, get_mut};
use core::net::Ipv4Addr;

use super::checksum;
use super::{Error, Result, TxChecksum};

/// The IPv4 protocol number of UDP.
const PROTOCOL: u8 = 17;

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A read/write view of a UDP datagram. The buffer may extend past the length field (which
/// bounds the payload and the checksum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is too short.
    pub fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    /// Wraps a buffer after checking that the header fits and the length field is coherent.
    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        let buf_len = self.buffer.as_ref().len();
        if buf_len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > buf_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let d = get(self.buffer.as_ref(), r);
        be16(d)
    }

    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// The length field: header plus payload.
    pub fn len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// Bytes `8..len`.
    pub fn payload(&self) -> &[u8] {
        get(self.buffer.as_ref(), HEADER_LEN..usize::from(self.len()))
    }

    /// Verifies the checksum over pseudo-header, header and payload. A zero checksum means the
    /// sender computed none (RFC 768), which verifies.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let len = self.len();
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, PROTOCOL, u32::from(len)),
            checksum::data(get(self.buffer.as_ref(), ..usize::from(len))),
        ]);
        sum == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        copy(get_mut(self.buffer.as_mut(), r), &v.to_be_bytes());
    }

    pub fn set_src_port(&mut self, v: u16) {
        self.set_u16_at(field::SRC_PORT, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        self.set_u16_at(field::DST_PORT, v);
    }

    pub fn set_len(&mut self, v: u16) {
        self.set_u16_at(field::LENGTH, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.set_u16_at(field::CHECKSUM, v);
    }

    /// Bytes `8..len`, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        get_mut(self.buffer.as_mut(), HEADER_LEN..end)
    }

    /// Computes and stores the full checksum over `len` bytes; a computed zero is sent as
    /// `0xffff`, since zero means "no checksum" (RFC 768).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, PROTOCOL, u32::from(len)),
            checksum::data(get(self.buffer.as_ref(), ..usize::from(len))),
        ]);
        let value = match checksum::finish(sum) {
            0 => 0xffff,
            v => v,
        };
        self.set_checksum(value);
    }
}

/// A parsed UDP header; the payload stays in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    /// Parses the header; `src` and `dst` are the IPv4 addresses, for the pseudo-header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &UdpPacket<&T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        verify_checksum: bool,
    ) -> Result<UdpRepr> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        })
    }

    pub fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header around a payload of `payload_len` bytes that is already in the
    /// buffer after the header, then the checksum as `checksum` asks. `payload_len` must be
    /// at most 65527.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload_len: usize,
        checksum: TxChecksum,
    ) {
        debug_assert!(payload_len <= usize::from(u16::MAX) - HEADER_LEN);
        let len = (HEADER_LEN + payload_len) as u16;
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        match checksum {
            TxChecksum::Full => packet.fill_checksum(src, dst),
            TxChecksum::PseudoHeaderOnly => {
                packet.set_checksum(checksum::pseudo_header(src, dst, PROTOCOL, u32::from(len)))
            }
            TxChecksum::None => packet.set_checksum(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 53);

    /// A DNS query for `example.com A` from 10.0.0.1:53124 to 10.0.0.53:53.
    const DNS_QUERY: [u8; 37] = [
        0xcf, 0x84, 0x00, 0x35, 0x00, 0x25, 0xa0, 0x79, 0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63,
        0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    #[test]
    fn parse_dns_query() {
        let p = UdpPacket::new_checked(&DNS_QUERY[..]).unwrap();
        assert_eq!(p.src_port(), 53124);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 37);
        assert_eq!(p.checksum(), 0xa079);
        assert_eq!(p.payload(), &DNS_QUERY[8..]);
        assert_eq!(&p.payload()[13..20], b"example");
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(SRC, Ipv4Addr::new(10, 0, 0, 54)));
        assert_eq!(
            UdpRepr::parse(&p, SRC, DST, true),
            Ok(UdpRepr {
                src_port: 53124,
                dst_port: 53
            })
        );
    }

    #[test]
    fn emit_dns_query() {
        let mut buf = DNS_QUERY;
        buf[..8].fill(0);
        let repr = UdpRepr {
            src_port: 53124,
            dst_port: 53,
        };
        repr.emit(
            &mut UdpPacket::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            29,
            TxChecksum::Full,
        );
        assert_eq!(buf, DNS_QUERY);
    }

    #[test]
    fn checksum_modes() {
        let repr = UdpRepr {
            src_port: 1,
            dst_port: 2,
        };
        let mut buf = DNS_QUERY;
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut p, SRC, DST, 29, TxChecksum::None);
        assert_eq!(p.checksum(), 0);
        assert!(p.verify_checksum(SRC, DST));
        repr.emit(&mut p, SRC, DST, 29, TxChecksum::PseudoHeaderOnly);
        assert_eq!(p.checksum(), checksum::pseudo_header(SRC, DST, 17, 37));
        // What a device does with NEEDS_CSUM: sum from the UDP header on and store the
        // complement; the result must equal the software checksum.
        let offloaded = checksum::finish(checksum::data(&buf));
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut p, SRC, DST, 29, TxChecksum::Full);
        assert_eq!(p.checksum(), offloaded);
    }

    #[test]
    fn zero_checksum_sent_as_ffff() {
        // Choose a payload word that makes the computed checksum zero.
        let repr = UdpRepr {
            src_port: 1000,
            dst_port: 2000,
        };
        let mut buf = [0u8; 10];
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut p, SRC, DST, 2, TxChecksum::Full);
        let fix = p.checksum();
        p.payload_mut().copy_from_slice(&fix.to_be_bytes());
        repr.emit(&mut p, SRC, DST, 2, TxChecksum::Full);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn truncated_and_malformed() {
        for len in 0..DNS_QUERY.len() {
            assert_eq!(
                UdpPacket::new_checked(&DNS_QUERY[..len]),
                Err(Error::Truncated)
            );
        }
        let mut buf = DNS_QUERY;
        buf[5] = 7;
        assert_eq!(UdpPacket::new_checked(&buf[..]), Err(Error::Malformed));
        // A length shorter than the buffer bounds the payload (trailing bytes ignored).
        buf[5] = 8;
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        assert!(p.payload().is_empty() && p.is_empty());
    }

    #[test]
    fn bad_checksum() {
        let mut buf = DNS_QUERY;
        buf[36] = 0x1c; // QCLASS changed
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(UdpRepr::parse(&p, SRC, DST, true), Err(Error::BadChecksum));
        assert!(UdpRepr::parse(&p, SRC, DST, false).is_ok());
    }

    proptest! {
        #[test]
        fn roundtrip(src_port in any::<u16>(), dst_port in any::<u16>(),
                     src in any::<u32>(), dst in any::<u32>(),
                     payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let repr = UdpRepr { src_port, dst_port };
            let mut buf = vec![0u8; repr.header_len() + payload.len()];
            buf[HEADER_LEN..].copy_from_slice(&payload);
            let mut p = UdpPacket::new_unchecked(&mut buf[..]);
            repr.emit(&mut p, src, dst, payload.len(), TxChecksum::Full);
            prop_assert_ne!(p.checksum(), 0);
            let p = UdpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(UdpRepr::parse(&p, src, dst, true), Ok(repr));
            prop_assert_eq!(p.payload(), &payload[..]);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = UdpPacket::new_checked(&bytes[..]) {
                let _ = UdpRepr::parse(&p, Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, true);
                let _ = p.payload();
            }
        }
    }
}
