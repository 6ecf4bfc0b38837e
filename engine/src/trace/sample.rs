//! Sample frames built with the `protocols::wire` emitters: an ARP exchange, a ping, a TCP
//! handshake with data and a retransmission, a DNS query and answer, a DHCP DISCOVER, an HTTP
//! request, and an IPv4 fragment. Tests, benches and examples share them.

use core::net::Ipv4Addr;

use protocols::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr, SeqNumber, TcpFlags, TcpPacket,
    TcpRepr, TcpTimestamp, TxChecksum, UdpPacket, UdpRepr,
};

use super::Direction;

pub const HOST_MAC: EthernetAddress = EthernetAddress([0x52, 0x54, 0x00, 0x00, 0x00, 0x01]);
pub const NODE_MAC: EthernetAddress = EthernetAddress([0x52, 0x54, 0x00, 0x00, 0x00, 0x02]);
pub const HOST: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
pub const NODE: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
pub const DNS_SERVER: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 53);

/// An Ethernet frame around `payload`.
pub fn ethernet(
    src: EthernetAddress,
    dst: EthernetAddress,
    ty: EtherType,
    payload: &[u8],
) -> Vec<u8> {
    let mut buf = vec![0u8; 14 + payload.len()];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        ethertype: ty,
    }
    .emit(&mut frame);
    frame.payload_mut().copy_from_slice(payload);
    buf
}

fn macs(src: Ipv4Addr) -> (EthernetAddress, EthernetAddress) {
    if src == NODE {
        (NODE_MAC, HOST_MAC)
    } else {
        (HOST_MAC, NODE_MAC)
    }
}

/// An IPv4 packet (in an Ethernet frame) carrying `payload` as protocol `proto`.
pub fn ipv4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: IpProtocol,
    ident: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut buf = vec![0u8; 20 + payload.len()];
    buf[20..].copy_from_slice(payload);
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: proto,
        payload_len: payload.len(),
        ttl: 64,
        ident,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
    let (s, d) = macs(src);
    ethernet(s, d, EtherType::Ipv4, &buf)
}

pub fn arp_request() -> Vec<u8> {
    arp(
        ArpOperation::Request,
        NODE_MAC,
        NODE,
        EthernetAddress([0; 6]),
        HOST,
    )
}

pub fn arp_reply() -> Vec<u8> {
    arp(ArpOperation::Reply, HOST_MAC, HOST, NODE_MAC, NODE)
}

fn arp(
    op: ArpOperation,
    sha: EthernetAddress,
    spa: Ipv4Addr,
    tha: EthernetAddress,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let repr = ArpRepr {
        operation: op,
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_hardware_addr: tha,
        target_protocol_addr: tpa,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
    let dst = if op == ArpOperation::Request {
        EthernetAddress([0xff; 6])
    } else {
        tha
    };
    ethernet(sha, dst, EtherType::Arp, &buf)
}

/// An ICMP echo request (or reply) with 56 data bytes, like `ping`.
pub fn ping(src: Ipv4Addr, dst: Ipv4Addr, reply: bool, ident: u16, seq_no: u16) -> Vec<u8> {
    let data: Vec<u8> = (0..56u8).collect();
    let repr = if reply {
        Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data: &data,
        }
    } else {
        Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data: &data,
        }
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
    ipv4(src, dst, IpProtocol::Icmp, seq_no, &buf)
}

/// A TCP segment; `ack` sets the ACK flag.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    flags: TcpFlags,
    seq: u32,
    ack: Option<u32>,
    syn_options: bool,
    payload: &[u8],
) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: src.1,
        dst_port: dst.1,
        flags,
        seq_number: SeqNumber(seq),
        ack_number: ack.map(SeqNumber),
        window_len: 64240,
        max_seg_size: syn_options.then_some(1460),
        window_scale: syn_options.then_some(7),
        sack_permitted: syn_options,
        timestamp: Some(TcpTimestamp {
            tsval: 1000 + seq % 1000,
            tsecr: ack.unwrap_or(0) % 1000,
        }),
        payload_len: payload.len(),
        ..TcpRepr::default()
    };
    let hl = repr.header_len();
    let mut buf = vec![0u8; hl + payload.len()];
    buf[hl..].copy_from_slice(payload);
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut buf[..]),
        src.0,
        dst.0,
        TxChecksum::Full,
    );
    ipv4(src.0, dst.0, IpProtocol::Tcp, (seq & 0xffff) as u16, &buf)
}

/// A UDP datagram.
pub fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 8 + payload.len()];
    buf[8..].copy_from_slice(payload);
    UdpRepr {
        src_port: src.1,
        dst_port: dst.1,
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut buf[..]),
        src.0,
        dst.0,
        payload.len(),
        TxChecksum::Full,
    );
    ipv4(src.0, dst.0, IpProtocol::Udp, 7, &buf)
}

/// The DNS message of a query for `example.com A`, id 0xabcd.
pub fn dns_query_message() -> Vec<u8> {
    let mut m = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["example", "com"] {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}

pub fn dns_query() -> Vec<u8> {
    udp((NODE, 53124), (DNS_SERVER, 53), &dns_query_message())
}

pub fn dns_answer() -> Vec<u8> {
    let mut m = dns_query_message();
    m[2] = 0x81;
    m[3] = 0x80;
    m[7] = 1;
    m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 9, 0, 80]);
    udp((DNS_SERVER, 53), (NODE, 53124), &m)
}

/// A DHCP DISCOVER from the node, xid 0x3903f326 (RFC 2131).
pub fn dhcp_discover() -> Vec<u8> {
    let mut p = vec![0u8; 300];
    p[0] = 1;
    p[1] = 1;
    p[2] = 6;
    p[4..8].copy_from_slice(&0x3903_f326u32.to_be_bytes());
    p[10] = 0x80;
    p[28..34].copy_from_slice(&NODE_MAC.0);
    p[236..240].copy_from_slice(&[0x63, 0x82, 0x53, 0x63]);
    p[240..243].copy_from_slice(&[53, 1, 1]);
    p[243] = 255;
    let mut buf = vec![0u8; 8 + p.len()];
    buf[8..].copy_from_slice(&p);
    let (src, dst) = (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST);
    UdpRepr {
        src_port: 68,
        dst_port: 67,
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut buf[..]),
        src,
        dst,
        p.len(),
        TxChecksum::Full,
    );
    let mut ip = vec![0u8; 20 + buf.len()];
    ip[20..].copy_from_slice(&buf);
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::Udp,
        payload_len: buf.len(),
        ttl: 64,
        ident: 0,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: 0x10,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut ip[..]));
    ethernet(NODE_MAC, EthernetAddress([0xff; 6]), EtherType::Ipv4, &ip)
}

/// The second fragment (offset 1480, last) of a UDP datagram from the host.
pub fn udp_fragment() -> Vec<u8> {
    let payload = vec![0x5au8; 100];
    let mut ip = vec![0u8; 20 + payload.len()];
    ip[20..].copy_from_slice(&payload);
    Ipv4Repr {
        src_addr: HOST,
        dst_addr: NODE,
        protocol: IpProtocol::Udp,
        payload_len: payload.len(),
        ttl: 64,
        ident: 0x1234,
        dont_frag: false,
        more_frags: false,
        frag_offset: 1480,
        dscp_ecn: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut ip[..]));
    ethernet(HOST_MAC, NODE_MAC, EtherType::Ipv4, &ip)
}

pub const CLIENT_PORT: u16 = 40000;
pub const HTTP_PORT: u16 = 80;
pub const CLIENT_ISN: u32 = 1_000_000;
pub const SERVER_ISN: u32 = 7_000_000;
pub const REQUEST: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: node\r\n\r\n";
pub const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";

/// One recorded frame of the sample session.
#[derive(Debug, Clone)]
pub struct SampleFrame {
    pub dir: Direction,
    pub frame: Vec<u8>,
    /// What this frame is, for test messages.
    pub what: &'static str,
}

/// A recorded mix, from the node's point of view: ARP exchange, ping, TCP handshake, an HTTP
/// request and response (the response sent twice: the second a retransmission), a DNS query
/// and answer, a DHCP DISCOVER and a fragment.
pub fn session() -> Vec<SampleFrame> {
    use Direction::{In, Out};
    let c = (HOST, CLIENT_PORT);
    let s = (NODE, HTTP_PORT);
    let (ci, si) = (CLIENT_ISN, SERVER_ISN);
    let rl = REQUEST.len() as u32;
    let f = |dir, what, frame| SampleFrame { dir, frame, what };
    vec![
        f(Out, "arp request", arp_request()),
        f(In, "arp reply", arp_reply()),
        f(In, "ping request", ping(HOST, NODE, false, 0x4242, 1)),
        f(Out, "ping reply", ping(NODE, HOST, true, 0x4242, 1)),
        f(In, "syn", tcp(c, s, TcpFlags::SYN, ci, None, true, &[])),
        f(
            Out,
            "syn-ack",
            tcp(
                s,
                c,
                TcpFlags::SYN | TcpFlags::ACK,
                si,
                Some(ci + 1),
                true,
                &[],
            ),
        ),
        f(
            In,
            "ack",
            tcp(c, s, TcpFlags::ACK, ci + 1, Some(si + 1), false, &[]),
        ),
        f(
            In,
            "request",
            tcp(
                c,
                s,
                TcpFlags::PSH | TcpFlags::ACK,
                ci + 1,
                Some(si + 1),
                false,
                REQUEST,
            ),
        ),
        f(
            Out,
            "response",
            tcp(
                s,
                c,
                TcpFlags::PSH | TcpFlags::ACK,
                si + 1,
                Some(ci + 1 + rl),
                false,
                RESPONSE,
            ),
        ),
        f(
            Out,
            "retransmission",
            tcp(
                s,
                c,
                TcpFlags::PSH | TcpFlags::ACK,
                si + 1,
                Some(ci + 1 + rl),
                false,
                RESPONSE,
            ),
        ),
        f(Out, "dns query", dns_query()),
        f(In, "dns answer", dns_answer()),
        f(Out, "dhcp discover", dhcp_discover()),
        f(In, "fragment", udp_fragment()),
    ]
}
