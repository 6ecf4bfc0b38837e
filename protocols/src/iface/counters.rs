//! Counters: every frame the stack drops is dropped for a named reason.

use core::fmt;

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// Why the stack dropped a frame or packet. `stats` prints these by name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(usize)]
        pub enum DropReason {
            $(#[doc = $doc] $variant,)*
        }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();

            /// The counter's name, as `stats` and the trace print it.
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }
        }
    };
}

drop_reasons! {
    EthTruncated => "eth_truncated", "A frame shorter than an Ethernet header.";
    NotForUs => "not_for_us", "A frame or packet addressed to another host.";
    UnknownEthertype => "unknown_ethertype", "An EtherType this stack does not handle (IPv6 included).";
    ArpMalformed => "arp_malformed", "An ARP packet that is truncated or not Ethernet/IPv4.";
    Ipv4Truncated => "ipv4_truncated", "An IPv4 packet shorter than its header or its total length.";
    Ipv4Malformed => "ipv4_malformed", "An IPv4 header with a bad version, header length or total length.";
    Ipv4BadChecksum => "ipv4_bad_checksum", "An IPv4 header whose checksum is wrong.";
    Ipv4BadSource => "ipv4_bad_source", "An IPv4 packet from a broadcast, multicast or our own address.";
    IcmpRedirectRefused => "icmp_redirect_refused", "An ICMP redirect not taken: not from the router used for that destination, not about a datagram we sent, or naming a gateway off our subnet.";
    Ipv4BadOptions => "ipv4_bad_options", "An IPv4 packet whose options are malformed (answered by a parameter problem).";
    Ipv4SourceRouted => "ipv4_source_routed", "An IPv4 packet with a loose or strict source route (refused, as Linux refuses them by default).";
    FragMalformed => "frag_malformed", "An IPv4 fragment whose length is not a multiple of 8, is empty, or runs past 65535 bytes.";
    FragOverlap => "frag_overlap", "An IPv4 fragment overlapping another of its datagram (or inconsistent with its end): the whole datagram is dropped (RFC 5722 rule).";
    FragDuplicate => "frag_duplicate", "An exact duplicate of an IPv4 fragment already held.";
    FragTooMany => "frag_too_many", "An IPv4 datagram in more fragments than the per-datagram bound: dropped whole.";
    FragTimeout => "frag_timeout", "An IPv4 datagram not reassembled within the timeout (30 s).";
    FragEvicted => "frag_evicted", "An IPv4 datagram in progress evicted (oldest first) to make room within the reassembly memory bound.";
    FragNoMemory => "frag_no_memory", "An IPv4 fragment that does not fit in the reassembly pool even alone.";
    ArpUnsolicited => "arp_unsolicited", "An ARP packet that would have changed a live cache entry, or created one, without our asking (anti-poisoning).";
    ArpConflict => "arp_conflict", "An ARP packet from another host claiming our own address (RFC 5227 conflict).";
    UnknownProtocol => "unknown_protocol", "An IPv4 protocol with no handler and no raw socket.";
    IcmpMalformed => "icmp_malformed", "A truncated ICMP message.";
    IcmpBadChecksum => "icmp_bad_checksum", "An ICMP message whose checksum is wrong.";
    IcmpUnhandled => "icmp_unhandled", "An ICMP message no socket wanted (e.g. an echo reply nobody waits for).";
    IcmpTcpNotInFlight => "icmp_tcp_not_in_flight", "An ICMP \"fragmentation needed\" quoting a TCP segment no connection has in flight (RFC 5927: stale, or forged).";
    UdpMalformed => "udp_malformed", "A UDP datagram that is truncated or whose length field is wrong.";
    UdpBadChecksum => "udp_bad_checksum", "A UDP datagram whose checksum is wrong.";
    UdpNoListener => "udp_no_listener", "A UDP datagram to a closed port (answered by port unreachable).";
    UdpRxQueueFull => "udp_rx_queue_full", "A UDP datagram for a socket whose receive queue is full.";
    TcpMalformed => "tcp_malformed", "A TCP segment that is truncated or whose data offset or options are bad.";
    TcpBadChecksum => "tcp_bad_checksum", "A TCP segment whose checksum is wrong.";
    TcpNoListener => "tcp_no_listener", "A TCP segment for no connection and no listener (answered by RST).";
    TcpBacklogFull => "tcp_backlog_full", "A SYN for a listener whose backlog is full.";
    TcpMaxConns => "tcp_max_conns", "A SYN refused because the node holds --max-conns connections.";
    TcpPaws => "tcp_paws", "A TCP segment older than TS.Recent (RFC 7323 PAWS), answered by an ACK.";
    TcpOutOfWindow => "tcp_out_of_window", "A TCP segment outside the receive window (answered by an ACK unless a RST).";
    TcpDataAfterClose => "tcp_data_after_close", "New data for a connection its application let go of: nobody would read it, so the connection is reset (RFC 1122 4.2.2.13).";
    TcpBadAck => "tcp_bad_ack", "A TCP segment acknowledging data never sent or older than the window (RFC 5961 §5).";
    TcpChallengeAckLimited => "tcp_challenge_ack_limited", "A challenge ACK (RFC 5961) not sent: the per-second budget was spent.";
    TcpListenNoAck => "tcp_listen_no_ack", "A segment with neither ACK nor a plain SYN to a listening port (FIN, NULL, Xmas or SYN+FIN probes): dropped without reply (RFC 9293 §3.10.7.2).";
    TcpBadSynCookie => "tcp_bad_syn_cookie", "An ACK to a listener that matches no connection and carries no valid SYN cookie (answered by RST).";
    NoRoute => "no_route", "A packet to send with no route (off-subnet and no gateway).";
    ArpUnresolved => "arp_unresolved", "A packet that waited for an ARP reply that never came.";
    ArpQueueFull => "arp_queue_full", "A packet that could not wait for ARP because the pending queue is full.";
    TxTooBig => "tx_too_big", "A packet to send larger than the MTU.";
    NoAddress => "no_address", "A packet to send while the node holds no address (DHCP not bound).";
    DhcpMalformed => "dhcp_malformed", "A datagram to the DHCP client port that is not a DHCP message.";
    DhcpIgnored => "dhcp_ignored", "A DHCP message not for this client or not expected in its state.";
    RawRxQueueFull => "raw_rx_queue_full", "A copy for a raw socket whose receive queue is full.";
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Frame and drop counters of one stack (one worker).
#[derive(Debug, Clone)]
pub struct Counters {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub arp_requests_sent: u64,
    pub icmp_echo_replied: u64,
    /// ARP probes for one of our addresses answered (RFC 5227: the prober finds it in use).
    pub arp_probes_answered: u64,
    /// ICMP timestamp requests answered (RFC 792).
    pub icmp_timestamp_replied: u64,
    /// ICMP redirects taken: host routes learned (RFC 1122 §3.2.2.2).
    pub icmp_redirects_taken: u64,
    pub icmp_errors_sent: u64,
    pub tcp_rst_sent: u64,
    pub tcp_conns_opened: u64,
    /// SYN-ACKs sent with a SYN cookie instead of a half-open connection (RFC 4987).
    pub tcp_syn_cookies_sent: u64,
    /// TIME-WAIT connections closed early to make room for a new connection when the stack
    /// held `max_conns` (the oldest first, as a kernel out of TIME-WAIT buckets skips them).
    pub tcp_time_wait_recycled: u64,
    /// Connections whose MSS an ICMP "fragmentation needed" lowered (RFC 1191 path MTU).
    pub tcp_path_mtu_lowered: u64,
    /// Bytes still unread when their application let go of a connection, dropped (its response
    /// is still delivered, then data arriving later resets it: RFC 1122 §4.2.2.13).
    pub tcp_unread_dropped: u64,
    /// DHCP messages sent and accepted (parsed; the client may still ignore them).
    pub dhcp_sent: u64,
    pub dhcp_received: u64,
    /// RFC 5227 ARP probes sent, and conflicts seen while probing.
    pub dhcp_probes_sent: u64,
    pub dhcp_conflicts: u64,
    /// Leases taken, renewed, lost (NAK, expiry, release), declined; NAKs while requesting.
    pub dhcp_bound: u64,
    pub dhcp_renewed: u64,
    pub dhcp_lost: u64,
    pub dhcp_declined: u64,
    pub dhcp_naks: u64,
    /// Packets copied to raw sockets.
    pub raw_delivered: u64,
    /// IPv4 datagrams reassembled from fragments.
    pub ipv4_reassembled: u64,
    /// IPv4 fragments sent (datagrams larger than the MTU, DF clear).
    pub ipv4_fragments_sent: u64,
    /// ARP packets from another host claiming our address (RFC 5227); a warning when non-zero.
    pub arp_conflicts: u64,
    /// Gratuitous ARPs sent to defend our address (at most one per defend interval).
    pub arp_defended: u64,
    drops: [u64; DropReason::COUNT],
    /// The reason of the latest drop not yet taken (for tracing the dropped frame).
    last_drop: Option<DropReason>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            rx_frames: 0,
            rx_bytes: 0,
            tx_frames: 0,
            tx_bytes: 0,
            arp_requests_sent: 0,
            icmp_echo_replied: 0,
            icmp_timestamp_replied: 0,
            arp_probes_answered: 0,
            icmp_redirects_taken: 0,
            icmp_errors_sent: 0,
            tcp_rst_sent: 0,
            tcp_conns_opened: 0,
            tcp_syn_cookies_sent: 0,
            tcp_time_wait_recycled: 0,
            tcp_path_mtu_lowered: 0,
            tcp_unread_dropped: 0,
            dhcp_sent: 0,
            dhcp_received: 0,
            dhcp_probes_sent: 0,
            dhcp_conflicts: 0,
            dhcp_bound: 0,
            dhcp_renewed: 0,
            dhcp_lost: 0,
            dhcp_declined: 0,
            dhcp_naks: 0,
            raw_delivered: 0,
            ipv4_reassembled: 0,
            ipv4_fragments_sent: 0,
            arp_conflicts: 0,
            arp_defended: 0,
            drops: [0; DropReason::COUNT],
            last_drop: None,
        }
    }
}

impl Counters {
    pub fn drop(&mut self, reason: DropReason) {
        if let Some(n) = self.drops.get_mut(reason as usize) {
            *n += 1;
        }
        self.last_drop = Some(reason);
    }

    /// The latest drop's reason, once.
    pub fn take_last_drop(&mut self) -> Option<DropReason> {
        self.last_drop.take()
    }

    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.get(reason as usize).copied().unwrap_or(0)
    }

    /// Every reason with a non-zero count.
    pub fn nonzero_drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|&r| (r, self.drops(r)))
            .filter(|&(_, n)| n > 0)
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Adds `other` into `self` (to sum the workers of a node).
    pub fn merge(&mut self, other: &Counters) {
        self.rx_frames += other.rx_frames;
        self.rx_bytes += other.rx_bytes;
        self.tx_frames += other.tx_frames;
        self.tx_bytes += other.tx_bytes;
        self.arp_requests_sent += other.arp_requests_sent;
        self.icmp_echo_replied += other.icmp_echo_replied;
        self.icmp_timestamp_replied += other.icmp_timestamp_replied;
        self.arp_probes_answered += other.arp_probes_answered;
        self.icmp_redirects_taken += other.icmp_redirects_taken;
        self.icmp_errors_sent += other.icmp_errors_sent;
        self.tcp_rst_sent += other.tcp_rst_sent;
        self.tcp_conns_opened += other.tcp_conns_opened;
        self.tcp_syn_cookies_sent += other.tcp_syn_cookies_sent;
        self.tcp_time_wait_recycled += other.tcp_time_wait_recycled;
        self.tcp_path_mtu_lowered += other.tcp_path_mtu_lowered;
        self.tcp_unread_dropped += other.tcp_unread_dropped;
        self.dhcp_sent += other.dhcp_sent;
        self.dhcp_received += other.dhcp_received;
        self.dhcp_probes_sent += other.dhcp_probes_sent;
        self.dhcp_conflicts += other.dhcp_conflicts;
        self.dhcp_bound += other.dhcp_bound;
        self.dhcp_renewed += other.dhcp_renewed;
        self.dhcp_lost += other.dhcp_lost;
        self.dhcp_declined += other.dhcp_declined;
        self.dhcp_naks += other.dhcp_naks;
        self.raw_delivered += other.raw_delivered;
        self.ipv4_reassembled += other.ipv4_reassembled;
        self.ipv4_fragments_sent += other.ipv4_fragments_sent;
        self.arp_conflicts += other.arp_conflicts;
        self.arp_defended += other.arp_defended;
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_counted() {
        let mut names: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        let mut c = Counters::default();
        c.drop(DropReason::TcpBadChecksum);
        c.drop(DropReason::TcpBadChecksum);
        assert_eq!(c.drops(DropReason::TcpBadChecksum), 2);
        assert_eq!(
            c.nonzero_drops().collect::<Vec<_>>(),
            vec![(DropReason::TcpBadChecksum, 2)]
        );
        let mut total = Counters::default();
        total.merge(&c);
        total.merge(&c);
        assert_eq!(total.total_drops(), 4);
    }
}
