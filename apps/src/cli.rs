//! The node options every subcommand takes (DESIGN.md's CLI contract), and how they become a
//! [`NodeConfig`].

use std::net::Ipv4Addr;

use anyhow::{bail, Result};
use clap::Args;
use engine::NodeConfig;
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
    #[arg(long, value_name = "CIDR")]
    pub ip: Option<Ipv4Cidr>,
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
    /// A DNS server to ask (repeatable; asked in order).
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<Ipv4Addr>,
    /// Tap offloads (vnet header, checksum, TSO/GRO segments up to 64 KiB): on or off.
    #[arg(long, default_value = "on", value_parser = ["on", "off"], value_name = "on|off")]
    pub offload: String,
    /// Most TCP connections held at once.
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
        let Some(cidr) = self.ip else {
            bail!("--ip is required: give the node an address, e.g. --ip 10.7.0.2/24");
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
        let mut c = NodeConfig::new(&self.tap, cidr);
        c.netns = self.netns.clone();
        c.queues = self.queues.map_or_else(
            || engine::sys::affinity::available_cores().clamp(1, 64),
            usize::from,
        );
        c.stack.mac = self.mac.unwrap_or_else(|| default_mac(cidr.address()));
        if !c.stack.mac.is_unicast() {
            bail!("--mac {}: a node needs a unicast MAC address", c.stack.mac);
        }
        c.stack.gateway = self.gateway;
        c.stack.mtu = usize::from(self.mtu);
        c.stack.max_conns = self.max_conns;
        c.impair = self.impair;
        c.offload = self.offload == "on";
        Ok(c)
    }
}

/// A locally administered unicast MAC that embeds the address: stable across runs, so the
/// kernel's neighbour cache stays right when a node restarts.
pub fn default_mac(ip: Ipv4Addr) -> EthernetAddress {
    let o = ip.octets();
    EthernetAddress([0x02, 0x74, o[0], o[1], o[2], o[3]])
}
