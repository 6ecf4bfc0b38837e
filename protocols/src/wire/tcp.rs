//! TCP segments (RFC 9293 §3.1) and options (MSS, window scale and timestamps from RFC 7323,
//! SACK-permitted and SACK blocks from RFC 2018).

use super::bytes::{copy, get, get_mut, set_u8, u8_at};
use core::cmp::Ordering;
use core::fmt;
use core::net::Ipv4Addr;
use core::ops::{Add, AddAssign, Sub};

use super::checksum;
use super::{Error, Result, TxChecksum};

mod option;
pub use option::TcpOption;
use option::{be_u16, be_u32};

/// A TCP sequence number: arithmetic wraps modulo 2^32 and comparison is by signed distance
/// (RFC 9293 §3.4), so `a < b` means "a comes before b" within half the sequence space.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// Signed distance from `other` to `self` (`self - other`).
    pub fn distance(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if self > other {
            self
        } else {
            other
        }
    }

    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if self < other {
            self
        } else {
            other
        }
    }
}

impl Add<usize> for SeqNumber {
    type Output = SeqNumber;
    fn add(self, rhs: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(rhs as u32))
    }
}

impl AddAssign<usize> for SeqNumber {
    fn add_assign(&mut self, rhs: usize) {
        *self = *self + rhs;
    }
}

impl Sub<usize> for SeqNumber {
    type Output = SeqNumber;
    fn sub(self, rhs: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(rhs as u32))
    }
}

/// `a - b` as a byte count; callers must know `a >= b` (saturates to 0 otherwise).
impl Sub<SeqNumber> for SeqNumber {
    type Output = usize;
    fn sub(self, rhs: SeqNumber) -> usize {
        let d = self.distance(rhs);
        if d < 0 {
            0
        } else {
            d as usize
        }
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &SeqNumber) -> Option<Ordering> {
        Some(self.distance(*other).cmp(&0))
    }
}

impl fmt::Debug for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The TCP flag bits (the low 8 bits of the header's flags field).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const URG: TcpFlags = TcpFlags(0x20);
    pub const ECE: TcpFlags = TcpFlags(0x40);
    pub const CWR: TcpFlags = TcpFlags(0x80);
    pub const NONE: TcpFlags = TcpFlags(0);

    pub fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn syn(self) -> bool {
        self.contains(Self::SYN)
    }
    pub fn fin(self) -> bool {
        self.contains(Self::FIN)
    }
    pub fn rst(self) -> bool {
        self.contains(Self::RST)
    }
    pub fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
    pub fn psh(self) -> bool {
        self.contains(Self::PSH)
    }
    pub fn urg(self) -> bool {
        self.contains(Self::URG)
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl core::ops::BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

/// tcpdump's letters: `S` SYN, `F` FIN, `R` RST, `P` PSH, `.` ACK, `U` URG, `E` ECE, `W` CWR.
impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::SYN, 'S'),
            (Self::FIN, 'F'),
            (Self::RST, 'R'),
            (Self::PSH, 'P'),
            (Self::URG, 'U'),
            (Self::ECE, 'E'),
            (Self::CWR, 'W'),
            (Self::ACK, '.'),
        ];
        for (flag, c) in names {
            if self.contains(flag) {
                write!(f, "{c}")?;
            }
        }
        if self.0 == 0 {
            write!(f, "none")?;
        }
        Ok(())
    }
}

/// The RFC 7323 timestamps option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpTimestamp {
    pub tsval: u32,
    pub tsecr: u32,
}

/// The most SACK blocks one segment carries (4 without timestamps, 3 with; RFC 2018 §3).
pub const MAX_SACK_BLOCKS: usize = 4;

/// A parsed TCP header. The payload is not part of the repr: it lies in the buffer after
/// `header_len()` bytes, and `payload_len` says how long it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    /// All flag bits as received / to send. `ack_number` is `Some` exactly when ACK is set.
    pub flags: TcpFlags,
    pub seq_number: SeqNumber,
    pub ack_number: Option<SeqNumber>,
    /// The raw 16-bit window field (unscaled).
    pub window_len: u16,
    pub urgent_pointer: u16,
    pub max_seg_size: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// SACK blocks as (left edge, right edge); unused slots are `None`, used ones come first.
    pub sack_ranges: [Option<(SeqNumber, SeqNumber)>; MAX_SACK_BLOCKS],
    pub timestamp: Option<TcpTimestamp>,
    pub payload_len: usize,
}

impl TcpRepr {
    /// Sequence space the segment occupies: payload plus one for SYN and one for FIN.
    pub fn segment_len(&self) -> usize {
        self.payload_len + usize::from(self.flags.syn()) + usize::from(self.flags.fin())
    }

    /// A bare acknowledgment: ACK set, no payload, no SYN, FIN or RST.
    pub fn is_ack_only(&self) -> bool {
        self.ack_number.is_some()
            && self.payload_len == 0
            && !self.flags.syn()
            && !self.flags.fin()
            && !self.flags.rst()
    }

    /// Number of SACK blocks in use (the leading `Some` slots).
    pub fn sack_block_count(&self) -> usize {
        self.sack_ranges.iter().take_while(|r| r.is_some()).count()
    }

    /// Option bytes before the SACK blocks (all 4-aligned, see [`TcpRepr::header_len`]).
    fn fixed_options_len(&self) -> usize {
        let mut len = 0;
        if self.max_seg_size.is_some() {
            len += 4;
        }
        if self.window_scale.is_some() {
            len += 4;
        }
        match (self.sack_permitted, self.timestamp.is_some()) {
            (true, true) => len += 12,
            (true, false) => len += 4,
            (false, true) => len += 12,
            (false, false) => {}
        }
        len
    }

    /// How many SACK blocks `emit` writes: as many as fit in the 40 option bytes after the
    /// other options (4 alone, 3 next to timestamps; RFC 2018 §3). SACK is advisory, so
    /// blocks that do not fit are dropped.
    pub fn sack_blocks_to_emit(&self) -> usize {
        let room = MAX_OPTIONS_LEN - self.fixed_options_len();
        let fit = room.saturating_sub(4) / 8;
        self.sack_block_count().min(fit)
    }

    /// Header length with options, laid out as: MSS; NOP, window scale; SACK-permitted
    /// (with NOP NOP, or packed before timestamps as Linux does); NOP NOP, timestamps;
    /// NOP NOP, SACK blocks. Every group is 4 bytes aligned, so no trailing padding is needed,
    /// and the total never exceeds 60.
    pub fn header_len(&self) -> usize {
        let sacks = self.sack_blocks_to_emit();
        let sack_len = if sacks > 0 { 4 + 8 * sacks } else { 0 };
        HEADER_LEN + self.fixed_options_len() + sack_len
    }

    /// Parses a segment; `src` and `dst` are the IPv4 addresses, for the pseudo-header. The
    /// packet's buffer must be exactly the segment (the IPv4 payload).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &TcpPacket<&T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        verify_checksum: bool,
    ) -> Result<TcpRepr> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        let flags = packet.flags();
        let mut repr = TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            flags,
            seq_number: packet.seq_number(),
            ack_number: flags.ack().then(|| packet.ack_number()),
            window_len: packet.window_len(),
            urgent_pointer: packet.urgent_at(),
            payload_len: packet.payload().len(),
            ..TcpRepr::default()
        };
        let mut options = packet.options();
        while !options.is_empty() {
            let (rest, option) = TcpOption::parse(options)?;
            match option {
                TcpOption::EndOfList => break,
                TcpOption::NoOperation | TcpOption::Unknown { .. } => {}
                // Several MSS options (RFC 9293 says nothing of it): the smallest, the only
                // value that fits all the peer said.
                TcpOption::MaxSegmentSize(mss) => {
                    repr.max_seg_size = Some(repr.max_seg_size.map_or(mss, |m| m.min(mss)))
                }
                // RFC 7323 §2.3: a shift above 14 is treated as 14.
                TcpOption::WindowScale(shift) => repr.window_scale = Some(shift.min(14)),
                TcpOption::SackPermitted => repr.sack_permitted = true,
                TcpOption::SackRange(ranges) => repr.sack_ranges = ranges,
                TcpOption::Timestamps(ts) => repr.timestamp = Some(ts),
            }
            options = rest;
        }
        Ok(repr)
    }

    /// Writes header and options in front of `payload_len` payload bytes that are already in
    /// the buffer after `header_len()` bytes, then the checksum as `checksum` asks. The ACK
    /// flag is written exactly when `ack_number` is `Some`. The buffer must hold at least
    /// `header_len() + payload_len` bytes; the checksum covers exactly those.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        checksum: TxChecksum,
    ) {
        let header_len = self.header_len();
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number.unwrap_or_default());
        set_u8(packet.buffer.as_mut(), field::OFF_NS, 0);
        packet.set_header_len(header_len);
        let mut flags = self.flags;
        if self.ack_number.is_some() {
            flags |= TcpFlags::ACK;
        } else {
            flags.0 &= !TcpFlags::ACK.0;
        }
        packet.set_flags(flags);
        packet.set_window_len(self.window_len);
        packet.set_checksum(0);
        packet.set_urgent_at(self.urgent_pointer);
        self.emit_options(packet.options_mut());

        let total = header_len + self.payload_len;
        let pseudo = checksum::pseudo_header(src, dst, PROTOCOL, total as u32);
        match checksum {
            TxChecksum::Full => {
                let sum = checksum::data(get(packet.buffer.as_ref(), ..total));
                packet.set_checksum(checksum::finish(checksum::combine(&[pseudo, sum])));
            }
            TxChecksum::PseudoHeaderOnly => packet.set_checksum(pseudo),
            TxChecksum::None => {}
        }
    }

    fn emit_options(&self, buf: &mut [u8]) {
        let mut at = 0;
        let mut put = |option: TcpOption<'_>, at: &mut usize| {
            *at += option.emit(get_mut(buf, *at..));
        };
        if let Some(mss) = self.max_seg_size {
            put(TcpOption::MaxSegmentSize(mss), &mut at);
        }
        if let Some(shift) = self.window_scale {
            put(TcpOption::NoOperation, &mut at);
            put(TcpOption::WindowScale(shift), &mut at);
        }
        match (self.sack_permitted, self.timestamp) {
            (true, Some(ts)) => {
                put(TcpOption::SackPermitted, &mut at);
                put(TcpOption::Timestamps(ts), &mut at);
            }
            (sack_permitted, timestamp) => {
                if sack_permitted {
                    put(TcpOption::NoOperation, &mut at);
                    put(TcpOption::NoOperation, &mut at);
                    put(TcpOption::SackPermitted, &mut at);
                }
                if let Some(ts) = timestamp {
                    put(TcpOption::NoOperation, &mut at);
                    put(TcpOption::NoOperation, &mut at);
                    put(TcpOption::Timestamps(ts), &mut at);
                }
            }
        }
        let sacks = self.sack_blocks_to_emit();
        if sacks > 0 {
            let mut ranges = [None; MAX_SACK_BLOCKS];
            for (r, s) in ranges.iter_mut().zip(&self.sack_ranges).take(sacks) {
                *r = *s;
            }
            put(TcpOption::NoOperation, &mut at);
            put(TcpOption::NoOperation, &mut at);
            put(TcpOption::SackRange(ranges), &mut at);
        }
        // Pad to the 4-byte boundary (none of the groups above needs it today).
        if let Some(rest) = buf.get_mut(at..) {
            rest.fill(0);
        }
    }
}

/// The IPv4 protocol number of TCP.
const PROTOCOL: u8 = 6;

/// Room for options: the data offset field tops out at 15 words.
pub const MAX_OPTIONS_LEN: usize = 40;

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    pub const OFF_NS: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = field::URGENT.end;

/// A read/write view of a TCP segment. The buffer must be exactly the segment: the payload
/// and the checksum run to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is too short.
    pub fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    /// Wraps a buffer after checking that the header and its options fit.
    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        be_u16(get(self.buffer.as_ref(), field::SRC_PORT))
    }

    pub fn dst_port(&self) -> u16 {
        be_u16(get(self.buffer.as_ref(), field::DST_PORT))
    }

    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(be_u32(get(self.buffer.as_ref(), field::SEQ_NUM)))
    }

    /// The acknowledgment field, meaningful only when ACK is set.
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(be_u32(get(self.buffer.as_ref(), field::ACK_NUM)))
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(u8_at(self.buffer.as_ref(), field::OFF_NS) >> 4) * 4
    }

    pub fn flags(&self) -> TcpFlags {
        TcpFlags(u8_at(self.buffer.as_ref(), field::FLAGS))
    }

    pub fn window_len(&self) -> u16 {
        be_u16(get(self.buffer.as_ref(), field::WIN_SIZE))
    }

    pub fn checksum(&self) -> u16 {
        be_u16(get(self.buffer.as_ref(), field::CHECKSUM))
    }

    pub fn urgent_at(&self) -> u16 {
        be_u16(get(self.buffer.as_ref(), field::URGENT))
    }

    /// The options area, `20..header_len`.
    pub fn options(&self) -> &[u8] {
        get(self.buffer.as_ref(), HEADER_LEN..self.header_len())
    }

    /// Everything after the header.
    pub fn payload(&self) -> &[u8] {
        get(self.buffer.as_ref(), self.header_len()..)
    }

    /// Verifies the checksum over pseudo-header and the whole buffer.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let data = self.buffer.as_ref();
        let Ok(len) = u32::try_from(data.len()) else {
            return false;
        };
        let pseudo = checksum::pseudo_header(src, dst, PROTOCOL, len);
        checksum::combine(&[pseudo, checksum::data(data)]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        copy(get_mut(self.buffer.as_mut(), r), &v.to_be_bytes());
    }

    pub fn set_src_port(&mut self, v: u16) {
        self.set_u16_at(field::SRC_PORT, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        self.set_u16_at(field::DST_PORT, v);
    }

    pub fn set_seq_number(&mut self, v: SeqNumber) {
        copy(
            get_mut(self.buffer.as_mut(), field::SEQ_NUM),
            &v.0.to_be_bytes(),
        );
    }

    pub fn set_ack_number(&mut self, v: SeqNumber) {
        copy(
            get_mut(self.buffer.as_mut(), field::ACK_NUM),
            &v.0.to_be_bytes(),
        );
    }

    /// Sets the data offset from a length in bytes (a multiple of 4, 20..=60), keeping the
    /// reserved bits.
    pub fn set_header_len(&mut self, len: usize) {
        let b = self.buffer.as_mut();
        let off = ((len / 4) as u8) << 4;
        set_u8(b, field::OFF_NS, (u8_at(b, field::OFF_NS) & 0x0f) | off);
    }

    pub fn set_flags(&mut self, flags: TcpFlags) {
        set_u8(self.buffer.as_mut(), field::FLAGS, flags.0);
    }

    pub fn set_window_len(&mut self, v: u16) {
        self.set_u16_at(field::WIN_SIZE, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.set_u16_at(field::CHECKSUM, v);
    }

    pub fn set_urgent_at(&mut self, v: u16) {
        self.set_u16_at(field::URGENT, v);
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        get_mut(self.buffer.as_mut(), HEADER_LEN..end)
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        get_mut(self.buffer.as_mut(), start..)
    }

    /// Computes the checksum over pseudo-header and the whole buffer and stores it.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header(src, dst, PROTOCOL, data.len() as u32);
        let sum = checksum::combine(&[pseudo, checksum::data(data)]);
        self.set_checksum(checksum::finish(sum));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    /// A Linux SYN from 10.0.0.1:46066 to 10.0.0.2:80 with its usual options: MSS 1460,
    /// SACK-permitted, timestamps, NOP, window scale 7.
    const LINUX_SYN: [u8; 40] = [
        0xb3, 0xf2, 0x00, 0x50, 0x5c, 0x9a, 0x3e, 0x21, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0xb3, 0xb6, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x0a, 0x1b,
        0x2c, 0x3d, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    fn syn_repr() -> TcpRepr {
        TcpRepr {
            src_port: 46066,
            dst_port: 80,
            flags: TcpFlags::SYN,
            seq_number: SeqNumber(0x5c9a_3e21),
            ack_number: None,
            window_len: 64240,
            urgent_pointer: 0,
            max_seg_size: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            sack_ranges: [None; MAX_SACK_BLOCKS],
            timestamp: Some(TcpTimestamp {
                tsval: 0x0a1b_2c3d,
                tsecr: 0,
            }),
            payload_len: 0,
        }
    }

    /// `bytes` with the checksum recomputed, for tests that alter a valid segment.
    fn refilled(mut bytes: Vec<u8>) -> Vec<u8> {
        TcpPacket::new_unchecked(&mut bytes[..]).fill_checksum(SRC, DST);
        bytes
    }

    fn emit_to_vec(repr: &TcpRepr, payload: &[u8], mode: TxChecksum) -> Vec<u8> {
        let mut buf = vec![0u8; repr.header_len() + payload.len()];
        buf[repr.header_len()..].copy_from_slice(payload);
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), SRC, DST, mode);
        buf
    }

    #[test]
    fn parse_linux_syn() {
        let p = TcpPacket::new_checked(&LINUX_SYN[..]).unwrap();
        assert_eq!(p.src_port(), 46066);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), SeqNumber(0x5c9a_3e21));
        assert_eq!(p.ack_number(), SeqNumber(0));
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), TcpFlags::SYN);
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.checksum(), 0xb3b6);
        assert_eq!(p.urgent_at(), 0);
        assert_eq!(p.options(), &LINUX_SYN[20..]);
        assert!(p.payload().is_empty());
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(DST, Ipv4Addr::new(10, 0, 0, 3)));
        let repr = TcpRepr::parse(&p, SRC, DST, true).unwrap();
        assert_eq!(repr, syn_repr());
        assert_eq!(repr.segment_len(), 1);
        assert!(!repr.is_ack_only());
    }

    #[test]
    fn emit_syn() {
        let repr = syn_repr();
        assert_eq!(repr.header_len(), 40);
        let buf = emit_to_vec(&repr, &[], TxChecksum::Full);
        assert_eq!(&buf[..16], &LINUX_SYN[..16]);
        assert_eq!(&buf[18..20], &[0, 0]);
        // Our layout: MSS; NOP, WS; SACK-permitted packed with timestamps.
        assert_eq!(
            &buf[20..],
            &[
                0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x07, 0x04, 0x02, 0x08, 0x0a, 0x0a, 0x1b,
                0x2c, 0x3d, 0x00, 0x00, 0x00, 0x00
            ]
        );
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p, SRC, DST, true), Ok(repr));
    }

    #[test]
    fn ack_with_sack_blocks() {
        let block = |l: u32| Some((SeqNumber(l), SeqNumber(l + 100)));
        let repr = TcpRepr {
            flags: TcpFlags::ACK,
            ack_number: Some(SeqNumber(1000)),
            timestamp: Some(TcpTimestamp { tsval: 5, tsecr: 6 }),
            sack_ranges: [block(2000), block(3000), block(4000), block(5000)],
            payload_len: 3,
            ..TcpRepr::default()
        };
        // 12 bytes of timestamps leave room for 3 blocks (RFC 2018 §3).
        assert_eq!(repr.sack_blocks_to_emit(), 3);
        assert_eq!(repr.header_len(), 60);
        let buf = emit_to_vec(&repr, b"abc", TxChecksum::Full);
        assert_eq!(&buf[32..36], &[1, 1, 5, 26]);
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload(), b"abc");
        let parsed = TcpRepr::parse(&p, SRC, DST, true).unwrap();
        let mut expected = repr;
        expected.sack_ranges[3] = None;
        assert_eq!(parsed, expected);
        assert!(!parsed.is_ack_only());

        let without_ts = TcpRepr {
            timestamp: None,
            ..repr
        };
        assert_eq!(without_ts.sack_blocks_to_emit(), 4);
        assert_eq!(without_ts.header_len(), 56);
        let pure_ack = TcpRepr {
            payload_len: 0,
            ..without_ts
        };
        assert!(pure_ack.is_ack_only());
    }

    #[test]
    fn ack_flag_follows_ack_number() {
        let repr = TcpRepr {
            flags: TcpFlags::ACK | TcpFlags::FIN,
            ..TcpRepr::default()
        };
        let buf = emit_to_vec(&repr, &[], TxChecksum::Full);
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(p.flags(), TcpFlags::FIN);
        let parsed = TcpRepr::parse(&p, SRC, DST, true).unwrap();
        assert_eq!(parsed.ack_number, None);
    }

    #[test]
    fn checksum_offload() {
        let repr = TcpRepr {
            ack_number: Some(SeqNumber(7)),
            payload_len: 5,
            ..syn_repr()
        };
        let full = emit_to_vec(&repr, b"hello", TxChecksum::Full);
        let partial = emit_to_vec(&repr, b"hello", TxChecksum::PseudoHeaderOnly);
        let total = (repr.header_len() + 5) as u32;
        let p = TcpPacket::new_checked(&partial[..]).unwrap();
        assert_eq!(p.checksum(), checksum::pseudo_header(SRC, DST, 6, total));
        // What the device does: sum the segment (pseudo sum in the field) and complement.
        let offloaded = checksum::finish(checksum::data(&partial));
        assert_eq!(offloaded.to_be_bytes(), [full[16], full[17]]);
        let none = emit_to_vec(&repr, b"hello", TxChecksum::None);
        assert_eq!(&none[16..18], &[0, 0]);
    }

    #[test]
    fn truncated_and_malformed() {
        for len in 0..LINUX_SYN.len() {
            assert_eq!(
                TcpPacket::new_checked(&LINUX_SYN[..len]),
                Err(Error::Truncated)
            );
        }
        for offset in 0..5u8 {
            let mut buf = LINUX_SYN;
            buf[12] = offset << 4;
            assert_eq!(TcpPacket::new_checked(&buf[..]), Err(Error::Malformed));
        }
    }

    #[test]
    fn malformed_options() {
        let bad_options: [&[u8]; 9] = [
            &[2, 3, 5, 0],              // MSS with length 3
            &[2, 5, 5, 0xb4],           // MSS with length 5, past the area
            &[3, 4, 7, 0],              // window scale with length 4
            &[4, 3, 0, 0],              // SACK-permitted with length 3
            &[1, 1, 8, 9, 0, 0, 0, 0],  // timestamps with length 9
            &[5, 12, 0, 0, 0, 0, 0, 0], // SACK with a partial block
            &[0x99, 1, 0, 0],           // length below 2
            &[0x99, 0, 0, 0],           // length 0
            &[1, 1, 1, 0x99],           // no room for the length byte
        ];
        for options in bad_options {
            let mut bytes = LINUX_SYN[..20].to_vec();
            bytes[12] = (((20 + options.len()) / 4) << 4) as u8;
            bytes.extend_from_slice(options);
            let bytes = refilled(bytes);
            let p = TcpPacket::new_checked(&bytes[..]).unwrap();
            assert_eq!(
                TcpRepr::parse(&p, SRC, DST, true),
                Err(Error::Malformed),
                "{options:?}"
            );
        }
    }

    #[test]
    fn of_several_mss_options_the_smallest_counts() {
        // MSS 550, 505, 515 in one option list.
        let options = [2, 4, 0x02, 0x26, 2, 4, 0x01, 0xf9, 2, 4, 0x02, 0x03];
        let mut bytes = LINUX_SYN[..20].to_vec();
        bytes[12] = 0x80;
        bytes.extend_from_slice(&options);
        let bytes = refilled(bytes);
        let p = TcpPacket::new_checked(&bytes[..]).unwrap();
        let repr = TcpRepr::parse(&p, SRC, DST, true).unwrap();
        assert_eq!(repr.max_seg_size, Some(505));
    }

    #[test]
    fn option_edge_cases() {
        // Unknown options are skipped; nothing after EOL is parsed; window scale is clamped.
        let options = [0x1e, 4, 0xaa, 0xbb, 3, 3, 15, 0, 0xff, 0xff, 0xff, 0xff];
        let mut bytes = LINUX_SYN[..20].to_vec();
        bytes[12] = 0x80;
        bytes.extend_from_slice(&options);
        let bytes = refilled(bytes);
        let p = TcpPacket::new_checked(&bytes[..]).unwrap();
        let repr = TcpRepr::parse(&p, SRC, DST, true).unwrap();
        assert_eq!(repr.window_scale, Some(14));
        assert_eq!(repr.max_seg_size, None);
    }

    #[test]
    fn bad_checksum() {
        let mut buf = LINUX_SYN;
        buf[15] ^= 1;
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p, SRC, DST, true), Err(Error::BadChecksum));
        assert_eq!(
            TcpRepr::parse(&p, SRC, DST, false).unwrap().window_len,
            64241
        );
    }

    prop_compose! {
        fn arb_repr()(ports in any::<(u16, u16)>(), flags in any::<u8>(),
                      seq in any::<u32>(), ack in proptest::option::of(any::<u32>()),
                      window_urgent in any::<(u16, u16)>(),
                      mss in proptest::option::of(any::<u16>()),
                      window_scale in proptest::option::of(0u8..=14),
                      sack_permitted in any::<bool>(),
                      timestamp in proptest::option::of(any::<(u32, u32)>()),
                      sacks in proptest::collection::vec(any::<(u32, u32)>(), 0..=MAX_SACK_BLOCKS),
                      payload_len in 0usize..64) -> TcpRepr {
            let mut flags = TcpFlags(flags & !TcpFlags::ACK.0);
            if ack.is_some() {
                flags |= TcpFlags::ACK;
            }
            let mut sack_ranges = [None; MAX_SACK_BLOCKS];
            for (slot, (l, r)) in sack_ranges.iter_mut().zip(sacks) {
                *slot = Some((SeqNumber(l), SeqNumber(r)));
            }
            TcpRepr {
                src_port: ports.0,
                dst_port: ports.1,
                flags,
                seq_number: SeqNumber(seq),
                ack_number: ack.map(SeqNumber),
                window_len: window_urgent.0,
                urgent_pointer: window_urgent.1,
                max_seg_size: mss,
                window_scale,
                sack_permitted,
                sack_ranges,
                timestamp: timestamp.map(|(tsval, tsecr)| TcpTimestamp { tsval, tsecr }),
                payload_len,
            }
        }
    }

    proptest! {
        #[test]
        fn roundtrip(repr in arb_repr(), fill in any::<u8>()) {
            let payload: Vec<u8> = (0..repr.payload_len).map(|i| fill ^ i as u8).collect();
            prop_assert!(repr.header_len() <= 60 && repr.header_len() % 4 == 0);
            let buf = emit_to_vec(&repr, &payload, TxChecksum::Full);
            let p = TcpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(p.payload(), &payload[..]);
            let mut expected = repr;
            for slot in &mut expected.sack_ranges[repr.sack_blocks_to_emit()..] {
                *slot = None;
            }
            prop_assert_eq!(TcpRepr::parse(&p, SRC, DST, true), Ok(expected));
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = TcpPacket::new_checked(&bytes[..]) {
                let _ = TcpRepr::parse(&p, SRC, DST, true);
                let _ = TcpRepr::parse(&p, SRC, DST, false);
                let _ = (p.options(), p.payload());
            }
        }

        #[test]
        fn random_options_never_panic(words in 0usize..=10, options in any::<[u8; 40]>()) {
            let mut bytes = LINUX_SYN[..20].to_vec();
            bytes[12] = ((5 + words) << 4) as u8;
            bytes.extend_from_slice(&options[..words * 4]);
            let p = TcpPacket::new_checked(&bytes[..]).unwrap();
            if let Ok(repr) = TcpRepr::parse(&p, SRC, DST, false) {
                prop_assert!(repr.window_scale.unwrap_or(0) <= 14);
            }
        }
    }
}
