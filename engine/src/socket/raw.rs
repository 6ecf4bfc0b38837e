//! `RawSocket`: every IPv4 packet of one protocol, and sends with or without a caller-built
//! header (see `protocols::iface::raw` for what is checked).

use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

use protocols::iface::{RawError, RawPacket, SocketHandle};
use protocols::wire::IpProtocol;

use super::{deadline, timed_out};
use crate::node::Node;

/// A raw IPv4 socket bound to one protocol on every worker: it receives a copy of each packet
/// of that protocol whichever worker reads it, and sends through worker 0.
pub struct RawSocket {
    node: Node,
    protocol: IpProtocol,
    handles: Vec<SocketHandle>,
}

pub(crate) fn raw_error(e: RawError) -> io::Error {
    let kind = match e {
        RawError::BadHandle => io::ErrorKind::NotConnected,
        RawError::TooBig | RawError::BadHeader(_) => io::ErrorKind::InvalidInput,
        RawError::QueueFull => io::ErrorKind::WouldBlock,
        RawError::NotOurSource(_) | RawError::NoAddress => io::ErrorKind::AddrNotAvailable,
    };
    io::Error::new(kind, e)
}

impl RawSocket {
    /// Opens a raw socket for `protocol` (1 for ICMP, 17 for UDP, ...).
    pub fn bind(node: &Node, protocol: u8) -> io::Result<RawSocket> {
        let protocol = IpProtocol::from(protocol);
        let handles = (0..node.queues())
            .map(|w| node.with_stack(w, |s, _| s.raw().bind(protocol)))
            .collect();
        Ok(RawSocket {
            node: node.clone(),
            protocol,
            handles,
        })
    }

    pub fn protocol(&self) -> u8 {
        self.protocol.into()
    }

    /// Sends `payload` to `dst` under a header the stack builds (our address, this socket's
    /// protocol, `ttl` or the stack's).
    pub fn send_to(&self, payload: &[u8], dst: Ipv4Addr, ttl: Option<u8>) -> io::Result<()> {
        let h = self.handles[0];
        self.node
            .with_stack(0, |s, _| s.raw().send(h, dst, ttl, payload))
            .map_err(raw_error)
    }

    /// Sends a whole IPv4 packet built by the caller (`IP_HDRINCL`): a source of 0.0.0.0 and
    /// an identification of 0 are filled in, the header checksum is computed.
    pub fn send_packet(&self, packet: &[u8]) -> io::Result<()> {
        let h = self.handles[0];
        self.node
            .with_stack(0, |s, _| s.raw().send_packet(h, packet))
            .map_err(raw_error)
    }

    /// The next packet (whole, header included), waiting at most `timeout`.
    pub fn recv(&self, timeout: Option<Duration>) -> io::Result<RawPacket> {
        super::recv_any(
            &self.node,
            &self.handles,
            protocols::iface::Wake::Raw,
            deadline(timeout),
            timed_out,
            |s, h| s.raw().recv(h),
            raw_error,
        )
    }
}

impl Drop for RawSocket {
    fn drop(&mut self) {
        for (w, &h) in self.handles.iter().enumerate() {
            self.node.with_stack(w, |s, _| s.raw().close(h));
        }
    }
}
