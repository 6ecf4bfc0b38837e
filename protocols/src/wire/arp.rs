//! ARP packets (RFC 826). The view reads any hardware/protocol address sizes; the repr handles
//! only Ethernet + IPv4, the one combination this stack speaks.

use super::bytes::{be16, copy, get, get_mut, set_u8, u8_at};
use core::net::Ipv4Addr;

use super::ethernet::EthernetAddress;
use super::{Error, Result};

/// `ar$op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> ArpOperation {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(op: ArpOperation) -> u16 {
        match op {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(other) => other,
        }
    }
}

/// `ar$hrd` for Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;
/// `ar$pro` for IPv4 (the IPv4 EtherType).
pub const PTYPE_IPV4: u16 = 0x0800;

mod field {
    use core::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const ADDRS: usize = 8;
}

/// Length of the fixed part, before the variable-size addresses.
const FIXED_LEN: usize = field::ADDRS;

/// Length of an Ethernet/IPv4 ARP packet.
pub const ETHERNET_IPV4_LEN: usize = FIXED_LEN + 2 * (6 + 4);

/// A read/write view of an ARP packet.
///
/// Address fields are located by `hlen` and `plen`: change those first when building a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without checking it; accessors panic if it is too short.
    pub fn new_unchecked(buffer: T) -> ArpPacket<T> {
        ArpPacket { buffer }
    }

    /// Wraps a buffer after checking it holds the fixed part and all four addresses.
    pub fn new_checked(buffer: T) -> Result<ArpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < FIXED_LEN || len < self.addrs_end() {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    fn addrs_end(&self) -> usize {
        FIXED_LEN + 2 * (usize::from(self.hlen()) + usize::from(self.plen()))
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let d = get(self.buffer.as_ref(), r);
        be16(d)
    }

    /// Hardware type (`ar$hrd`).
    pub fn htype(&self) -> u16 {
        self.u16_at(field::HTYPE)
    }

    /// Protocol type (`ar$pro`).
    pub fn ptype(&self) -> u16 {
        self.u16_at(field::PTYPE)
    }

    /// Hardware address length (`ar$hln`).
    pub fn hlen(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::HLEN)
    }

    /// Protocol address length (`ar$pln`).
    pub fn plen(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::PLEN)
    }

    pub fn oper(&self) -> ArpOperation {
        ArpOperation::from(self.u16_at(field::OPER))
    }

    fn sha_range(&self) -> core::ops::Range<usize> {
        let start = field::ADDRS;
        start..start + usize::from(self.hlen())
    }

    fn spa_range(&self) -> core::ops::Range<usize> {
        let start = self.sha_range().end;
        start..start + usize::from(self.plen())
    }

    fn tha_range(&self) -> core::ops::Range<usize> {
        let start = self.spa_range().end;
        start..start + usize::from(self.hlen())
    }

    fn tpa_range(&self) -> core::ops::Range<usize> {
        let start = self.tha_range().end;
        start..start + usize::from(self.plen())
    }

    /// Sender hardware address (`hlen` bytes).
    pub fn sha(&self) -> &[u8] {
        get(self.buffer.as_ref(), self.sha_range())
    }

    /// Sender protocol address (`plen` bytes).
    pub fn spa(&self) -> &[u8] {
        get(self.buffer.as_ref(), self.spa_range())
    }

    /// Target hardware address (`hlen` bytes).
    pub fn tha(&self) -> &[u8] {
        get(self.buffer.as_ref(), self.tha_range())
    }

    /// Target protocol address (`plen` bytes).
    pub fn tpa(&self) -> &[u8] {
        get(self.buffer.as_ref(), self.tpa_range())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    pub fn set_htype(&mut self, v: u16) {
        copy(
            get_mut(self.buffer.as_mut(), field::HTYPE),
            &v.to_be_bytes(),
        );
    }

    pub fn set_ptype(&mut self, v: u16) {
        copy(
            get_mut(self.buffer.as_mut(), field::PTYPE),
            &v.to_be_bytes(),
        );
    }

    pub fn set_hlen(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::HLEN, v);
    }

    pub fn set_plen(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::PLEN, v);
    }

    pub fn set_oper(&mut self, op: ArpOperation) {
        let v: u16 = op.into();
        copy(get_mut(self.buffer.as_mut(), field::OPER), &v.to_be_bytes());
    }

    /// Sets the sender hardware address; `addr` must be `hlen` bytes long.
    pub fn set_sha(&mut self, addr: &[u8]) {
        let r = self.sha_range();
        copy(get_mut(self.buffer.as_mut(), r), addr);
    }

    /// Sets the sender protocol address; `addr` must be `plen` bytes long.
    pub fn set_spa(&mut self, addr: &[u8]) {
        let r = self.spa_range();
        copy(get_mut(self.buffer.as_mut(), r), addr);
    }

    /// Sets the target hardware address; `addr` must be `hlen` bytes long.
    pub fn set_tha(&mut self, addr: &[u8]) {
        let r = self.tha_range();
        copy(get_mut(self.buffer.as_mut(), r), addr);
    }

    /// Sets the target protocol address; `addr` must be `plen` bytes long.
    pub fn set_tpa(&mut self, addr: &[u8]) {
        let r = self.tpa_range();
        copy(get_mut(self.buffer.as_mut(), r), addr);
    }
}

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub source_hardware_addr: EthernetAddress,
    pub source_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: EthernetAddress,
    pub target_protocol_addr: Ipv4Addr,
}

fn ipv4_from(bytes: &[u8]) -> Result<Ipv4Addr> {
    let b: [u8; 4] = bytes.try_into().map_err(|_| Error::Truncated)?;
    Ok(Ipv4Addr::from(b))
}

impl ArpRepr {
    /// Parses an Ethernet/IPv4 ARP packet; other hardware or protocol types are `Unsupported`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &ArpPacket<&T>) -> Result<ArpRepr> {
        packet.check_len()?;
        if packet.htype() != HTYPE_ETHERNET
            || packet.ptype() != PTYPE_IPV4
            || packet.hlen() != 6
            || packet.plen() != 4
        {
            return Err(Error::Unsupported);
        }
        let mac = |b: &[u8]| EthernetAddress::from_bytes(b).ok_or(Error::Truncated);
        Ok(ArpRepr {
            operation: packet.oper(),
            source_hardware_addr: mac(packet.sha())?,
            source_protocol_addr: ipv4_from(packet.spa())?,
            target_hardware_addr: mac(packet.tha())?,
            target_protocol_addr: ipv4_from(packet.tpa())?,
        })
    }

    pub fn buffer_len(&self) -> usize {
        ETHERNET_IPV4_LEN
    }

    /// Writes the whole packet; the buffer must be at least [`ArpRepr::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_htype(HTYPE_ETHERNET);
        packet.set_ptype(PTYPE_IPV4);
        packet.set_hlen(6);
        packet.set_plen(4);
        packet.set_oper(self.operation);
        packet.set_sha(&self.source_hardware_addr.0);
        packet.set_spa(&self.source_protocol_addr.octets());
        packet.set_tha(&self.target_hardware_addr.0);
        packet.set_tpa(&self.target_protocol_addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// "Who has 10.0.0.2? Tell 10.0.0.1", from 52:54:00:12:34:56.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x0a,
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x02,
    ];

    fn request_repr() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
        }
    }

    #[test]
    fn parse_request() {
        let packet = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(packet.htype(), 1);
        assert_eq!(packet.ptype(), 0x0800);
        assert_eq!(packet.hlen(), 6);
        assert_eq!(packet.plen(), 4);
        assert_eq!(packet.oper(), ArpOperation::Request);
        assert_eq!(packet.sha(), &[0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(packet.spa(), &[10, 0, 0, 1]);
        assert_eq!(packet.tha(), &[0; 6]);
        assert_eq!(packet.tpa(), &[10, 0, 0, 2]);
        assert_eq!(ArpRepr::parse(&packet), Ok(request_repr()));
    }

    #[test]
    fn emit_request() {
        let mut buf = [0xaau8; 28];
        request_repr().emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REQUEST);
        assert_eq!(request_repr().buffer_len(), 28);
    }

    #[test]
    fn padded_reply() {
        let mut buf = [0u8; 46];
        buf[..28].copy_from_slice(&REQUEST);
        buf[7] = 2;
        let packet = ArpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(
            ArpRepr::parse(&packet).unwrap().operation,
            ArpOperation::Reply
        );
    }

    #[test]
    fn truncated() {
        for len in 0..REQUEST.len() {
            assert_eq!(
                ArpPacket::new_checked(&REQUEST[..len]),
                Err(Error::Truncated)
            );
        }
    }

    #[test]
    fn unsupported() {
        for (at, value) in [(1, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut buf = [0u8; 64];
            buf[..28].copy_from_slice(&REQUEST);
            buf[at] = value;
            let packet = ArpPacket::new_checked(&buf[..]).unwrap();
            assert_eq!(ArpRepr::parse(&packet), Err(Error::Unsupported), "{at}");
        }
    }

    #[test]
    fn operation_values() {
        assert_eq!(ArpOperation::from(7), ArpOperation::Unknown(7));
        for v in 0..5u16 {
            assert_eq!(u16::from(ArpOperation::from(v)), v);
        }
    }

    proptest! {
        #[test]
        fn roundtrip(op in any::<u16>(), sha in any::<[u8; 6]>(), spa in any::<[u8; 4]>(),
                     tha in any::<[u8; 6]>(), tpa in any::<[u8; 4]>()) {
            let repr = ArpRepr {
                operation: ArpOperation::from(op),
                source_hardware_addr: EthernetAddress(sha),
                source_protocol_addr: Ipv4Addr::from(spa),
                target_hardware_addr: EthernetAddress(tha),
                target_protocol_addr: Ipv4Addr::from(tpa),
            };
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
            let packet = ArpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(ArpRepr::parse(&packet), Ok(repr));
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(packet) = ArpPacket::new_checked(&bytes[..]) {
                let _ = ArpRepr::parse(&packet);
                let _ = (packet.sha(), packet.spa(), packet.tha(), packet.tpa());
            }
        }

        #[test]
        fn random_ethernet_ipv4_never_panic(rest in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut bytes = vec![0x00, 0x01, 0x08, 0x00, 0x06, 0x04];
            bytes.extend_from_slice(&rest);
            if let Ok(packet) = ArpPacket::new_checked(&bytes[..]) {
                prop_assert!(ArpRepr::parse(&packet).is_ok());
            }
        }
    }
}
