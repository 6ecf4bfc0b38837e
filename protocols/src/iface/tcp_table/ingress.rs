//! TCP segments in: to the connection that owns them, to a listener (SYN, or the ACK of a SYN
//! cookie), or answered with a RST when nobody owns them (RFC 9293 §3.10.7.1).

use super::flush::send_segment;
use super::*;

impl Stack {
    pub(in crate::iface) fn receive_tcp(
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
        let reopen = bare_syn && self.tcp.listeners.contains_key(&repr.dst_port);
        if self.time_wait_segment(now, key, &repr, reopen, sink) {
            return;
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
                if !self.room_for_conn() {
                    return self.counters.drop(DropReason::TcpMaxConns);
                }
                let isn = self
                    .isn
                    .isn((meta.dst, repr.dst_port), (meta.src, repr.src_port), now);
                let conn = Connection::accept(&self.config.tcp, &repr, isn, now);
                let h = self.insert_conn(conn, (meta.dst, remote), Some(repr.dst_port), now);
                self.tcp.just_opened = Some(h);
                if let Some(l) = self.tcp.listeners.get_mut(&repr.dst_port) {
                    l.half_open += 1;
                }
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

    pub(super) fn send_rst_for(
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
}

/// The counter for a segment a connection dropped.
pub(super) fn drop_reason(d: SegmentDrop) -> DropReason {
    match d {
        SegmentDrop::Paws => DropReason::TcpPaws,
        SegmentDrop::ChallengeAckLimited => DropReason::TcpChallengeAckLimited,
        SegmentDrop::BadAck => DropReason::TcpBadAck,
        SegmentDrop::OutOfWindow => DropReason::TcpOutOfWindow,
        SegmentDrop::DataAfterClose => DropReason::TcpDataAfterClose,
    }
}
