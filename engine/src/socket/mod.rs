//! The blocking socket API, shaped like `std::net`.
//!
//! A socket names its stack by worker index and handle. Every call takes that worker's lock
//! briefly; a call that must wait reads the node's news epoch first, tries, and sleeps until the
//! epoch moves (a worker processed something applications may care about) or its timeout ends.

mod icmp;
mod tcp;
mod udp;

pub use icmp::{IcmpEvent, IcmpSocket};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;

use std::io;

use protocols::iface::{TcpError, UdpError};

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

pub(crate) fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the node has stopped")
}

pub(crate) fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

/// The deadline `timeout` from now.
pub(crate) fn deadline(timeout: Option<std::time::Duration>) -> Option<std::time::Instant> {
    timeout.map(|t| std::time::Instant::now() + t)
}
