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
use super::{Sink, Stack, TxOffload, Wake};
use crate::tcp::{
    rst_for_unexpected, ConnError, Connection, PathMtu, RecvError, SegmentDrop, SendError,
    SpareBuffers, State, SynCookies,
};
use crate::time::{Duration, Instant};
use crate::wire::{self, IpProtocol, TcpPacket, TcpRepr, TxChecksum};

mod api;
mod flush;
mod ingress;
mod listen;
mod time_wait;

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
    #[error("no route to host")]
    HostUnreachable,
    #[error("network is unreachable")]
    NetUnreachable,
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
            ConnError::HostUnreachable => TcpError::HostUnreachable,
            ConnError::NetUnreachable => TcpError::NetUnreachable,
        }
    }
}

/// A connection as `conns` shows it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// None for a 4-tuple in TIME-WAIT that no application holds (kept compact, without a
    /// socket: see `tcp_table::time_wait`).
    pub handle: Option<SocketHandle>,
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
    /// When the segment that opened it reached the node (the peer's SYN for a passive open, as
    /// the engine stamps it: [`Stack::tcp_set_opened_at`]): the key that orders several
    /// workers' accept queues (see [`Listener::ready`]).
    opened_at: Instant,
}

impl TcpSocket {
    /// No application holds it: released, or never accepted.
    fn let_go(&self) -> bool {
        self.released || !self.owned
    }
}

#[derive(Debug)]
struct Listener {
    backlog: usize,
    /// Established connections waiting for `accept`, with the instant each one's SYN arrived
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
    /// When the buffers of drained connections are next given up.
    sweep_at: Option<Instant>,
    /// Buffers connections gave up, for the next ones (bounded).
    spares: SpareBuffers,
    /// The 4-tuples in TIME-WAIT that no application holds, kept compact.
    tw: time_wait::TimeWaitTable,
    /// The connection the last SYN received opened, until the engine stamps it
    /// ([`Stack::tcp_take_opened`]).
    just_opened: Option<SocketHandle>,
}

impl TcpTable {
    pub fn new(key: (u64, u64)) -> Self {
        TcpTable {
            sockets: Slab::default(),
            conns: HashMap::with_hasher(KeyedHash(key.0, key.1)),
            tw: time_wait::TimeWaitTable::new(KeyedHash(key.0 ^ 0x7477, key.1)),
            listeners: HashMap::new(),
            track_ready: false,
            ready: Vec::new(),
            sweep_at: None,
            spares: SpareBuffers::default(),
            just_opened: None,
        }
    }

    /// When the oldest compact TIME-WAIT ends.
    pub fn time_wait_expiry(&self) -> Option<Instant> {
        self.tw.next_expiry()
    }

    /// When the next buffer sweep is due: a second after the last, while connections exist.
    pub fn sweep_at(&self) -> Option<Instant> {
        self.sweep_at.filter(|_| self.sockets.len() > 0)
    }

    /// Takes the buffers of every connection with nothing in them (all read, all acknowledged)
    /// into the spares, once a [`crate::tcp::BUFFER_SWEEP`]: memory follows idleness without a
    /// busy connection reallocating its rings after every read.
    pub fn sweep(&mut self, now: Instant) {
        match self.sweep_at {
            Some(t) if t > now => {}
            None if self.sockets.len() == 0 => {}
            None => self.sweep_at = Some(now + crate::tcp::BUFFER_SWEEP),
            Some(_) => {
                for s in self.sockets.values_mut() {
                    s.conn.release_idle_buffers_into(&mut self.spares);
                }
                self.sweep_at = Some(now + crate::tcp::BUFFER_SWEEP);
            }
        }
    }
}
impl Stack {
    /// Enters a new connection into the table: it records events if tracing does, takes spare
    /// buffers, gets its 4-tuple's timestamp offset, and is found by its 4-tuple from now on.
    fn insert_conn(
        &mut self,
        mut conn: Connection,
        (local_ip, remote): (Ipv4Addr, SocketAddrV4),
        listener: Option<u16>,
        now: Instant,
    ) -> SocketHandle {
        let local_port = conn.local_port();
        conn.set_events(self.events_on);
        conn.adopt_buffers(&mut self.tcp.spares);
        if let Some(mtu) = self.pmtu.get(*remote.ip(), now) {
            conn.set_path_mtu(mtu);
        }
        conn.set_ts_offset(
            self.isn
                .ts_offset((local_ip, local_port), (*remote.ip(), remote.port())),
        );
        let h = self.tcp.sockets.insert(TcpSocket {
            conn,
            local_ip,
            remote,
            listener,
            owned: listener.is_none(),
            released: false,
            dirty: false,
            timer_at: None,
            in_ready: false,
            opened_at: now,
        });
        self.tcp.conns.insert((local_ip, local_port, remote), h);
        self.counters.tcp_conns_opened += 1;
        h
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
            self.news.push(Wake::Tcp(h));
            if self.tcp.track_ready && s.owned && !s.in_ready {
                s.in_ready = true;
                self.tcp.ready.push(h);
            }
        }
        let state = s.conn.state();
        if matches!(state, State::TimeWait | State::Closed) {
            // Nothing more to send or read: its buffers serve the next connection.
            s.conn.release_idle_buffers_into(&mut self.tcp.spares);
        }
        if let Some(port) = s.listener {
            let synchronized = !matches!(state, State::SynReceived | State::Closed | State::Listen);
            if synchronized || state == State::Closed {
                s.listener = None;
                if let Some(l) = self.tcp.listeners.get_mut(&port) {
                    l.half_open = l.half_open.saturating_sub(1);
                    if synchronized {
                        l.ready.push_back((h, s.opened_at));
                        self.news.push(Wake::Listener(port));
                    }
                }
            }
        }
        if state == State::TimeWait && self.retire_to_time_wait(h) {
            return;
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
        // Only a deadline earlier than the entry already in the heap needs a new one. A later
        // one (an RTO pushed back by every ACK, the common case) keeps the entry, which fires
        // early and is put back at the real deadline then: one heap entry per connection
        // instead of one per segment, each of them popped later at log(heap) cost.
        if let Some(t) = s.conn.poll_at() {
            if s.timer_at.is_none_or(|queued| t < queued) {
                s.timer_at = Some(t);
                self.timers.push(Reverse((t, h)));
                self.timer_pushes += 1;
            }
        }
    }

    /// Whether a new connection may be entered: below `max_conns`. (TIME-WAIT no application
    /// holds takes no room: see `tcp_table::time_wait`.)
    fn room_for_conn(&self) -> bool {
        self.tcp.sockets.len() < self.config.max_conns
    }

    /// An ICMP "fragmentation needed" quoting our segment at `seq` of 4-tuple `key`: the path to
    /// its host takes `mtu`-byte packets at most. The connection sends what it has in flight
    /// again in smaller segments (if `seq` is in flight: RFC 5927), and later connections to
    /// the host start with that MTU.
    pub(in crate::iface) fn tcp_path_mtu(
        &mut self,
        now: Instant,
        key: Tuple,
        seq: wire::SeqNumber,
        mtu: usize,
    ) {
        let Some(h) = self.tcp.conns.get(&key).copied() else {
            return self.counters.drop(DropReason::IcmpTcpNotInFlight);
        };
        let Some(s) = self.tcp.sockets.get_mut(h) else {
            return self.counters.drop(DropReason::IcmpTcpNotInFlight);
        };
        match s.conn.on_path_mtu(now, seq, mtu) {
            PathMtu::NotInFlight => return self.counters.drop(DropReason::IcmpTcpNotInFlight),
            PathMtu::Unchanged => {}
            PathMtu::Lowered => self.counters.tcp_path_mtu_lowered += 1,
        }
        self.pmtu.learn_from_report(*key.2.ip(), mtu, now);
        self.touch(h);
    }

    /// An ICMP error other than "fragmentation needed" quoting our segment at `seq` of 4-tuple
    /// `key`: it ends a connection whose SYN it answers (see [`Connection::on_icmp_error`]);
    /// anything else is counted and ignored.
    pub(in crate::iface) fn tcp_icmp_error(
        &mut self,
        key: Tuple,
        seq: wire::SeqNumber,
        err: ConnError,
    ) {
        let h = self.tcp.conns.get(&key).copied();
        let ended = h.is_some_and(|h| {
            self.tcp
                .sockets
                .get_mut(h)
                .is_some_and(|s| s.conn.on_icmp_error(seq, err))
        });
        match h {
            Some(h) if ended => self.touch(h),
            _ => self.counters.drop(DropReason::IcmpUnhandled),
        }
    }

    fn remove_conn(&mut self, h: SocketHandle) {
        if let Some(mut s) = self.tcp.sockets.remove(h) {
            s.conn.release_idle_buffers_into(&mut self.tcp.spares);
            let key = (s.local_ip, s.conn.local_port(), s.remote);
            if self.tcp.conns.get(&key) == Some(&h) {
                self.tcp.conns.remove(&key);
            }
        }
    }
}
