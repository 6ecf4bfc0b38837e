//! TCP segments (RFC 9293 §3.1) and options (MSS, window scale and timestamps from RFC 7323,
//! SACK-permitted and SACK blocks from RFC 2018).

use core::cmp::Ordering;
use core::fmt;
use core::net::Ipv4Addr;
use core::ops::{Add, AddAssign, Sub};

use super::checksum;
use super::{Error, Result, TxChecksum};

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
                TcpOption::MaxSegmentSize(mss) => repr.max_seg_size = Some(mss),
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
        packet.buffer.as_mut()[field::OFF_NS] = 0;
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
                let sum = checksum::data(&packet.buffer.as_ref()[..total]);
                packet.set_checksum(checksum::finish(checksum::combine(&[pseudo, sum])));
            }
            TxChecksum::PseudoHeaderOnly => packet.set_checksum(pseudo),
            TxChecksum::None => {}
        }
    }

    fn emit_options(&self, buf: &mut [u8]) {
        let mut at = 0;
        let mut put = |option: TcpOption<'_>, at: &mut usize| {
            *at += option.emit(&mut buf[*at..]);
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
            ranges[..sacks].copy_from_slice(&self.sack_ranges[..sacks]);
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

fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
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
        let data = &buffer[2..len];
        let option = match (kind, len) {
            (kind::MSS, 4) => TcpOption::MaxSegmentSize(be_u16(data)),
            (kind::WS, 3) => TcpOption::WindowScale(data[0]),
            (kind::SACK_PERM, 2) => TcpOption::SackPermitted,
            (kind::SACK_RANGE, 10 | 18 | 26 | 34) => {
                let mut ranges = [None; MAX_SACK_BLOCKS];
                for (slot, block) in ranges.iter_mut().zip(data.chunks_exact(8)) {
                    *slot = Some((SeqNumber(be_u32(block)), SeqNumber(be_u32(&block[4..]))));
                }
                TcpOption::SackRange(ranges)
            }
            (kind::TSTAMP, 10) => TcpOption::Timestamps(TcpTimestamp {
                tsval: be_u32(data),
                tsecr: be_u32(&data[4..]),
            }),
            (kind::MSS | kind::WS | kind::SACK_PERM | kind::SACK_RANGE | kind::TSTAMP, _) => {
                return Err(Error::Malformed)
            }
            (kind, _) => TcpOption::Unknown { kind, data },
        };
        Ok((&buffer[len..], option))
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
                buffer[0] = kind::END;
                return 1;
            }
            TcpOption::NoOperation => {
                buffer[0] = kind::NOP;
                return 1;
            }
            TcpOption::MaxSegmentSize(_) => (kind::MSS, &mut buffer[2..len]),
            TcpOption::WindowScale(_) => (kind::WS, &mut buffer[2..len]),
            TcpOption::SackPermitted => (kind::SACK_PERM, &mut buffer[2..len]),
            TcpOption::SackRange(_) => (kind::SACK_RANGE, &mut buffer[2..len]),
            TcpOption::Timestamps(_) => (kind::TSTAMP, &mut buffer[2..len]),
            TcpOption::Unknown { kind, .. } => (*kind, &mut buffer[2..len]),
        };
        match self {
            TcpOption::MaxSegmentSize(mss) => data.copy_from_slice(&mss.to_be_bytes()),
            TcpOption::WindowScale(shift) => data[0] = *shift,
            TcpOption::SackRange(ranges) => {
                for (block, (left, right)) in data.chunks_exact_mut(8).zip(ranges.iter().flatten())
                {
                    block[..4].copy_from_slice(&left.0.to_be_bytes());
                    block[4..].copy_from_slice(&right.0.to_be_bytes());
                }
            }
            TcpOption::Timestamps(ts) => {
                data[..4].copy_from_slice(&ts.tsval.to_be_bytes());
                data[4..].copy_from_slice(&ts.tsecr.to_be_bytes());
            }
            TcpOption::Unknown { data: bytes, .. } => data.copy_from_slice(bytes),
            TcpOption::EndOfList | TcpOption::NoOperation | TcpOption::SackPermitted => {}
        }
        buffer[0] = kind;
        buffer[1] = len as u8;
        len
    }
}

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
        be_u16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    pub fn dst_port(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::DST_PORT])
    }

    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(be_u32(&self.buffer.as_ref()[field::SEQ_NUM]))
    }

    /// The acknowledgment field, meaningful only when ACK is set.
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(be_u32(&self.buffer.as_ref()[field::ACK_NUM]))
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::OFF_NS] >> 4) * 4
    }

    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    pub fn window_len(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::WIN_SIZE])
    }

    pub fn checksum(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    pub fn urgent_at(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::URGENT])
    }

    /// The options area, `20..header_len`.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// Everything after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
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
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_src_port(&mut self, v: u16) {
        self.set_u16_at(field::SRC_PORT, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        self.set_u16_at(field::DST_PORT, v);
    }

    pub fn set_seq_number(&mut self, v: SeqNumber) {
        self.buffer.as_mut()[field::SEQ_NUM].copy_from_slice(&v.0.to_be_bytes());
    }

    pub fn set_ack_number(&mut self, v: SeqNumber) {
        self.buffer.as_mut()[field::ACK_NUM].copy_from_slice(&v.0.to_be_bytes());
    }

    /// Sets the data offset from a length in bytes (a multiple of 4, 20..=60), keeping the
    /// reserved bits.
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::OFF_NS];
        *b = (*b & 0x0f) | (((len / 4) as u8) << 4);
    }

    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
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
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
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
