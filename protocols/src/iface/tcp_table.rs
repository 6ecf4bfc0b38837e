//! TCP sockets of one stack: connections found by a keyed hash of their 4-tuple, listeners with
//! a bounded accept queue, RSTs for segments nobody owns (RFC 9293 §3.10.7.1), and the timer and
//! dirty lists that let `poll` visit only the connections with work.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddrV4};

use siphasher::sip::SipHasher13;

use super::counters::DropReason;
use super::egress::{emit_ipv4, Egress};
use super::event::{ConnId, StackEvent};
use super::ingress::IpMeta;
use super::sockets::{Slab, SocketHandle};
use super::{Sink, Stack, TxOffload};
use crate::tcp::{
    rst_for_unexpected, ConnError, Connection, RecvError, SegmentDrop, SendError, State, SynCookies,
};
use crate::time::{Duration, Instant};
use crate::wire::{self, IpProtocol, TcpPacket, TcpRepr, TxChecksum};

/// Why a TCP call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TcpError {
    #[error("address in use")]
    AddrInUse,
    #[error("no free ephemeral port")]
    NoFreePort,
    #[error("too many connections")]
    MaxConns,
    #[error("no such socket")]
    BadHandle,
    #[error("operation would block")]
    WouldBlock,
    #[error("not connected")]
    NotConnected,
    #[error("connection refused")]
    Refused,
    #[error("connection reset")]
    Reset,
    #[error("connection timed out")]
    TimedOut,
    #[error("connection closed for sending")]
    Closed,
    #[error("not one of the node's addresses")]
    BadAddress,
}

impl From<ConnError> for TcpError {
    fn from(e: ConnError) -> Self {
        match e {
            ConnError::Refused => TcpError::Refused,
            ConnError::Reset => TcpError::Reset,
            ConnError::TimedOut => TcpError::TimedOut,
        }
    }
}

/// A connection as `conns` shows it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub handle: SocketHandle,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub state: State,
    pub send_queue: usize,
    pub recv_queue: usize,
    pub rtt: Option<Duration>,
    pub cwnd: usize,
}

/// What a blocked caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// `recv` would not block: data, EOF or an error.
    pub readable: bool,
    /// `send` would not block: room, or an error.
    pub writable: bool,
    pub state: State,
    pub error: Option<TcpError>,
}

/// SipHash-1-3 keyed from the stack's RNG, so that remote peers cannot aim at one bucket.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeyedHash(u64, u64);

impl BuildHasher for KeyedHash {
    type Hasher = SipHasher13;
    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.0, self.1)
    }
}

/// (our address, our port, their address and port): with several local addresses
/// (`StackConfig::extra_addrs`) one remote port can be reached from each of them.
type Tuple = (Ipv4Addr, u16, SocketAddrV4);

/// Segments one connection may send in one `poll` before the others get their turn.
const MAX_BURST: usize = 64;

#[derive(Debug)]
struct TcpSocket {
    conn: Connection,
    /// The node address this connection uses (the node's own, or one of `extra_addrs`).
    local_ip: Ipv4Addr,
    remote: SocketAddrV4,
    /// The listening port this connection came from, until it is accepted.
    listener: Option<u16>,
    /// The application holds a handle (connected, or accepted from a listener).
    owned: bool,
    /// The application let go of its handle: free the socket once closed.
    released: bool,
    dirty: bool,
    timer_at: Option<Instant>,
    /// On the ready list (see [`Stack::tcp_take_ready`]).
    in_ready: bool,
    /// When the last segment for it arrived: for a passive open, the instant it became
    /// established once it moves to the accept queue.
    last_input: Instant,
}

#[derive(Debug)]
struct Listener {
    backlog: usize,
    /// Established connections waiting for `accept`, with the instant each was established
    /// (several workers' queues are merged in that order: [`Stack::tcp_accept_ready_at`]).
    ready: VecDeque<(SocketHandle, Instant)>,
    /// Connections in SYN-RECEIVED.
    half_open: usize,
}

#[derive(Debug)]
pub(super) struct TcpTable {
    sockets: Slab<TcpSocket>,
    conns: HashMap<Tuple, SocketHandle, KeyedHash>,
    listeners: HashMap<u16, Listener>,
    /// Keep a list of connections with news for their application (run-to-completion apps).
    track_ready: bool,
    ready: Vec<SocketHandle>,
    /// When the receive rings of drained connections are next freed.
    sweep_at: Option<Instant>,
}

impl TcpTable {
    pub fn new(key: (u64, u64)) -> Self {
        TcpTable {
            sockets: Slab::default(),
            conns: HashMap::with_hasher(KeyedHash(key.0, key.1)),
            listeners: HashMap::new(),
            track_ready: false,
            ready: Vec::new(),
            sweep_at: None,
        }
    }

    /// When the next buffer sweep is due: a second after the last, while connections exist.
    pub fn sweep_at(&self) -> Option<Instant> {
        self.sweep_at.filter(|_| self.sockets.len() > 0)
    }

    /// Frees the receive ring of every connection whose data was all read, once a
    /// [`crate::tcp::BUFFER_SWEEP`]: memory follows idleness without a busy connection
    /// reallocating its ring after every read.
    pub fn sweep(&mut self, now: Instant) {
        match self.sweep_at {
            Some(t) if t > now => {}
            None if self.sockets.len() == 0 => {}
            None => self.sweep_at = Some(now + crate::tcp::BUFFER_SWEEP),
            Some(_) => {
                for s in self.sockets.values_mut() {
                    s.conn.release_idle_buffers();
                }
                self.sweep_at = Some(now + crate::tcp::BUFFER_SWEEP);
            }
        }
    }
}

impl Stack {
    pub(super) fn receive_tcp(
        &mut self,
        now: Instant,
        meta: IpMeta,
        _header: &[u8],
        body: &[u8],
        sink: &mut impl Sink,
    ) {
        let packet = match TcpPacket::new_checked(body) {
            Ok(p) => p,
            Err(_) => return self.counters.drop(DropReason::TcpMalformed),
        };
        let verify = self.config.rx_verify_checksums;
        let repr = match TcpRepr::parse(&packet, meta.src, meta.dst, verify) {
            Ok(r) => r,
            Err(wire::Error::BadChecksum) => return self.counters.drop(DropReason::TcpBadChecksum),
            Err(_) => return self.counters.drop(DropReason::TcpMalformed),
        };
        if meta.broadcast {
            return self.counters.drop(DropReason::NotForUs);
        }
        let remote = SocketAddrV4::new(meta.src, repr.src_port);
        let key = (meta.dst, repr.dst_port, remote);
        let flags = repr.flags;
        // SYN+FIN is no opening SYN: Linux and the BSDs drop it in LISTEN, as RFC 9293 §3.10.7.2's
        // "other control" segments.
        let bare_syn = flags.syn() && !flags.ack() && !flags.rst() && !flags.fin();
        if let Some(&h) = self.tcp.conns.get(&key) {
            // RFC 6191: a SYN with a newer timestamp (or ISN) for a 4-tuple in TIME-WAIT opens
            // a new incarnation: the old one gives way, the listener takes the SYN.
            let reuse = bare_syn
                && self.tcp.listeners.contains_key(&repr.dst_port)
                && self
                    .tcp
                    .sockets
                    .get(h)
                    .is_some_and(|s| s.conn.time_wait_accepts(&repr));
            if !reuse {
                let mut dropped = None;
                if let Some(s) = self.tcp.sockets.get_mut(h) {
                    s.conn.handle_segment(now, &repr, packet.payload());
                    s.last_input = self.arrival.unwrap_or(now);
                    dropped = s.conn.take_drop();
                }
                if let Some(d) = dropped {
                    self.counters.drop(drop_reason(d));
                }
                self.touch(h);
                return;
            }
            self.tcp.conns.remove(&key);
            if let Some(s) = self.tcp.sockets.get_mut(h) {
                s.conn.abort(); // TIME-WAIT: closes without a RST
            }
            self.touch(h);
        }
        if bare_syn {
            if let Some(l) = self.tcp.listeners.get(&repr.dst_port) {
                if l.ready.len() >= l.backlog {
                    return self.counters.drop(DropReason::TcpBacklogFull);
                }
                if l.ready.len() + l.half_open >= l.backlog {
                    if !self.config.tcp.syn_cookies {
                        return self.counters.drop(DropReason::TcpBacklogFull);
                    }
                    return self.send_syn_cookie(now, meta, &repr, sink);
                }
                if self.tcp.sockets.len() >= self.config.max_conns {
                    return self.counters.drop(DropReason::TcpMaxConns);
                }
                let isn = self
                    .isn
                    .isn((meta.dst, repr.dst_port), (meta.src, repr.src_port), now);
                let mut conn = Connection::accept(&self.config.tcp, &repr, isn, now);
                conn.set_events(self.events_on);
                let h = self.tcp.sockets.insert(TcpSocket {
                    conn,
                    local_ip: meta.dst,
                    remote,
                    listener: Some(repr.dst_port),
                    owned: false,
                    released: false,
                    dirty: false,
                    timer_at: None,
                    in_ready: false,
                    last_input: now,
                });
                self.tcp.conns.insert(key, h);
                if let Some(l) = self.tcp.listeners.get_mut(&repr.dst_port) {
                    l.half_open += 1;
                }
                self.counters.tcp_conns_opened += 1;
                self.touch(h);
                return;
            }
        }
        if flags.ack() && !flags.syn() && !flags.rst() && self.config.tcp.syn_cookies {
            if let Some(l) = self.tcp.listeners.get(&repr.dst_port) {
                let accept_full = l.ready.len() >= l.backlog;
                if self.accept_syn_cookie(now, meta, &repr, packet.payload(), accept_full) {
                    return;
                }
                self.counters.drop(DropReason::TcpBadSynCookie);
                return self.send_rst_for(now, meta.dst, remote, &repr, sink);
            }
        }
        if !flags.ack() && !flags.rst() && self.tcp.listeners.contains_key(&repr.dst_port) {
            // RFC 9293 §3.10.7.2, LISTEN, fourth: any other control or text-bearing segment
            // without ACK is dropped, not answered: FIN, NULL and Xmas probes learn nothing
            // (a RST here is how `nmap -sF` would call every listening port closed).
            return self.counters.drop(DropReason::TcpListenNoAck);
        }
        self.counters.drop(DropReason::TcpNoListener);
        self.send_rst_for(now, meta.dst, remote, &repr, sink);
    }

    fn send_rst_for(
        &mut self,
        now: Instant,
        local: Ipv4Addr,
        remote: SocketAddrV4,
        repr: &TcpRepr,
        sink: &mut impl Sink,
    ) {
        if let Some(rst) = rst_for_unexpected(repr) {
            self.counters.tcp_rst_sent += 1;
            let mut eg = self.egress();
            send_segment(&mut eg, now, sink, local, remote, |_| Some((rst, 0)));
        }
    }

    /// RFC 4987: the listener's queue of half-open connections is full: answer with a SYN-ACK
    /// whose ISN is a cookie, and keep no state.
    fn send_syn_cookie(&mut self, now: Instant, meta: IpMeta, syn: &TcpRepr, sink: &mut impl Sink) {
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
    fn accept_syn_cookie(
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
        if self.tcp.sockets.len() >= self.config.max_conns {
            self.counters.drop(DropReason::TcpMaxConns);
            return true;
        }
        let isn = ack_number - 1usize;
        let mut conn = Connection::from_syn_cookie(&self.config.tcp, ack, payload, isn, mss, now);
        conn.set_events(self.events_on);
        let remote = SocketAddrV4::new(meta.src, ack.src_port);
        let h = self.tcp.sockets.insert(TcpSocket {
            conn,
            local_ip: meta.dst,
            remote,
            listener: Some(ack.dst_port),
            owned: false,
            released: false,
            dirty: false,
            timer_at: None,
            in_ready: false,
            last_input: now,
        });
        self.tcp.conns.insert((meta.dst, ack.dst_port, remote), h);
        if let Some(l) = self.tcp.listeners.get_mut(&ack.dst_port) {
            l.half_open += 1; // settled into the accept queue by `touch`
        }
        self.counters.tcp_conns_opened += 1;
        self.touch(h);
        true
    }

    /// Anything happened to connection `h` (a segment, a timer, an application call): it may
    /// have something to send at the next `poll`.
    fn touch(&mut self, h: SocketHandle) {
        if let Some(s) = self.tcp.sockets.get_mut(h) {
            if !s.dirty {
                s.dirty = true;
                self.dirty.push(h);
            }
        }
        self.settle(h);
    }

    /// Bookkeeping after connection `h` changed: wake the application, move it to its
    /// listener's accept queue, schedule its timer, free it when done.
    fn settle(&mut self, h: SocketHandle) {
        if self.events_on {
            self.collect_events(h);
        }
        let Some(s) = self.tcp.sockets.get_mut(h) else {
            return;
        };
        if s.conn.take_wakeup() {
            self.wakeup = true;
            if self.tcp.track_ready && s.owned && !s.in_ready {
                s.in_ready = true;
                self.tcp.ready.push(h);
            }
        }
        let state = s.conn.state();
        if let Some(port) = s.listener {
            let synchronized = !matches!(state, State::SynReceived | State::Closed | State::Listen);
            if synchronized || state == State::Closed {
                s.listener = None;
                if let Some(l) = self.tcp.listeners.get_mut(&port) {
                    l.half_open = l.half_open.saturating_sub(1);
                    if synchronized {
                        l.ready.push_back((h, s.last_input));
                        self.wakeup = true;
                    }
                }
            }
        }
        self.reschedule(h);
    }

    fn collect_events(&mut self, h: SocketHandle) {
        let Some(s) = self.tcp.sockets.get_mut(h) else {
            return;
        };
        let local = s.local_ip;
        let conn = ConnId {
            local: (local, s.conn.local_port()),
            remote: (*s.remote.ip(), s.remote.port()),
        };
        let mut evs = [None; 8];
        let mut n = 0;
        for slot in evs.iter_mut() {
            match s.conn.take_event() {
                Some(e) => {
                    *slot = Some(e);
                    n += 1;
                }
                None => break,
            }
        }
        for e in evs.into_iter().flatten() {
            self.record(StackEvent::from_tcp(conn, e));
        }
        if n == 8 {
            // More than fit in one pass: come back for the rest.
            self.collect_events(h);
        }
    }

    /// Turns event recording on or off for every connection (and those made later).
    pub(super) fn tcp_set_events(&mut self, on: bool) {
        let handles: Vec<SocketHandle> = self.tcp.sockets.iter().map(|(h, _)| h).collect();
        for h in handles {
            if let Some(s) = self.tcp.sockets.get_mut(h) {
                s.conn.set_events(on);
            }
        }
    }

    fn reschedule(&mut self, h: SocketHandle) {
        let Some(s) = self.tcp.sockets.get_mut(h) else {
            return;
        };
        if s.conn.is_closed()
            && s.listener.is_none()
            && (s.released || !s.owned)
            && !self.in_accept_queue(h)
        {
            self.remove_conn(h);
            return;
        }
        let Some(s) = self.tcp.sockets.get_mut(h) else {
            return;
        };
        let at = s.conn.poll_at();
        if at != s.timer_at {
            s.timer_at = at;
            if let Some(t) = at {
                self.timers.push(Reverse((t, h)));
            }
        }
    }

    fn in_accept_queue(&self, h: SocketHandle) -> bool {
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

    fn remove_conn(&mut self, h: SocketHandle) {
        if let Some(s) = self.tcp.sockets.remove(h) {
            let key = (s.local_ip, s.conn.local_port(), s.remote);
            if self.tcp.conns.get(&key) == Some(&h) {
                self.tcp.conns.remove(&key);
            }
        }
    }

    /// TCP connections held (any state, listeners not counted).
    pub fn tcp_conn_count(&self) -> usize {
        self.tcp.sockets.len()
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

    pub(super) fn poll_tcp_timers(&mut self, now: Instant) {
        self.tcp.sweep(now);
        while let Some(&Reverse((t, h))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(s) = self.tcp.sockets.get_mut(h) else {
                continue;
            };
            if s.timer_at != Some(t) {
                continue; // stale entry
            }
            s.timer_at = None;
            s.conn.handle_timeout(now);
            self.touch(h);
        }
    }

    pub(super) fn flush_tcp(&mut self, now: Instant, sink: &mut impl Sink) {
        // By index, not by taking the list: connections touched meanwhile go after `pending`
        // and wait for the next poll, and the list keeps its capacity (no allocation per poll).
        let pending = self.dirty.len();
        // With the sink out of buffers, the rest of the list waits (still marked dirty) for the
        // next poll, after the engine has written and freed what this one built.
        let mut done = pending;
        for i in 0..pending {
            if !sink.has_room() {
                done = i;
                break;
            }
            let Some(&h) = self.dirty.get(i) else { break };
            let Stack {
                tcp,
                config,
                arp,
                counters,
                ip_ident,
                ..
            } = self;
            let Some(s) = tcp.sockets.get_mut(h) else {
                continue;
            };
            s.dirty = false;
            let remote = s.remote;
            let local = s.local_ip;
            let mut eg = Egress {
                config,
                arp,
                counters,
                ip_ident,
            };
            // Bounded so that one connection cannot starve the others within a poll; one that
            // still has more goes back on the dirty list.
            let mut sent_all = false;
            for _ in 0..MAX_BURST {
                if !sink.has_room() {
                    break;
                }
                let conn = &mut s.conn;
                if !send_segment(&mut eg, now, sink, local, remote, |seg| {
                    let repr = conn.poll_transmit(now, seg)?;
                    let gso = conn.gso_size(&repr);
                    Some((repr, gso))
                }) {
                    sent_all = true;
                    break;
                }
            }
            if sent_all {
                self.settle(h);
            } else {
                self.touch(h);
            }
        }
        self.dirty.drain(..done);
    }

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

    /// When the connection the next [`Stack::tcp_accept`] on `port` returns was established,
    /// if one waits: a listener served by several stacks (one per worker) accepts from the one
    /// whose head came first, so that connections are accepted in the order they were made,
    /// as from one kernel accept queue (an iperf3 client numbers its streams that way).
    pub fn tcp_accept_ready_at(&self, port: u16) -> Option<Instant> {
        self.tcp
            .listeners
            .get(&port)?
            .ready
            .front()
            .map(|&(_, at)| at)
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
        if self.tcp.sockets.len() >= self.config.max_conns {
            return Err(TcpError::MaxConns);
        }
        let port = match local_port {
            Some(p) => {
                // Like a kernel bind without SO_REUSEADDR: a listening port is taken too.
                if self.tcp.listeners.contains_key(&p)
                    || self.tcp.conns.contains_key(&(local_ip, p, remote))
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
        let mut conn = Connection::connect(&self.config.tcp, port, remote.port(), isn, now);
        conn.set_events(self.events_on);
        let h = self.tcp.sockets.insert(TcpSocket {
            conn,
            local_ip,
            remote,
            listener: None,
            owned: true,
            released: false,
            dirty: false,
            timer_at: None,
            in_ready: false,
            last_input: now,
        });
        self.tcp.conns.insert((local_ip, port, remote), h);
        self.counters.tcp_conns_opened += 1;
        self.touch(h);
        Ok(h)
    }

    fn tcp_ephemeral_port(
        &mut self,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
        port_ok: &dyn Fn(u16) -> bool,
    ) -> Result<u16, TcpError> {
        let (lo, hi) = (
            *super::udp::EPHEMERAL_PORTS.start(),
            *super::udp::EPHEMERAL_PORTS.end(),
        );
        let span = u64::from(hi - lo) + 1;
        let start = self.rng.below(span) as u16;
        for i in 0..span as u16 {
            let port = lo + (start.wrapping_add(i) % span as u16);
            if !self.tcp.listeners.contains_key(&port)
                && !self.tcp.conns.contains_key(&(local_ip, port, remote))
                && port_ok(port)
            {
                return Ok(port);
            }
        }
        Err(TcpError::NoFreePort)
    }

    fn conn_mut(&mut self, h: SocketHandle) -> Result<&mut Connection, TcpError> {
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
            if !s.conn.is_closed() {
                s.conn.close();
            }
        }
        self.touch(h);
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

    fn info_of(&self, handle: SocketHandle, s: &TcpSocket) -> ConnInfo {
        let c = &s.conn;
        ConnInfo {
            handle,
            local: SocketAddrV4::new(s.local_ip, c.local_port()),
            remote: s.remote,
            state: c.state(),
            send_queue: c.send_queue(),
            recv_queue: c.recv_queue(),
            rtt: c.rtt(),
            cwnd: c.cwnd(),
        }
    }

    /// Every connection, for `conns`.
    pub fn tcp_conns(&self) -> Vec<ConnInfo> {
        self.tcp
            .sockets
            .iter()
            .map(|(h, s)| self.info_of(h, s))
            .collect()
    }

    /// Ports with a listener.
    pub fn tcp_listeners(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self.tcp.listeners.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

/// A read's outcome as the application sees it: a reset or timeout that ended the connection
/// is reported once nothing is left to read.
fn recv_result<T>(r: Result<T, RecvError>, err: Option<ConnError>) -> Result<T, TcpError> {
    match r {
        Ok(v) => Ok(v),
        Err(RecvError::WouldBlock) => match err {
            Some(e) => Err(e.into()),
            None => Err(TcpError::WouldBlock),
        },
        Err(_) => Err(err.map(TcpError::from).unwrap_or(TcpError::NotConnected)),
    }
}

/// The counter for a segment a connection dropped.
fn drop_reason(d: SegmentDrop) -> DropReason {
    match d {
        SegmentDrop::Paws => DropReason::TcpPaws,
        SegmentDrop::ChallengeAckLimited => DropReason::TcpChallengeAckLimited,
        SegmentDrop::BadAck => DropReason::TcpBadAck,
        SegmentDrop::OutOfWindow => DropReason::TcpOutOfWindow,
    }
}

/// Builds one TCP segment straight into a frame: `make` gets the room for the segment and
/// returns its header (payload already written after it) and its GSO size (payload bytes per
/// MSS), or None for nothing to send. With TSO on (`tso_max`) the room is up to 64 KiB, and a
/// segment larger than one MSS leaves its checksum and segmentation to the device.
/// Returns whether a segment was produced.
fn send_segment<S: Sink>(
    eg: &mut Egress<'_>,
    now: Instant,
    sink: &mut S,
    local: Ipv4Addr,
    remote: SocketAddrV4,
    make: impl FnOnce(&mut [u8]) -> Option<(TcpRepr, usize)>,
) -> bool {
    let ident = eg.next_ident();
    let ttl = eg.config.ttl;
    let csum = eg.config.tx_checksum;
    let tso = eg.config.tcp.tso_max > 0;
    let max_ip = if tso {
        usize::from(u16::MAX)
    } else {
        eg.config.mtu
    };
    let dst = *remote.ip();
    let mut produced = false;
    let produced_ref = &mut produced;
    eg.send_ipv4_offload(now, sink, dst, max_ip, |buf| {
        let Some(seg) = buf.get_mut(20..) else {
            return (0, TxOffload::default());
        };
        let Some((repr, gso)) = make(seg) else {
            return (0, TxOffload::default());
        };
        *produced_ref = true;
        let hlen = repr.header_len();
        let seg_len = hlen + repr.payload_len;
        let Some(seg) = seg.get_mut(..seg_len) else {
            return (0, TxOffload::default());
        };
        let mut off = TxOffload::default();
        let mode = if tso && gso > 0 && repr.payload_len > gso {
            off = TxOffload {
                csum: Some((20, 16)),
                gso_size: u16::try_from(gso).unwrap_or(u16::MAX),
                hdr_len: u16::try_from(20 + hlen).unwrap_or(u16::MAX),
            };
            TxChecksum::PseudoHeaderOnly
        } else {
            csum
        };
        repr.emit(&mut TcpPacket::new_unchecked(seg), local, dst, mode);
        let n = emit_ipv4(buf, local, dst, IpProtocol::Tcp, seg_len, ident, ttl);
        (n, off)
    });
    produced
}
