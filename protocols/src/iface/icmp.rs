//! ICMPv4 (RFC 792, RFC 1122 §3.2.2): echo replies, echo sockets for ping, and the errors this
//! node sends (port and protocol unreachable), never about an ICMP error, a broadcast or a
//! non-first fragment, and rate-limited.

use crate::wire::bytes::{array, be16, get, get_mut, u8_at};
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::counters::DropReason;
use super::egress::emit_ipv4;
use super::ingress::IpMeta;
use super::sockets::{Slab, SocketHandle};
use super::{Sink, Stack, Wake};
use crate::tcp::ConnError;
use crate::time::{Duration, Instant};
use crate::wire::icmpv4::dst_unreachable;
use crate::wire::ipv4_options::{self, Options};
use crate::wire::{self, Icmpv4Packet, Icmpv4Repr, IpProtocol, SeqNumber};

/// Most bytes of the offending datagram quoted in an error (RFC 1812 §4.3.2.3: the whole error
/// fits in 576 bytes).
const MAX_QUOTE: usize = 576 - 20 - 8;

/// An echo reply received by an echo socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoReply {
    pub from: Ipv4Addr,
    pub ident: u16,
    pub seq_no: u16,
    pub ttl: u8,
    pub data: Vec<u8>,
    /// When the stack received it.
    pub at: Instant,
    /// The addresses its record route option holds (a request sent with one: `ping -R`),
    /// in order; empty without one.
    pub route: Vec<Ipv4Addr>,
}

/// An ICMP error (destination unreachable, time exceeded) about a datagram this node sent,
/// handed to the socket that sent it: the UDP socket whose port it quotes, or the echo socket
/// whose identifier it quotes. traceroute is built on these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpErrorReport {
    /// Who sent the error (a router on the path, or the destination).
    pub from: Ipv4Addr,
    /// ICMP type: 3 (destination unreachable) or 11 (time exceeded).
    pub msg_type: u8,
    pub code: u8,
    /// The destination of the quoted datagram.
    pub dst: Ipv4Addr,
    /// The quoted datagram's UDP destination port, or its echo sequence number.
    pub detail: u16,
    /// When the stack received it.
    pub at: Instant,
}

/// Most error reports a socket holds before it drops new ones.
pub(super) const ERROR_QUEUE: usize = 64;

/// What an ICMP error quotes (RFC 792: the IPv4 header and at least 8 bytes of its payload).
struct Quoted {
    protocol: u8,
    /// The quoted datagram's total length, as it left us.
    total_len: u16,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    /// The first 8 bytes of the quoted transport header.
    head: [u8; 8],
}

fn parse_quote(invoking: &[u8]) -> Option<Quoted> {
    let ihl = usize::from(invoking.first()? & 0x0f) * 4;
    if invoking.first()? >> 4 != 4 || ihl < 20 {
        return None;
    }
    let head: [u8; 8] = invoking.get(ihl..ihl + 8)?.try_into().ok()?;
    let addr = |o: usize| Ipv4Addr::from(array::<4>(get(invoking, o..o + 4)));
    Some(Quoted {
        protocol: u8_at(invoking, 9),
        total_len: be16(get(invoking, 2..4)),
        src: addr(12),
        dst: addr(16),
        head,
    })
}

/// What an ICMP error quoting a TCP segment means for its connection: None for "fragmentation
/// needed" (a path MTU), else the error that ends an attempt to connect (Linux's mapping of the
/// codes: port and protocol unreachable refuse; net codes make the network unreachable; host,
/// prohibited and TTL codes leave no route to the host).
fn tcp_error_of(msg_type: u8, code: u8) -> Option<ConnError> {
    use dst_unreachable::*;
    if msg_type != wire::icmpv4::msg_type::DST_UNREACHABLE {
        return Some(ConnError::HostUnreachable); // time exceeded
    }
    Some(match code {
        FRAG_REQUIRED => return None,
        PORT_UNREACHABLE | PROTO_UNREACHABLE => ConnError::Refused,
        NET_UNREACHABLE | 6 | 9 | 11 => ConnError::NetUnreachable,
        _ => ConnError::HostUnreachable,
    })
}

/// RFC 1191 §7's MTU plateaus, for a router that says "fragmentation needed" without the next
/// hop's MTU (RFC 1191 came after it): the next one below the datagram's length is tried.
const MTU_PLATEAUS: [u16; 9] = [32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296];

/// The path MTU a "fragmentation needed" reports for the quoted datagram: the next hop's MTU,
/// or the plateau below the datagram when the router gave none (or one no smaller than the
/// datagram, which cannot be why it was dropped).
fn path_mtu_of(next_hop_mtu: u16, q: &Quoted) -> usize {
    if next_hop_mtu >= 68 && next_hop_mtu < q.total_len {
        return usize::from(next_hop_mtu);
    }
    let below = MTU_PLATEAUS.iter().find(|&&p| p < q.total_len);
    usize::from(below.copied().unwrap_or(68))
}

#[derive(Debug)]
struct EchoSocket {
    ident: u16,
    /// Requests ask for the route (a record route option).
    record_route: bool,
    rx: VecDeque<EchoReply>,
    errors: VecDeque<IcmpErrorReport>,
}

/// An ICMP error this host sends about a datagram it received.
#[derive(Debug, Clone, Copy)]
pub(super) enum IcmpError {
    /// Destination unreachable with this code (port, protocol).
    Unreachable(u8),
    /// Parameter problem (RFC 792) pointing at this byte of the datagram's IPv4 header.
    ParamProblem(u8),
}

/// An echo message to send.
struct Echo<'a> {
    dst: Ipv4Addr,
    /// A reply (else a request).
    reply: bool,
    ident: u16,
    seq_no: u16,
    ttl: u8,
    data: &'a [u8],
    /// IPv4 options (a multiple of 4 bytes): an echo reply's record route and timestamp.
    options: &'a [u8],
    /// The DSCP: a reply's is the request's (RFC 1349 §5.1).
    dscp: u8,
}

#[derive(Debug)]
struct EchoRequest {
    dst: Ipv4Addr,
    ident: u16,
    seq_no: u16,
    ttl: u8,
    data: Vec<u8>,
    record_route: bool,
}

#[derive(Debug, Default)]
pub(super) struct IcmpTable {
    sockets: Slab<EchoSocket>,
    tx: VecDeque<EchoRequest>,
}

const ECHO_RX_QUEUE: usize = 256;
const ECHO_TX_QUEUE: usize = 256;

impl IcmpTable {
    pub fn has_tx(&self) -> bool {
        !self.tx.is_empty()
    }
}

/// The ICMP echo table's socket API (`stack.icmp()`): it borrows the table and the stack's
/// default TTL, nothing else of the stack.
pub struct Icmp<'a> {
    table: &'a mut IcmpTable,
    default_ttl: u8,
}

impl Stack {
    pub fn icmp(&mut self) -> Icmp<'_> {
        Icmp {
            table: &mut self.icmp,
            default_ttl: self.config.ttl,
        }
    }
}

impl Icmp<'_> {
    /// Opens an echo socket that receives the echo replies carrying `ident`.
    pub fn bind(&mut self, ident: u16) -> SocketHandle {
        self.table.sockets.insert(EchoSocket {
            ident,
            record_route: false,
            rx: VecDeque::new(),
            errors: VecDeque::new(),
        })
    }

    /// Queues an echo request; it goes out at the next `poll`. False if the queue is full.
    pub fn send_echo(
        &mut self,
        h: SocketHandle,
        dst: Ipv4Addr,
        seq_no: u16,
        ttl: Option<u8>,
        data: &[u8],
    ) -> bool {
        let Some(s) = self.table.sockets.get(h) else {
            return false;
        };
        if self.table.tx.len() >= ECHO_TX_QUEUE {
            return false;
        }
        let (ident, record_route) = (s.ident, s.record_route);
        let ttl = ttl.unwrap_or(self.default_ttl);
        self.table.tx.push_back(EchoRequest {
            dst,
            ident,
            seq_no,
            ttl,
            data: data.to_vec(),
            record_route,
        });
        true
    }

    /// Whether `h`'s requests ask for the route they take (a record route option, as
    /// `ping -R`); the replies' [`EchoReply::route`] holds it.
    pub fn set_record_route(&mut self, h: SocketHandle, on: bool) {
        if let Some(s) = self.table.sockets.get_mut(h) {
            s.record_route = on;
        }
    }

    /// The next echo reply received by `h`, if any.
    pub fn recv(&mut self, h: SocketHandle) -> Option<EchoReply> {
        self.table.sockets.get_mut(h)?.rx.pop_front()
    }

    /// The next ICMP error about an echo request sent by `h`, if any.
    pub fn recv_error(&mut self, h: SocketHandle) -> Option<IcmpErrorReport> {
        self.table.sockets.get_mut(h)?.errors.pop_front()
    }

    pub fn close(&mut self, h: SocketHandle) {
        self.table.sockets.remove(h);
    }
}

impl Stack {
    pub(super) fn receive_icmp(
        &mut self,
        now: Instant,
        meta: IpMeta,
        header: &[u8],
        body: &[u8],
        sink: &mut impl Sink,
    ) {
        let packet = match Icmpv4Packet::new_checked(body) {
            Ok(p) => p,
            Err(_) => return self.counters.drop(DropReason::IcmpMalformed),
        };
        let repr = match Icmpv4Repr::parse(&packet, self.config.rx_verify_checksums) {
            Ok(r) => r,
            Err(wire::Error::BadChecksum) => {
                return self.counters.drop(DropReason::IcmpBadChecksum)
            }
            Err(_) => return self.counters.drop(DropReason::IcmpMalformed),
        };
        match repr {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => {
                if meta.broadcast {
                    // RFC 1122 §3.2.2.6 lets us ignore broadcast pings; we do (smurf defence).
                    return self.counters.drop(DropReason::NotForUs);
                }
                let options = self.reply_options(header, now);
                let echo = Echo {
                    dst: meta.src,
                    reply: true,
                    ident,
                    seq_no,
                    ttl: self.config.ttl,
                    data,
                    options: options.as_bytes(),
                    dscp: meta.dscp,
                };
                self.send_echo(now, sink, echo);
                self.counters.icmp_echo_replied += 1;
            }
            Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                let sock = self
                    .icmp
                    .sockets
                    .iter()
                    .find(|(_, s)| s.ident == ident)
                    .map(|(h, _)| h);
                let found = sock.and_then(|h| self.icmp.sockets.get_mut(h).map(|s| (h, s)));
                match found {
                    Some((h, s)) if s.rx.len() < ECHO_RX_QUEUE => {
                        s.rx.push_back(EchoReply {
                            from: meta.src,
                            ident,
                            seq_no,
                            ttl: meta.ttl,
                            data: data.to_vec(),
                            at: now,
                            route: ipv4_options::recorded_route(get(header, 20..)),
                        });
                        self.news.push(Wake::Icmp(h));
                    }
                    _ => self.counters.drop(DropReason::IcmpUnhandled),
                }
            }
            // RFC 792 timestamp request: answered as Linux answers it, with the request's
            // originate time and ours (received and sent: the same instant), and its options.
            Icmpv4Repr::Other {
                msg_type: wire::icmpv4::msg_type::TIMESTAMP,
                code: 0,
                rest,
                data,
            } if data.len() >= 12 => {
                if meta.broadcast {
                    return self.counters.drop(DropReason::NotForUs);
                }
                let ts = self.ip_timestamp(now).to_be_bytes();
                let mut stamps = [0u8; 12];
                let (originate, ours) = stamps.split_at_mut(4);
                originate.copy_from_slice(get(data, ..4));
                ours.copy_from_slice(&[ts, ts].concat());
                let options = self.reply_options(header, now);
                let reply = Icmpv4Repr::Other {
                    msg_type: wire::icmpv4::msg_type::TIMESTAMP_REPLY,
                    code: 0,
                    rest,
                    data: &stamps,
                };
                let to = (meta.src, self.config.ttl, meta.dscp);
                self.send_icmp(now, sink, to, &reply, options.as_bytes());
                self.counters.icmp_timestamp_replied += 1;
            }
            Icmpv4Repr::Other {
                msg_type: wire::icmpv4::msg_type::REDIRECT,
                code: 0..=3,
                rest,
                data,
            } => self.on_redirect(now, meta, Ipv4Addr::from(rest), data),
            Icmpv4Repr::DstUnreachable {
                code,
                next_hop_mtu,
                invoking,
            } => self.deliver_icmp_error(
                now,
                meta,
                (wire::icmpv4::msg_type::DST_UNREACHABLE, code, next_hop_mtu),
                invoking,
            ),
            Icmpv4Repr::TimeExceeded { code, invoking } => self.deliver_icmp_error(
                now,
                meta,
                (wire::icmpv4::msg_type::TIME_EXCEEDED, code, 0),
                invoking,
            ),
            _ => self.counters.drop(DropReason::IcmpUnhandled),
        }
    }

    /// Hands an ICMP error to the UDP or echo socket that sent the datagram it quotes; a path
    /// MTU ("fragmentation needed", with the next hop's MTU) to the TCP connection.
    fn deliver_icmp_error(
        &mut self,
        now: Instant,
        meta: IpMeta,
        (msg_type, code, next_hop_mtu): (u8, u8, u16),
        invoking: &[u8],
    ) {
        let Some(q) = parse_quote(invoking) else {
            return self.counters.drop(DropReason::IcmpMalformed);
        };
        if q.protocol == 6 && self.is_local(q.src) {
            let h = &q.head;
            let local_port = u16::from_be_bytes([h[0], h[1]]);
            let remote = SocketAddrV4::new(q.dst, u16::from_be_bytes([h[2], h[3]]));
            let seq = SeqNumber(u32::from_be_bytes([h[4], h[5], h[6], h[7]]));
            let key = (q.src, local_port, remote);
            return match tcp_error_of(msg_type, code) {
                None => self.tcp_path_mtu(now, key, seq, path_mtu_of(next_hop_mtu, &q)),
                Some(err) => self.tcp_icmp_error(key, seq, err),
            };
        }
        if q.src != self.address() {
            return self.counters.drop(DropReason::IcmpUnhandled);
        }
        let too_big = msg_type == wire::icmpv4::msg_type::DST_UNREACHABLE
            && code == dst_unreachable::FRAG_REQUIRED;
        let h = &q.head;
        let delivered = match q.protocol {
            17 => {
                let report = IcmpErrorReport {
                    from: meta.src,
                    msg_type,
                    code,
                    dst: q.dst,
                    detail: u16::from_be_bytes([h[2], h[3]]),
                    at: now,
                };
                self.udp_push_error(u16::from_be_bytes([h[0], h[1]]), report)
            }
            1 if h[0] == wire::icmpv4::msg_type::ECHO_REQUEST => {
                let ident = u16::from_be_bytes([h[4], h[5]]);
                let report = IcmpErrorReport {
                    from: meta.src,
                    msg_type,
                    code,
                    dst: q.dst,
                    detail: u16::from_be_bytes([h[6], h[7]]),
                    at: now,
                };
                let sock = self
                    .icmp
                    .sockets
                    .iter()
                    .find(|(_, s)| s.ident == ident)
                    .map(|(h, _)| h);
                match sock.and_then(|sh| self.icmp.sockets.get_mut(sh)) {
                    Some(s) if s.errors.len() < ERROR_QUEUE => {
                        s.errors.push_back(report);
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        };
        if delivered {
            if too_big {
                // A datagram of ours was too big for the path (and the report names a socket
                // of ours): later ones to that host are cut to fit.
                let mtu = path_mtu_of(next_hop_mtu, &q);
                self.pmtu.learn_from_report(q.dst, mtu, now);
            }
            // Errors reach UDP and ICMP sockets found by port or ident: news for everyone.
            self.news.push_all();
        } else {
            self.counters.drop(DropReason::IcmpUnhandled);
        }
    }

    /// Sends an echo request or reply.
    fn send_echo(&mut self, now: Instant, sink: &mut impl Sink, echo: Echo<'_>) {
        let repr = if echo.reply {
            Icmpv4Repr::EchoReply {
                ident: echo.ident,
                seq_no: echo.seq_no,
                data: echo.data,
            }
        } else {
            Icmpv4Repr::EchoRequest {
                ident: echo.ident,
                seq_no: echo.seq_no,
                data: echo.data,
            }
        };
        let to = (echo.dst, echo.ttl, echo.dscp);
        self.send_icmp(now, sink, to, &repr, echo.options);
    }

    /// Sends an ICMP message with IPv4 `options` (a multiple of 4 bytes). A message larger
    /// than the path MTU leaves in fragments, without options.
    fn send_icmp(
        &mut self,
        now: Instant,
        sink: &mut impl Sink,
        (dst, ttl, dscp): (Ipv4Addr, u8, u8),
        repr: &Icmpv4Repr<'_>,
        options: &[u8],
    ) {
        let src = self.address();
        let header_len = wire::ipv4::HEADER_LEN + options.len();
        let mut eg = self.egress();
        if header_len + repr.buffer_len() > eg.mtu_to(dst, now) {
            // Larger than the MTU (ping -s 3000): whole message, then fragments.
            let mut msg = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Icmpv4Packet::new_unchecked(&mut msg[..]));
            eg.send_datagram(now, sink, src, dst, IpProtocol::Icmp, ttl, &msg);
            return;
        }
        let ident_ip = eg.next_ident();
        eg.send_ipv4(now, sink, dst, |buf| {
            let len = repr.buffer_len();
            if header_len + len > buf.len() {
                return 0;
            }
            let msg = get_mut(buf, header_len..header_len + len);
            repr.emit(&mut Icmpv4Packet::new_unchecked(msg));
            let ip = wire::Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                protocol: IpProtocol::Icmp,
                payload_len: len,
                ttl,
                ident: ident_ip,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
                dscp_ecn: dscp,
            };
            let total = header_len + len;
            let mut packet = wire::Ipv4Packet::new_unchecked(get_mut(buf, ..total));
            match options {
                [] => ip.emit(&mut packet),
                _ => ip.emit_with_options(&mut packet, options),
            }
            total
        });
    }

    /// The options of our reply to a query whose IPv4 header is `header` (RFC 1122
    /// §3.2.2.6): its record route and timestamp, with us in them.
    fn reply_options(&self, header: &[u8], now: Instant) -> Options {
        match header.get(wire::ipv4::HEADER_LEN..) {
            Some(o) if !o.is_empty() => {
                ipv4_options::echo_reply(o, self.address(), self.ip_timestamp(now))
            }
            _ => Options::EMPTY,
        }
    }

    /// An IP timestamp (RFC 791) for `now`: milliseconds since midnight UT when the stack
    /// knows the wall clock, else its own milliseconds with the high bit set (a non-standard
    /// time, as RFC 791 allows).
    fn ip_timestamp(&self, now: Instant) -> u32 {
        const DAY_MS: u64 = 86_400_000;
        match self.config.unix_ms_at_zero {
            Some(zero) => ((zero + now.total_millis()) % DAY_MS) as u32,
            None => (now.total_millis() as u32) | 0x8000_0000,
        }
    }

    /// Sends an ICMP error about a received datagram (`header` is its IPv4 header, `body` its
    /// payload), unless RFC 1122 §3.2.2 forbids it or the rate limit is hit.
    pub(super) fn send_icmp_error(
        &mut self,
        now: Instant,
        sink: &mut impl Sink,
        meta: IpMeta,
        error: IcmpError,
        header: &[u8],
        body: &[u8],
    ) {
        if meta.broadcast || meta.src.is_unspecified() {
            return;
        }
        // Never about an ICMP error, nor about a non-first fragment.
        let protocol = header.get(9).copied();
        let frag_offset = header.get(6..8).map_or(0, |b| be16(b) & 0x1fff);
        if (protocol == Some(1) && is_icmp_error(body)) || frag_offset != 0 {
            return;
        }
        if !self.take_icmp_token(now) {
            return;
        }
        let quote_len = (header.len() + body.len()).min(MAX_QUOTE);
        let mut invoking = Vec::with_capacity(quote_len);
        invoking.extend_from_slice(header);
        invoking.extend_from_slice(body);
        invoking.truncate(quote_len);
        let repr = match error {
            IcmpError::Unreachable(code) => Icmpv4Repr::DstUnreachable {
                code,
                next_hop_mtu: 0,
                invoking: &invoking,
            },
            IcmpError::ParamProblem(pointer) => Icmpv4Repr::Other {
                msg_type: wire::icmpv4::msg_type::PARAM_PROBLEM,
                code: 0,
                rest: [pointer, 0, 0, 0],
                data: &invoking,
            },
        };
        let src = self.address();
        let dst = meta.src;
        let ttl = self.config.ttl;
        self.counters.icmp_errors_sent += 1;
        let mut eg = self.egress();
        let ident = eg.next_ident();
        eg.send_ipv4(now, sink, dst, |buf| {
            let len = repr.buffer_len();
            if 20 + len > buf.len() {
                return 0;
            }
            repr.emit(&mut Icmpv4Packet::new_unchecked(get_mut(buf, 20..20 + len)));
            emit_ipv4(buf, src, dst, IpProtocol::Icmp, len, ident, ttl)
        });
    }

    pub(super) fn take_icmp_token(&mut self, now: Instant) -> bool {
        let rate = self.config.icmp_error_rate;
        if now >= self.icmp_tokens_at + Duration::from_secs(1) {
            self.icmp_tokens = rate;
            self.icmp_tokens_at = now;
        }
        if self.icmp_tokens == 0 {
            return false;
        }
        self.icmp_tokens -= 1;
        true
    }

    pub(super) fn flush_icmp(&mut self, now: Instant, sink: &mut impl Sink) {
        while let Some(r) = self.icmp.tx.pop_front() {
            let options = match r.record_route {
                true => ipv4_options::record_route_request(self.address()),
                false => Options::EMPTY,
            };
            let echo = Echo {
                dst: r.dst,
                reply: false,
                ident: r.ident,
                seq_no: r.seq_no,
                ttl: r.ttl,
                data: &r.data,
                options: options.as_bytes(),
                dscp: 0,
            };
            self.send_echo(now, sink, echo);
        }
    }
}

/// RFC 1122 §3.2.2: true when `code`-style errors must not be sent about this ICMP message
/// (it is itself an error).
pub(super) fn is_icmp_error(body: &[u8]) -> bool {
    matches!(body.first(), Some(3 | 4 | 5 | 11 | 12))
}
