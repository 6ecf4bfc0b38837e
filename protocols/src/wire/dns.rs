//! DNS messages (RFC 1035 §4): header, questions and resource records, with name compression.
//!
//! [`DnsPacket`] is a view of the fixed 12-byte header (enough to match an ID or see the TC bit
//! of a message that does not parse in full, e.g. a truncated UDP answer). [`DnsRepr`] is the
//! whole message, parsed into owned sections: DNS is not a fixed layout, so unlike the other
//! formats its records are copied out. A, AAAA, CNAME, NS, PTR and SOA data are decoded (their
//! names decompressed); every other type is kept as raw bytes.
//!
//! Parsing never panics and never loops: a compression pointer must point strictly backwards
//! (RFC 1035 §4.1.4 only allows pointers to a "prior occurrence"), at most
//! [`MAX_POINTER_HOPS`] are followed per name, and a name is at most [`MAX_NAME_LEN`] bytes in
//! wire form. Section counts are not trusted for allocation.
//!
//! Emitting compresses every name (owner names and names inside the decoded record types) against
//! the suffixes already written, matching bytes exactly, so that `parse(emit(x)) == x`.

use super::bytes::{be16, be32, copy, get, get_mut};
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
use core::str::FromStr;
use std::collections::HashMap;

use super::{Error, Result};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 12;
/// The largest name in wire form, length octets included (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// The largest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Compression pointers followed per name before the name is rejected.
pub const MAX_POINTER_HOPS: usize = 32;
/// The largest message over UDP without EDNS (RFC 1035 §4.2.1).
pub const MAX_UDP_LEN: usize = 512;
/// DNS's port.
pub const PORT: u16 = 53;

mod field {
    use core::ops::Range;
    pub const ID: Range<usize> = 0..2;
    pub const FLAGS: Range<usize> = 2..4;
    pub const QDCOUNT: Range<usize> = 4..6;
    pub const ANCOUNT: Range<usize> = 6..8;
    pub const NSCOUNT: Range<usize> = 8..10;
    pub const ARCOUNT: Range<usize> = 10..12;
}

/// Header flag bits (RFC 1035 §4.1.1; AD and CD from RFC 4035 §3.2).
mod bits {
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
    pub const Z: u16 = 0x0040;
    pub const AD: u16 = 0x0020;
    pub const CD: u16 = 0x0010;
}

macro_rules! enum_with_unknown {
    ($(#[$m:meta])* pub enum $name:ident($ty:ty) { $($(#[$vm:meta])* $variant:ident = $value:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant,)+
            Unknown($ty),
        }
        impl From<$ty> for $name {
            fn from(v: $ty) -> Self {
                match v {
                    $($value => $name::$variant,)+
                    other => $name::Unknown(other),
                }
            }
        }
        impl From<$name> for $ty {
            fn from(v: $name) -> $ty {
                match v {
                    $($name::$variant => $value,)+
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

enum_with_unknown! {
    /// OPCODE (4 bits).
    pub enum Opcode(u8) { Query = 0, Status = 2, Notify = 4, Update = 5 }
}

enum_with_unknown! {
    /// RCODE (4 bits; extended RCODEs need EDNS, which this module does not decode).
    pub enum Rcode(u8) {
        NoError = 0, FormErr = 1, ServFail = 2, NxDomain = 3, NotImp = 4, Refused = 5,
    }
}

enum_with_unknown! {
    /// Resource record TYPE.
    pub enum Type(u16) {
        A = 1, Ns = 2, Cname = 5, Soa = 6, Ptr = 12, Mx = 15, Txt = 16, Aaaa = 28, Opt = 41,
        Any = 255,
    }
}

enum_with_unknown! {
    /// Resource record CLASS.
    pub enum Class(u16) { In = 1, Ch = 3, Any = 255 }
}

/// A domain name as a list of labels (without the root's empty label). Comparison with `==` is
/// byte-exact; DNS compares names ignoring ASCII case ([`Name::eq_ignore_case`]).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Name {
    labels: Vec<Vec<u8>>,
}

/// Why a string is not a domain name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("label longer than 63 bytes")]
    LabelTooLong,
    #[error("name longer than 255 bytes")]
    NameTooLong,
}

impl Name {
    /// The root name `.`.
    pub fn root() -> Name {
        Name::default()
    }

    /// A name from its labels; each must be 1..=63 bytes and the whole at most 255 in wire form.
    pub fn from_labels<I, L>(labels: I) -> core::result::Result<Name, NameError>
    where
        I: IntoIterator<Item = L>,
        L: AsRef<[u8]>,
    {
        let mut name = Name::default();
        let mut wire_len = 1;
        for l in labels {
            let l = l.as_ref();
            if l.is_empty() {
                return Err(NameError::EmptyLabel);
            }
            if l.len() > MAX_LABEL_LEN {
                return Err(NameError::LabelTooLong);
            }
            wire_len += 1 + l.len();
            if wire_len > MAX_NAME_LEN {
                return Err(NameError::NameTooLong);
            }
            name.labels.push(l.to_vec());
        }
        Ok(name)
    }

    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        self.labels.iter().map(|l| &l[..])
    }

    pub fn is_root(&self) -> bool {
        self.labels.is_empty()
    }

    /// Length in wire form, uncompressed.
    pub fn wire_len(&self) -> usize {
        1 + self.labels.iter().map(|l| 1 + l.len()).sum::<usize>()
    }

    /// DNS name equality: ASCII case does not matter (RFC 4343).
    pub fn eq_ignore_case(&self, other: &Name) -> bool {
        self.labels.len() == other.labels.len()
            && self
                .labels
                .iter()
                .zip(&other.labels)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }

    /// The name with ASCII letters lowered: a key for maps that must ignore case.
    pub fn to_lowercase(&self) -> Name {
        Name {
            labels: self.labels.iter().map(|l| l.to_ascii_lowercase()).collect(),
        }
    }
}

impl FromStr for Name {
    type Err = NameError;
    /// `www.example.com` or `www.example.com.`; `.` is the root. No escapes.
    fn from_str(s: &str) -> core::result::Result<Name, NameError> {
        let s = s.strip_suffix('.').unwrap_or(s);
        if s.is_empty() {
            return Ok(Name::root());
        }
        Name::from_labels(s.split('.'))
    }
}

impl fmt::Display for Name {
    /// Dotted, without the trailing dot; bytes outside printable ASCII and dots inside a label
    /// are written as `\DDD` (RFC 1035 §5.1).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.labels.is_empty() {
            return f.write_str(".");
        }
        for (i, l) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            for &b in l {
                if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                    write!(f, "{}", b as char)?;
                } else {
                    write!(f, "\\{b:03}")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// The header's flag word, split out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// A response (not a query).
    pub response: bool,
    pub opcode: Opcode,
    pub authoritative: bool,
    /// TC: the message was cut to fit the transport; retry over TCP (RFC 7766).
    pub truncated: bool,
    pub recursion_desired: bool,
    pub recursion_available: bool,
    /// The reserved Z bit, kept so that a parsed message emits unchanged.
    pub z: bool,
    pub authentic_data: bool,
    pub checking_disabled: bool,
    pub rcode: Rcode,
}

// The enums come from a macro that cannot derive Default for some and not others.
#[allow(clippy::derivable_impls)]
impl Default for Opcode {
    fn default() -> Self {
        Opcode::Query
    }
}

#[allow(clippy::derivable_impls)]
impl Default for Rcode {
    fn default() -> Self {
        Rcode::NoError
    }
}

impl From<u16> for Flags {
    fn from(v: u16) -> Flags {
        Flags {
            response: v & bits::QR != 0,
            opcode: Opcode::from(((v >> 11) & 0xf) as u8),
            authoritative: v & bits::AA != 0,
            truncated: v & bits::TC != 0,
            recursion_desired: v & bits::RD != 0,
            recursion_available: v & bits::RA != 0,
            z: v & bits::Z != 0,
            authentic_data: v & bits::AD != 0,
            checking_disabled: v & bits::CD != 0,
            rcode: Rcode::from((v & 0xf) as u8),
        }
    }
}

impl From<Flags> for u16 {
    fn from(f: Flags) -> u16 {
        let b = |on: bool, bit: u16| if on { bit } else { 0 };
        b(f.response, bits::QR)
            | (u16::from(u8::from(f.opcode) & 0xf) << 11)
            | b(f.authoritative, bits::AA)
            | b(f.truncated, bits::TC)
            | b(f.recursion_desired, bits::RD)
            | b(f.recursion_available, bits::RA)
            | b(f.z, bits::Z)
            | b(f.authentic_data, bits::AD)
            | b(f.checking_disabled, bits::CD)
            | u16::from(u8::from(f.rcode) & 0xf)
    }
}

/// A view of a DNS message's fixed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> DnsPacket<T> {
    pub fn new_unchecked(buffer: T) -> DnsPacket<T> {
        DnsPacket { buffer }
    }

    /// Checks that the 12-byte header is there; the rest is checked by [`DnsRepr::parse`].
    pub fn new_checked(buffer: T) -> Result<DnsPacket<T>> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(DnsPacket { buffer })
    }

    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        be16(get(self.buffer.as_ref(), r))
    }

    pub fn id(&self) -> u16 {
        self.u16_at(field::ID)
    }
    pub fn flags(&self) -> Flags {
        Flags::from(self.u16_at(field::FLAGS))
    }
    pub fn question_count(&self) -> u16 {
        self.u16_at(field::QDCOUNT)
    }
    pub fn answer_count(&self) -> u16 {
        self.u16_at(field::ANCOUNT)
    }
    pub fn authority_count(&self) -> u16 {
        self.u16_at(field::NSCOUNT)
    }
    pub fn additional_count(&self) -> u16 {
        self.u16_at(field::ARCOUNT)
    }
    /// The whole message.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> DnsPacket<T> {
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        copy(get_mut(self.buffer.as_mut(), r), &v.to_be_bytes());
    }
    pub fn set_id(&mut self, v: u16) {
        self.set_u16_at(field::ID, v);
    }
    pub fn set_flags(&mut self, v: Flags) {
        self.set_u16_at(field::FLAGS, v.into());
    }
}

/// One entry of the question section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub name: Name,
    pub qtype: Type,
    pub qclass: Class,
}

/// SOA data (RFC 1035 §3.3.13); `minimum` bounds negative caching (RFC 2308 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    pub mname: Name,
    pub rname: Name,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

/// Record data: decoded for the types the resolver uses, raw for the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(Name),
    Ns(Name),
    Ptr(Name),
    Soa(Soa),
    /// Any other type, its RDATA as received (names in it, if any, left compressed: such data
    /// is only meaningful inside the message it came in).
    Other {
        rtype: Type,
        data: Vec<u8>,
    },
}

impl RecordData {
    pub fn rtype(&self) -> Type {
        match self {
            RecordData::A(_) => Type::A,
            RecordData::Aaaa(_) => Type::Aaaa,
            RecordData::Cname(_) => Type::Cname,
            RecordData::Ns(_) => Type::Ns,
            RecordData::Ptr(_) => Type::Ptr,
            RecordData::Soa(_) => Type::Soa,
            RecordData::Other { rtype, .. } => *rtype,
        }
    }
}

/// A resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: Name,
    pub class: Class,
    pub ttl: u32,
    pub data: RecordData,
}

/// A whole DNS message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsRepr {
    pub id: u16,
    pub flags: Flags,
    pub questions: Vec<Question>,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

/// A read cursor over a whole message (names point anywhere before themselves).
struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated)?;
        let s = self.msg.get(self.pos..end).ok_or(Error::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(be16(self.take(2)?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(be32(self.take(4)?))
    }

    /// Reads a possibly compressed name at the cursor; the cursor ends after the name's bytes at
    /// this position (after the first pointer, if any).
    fn name(&mut self) -> Result<Name> {
        let mut labels = Vec::new();
        let mut wire_len = 1usize;
        let mut pos = self.pos;
        let mut end_of_first: Option<usize> = None;
        let mut hops = 0;
        loop {
            let len = *self.msg.get(pos).ok_or(Error::Truncated)?;
            match len & 0xc0 {
                0x00 => {
                    if len == 0 {
                        pos += 1;
                        break;
                    }
                    let l = usize::from(len);
                    let label = self.msg.get(pos + 1..pos + 1 + l).ok_or(Error::Truncated)?;
                    wire_len += 1 + l;
                    if wire_len > MAX_NAME_LEN {
                        return Err(Error::Malformed);
                    }
                    labels.push(label.to_vec());
                    pos += 1 + l;
                }
                0xc0 => {
                    let lo = *self.msg.get(pos + 1).ok_or(Error::Truncated)?;
                    let target = usize::from(u16::from_be_bytes([len & 0x3f, lo]));
                    // Only backwards: this alone rules out loops (RFC 1035 §4.1.4).
                    if target >= pos {
                        return Err(Error::Malformed);
                    }
                    hops += 1;
                    if hops > MAX_POINTER_HOPS {
                        return Err(Error::Malformed);
                    }
                    end_of_first.get_or_insert(pos + 2);
                    pos = target;
                }
                // 0x40 and 0x80: extended label types (RFC 6891 §5), unsupported.
                _ => return Err(Error::Malformed),
            }
        }
        self.pos = end_of_first.unwrap_or(pos);
        Ok(Name { labels })
    }

    fn question(&mut self) -> Result<Question> {
        Ok(Question {
            name: self.name()?,
            qtype: Type::from(self.u16()?),
            qclass: Class::from(self.u16()?),
        })
    }

    fn record(&mut self) -> Result<Record> {
        let name = self.name()?;
        let rtype = Type::from(self.u16()?);
        let class = Class::from(self.u16()?);
        let ttl = self.u32()?;
        let rdlen = usize::from(self.u16()?);
        let start = self.pos;
        let raw = self.take(rdlen)?;
        let end = self.pos;
        // Names inside RDATA may point anywhere earlier in the message; read them with a
        // cursor over the whole message, then check that they ended exactly at RDATA's end.
        let mut sub = Reader {
            msg: self.msg,
            pos: start,
        };
        let data = match rtype {
            Type::A => RecordData::A(Ipv4Addr::from(
                <[u8; 4]>::try_from(raw).map_err(|_| Error::Malformed)?,
            )),
            Type::Aaaa => RecordData::Aaaa(Ipv6Addr::from(
                <[u8; 16]>::try_from(raw).map_err(|_| Error::Malformed)?,
            )),
            Type::Cname | Type::Ns | Type::Ptr => {
                let n = sub.name()?;
                if sub.pos != end {
                    return Err(Error::Malformed);
                }
                match rtype {
                    Type::Cname => RecordData::Cname(n),
                    Type::Ns => RecordData::Ns(n),
                    _ => RecordData::Ptr(n),
                }
            }
            Type::Soa => {
                let soa = Soa {
                    mname: sub.name()?,
                    rname: sub.name()?,
                    serial: sub.u32()?,
                    refresh: sub.u32()?,
                    retry: sub.u32()?,
                    expire: sub.u32()?,
                    minimum: sub.u32()?,
                };
                if sub.pos != end {
                    return Err(Error::Malformed);
                }
                RecordData::Soa(soa)
            }
            _ => RecordData::Other {
                rtype,
                data: raw.to_vec(),
            },
        };
        Ok(Record {
            name,
            class,
            ttl,
            data,
        })
    }
}

/// A write cursor that compresses names against suffixes already written.
struct Writer {
    out: Vec<u8>,
    /// Suffix (as its labels) -> offset of its first byte. Offsets past 0x3fff cannot be pointed at.
    suffixes: HashMap<Vec<Vec<u8>>, u16>,
}

impl Writer {
    fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    fn name(&mut self, name: &Name) {
        let labels = &name.labels;
        for (i, label) in labels.iter().enumerate() {
            let suffix = labels.get(i..).unwrap_or_default();
            if let Some(&off) = self.suffixes.get(suffix) {
                self.u16(0xc000 | off);
                return;
            }
            if let Ok(off) = u16::try_from(self.out.len()) {
                if off <= 0x3fff {
                    self.suffixes.insert(suffix.to_vec(), off);
                }
            }
            self.out.push(label.len() as u8);
            self.out.extend_from_slice(label);
        }
        self.out.push(0);
    }

    fn record(&mut self, r: &Record) {
        self.name(&r.name);
        self.u16(r.data.rtype().into());
        self.u16(r.class.into());
        self.u32(r.ttl);
        let len_at = self.out.len();
        self.u16(0);
        match &r.data {
            RecordData::A(a) => self.out.extend_from_slice(&a.octets()),
            RecordData::Aaaa(a) => self.out.extend_from_slice(&a.octets()),
            RecordData::Cname(n) | RecordData::Ns(n) | RecordData::Ptr(n) => self.name(n),
            RecordData::Soa(s) => {
                self.name(&s.mname);
                self.name(&s.rname);
                for v in [s.serial, s.refresh, s.retry, s.expire, s.minimum] {
                    self.u32(v);
                }
            }
            RecordData::Other { data, .. } => self.out.extend_from_slice(data),
        }
        let rdlen = (self.out.len() - len_at - 2).min(usize::from(u16::MAX)) as u16;
        copy(get_mut(&mut self.out, len_at..), &rdlen.to_be_bytes());
    }
}

impl DnsRepr {
    /// A recursive query for one name and type, class IN.
    pub fn query(id: u16, name: Name, qtype: Type) -> DnsRepr {
        DnsRepr {
            id,
            flags: Flags {
                recursion_desired: true,
                ..Flags::default()
            },
            questions: vec![Question {
                name,
                qtype,
                qclass: Class::In,
            }],
            ..DnsRepr::default()
        }
    }

    /// Parses a whole message. Bytes after the last record are ignored.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &DnsPacket<&T>) -> Result<DnsRepr> {
        let msg = packet.as_bytes();
        if msg.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let mut r = Reader {
            msg,
            pos: HEADER_LEN,
        };
        let mut repr = DnsRepr {
            id: packet.id(),
            flags: packet.flags(),
            ..DnsRepr::default()
        };
        // Counts are only loop bounds: a lying count runs out of bytes, it never allocates.
        for _ in 0..packet.question_count() {
            repr.questions.push(r.question()?);
        }
        for _ in 0..packet.answer_count() {
            repr.answers.push(r.record()?);
        }
        for _ in 0..packet.authority_count() {
            repr.authorities.push(r.record()?);
        }
        for _ in 0..packet.additional_count() {
            repr.additionals.push(r.record()?);
        }
        Ok(repr)
    }

    /// The message in wire form, names compressed. Sections longer than 65535 entries, or a
    /// record's data longer than 65535 bytes, are the caller's mistake and are cut.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer {
            out: Vec::with_capacity(MAX_UDP_LEN),
            suffixes: HashMap::new(),
        };
        let count = |n: usize| n.min(usize::from(u16::MAX)) as u16;
        w.u16(self.id);
        w.u16(self.flags.into());
        w.u16(count(self.questions.len()));
        w.u16(count(self.answers.len()));
        w.u16(count(self.authorities.len()));
        w.u16(count(self.additionals.len()));
        for q in self.questions.iter().take(usize::from(u16::MAX)) {
            w.name(&q.name);
            w.u16(q.qtype.into());
            w.u16(q.qclass.into());
        }
        for section in [&self.answers, &self.authorities, &self.additionals] {
            for rec in section.iter().take(usize::from(u16::MAX)) {
                w.record(rec);
            }
        }
        w.out
    }

    /// Length of [`DnsRepr::to_bytes`].
    pub fn buffer_len(&self) -> usize {
        self.to_bytes().len()
    }

    /// Writes the message at the start of `buf`, returning its length, or `Truncated` when it
    /// does not fit.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let bytes = self.to_bytes();
        let dst = buf.get_mut(..bytes.len()).ok_or(Error::Truncated)?;
        dst.copy_from_slice(&bytes);
        Ok(bytes.len())
    }
}

#[cfg(test)]
mod tests;
