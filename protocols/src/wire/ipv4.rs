//! IPv4 packets (RFC 791) and addresses with a prefix length.
//!
//! This stack reads options (and skips them); it writes them only in an echo reply
//! ([`super::ipv4_options`]).

use super::bytes::{array, be16, copy, get, get_mut, set_u8, u8_at};
use core::fmt;
use core::net::Ipv4Addr;
use core::str::FromStr;

use super::checksum;
use super::{Error, Result};

/// The IPv4 protocol field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    Icmp,
    Tcp,
    Udp,
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> IpProtocol {
        match v {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Unknown(other) => other,
        }
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpProtocol::Icmp => write!(f, "ICMP"),
            IpProtocol::Tcp => write!(f, "TCP"),
            IpProtocol::Udp => write!(f, "UDP"),
            IpProtocol::Unknown(v) => write!(f, "0x{v:02x}"),
        }
    }
}

/// Why an address with a prefix length could not be built or parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("prefix length {0} is longer than 32")]
    PrefixTooLong(u8),
    #[error("expected an IPv4 address with a prefix length, like 10.1.0.2/24")]
    Syntax,
}

/// An interface address with its prefix length, e.g. `10.0.0.2/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Cidr {
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> core::result::Result<Ipv4Cidr, CidrError> {
        if prefix_len > 32 {
            return Err(CidrError::PrefixTooLong(prefix_len));
        }
        Ok(Ipv4Cidr { addr, prefix_len })
    }

    pub fn address(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    fn mask_bits(&self) -> u32 {
        // `checked_shl` because a shift by 32 (prefix 0) is out of range for u32.
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0)
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask_bits())
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask_bits())
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        (u32::from(addr) ^ u32::from(self.addr)) & self.mask_bits() == 0
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> core::result::Result<Ipv4Cidr, CidrError> {
        let (addr, prefix) = s.split_once('/').ok_or(CidrError::Syntax)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| CidrError::Syntax)?;
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CidrError::Syntax);
        }
        let prefix: u8 = prefix.parse().map_err(|_| CidrError::Syntax)?;
        Ipv4Cidr::new(addr, prefix)
    }
}

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is too short.
    pub fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer after checking the version and that the header and `total_len` fit.
    /// The buffer may be longer than `total_len` (Ethernet padding).
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 || self.header_len() < HEADER_LEN {
            return Err(Error::Malformed);
        }
        let header_len = self.header_len();
        let total_len = usize::from(self.total_len());
        if len < header_len || len < total_len {
            return Err(Error::Truncated);
        }
        if total_len < header_len {
            return Err(Error::Malformed);
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

    pub fn version(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::VER_IHL) >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(u8_at(self.buffer.as_ref(), field::VER_IHL) & 0x0f) * 4
    }

    pub fn dscp_ecn(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::DSCP_ECN)
    }

    pub fn total_len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }

    pub fn dont_frag(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (self.u16_at(field::FLG_OFF) & OFFSET_MASK) * 8
    }

    pub fn ttl(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::TTL)
    }

    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(u8_at(self.buffer.as_ref(), field::PROTOCOL))
    }

    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    fn addr_at(&self, r: core::ops::Range<usize>) -> Ipv4Addr {
        let d = get(self.buffer.as_ref(), r);
        Ipv4Addr::from(array::<4>(d))
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        self.addr_at(field::SRC_ADDR)
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        self.addr_at(field::DST_ADDR)
    }

    /// The options area (empty when IHL is 5).
    pub fn options(&self) -> &[u8] {
        get(self.buffer.as_ref(), HEADER_LEN..self.header_len())
    }

    /// Bytes `header_len..total_len`: link-layer padding is not part of the payload.
    pub fn payload(&self) -> &[u8] {
        get(
            self.buffer.as_ref(),
            self.header_len()..usize::from(self.total_len()),
        )
    }

    /// Whether the header (options included) sums to zero.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(get(self.buffer.as_ref(), ..self.header_len())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        copy(get_mut(self.buffer.as_mut(), r), &v.to_be_bytes());
    }

    pub fn set_version(&mut self, v: u8) {
        let b = self.buffer.as_mut();
        set_u8(
            b,
            field::VER_IHL,
            (u8_at(b, field::VER_IHL) & 0x0f) | (v << 4),
        );
    }

    /// Sets IHL from a length in bytes (a multiple of 4, at most 60).
    pub fn set_header_len(&mut self, len: usize) {
        let b = self.buffer.as_mut();
        let ihl = (len / 4) as u8 & 0x0f;
        set_u8(b, field::VER_IHL, (u8_at(b, field::VER_IHL) & 0xf0) | ihl);
    }

    pub fn set_dscp_ecn(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::DSCP_ECN, v);
    }

    pub fn set_total_len(&mut self, v: u16) {
        self.set_u16_at(field::LENGTH, v);
    }

    pub fn set_ident(&mut self, v: u16) {
        self.set_u16_at(field::IDENT, v);
    }

    fn set_flag(&mut self, flag: u16, on: bool) {
        let old = self.u16_at(field::FLG_OFF);
        self.set_u16_at(field::FLG_OFF, if on { old | flag } else { old & !flag });
    }

    pub fn set_dont_frag(&mut self, on: bool) {
        self.set_flag(FLAG_DF, on);
    }

    pub fn set_more_frags(&mut self, on: bool) {
        self.set_flag(FLAG_MF, on);
    }

    /// Sets the fragment offset from a byte count (a multiple of 8), keeping the flags.
    pub fn set_frag_offset(&mut self, bytes: u16) {
        let old = self.u16_at(field::FLG_OFF);
        self.set_u16_at(field::FLG_OFF, (old & !OFFSET_MASK) | (bytes / 8));
    }

    pub fn set_ttl(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::TTL, v);
    }

    pub fn set_protocol(&mut self, p: IpProtocol) {
        set_u8(self.buffer.as_mut(), field::PROTOCOL, p.into());
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.set_u16_at(field::CHECKSUM, v);
    }

    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        copy(get_mut(self.buffer.as_mut(), field::SRC_ADDR), &a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        copy(get_mut(self.buffer.as_mut(), field::DST_ADDR), &a.octets());
    }

    /// Computes the header checksum over `header_len` bytes and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(get(self.buffer.as_ref(), ..self.header_len()));
        self.set_checksum(checksum::finish(sum));
    }

    /// Bytes `header_len..total_len`, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        get_mut(self.buffer.as_mut(), range)
    }
}

/// A parsed IPv4 header (without options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: IpProtocol,
    pub payload_len: usize,
    pub ttl: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// In bytes.
    pub frag_offset: u16,
    pub dscp_ecn: u8,
}

impl Ipv4Repr {
    /// Parses the header; options are skipped. Fragments are returned as they are: whether to
    /// drop or reassemble them is the caller's decision.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Ipv4Packet<&T>,
        verify_checksum: bool,
    ) -> Result<Ipv4Repr> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
            dscp_ecn: packet.dscp_ecn(),
        })
    }

    /// Header length without options.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Like [`Ipv4Repr::emit`], with `options` (a multiple of 4 bytes, at most 40) after the
    /// fixed header: the payload then starts at `20 + options.len()`.
    pub fn emit_with_options<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Ipv4Packet<T>,
        options: &[u8],
    ) {
        debug_assert!(options.len().is_multiple_of(4) && options.len() <= 40);
        self.emit(packet);
        let header_len = HEADER_LEN + options.len();
        packet.set_header_len(header_len);
        packet.set_total_len((header_len + self.payload_len) as u16);
        get_mut(packet.buffer.as_mut(), HEADER_LEN..header_len).copy_from_slice(options);
        packet.fill_checksum();
    }

    /// Writes a 20-byte header with `total_len = 20 + payload_len` and its checksum; the
    /// payload is left as it is. `payload_len` must be at most 65515.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX) - HEADER_LEN);
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN);
        packet.set_dscp_ecn(self.dscp_ecn);
        packet.set_total_len((HEADER_LEN + self.payload_len) as u16);
        packet.set_ident(self.ident);
        packet.set_u16_at(field::FLG_OFF, 0);
        packet.set_dont_frag(self.dont_frag);
        packet.set_more_frags(self.more_frags);
        packet.set_frag_offset(self.frag_offset);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `ping -s 8 10.0.0.2` from 10.0.0.1: IPv4 header, then ICMP echo request "abcdefgh".
    const PING: [u8; 36] = [
        0x45, 0x00, 0x00, 0x24, 0xbe, 0xef, 0x40, 0x00, 0x40, 0x01, 0x67, 0xe7, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02, 0x08, 0x00, 0x54, 0x35, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62,
        0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    ];

    fn ping_repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            protocol: IpProtocol::Icmp,
            payload_len: 16,
            ttl: 64,
            ident: 0xbeef,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            dscp_ecn: 0,
        }
    }

    #[test]
    fn parse_ping() {
        let p = Ipv4Packet::new_checked(&PING[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.total_len(), 36);
        assert_eq!(p.ident(), 0xbeef);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::Icmp);
        assert_eq!(p.checksum(), 0x67e7);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert!(p.options().is_empty());
        assert_eq!(p.payload(), &PING[20..]);
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p, true), Ok(ping_repr()));
    }

    #[test]
    fn emit_ping() {
        let mut buf = PING;
        buf[..20].fill(0xff);
        ping_repr().emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, PING);
    }

    #[test]
    fn padding_is_not_payload() {
        let mut buf = [0u8; 46];
        buf[..36].copy_from_slice(&PING);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload(), &PING[20..]);
        assert_eq!(Ipv4Repr::parse(&p, true).unwrap().payload_len, 16);
    }

    #[test]
    fn options_are_skipped() {
        // IHL 6 with one NOP NOP NOP EOL option word.
        let mut buf = vec![0x46, 0x00, 0x00, 0x1c];
        buf.extend_from_slice(&PING[4..20]);
        buf.extend_from_slice(&[1, 1, 1, 0, 0xde, 0xad, 0xbe, 0xef]);
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.fill_checksum();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(Ipv4Repr::parse(&p, true).unwrap().payload_len, 4);
    }

    #[test]
    fn truncated_and_malformed() {
        for len in 0..PING.len() {
            assert_eq!(Ipv4Packet::new_checked(&PING[..len]), Err(Error::Truncated));
        }
        let with = |at: usize, v: u8| {
            let mut b = PING;
            b[at] = v;
            b
        };
        let bad_version = with(0, 0x65);
        assert_eq!(
            Ipv4Packet::new_checked(&bad_version[..]),
            Err(Error::Malformed)
        );
        let short_ihl = with(0, 0x44);
        assert_eq!(
            Ipv4Packet::new_checked(&short_ihl[..]),
            Err(Error::Malformed)
        );
        let long_ihl = with(0, 0x4f);
        assert_eq!(
            Ipv4Packet::new_checked(&long_ihl[..]),
            Err(Error::Truncated)
        );
        let small_total = with(3, 19);
        assert_eq!(
            Ipv4Packet::new_checked(&small_total[..]),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn bad_checksum() {
        let mut buf = PING;
        buf[8] = 63; // TTL changed, checksum not updated
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p, true), Err(Error::BadChecksum));
        assert_eq!(Ipv4Repr::parse(&p, false).unwrap().ttl, 63);
        // RFC 1624 incremental update repairs it.
        let new = checksum::update(0x67e7, 0x4001, 0x3f01);
        buf[10..12].copy_from_slice(&new.to_be_bytes());
        assert!(Ipv4Packet::new_checked(&buf[..]).unwrap().verify_checksum());
    }

    #[test]
    fn cidr() {
        let c: Ipv4Cidr = "10.1.0.2/24".parse().unwrap();
        assert_eq!(c.address(), Ipv4Addr::new(10, 1, 0, 2));
        assert_eq!(c.prefix_len(), 24);
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(c.network(), Ipv4Addr::new(10, 1, 0, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 1, 0, 255));
        assert!(c.contains(Ipv4Addr::new(10, 1, 0, 200)));
        assert!(!c.contains(Ipv4Addr::new(10, 1, 1, 2)));
        assert_eq!(c.to_string(), "10.1.0.2/24");
        let all: Ipv4Cidr = "1.2.3.4/0".parse().unwrap();
        assert_eq!(all.netmask(), Ipv4Addr::UNSPECIFIED);
        assert!(all.contains(Ipv4Addr::BROADCAST));
        let host = Ipv4Cidr::new(Ipv4Addr::new(1, 2, 3, 4), 32).unwrap();
        assert!(host.contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert!(!host.contains(Ipv4Addr::new(1, 2, 3, 5)));
        assert_eq!(host.broadcast(), Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(
            Ipv4Cidr::new(Ipv4Addr::LOCALHOST, 33),
            Err(CidrError::PrefixTooLong(33))
        );
        assert_eq!(
            "10.0.0.1/33".parse::<Ipv4Cidr>(),
            Err(CidrError::PrefixTooLong(33))
        );
        for bad in [
            "10.0.0.1",
            "10.0.0.1/",
            "10.0.0/8",
            "10.0.0.1/+8",
            "x/8",
            "10.0.0.1/1000",
        ] {
            assert_eq!(bad.parse::<Ipv4Cidr>(), Err(CidrError::Syntax), "{bad}");
        }
        assert!(CidrError::Syntax.to_string().contains("10.1.0.2/24"));
    }

    #[test]
    fn protocol_values() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(v)), v);
        }
        assert_eq!(IpProtocol::Tcp.to_string(), "TCP");
    }

    proptest! {
        #[test]
        fn roundtrip(src in any::<u32>(), dst in any::<u32>(), proto in any::<u8>(),
                     payload_len in 0usize..100, ttl in any::<u8>(), ident in any::<u16>(),
                     df in any::<bool>(), mf in any::<bool>(), off in 0u16..0x2000,
                     dscp_ecn in any::<u8>()) {
            let repr = Ipv4Repr {
                src_addr: Ipv4Addr::from(src),
                dst_addr: Ipv4Addr::from(dst),
                protocol: IpProtocol::from(proto),
                payload_len,
                ttl,
                ident,
                dont_frag: df,
                more_frags: mf,
                frag_offset: off * 8,
                dscp_ecn,
            };
            let mut buf = vec![0u8; repr.buffer_len() + payload_len];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
            let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Ipv4Repr::parse(&p, true), Ok(repr));
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) {
                let _ = Ipv4Repr::parse(&p, true);
                let _ = (p.options(), p.payload(), p.verify_checksum());
            }
        }

        #[test]
        fn random_v4_never_panic(rest in proptest::collection::vec(any::<u8>(), 0..80),
                                 ihl in 0u8..16) {
            let mut bytes = vec![0x40 | ihl];
            bytes.extend_from_slice(&rest);
            if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) {
                let _ = Ipv4Repr::parse(&p, false);
                let _ = (p.options(), p.payload());
            }
        }

        #[test]
        fn cidr_text_roundtrip(a in any::<u32>(), len in 0u8..=32) {
            let c = Ipv4Cidr::new(Ipv4Addr::from(a), len).unwrap();
            prop_assert_eq!(c.to_string().parse::<Ipv4Cidr>(), Ok(c));
            prop_assert!(c.contains(c.network()) && c.contains(c.broadcast()));
        }
    }
}
