//! The blocking socket API, shaped like `std::net`.
//!
//! A socket names its stack by worker index and handle. Every call takes that worker's lock
//! briefly; a call that must wait reads the node's news epoch first, tries, and sleeps until the
//! epoch moves (a worker processed something applications may care about) or its timeout ends.

mod dhcp;
mod icmp;
mod raw;
mod tcp;
mod udp;

pub use icmp::{IcmpEvent, IcmpSocket};
pub use protocols::iface::RawPacket;
pub use raw::RawSocket;
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
// SocketCloser is defined below.

use std::io;

use protocols::iface::{TcpError, UdpError};

use crate::news::Interest;

pub(crate) fn tcp_error(e: TcpError) -> io::Error {
    let kind = match e {
        TcpError::AddrInUse => io::ErrorKind::AddrInUse,
        TcpError::NoFreePort | TcpError::BadAddress => io::ErrorKind::AddrNotAvailable,
        TcpError::MaxConns => io::ErrorKind::OutOfMemory,
        TcpError::BadHandle => io::ErrorKind::NotConnected,
        TcpError::WouldBlock => io::ErrorKind::WouldBlock,
        TcpError::NotConnected => io::ErrorKind::NotConnected,
        TcpError::Refused => io::ErrorKind::ConnectionRefused,
        TcpError::Reset => io::ErrorKind::ConnectionReset,
        TcpError::TimedOut => io::ErrorKind::TimedOut,
        TcpError::HostUnreachable => io::ErrorKind::HostUnreachable,
        TcpError::NetUnreachable => io::ErrorKind::NetworkUnreachable,
        TcpError::Closed => io::ErrorKind::BrokenPipe,
    };
    io::Error::new(kind, e)
}

pub(crate) fn udp_error(e: UdpError) -> io::Error {
    let kind = match e {
        UdpError::AddrInUse => io::ErrorKind::AddrInUse,
        UdpError::NoFreePort => io::ErrorKind::AddrNotAvailable,
        UdpError::TooBig => io::ErrorKind::InvalidInput,
        UdpError::QueueFull => io::ErrorKind::WouldBlock,
        UdpError::BadHandle => io::ErrorKind::NotConnected,
    };
    io::Error::new(kind, e)
}

/// What a [`SocketCloser`] closes.
#[derive(Clone)]
pub(crate) enum Closable {
    Listener(u16),
    Udp(Vec<protocols::iface::SocketHandle>),
}

/// Closes a listening TCP port or a UDP socket from any thread (e.g. the shell's `serve stop`):
/// the socket leaves every worker's stack and callers blocked on it wake with an error.
#[derive(Clone)]
pub struct SocketCloser {
    node: crate::Node,
    closed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    what: Closable,
}

impl SocketCloser {
    pub(crate) fn new(
        node: &crate::Node,
        closed: std::sync::Arc<std::sync::atomic::AtomicBool>,
        what: Closable,
    ) -> Self {
        SocketCloser {
            node: node.clone(),
            closed,
            what,
        }
    }

    /// Closes the socket (once; later calls do nothing).
    pub fn close(&self) {
        if self.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        for w in 0..self.node.queues() {
            match &self.what {
                Closable::Listener(port) => self.node.with_stack(w, |s, _| s.tcp_unlisten(*port)),
                Closable::Udp(handles) => {
                    if let Some(&h) = handles.get(w) {
                        self.node.with_stack(w, |s, _| s.udp().close(h));
                    }
                }
            }
        }
        self.node.inner.publish_all();
    }
}

pub(crate) fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the node has stopped")
}

pub(crate) fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

/// The receive loop of every per-worker socket (one handle per worker's stack, each named by
/// `wake`'s kind): asks each worker in turn with `take`, and when none has anything waits for
/// news about one of them until `until`. Fails with [`stopped`] once the node has stopped and
/// with `on_timeout()` at the deadline.
pub(crate) fn recv_any<T, E>(
    node: &crate::Node,
    handles: &[protocols::iface::SocketHandle],
    wake: fn(protocols::iface::SocketHandle) -> protocols::iface::Wake,
    until: Option<std::time::Instant>,
    on_timeout: fn() -> io::Error,
    mut take: impl FnMut(
        &mut protocols::iface::Stack,
        protocols::iface::SocketHandle,
    ) -> Result<Option<T>, E>,
    map_err: impl Fn(E) -> io::Error,
) -> io::Result<T> {
    let got = node.block_on(Interest::Each(handles, wake), until, None, || {
        for (w, &h) in handles.iter().enumerate() {
            if let Some(v) = node.with_stack(w, |s, _| take(s, h)).map_err(&map_err)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    })?;
    got.ok_or_else(on_timeout)
}

/// The deadline `timeout` from now.
pub(crate) fn deadline(timeout: Option<std::time::Duration>) -> Option<std::time::Instant> {
    timeout.map(|t| std::time::Instant::now() + t)
}
