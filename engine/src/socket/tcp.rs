//! `TcpListener` and `TcpStream`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use protocols::iface::{SocketHandle, TcpError, Wake};
use protocols::tcp::State;

use super::{deadline, tcp_error, timed_out, Closable, SocketCloser};
use crate::news::Interest;
use crate::node::Node;
use crate::steer::flow_owner;

/// Accept queue length per worker.
pub const DEFAULT_BACKLOG: usize = 128;

/// A listening TCP port: every worker accepts connections on it.
pub struct TcpListener {
    node: Node,
    port: u16,
    /// Closed through a [`SocketCloser`] (or dropped): the port is no longer ours to unlisten.
    closed: Arc<AtomicBool>,
}

impl TcpListener {
    /// Listens on `port` of the node's address.
    pub fn bind(node: &Node, port: u16) -> io::Result<TcpListener> {
        Self::bind_with_backlog(node, port, DEFAULT_BACKLOG)
    }

    pub fn bind_with_backlog(node: &Node, port: u16, backlog: usize) -> io::Result<TcpListener> {
        for w in 0..node.queues() {
            if let Err(e) = node.with_stack(w, |s, _| s.tcp_listen(port, backlog)) {
                for undo in 0..w {
                    node.with_stack(undo, |s, _| s.tcp_unlisten(port));
                }
                return Err(tcp_error(e));
            }
        }
        Ok(TcpListener {
            node: node.clone(),
            port,
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn local_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.node.current_address(), self.port)
    }

    /// A handle that closes this listener from another thread; a blocked `accept` then fails.
    pub fn closer(&self) -> SocketCloser {
        SocketCloser::new(
            &self.node,
            self.closed.clone(),
            Closable::Listener(self.port),
        )
    }

    /// Waits for the next established connection.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddrV4)> {
        self.accept_timeout(None)
    }

    /// Like `accept`, giving up with `TimedOut` after `timeout`.
    pub fn accept_timeout(
        &self,
        timeout: Option<Duration>,
    ) -> io::Result<(TcpStream, SocketAddrV4)> {
        let until = deadline(timeout);
        let n = self.node.queues();
        let interest = Interest::Every(Some(Wake::Listener(self.port)));
        let got = self.node.block_on(interest, until, None, || {
            // The worker whose oldest waiting connection's SYN came first: connections are
            // accepted in the order they were made, as from one kernel accept queue.
            let mut first: Option<(protocols::time::Instant, usize)> = None;
            for w in 0..n {
                let at = self
                    .node
                    .with_stack(w, |s, _| s.tcp_accept_ready_at(self.port));
                if let Some(at) = at {
                    if first.is_none_or(|(f, _)| at < f) {
                        first = Some((at, w));
                    }
                }
            }
            let Some((at, w)) = first else {
                return Ok(None);
            };
            let got = self
                .node
                .with_stack(w, |s, _| s.tcp_accept(self.port))
                .map_err(tcp_error)?;
            Ok(got.map(|(handle, remote)| {
                let mut stream = TcpStream::from_parts(&self.node, w, handle, remote);
                stream.opened = Some(at);
                (stream, remote)
            }))
        })?;
        got.ok_or_else(timed_out)
    }

    /// Waits until a connection is ready to accept (true) or `timeout` passes (false), accepting
    /// nothing: what a `select`-style readiness check needs.
    pub fn wait_acceptable(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let until = deadline(timeout);
        let interest = Interest::Every(Some(Wake::Listener(self.port)));
        let ready = self.node.block_on(interest, until, None, || {
            let ready = (0..self.node.queues()).any(|w| {
                self.node
                    .with_stack(w, |s, _| s.tcp_accept_ready_at(self.port))
                    .is_some()
            });
            Ok(ready.then_some(()))
        })?;
        Ok(ready.is_some())
    }

    /// An iterator over accepted streams, like `std::net::TcpListener::incoming`.
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<TcpStream>> + '_ {
        std::iter::from_fn(move || Some(self.accept().map(|(s, _)| s)))
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        self.closer().close();
    }
}

/// A TCP connection, owned by one worker.
pub struct TcpStream {
    node: Node,
    worker: usize,
    handle: SocketHandle,
    remote: SocketAddrV4,
    local_port: u16,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// Handed to a run-to-completion app by [`TcpStream::into_raw_parts`]: no longer ours to
    /// release.
    detached: bool,
    /// Accepted: when its SYN reached the node (the instant the frame was read).
    opened: Option<protocols::time::Instant>,
    /// Times a blocked read or write on this stream was woken to look again.
    wakeups: AtomicU64,
}

impl TcpStream {
    fn from_parts(node: &Node, worker: usize, handle: SocketHandle, remote: SocketAddrV4) -> Self {
        let local_port = node
            .with_stack(worker, |s, _| s.tcp_info(handle).map(|i| i.local.port()))
            .unwrap_or(0);
        TcpStream {
            node: node.clone(),
            worker,
            handle,
            remote,
            local_port,
            read_timeout: None,
            write_timeout: None,
            detached: false,
            opened: None,
            wakeups: AtomicU64::new(0),
        }
    }

    /// Gives the connection up to a run-to-completion app ([`crate::rtc`]): returns the worker
    /// that owns it and its handle in that worker's stack, leaving it open. From then on only an
    /// app on that worker may use the handle (spawn one with [`Node::spawn_app`]), and it must
    /// close and release it (`Stack::tcp_close` / `tcp_release`) when done: nothing else will.
    /// News from before the app's first poll is not repeated to it: the app looks then.
    pub fn into_raw_parts(mut self) -> (usize, SocketHandle) {
        self.detached = true;
        (self.worker, self.handle)
    }

    /// Opens a connection and waits until it is established (or refused, or timed out by TCP's
    /// own SYN retries).
    pub fn connect(node: &Node, remote: SocketAddrV4) -> io::Result<TcpStream> {
        Self::connect_timeout(node, remote, None)
    }

    pub fn connect_timeout(
        node: &Node,
        remote: SocketAddrV4,
        timeout: Option<Duration>,
    ) -> io::Result<TcpStream> {
        let n = node.queues();
        let w = (node.random_u64() % n as u64) as usize;
        let ip = remote.ip().octets();
        // Pick a source port whose flow this worker owns, so the kernel's replies come back here.
        let port_ok = move |p: u16| flow_owner(p, ip, remote.port(), n) == w;
        Self::open(node, w, remote, None, &port_ok, timeout)
    }

    /// Like `connect_timeout`, from `local_port` of the node's address rather than an ephemeral
    /// port: for protocols that want a reserved source port (rlogin, RFC 1282). Fails with
    /// `AddrInUse` when the port listens or already has a connection to `remote`.
    pub fn connect_from_port(
        node: &Node,
        local_port: u16,
        remote: SocketAddrV4,
        timeout: Option<Duration>,
    ) -> io::Result<TcpStream> {
        // The worker that owns this 4-tuple opens it, so replies come back to it.
        let w = flow_owner(
            local_port,
            remote.ip().octets(),
            remote.port(),
            node.queues(),
        );
        Self::open(node, w, remote, Some(local_port), &|_| true, timeout)
    }

    /// Opens a connection on worker `w` and waits until it is established.
    fn open(
        node: &Node,
        w: usize,
        remote: SocketAddrV4,
        local_port: Option<u16>,
        port_ok: &dyn Fn(u16) -> bool,
        timeout: Option<Duration>,
    ) -> io::Result<TcpStream> {
        let handle = node
            .with_stack(w, |s, now| s.tcp_connect(now, remote, local_port, port_ok))
            .map_err(tcp_error)?;
        let stream = TcpStream::from_parts(node, w, handle, remote);
        let until = deadline(timeout);
        let established = node.block_on(
            Interest::One(w, Some(Wake::Tcp(handle))),
            until,
            None,
            || {
                let r = node
                    .with_stack(w, |s, _| s.tcp_readiness(handle))
                    .map_err(tcp_error)?;
                if let Some(e) = r.error {
                    return Err(tcp_error(e));
                }
                Ok((!matches!(r.state, State::SynSent | State::SynReceived)).then_some(()))
            },
        )?;
        established.map(|()| stream).ok_or_else(timed_out)
    }

    pub fn peer_addr(&self) -> SocketAddrV4 {
        self.remote
    }

    pub fn local_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.node.current_address(), self.local_port)
    }

    /// For an accepted connection, when its SYN reached the node (the node's clock, read as
    /// the frame was read): what orders connections a client made one after another when
    /// several workers accepted them (see [`protocols::iface::Stack::tcp_accept_ready_at`]).
    pub fn opened_at(&self) -> Option<protocols::time::Instant> {
        self.opened
    }

    /// The worker that owns this connection.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// How many times a blocked `read` or `write` on this stream has been woken to look again
    /// (by news from its own worker only: traffic on other workers wakes it never).
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    pub fn set_read_timeout(&mut self, t: Option<Duration>) {
        self.read_timeout = t;
    }

    pub fn set_write_timeout(&mut self, t: Option<Duration>) {
        self.write_timeout = t;
    }

    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.node
            .with_stack(self.worker, |s, _| s.tcp_set_nodelay(self.handle, on))
            .map_err(tcp_error)
    }

    /// Keep-alive probes after `idle` without a segment from the peer (`SO_KEEPALIVE` with
    /// `TCP_KEEPIDLE`), or none.
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        self.node
            .with_stack(self.worker, |s, now| {
                s.tcp_set_keepalive(self.handle, now, idle)
            })
            .map_err(tcp_error)
    }

    /// The connection's TCP state.
    pub fn state(&self) -> Option<State> {
        self.node.with_stack(self.worker, |s, _| {
            s.tcp_readiness(self.handle).ok().map(|r| r.state)
        })
    }

    /// Bytes to read before the peer's urgent byte (TCP urgent data, `MSG_OOB` on the sending
    /// side), while one is ahead; `Some(0)`: the next byte read is it (`SIOCATMARK`). Urgent
    /// data is delivered in line (RFC 6093 §6) and a read stops short of it.
    pub fn urgent_mark(&self) -> Option<usize> {
        self.node.with_stack(self.worker, |s, _| {
            s.tcp_urgent_mark(self.handle).ok().flatten()
        })
    }

    /// Like `read`, also saying whether `buf[0]` is the peer's urgent byte: the read started at
    /// the urgent mark. Decided under the same lock as the read, so no mark slips between.
    pub fn read_marked(&self, buf: &mut [u8]) -> io::Result<(usize, bool)> {
        if buf.is_empty() {
            return Ok((0, false));
        }
        let h = self.handle;
        self.blocking(self.read_timeout, |s| s.tcp_recv_marked(h, buf))
    }

    /// Shuts down one or both halves. `Write` sends FIN after the queued data.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match how {
            Shutdown::Read => Ok(()),
            Shutdown::Write | Shutdown::Both => self
                .node
                .with_stack(self.worker, |s, _| s.tcp_close(self.handle))
                .map_err(tcp_error),
        }
    }

    /// Waits until a read would not block (data, the end of the stream, or an error: true) or
    /// `timeout` passes (false), reading nothing.
    pub fn wait_readable(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let until = deadline(timeout);
        let readable = self.node.block_on(self.interest(), until, None, || {
            let readable = self
                .node
                .with_stack(self.worker, |s, _| s.tcp_readiness(self.handle))
                .map_or(true, |r| r.readable);
            Ok(readable.then_some(()))
        })?;
        Ok(readable.is_some())
    }

    /// Waits until the connection is fully closed (our FIN acknowledged and theirs received, or
    /// reset), or the timeout passes. Useful before exiting so that nothing queued is lost.
    pub fn wait_closed(&self, timeout: Option<Duration>) -> io::Result<()> {
        let until = deadline(timeout);
        self.node
            .block_on(self.interest(), until, None, || {
                let state = self.state();
                Ok(matches!(state, None | Some(State::Closed | State::TimeWait)).then_some(()))
            })?
            .ok_or_else(timed_out)
    }

    /// What a caller blocked on this stream waits for: news about it, on its worker.
    fn interest(&self) -> Interest<'static> {
        Interest::One(self.worker, Some(Wake::Tcp(self.handle)))
    }

    fn blocking<R>(
        &self,
        timeout: Option<Duration>,
        mut op: impl FnMut(&mut protocols::iface::Stack) -> Result<R, TcpError>,
    ) -> io::Result<R> {
        let until = deadline(timeout);
        let r = self
            .node
            .block_on(self.interest(), until, Some(&self.wakeups), || {
                match self.node.with_stack(self.worker, |s, _| op(s)) {
                    Ok(r) => Ok(Some(r)),
                    Err(TcpError::WouldBlock) => Ok(None),
                    Err(e) => Err(tcp_error(e)),
                }
            })?;
        r.ok_or_else(|| io::Error::new(io::ErrorKind::WouldBlock, "timed out"))
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let h = self.handle;
        self.blocking(self.read_timeout, |s| s.tcp_recv(h, buf))
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let h = self.handle;
        self.blocking(self.write_timeout, |s| s.tcp_send(h, buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        let h = self.handle;
        self.node.with_stack(self.worker, |s, _| s.tcp_release(h));
    }
}
