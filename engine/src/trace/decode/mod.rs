//! Decoders: one tcpdump-style line per frame.
//!
//! Everything here is a function of the frame's bytes (plus, for relative TCP sequence
//! numbers, what [`LineDecoder`] has seen of the connection before). Decoding never panics on
//! any input: every view is built with `new_checked`, and a header that does not parse ends
//! the line with tcpdump's `[|proto]` mark.
//!
//! Line layout: `TIME DIR qN [LINK: ]NETWORK`, for example
//! `12:00:00.000100 in q0 IP 10.0.0.1.40000 > 10.0.0.2.80: Flags [S], seq 1000, win 64240,
//! options [mss 1460,nop,wscale 7], length 0`.
//!
//! Applications extend it with a [`Decoder`] for their own port or protocol; its text follows
//! the transport summary after `: `.

mod apps;

use core::fmt::Write;
use core::net::Ipv4Addr;
use std::collections::HashMap;
use std::sync::Arc;

use protocols::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, TcpOption,
    TcpPacket, UdpPacket,
};

use super::{Direction, FrameMeta};

/// Which transport carried a payload handed to an application [`Decoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

/// What a [`Decoder`] may look at to decide whether a payload is its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadMeta {
    pub transport: Transport,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub dir: Direction,
}

impl PayloadMeta {
    /// Either port is `port`.
    pub fn has_port(&self, port: u16) -> bool {
        self.src_port == port || self.dst_port == port
    }
}

/// An application's decoder for its own protocol. `decode` is called only for a non-empty
/// payload that `matches` accepted, and appends a short summary (no newline) to `out`. It
/// must not panic on any payload: a capture may hold anything.
pub trait Decoder: Send + Sync {
    fn matches(&self, meta: &PayloadMeta) -> bool;
    fn decode(&self, payload: &[u8], out: &mut String);
}

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeOptions {
    /// 0: tcpdump's default; 1 (`-v`): IP TTL, id, flags, length and transport checksum
    /// status; 2 (`-vv`): also the IP header checksum status and DNS questions in responses.
    pub verbosity: u8,
    /// `-e`: print the Ethernet header.
    pub link: bool,
    /// `-S`: absolute TCP sequence numbers (relative to the first seen otherwise).
    pub absolute_seq: bool,
    /// Leave out the time, direction and queue (for tests and for decoders of payload only).
    pub no_prefix: bool,
}

type FlowKey = (Ipv4Addr, u16, Ipv4Addr, u16);

/// Decodes frames to lines. Holds the registered application decoders and, for relative
/// sequence numbers, the initial sequence number seen in each direction of each connection.
#[derive(Default, Clone)]
pub struct LineDecoder {
    pub options: DecodeOptions,
    decoders: Vec<Arc<dyn Decoder>>,
    isn: HashMap<FlowKey, u32>,
}

impl LineDecoder {
    pub fn new(options: DecodeOptions) -> LineDecoder {
        LineDecoder {
            options,
            ..LineDecoder::default()
        }
    }

    /// Adds an application decoder; decoders are asked in registration order, the first that
    /// matches decodes.
    pub fn register(&mut self, decoder: Arc<dyn Decoder>) {
        self.decoders.push(decoder);
    }

    /// Appends one line (no trailing newline) describing `frame` to `out`.
    pub fn decode(&mut self, meta: &FrameMeta, frame: &[u8], out: &mut String) {
        if !self.options.no_prefix {
            push_time(out, meta.ts_micros);
            let _ = write!(out, " {} q{} ", meta.dir, meta.queue);
        }
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            let _ = write!(out, "[|ether] length {}", frame.len());
            return;
        };
        let ethertype = eth.ethertype();
        if self.options.link {
            let _ = write!(
                out,
                "{} > {}, ethertype {} (0x{:04x}), length {}: ",
                eth.src_addr(),
                eth.dst_addr(),
                ethertype_name(ethertype),
                u16::from(ethertype),
                frame.len()
            );
        }
        match ethertype {
            EtherType::Arp => arp(eth.payload(), out),
            EtherType::Ipv4 => self.ipv4(meta.dir, eth.payload(), out),
            other => {
                let _ = write!(
                    out,
                    "ethertype 0x{:04x}, length {}",
                    u16::from(other),
                    frame.len()
                );
            }
        }
    }

    fn ipv4(&mut self, dir: Direction, bytes: &[u8], out: &mut String) {
        let Ok(ip) = Ipv4Packet::new_checked(bytes) else {
            out.push_str("IP [|ip]");
            return;
        };
        let v = self.options.verbosity;
        let proto = ip.protocol();
        out.push_str("IP ");
        if v >= 1 {
            let mut flags = String::new();
            if ip.dont_frag() {
                flags.push_str("DF");
            }
            if ip.more_frags() {
                flags.push('+');
            }
            let _ = write!(
                out,
                "(tos 0x{:x}, ttl {}, id {}, offset {}, flags [{}], proto {} ({}), length {}",
                ip.dscp_ecn(),
                ip.ttl(),
                ip.ident(),
                ip.frag_offset(),
                if flags.is_empty() { "none" } else { &flags },
                proto_name(proto),
                u8::from(proto),
                ip.total_len()
            );
            if v >= 2 {
                let _ = write!(
                    out,
                    ", cksum 0x{:04x} ({})",
                    ip.checksum(),
                    correct(ip.verify_checksum())
                );
            }
            out.push_str(") ");
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let payload = ip.payload();
        let fragmented = ip.more_frags() || ip.frag_offset() != 0;
        if ip.frag_offset() != 0 {
            let _ = write!(
                out,
                "{src} > {dst}: {} (frag {}:{}@{}{})",
                proto_name(proto).to_ascii_lowercase(),
                ip.ident(),
                payload.len(),
                ip.frag_offset(),
                if ip.more_frags() { "+" } else { "" }
            );
            return;
        }
        match proto {
            IpProtocol::Tcp => self.tcp(dir, src, dst, payload, out),
            IpProtocol::Udp => self.udp(dir, src, dst, payload, out),
            IpProtocol::Icmp => icmp(src, dst, payload, out),
            other => {
                let _ = write!(
                    out,
                    "{src} > {dst}: ip-proto-{} {}",
                    u8::from(other),
                    payload.len()
                );
            }
        }
        if fragmented {
            let _ = write!(out, " (frag {}:{}@0+)", ip.ident(), payload.len());
        }
    }

    fn tcp(&mut self, dir: Direction, src: Ipv4Addr, dst: Ipv4Addr, seg: &[u8], out: &mut String) {
        let Ok(tcp) = TcpPacket::new_checked(seg) else {
            let _ = write!(out, "{src} > {dst}: [|tcp]");
            return;
        };
        let (sport, dport) = (tcp.src_port(), tcp.dst_port());
        let flags = tcp.flags();
        let _ = write!(out, "{src}.{sport} > {dst}.{dport}: Flags [");
        push_tcp_flags(out, flags.0);
        out.push(']');
        if self.options.verbosity >= 1 {
            let _ = write!(
                out,
                ", cksum 0x{:04x} ({})",
                tcp.checksum(),
                correct(tcp.verify_checksum(src, dst))
            );
        }
        let seq = tcp.seq_number().0;
        let payload = tcp.payload();
        let key = (src, sport, dst, dport);
        let rev = (dst, dport, src, sport);
        let relative = !self.options.absolute_seq;
        if relative && (flags.syn() || !self.isn.contains_key(&key)) {
            // The first segment seen in a direction fixes its base (tcpdump does the same).
            if self.isn.len() >= 65536 {
                self.isn.clear();
            }
            self.isn.insert(key, seq);
        }
        let base = if relative && !flags.syn() {
            self.isn.get(&key).copied().unwrap_or(0)
        } else {
            0
        };
        let rseq = seq.wrapping_sub(base);
        if payload.is_empty() && !flags.syn() && !flags.fin() && !flags.rst() {
            // tcpdump omits the sequence number of a bare ACK.
        } else if payload.is_empty() {
            let _ = write!(out, ", seq {rseq}");
        } else {
            let _ = write!(
                out,
                ", seq {rseq}:{}",
                rseq.wrapping_add(payload.len() as u32)
            );
        }
        if flags.ack() {
            let ack = tcp.ack_number().0;
            let base = if relative && !flags.syn() {
                self.isn.get(&rev).copied().unwrap_or(0)
            } else {
                0
            };
            let _ = write!(out, ", ack {}", ack.wrapping_sub(base));
        }
        let _ = write!(out, ", win {}", tcp.window_len());
        if flags.urg() {
            let _ = write!(out, ", urg {}", tcp.urgent_at());
        }
        push_tcp_options(out, tcp.options());
        let _ = write!(out, ", length {}", payload.len());
        let meta = PayloadMeta {
            transport: Transport::Tcp,
            src,
            dst,
            src_port: sport,
            dst_port: dport,
            dir,
        };
        self.app(&meta, payload, out);
    }

    fn udp(
        &mut self,
        dir: Direction,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        dgram: &[u8],
        out: &mut String,
    ) {
        let Ok(udp) = UdpPacket::new_checked(dgram) else {
            let _ = write!(out, "{src} > {dst}: [|udp]");
            return;
        };
        let (sport, dport) = (udp.src_port(), udp.dst_port());
        let _ = write!(out, "{src}.{sport} > {dst}.{dport}: ");
        if self.options.verbosity >= 1 {
            let status = if udp.checksum() == 0 {
                "none"
            } else {
                correct(udp.verify_checksum(src, dst))
            };
            let _ = write!(out, "[udp sum 0x{:04x} ({status})] ", udp.checksum());
        }
        let payload = udp.payload();
        let meta = PayloadMeta {
            transport: Transport::Udp,
            src,
            dst,
            src_port: sport,
            dst_port: dport,
            dir,
        };
        if self.decoders.iter().any(|d| d.matches(&meta)) {
            let _ = write!(out, "UDP, length {}", payload.len());
            self.app(&meta, payload, out);
            return;
        }
        let mark = out.len();
        let known = if meta.has_port(apps::BOOTPS) || meta.has_port(apps::BOOTPC) {
            apps::dhcp(payload, out)
        } else if meta.has_port(apps::DNS) {
            apps::dns(payload, self.options.verbosity >= 2, out)
        } else {
            None
        };
        if known.is_none() {
            out.truncate(mark);
            let _ = write!(out, "UDP, length {}", payload.len());
        }
    }

    fn app(&self, meta: &PayloadMeta, payload: &[u8], out: &mut String) {
        if payload.is_empty() {
            return;
        }
        if let Some(d) = self.decoders.iter().find(|d| d.matches(meta)) {
            let mark = out.len();
            out.push_str(": ");
            d.decode(payload, out);
            if out.len() == mark + 2 {
                out.truncate(mark);
            }
        }
    }
}

fn correct(ok: bool) -> &'static str {
    if ok {
        "correct"
    } else {
        "incorrect"
    }
}

/// UTC time of day, `HH:MM:SS.uuuuuu`, as tcpdump prints it.
fn push_time(out: &mut String, ts_micros: u64) {
    let secs = ts_micros / 1_000_000;
    let day = secs % 86_400;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}.{:06}",
        day / 3600,
        day / 60 % 60,
        day % 60,
        ts_micros % 1_000_000
    );
}

fn ethertype_name(t: EtherType) -> &'static str {
    match t {
        EtherType::Ipv4 => "IPv4",
        EtherType::Arp => "ARP",
        _ => match u16::from(t) {
            0x86dd => "IPv6",
            0x8100 => "802.1Q",
            _ => "Unknown",
        },
    }
}

fn proto_name(p: IpProtocol) -> &'static str {
    match p {
        IpProtocol::Icmp => "ICMP",
        IpProtocol::Tcp => "TCP",
        IpProtocol::Udp => "UDP",
        _ => "unknown",
    }
}

/// tcpdump's flag letters in tcpdump's order (print-tcp.c `tcp_flag_values`).
pub(crate) fn push_tcp_flags(out: &mut String, bits: u8) {
    const LETTERS: [(u8, char); 8] = [
        (0x01, 'F'),
        (0x02, 'S'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x10, '.'),
        (0x20, 'U'),
        (0x40, 'E'),
        (0x80, 'W'),
    ];
    if bits == 0 {
        out.push_str("none");
    }
    for (bit, c) in LETTERS {
        if bits & bit != 0 {
            out.push(c);
        }
    }
}

/// Options in wire order, tcpdump style: `, options [mss 1460,nop,wscale 7]`.
fn push_tcp_options(out: &mut String, mut opts: &[u8]) {
    if opts.is_empty() {
        return;
    }
    out.push_str(", options [");
    let mut first = true;
    while !opts.is_empty() {
        if !first {
            out.push(',');
        }
        first = false;
        let Ok((rest, opt)) = TcpOption::parse(opts) else {
            out.push_str("bad opts");
            break;
        };
        match opt {
            TcpOption::EndOfList => {
                out.push_str("eol");
                break;
            }
            TcpOption::NoOperation => out.push_str("nop"),
            TcpOption::MaxSegmentSize(m) => {
                let _ = write!(out, "mss {m}");
            }
            TcpOption::WindowScale(s) => {
                let _ = write!(out, "wscale {s}");
            }
            TcpOption::SackPermitted => out.push_str("sackOK"),
            TcpOption::SackRange(ranges) => {
                let n = ranges.iter().flatten().count();
                let _ = write!(out, "sack {n} ");
                for (l, r) in ranges.iter().flatten() {
                    let _ = write!(out, "{{{}:{}}}", l.0, r.0);
                }
            }
            TcpOption::Timestamps(ts) => {
                let _ = write!(out, "TS val {} ecr {}", ts.tsval, ts.tsecr);
            }
            TcpOption::Unknown { kind, data } => {
                let _ = write!(out, "opt-{kind}:");
                for b in data {
                    let _ = write!(out, "{b:02x}");
                }
            }
        }
        opts = rest;
    }
    out.push(']');
}

fn arp(bytes: &[u8], out: &mut String) {
    let Ok(pkt) = ArpPacket::new_checked(bytes) else {
        out.push_str("ARP, [|arp]");
        return;
    };
    let Ok(repr) = ArpRepr::parse(&pkt) else {
        let _ = write!(
            out,
            "ARP, hardware type {}, protocol 0x{:04x}, length {}",
            pkt.htype(),
            pkt.ptype(),
            bytes.len()
        );
        return;
    };
    let len = repr.buffer_len();
    match repr.operation {
        ArpOperation::Request => {
            let _ = write!(
                out,
                "ARP, Request who-has {} tell {}, length {len}",
                repr.target_protocol_addr, repr.source_protocol_addr
            );
        }
        ArpOperation::Reply => {
            let _ = write!(
                out,
                "ARP, Reply {} is-at {}, length {len}",
                repr.source_protocol_addr, repr.source_hardware_addr
            );
        }
        ArpOperation::Unknown(op) => {
            let _ = write!(out, "ARP, op {op}, length {len}");
        }
    }
}

fn icmp(src: Ipv4Addr, dst: Ipv4Addr, bytes: &[u8], out: &mut String) {
    let _ = write!(out, "{src} > {dst}: ICMP ");
    if bytes.len() < 8 {
        out.push_str("[|icmp]");
        return;
    }
    let (ty, code) = (bytes[0], bytes[1]);
    let id = u16::from_be_bytes([bytes[4], bytes[5]]);
    let seq = u16::from_be_bytes([bytes[6], bytes[7]]);
    match (ty, code) {
        (8, 0) => {
            let _ = write!(out, "echo request, id {id}, seq {seq}");
        }
        (0, 0) => {
            let _ = write!(out, "echo reply, id {id}, seq {seq}");
        }
        (3, code) => {
            let what = match code {
                0 => "net unreachable",
                1 => "host unreachable",
                2 => "protocol unreachable",
                3 => "port unreachable",
                4 => "need to frag",
                _ => "unreachable",
            };
            let _ = write!(out, "{what} (type 3, code {code})");
        }
        (11, 0) => out.push_str("time exceeded in-transit"),
        (11, 1) => out.push_str("ip reassembly time exceeded"),
        (ty, code) => {
            let _ = write!(out, "type {ty}, code {code}");
        }
    }
    let _ = write!(out, ", length {}", bytes.len());
}

#[cfg(test)]
mod tests;
