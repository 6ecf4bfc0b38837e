//! The application's side of TCP: connect, send, receive, close, the ready list of the
//! run-to-completion API, and what a connection looks like from outside.

use super::*;

impl Stack {
    /// Keeps (or stops keeping) the list of owned connections with news for their application:
    /// data or EOF to read, room to write, a state change or an error. For applications that
    /// run on the worker (the run-to-completion API) and visit only those connections.
    pub fn tcp_track_ready(&mut self, on: bool) {
        self.tcp.track_ready = on;
        if !on {
            let mut ready = std::mem::take(&mut self.tcp.ready);
            for h in ready.drain(..) {
                if let Some(s) = self.tcp.sockets.get_mut(h) {
                    s.in_ready = false;
                }
            }
        }
    }

    /// Moves the connections with news since the last call into `out` (each once).
    pub fn tcp_take_ready(&mut self, out: &mut Vec<SocketHandle>) {
        for h in self.tcp.ready.drain(..) {
            if let Some(s) = self.tcp.sockets.get_mut(h) {
                s.in_ready = false;
                out.push(h);
            }
        }
    }

    /// Opens a connection to `remote` from `local_port` (None: a random free ephemeral port
    /// accepted by `port_ok`, RFC 6056 algorithm 1). A chosen port fails with `AddrInUse` when
    /// it listens or already has a connection to `remote`.
    pub fn tcp_connect(
        &mut self,
        now: Instant,
        remote: SocketAddrV4,
        local_port: Option<u16>,
        port_ok: &dyn Fn(u16) -> bool,
    ) -> Result<SocketHandle, TcpError> {
        let me = self.address();
        self.tcp_connect_from(now, me, remote, local_port, port_ok)
    }

    /// Like `tcp_connect`, from `local_ip`: the node's address or one of `extra_addrs` (else
    /// `BadAddress`). Each local address has its own ephemeral port space towards a remote.
    pub fn tcp_connect_from(
        &mut self,
        now: Instant,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
        local_port: Option<u16>,
        port_ok: &dyn Fn(u16) -> bool,
    ) -> Result<SocketHandle, TcpError> {
        if !self.is_local(local_ip) {
            return Err(TcpError::BadAddress);
        }
        if !self.room_for_conn() {
            return Err(TcpError::MaxConns);
        }
        let port = match local_port {
            Some(p) => {
                // Like a kernel bind without SO_REUSEADDR: a listening port is taken too.
                if self.tcp.listeners.contains_key(&p)
                    || self.tcp.conns.contains_key(&(local_ip, p, remote))
                    || self.tcp.tw.contains(&(local_ip, p, remote))
                {
                    return Err(TcpError::AddrInUse);
                }
                p
            }
            None => self.tcp_ephemeral_port(local_ip, remote, port_ok)?,
        };
        let isn = self
            .isn
            .isn((local_ip, port), (*remote.ip(), remote.port()), now);
        let conn = Connection::connect(&self.config.tcp, port, remote.port(), isn, now);
        let h = self.insert_conn(conn, (local_ip, remote), None, now);
        self.touch(h);
        Ok(h)
    }

    pub(super) fn tcp_ephemeral_port(
        &mut self,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
        port_ok: &dyn Fn(u16) -> bool,
    ) -> Result<u16, TcpError> {
        let (lo, hi) = (
            *crate::iface::udp::EPHEMERAL_PORTS.start(),
            *crate::iface::udp::EPHEMERAL_PORTS.end(),
        );
        let span = u64::from(hi - lo) + 1;
        let start = self.rng.below(span) as u16;
        for i in 0..span as u16 {
            let port = lo + (start.wrapping_add(i) % span as u16);
            if !self.tcp.listeners.contains_key(&port)
                && !self.tcp.conns.contains_key(&(local_ip, port, remote))
                && !self.tcp.tw.contains(&(local_ip, port, remote))
                && port_ok(port)
            {
                return Ok(port);
            }
        }
        Err(TcpError::NoFreePort)
    }

    pub(super) fn conn_mut(&mut self, h: SocketHandle) -> Result<&mut Connection, TcpError> {
        self.tcp
            .sockets
            .get_mut(h)
            .map(|s| &mut s.conn)
            .ok_or(TcpError::BadHandle)
    }

    /// Copies what fits of `data` into the send buffer.
    pub fn tcp_send(&mut self, h: SocketHandle, data: &[u8]) -> Result<usize, TcpError> {
        let conn = self.conn_mut(h)?;
        if let Some(e) = conn.error() {
            return Err(e.into());
        }
        let r = conn.send(data);
        self.touch(h);
        match r {
            Ok(0) if !data.is_empty() => Err(TcpError::WouldBlock),
            Ok(n) => Ok(n),
            Err(SendError::NotConnected) => Err(TcpError::NotConnected),
            Err(_) => Err(TcpError::Closed),
        }
    }

    /// Reads received data: Ok(0) is the end of the stream. A read stops short of the peer's
    /// urgent byte (see [`Stack::tcp_recv_marked`]).
    pub fn tcp_recv(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<usize, TcpError> {
        self.tcp_recv_marked(h, buf).map(|(n, _)| n)
    }

    /// Like `tcp_recv`, also saying whether the first byte read is the peer's urgent byte
    /// (the read started at the urgent mark; urgent data is delivered in line).
    pub fn tcp_recv_marked(
        &mut self,
        h: SocketHandle,
        buf: &mut [u8],
    ) -> Result<(usize, bool), TcpError> {
        let conn = self.conn_mut(h)?;
        let r = conn.recv_marked(buf);
        let err = conn.error();
        self.touch(h);
        recv_result(r, err)
    }

    /// Like `tcp_recv` for a reader that only counts: drops up to `max` bytes of in-order data
    /// unread (no copy) and returns how many; Ok(0) is the end of the stream.
    pub fn tcp_discard(&mut self, h: SocketHandle, max: usize) -> Result<usize, TcpError> {
        let conn = self.conn_mut(h)?;
        let r = conn.discard(max);
        let err = conn.error();
        self.touch(h);
        recv_result(r, err)
    }

    /// Bytes to read before the peer's urgent byte, while one is ahead (`Some(0)`: the next
    /// byte read is it).
    pub fn tcp_urgent_mark(&self, h: SocketHandle) -> Result<Option<usize>, TcpError> {
        let s = self.tcp.sockets.get(h).ok_or(TcpError::BadHandle)?;
        Ok(s.conn.urgent_mark())
    }

    /// Shuts down the sending half: FIN after the queued data.
    pub fn tcp_close(&mut self, h: SocketHandle) -> Result<(), TcpError> {
        self.conn_mut(h)?.close();
        self.touch(h);
        Ok(())
    }

    /// Resets the connection.
    pub fn tcp_abort(&mut self, h: SocketHandle) -> Result<(), TcpError> {
        self.conn_mut(h)?.abort();
        self.touch(h);
        Ok(())
    }

    /// The application dropped its handle: the connection closes gracefully on its own and is
    /// freed when closed.
    pub fn tcp_release(&mut self, h: SocketHandle) {
        if let Some(s) = self.tcp.sockets.get_mut(h) {
            s.released = true;
            let unread = s.conn.orphan() as u64;
            self.counters.tcp_unread_dropped += unread;
        }
        self.touch(h);
    }

    /// Keep-alive for one connection (see `Connection::set_keepalive`).
    pub fn tcp_set_keepalive(
        &mut self,
        h: SocketHandle,
        now: Instant,
        idle: Option<Duration>,
    ) -> Result<(), TcpError> {
        self.conn_mut(h)?.set_keepalive(now, idle);
        self.touch(h);
        Ok(())
    }

    pub fn tcp_set_nodelay(&mut self, h: SocketHandle, on: bool) -> Result<(), TcpError> {
        self.conn_mut(h)?.set_nodelay(on);
        Ok(())
    }

    pub fn tcp_readiness(&self, h: SocketHandle) -> Result<Readiness, TcpError> {
        let s = self.tcp.sockets.get(h).ok_or(TcpError::BadHandle)?;
        let c = &s.conn;
        let error = c.error().map(TcpError::from);
        let state = c.state();
        let readable = error.is_some()
            || c.recv_queue() > 0
            || (!c.may_recv() && !matches!(state, State::SynSent | State::SynReceived));
        let writable =
            error.is_some() || (c.may_send() && c.send_capacity() > 0) || state == State::Closed;
        Ok(Readiness {
            readable,
            writable,
            state,
            error,
        })
    }

    pub fn tcp_info(&self, h: SocketHandle) -> Option<ConnInfo> {
        let s = self.tcp.sockets.get(h)?;
        Some(self.info_of(h, s))
    }

    pub(super) fn info_of(&self, handle: SocketHandle, s: &TcpSocket) -> ConnInfo {
        let c = &s.conn;
        ConnInfo {
            handle: Some(handle),
            local: SocketAddrV4::new(s.local_ip, c.local_port()),
            remote: s.remote,
            state: c.state(),
            send_queue: c.send_queue(),
            recv_queue: c.recv_queue(),
            rtt: c.rtt(),
            cwnd: c.cwnd(),
        }
    }

    /// Every connection, for `conns`: those with a socket, then the TIME-WAIT table's.
    pub fn tcp_conns(&self) -> Vec<ConnInfo> {
        self.tcp
            .sockets
            .iter()
            .map(|(h, s)| self.info_of(h, s))
            .chain(self.time_wait_infos())
            .collect()
    }

    /// Ports with a listener.
    pub fn tcp_listeners(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self.tcp.listeners.keys().copied().collect();
        v.sort_unstable();
        v
    }
    /// TCP connections with a socket (any state, listeners not counted; TIME-WAIT no
    /// application holds is counted by [`Stack::tcp_time_wait_count`]).
    pub fn tcp_conn_count(&self) -> usize {
        self.tcp.sockets.len()
    }

    /// 4-tuples in TIME-WAIT that no application holds (compact: no socket).
    pub fn tcp_time_wait_count(&self) -> usize {
        self.tcp.tw.len()
    }

    /// Heap bytes the compact TIME-WAITs take, their tables' spare room included.
    pub fn tcp_time_wait_bytes(&self) -> usize {
        self.tcp.tw.heap_bytes()
    }

    /// Heap bytes every TCP connection's buffers hold now (see
    /// [`Connection::buffer_footprint`]): 0 for a node whose connections are all idle.
    pub fn tcp_buffer_bytes(&self) -> usize {
        self.tcp
            .sockets
            .iter()
            .map(|(_, s)| s.conn.buffer_footprint())
            .sum()
    }
}

/// A read's outcome as the application sees it: a reset or timeout that ended the connection
/// is reported once nothing is left to read.
pub(super) fn recv_result<T>(
    r: Result<T, RecvError>,
    err: Option<ConnError>,
) -> Result<T, TcpError> {
    match r {
        Ok(v) => Ok(v),
        Err(RecvError::WouldBlock) => match err {
            Some(e) => Err(e.into()),
            None => Err(TcpError::WouldBlock),
        },
        Err(_) => Err(err.map(TcpError::from).unwrap_or(TcpError::NotConnected)),
    }
}
