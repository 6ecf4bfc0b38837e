//! `UdpSocket`.

use std::io;
use std::net::SocketAddrV4;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use protocols::iface::{IcmpErrorReport, SocketHandle};

use super::{deadline, udp_error, Closable, SocketCloser};
use crate::node::Node;
use crate::steer::flow_owner;

/// A UDP socket bound to one port on every worker: datagrams of a flow are received by the
/// worker that owns it, and sent by it.
pub struct UdpSocket {
    node: Node,
    port: u16,
    handles: Vec<SocketHandle>,
    read_timeout: Option<Duration>,
    closed: Arc<AtomicBool>,
    /// Given up to apps by [`UdpSocket::into_worker_handles`]: their closer closes it.
    detached: bool,
}

impl UdpSocket {
    /// Binds `port` (0: a random free ephemeral port).
    pub fn bind(node: &Node, port: u16) -> io::Result<UdpSocket> {
        let first = node
            .with_stack(0, |s, _| s.udp().bind(port))
            .map_err(udp_error)?;
        let port = node
            .with_stack(0, |s, _| s.udp().local_port(first))
            .unwrap_or(port);
        let mut handles = vec![first];
        for w in 1..node.queues() {
            match node.with_stack(w, |s, _| s.udp().bind(port)) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    for (i, h) in handles.into_iter().enumerate() {
                        node.with_stack(i, |s, _| s.udp().close(h));
                    }
                    return Err(udp_error(e));
                }
            }
        }
        Ok(UdpSocket {
            node: node.clone(),
            port,
            closed: Arc::new(AtomicBool::new(false)),
            handles,
            read_timeout: None,
            detached: false,
        })
    }

    pub fn local_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.node.current_address(), self.port)
    }

    pub fn set_read_timeout(&mut self, t: Option<Duration>) {
        self.read_timeout = t;
    }

    /// The worker that owns the flow to `dst` and this socket's handle in its stack, for a
    /// run-to-completion app ([`crate::rtc`]) on that worker. The socket stays bound and is
    /// still closed when dropped; while the app runs, nothing else should read from it (the
    /// app's reads take its datagrams, whichever peer sent them).
    pub fn raw_parts_for(&self, dst: SocketAddrV4) -> (usize, SocketHandle) {
        let w = flow_owner(self.port, dst.ip().octets(), dst.port(), self.handles.len());
        (w, self.handles[w])
    }

    /// Queues one datagram to `dst` on the worker that owns the flow.
    pub fn send_to(&self, buf: &[u8], dst: SocketAddrV4) -> io::Result<usize> {
        let w = flow_owner(self.port, dst.ip().octets(), dst.port(), self.handles.len());
        let h = self.handles[w];
        self.node
            .with_stack(w, |s, _| s.udp().send_to(h, dst, buf))
            .map_err(udp_error)?;
        Ok(buf.len())
    }

    /// Queues one datagram to `dst` with IP TTL `ttl` (traceroute's probes).
    pub fn send_to_ttl(&self, buf: &[u8], dst: SocketAddrV4, ttl: u8) -> io::Result<usize> {
        let w = flow_owner(self.port, dst.ip().octets(), dst.port(), self.handles.len());
        let h = self.handles[w];
        self.node
            .with_stack(w, |s, _| s.udp().send_to_ttl(h, dst, buf, Some(ttl)))
            .map_err(udp_error)?;
        Ok(buf.len())
    }

    /// The next ICMP error (time exceeded, unreachable) about a datagram this socket sent,
    /// waiting at most `timeout`. Its `at` is on the node's clock ([`Node::now`]).
    pub fn recv_error(&self, timeout: Option<Duration>) -> io::Result<IcmpErrorReport> {
        super::recv_any(
            &self.node,
            &self.handles,
            protocols::iface::Wake::Udp,
            deadline(timeout),
            super::timed_out,
            |s, h| s.udp().recv_error(h),
            udp_error,
        )
    }

    /// Receives one datagram; a datagram longer than `buf` is truncated, as with `std::net`.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddrV4)> {
        super::recv_any(
            &self.node,
            &self.handles,
            protocols::iface::Wake::Udp,
            deadline(self.read_timeout),
            || io::Error::new(io::ErrorKind::WouldBlock, "timed out"),
            |s, h| s.udp().recv_into(h, buf),
            udp_error,
        )
    }

    /// Receives one datagram from `peer` only, as a socket connected to it does (Linux's
    /// semantics): datagrams from others are dropped, and an ICMP hard error about a datagram
    /// sent to `peer` (port or protocol unreachable: `ConnectionRefused`; administratively
    /// prohibited: `HostUnreachable`) fails this call once instead of leaving it to time out.
    /// Other ICMP errors, soft ones, are dropped as a connected Linux socket ignores them.
    pub fn recv_connected(&self, buf: &mut [u8], peer: SocketAddrV4) -> io::Result<usize> {
        use protocols::wire::icmpv4::{dst_unreachable as du, msg_type};
        let got = super::recv_any(
            &self.node,
            &self.handles,
            protocols::iface::Wake::Udp,
            deadline(self.read_timeout),
            || io::Error::new(io::ErrorKind::WouldBlock, "timed out"),
            |s, h| {
                while let Some((n, from)) = s.udp().recv_into(h, buf)? {
                    if from == peer {
                        return Ok(Some(Ok(n)));
                    }
                }
                while let Some(r) = s.udp().recv_error(h)? {
                    let about_peer = r.dst == *peer.ip() && r.detail == peer.port();
                    let kind = match (r.msg_type, r.code) {
                        (
                            msg_type::DST_UNREACHABLE,
                            du::PORT_UNREACHABLE | du::PROTO_UNREACHABLE,
                        ) => io::ErrorKind::ConnectionRefused,
                        (msg_type::DST_UNREACHABLE, 13) => io::ErrorKind::HostUnreachable,
                        _ => continue,
                    };
                    if about_peer {
                        return Ok(Some(Err(kind)));
                    }
                }
                Ok(None)
            },
            udp_error,
        )?;
        got.map_err(|kind| {
            let what = match kind {
                io::ErrorKind::ConnectionRefused => "connection refused",
                _ => "no route to host",
            };
            io::Error::new(kind, what)
        })
    }

    /// Gives the socket up to run-to-completion apps ([`crate::rtc`]), one per worker: handle
    /// `i` is in worker `i`'s stack, and only an app on that worker may use it (each worker
    /// receives the flows it owns, and answers them). The port stays bound until the returned
    /// closer closes it; the apps' calls then fail with `UdpError::BadHandle`.
    pub fn into_worker_handles(mut self) -> (Vec<SocketHandle>, SocketCloser) {
        self.detached = true;
        (self.handles.clone(), self.closer())
    }
}

impl UdpSocket {
    /// A handle that closes this socket from another thread; a blocked `recv_from` then fails.
    pub fn closer(&self) -> SocketCloser {
        SocketCloser::new(
            &self.node,
            self.closed.clone(),
            Closable::Udp(self.handles.clone()),
        )
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        if !self.detached {
            self.closer().close();
        }
    }
}
