//! TCP out: timers that fired, then every connection with work sends what it may, each
//! segment built in place in a frame of the sink.

use super::*;

impl Stack {
    pub(in crate::iface) fn poll_tcp_timers(&mut self, now: Instant) {
        self.tcp.sweep(now);
        self.expire_time_wait(now);
        while let Some(&Reverse((t, h))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(s) = self.tcp.sockets.get_mut(h) else {
                continue;
            };
            if s.timer_at != Some(t) {
                continue; // superseded by an earlier entry
            }
            s.timer_at = None;
            match s.conn.poll_at() {
                // The deadline moved on since this entry was queued: queue it again there.
                Some(at) if at > now => self.reschedule(h),
                None => {}
                Some(_) => {
                    s.conn.handle_timeout(now);
                    self.touch(h);
                }
            }
        }
    }

    pub(in crate::iface) fn flush_tcp(&mut self, now: Instant, sink: &mut impl Sink) {
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
                pmtu,
                redirects,
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
                pmtu,
                redirects,
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
}

/// Builds one TCP segment straight into a frame: `make` gets the room for the segment and
/// returns its header (payload already written after it) and its GSO size (payload bytes per
/// MSS), or None for nothing to send. With TSO on (`tso_max`) the room is up to 64 KiB, and a
/// segment larger than one MSS leaves its checksum and segmentation to the device; with
/// checksum offload (`tx_csum_offload`) every segment leaves its checksum to the device.
/// Returns whether a segment was produced.
pub(super) fn send_segment<S: Sink>(
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
    let csum_offload = eg.config.tx_csum_offload;
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
        } else if csum_offload {
            off.csum = Some((20, 16));
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
