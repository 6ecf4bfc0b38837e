//! `tapir._tapir.Core`: one socket of a node, the engine's blocking sockets underneath
//! (`TcpListener`, `TcpStream`, `UdpSocket`, `RawSocket`). The Python class `tapir.socket`
//! wraps it with the socket module's surface (makefile, sendall, context manager, ...).
//!
//! Every call that waits lets the GIL go, and waits in slices of at most [`SLICE`], looking for
//! a signal between them (a Ctrl-C then raises KeyboardInterrupt in the caller) and for the
//! socket having been closed by another thread. A stream's engine timeouts are the slice (or
//! zero, non-blocking), so its read and write never wait longer than one slice at a time.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use engine::socket::RawSocket;
use engine::{TcpListener, TcpStream, UdpSocket};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{errno, io_error, os_error, timed_out};
use crate::node::{Held, PyNode};

/// The longest a blocked call waits before looking for signals and a close.
pub const SLICE: Duration = Duration::from_millis(50);

pub const SOCK_STREAM: i32 = 1;
pub const SOCK_DGRAM: i32 = 2;
pub const SOCK_RAW: i32 = 3;
pub const IPPROTO_IP: i32 = 0;
pub const IPPROTO_ICMP: i32 = 1;
pub const IPPROTO_TCP: i32 = 6;
pub const IPPROTO_UDP: i32 = 17;
pub const IPPROTO_RAW: i32 = 255;
pub const SOL_SOCKET: i32 = 1;
pub const SO_REUSEADDR: i32 = 2;
pub const SO_TYPE: i32 = 3;
pub const SO_ERROR: i32 = 4;
pub const SO_BROADCAST: i32 = 6;
pub const SO_KEEPALIVE: i32 = 9;
pub const SO_REUSEPORT: i32 = 15;
pub const TCP_NODELAY: i32 = 1;
pub const TCP_KEEPIDLE: i32 = 4;
/// Linux's default `TCP_KEEPIDLE` (net.ipv4.tcp_keepalive_time): two hours.
pub const DEFAULT_KEEPIDLE: u32 = 7200;
pub const IP_TTL: i32 = 2;
pub const IP_HDRINCL: i32 = 3;
pub const SHUT_RD: i32 = 0;
pub const SHUT_WR: i32 = 1;
pub const SHUT_RDWR: i32 = 2;

type Addr = (String, u16);

enum State {
    /// A TCP socket not yet listening or connected, maybe bound to a port.
    Tcp {
        port: u16,
    },
    Listener(Arc<TcpListener>),
    Stream(Arc<RwLock<TcpStream>>),
    /// Bound on first use; `peer` set by `connect`.
    Udp {
        sock: Option<Arc<RwLock<UdpSocket>>>,
        peer: Option<SocketAddrV4>,
    },
    Raw {
        sock: Arc<RawSocket>,
        peer: Option<Ipv4Addr>,
    },
    Closed,
}

#[pyclass(module = "tapir._tapir", frozen)]
pub struct Core {
    held: Arc<Held>,
    kind: i32,
    proto: i32,
    state: Mutex<State>,
    nonblocking: AtomicBool,
    nodelay: AtomicBool,
    keepalive: AtomicBool,
    /// `TCP_KEEPIDLE`, seconds.
    keepidle: AtomicU32,
    hdrincl: AtomicBool,
    /// IP TTL of what a raw or UDP socket sends (0: the stack's).
    ttl: AtomicU16,
    closed: Arc<AtomicBool>,
}

fn addr_tuple(a: SocketAddrV4) -> Addr {
    (a.ip().to_string(), a.port())
}

/// A deadline `timeout` seconds from now (None: wait for ever).
fn deadline(timeout: Option<f64>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + Duration::from_secs_f64(t.clamp(0.0, 1e9)))
}

/// How long the next slice may wait: at most [`SLICE`], and not past `until`.
fn slice(until: Option<Instant>) -> Duration {
    match until {
        Some(u) => u.saturating_duration_since(Instant::now()).min(SLICE),
        None => SLICE,
    }
}

fn bad_state(what: &str) -> PyErr {
    os_error(errno::EINVAL, what.to_string())
}

fn closed_error() -> PyErr {
    os_error(errno::EBADF, "Bad file descriptor")
}

/// An ephemeral port for `bind(("", 0))` on TCP: one no listener holds, from the node's range.
fn free_tcp_port(held: &Held) -> u16 {
    let taken = held.node.listeners();
    let mut x = u64::from(std::process::id()) ^ held.node.now().total_micros();
    loop {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let p = 49152 + (x % 16384) as u16;
        if !taken.contains(&p) {
            return p;
        }
    }
}

impl Core {
    pub fn new(held: Arc<Held>, kind: i32, proto: i32) -> PyResult<Core> {
        let state = match kind {
            SOCK_STREAM if matches!(proto, 0 | IPPROTO_TCP) => State::Tcp { port: 0 },
            SOCK_DGRAM if matches!(proto, 0 | IPPROTO_UDP) => State::Udp {
                sock: None,
                peer: None,
            },
            SOCK_RAW if (1..=255).contains(&proto) => State::Raw {
                sock: Arc::new(RawSocket::bind(&held.node, proto as u8).map_err(io_error)?),
                peer: None,
            },
            SOCK_STREAM | SOCK_DGRAM | SOCK_RAW => {
                return Err(os_error(
                    errno::EPROTONOSUPPORT,
                    format!("protocol {proto} is not supported with socket type {kind}"),
                ))
            }
            _ => {
                return Err(os_error(
                    errno::EINVAL,
                    format!("socket type {kind}: tapir has SOCK_STREAM, SOCK_DGRAM and SOCK_RAW"),
                ))
            }
        };
        Ok(Core {
            held,
            kind,
            proto: if proto == 0 {
                match kind {
                    SOCK_STREAM => IPPROTO_TCP,
                    SOCK_DGRAM => IPPROTO_UDP,
                    _ => proto,
                }
            } else {
                proto
            },
            state: Mutex::new(state),
            nonblocking: AtomicBool::new(false),
            nodelay: AtomicBool::new(false),
            keepalive: AtomicBool::new(false),
            keepidle: AtomicU32::new(DEFAULT_KEEPIDLE),
            hdrincl: AtomicBool::new(proto == IPPROTO_RAW),
            ttl: AtomicU16::new(0),
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The keep-alive idle time in force: None when `SO_KEEPALIVE` is off.
    fn keepalive_idle(&self) -> Option<Duration> {
        self.keepalive
            .load(Ordering::Relaxed)
            .then(|| Duration::from_secs(u64::from(self.keepidle.load(Ordering::Relaxed))))
    }

    /// Hands the keep-alive setting to the connection, if there is one yet.
    fn apply_keepalive(&self) -> PyResult<()> {
        if let State::Stream(s) = &*self.state() {
            s.read()
                .unwrap_or_else(|e| e.into_inner())
                .set_keepalive(self.keepalive_idle())
                .map_err(io_error)?;
        }
        Ok(())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node's address for `host` in a bind: any, or the node's own.
    fn check_local(&self, host: &str) -> PyResult<()> {
        let ours = self.held.node.current_address();
        match host {
            "" | "0.0.0.0" => Ok(()),
            h if h.parse::<Ipv4Addr>().ok() == Some(ours) => Ok(()),
            h => Err(os_error(
                errno::EADDRNOTAVAIL,
                format!("{h} is not this node's address ({ours})"),
            )),
        }
    }

    fn stream(&self) -> PyResult<Arc<RwLock<TcpStream>>> {
        match &*self.state() {
            State::Stream(s) => Ok(s.clone()),
            State::Closed => Err(closed_error()),
            _ => Err(os_error(
                errno::ENOTCONN,
                "Transport endpoint is not connected",
            )),
        }
    }

    fn stream_timeout(&self) -> Duration {
        if self.nonblocking.load(Ordering::Relaxed) {
            Duration::ZERO
        } else {
            SLICE
        }
    }

    /// The UDP socket, bound to an ephemeral port on first use.
    fn udp(&self) -> PyResult<(Arc<RwLock<UdpSocket>>, Option<SocketAddrV4>)> {
        let mut st = self.state();
        match &mut *st {
            State::Udp { sock, peer } => {
                if sock.is_none() {
                    let mut s = UdpSocket::bind(&self.held.node, 0).map_err(io_error)?;
                    s.set_read_timeout(Some(self.stream_timeout()));
                    *sock = Some(Arc::new(RwLock::new(s)));
                }
                Ok((sock.clone().ok_or_else(closed_error)?, *peer))
            }
            State::Closed => Err(closed_error()),
            _ => Err(bad_state("not a UDP socket")),
        }
    }

    fn raw(&self) -> PyResult<(Arc<RawSocket>, Option<Ipv4Addr>)> {
        match &*self.state() {
            State::Raw { sock, peer } => Ok((sock.clone(), *peer)),
            State::Closed => Err(closed_error()),
            _ => Err(bad_state("not a raw socket")),
        }
    }

    /// Runs `attempt` (one slice's wait) with the GIL released until it gives something other
    /// than `WouldBlock`: then the result; at the deadline `TimeoutError`; non-blocking at once
    /// `BlockingIOError`; on a signal its exception; once closed `OSError(EBADF)`.
    fn wait<T: Send>(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        mut attempt: impl FnMut(Option<Instant>) -> io::Result<T> + Send,
    ) -> PyResult<T> {
        let nonblocking = self.nonblocking.load(Ordering::Relaxed);
        let until = if nonblocking {
            Some(Instant::now())
        } else {
            deadline(timeout)
        };
        loop {
            let r = py.detach(|| attempt(until));
            match r {
                Ok(v) => return Ok(v),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.closed.load(Ordering::Acquire) {
                        return Err(closed_error());
                    }
                    if nonblocking {
                        return Err(os_error(errno::EAGAIN, "Resource temporarily unavailable"));
                    }
                    if until.is_some_and(|u| Instant::now() >= u) {
                        return Err(timed_out());
                    }
                    py.check_signals()?;
                }
                Err(e)
                    if e.kind() == io::ErrorKind::NotConnected && self.held.node.is_stopped() =>
                {
                    return Err(os_error(errno::ENOTCONN, "the node has stopped"));
                }
                Err(e) => return Err(io_error(e)),
            }
        }
    }

    fn resolve(&self, py: Python<'_>, addr: &Addr) -> PyResult<SocketAddrV4> {
        let ip = PyNode::lookup(py, &self.held, &addr.0)?;
        Ok(SocketAddrV4::new(ip, addr.1))
    }

    fn recv_stream(&self, py: Python<'_>, n: usize, timeout: Option<f64>) -> PyResult<Vec<u8>> {
        let s = self.stream()?;
        let mut buf = vec![0u8; n];
        let got = self.wait(py, timeout, |_| {
            let g = s.read().unwrap_or_else(|e| e.into_inner());
            (&*g).read(&mut buf)
        })?;
        buf.truncate(got);
        Ok(buf)
    }

    fn recv_dgram(
        &self,
        py: Python<'_>,
        n: usize,
        timeout: Option<f64>,
    ) -> PyResult<(Vec<u8>, SocketAddrV4)> {
        let (s, peer) = self.udp()?;
        let mut buf = vec![0u8; n.max(1)];
        let (got, from) = self.wait(py, timeout, |_| {
            let g = s.read().unwrap_or_else(|e| e.into_inner());
            match peer {
                // A connected UDP socket hears only its peer, and hears of a port unreachable
                // from it as ECONNREFUSED (as Linux's does).
                Some(p) => g.recv_connected(&mut buf, p).map(|got| (got, p)),
                None => g.recv_from(&mut buf),
            }
        })?;
        buf.truncate(got.min(n));
        Ok((buf, from))
    }

    fn recv_raw(
        &self,
        py: Python<'_>,
        n: usize,
        timeout: Option<f64>,
    ) -> PyResult<(Vec<u8>, SocketAddrV4)> {
        let (s, peer) = self.raw()?;
        let p = self.wait(py, timeout, |until| loop {
            let p = s.recv(Some(slice(until)))?;
            if peer.is_none_or(|a| a == p.src()) {
                return Ok(p);
            }
        })?;
        let src = p.src();
        let mut data = p.packet;
        data.truncate(n);
        Ok((data, SocketAddrV4::new(src, 0)))
    }

    fn send_stream(
        &self,
        py: Python<'_>,
        data: &[u8],
        all: bool,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let s = self.stream()?;
        // sendall's timeout bounds the whole call, as CPython's does, not each piece.
        let until = deadline(timeout);
        let mut sent = 0;
        while sent < data.len() {
            let rest = &data[sent..];
            let left = until.map(|u| u.saturating_duration_since(Instant::now()).as_secs_f64());
            sent += self.wait(py, left, |_| {
                let g = s.read().unwrap_or_else(|e| e.into_inner());
                (&*g).write(rest)
            })?;
            if !all {
                break;
            }
        }
        Ok(sent)
    }

    fn send_dgram(
        &self,
        py: Python<'_>,
        data: &[u8],
        dst: Option<SocketAddrV4>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let (s, peer) = self.udp()?;
        let dst = dst
            .or(peer)
            .ok_or_else(|| os_error(errno::EDESTADDRREQ, "Destination address required"))?;
        let ttl = self.ttl.load(Ordering::Relaxed);
        self.wait(py, timeout, |_| {
            let g = s.read().unwrap_or_else(|e| e.into_inner());
            let r = if ttl == 0 {
                g.send_to(data, dst)
            } else {
                g.send_to_ttl(data, dst, ttl as u8)
            };
            if r.as_ref()
                .is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock)
            {
                // The stack's queue is full: give the worker a moment to send.
                std::thread::sleep(Duration::from_millis(1));
            }
            r
        })
        .map_err(|e| {
            if e.value(py).to_string().contains("too big") {
                os_error(errno::EMSGSIZE, "Message too long")
            } else {
                e
            }
        })
    }

    fn send_raw(&self, py: Python<'_>, data: &[u8], dst: Option<Ipv4Addr>) -> PyResult<usize> {
        let (s, peer) = self.raw()?;
        let hdrincl = self.hdrincl.load(Ordering::Relaxed);
        let ttl = self.ttl.load(Ordering::Relaxed);
        let dst = dst.or(peer);
        py.detach(|| {
            if hdrincl {
                s.send_packet(data)
            } else {
                let dst = dst.ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "destination address required")
                })?;
                s.send_to(data, dst, (ttl != 0).then_some(ttl as u8))
            }
        })
        .map_err(io_error)?;
        Ok(data.len())
    }
}

#[pymethods]
impl Core {
    #[getter]
    fn kind(&self) -> i32 {
        self.kind
    }

    #[getter]
    fn proto(&self) -> i32 {
        self.proto
    }

    /// Non-blocking (timeout 0) or not: what a stream's engine calls wait at most.
    fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
        let t = self.stream_timeout();
        match &*self.state() {
            State::Stream(s) => {
                let mut g = s.write().unwrap_or_else(|e| e.into_inner());
                g.set_read_timeout(Some(t));
                g.set_write_timeout(Some(t));
            }
            State::Udp { sock: Some(s), .. } => {
                s.write()
                    .unwrap_or_else(|e| e.into_inner())
                    .set_read_timeout(Some(t));
            }
            _ => {}
        }
    }

    fn bind(&self, addr: Addr) -> PyResult<()> {
        self.check_local(&addr.0)?;
        let mut st = self.state();
        match &mut *st {
            State::Tcp { port } if *port == 0 => {
                *port = if addr.1 == 0 {
                    free_tcp_port(&self.held)
                } else {
                    if self.held.node.listeners().contains(&addr.1) {
                        return Err(os_error(errno::EADDRINUSE, "Address already in use"));
                    }
                    addr.1
                };
                Ok(())
            }
            State::Udp {
                sock: sock @ None, ..
            } => {
                let mut s = UdpSocket::bind(&self.held.node, addr.1).map_err(io_error)?;
                s.set_read_timeout(Some(if self.nonblocking.load(Ordering::Relaxed) {
                    Duration::ZERO
                } else {
                    SLICE
                }));
                *sock = Some(Arc::new(RwLock::new(s)));
                Ok(())
            }
            State::Raw { .. } => Ok(()),
            State::Closed => Err(closed_error()),
            _ => Err(bad_state("Invalid argument: the socket is already bound")),
        }
    }

    #[pyo3(signature = (backlog=128))]
    fn listen(&self, backlog: i64) -> PyResult<()> {
        let mut st = self.state();
        let port = match &*st {
            State::Tcp { port } => *port,
            State::Listener(_) => return Ok(()),
            State::Closed => return Err(closed_error()),
            _ => {
                return Err(os_error(
                    errno::EOPNOTSUPP,
                    "listen() needs an unconnected TCP socket",
                ))
            }
        };
        let port = if port == 0 {
            free_tcp_port(&self.held)
        } else {
            port
        };
        let backlog = backlog.clamp(1, 65535) as usize;
        let l = TcpListener::bind_with_backlog(&self.held.node, port, backlog).map_err(io_error)?;
        *st = State::Listener(Arc::new(l));
        Ok(())
    }

    /// Waits for a connection: `(core, (host, port))`.
    #[pyo3(signature = (timeout=None))]
    fn accept(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<(Core, Addr)> {
        let l = match &*self.state() {
            State::Listener(l) => l.clone(),
            State::Closed => return Err(closed_error()),
            _ => {
                return Err(bad_state(
                    "Invalid argument: accept() needs a listening socket",
                ))
            }
        };
        let (mut stream, peer) =
            self.wait(py, timeout, |until| l.accept_timeout(Some(slice(until))))?;
        let nodelay = self.nodelay.load(Ordering::Relaxed);
        if nodelay {
            let _ = stream.set_nodelay(true);
        }
        let _ = stream.set_keepalive(self.keepalive_idle());
        stream.set_read_timeout(Some(SLICE));
        stream.set_write_timeout(Some(SLICE));
        let core = Core {
            held: self.held.clone(),
            kind: SOCK_STREAM,
            proto: IPPROTO_TCP,
            state: Mutex::new(State::Stream(Arc::new(RwLock::new(stream)))),
            nonblocking: AtomicBool::new(false),
            nodelay: AtomicBool::new(nodelay),
            keepalive: AtomicBool::new(self.keepalive.load(Ordering::Relaxed)),
            keepidle: AtomicU32::new(self.keepidle.load(Ordering::Relaxed)),
            hdrincl: AtomicBool::new(false),
            ttl: AtomicU16::new(0),
            closed: Arc::new(AtomicBool::new(false)),
        };
        Ok((core, addr_tuple(peer)))
    }

    /// Connects (TCP: waits for the handshake, at most `timeout`; UDP and raw: sets the peer).
    #[pyo3(signature = (addr, timeout=None))]
    fn connect(&self, py: Python<'_>, addr: Addr, timeout: Option<f64>) -> PyResult<()> {
        let dst = self.resolve(py, &addr)?;
        {
            let mut st = self.state();
            match &mut *st {
                State::Udp { peer, .. } => {
                    *peer = Some(dst);
                    return Ok(());
                }
                State::Raw { peer, .. } => {
                    *peer = Some(*dst.ip());
                    return Ok(());
                }
                State::Tcp { .. } => {}
                State::Stream(_) => {
                    return Err(os_error(
                        errno::EISCONN,
                        "Transport endpoint is already connected",
                    ))
                }
                State::Closed => return Err(closed_error()),
                State::Listener(_) => {
                    return Err(bad_state("Invalid argument: the socket listens"))
                }
            }
        }
        let local = match &*self.state() {
            State::Tcp { port } => *port,
            _ => 0,
        };
        let node = self.held.node.clone();
        let t = timeout.map(|t| Duration::from_secs_f64(t.clamp(0.0, 1e9)));
        // Not in slices: a connection being opened cannot be put down and picked up again.
        // TCP's own SYN retries bound the wait when no timeout is given.
        let r = py.detach(move || {
            if local == 0 {
                TcpStream::connect_timeout(&node, dst, t)
            } else {
                TcpStream::connect_from_port(&node, local, dst, t)
            }
        });
        let mut stream = match r {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(timed_out()),
            Err(e) => return Err(io_error(e)),
        };
        if self.nodelay.load(Ordering::Relaxed) {
            stream.set_nodelay(true).map_err(io_error)?;
        }
        stream
            .set_keepalive(self.keepalive_idle())
            .map_err(io_error)?;
        let t = self.stream_timeout();
        stream.set_read_timeout(Some(t));
        stream.set_write_timeout(Some(t));
        let mut st = self.state();
        if matches!(*st, State::Closed) {
            return Err(closed_error());
        }
        *st = State::Stream(Arc::new(RwLock::new(stream)));
        Ok(())
    }

    /// Up to `n` bytes (b"" at the end of a stream).
    #[pyo3(signature = (n, timeout=None))]
    fn recv<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let data = match self.kind {
            SOCK_STREAM => self.recv_stream(py, n, timeout)?,
            SOCK_DGRAM => self.recv_dgram(py, n, timeout)?.0,
            _ => self.recv_raw(py, n, timeout)?.0,
        };
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (n, timeout=None))]
    fn recvfrom<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        timeout: Option<f64>,
    ) -> PyResult<(Bound<'py, PyBytes>, Option<Addr>)> {
        match self.kind {
            SOCK_STREAM => {
                let d = self.recv_stream(py, n, timeout)?;
                Ok((PyBytes::new(py, &d), None))
            }
            SOCK_DGRAM => {
                let (d, from) = self.recv_dgram(py, n, timeout)?;
                Ok((PyBytes::new(py, &d), Some(addr_tuple(from))))
            }
            _ => {
                let (d, from) = self.recv_raw(py, n, timeout)?;
                Ok((PyBytes::new(py, &d), Some(addr_tuple(from))))
            }
        }
    }

    /// Sends what fits now (TCP) or one datagram; `all`: every byte (sendall).
    #[pyo3(signature = (data, all=false, timeout=None))]
    fn send(
        &self,
        py: Python<'_>,
        data: &[u8],
        all: bool,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        match self.kind {
            SOCK_STREAM => self.send_stream(py, data, all, timeout),
            SOCK_DGRAM => self.send_dgram(py, data, None, timeout),
            _ => self.send_raw(py, data, None),
        }
    }

    #[pyo3(signature = (data, addr, timeout=None))]
    fn sendto(
        &self,
        py: Python<'_>,
        data: &[u8],
        addr: Addr,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let dst = self.resolve(py, &addr)?;
        match self.kind {
            SOCK_STREAM => Err(os_error(
                errno::EISCONN,
                "sendto() on a stream socket: use send()",
            )),
            SOCK_DGRAM => self.send_dgram(py, data, Some(dst), timeout),
            _ => self.send_raw(py, data, Some(*dst.ip())),
        }
    }

    fn shutdown(&self, how: i32) -> PyResult<()> {
        if !(SHUT_RD..=SHUT_RDWR).contains(&how) {
            return Err(os_error(
                errno::EINVAL,
                "shutdown: how must be SHUT_RD, SHUT_WR or SHUT_RDWR",
            ));
        }
        match &*self.state() {
            State::Stream(s) => {
                if how == SHUT_RD {
                    return Ok(());
                }
                let g = s.read().unwrap_or_else(|e| e.into_inner());
                match g.shutdown(Shutdown::Write) {
                    Ok(()) => Ok(()),
                    // Already closed by the peer's reset, or closed before: nothing to send.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                    Err(e) => Err(io_error(e)),
                }
            }
            State::Listener(_) | State::Udp { .. } | State::Raw { .. } => Ok(()),
            State::Closed => Err(closed_error()),
            State::Tcp { .. } => Err(os_error(
                errno::ENOTCONN,
                "Transport endpoint is not connected",
            )),
        }
    }

    /// Closes the socket: a TCP connection closes gracefully (its queued data still goes out);
    /// a call blocked on it in another thread fails with OSError(EBADF).
    fn close(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::Release);
        let old = std::mem::replace(&mut *self.state(), State::Closed);
        if let State::Listener(l) = &old {
            l.closer().close();
        }
        if let State::Udp { sock: Some(s), .. } = &old {
            s.read().unwrap_or_else(|e| e.into_inner()).closer().close();
        }
        py.detach(move || drop(old));
    }

    #[getter]
    fn closed(&self) -> bool {
        matches!(*self.state(), State::Closed)
    }

    fn getsockname(&self) -> PyResult<Addr> {
        let ours = self.held.node.current_address();
        match &*self.state() {
            State::Tcp { port } => Ok(if *port == 0 {
                ("0.0.0.0".into(), 0)
            } else {
                (ours.to_string(), *port)
            }),
            State::Listener(l) => Ok(addr_tuple(l.local_addr())),
            State::Stream(s) => Ok(addr_tuple(
                s.read().unwrap_or_else(|e| e.into_inner()).local_addr(),
            )),
            State::Udp { sock: Some(s), .. } => Ok(addr_tuple(
                s.read().unwrap_or_else(|e| e.into_inner()).local_addr(),
            )),
            State::Udp { sock: None, .. } => Ok(("0.0.0.0".into(), 0)),
            State::Raw { .. } => Ok((ours.to_string(), 0)),
            State::Closed => Err(closed_error()),
        }
    }

    fn getpeername(&self) -> PyResult<Addr> {
        let not = || os_error(errno::ENOTCONN, "Transport endpoint is not connected");
        match &*self.state() {
            State::Stream(s) => Ok(addr_tuple(
                s.read().unwrap_or_else(|e| e.into_inner()).peer_addr(),
            )),
            State::Udp { peer: Some(p), .. } => Ok(addr_tuple(*p)),
            State::Raw { peer: Some(p), .. } => Ok((p.to_string(), 0)),
            State::Closed => Err(closed_error()),
            _ => Err(not()),
        }
    }

    /// The options tapir has: TCP_NODELAY, SO_KEEPALIVE and TCP_KEEPIDLE (TCP); IP_TTL (UDP,
    /// raw); IP_HDRINCL (raw); SO_REUSEADDR
    /// and SO_REUSEPORT are accepted and change nothing (a tapir port is free again as soon as
    /// its listener closes).
    fn setsockopt(&self, level: i32, opt: i32, value: i64) -> PyResult<()> {
        match (level, opt) {
            (IPPROTO_TCP, TCP_NODELAY) if self.kind == SOCK_STREAM => {
                self.nodelay.store(value != 0, Ordering::Relaxed);
                if let State::Stream(s) = &*self.state() {
                    s.read()
                        .unwrap_or_else(|e| e.into_inner())
                        .set_nodelay(value != 0)
                        .map_err(io_error)?;
                }
                Ok(())
            }
            (SOL_SOCKET, SO_REUSEADDR | SO_REUSEPORT | SO_BROADCAST) => Ok(()),
            (SOL_SOCKET, SO_KEEPALIVE) if self.kind == SOCK_STREAM => {
                self.keepalive.store(value != 0, Ordering::Relaxed);
                self.apply_keepalive()
            }
            (IPPROTO_TCP, TCP_KEEPIDLE) if self.kind == SOCK_STREAM => {
                if !(1..=32767).contains(&value) {
                    return Err(os_error(errno::EINVAL, "TCP_KEEPIDLE must be 1 to 32767 seconds"));
                }
                self.keepidle.store(value as u32, Ordering::Relaxed);
                self.apply_keepalive()
            }
            (IPPROTO_IP, IP_TTL) if self.kind != SOCK_STREAM => {
                if !(1..=255).contains(&value) {
                    return Err(os_error(errno::EINVAL, "IP_TTL must be 1 to 255"));
                }
                self.ttl.store(value as u16, Ordering::Relaxed);
                Ok(())
            }
            (IPPROTO_IP, IP_HDRINCL) if self.kind == SOCK_RAW => {
                self.hdrincl.store(value != 0, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(os_error(
                errno::ENOPROTOOPT,
                format!(
                    "Protocol not available: option {opt} at level {level} is not one tapir has (TCP_NODELAY, SO_KEEPALIVE, TCP_KEEPIDLE, IP_TTL, IP_HDRINCL, SO_REUSEADDR)"
                ),
            )),
        }
    }

    fn getsockopt(&self, level: i32, opt: i32) -> PyResult<i64> {
        match (level, opt) {
            (IPPROTO_TCP, TCP_NODELAY) if self.kind == SOCK_STREAM => {
                Ok(i64::from(self.nodelay.load(Ordering::Relaxed)))
            }
            (SOL_SOCKET, SO_TYPE) => Ok(i64::from(self.kind)),
            (SOL_SOCKET, SO_KEEPALIVE) if self.kind == SOCK_STREAM => {
                Ok(i64::from(self.keepalive.load(Ordering::Relaxed)))
            }
            (IPPROTO_TCP, TCP_KEEPIDLE) if self.kind == SOCK_STREAM => {
                Ok(i64::from(self.keepidle.load(Ordering::Relaxed)))
            }
            (SOL_SOCKET, SO_ERROR) => Ok(0),
            (SOL_SOCKET, SO_REUSEADDR | SO_REUSEPORT | SO_BROADCAST) => Ok(0),
            (IPPROTO_IP, IP_TTL) => Ok(match self.ttl.load(Ordering::Relaxed) {
                0 => 64,
                t => i64::from(t),
            }),
            (IPPROTO_IP, IP_HDRINCL) if self.kind == SOCK_RAW => {
                Ok(i64::from(self.hdrincl.load(Ordering::Relaxed)))
            }
            _ => Err(os_error(
                errno::ENOPROTOOPT,
                format!("Protocol not available: option {opt} at level {level}"),
            )),
        }
    }

    /// Whether a read would not wait now (data, a connection to accept, the end of a stream or
    /// an error); waits up to `timeout` for it (the selectors module's `select`).
    #[pyo3(signature = (timeout=0.0))]
    fn readable(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        enum What {
            Listener(Arc<TcpListener>),
            Stream(Arc<RwLock<TcpStream>>),
            Other,
        }
        let what = match &*self.state() {
            State::Listener(l) => What::Listener(l.clone()),
            State::Stream(s) => What::Stream(s.clone()),
            State::Closed => return Ok(true),
            _ => What::Other,
        };
        let until = deadline(timeout);
        loop {
            let r = py.detach(|| match &what {
                What::Listener(l) => l.wait_acceptable(Some(slice(until))),
                What::Stream(s) => s
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .wait_readable(Some(slice(until))),
                What::Other => Ok(true),
            });
            match r {
                Ok(true) | Err(_) => return Ok(true),
                Ok(false) => {}
            }
            if until.is_some_and(|u| Instant::now() >= u) {
                return Ok(false);
            }
            py.check_signals()?;
        }
    }
}
