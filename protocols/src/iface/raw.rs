//! Raw IPv4 sockets: one IPv4 protocol number each.
//!
//! Receiving: every IPv4 packet addressed to this node (or broadcast) whose protocol matches is
//! copied, whole (header included, as Linux raw sockets deliver it), to every raw socket bound
//! to that protocol, in addition to the normal processing. Fragments are not delivered
//! (reassembly is not enabled). A packet of a protocol the stack does not handle draws no
//! protocol-unreachable when a raw socket took it.
//!
//! Sending: [`Raw::send`] sends a payload under a header the stack builds (the socket's
//! protocol, our address, the stack's TTL unless given); [`Raw::send_packet`] sends a
//! caller-built IPv4 header and payload (Linux's `IP_HDRINCL`). The header is checked (version
//! 4, header length at least 20 and within the packet, total length equal to the buffer, no
//! larger than the MTU), the source must be our address or 0.0.0.0 (filled with ours), an
//! identification of 0 is filled in, and the header checksum is always recomputed. Its
//! protocol field may differ from the socket's (as with Linux's `IPPROTO_RAW`); the transport
//! checksum is the caller's business.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use super::counters::DropReason;
use super::egress::emit_ipv4;
use super::sockets::{Slab, SocketHandle};
use super::{Sink, Stack, Wake};
use crate::time::Instant;
use crate::wire::{IpProtocol, Ipv4Packet};

/// Packets held per raw socket before new copies are dropped.
const RAW_RX_QUEUE: usize = 256;
/// Packets queued for sending across all raw sockets.
const RAW_TX_QUEUE: usize = 256;

/// A packet received by a raw socket: the whole IPv4 packet, header included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPacket {
    pub packet: Vec<u8>,
    /// When the stack received it.
    pub at: Instant,
}

impl RawPacket {
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Packet::new_unchecked(&self.packet[..]).src_addr()
    }

    /// The payload after the IPv4 header.
    pub fn payload(&self) -> &[u8] {
        let ihl = usize::from(self.packet.first().copied().unwrap_or(0x45) & 0x0f) * 4;
        self.packet.get(ihl..).unwrap_or_default()
    }
}

/// Why a raw-socket call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RawError {
    #[error("socket closed")]
    BadHandle,
    #[error("packet larger than the MTU allows")]
    TooBig,
    #[error("send queue full")]
    QueueFull,
    #[error("bad IPv4 header: {0}")]
    BadHeader(&'static str),
    #[error("source address {0} is not this node's")]
    NotOurSource(Ipv4Addr),
    #[error("the node holds no address yet")]
    NoAddress,
}

#[derive(Debug)]
struct RawSocket {
    protocol: IpProtocol,
    rx: VecDeque<RawPacket>,
}

#[derive(Debug)]
enum RawOut {
    Payload {
        dst: Ipv4Addr,
        protocol: IpProtocol,
        ttl: Option<u8>,
        data: Vec<u8>,
    },
    /// A whole, checked packet whose source, ident and checksum are already filled.
    Packet { dst: Ipv4Addr, data: Vec<u8> },
}

#[derive(Debug, Default)]
pub(super) struct RawTable {
    sockets: Slab<RawSocket>,
    tx: VecDeque<RawOut>,
}

impl RawTable {
    pub fn has_tx(&self) -> bool {
        !self.tx.is_empty()
    }
}

/// The raw table's socket API (`stack.raw()`): it borrows the table and the IP context a
/// caller-built header is checked and completed with (the node's address, the MTU, the IP
/// identification counter), nothing else of the stack.
pub struct Raw<'a> {
    table: &'a mut RawTable,
    me: Ipv4Addr,
    mtu: usize,
    ip_ident: &'a mut u16,
}

impl Stack {
    pub fn raw(&mut self) -> Raw<'_> {
        Raw {
            me: self.address(),
            table: &mut self.raw,
            mtu: self.config.mtu,
            ip_ident: &mut self.ip_ident,
        }
    }
}

impl Raw<'_> {
    /// Opens a raw socket that receives a copy of every IPv4 packet of `protocol`.
    pub fn bind(&mut self, protocol: IpProtocol) -> SocketHandle {
        self.table.sockets.insert(RawSocket {
            protocol,
            rx: VecDeque::new(),
        })
    }

    pub fn close(&mut self, h: SocketHandle) {
        self.table.sockets.remove(h);
    }

    /// The next packet received by `h`, if any.
    pub fn recv(&mut self, h: SocketHandle) -> Result<Option<RawPacket>, RawError> {
        let s = self.table.sockets.get_mut(h).ok_or(RawError::BadHandle)?;
        Ok(s.rx.pop_front())
    }

    /// Queues `data` to `dst` under a header the stack builds with the socket's protocol.
    pub fn send(
        &mut self,
        h: SocketHandle,
        dst: Ipv4Addr,
        ttl: Option<u8>,
        data: &[u8],
    ) -> Result<(), RawError> {
        let protocol = self
            .table
            .sockets
            .get(h)
            .ok_or(RawError::BadHandle)?
            .protocol;
        if data.len() + 20 > self.mtu {
            return Err(RawError::TooBig);
        }
        if self.me.is_unspecified() {
            return Err(RawError::NoAddress);
        }
        if self.table.tx.len() >= RAW_TX_QUEUE {
            return Err(RawError::QueueFull);
        }
        self.table.tx.push_back(RawOut::Payload {
            dst,
            protocol,
            ttl,
            data: data.to_vec(),
        });
        Ok(())
    }

    /// Queues a caller-built IPv4 packet (header included); see the module docs for the checks.
    pub fn send_packet(&mut self, h: SocketHandle, packet: &[u8]) -> Result<(), RawError> {
        self.table.sockets.get(h).ok_or(RawError::BadHandle)?;
        let me = self.me;
        if me.is_unspecified() {
            return Err(RawError::NoAddress);
        }
        if packet.len() > self.mtu {
            return Err(RawError::TooBig);
        }
        if packet.len() < 20 {
            return Err(RawError::BadHeader("shorter than 20 bytes"));
        }
        let mut data = packet.to_vec();
        let mut p = Ipv4Packet::new_unchecked(&mut data[..]);
        if p.version() != 4 {
            return Err(RawError::BadHeader("version is not 4"));
        }
        let ihl = p.header_len();
        if ihl < 20 || ihl > packet.len() {
            return Err(RawError::BadHeader("header length out of range"));
        }
        if usize::from(p.total_len()) != packet.len() {
            return Err(RawError::BadHeader(
                "total length differs from the packet's",
            ));
        }
        let dst = p.dst_addr();
        if dst.is_unspecified() {
            return Err(RawError::BadHeader("destination 0.0.0.0"));
        }
        let src = p.src_addr();
        if src.is_unspecified() {
            p.set_src_addr(me);
        } else if src != me {
            return Err(RawError::NotOurSource(src));
        }
        if p.ident() == 0 {
            *self.ip_ident = self.ip_ident.wrapping_add(1);
            p.set_ident(*self.ip_ident);
        }
        p.fill_checksum();
        if self.table.tx.len() >= RAW_TX_QUEUE {
            return Err(RawError::QueueFull);
        }
        self.table.tx.push_back(RawOut::Packet { dst, data });
        Ok(())
    }
}

impl Stack {
    /// Copies a received packet (`packet` is exactly the IPv4 packet) to the raw sockets of its
    /// protocol; true if any took it.
    pub(super) fn deliver_raw(
        &mut self,
        now: Instant,
        protocol: IpProtocol,
        packet: &[u8],
    ) -> bool {
        if self.raw.sockets.len() == 0 {
            return false;
        }
        let mut took = false;
        let mut full = 0;
        let handles: Vec<SocketHandle> = self
            .raw
            .sockets
            .iter()
            .filter(|(_, s)| s.protocol == protocol)
            .map(|(h, _)| h)
            .collect();
        for h in handles {
            let Some(s) = self.raw.sockets.get_mut(h) else {
                continue;
            };
            if s.rx.len() >= RAW_RX_QUEUE {
                full += 1;
                continue;
            }
            s.rx.push_back(RawPacket {
                packet: packet.to_vec(),
                at: now,
            });
            self.news.push(Wake::Raw(h));
            took = true;
        }
        for _ in 0..full {
            self.counters.drop(DropReason::RawRxQueueFull);
        }
        if took {
            self.counters.raw_delivered += 1;
        }
        took
    }

    pub(super) fn flush_raw(&mut self, now: Instant, sink: &mut impl Sink) {
        let src = self.address();
        let default_ttl = self.config.ttl;
        while let Some(out) = self.raw.tx.pop_front() {
            let mut eg = self.egress();
            match out {
                RawOut::Payload {
                    dst,
                    protocol,
                    ttl,
                    data,
                } => {
                    let ident = eg.next_ident();
                    let ttl = ttl.unwrap_or(default_ttl);
                    eg.send_ipv4(now, sink, dst, |buf| {
                        let Some(body) = buf.get_mut(20..20 + data.len()) else {
                            return 0;
                        };
                        body.copy_from_slice(&data);
                        emit_ipv4(buf, src, dst, protocol, data.len(), ident, ttl)
                    });
                }
                RawOut::Packet { dst, data } => {
                    eg.send_ipv4(now, sink, dst, |buf| match buf.get_mut(..data.len()) {
                        Some(b) => {
                            b.copy_from_slice(&data);
                            data.len()
                        }
                        None => 0,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "raw_tests.rs"]
mod tests;
