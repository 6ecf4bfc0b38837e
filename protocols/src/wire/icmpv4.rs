//! ICMPv4 messages (RFC 792): echo, destination unreachable and time exceeded are parsed into
//! their own variants; everything else is carried through as [`Icmpv4Repr::Other`].

use super::bytes::{array, be16, copy, get, get_mut, set_u8, u8_at};
use super::checksum;
use super::{Error, Result};

/// Message types (RFC 792, RFC 1122 §3.2.2).
pub mod msg_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DST_UNREACHABLE: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
    pub const TIMESTAMP: u8 = 13;
    pub const TIMESTAMP_REPLY: u8 = 14;
}

/// Codes of destination unreachable (RFC 792, RFC 1812 §5.2.7.1).
pub mod dst_unreachable {
    pub const NET_UNREACHABLE: u8 = 0;
    pub const HOST_UNREACHABLE: u8 = 1;
    pub const PROTO_UNREACHABLE: u8 = 2;
    pub const PORT_UNREACHABLE: u8 = 3;
    /// "Fragmentation needed and DF set": `next_hop_mtu` is meaningful (RFC 1191).
    pub const FRAG_REQUIRED: u8 = 4;
    pub const SOURCE_ROUTE_FAILED: u8 = 5;
    pub const NET_UNKNOWN: u8 = 6;
    pub const HOST_UNKNOWN: u8 = 7;
    pub const SOURCE_HOST_ISOLATED: u8 = 8;
    pub const NET_PROHIBITED: u8 = 9;
    pub const HOST_PROHIBITED: u8 = 10;
    pub const NET_UNREACHABLE_TOS: u8 = 11;
    pub const HOST_UNREACHABLE_TOS: u8 = 12;
    pub const COMM_PROHIBITED: u8 = 13;
    pub const HOST_PRECEDENCE_VIOLATION: u8 = 14;
    pub const PRECEDENCE_CUTOFF: u8 = 15;
}

/// Codes of time exceeded (RFC 792).
pub mod time_exceeded {
    pub const TTL_EXPIRED: u8 = 0;
    pub const FRAG_EXPIRED: u8 = 1;
}

mod field {
    use core::ops::{Range, RangeFrom};
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const REST: Range<usize> = 4..8;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    pub const MTU: Range<usize> = 6..8;
    pub const DATA: RangeFrom<usize> = 8..;
}

/// Length of the ICMP header (type, code, checksum and the 4-byte "rest of header").
pub const HEADER_LEN: usize = field::DATA.start;

/// A read/write view of an ICMPv4 message. The buffer must span exactly the message (the IPv4
/// payload): the checksum covers all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than 8 bytes.
    pub fn new_unchecked(buffer: T) -> Icmpv4Packet<T> {
        Icmpv4Packet { buffer }
    }

    /// Wraps a buffer after checking it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Icmpv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let d = get(self.buffer.as_ref(), r);
        be16(d)
    }

    pub fn msg_type(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::TYPE)
    }

    pub fn msg_code(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::CODE)
    }

    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    pub fn echo_ident(&self) -> u16 {
        self.u16_at(field::ECHO_IDENT)
    }

    pub fn echo_seq_no(&self) -> u16 {
        self.u16_at(field::ECHO_SEQNO)
    }

    /// Next-hop MTU of a "fragmentation needed" message (RFC 1191 §4).
    pub fn next_hop_mtu(&self) -> u16 {
        self.u16_at(field::MTU)
    }

    /// The four type-specific header bytes after the checksum.
    pub fn rest_of_header(&self) -> [u8; 4] {
        array::<4>(get(self.buffer.as_ref(), field::REST))
    }

    /// Everything after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        get(self.buffer.as_ref(), field::DATA)
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        copy(get_mut(self.buffer.as_mut(), r), &v.to_be_bytes());
    }

    pub fn set_msg_type(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::TYPE, v);
    }

    pub fn set_msg_code(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::CODE, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.set_u16_at(field::CHECKSUM, v);
    }

    pub fn set_echo_ident(&mut self, v: u16) {
        self.set_u16_at(field::ECHO_IDENT, v);
    }

    pub fn set_echo_seq_no(&mut self, v: u16) {
        self.set_u16_at(field::ECHO_SEQNO, v);
    }

    pub fn set_next_hop_mtu(&mut self, v: u16) {
        self.set_u16_at(field::MTU, v);
    }

    pub fn set_rest_of_header(&mut self, rest: [u8; 4]) {
        copy(get_mut(self.buffer.as_mut(), field::REST), &rest);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        get_mut(self.buffer.as_mut(), field::DATA)
    }

    /// Computes the checksum over the whole buffer and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
        self.set_checksum(checksum::finish(sum));
    }
}

/// A parsed ICMPv4 message, borrowing its data from the packet's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    /// `invoking` is the quoted IPv4 header of the offending datagram plus its leading bytes.
    DstUnreachable {
        code: u8,
        next_hop_mtu: u16,
        invoking: &'a [u8],
    },
    TimeExceeded {
        code: u8,
        invoking: &'a [u8],
    },
    /// Any other message: the raw type, code, "rest of header" and data.
    Other {
        msg_type: u8,
        code: u8,
        rest: [u8; 4],
        data: &'a [u8],
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Parses a message. The repr borrows from the buffer that `packet` wraps (lifetime `'a`),
    /// not from `packet` itself, so the view may be a temporary.
    ///
    /// Echo messages with a non-zero code are not echoes (RFC 792): they come back as `Other`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Icmpv4Packet<&'a T>,
        verify_checksum: bool,
    ) -> Result<Icmpv4Repr<'a>> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let buffer: &'a [u8] = packet.buffer.as_ref();
        let data = get(buffer, field::DATA);
        let code = packet.msg_code();
        Ok(match (packet.msg_type(), code) {
            (msg_type::ECHO_REQUEST, 0) => Icmpv4Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            },
            (msg_type::ECHO_REPLY, 0) => Icmpv4Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            },
            (msg_type::DST_UNREACHABLE, _) => Icmpv4Repr::DstUnreachable {
                code,
                next_hop_mtu: packet.next_hop_mtu(),
                invoking: data,
            },
            (msg_type::TIME_EXCEEDED, _) => Icmpv4Repr::TimeExceeded {
                code,
                invoking: data,
            },
            (msg_type, code) => Icmpv4Repr::Other {
                msg_type,
                code,
                rest: packet.rest_of_header(),
                data,
            },
        })
    }

    fn data(&self) -> &'a [u8] {
        match *self {
            Icmpv4Repr::EchoRequest { data, .. }
            | Icmpv4Repr::EchoReply { data, .. }
            | Icmpv4Repr::Other { data, .. } => data,
            Icmpv4Repr::DstUnreachable { invoking, .. }
            | Icmpv4Repr::TimeExceeded { invoking, .. } => invoking,
        }
    }

    /// Header plus data.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data().len()
    }

    /// Whether this is an error message (RFC 1122 §3.2.2), which must never be answered with
    /// another error; echo, timestamp and information messages are queries.
    pub fn is_error(&self) -> bool {
        match *self {
            Icmpv4Repr::DstUnreachable { .. } | Icmpv4Repr::TimeExceeded { .. } => true,
            Icmpv4Repr::Other { msg_type, .. } => matches!(
                msg_type,
                msg_type::SOURCE_QUENCH | msg_type::REDIRECT | msg_type::PARAM_PROBLEM
            ),
            Icmpv4Repr::EchoRequest { .. } | Icmpv4Repr::EchoReply { .. } => false,
        }
    }

    /// Writes the message, copying its data, then the checksum. The packet's buffer must be
    /// exactly [`Icmpv4Repr::buffer_len`] bytes long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Icmpv4Packet<T>) {
        let (ty, code, rest) = match *self {
            Icmpv4Repr::EchoRequest { ident, seq_no, .. } => {
                (msg_type::ECHO_REQUEST, 0, echo_rest(ident, seq_no))
            }
            Icmpv4Repr::EchoReply { ident, seq_no, .. } => {
                (msg_type::ECHO_REPLY, 0, echo_rest(ident, seq_no))
            }
            Icmpv4Repr::DstUnreachable {
                code, next_hop_mtu, ..
            } => {
                let [a, b] = next_hop_mtu.to_be_bytes();
                (msg_type::DST_UNREACHABLE, code, [0, 0, a, b])
            }
            Icmpv4Repr::TimeExceeded { code, .. } => (msg_type::TIME_EXCEEDED, code, [0; 4]),
            Icmpv4Repr::Other {
                msg_type,
                code,
                rest,
                ..
            } => (msg_type, code, rest),
        };
        packet.set_msg_type(ty);
        packet.set_msg_code(code);
        packet.set_rest_of_header(rest);
        let data = self.data();
        copy(packet.data_mut(), data);
        packet.fill_checksum();
    }
}

fn echo_rest(ident: u16, seq_no: u16) -> [u8; 4] {
    let [a, b] = ident.to_be_bytes();
    let [c, d] = seq_no.to_be_bytes();
    [a, b, c, d]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The ICMP part of `ping -s 8`: echo request, ident 0x1234, seq 1, data "abcdefgh".
    const ECHO_REQUEST: [u8; 16] = [
        0x08, 0x00, 0x54, 0x35, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
        0x68,
    ];

    #[test]
    fn parse_echo_request() {
        let p = Icmpv4Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(p.msg_type(), msg_type::ECHO_REQUEST);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0x5435);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data(), b"abcdefgh");
        assert!(p.verify_checksum());
        let repr = Icmpv4Repr::parse(&p, true).unwrap();
        assert_eq!(
            repr,
            Icmpv4Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"abcdefgh"
            }
        );
        assert!(!repr.is_error());
        assert_eq!(repr.buffer_len(), 16);
    }

    /// The repr borrows the caller's buffer, not the (temporary) view.
    fn parse_through(icmp: &[u8]) -> Result<Icmpv4Repr<'_>> {
        Icmpv4Repr::parse(&Icmpv4Packet::new_checked(icmp)?, true)
    }

    #[test]
    fn repr_outlives_view() {
        let repr = parse_through(&ECHO_REQUEST).unwrap();
        assert!(matches!(
            repr,
            Icmpv4Repr::EchoRequest {
                data: b"abcdefgh",
                ..
            }
        ));
        assert_eq!(parse_through(&ECHO_REQUEST[..7]), Err(Error::Truncated));
    }

    #[test]
    fn emit_echo_request() {
        let repr = Icmpv4Repr::EchoRequest {
            ident: 0x1234,
            seq_no: 1,
            data: b"abcdefgh",
        };
        let mut buf = [0u8; 16];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, ECHO_REQUEST);
    }

    #[test]
    fn port_unreachable() {
        // Quotes the first 28 bytes of a UDP datagram (IPv4 header + UDP header).
        let invoking: [u8; 28] = [
            0x45, 0, 0, 0x25, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 53, 0xcf, 0x84, 0,
            53, 0, 0x11, 0, 0,
        ];
        let repr = Icmpv4Repr::DstUnreachable {
            code: dst_unreachable::PORT_UNREACHABLE,
            next_hop_mtu: 0,
            invoking: &invoking,
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..2], &[3, 3]);
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        let parsed = Icmpv4Repr::parse(&p, true).unwrap();
        assert_eq!(parsed, repr);
        assert!(parsed.is_error());
    }

    #[test]
    fn frag_required_and_time_exceeded() {
        let mut buf = [3, 4, 0, 0, 0, 0, 0x05, 0xdc, 0x45, 0];
        Icmpv4Packet::new_unchecked(&mut buf[..]).fill_checksum();
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.next_hop_mtu(), 1500);
        assert_eq!(
            Icmpv4Repr::parse(&p, true),
            Ok(Icmpv4Repr::DstUnreachable {
                code: dst_unreachable::FRAG_REQUIRED,
                next_hop_mtu: 1500,
                invoking: &[0x45, 0]
            })
        );
        let te = Icmpv4Repr::TimeExceeded {
            code: time_exceeded::TTL_EXPIRED,
            invoking: &[0x45],
        };
        let mut buf = vec![0u8; te.buffer_len()];
        te.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p, true), Ok(te));
    }

    #[test]
    fn other_messages() {
        let mut buf = [13u8, 0, 0, 0, 1, 2, 3, 4, 9, 9];
        Icmpv4Packet::new_unchecked(&mut buf[..]).fill_checksum();
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        let repr = Icmpv4Repr::parse(&p, true).unwrap();
        assert_eq!(
            repr,
            Icmpv4Repr::Other {
                msg_type: msg_type::TIMESTAMP,
                code: 0,
                rest: [1, 2, 3, 4],
                data: &[9, 9]
            }
        );
        assert!(!repr.is_error());
        for (ty, error) in [(4, true), (5, true), (12, true), (14, false), (8, false)] {
            let r = Icmpv4Repr::Other {
                msg_type: ty,
                code: 1,
                rest: [0; 4],
                data: &[],
            };
            assert_eq!(r.is_error(), error, "{ty}");
        }
        // An echo request with a non-zero code is not an echo request.
        let mut buf = ECHO_REQUEST;
        buf[1] = 1;
        Icmpv4Packet::new_unchecked(&mut buf[..]).fill_checksum();
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert!(matches!(
            Icmpv4Repr::parse(&p, true),
            Ok(Icmpv4Repr::Other {
                msg_type: 8,
                code: 1,
                ..
            })
        ));
    }

    #[test]
    fn truncated_and_bad_checksum() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Icmpv4Packet::new_checked(&ECHO_REQUEST[..len]),
                Err(Error::Truncated)
            );
        }
        let mut buf = ECHO_REQUEST;
        buf[15] ^= 0x20;
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Icmpv4Repr::parse(&p, true), Err(Error::BadChecksum));
        assert!(Icmpv4Repr::parse(&p, false).is_ok());
    }

    proptest! {
        #[test]
        fn echo_roundtrip(request in any::<bool>(), ident in any::<u16>(), seq_no in any::<u16>(),
                          data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let repr = if request {
                Icmpv4Repr::EchoRequest { ident, seq_no, data: &data }
            } else {
                Icmpv4Repr::EchoReply { ident, seq_no, data: &data }
            };
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
            let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Icmpv4Repr::parse(&p, true), Ok(repr));
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = Icmpv4Packet::new_checked(&bytes[..]) {
                if let Ok(repr) = Icmpv4Repr::parse(&p, false) {
                    let _ = (repr.buffer_len(), repr.is_error());
                }
                let _ = Icmpv4Repr::parse(&p, true);
            }
        }
    }
}
