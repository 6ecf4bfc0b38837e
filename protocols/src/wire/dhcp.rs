//! DHCP messages (RFC 2131 §2, options from RFC 2132) over Ethernet.
//!
//! [`DhcpPacket`] views the fixed BOOTP part (236 bytes) and the magic cookie; [`DhcpRepr`] is
//! the parsed message with the options a client uses decoded into fields and every other option
//! kept as `(code, data)`. An option that appears several times is one option whose data is the
//! concatenation (RFC 3396); on emit, data longer than 255 bytes is split the same way. Option
//! overload (option 52: more options in `sname`/`file`) is not decoded. Parsing never panics.

use super::bytes::{array, be16, be32, copy, get, get_mut, set_u8, u8_at};
use core::net::Ipv4Addr;

use super::{Error, EthernetAddress, Result};

/// The server's port.
pub const SERVER_PORT: u16 = 67;
/// The client's port.
pub const CLIENT_PORT: u16 = 68;
/// RFC 2131 §3: 99.130.83.99.
pub const MAGIC_COOKIE: u32 = 0x6382_5363;
/// The BOOTP fixed part, before the cookie.
const FIXED_LEN: usize = 236;
/// Fixed part and cookie: where the options start.
pub const OPTIONS_OFFSET: usize = FIXED_LEN + 4;
/// Emitted messages are padded to the 300-byte BOOTP minimum (RFC 1542 §3.5), which some relays
/// and servers insist on.
pub const MIN_EMIT_LEN: usize = 300;

mod field {
    use core::ops::Range;
    pub const OP: usize = 0;
    pub const HTYPE: usize = 1;
    pub const HLEN: usize = 2;
    pub const HOPS: usize = 3;
    pub const XID: Range<usize> = 4..8;
    pub const SECS: Range<usize> = 8..10;
    pub const FLAGS: Range<usize> = 10..12;
    pub const CIADDR: Range<usize> = 12..16;
    pub const YIADDR: Range<usize> = 16..20;
    pub const SIADDR: Range<usize> = 20..24;
    pub const GIADDR: Range<usize> = 24..28;
    pub const CHADDR: Range<usize> = 28..44;
    pub const COOKIE: Range<usize> = 236..240;
}

/// The broadcast bit of `flags` (RFC 2131 §2, figure 2).
const FLAG_BROADCAST: u16 = 0x8000;
/// ARP hardware type of Ethernet.
const HTYPE_ETHERNET: u8 = 1;

/// Option codes (RFC 2132).
pub mod option {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS_SERVERS: u8 = 6;
    pub const HOST_NAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const INTERFACE_MTU: u8 = 26;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const CLIENT_ID: u8 = 61;
    pub const END: u8 = 255;
}

/// BOOTP `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Request,
    Reply,
    Unknown(u8),
}

impl From<u8> for Op {
    fn from(v: u8) -> Op {
        match v {
            1 => Op::Request,
            2 => Op::Reply,
            o => Op::Unknown(o),
        }
    }
}

impl From<Op> for u8 {
    fn from(v: Op) -> u8 {
        match v {
            Op::Request => 1,
            Op::Reply => 2,
            Op::Unknown(o) => o,
        }
    }
}

/// DHCP message type, option 53 (RFC 2132 §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
    Unknown(u8),
}

impl From<u8> for MessageType {
    fn from(v: u8) -> Self {
        match v {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            o => MessageType::Unknown(o),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(v: MessageType) -> u8 {
        match v {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
            MessageType::Unknown(o) => o,
        }
    }
}

/// A view of a DHCP message: BOOTP fixed part, cookie, options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> DhcpPacket<T> {
    pub fn new_unchecked(buffer: T) -> DhcpPacket<T> {
        DhcpPacket { buffer }
    }

    /// Checks that the fixed part and cookie are there and the cookie is DHCP's (a plain BOOTP
    /// message is `Unsupported`).
    pub fn new_checked(buffer: T) -> Result<DhcpPacket<T>> {
        let p = DhcpPacket { buffer };
        if p.buffer.as_ref().len() < OPTIONS_OFFSET {
            return Err(Error::Truncated);
        }
        if p.cookie() != MAGIC_COOKIE {
            return Err(Error::Unsupported);
        }
        Ok(p)
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    fn addr(&self, r: core::ops::Range<usize>) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(get(self.b(), r)))
    }

    pub fn op(&self) -> Op {
        Op::from(u8_at(self.b(), field::OP))
    }
    pub fn htype(&self) -> u8 {
        u8_at(self.b(), field::HTYPE)
    }
    pub fn hlen(&self) -> u8 {
        u8_at(self.b(), field::HLEN)
    }
    pub fn hops(&self) -> u8 {
        u8_at(self.b(), field::HOPS)
    }
    pub fn xid(&self) -> u32 {
        be32(get(self.b(), field::XID))
    }
    pub fn secs(&self) -> u16 {
        be16(get(self.b(), field::SECS))
    }
    pub fn flags(&self) -> u16 {
        be16(get(self.b(), field::FLAGS))
    }
    pub fn ciaddr(&self) -> Ipv4Addr {
        self.addr(field::CIADDR)
    }
    pub fn yiaddr(&self) -> Ipv4Addr {
        self.addr(field::YIADDR)
    }
    pub fn siaddr(&self) -> Ipv4Addr {
        self.addr(field::SIADDR)
    }
    pub fn giaddr(&self) -> Ipv4Addr {
        self.addr(field::GIADDR)
    }
    /// The 16-byte `chaddr` field.
    pub fn chaddr(&self) -> &[u8] {
        get(self.b(), field::CHADDR)
    }
    pub fn cookie(&self) -> u32 {
        be32(get(self.b(), field::COOKIE))
    }
    /// The options area, up to the end of the buffer.
    pub fn options(&self) -> &[u8] {
        get(self.b(), OPTIONS_OFFSET..)
    }
}

/// A parsed DHCP message (Ethernet hardware addresses only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpRepr {
    pub op: Op,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    /// Ask the server to broadcast its reply (a client that cannot yet receive unicast).
    pub broadcast: bool,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: EthernetAddress,
    /// Option 53; a message without it is not DHCP (`Malformed`).
    pub message_type: MessageType,
    pub subnet_mask: Option<Ipv4Addr>,
    pub routers: Vec<Ipv4Addr>,
    pub dns_servers: Vec<Ipv4Addr>,
    pub host_name: Option<Vec<u8>>,
    pub domain_name: Option<Vec<u8>>,
    pub interface_mtu: Option<u16>,
    pub requested_ip: Option<Ipv4Addr>,
    /// Seconds; `u32::MAX` is infinite (RFC 2131 §3.3).
    pub lease_time: Option<u32>,
    pub server_id: Option<Ipv4Addr>,
    pub parameter_request_list: Option<Vec<u8>>,
    /// Option 56: why a NAK was sent, for a human.
    pub message: Option<Vec<u8>>,
    pub max_message_size: Option<u16>,
    /// T1, seconds.
    pub renewal_time: Option<u32>,
    /// T2, seconds.
    pub rebinding_time: Option<u32>,
    pub client_id: Option<Vec<u8>>,
    /// Every other option, in order of first appearance.
    pub other_options: Vec<(u8, Vec<u8>)>,
}

impl DhcpRepr {
    /// A message with every option absent and every address zero.
    pub fn new(op: Op, message_type: MessageType, xid: u32, chaddr: EthernetAddress) -> Self {
        DhcpRepr {
            op,
            hops: 0,
            xid,
            secs: 0,
            broadcast: false,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            message_type,
            subnet_mask: None,
            routers: vec![],
            dns_servers: vec![],
            host_name: None,
            domain_name: None,
            interface_mtu: None,
            requested_ip: None,
            lease_time: None,
            server_id: None,
            parameter_request_list: None,
            message: None,
            max_message_size: None,
            renewal_time: None,
            rebinding_time: None,
            client_id: None,
            other_options: vec![],
        }
    }

    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &DhcpPacket<&T>) -> Result<DhcpRepr> {
        if packet.b().len() < OPTIONS_OFFSET {
            return Err(Error::Truncated);
        }
        if packet.cookie() != MAGIC_COOKIE {
            return Err(Error::Unsupported);
        }
        if packet.htype() != HTYPE_ETHERNET || packet.hlen() != 6 {
            return Err(Error::Unsupported);
        }
        // Gather options, concatenating repeats (RFC 3396).
        let mut opts: Vec<(u8, Vec<u8>)> = Vec::new();
        let area = packet.options();
        let mut i = 0;
        while let Some(&code) = area.get(i) {
            match code {
                option::PAD => {
                    i += 1;
                    continue;
                }
                option::END => break,
                _ => {}
            }
            let len = usize::from(*area.get(i + 1).ok_or(Error::Truncated)?);
            let data = area.get(i + 2..i + 2 + len).ok_or(Error::Truncated)?;
            match opts.iter_mut().find(|(c, _)| *c == code) {
                Some((_, d)) => d.extend_from_slice(data),
                None => opts.push((code, data.to_vec())),
            }
            i += 2 + len;
        }
        let c = packet.chaddr();
        let mut repr = DhcpRepr::new(
            packet.op(),
            MessageType::Unknown(0),
            packet.xid(),
            EthernetAddress(array::<6>(c)),
        );
        repr.hops = packet.hops();
        repr.secs = packet.secs();
        repr.broadcast = packet.flags() & FLAG_BROADCAST != 0;
        repr.ciaddr = packet.ciaddr();
        repr.yiaddr = packet.yiaddr();
        repr.siaddr = packet.siaddr();
        repr.giaddr = packet.giaddr();
        let mut message_type = None;
        for (code, data) in opts {
            match code {
                option::MESSAGE_TYPE => message_type = Some(MessageType::from(one_u8(&data)?)),
                option::SUBNET_MASK => repr.subnet_mask = Some(one_addr(&data)?),
                option::ROUTER => repr.routers = addrs(&data)?,
                option::DNS_SERVERS => repr.dns_servers = addrs(&data)?,
                option::HOST_NAME => repr.host_name = Some(data),
                option::DOMAIN_NAME => repr.domain_name = Some(data),
                option::INTERFACE_MTU => repr.interface_mtu = Some(one_u16(&data)?),
                option::REQUESTED_IP => repr.requested_ip = Some(one_addr(&data)?),
                option::LEASE_TIME => repr.lease_time = Some(one_u32(&data)?),
                option::SERVER_ID => repr.server_id = Some(one_addr(&data)?),
                option::PARAMETER_REQUEST_LIST => repr.parameter_request_list = Some(data),
                option::MESSAGE => repr.message = Some(data),
                option::MAX_MESSAGE_SIZE => repr.max_message_size = Some(one_u16(&data)?),
                option::RENEWAL_TIME => repr.renewal_time = Some(one_u32(&data)?),
                option::REBINDING_TIME => repr.rebinding_time = Some(one_u32(&data)?),
                option::CLIENT_ID => repr.client_id = Some(data),
                _ => repr.other_options.push((code, data)),
            }
        }
        repr.message_type = message_type.ok_or(Error::Malformed)?;
        Ok(repr)
    }

    /// The options in emission order, as `(code, data)`.
    fn options(&self) -> Vec<(u8, Vec<u8>)> {
        let mut o: Vec<(u8, Vec<u8>)> = Vec::new();
        let addr = |a: Ipv4Addr| a.octets().to_vec();
        let list = |v: &[Ipv4Addr]| v.iter().flat_map(|a| a.octets()).collect::<Vec<u8>>();
        o.push((option::MESSAGE_TYPE, vec![u8::from(self.message_type)]));
        if let Some(v) = &self.client_id {
            o.push((option::CLIENT_ID, v.clone()));
        }
        if let Some(a) = self.server_id {
            o.push((option::SERVER_ID, addr(a)));
        }
        if let Some(a) = self.requested_ip {
            o.push((option::REQUESTED_IP, addr(a)));
        }
        if let Some(v) = self.lease_time {
            o.push((option::LEASE_TIME, v.to_be_bytes().to_vec()));
        }
        if let Some(v) = self.renewal_time {
            o.push((option::RENEWAL_TIME, v.to_be_bytes().to_vec()));
        }
        if let Some(v) = self.rebinding_time {
            o.push((option::REBINDING_TIME, v.to_be_bytes().to_vec()));
        }
        if let Some(a) = self.subnet_mask {
            o.push((option::SUBNET_MASK, addr(a)));
        }
        if !self.routers.is_empty() {
            o.push((option::ROUTER, list(&self.routers)));
        }
        if !self.dns_servers.is_empty() {
            o.push((option::DNS_SERVERS, list(&self.dns_servers)));
        }
        if let Some(v) = &self.host_name {
            o.push((option::HOST_NAME, v.clone()));
        }
        if let Some(v) = &self.domain_name {
            o.push((option::DOMAIN_NAME, v.clone()));
        }
        if let Some(v) = self.interface_mtu {
            o.push((option::INTERFACE_MTU, v.to_be_bytes().to_vec()));
        }
        if let Some(v) = &self.parameter_request_list {
            o.push((option::PARAMETER_REQUEST_LIST, v.clone()));
        }
        if let Some(v) = self.max_message_size {
            o.push((option::MAX_MESSAGE_SIZE, v.to_be_bytes().to_vec()));
        }
        if let Some(v) = &self.message {
            o.push((option::MESSAGE, v.clone()));
        }
        for (code, data) in &self.other_options {
            // PAD and END cannot carry data; skip them rather than emit garbage.
            if *code != option::PAD && *code != option::END {
                o.push((*code, data.clone()));
            }
        }
        o
    }

    /// Encoded length of the options with their END, splitting long ones (RFC 3396).
    fn options_len(opts: &[(u8, Vec<u8>)]) -> usize {
        opts.iter()
            .map(|(_, d)| {
                let chunks = d.len().div_ceil(255).max(1);
                2 * chunks + d.len()
            })
            .sum::<usize>()
            + 1
    }

    pub fn buffer_len(&self) -> usize {
        (OPTIONS_OFFSET + Self::options_len(&self.options())).max(MIN_EMIT_LEN)
    }

    /// Writes the message into the first [`DhcpRepr::buffer_len`] bytes of `buf` (zeroing
    /// `sname`, `file` and the padding), returning that length, or `Truncated` if it does not fit.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let b = buf.get_mut(..len).ok_or(Error::Truncated)?;
        b.fill(0);
        set_u8(b, field::OP, self.op.into());
        set_u8(b, field::HTYPE, HTYPE_ETHERNET);
        set_u8(b, field::HLEN, 6);
        set_u8(b, field::HOPS, self.hops);
        copy(get_mut(b, field::XID), &self.xid.to_be_bytes());
        copy(get_mut(b, field::SECS), &self.secs.to_be_bytes());
        let flags = if self.broadcast { FLAG_BROADCAST } else { 0 };
        copy(get_mut(b, field::FLAGS), &flags.to_be_bytes());
        copy(get_mut(b, field::CIADDR), &self.ciaddr.octets());
        copy(get_mut(b, field::YIADDR), &self.yiaddr.octets());
        copy(get_mut(b, field::SIADDR), &self.siaddr.octets());
        copy(get_mut(b, field::GIADDR), &self.giaddr.octets());
        copy(get_mut(b, field::CHADDR), &self.chaddr.0);
        copy(get_mut(b, field::COOKIE), &MAGIC_COOKIE.to_be_bytes());
        let mut i = OPTIONS_OFFSET;
        for (code, data) in self.options() {
            let mut chunks = data.chunks(255).peekable();
            if chunks.peek().is_none() {
                copy(get_mut(b, i..), &[code, 0]);
                i += 2;
            }
            for chunk in chunks {
                copy(get_mut(b, i..), &[code, chunk.len() as u8]);
                copy(get_mut(b, i + 2..), chunk);
                i += 2 + chunk.len();
            }
        }
        set_u8(b, i, option::END);
        Ok(len)
    }

    /// The message as a fresh buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        let _ = self.emit(&mut v);
        v
    }
}

fn one_u8(d: &[u8]) -> Result<u8> {
    match d {
        [v] => Ok(*v),
        _ => Err(Error::Malformed),
    }
}
fn one_u16(d: &[u8]) -> Result<u16> {
    <[u8; 2]>::try_from(d)
        .map(u16::from_be_bytes)
        .map_err(|_| Error::Malformed)
}
fn one_u32(d: &[u8]) -> Result<u32> {
    <[u8; 4]>::try_from(d)
        .map(u32::from_be_bytes)
        .map_err(|_| Error::Malformed)
}
fn one_addr(d: &[u8]) -> Result<Ipv4Addr> {
    <[u8; 4]>::try_from(d)
        .map(Ipv4Addr::from)
        .map_err(|_| Error::Malformed)
}
fn addrs(d: &[u8]) -> Result<Vec<Ipv4Addr>> {
    if d.is_empty() || d.len() & 3 != 0 {
        return Err(Error::Malformed);
    }
    Ok(d.chunks_exact(4)
        .map(|c| Ipv4Addr::from(array::<4>(c)))
        .collect())
}

#[cfg(test)]
mod tests;
