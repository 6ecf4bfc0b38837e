//! IPv4 fragmentation on send (RFC 791 §3.2, RFC 1122 §3.3.3).
//!
//! Only whole datagrams that the node builds at once (UDP, ICMP) are fragmented: their transport
//! header and checksum are written over the whole payload first, then the payload is cut into
//! fragments of the largest multiple of 8 bytes that fits the MTU, all with DF clear and one
//! identification. A datagram that fits the MTU goes out in one packet with DF set, as before;
//! the MTU is the smaller path MTU where one was learned towards the destination (RFC 1191).
//! TCP never needs this (its segments are sized by the MSS) and sends with DF=1; nothing else is
//! ever fragmented by this node.

use std::net::Ipv4Addr;

use super::counters::DropReason;
use super::egress::{emit_ipv4, Egress};
use super::Sink;
use crate::time::Instant;
use crate::wire::{ipv4, IpProtocol, Ipv4Packet, Ipv4Repr};

/// The largest payload an IPv4 datagram can carry (65535 less a 20-byte header).
pub const MAX_IPV4_PAYLOAD: usize = 65535 - ipv4::HEADER_LEN;

impl Egress<'_> {
    /// Sends `payload` (a transport datagram, checksum filled) from `src` to `dst`: in one packet
    /// with DF set when it fits the MTU (the link's, or the smaller path MTU learned towards
    /// `dst`: RFC 1191), else in fragments with DF clear. Returns false when
    /// nothing or not everything could go out (no route, ARP queue full, too big), counted.
    #[allow(clippy::too_many_arguments)]
    pub fn send_datagram<S: Sink>(
        &mut self,
        now: Instant,
        sink: &mut S,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        ttl: u8,
        payload: &[u8],
    ) -> bool {
        let ident = self.next_ident();
        let mtu = self.mtu_to(dst, now);
        if payload.len() > MAX_IPV4_PAYLOAD {
            self.counters.drop(DropReason::TxTooBig);
            return false;
        }
        if ipv4::HEADER_LEN + payload.len() <= mtu {
            return self.send_ipv4(now, sink, dst, |buf| {
                let end = ipv4::HEADER_LEN + payload.len();
                let Some(body) = buf.get_mut(ipv4::HEADER_LEN..end) else {
                    return 0;
                };
                body.copy_from_slice(payload);
                emit_ipv4(buf, src, dst, protocol, payload.len(), ident, ttl)
            });
        }
        // RFC 791: every fragment but the last carries a multiple of 8 bytes.
        let chunk = (mtu.saturating_sub(ipv4::HEADER_LEN) / 8) * 8;
        if chunk == 0 {
            self.counters.drop(DropReason::TxTooBig);
            return false;
        }
        let mut all = true;
        for (i, piece) in payload.chunks(chunk).enumerate() {
            let offset = i * chunk;
            let more = offset + piece.len() < payload.len();
            let repr = Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                protocol,
                payload_len: piece.len(),
                ttl,
                ident,
                dont_frag: false,
                more_frags: more,
                // Below 65536: the payload is at most MAX_IPV4_PAYLOAD.
                frag_offset: u16::try_from(offset).unwrap_or(u16::MAX),
                dscp_ecn: 0,
            };
            let sent = self.send_ipv4(now, sink, dst, |buf| {
                let end = ipv4::HEADER_LEN + piece.len();
                let Some(packet) = buf.get_mut(..end) else {
                    return 0;
                };
                if let Some(body) = packet.get_mut(ipv4::HEADER_LEN..) {
                    body.copy_from_slice(piece);
                }
                repr.emit(&mut Ipv4Packet::new_unchecked(packet));
                end
            });
            if sent {
                self.counters.ipv4_fragments_sent += 1;
            }
            all &= sent;
        }
        all
    }
}
