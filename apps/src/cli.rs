//! The node options every subcommand takes (DESIGN.md's CLI contract), and how they become a
//! [`NodeConfig`].

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use engine::{Node, NodeConfig};
use protocols::wire::{EthernetAddress, Ipv4Cidr};

/// Options that say which tap to attach to and who the node is.
#[derive(Debug, Clone, Args)]
pub struct NodeOpts {
    /// Tap device to attach to (created if it does not exist).
    #[arg(long, default_value = "tap0", value_name = "NAME")]
    pub tap: String,
    /// Open the tap inside this network namespace (as made by `ip netns add`).
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// The node's address and subnet, e.g. 10.7.0.2/24.
    #[arg(long, value_name = "CIDR", conflicts_with = "dhcp")]
    pub ip: Option<Ipv4Cidr>,
    /// Take the address, router, DNS servers and MTU from a DHCP server on the tap's LAN.
    /// The lease is released on clean exit.
    #[arg(long)]
    pub dhcp: bool,
    /// How long to wait for a DHCP lease before giving up.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub dhcp_timeout: u64,
    /// Keep a DHCP lease at most this many seconds whatever the server grants (for tests of
    /// renewal).
    #[arg(long, value_name = "SECS", hide = true)]
    pub dhcp_max_lease: Option<u32>,
    /// Next hop for destinations off the subnet.
    #[arg(long, value_name = "IP")]
    pub gateway: Option<Ipv4Addr>,
    /// The node's MAC address (default: a locally administered one derived from its address).
    #[arg(long, value_name = "MAC")]
    pub mac: Option<EthernetAddress>,
    /// IP MTU in bytes.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u16).range(576..=9000))]
    pub mtu: u16,
    /// Tap queues, one pinned worker each (default: one per available core, at most 64).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub queues: Option<u16>,
    /// Print one tcpdump-style line per frame matching EXPR (e.g. 'tcp and port 80', or all).
    #[arg(long, value_name = "EXPR")]
    pub trace: Option<String>,
    /// Write every frame (or those matching --pcap-filter) to a pcapng capture.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<std::path::PathBuf>,
    /// Only frames matching EXPR go to the --pcap capture.
    #[arg(long, value_name = "EXPR", requires = "pcap")]
    pub pcap_filter: Option<String>,
    /// Bytes of each frame the --pcap capture keeps (default: whole frames, offloaded 64 KiB
    /// ones included).
    #[arg(long, value_name = "BYTES", requires = "pcap",
          default_value_t = engine::trace::DEFAULT_SNAPLEN as u32,
          value_parser = clap::value_parser!(u32).range(14..=262_144))]
    pub snaplen: u32,
    /// Frames in flight to the --pcap writer at most; frames beyond it are not captured and
    /// are counted (shell `stats`, the exit line, the capture's isb_ifdrop).
    #[arg(long, value_name = "FRAMES", requires = "pcap",
          default_value_t = engine::trace::DEFAULT_RING_SLOTS as u32,
          value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub pcap_ring: u32,
    /// With the --pcap ring full, make the workers wait for the writer instead of leaving
    /// frames out: a complete capture, at the price of speed (the tap's queue holds what
    /// arrives meanwhile).
    #[arg(long, requires = "pcap")]
    pub pcap_wait: bool,
    /// A DNS server to ask (repeatable; asked in order).
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<Ipv4Addr>,
    /// Tap offloads: on (a virtio-net header, checksums, TSO/GRO segments of up to 64 KiB),
    /// csum (the header and checksums only: MTU-sized frames, no checksum computed twice) or
    /// off (plain frames, every checksum computed and verified in software).
    #[arg(long, default_value = "on", value_parser = ["on", "csum", "off"], value_name = "on|csum|off")]
    pub offload: String,
    /// With several queues, the kernel puts each frame on the queue of the worker that owns its
    /// flow (an eBPF steering program on the tap); off, frames that land on another worker's
    /// queue are handed over to it.
    #[arg(long, default_value = "on", value_parser = ["on", "off"], value_name = "on|off")]
    pub kernel_steering: String,
    /// ARP anti-poisoning: on, a live cache entry's MAC changes only through a reply to
    /// tapir's own request; off, any ARP packet updates it (RFC 826 merging, as the kernel does).
    #[arg(long, default_value = "on", value_parser = ["on", "off"], value_name = "on|off")]
    pub arp_protect: String,
    /// Frames the kernel may queue for each tap queue before dropping (the tap's txqueuelen,
    /// grown to this if smaller; like a NIC's receive ring).
    #[arg(long, default_value_t = engine::DEFAULT_RING, value_name = "FRAMES",
          value_parser = clap::value_parser!(u32).range(64..=65536))]
    pub rx_ring: u32,
    /// Most TCP connections the node holds at once, each of the --queues workers holding its
    /// share (TIME-WAIT that no application holds is kept apart, compact, as many again at
    /// most: the oldest gives way).
    #[arg(long, default_value_t = 65536, value_name = "N")]
    pub max_conns: usize,
    /// Impair the frames tapir reads and writes, seeded: loss=P,reorder=P,dup=P,corrupt=P,seed=N
    /// (any subset), e.g. loss=0.01,reorder=0.02.
    #[arg(long, value_name = "SPEC")]
    pub impair: Option<engine::ImpairSpec>,
}

impl NodeOpts {
    /// The node configuration these options describe.
    pub fn node_config(&self) -> Result<NodeConfig> {
        if self.dhcp {
            return self.dhcp_config();
        }
        let Some(cidr) = self.ip else {
            bail!(
                "--ip is required: give the node an address, e.g. --ip 10.7.0.2/24, or use --dhcp"
            );
        };
        if cidr.prefix_len() > 30
            || cidr.address() == cidr.network()
            || cidr.address() == cidr.broadcast()
        {
            bail!("--ip {cidr}: use a host address inside a subnet of /30 or larger, e.g. 10.7.0.2/24");
        }
        if let Some(gw) = self.gateway {
            if !cidr.contains(gw) {
                bail!(
                    "--gateway {gw} is not inside {cidr}: the gateway must be on the node's subnet"
                );
            }
        }
        let mut c = self.common(cidr, default_mac(cidr.address()))?;
        c.stack.gateway = self.gateway;
        Ok(c)
    }

    /// What a static and a DHCP node share: the tap, the MAC, the engine's and the stack's
    /// options.
    fn common(&self, cidr: Ipv4Cidr, default_mac: EthernetAddress) -> Result<NodeConfig> {
        let mut c = NodeConfig::new(&self.tap, cidr);
        c.netns = self.netns.clone();
        c.queues = self.queues();
        c.stack.mac = self.mac.unwrap_or(default_mac);
        if !c.stack.mac.is_unicast() {
            bail!("--mac {}: a node needs a unicast MAC address", c.stack.mac);
        }
        c.stack.mtu = usize::from(self.mtu);
        // Each worker holds its share of --max-conns: one connection at least.
        if self.max_conns == 0 {
            bail!("--max-conns 0: a node holds one connection at least");
        }
        if self.max_conns < c.queues {
            bail!(
                "--max-conns {} is fewer than the node's {} queues (each queue's worker holds its \
                 share, one connection at least): give a larger --max-conns, or --queues {} or \
                 fewer",
                self.max_conns,
                c.queues,
                self.max_conns
            );
        }
        c.stack.max_conns = self.max_conns;
        c.stack.arp.protect_live_entries = self.arp_protect == "on";
        c.ring = Some(self.rx_ring);
        c.impair = self.impair;
        c.offload = match self.offload.as_str() {
            "on" => engine::Offload::Full,
            "csum" => engine::Offload::Checksum,
            _ => engine::Offload::Off,
        };
        c.kernel_steering = self.kernel_steering == "on";
        Ok(c)
    }
}

impl NodeOpts {
    /// --queues, or one per available core (at most 64).
    fn queues(&self) -> usize {
        self.queues.map_or_else(
            || engine::sys::affinity::available_cores().clamp(1, 64),
            usize::from,
        )
    }

    fn dhcp_config(&self) -> Result<NodeConfig> {
        if self.gateway.is_some() {
            bail!("--gateway cannot be combined with --dhcp: the router comes from the lease");
        }
        let unset = Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 32).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut c = self.common(unset, dhcp_mac(&self.tap))?;
        c.stack.dhcp = true;
        c.stack.dhcp_client = protocols::dhcp::Config::new(c.stack.mac);
        c.stack.dhcp_client.host_name = Some(b"tapir".to_vec());
        c.stack.dhcp_client.max_lease = self.dhcp_max_lease;
        Ok(c)
    }

    /// The DNS servers to ask: `--dns`, else the lease's.
    pub fn dns_servers(&self, node: &Node) -> Vec<Ipv4Addr> {
        if !self.dns.is_empty() {
            return self.dns.clone();
        }
        node.dhcp_lease().map(|l| l.dns_servers).unwrap_or_default()
    }
}

/// Starts a node and, with `--dhcp`, waits for its lease (at most `--dhcp-timeout`).
pub fn start_node(opts: &NodeOpts, config: NodeConfig) -> Result<Node> {
    let node = Node::start(config)?;
    wait_for_lease(opts, &node)?;
    Ok(node)
}

/// With `--dhcp`, waits for the node's lease (at most `--dhcp-timeout`); on failure stops the
/// node and says what to check.
pub fn wait_for_lease(opts: &NodeOpts, node: &Node) -> Result<()> {
    if opts.dhcp {
        if let Err(e) = node.wait_for_lease(Duration::from_secs(opts.dhcp_timeout)) {
            let state = node
                .dhcp_state()
                .map(|s| format!("{s:?}").to_lowercase())
                .unwrap_or_else(|| "not started".into());
            node.shutdown();
            bail!(
                "no DHCP lease on {} within {} s ({e}; client state: {state}): is a DHCP server on the tap's LAN? (--dhcp-timeout sets the wait)",
                opts.tap,
                opts.dhcp_timeout
            );
        }
    }
    Ok(())
}

/// Stops a node; with a DHCP lease, releases it first (RFC 2131 §4.4.6).
pub fn stop_node(node: &Node) {
    if node.config().stack.dhcp {
        node.dhcp_release(Duration::from_secs(2));
    }
    node.shutdown();
}

/// A stable locally administered MAC for a DHCP node, derived from the tap's name, so that a
/// restarted node asks for (and usually gets) the same lease.
pub fn dhcp_mac(tap: &str) -> EthernetAddress {
    // FNV-1a: stable across runs and Rust versions, unlike `DefaultHasher`.
    let mut h: u32 = 0x811c_9dc5;
    for b in tap.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let b = h.to_be_bytes();
    EthernetAddress([0x02, 0x74, 0xdc, b[1], b[2], b[3]])
}

/// A locally administered unicast MAC that embeds the address: stable across runs, so the
/// kernel's neighbour cache stays right when a node restarts.
pub fn default_mac(ip: Ipv4Addr) -> EthernetAddress {
    let o = ip.octets();
    EthernetAddress([0x02, 0x74, o[0], o[1], o[2], o[3]])
}
