//! A whole node, sans-IO: frames in, frames out.
//!
//! [`Stack`] owns one worker's share of a node: the ARP cache, IPv4 dispatch, ICMP, and the UDP,
//! TCP and ICMP-echo socket tables, with a counter for every drop. It never touches a device: the
//! caller hands frames to [`Stack::receive`], runs [`Stack::poll`] to let it transmit into a
//! [`Sink`], and calls `poll` again no later than [`Stack::poll_at`]. Application calls
//! (`tcp_*`, `udp_*`, `icmp_*`) only change socket state; what they cause to be sent goes out at
//! the next `poll`.
//!
//! With [`StackConfig::dhcp`] the stack starts without an address and runs a DHCP client
//! itself (see `dhcp`): [`Stack::dhcp_state`], [`Stack::dhcp_lease`] and [`Stack::dhcp_log`]
//! show it, [`Stack::dhcp_release`] gives the lease back on exit. Raw IPv4 sockets (`raw_*`)
//! receive copies of every packet of one protocol and send with or without their own header.
//!
//! Calling order, each with the same monotonic `now`:
//! 1. `receive(now, frame, sink)` for every frame read (replies such as ARP, echo and RST go out
//!    at once);
//! 2. application calls;
//! 3. `poll(now, sink)`: timers, then every socket with something to send;
//! 4. sleep until a frame arrives, an application call is made, or `poll_at()`.

pub mod arp_cache;
pub mod counters;
mod dhcp;
mod egress;
pub mod event;
mod fragment;
mod host_table;
mod icmp;
mod ingress;
mod news;
mod path_mtu;
mod raw;
pub mod reassembly;
mod redirect;
mod sockets;
mod tcp_table;
mod udp;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;

pub use arp_cache::{ArpConfig, ArpRole};
pub use counters::{Counters, DropReason};
pub use dhcp::{DhcpLogEntry, CLIENT_PORT as DHCP_CLIENT_PORT};
pub use event::{ConnId, StackEvent};
pub use icmp::{EchoReply, Icmp, IcmpErrorReport};
pub use news::{News, Wake};
pub use raw::{Raw, RawError, RawPacket};
pub use reassembly::ReassemblyConfig;
pub use sockets::SocketHandle;
pub use tcp_table::{ConnInfo, Readiness, TcpError};
pub use udp::{Datagram, Udp, UdpError, EPHEMERAL_PORTS};

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

    /// Like [`Sink::transmit`], but `fill` also says what the device must finish (offloads).
    /// The stack asks for offloads only when configured for them (`TcpConfig::tso_max`), so
    /// the default, which drops the metadata, serves every sink without offloads.
    fn transmit_offload<F: FnOnce(&mut [u8]) -> (usize, TxOffload)>(
        &mut self,
        max_len: usize,
        fill: F,
    ) {
        self.transmit(max_len, |buf| fill(buf).0);
    }

    /// Whether the sink can take another frame now. A sink with a bounded supply of buffers
    /// says no once it has run out: the stack then leaves what TCP connections have queued for
    /// the next `poll` (they stay on the dirty list, and `poll_at` says "now") instead of
    /// building segments the sink would drop. Frames sent anyway are the sink's to count.
    fn has_room(&self) -> bool {
        true
    }
}

/// What the device still has to do to a frame (virtio-net `virtio_net_hdr` semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxOffload {
    /// Finish the transport checksum: sum from `csum_start` (bytes from the frame's start) to
    /// the end and store it at `csum_start + csum_offset`, which holds the pseudo-header sum.
    pub csum: Option<(u16, u16)>,
    /// Cut the TCP payload into segments of this many bytes (0: send the frame as it is).
    pub gso_size: u16,
    /// Bytes of headers (Ethernet, IPv4, TCP) in front of the payload.
    pub hdr_len: u16,
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
    /// TCP settings; the MSS the stack offers and sends with is min(`tcp.mss`, MTU − 40).
    pub tcp: TcpConfig,
    pub arp: ArpConfig,
    /// IPv4 reassembly bounds (memory, fragments per datagram, timeout).
    pub reassembly: ReassemblyConfig,
    /// Verify checksums of received packets (off when the device vouches for them).
    pub rx_verify_checksums: bool,
    /// How transport checksums are filled on send.
    pub tx_checksum: TxChecksum,
    /// The device finishes TCP checksums (virtio-net `F_NEEDS_CSUM`): every TCP segment goes
    /// out with only its pseudo-header sum, and [`Sink::transmit_offload`] says where the sum
    /// goes, TSO or not. Set only for a sink that takes offloads.
    pub tx_csum_offload: bool,
    /// Datagrams held per UDP socket before new ones are dropped.
    pub udp_rx_queue: usize,
    /// TCP connections held at once (every state); SYNs beyond it are refused. TIME-WAIT no
    /// application holds is kept apart and compact, as many again at most (the oldest gives
    /// way): see `tcp_table::time_wait`.
    pub max_conns: usize,
    /// ICMP errors sent per second at most (RFC 1812 §4.3.2.8 rate limit).
    pub icmp_error_rate: u32,
    /// Take the address by DHCP: `cidr` is ignored and the node starts with none.
    pub dhcp: bool,
    /// DHCP client settings (its `mac` is replaced by the node's).
    pub dhcp_client: crate::dhcp::Config,
    /// More addresses the node owns besides `cidr`'s: every host address of this range (its
    /// network and broadcast addresses excluded when the prefix is shorter than /31). The node
    /// answers ARP for them, accepts packets to them and can open connections from them
    /// ([`Stack::tcp_connect_from`]); a load generator spreads its connections over them.
    pub extra_addrs: Option<Ipv4Cidr>,
    /// Key of the TCP timestamp offsets (RFC 7323 §7.1: per connection, a keyed hash of its
    /// addresses and ports). None draws one from the stack's generator. A key that outlives
    /// the process (the engine derives one per boot), with a clock that does too, makes a new
    /// process's timestamps newer than an old one's on the same 4-tuple, so that a peer still
    /// in TIME-WAIT for it accepts the new SYN at once (RFC 6191) instead of after a retry.
    pub ts_key: Option<[u8; 16]>,
    /// The wall clock at `Instant::ZERO`, in milliseconds since the Unix epoch, for IP
    /// timestamps (RFC 791: milliseconds since midnight UT). None: they are the stack's own
    /// milliseconds, marked non-standard.
    pub unix_ms_at_zero: Option<u64>,
}

impl StackConfig {
    pub fn new(mac: EthernetAddress, cidr: Ipv4Cidr) -> Self {
        StackConfig {
            mac,
            cidr,
            gateway: None,
            mtu: 1500,
            ttl: 64,
            // The MSS follows the MTU (MTU − 40: 1460 at 1500, 8960 at 9000); a smaller
            // `tcp.mss` set afterwards caps it.
            tcp: TcpConfig {
                mss: u16::MAX,
                ..TcpConfig::default()
            },
            arp: ArpConfig::default(),
            reassembly: ReassemblyConfig::default(),
            rx_verify_checksums: true,
            tx_checksum: TxChecksum::Full,
            tx_csum_offload: false,
            udp_rx_queue: 1024,
            max_conns: 65536,
            icmp_error_rate: 100,
            dhcp: false,
            dhcp_client: crate::dhcp::Config::new(mac),
            extra_addrs: None,
            ts_key: None,
            unix_ms_at_zero: None,
        }
    }

    /// True for a host address of `extra_addrs`.
    pub fn in_extra(&self, addr: Ipv4Addr) -> bool {
        let Some(range) = self.extra_addrs else {
            return false;
        };
        range.contains(addr)
            && (range.prefix_len() >= 31 || (addr != range.network() && addr != range.broadcast()))
    }

    /// The TCP MSS that fits the MTU (IPv4 and TCP headers without options).
    pub fn mss(&self) -> u16 {
        u16::try_from(self.mtu.saturating_sub(40)).unwrap_or(u16::MAX)
    }
}

/// See [`Stack::addressing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addressing {
    pub cidr: Ipv4Cidr,
    pub gateway: Option<Ipv4Addr>,
    pub mtu: usize,
    pub mss: u16,
}

/// Stack events held for [`Stack::drain_events`] at most.
pub const MAX_EVENTS: usize = 1024;

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
    /// Path MTUs learned from ICMP "fragmentation needed", per destination.
    pmtu: path_mtu::PathMtuCache,
    redirects: redirect::Redirects,
    udp: udp::UdpTable,
    icmp: icmp::IcmpTable,
    raw: raw::RawTable,
    /// The DHCP client and its probe, when configured.
    dhcp: Option<Box<dhcp::DhcpDriver>>,
    /// Send an RFC 5227 announcement at the next poll (a lease was just taken).
    dhcp_announce: bool,
    /// (deadline, socket) for TCP timers, at most one live entry per socket (`timer_at`): a
    /// deadline that moved later is found when its entry fires and is queued again; entries
    /// superseded by an earlier one are skipped when popped.
    timers: BinaryHeap<Reverse<(Instant, SocketHandle)>>,
    /// Entries ever pushed onto `timers` (each is popped once, at log(heap) cost).
    timer_pushes: u64,
    /// Sockets that may have something to send.
    dirty: Vec<SocketHandle>,
    /// What applications may wait for that happened since the last [`Stack::take_news`].
    news: News,
    icmp_tokens: u32,
    /// Record stack events for tracing ([`Stack::set_events`]).
    events_on: bool,
    events: Vec<StackEvent>,
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
        let mut drawn_ts_key = [0u8; 16];
        drawn_ts_key[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        drawn_ts_key[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        let ts_key = config.ts_key.unwrap_or(drawn_ts_key);
        let ip_ident = rng.next_u32() as u16;
        let dhcp = config.dhcp.then(|| {
            Box::new(dhcp::DhcpDriver::new(
                config.dhcp_client.clone(),
                config.gateway,
                config.mtu,
                config.tcp.mss,
            ))
        });
        if dhcp.is_some() {
            config.cidr = dhcp::unconfigured(config.cidr);
        }
        Stack {
            raw: raw::RawTable::default(),
            dhcp,
            dhcp_announce: false,
            arp: arp_cache::ArpCache::new(config.arp.clone()),
            frags: reassembly::Reassembler::new(config.reassembly.clone()),
            counters: Counters::default(),
            isn: IsnGenerator::new(key, ts_key),
            ip_ident,
            tcp: tcp_table::TcpTable::new(hash_key),
            pmtu: path_mtu::PathMtuCache::default(),
            redirects: redirect::Redirects::default(),
            udp: udp::UdpTable::default(),
            icmp: icmp::IcmpTable::default(),
            timers: BinaryHeap::new(),
            timer_pushes: 0,
            dirty: Vec::new(),
            news: News::default(),
            icmp_tokens: config.icmp_error_rate,
            events_on: false,
            events: Vec::new(),
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

    /// The addressing in use now (address and subnet, gateway, MTU, TCP MSS): what a stack
    /// running the DHCP client shares with the other stacks of its node.
    pub fn addressing(&self) -> Addressing {
        Addressing {
            cidr: self.config.cidr,
            gateway: self.config.gateway,
            mtu: self.config.mtu,
            mss: self.config.tcp.mss,
        }
    }

    /// Takes the addressing another stack of the node holds (its DHCP lease, or none).
    pub fn set_addressing(&mut self, a: &Addressing) {
        self.config.cidr = a.cidr;
        self.config.gateway = a.gateway;
        self.config.mtu = a.mtu;
        self.config.tcp.mss = a.mss;
    }

    /// True for the node's own address and every address of `extra_addrs`.
    pub fn is_local(&self, addr: Ipv4Addr) -> bool {
        addr == self.address() || self.config.in_extra(addr)
    }

    /// Resolved ARP entries: (address, MAC, time left).
    pub fn arp_entries(
        &self,
        now: Instant,
    ) -> Vec<(Ipv4Addr, EthernetAddress, crate::time::Duration)> {
        self.arp.entries(now)
    }

    /// Announces the node: a gratuitous ARP request (RFC 5227 §3), so that neighbours with a stale
    /// entry for our address learn our MAC (not from an [`ArpRole::Follower`]).
    /// With DHCP, starts the client instead (its DISCOVER goes out at once).
    pub fn start(&mut self, now: Instant, sink: &mut impl Sink) {
        if self.dhcp.is_some() {
            self.poll_dhcp(now, sink);
            return;
        }
        let ip = self.address();
        // A stack waiting for another's DHCP lease has nothing to announce yet, and a
        // follower leaves it to its node's ARP owner.
        if ip.is_unspecified() || self.arp.role() == ArpRole::Follower {
            return;
        }
        self.send_arp_request_for(ip, sink);
    }

    /// The node's address and subnet now (changes with DHCP).
    pub fn cidr(&self) -> Ipv4Cidr {
        self.config.cidr
    }

    /// Like `receive` for a frame whose checksums the device vouched for (a tap's
    /// `virtio_net_hdr` said `DATA_VALID` or `NEEDS_CSUM`): they are not verified again, and the
    /// frame may be a GRO'd segment larger than the MTU.
    pub fn receive_trusted(&mut self, now: Instant, frame: &[u8], sink: &mut impl Sink) {
        let verify = std::mem::replace(&mut self.config.rx_verify_checksums, false);
        self.receive(now, frame, sink);
        self.config.rx_verify_checksums = verify;
    }

    /// Starts (or stops) recording [`StackEvent`]s for [`Stack::drain_events`]: TCP state
    /// changes, retransmissions, RTO expiries, congestion changes, SACK blocks received. Off by
    /// default; when on, at most [`MAX_EVENTS`] wait to be drained (the newest are dropped).
    pub fn set_events(&mut self, on: bool) {
        self.events_on = on;
        if !on {
            self.events.clear();
        }
        self.tcp_set_events(on);
    }

    /// Moves the recorded events into `out` (oldest first).
    pub fn drain_events(&mut self, out: &mut Vec<StackEvent>) {
        out.append(&mut self.events);
    }

    pub(super) fn record(&mut self, ev: StackEvent) {
        if self.events_on && self.events.len() < MAX_EVENTS {
            self.events.push(ev);
        }
    }

    /// The reason the last frame given to `receive` was dropped, if it was (then cleared).
    pub fn take_drop(&mut self) -> Option<DropReason> {
        self.counters.take_last_drop()
    }

    /// Entries ever pushed onto the TCP timer heap (for a test of how few).
    #[cfg(test)]
    pub(crate) fn tcp_timer_pushes(&self) -> u64 {
        self.timer_pushes
    }

    /// The earliest instant at which `poll` has timer work.
    pub fn poll_at(&self) -> Option<Instant> {
        let tcp = self.timers.peek().map(|Reverse((t, _))| *t);
        let arp = self.arp.poll_at();
        let frags = self.frags.poll_at();
        let queued = !self.dirty.is_empty()
            || self.udp.has_tx()
            || self.icmp.has_tx()
            || self.raw.has_tx()
            || self.dhcp_announce;
        let dirty = if queued { Some(Instant::ZERO) } else { None };
        let dhcp = self.dhcp.as_ref().and_then(|d| d.poll_at());
        let sweep = self.tcp.sweep_at();
        let time_wait = self.tcp.time_wait_expiry();
        [tcp, arp, frags, dirty, dhcp, sweep, time_wait]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs due timers and sends whatever sockets have queued.
    pub fn poll(&mut self, now: Instant, sink: &mut impl Sink) {
        self.poll_arp(now, sink);
        self.poll_dhcp(now, sink);
        self.poll_reassembly(now, sink);
        self.poll_tcp_timers(now);
        self.flush_udp(now, sink);
        self.flush_icmp(now, sink);
        self.flush_raw(now, sink);
        self.flush_tcp(now, sink);
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod multiaddr_tests;
