//! The 4-tuples in TIME-WAIT that no application holds, each a compact [`TimeWait`] instead of a
//! connection: a server that closes first keeps one per connection of the last 2·MSL, and they
//! no longer take slots, timers or room from live connections (`max_conns`). The table holds as
//! many as `max_conns` at most; past that the oldest gives way to the newest, as Linux does past
//! `tcp_max_tw_buckets` (counted: `tcp_time_wait_recycled`).

use super::flush::send_segment;
use super::ingress::drop_reason;
use super::*;
use crate::tcp::TimeWait;

#[derive(Debug)]
pub(super) struct TimeWaitTable {
    entries: HashMap<Tuple, TimeWait, KeyedHash>,
    /// 4-tuples by when their 2·MSL ends, oldest first (every entry gets the same linger, so
    /// appending keeps the order). An entry whose FIN came again is queued anew with its new
    /// end; the earlier item, and the items of entries gone since, are met stale and skipped.
    order: VecDeque<(Instant, Tuple)>,
}

impl TimeWaitTable {
    pub fn new(hasher: KeyedHash) -> Self {
        TimeWaitTable {
            entries: HashMap::with_hasher(hasher),
            order: VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Heap bytes the table holds: its hash table (a control byte per bucket) and its queue, at
    /// their capacities.
    pub fn heap_bytes(&self) -> usize {
        let bucket = std::mem::size_of::<(Tuple, TimeWait)>() + 1;
        let item = std::mem::size_of::<(Instant, Tuple)>();
        // hashbrown keeps buckets at a power of two, at most 7/8 full.
        let buckets = match self.entries.capacity() {
            0 => 0,
            c => (c * 8 / 7).next_power_of_two(),
        };
        buckets * bucket + self.order.capacity() * item
    }

    pub fn contains(&self, key: &Tuple) -> bool {
        self.entries.contains_key(key)
    }

    /// When the oldest entry's 2·MSL ends (or a stale item's, which costs one early look).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.order.front().map(|&(t, _)| t)
    }

    /// Enters `tw` for `key`; at `max` entries the oldest leaves first (returned, to count).
    fn insert(&mut self, key: Tuple, tw: TimeWait, max: usize) -> Option<Tuple> {
        let mut evicted = None;
        while self.entries.len() >= max.max(1) {
            let Some((t, old)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&old).is_some_and(|e| e.expires() == t) {
                self.entries.remove(&old);
                evicted = Some(old);
            }
        }
        self.order.push_back((tw.expires(), key));
        self.entries.insert(key, tw);
        evicted
    }

    /// Takes the entries whose 2·MSL ended by `now` out, calling `gone` for each.
    fn expire(&mut self, now: Instant, mut gone: impl FnMut(Tuple)) {
        while let Some(&(t, key)) = self.order.front() {
            if t > now {
                break;
            }
            self.order.pop_front();
            if self.entries.get(&key).is_some_and(|e| e.expires() == t) {
                self.entries.remove(&key);
                gone(key);
            }
        }
    }

    /// Forgets `key` (a RST ended it, or a new incarnation took it).
    fn remove(&mut self, key: &Tuple) {
        self.entries.remove(key);
        self.compact();
    }

    /// Items of entries gone or moved on are dropped once they outnumber the live ones (each
    /// 4-tuple a new incarnation took, or a RST ended, or whose FIN came again leaves one):
    /// the queue stays within about twice the table, whatever the connection rate, at O(1)
    /// amortized per item.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.order
                .retain(|(t, key)| entries.get(key).is_some_and(|e| e.expires() == *t));
        }
    }
}

impl Stack {
    /// Hands a connection in TIME-WAIT that no application holds to the TIME-WAIT table, once
    /// its last ACK is out; its slot and buffers go to the next connection. Returns whether it
    /// did.
    pub(super) fn retire_to_time_wait(&mut self, h: SocketHandle) -> bool {
        let Some(s) = self.tcp.sockets.get(h) else {
            return false;
        };
        if !s.let_go() || s.listener.is_some() {
            return false;
        }
        let Some(tw) = s.conn.time_wait() else {
            return false;
        };
        let key = (s.local_ip, s.conn.local_port(), s.remote);
        self.remove_conn(h);
        if let Some(old) = self.tcp.tw.insert(key, tw, self.config.max_conns) {
            self.counters.tcp_time_wait_recycled += 1;
            self.record_time_wait_closed(old);
        }
        true
    }

    /// A segment for a 4-tuple in the TIME-WAIT table: answered as the connection would have
    /// (an ACK, sent at once), counted if dropped. Returns false when the table does not hold
    /// the 4-tuple, or when the segment is a SYN that RFC 6191 lets open a new incarnation
    /// (then the entry is gone and the listener takes the SYN).
    pub(super) fn time_wait_segment(
        &mut self,
        now: Instant,
        key: Tuple,
        repr: &TcpRepr,
        reopen: bool,
        sink: &mut impl Sink,
    ) -> bool {
        if self.tcp.tw.entries.is_empty() {
            return false;
        }
        let Some(tw) = self.tcp.tw.entries.get_mut(&key) else {
            return false;
        };
        if reopen && tw.accepts(repr) {
            self.tcp.tw.remove(&key);
            self.record_time_wait_closed(key);
            return false;
        }
        let before = tw.expires();
        let out = tw.handle_segment(
            now,
            repr,
            self.config.tcp.time_wait,
            self.config.tcp.challenge_ack_limit,
        );
        let (after, ack) = (tw.expires(), out.ack.then(|| tw.ack(now)));
        if let Some(d) = out.drop {
            self.counters.drop(drop_reason(d));
        }
        if let Some(ack) = ack {
            let mut eg = self.egress();
            send_segment(&mut eg, now, sink, key.0, key.2, |_| Some((ack, 0)));
        }
        if out.closed {
            self.tcp.tw.remove(&key);
            self.record_time_wait_closed(key);
        } else if after != before {
            self.tcp.tw.order.push_back((after, key));
            self.tcp.tw.compact();
        }
        true
    }

    /// Forgets the TIME-WAIT entries whose 2·MSL ended by `now`.
    pub(super) fn expire_time_wait(&mut self, now: Instant) {
        if self.tcp.tw.next_expiry().is_none_or(|t| t > now) {
            return;
        }
        let mut gone = Vec::new();
        let events = self.events_on;
        self.tcp.tw.expire(now, |key| {
            if events {
                gone.push(key);
            }
        });
        for key in gone {
            self.record_time_wait_closed(key);
        }
    }

    /// Items in the TIME-WAIT table's expiry queue, stale ones included (for the tests of its
    /// bound).
    #[cfg(test)]
    pub(in crate::iface) fn time_wait_queue_len(&self) -> usize {
        self.tcp.tw.order.len()
    }

    /// With events on: the entry's connection went from TIME-WAIT to CLOSED.
    fn record_time_wait_closed(&mut self, (ip, port, remote): Tuple) {
        if self.events_on {
            let conn = ConnId {
                local: (ip, port),
                remote: (*remote.ip(), remote.port()),
            };
            self.record(StackEvent::TcpState {
                conn,
                from: State::TimeWait,
                to: State::Closed,
            });
        }
    }

    /// The TIME-WAIT table's 4-tuples, as `conns` shows them.
    pub(super) fn time_wait_infos(&self) -> impl Iterator<Item = ConnInfo> + '_ {
        self.tcp
            .tw
            .entries
            .iter()
            .map(|(&(ip, port, remote), _)| ConnInfo {
                handle: None,
                local: SocketAddrV4::new(ip, port),
                remote,
                state: State::TimeWait,
                send_queue: 0,
                recv_queue: 0,
                rtt: None,
                cwnd: 0,
            })
    }
}
