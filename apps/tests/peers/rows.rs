//! The peer matrix's rows: how the kernel in the lab is configured, and the write patterns of
//! the request/response phases.

use engine::Offload;

/// How the two ends write a request/response round.
#[derive(Debug, Clone, Copy)]
pub struct Pattern {
    /// TCP_NODELAY on the kernel's sockets.
    pub kernel_nodelay: bool,
    /// TCP_CORK around each message the kernel writes (in `pieces` writes).
    pub kernel_cork: bool,
    /// `set_nodelay` on tapir's sockets (off: tapir's Nagle, its default).
    pub tapir_nodelay: bool,
    /// Writes per message, each side.
    pub pieces: usize,
    /// Request/response rounds per connection.
    pub rounds: usize,
}

/// Both ends' defaults (Nagle on), one write per message.
pub const PLAIN: Pattern = Pattern {
    kernel_nodelay: false,
    kernel_cork: false,
    tapir_nodelay: false,
    pieces: 1,
    rounds: 200,
};

pub struct Row {
    pub name: &'static str,
    /// `net.ipv4.tcp_*` settings of the lab namespace (per namespace), read back.
    pub sysctls: &'static [(&'static str, &'static str)],
    /// Link MTU on both sides: the kernel side of the tap and tapir's `stack.mtu`.
    pub mtu: Option<u16>,
    /// `advmss` on the kernel's route to tapir: the MSS the kernel offers.
    pub advmss: Option<u16>,
    /// The tap offloads tapir asks for. With TSO (`Full`), one frame on the tap is many
    /// segments, their size in the frame's GSO size; without, every frame is a segment. With
    /// `Checksum`, TCP checksums cross the tap unfinished in both directions.
    pub offload: Offload,
    pub pattern: Pattern,
}

impl Row {
    pub fn sysctl(&self, name: &str) -> Option<&'static str> {
        self.sysctls
            .iter()
            .find(|(k, _)| k.strip_prefix("net.ipv4.") == Some(name))
            .map(|(_, v)| *v)
    }

    /// The MSS tapir offers: its MTU less 40, 1460 by default.
    pub fn tapir_mss(&self) -> u16 {
        self.mtu.map_or(1460, |m| m - 40)
    }

    /// The MSS the kernel offers.
    pub fn kernel_mss(&self) -> u16 {
        self.advmss
            .unwrap_or_else(|| self.mtu.map_or(1460, |m| m - 40))
    }
}

const NO_WSCALE: (&str, &str) = ("net.ipv4.tcp_window_scaling", "0");
const NO_SACK: (&str, &str) = ("net.ipv4.tcp_sack", "0");
const NO_TS: (&str, &str) = ("net.ipv4.tcp_timestamps", "0");
const ECN: (&str, &str) = ("net.ipv4.tcp_ecn", "1");

const fn row(name: &'static str, sysctls: &'static [(&'static str, &'static str)]) -> Row {
    Row {
        name,
        sysctls,
        mtu: None,
        advmss: None,
        offload: Offload::Full,
        pattern: PLAIN,
    }
}

const fn nagle(name: &'static str, pattern: Pattern) -> Row {
    Row {
        name,
        sysctls: &[],
        mtu: None,
        advmss: None,
        offload: Offload::Full,
        pattern,
    }
}

pub const ROWS: &[Row] = &[
    row("linux-defaults", &[]),
    row("no-window-scaling", &[NO_WSCALE]),
    row("no-sack", &[NO_SACK]),
    row("no-timestamps", &[NO_TS]),
    row("ecn", &[ECN]),
    Row {
        advmss: Some(536),
        offload: Offload::Off,
        ..row("advmss-536", &[])
    },
    Row {
        mtu: Some(576),
        offload: Offload::Off,
        ..row("mtu-576", &[])
    },
    Row {
        mtu: Some(9000),
        offload: Offload::Off,
        ..row("jumbo-9000", &[])
    },
    Row {
        mtu: Some(576),
        offload: Offload::Off,
        ..row("all-off-mtu-576", &[NO_WSCALE, NO_SACK, NO_TS, ECN])
    },
    Row {
        mtu: Some(9000),
        offload: Offload::Off,
        ..row("all-off-jumbo-9000", &[NO_WSCALE, NO_SACK, NO_TS, ECN])
    },
    // Checksum offload without segmentation: every frame is one MTU-sized segment whose TCP
    // checksum neither side computes (tapir writes partial sums, the kernel hands over its own).
    Row {
        offload: Offload::Checksum,
        ..row("csum-only", &[])
    },
    Row {
        mtu: Some(576),
        offload: Offload::Checksum,
        ..row(
            "all-off-csum-only-mtu-576",
            &[NO_WSCALE, NO_SACK, NO_TS, ECN],
        )
    },
    // The same links with TSO and GRO on the tap: segments are cut by the kernel, at the GSO
    // size each side gives.
    Row {
        advmss: Some(536),
        ..row("advmss-536-tso", &[])
    },
    Row {
        mtu: Some(576),
        ..row("mtu-576-tso", &[])
    },
    Row {
        mtu: Some(9000),
        ..row("jumbo-9000-tso", &[])
    },
    nagle(
        "nodelay-both-small-writes",
        Pattern {
            kernel_nodelay: true,
            kernel_cork: false,
            tapir_nodelay: true,
            pieces: 4,
            rounds: 200,
        },
    ),
    nagle(
        "nagle-both-split-writes",
        // Write-write-read with Nagle and delayed ACKs on both ends: each round waits for a
        // delayed ACK (about 50 ms a round here), hence fewer rounds.
        Pattern {
            pieces: 2,
            rounds: 40,
            ..PLAIN
        },
    ),
    nagle(
        "kernel-cork-many-writes",
        Pattern {
            kernel_cork: true,
            pieces: 16,
            ..PLAIN
        },
    ),
    nagle(
        "tapir-nagle-kernel-nodelay-many-writes",
        Pattern {
            kernel_nodelay: true,
            pieces: 25,
            ..PLAIN
        },
    ),
];
