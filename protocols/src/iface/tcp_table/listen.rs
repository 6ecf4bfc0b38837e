//! Listening ports: the bounded accept queue, SYN cookies when it is full (RFC 4987), and
//! accepting in the order connections were established.

use super::flush::send_segment;
use super::*;

impl Stack {
    /// RFC 4987: the listener's queue of half-open connections is full: answer with a SYN-ACK
    /// whose ISN is a cookie, and keep no state.
    pub(super) fn send_syn_cookie(
        &mut self,
        now: Instant,
        meta: IpMeta,
        syn: &TcpRepr,
        sink: &mut impl Sink,
    ) {
        let cookies = SynCookies::new(&self.isn);
        let peer_mss = syn.max_seg_size.unwrap_or(536);
        let (isn, _) = cookies.make(
            (meta.dst, syn.dst_port),
            (meta.src, syn.src_port),
            syn.seq_number,
            peer_mss,
            now,
        );
        let synack = Connection::syn_cookie_syn_ack(&self.config.tcp, syn, isn);
        self.counters.tcp_syn_cookies_sent += 1;
        let local = meta.dst;
        let remote = SocketAddrV4::new(meta.src, syn.src_port);
        let mut eg = self.egress();
        send_segment(&mut eg, now, sink, local, remote, |_| Some((synack, 0)));
    }

    /// An ACK for a listener with no connection: if it returns a valid SYN cookie, the
    /// connection is made now (ESTABLISHED, into the accept queue). Returns whether it was.
    pub(super) fn accept_syn_cookie(
        &mut self,
        now: Instant,
        meta: IpMeta,
        ack: &TcpRepr,
        payload: &[u8],
        accept_full: bool,
    ) -> bool {
        let Some(ack_number) = ack.ack_number else {
            return false;
        };
        let cookies = SynCookies::new(&self.isn);
        let Some(mss) = cookies.check(
            (meta.dst, ack.dst_port),
            (meta.src, ack.src_port),
            ack.seq_number,
            ack_number,
            now,
        ) else {
            return false;
        };
        if accept_full {
            self.counters.drop(DropReason::TcpBacklogFull);
            return true;
        }
        if !self.room_for_conn() {
            self.counters.drop(DropReason::TcpMaxConns);
            return true;
        }
        let isn = ack_number - 1usize;
        let conn = Connection::from_syn_cookie(&self.config.tcp, ack, payload, isn, mss, now);
        let remote = SocketAddrV4::new(meta.src, ack.src_port);
        let h = self.insert_conn(conn, (meta.dst, remote), Some(ack.dst_port), now);
        if let Some(l) = self.tcp.listeners.get_mut(&ack.dst_port) {
            l.half_open += 1; // settled into the accept queue by `touch`
        }
        self.touch(h);
        true
    }

    pub(super) fn in_accept_queue(&self, h: SocketHandle) -> bool {
        let Some(s) = self.tcp.sockets.get(h) else {
            return false;
        };
        if s.owned {
            return false;
        }
        self.tcp
            .listeners
            .values()
            .any(|l| l.ready.iter().any(|&(r, _)| r == h))
    }

    /// Listens on `port` with an accept queue of `backlog` connections (half-open included).
    pub fn tcp_listen(&mut self, port: u16, backlog: usize) -> Result<(), TcpError> {
        match self.tcp.listeners.entry(port) {
            Entry::Occupied(_) => Err(TcpError::AddrInUse),
            Entry::Vacant(v) => {
                v.insert(Listener {
                    backlog: backlog.max(1),
                    ready: VecDeque::new(),
                    half_open: 0,
                });
                Ok(())
            }
        }
    }

    /// Stops listening; connections not yet accepted are reset.
    pub fn tcp_unlisten(&mut self, port: u16) {
        if let Some(l) = self.tcp.listeners.remove(&port) {
            for (h, _) in l.ready {
                if let Some(s) = self.tcp.sockets.get_mut(h) {
                    s.conn.abort();
                    s.released = true;
                    s.owned = true;
                }
                self.touch(h);
            }
        }
    }

    /// An established connection from `port`'s accept queue, if any.
    pub fn tcp_accept(
        &mut self,
        port: u16,
    ) -> Result<Option<(SocketHandle, SocketAddrV4)>, TcpError> {
        let l = self
            .tcp
            .listeners
            .get_mut(&port)
            .ok_or(TcpError::BadHandle)?;
        let Some((h, _)) = l.ready.pop_front() else {
            return Ok(None);
        };
        let s = self.tcp.sockets.get_mut(h).ok_or(TcpError::BadHandle)?;
        s.owned = true;
        Ok(Some((h, s.remote)))
    }

    /// The connection the frame just received opened from a SYN, once: the engine then reads
    /// its clock and stamps it ([`Stack::tcp_set_opened_at`]). `now` was read before the
    /// frame was; the stamp comes after it, and before our SYN-ACK leaves.
    pub fn tcp_take_opened(&mut self) -> Option<SocketHandle> {
        self.tcp.just_opened.take()
    }

    /// Records when the SYN that opened `h` reached the node: the instant its accept-queue
    /// entry is ordered by ([`Stack::tcp_accept_ready_at`]).
    pub fn tcp_set_opened_at(&mut self, h: SocketHandle, at: Instant) {
        if let Some(s) = self.tcp.sockets.get_mut(h) {
            s.opened_at = at;
        }
    }

    /// When the SYN of the connection the next [`Stack::tcp_accept`] on `port` returns reached
    /// the node, if one waits: a listener served by several stacks (one per worker) accepts
    /// from the one whose head came first, so that connections are accepted in the order they
    /// were made (an iperf3 client numbers its streams that way). The SYN, not the ACK that
    /// completes the handshake: a client that connects one socket after another sends the next
    /// SYN only after our SYN-ACK for the last one, so SYN arrivals keep the client's order
    /// even when the last ACK waits on a slower worker while the next handshake completes on
    /// another.
    pub fn tcp_accept_ready_at(&self, port: u16) -> Option<Instant> {
        self.tcp
            .listeners
            .get(&port)?
            .ready
            .front()
            .map(|&(_, at)| at)
    }
}
