//! The engine's `io::Error`s as the exceptions Python's socket module raises: an `OSError` with
//! the errno Linux would give, which Python itself turns into `ConnectionRefusedError`,
//! `ConnectionResetError`, `BrokenPipeError`, `TimeoutError`, `BlockingIOError`, ...

use std::io;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;

/// Linux's errno values for the kinds the engine reports.
pub mod errno {
    pub const EPERM: i32 = 1;
    pub const EIO: i32 = 5;
    pub const EBADF: i32 = 9;
    pub const EAGAIN: i32 = 11;
    pub const ENOMEM: i32 = 12;
    pub const EINVAL: i32 = 22;
    pub const EPIPE: i32 = 32;
    pub const EDESTADDRREQ: i32 = 89;
    pub const EMSGSIZE: i32 = 90;
    pub const ENOPROTOOPT: i32 = 92;
    pub const EPROTONOSUPPORT: i32 = 93;
    pub const EOPNOTSUPP: i32 = 95;
    pub const EADDRINUSE: i32 = 98;
    pub const EADDRNOTAVAIL: i32 = 99;
    pub const ENETUNREACH: i32 = 101;
    pub const ECONNRESET: i32 = 104;
    pub const EISCONN: i32 = 106;
    pub const ENOTCONN: i32 = 107;
    pub const ETIMEDOUT: i32 = 110;
    pub const ECONNREFUSED: i32 = 111;
    pub const EHOSTUNREACH: i32 = 113;
}

/// An `OSError(errno, message)`; Python picks the subclass from the errno.
pub fn os_error(code: i32, msg: impl Into<String>) -> PyErr {
    PyOSError::new_err((code, msg.into()))
}

/// The errno for an engine error.
pub fn errno_of(e: &io::Error) -> i32 {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => errno::ECONNREFUSED,
        K::HostUnreachable => errno::EHOSTUNREACH,
        K::NetworkUnreachable => errno::ENETUNREACH,
        K::ConnectionReset | K::ConnectionAborted => errno::ECONNRESET,
        K::BrokenPipe => errno::EPIPE,
        K::TimedOut => errno::ETIMEDOUT,
        K::WouldBlock => errno::EAGAIN,
        K::NotConnected => errno::ENOTCONN,
        K::AddrInUse => errno::EADDRINUSE,
        K::AddrNotAvailable => errno::EADDRNOTAVAIL,
        K::InvalidInput => errno::EINVAL,
        K::OutOfMemory => errno::ENOMEM,
        K::PermissionDenied => errno::EPERM,
        _ => errno::EIO,
    }
}

/// An engine error as Python's socket module would raise it.
pub fn io_error(e: io::Error) -> PyErr {
    let code = errno_of(&e);
    os_error(code, e.to_string())
}

/// The socket operation's "timed out" (`socket.timeout` is `TimeoutError` since 3.10).
pub fn timed_out() -> PyErr {
    os_error(errno::ETIMEDOUT, "timed out")
}

/// A failed client or service (`anyhow` from the apps): `OSError` with the whole chain of
/// reasons, `ConnectionRefusedError` and friends where an `io::Error` is at the root.
pub fn app_error(e: anyhow::Error) -> PyErr {
    let msg = format!("{e:#}");
    for cause in e.chain() {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::Interrupted {
                return pyo3::exceptions::PyKeyboardInterrupt::new_err(());
            }
            return os_error(errno_of(io), msg);
        }
    }
    PyRuntimeError::new_err(msg)
}

/// Bad arguments: `ValueError`.
pub fn value_error(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}
