//! A whole node, sans-IO: frames in, frames out.
//!
//! [`Stack`] owns one worker's share of a node: the ARP cache, IPv4 dispatch, ICMP, and the UDP,
//! TCP and ICMP-echo socket tables, with a counter for every drop. It never touches a device: the
//! caller hands frames to [`Stack::receive`], runs [`Stack::poll`] to let it transmit into a
//! [`Sink`], and calls `poll` again no later than [`Stack::poll_at`]. Application calls
//! (`tcp_*`, `udp_*`, `icmp_*`) only change socket state; what they cause to be sent goes out at
//! the next `poll`.
//!
//! Calling order, each with the same monotonic `now`:
//! 1. `receive(now, frame, sink)` for every frame read (replies such as ARP, echo and RST go out
//!    at once);
//! 2. application calls;
//! 3. `poll(now, sink)`: timers, then every socket with something to send;
//! 4. sleep until a frame arrives, an application call is made, or `poll_at()`.

pub mod arp_cache;
pub mod counters;
mod egress;
mod fragment;
mod icmp;
mod ingress;
pub mod reassembly;
mod sockets;
mod tcp_table;
mod udp;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;

pub use arp_cache::ArpConfig;
pub use counters::{Counters, DropReason};
pub use icmp::{EchoReply, IcmpErrorReport};
pub use reassembly::ReassemblyConfig;
pub use sockets::SocketHandle;
pub use tcp_table::{ConnInfo, Readiness, TcpError};
pub use udp::{Datagram, UdpError, EPHEMERAL_PORTS};

use crate::rand::Rng;
use crate::tcp::{IsnGenerator, TcpConfig};
use crate::time::Instant;
use crate::wire::{EthernetAddress, Ipv4Cidr, TxChecksum};

/// Where a stack puts the frames it sends: the engine hands out pool buffers, the simulator
/// hands out vectors.
pub trait Sink {
    /// Gives `fill` room for one frame of at most `max_len` bytes; `fill` writes the frame and
    /// returns its length (0 sends nothing).
    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, max_len: usize, fill: F);
}

/// A sink that collects frames in vectors, for tests and the simulator.
impl Sink for Vec<Vec<u8>> {
    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, max_len: usize, fill: F) {
        let mut buf = vec![0u8; max_len];
        let n = fill(&mut buf);
        if n > 0 {
            buf.truncate(n);
            self.push(buf);
        }
    }
}

/// How a node is configured.
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub mac: EthernetAddress,
    /// The node's address and its directly attached subnet.
    pub cidr: Ipv4Cidr,
    /// Next hop for destinations off the subnet.
    pub gateway: Option<Ipv4Addr>,
    /// IP MTU: the largest IPv4 packet sent, headers included.
    pub mtu: usize,
    /// TTL of packets we originate.
    pub ttl: u8,
    pub tcp: TcpConfig,
    pub arp: ArpConfig,
    /// IPv4 reassembly bounds (memory, fragments per datagram, timeout).
    pub reassembly: ReassemblyConfig,
    /// Verify checksums of received packets (off when the device vouches for them).
    pub rx_verify_checksums: bool,
    /// How transport checksums are filled on send.
    pub tx_checksum: TxChecksum,
    /// Datagrams held per UDP socket before new ones are dropped.
    pub udp_rx_queue: usize,
    /// TCP connections held at once (every state); SYNs beyond it are refused.
    pub max_conns: usize,
    /// ICMP errors sent per second at most (RFC 1812 §4.3.2.8 rate limit).
    pub icmp_error_rate: u32,
}

impl StackConfig {
    pub fn new(mac: EthernetAddress, cidr: Ipv4Cidr) -> Self {
        StackConfig {
            mac,
            cidr,
            gateway: None,
            mtu: 1500,
            ttl: 64,
            tcp: TcpConfig::default(),
            arp: ArpConfig::default(),
            reassembly: ReassemblyConfig::default(),
            rx_verify_checksums: true,
            tx_checksum: TxChecksum::Full,
            udp_rx_queue: 1024,
            max_conns: 65536,
            icmp_error_rate: 100,
        }
    }

    /// The TCP MSS that fits the MTU (IPv4 and TCP headers without options).
    pub fn mss(&self) -> u16 {
        u16::try_from(self.mtu.saturating_sub(40)).unwrap_or(u16::MAX)
    }
}

/// One worker's share of a node.
pub struct Stack {
    config: StackConfig,
    counters: Counters,
    rng: Rng,
    isn: IsnGenerator,
    arp: arp_cache::ArpCache,
    frags: reassembly::Reassembler,
    ip_ident: u16,
    tcp: tcp_table::TcpTable,
    udp: udp::UdpTable,
    icmp: icmp::IcmpTable,
    /// (deadline, socket) for TCP timers; stale entries are skipped when popped.
    timers: BinaryHeap<Reverse<(Instant, SocketHandle)>>,
    /// Sockets that may have something to send.
    dirty: Vec<SocketHandle>,
    /// Something an application waits for happened since the last `take_wakeup`.
    wakeup: bool,
    icmp_tokens: u32,
    icmp_tokens_at: Instant,
}

impl Stack {
    /// A stack with randomness drawn from `rng` (seed it from the OS in production, explicitly
    /// in tests).
    pub fn new(mut config: StackConfig, mut rng: Rng) -> Self {
        config.tcp.mss = config.tcp.mss.min(config.mss());
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        key[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        let hash_key = (rng.next_u64(), rng.next_u64());
        let ip_ident = rng.next_u32() as u16;
        Stack {
            arp: arp_cache::ArpCache::new(config.arp.clone()),
            frags: reassembly::Reassembler::new(config.reassembly.clone()),
            counters: Counters::default(),
            isn: IsnGenerator::new(key),
            ip_ident,
            tcp: tcp_table::TcpTable::new(hash_key),
            udp: udp::UdpTable::default(),
            icmp: icmp::IcmpTable::default(),
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            wakeup: false,
            icmp_tokens: config.icmp_error_rate,
            icmp_tokens_at: Instant::ZERO,
            config,
            rng,
        }
    }

    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn address(&self) -> Ipv4Addr {
        self.config.cidr.address()
    }

    /// Resolved ARP entries: (address, MAC, time left).
    pub fn arp_entries(
        &self,
        now: Instant,
    ) -> Vec<(Ipv4Addr, EthernetAddress, crate::time::Duration)> {
        self.arp.entries(now)
    }

    /// Announces the node: a gratuitous ARP request (RFC 5227 §3), so that neighbours with a stale
    /// entry for our address learn our MAC.
    pub fn start(&mut self, _now: Instant, sink: &mut impl Sink) {
        let ip = self.address();
        self.send_arp_request_for(ip, sink);
    }

    /// True once since something an application may wait for happened (data, a connection, a
    /// datagram, a state change). The engine wakes blocked callers on it.
    pub fn take_wakeup(&mut self) -> bool {
        std::mem::take(&mut self.wakeup)
    }

    /// The earliest instant at which `poll` has timer work.
    pub fn poll_at(&self) -> Option<Instant> {
        let tcp = self.timers.peek().map(|Reverse((t, _))| *t);
        let arp = self.arp.poll_at();
        let frags = self.frags.poll_at();
        let queued = !self.dirty.is_empty() || self.udp.has_tx() || self.icmp.has_tx();
        let dirty = if queued { Some(Instant::ZERO) } else { None };
        [tcp, arp, frags, dirty].into_iter().flatten().min()
    }

    /// Runs due timers and sends whatever sockets have queued.
    pub fn poll(&mut self, now: Instant, sink: &mut impl Sink) {
        self.poll_arp(now, sink);
        self.poll_reassembly(now, sink);
        self.poll_tcp_timers(now);
        self.flush_udp(now, sink);
        self.flush_icmp(now, sink);
        self.flush_tcp(now, sink);
    }
}

#[cfg(test)]
mod tests;
