//! UDP (RFC 768): sockets bound to a port, a bounded receive queue each, and port unreachable
//! for datagrams to a closed port.

use crate::wire::bytes::{copy, get_mut};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddrV4;

use super::counters::DropReason;
use super::egress::emit_ipv4;
use super::icmp::{IcmpError, IcmpErrorReport, ERROR_QUEUE};
use super::ingress::IpMeta;
use super::sockets::{Slab, SocketHandle};
use super::{Sink, Stack, Wake};
use crate::rand::Rng;
use crate::time::Instant;
use crate::wire::{self, icmpv4, IpProtocol, UdpPacket, UdpRepr};

/// Datagrams queued for sending across all UDP sockets of a stack.
const TX_QUEUE: usize = 1024;
/// RFC 6056 §2.1: the ephemeral range suggested by IANA.
pub const EPHEMERAL_PORTS: core::ops::RangeInclusive<u16> = 49152..=65535;

/// A received datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub from: SocketAddrV4,
    pub data: Vec<u8>,
}

/// Why a UDP call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UdpError {
    #[error("address in use")]
    AddrInUse,
    #[error("no free ephemeral port")]
    NoFreePort,
    #[error("datagram larger than IPv4 allows (65507 bytes of data)")]
    TooBig,
    #[error("send queue full")]
    QueueFull,
    #[error("socket closed")]
    BadHandle,
}

#[derive(Debug)]
struct UdpSocket {
    port: u16,
    rx: VecDeque<Datagram>,
    errors: VecDeque<IcmpErrorReport>,
    /// Buffers of datagrams already read ([`Udp::recv_into`]), reused for the next ones:
    /// in steady state receiving allocates nothing.
    spare: Vec<Vec<u8>>,
}

#[derive(Debug)]
struct Outgoing {
    src_port: u16,
    dst: SocketAddrV4,
    data: Vec<u8>,
    ttl: Option<u8>,
}

#[derive(Debug, Default)]
pub(super) struct UdpTable {
    sockets: Slab<UdpSocket>,
    by_port: HashMap<u16, SocketHandle>,
    tx: VecDeque<Outgoing>,
    /// Buffers of datagrams already sent, reused for the next ones.
    spare_tx: Vec<Vec<u8>>,
}

impl UdpTable {
    pub fn has_tx(&self) -> bool {
        !self.tx.is_empty()
    }

    /// Keeps a sent datagram's buffer for the next send (as many as the send queue holds).
    fn recycle(&mut self, data: Vec<u8>) {
        if self.spare_tx.len() < TX_QUEUE {
            self.spare_tx.push(data);
        }
    }
}

/// The UDP table's socket API (`stack.udp()`): it borrows the table and what binding needs
/// (the stack's generator, for ephemeral ports), nothing else of the stack.
pub struct Udp<'a> {
    table: &'a mut UdpTable,
    rng: &'a mut Rng,
    /// Datagrams held per socket (`StackConfig::udp_rx_queue`): as many spare buffers kept.
    rx_limit: usize,
}

impl Stack {
    pub fn udp(&mut self) -> Udp<'_> {
        Udp {
            table: &mut self.udp,
            rng: &mut self.rng,
            rx_limit: self.config.udp_rx_queue,
        }
    }
}

impl Udp<'_> {
    /// Binds a UDP socket to `port` (0 picks a random free ephemeral port, RFC 6056).
    pub fn bind(&mut self, port: u16) -> Result<SocketHandle, UdpError> {
        let port = if port == 0 {
            self.ephemeral_port()?
        } else {
            port
        };
        if self.table.by_port.contains_key(&port) {
            return Err(UdpError::AddrInUse);
        }
        let h = self.table.sockets.insert(UdpSocket {
            port,
            rx: VecDeque::new(),
            errors: VecDeque::new(),
            spare: Vec::new(),
        });
        self.table.by_port.insert(port, h);
        Ok(h)
    }

    fn ephemeral_port(&mut self) -> Result<u16, UdpError> {
        let span = u64::from(EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start()) + 1;
        for _ in 0..64 {
            let port = EPHEMERAL_PORTS.start() + self.rng.below(span) as u16;
            if !self.table.by_port.contains_key(&port) {
                return Ok(port);
            }
        }
        EPHEMERAL_PORTS
            .clone()
            .find(|p| !self.table.by_port.contains_key(p))
            .ok_or(UdpError::NoFreePort)
    }

    pub fn local_port(&self, h: SocketHandle) -> Option<u16> {
        self.table.sockets.get(h).map(|s| s.port)
    }

    /// Queues a datagram; it goes out at the next `poll`.
    pub fn send_to(
        &mut self,
        h: SocketHandle,
        dst: SocketAddrV4,
        data: &[u8],
    ) -> Result<(), UdpError> {
        self.send_to_ttl(h, dst, data, None)
    }

    /// Queues a datagram with its own IP TTL (traceroute's probes); `None` is the stack's.
    pub fn send_to_ttl(
        &mut self,
        h: SocketHandle,
        dst: SocketAddrV4,
        data: &[u8],
        ttl: Option<u8>,
    ) -> Result<(), UdpError> {
        let sock = self.table.sockets.get(h).ok_or(UdpError::BadHandle)?;
        // Larger than the MTU goes out in fragments (iface/fragment.rs).
        if data.len() + 8 > super::fragment::MAX_IPV4_PAYLOAD {
            return Err(UdpError::TooBig);
        }
        if self.table.tx.len() >= TX_QUEUE {
            return Err(UdpError::QueueFull);
        }
        let src_port = sock.port;
        let mut buf = self.table.spare_tx.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        self.table.tx.push_back(Outgoing {
            src_port,
            dst,
            data: buf,
            ttl,
        });
        Ok(())
    }

    /// The next datagram received by `h`, if any.
    pub fn recv_from(&mut self, h: SocketHandle) -> Result<Option<Datagram>, UdpError> {
        let sock = self.table.sockets.get_mut(h).ok_or(UdpError::BadHandle)?;
        Ok(sock.rx.pop_front())
    }

    /// The next datagram copied into `buf` (the rest of a longer one is discarded, as a
    /// kernel's `recv` does): its length and sender. Its buffer stays with the socket for the
    /// next arrival, so a steady flow allocates nothing.
    pub fn recv_into(
        &mut self,
        h: SocketHandle,
        buf: &mut [u8],
    ) -> Result<Option<(usize, SocketAddrV4)>, UdpError> {
        let limit = self.rx_limit;
        let sock = self.table.sockets.get_mut(h).ok_or(UdpError::BadHandle)?;
        let Some(d) = sock.rx.pop_front() else {
            return Ok(None);
        };
        let n = d.data.len().min(buf.len());
        copy(buf, &d.data);
        if sock.spare.len() < limit {
            sock.spare.push(d.data);
        }
        Ok(Some((n, d.from)))
    }

    /// The next ICMP error about a datagram sent by `h`, if any.
    pub fn recv_error(&mut self, h: SocketHandle) -> Result<Option<IcmpErrorReport>, UdpError> {
        let sock = self.table.sockets.get_mut(h).ok_or(UdpError::BadHandle)?;
        Ok(sock.errors.pop_front())
    }

    pub fn close(&mut self, h: SocketHandle) {
        if let Some(s) = self.table.sockets.remove(h) {
            self.table.by_port.remove(&s.port);
        }
    }
}

impl Stack {
    pub(super) fn receive_udp(
        &mut self,
        now: Instant,
        meta: IpMeta,
        header: &[u8],
        body: &[u8],
        sink: &mut impl Sink,
    ) {
        let packet = match UdpPacket::new_checked(body) {
            Ok(p) => p,
            Err(_) => return self.counters.drop(DropReason::UdpMalformed),
        };
        let verify = self.config.rx_verify_checksums;
        let repr = match UdpRepr::parse(&packet, meta.src, meta.dst, verify) {
            Ok(r) => r,
            Err(wire::Error::BadChecksum) => return self.counters.drop(DropReason::UdpBadChecksum),
            Err(_) => return self.counters.drop(DropReason::UdpMalformed),
        };
        if repr.dst_port == super::dhcp::CLIENT_PORT && self.dhcp.is_some() {
            return self.receive_dhcp(now, packet.payload());
        }
        let limit = self.config.udp_rx_queue;
        let Some(&h) = self.udp.by_port.get(&repr.dst_port) else {
            self.counters.drop(DropReason::UdpNoListener);
            let unreachable = IcmpError::Unreachable(icmpv4::dst_unreachable::PORT_UNREACHABLE);
            self.send_icmp_error(now, sink, meta, unreachable, header, body);
            return;
        };
        let Some(sock) = self.udp.sockets.get_mut(h) else {
            return;
        };
        if sock.rx.len() >= limit {
            return self.counters.drop(DropReason::UdpRxQueueFull);
        }
        let mut data = sock.spare.pop().unwrap_or_default();
        data.clear();
        data.extend_from_slice(packet.payload());
        sock.rx.push_back(Datagram {
            from: SocketAddrV4::new(meta.src, repr.src_port),
            data,
        });
        self.news.push(Wake::Udp(h));
    }

    /// Queues `report` on the socket bound to `port`; false if there is none or it is full.
    pub(super) fn udp_push_error(&mut self, port: u16, report: IcmpErrorReport) -> bool {
        let Some(&h) = self.udp.by_port.get(&port) else {
            return false;
        };
        match self.udp.sockets.get_mut(h) {
            Some(s) if s.errors.len() < ERROR_QUEUE => {
                s.errors.push_back(report);
                true
            }
            _ => false,
        }
    }

    pub(super) fn flush_udp(&mut self, now: Instant, sink: &mut impl Sink) {
        let src = self.address();
        let default_ttl = self.config.ttl;
        let csum = self.config.tx_checksum;
        while let Some(out) = self.udp.tx.pop_front() {
            let mut eg = self.egress();
            let dst = *out.dst.ip();
            let ttl = out.ttl.unwrap_or(default_ttl);
            let repr = UdpRepr {
                src_port: out.src_port,
                dst_port: out.dst.port(),
            };
            if 28 + out.data.len() > eg.mtu_to(dst, now) {
                let mut dgram = vec![0u8; 8 + out.data.len()];
                if let Some(body) = dgram.get_mut(8..) {
                    body.copy_from_slice(&out.data);
                }
                let len = out.data.len();
                // Fragments cannot have their checksum finished by the device: full sum here.
                let full = wire::TxChecksum::Full;
                repr.emit(
                    &mut UdpPacket::new_unchecked(&mut dgram),
                    src,
                    dst,
                    len,
                    full,
                );
                eg.send_datagram(now, sink, src, dst, IpProtocol::Udp, ttl, &dgram);
                self.udp.recycle(out.data);
                continue;
            }
            let ident = eg.next_ident();
            eg.send_ipv4(now, sink, dst, |buf| {
                let udp_len = 8 + out.data.len();
                let Some(seg) = buf.get_mut(20..20 + udp_len) else {
                    return 0;
                };
                copy(get_mut(seg, 8..), &out.data);
                repr.emit(
                    &mut UdpPacket::new_unchecked(seg),
                    src,
                    dst,
                    out.data.len(),
                    csum,
                );
                emit_ipv4(buf, src, dst, IpProtocol::Udp, udp_len, ident, ttl)
            });
            self.udp.recycle(out.data);
        }
    }
}
