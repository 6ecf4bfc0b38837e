//! A deterministic simulated network for tapir stacks: the main net under TCP.
//!
//! Two or more [`protocols::iface::Stack`]s sit on one simulated Ethernet segment. Each ordered
//! pair of nodes has its own [`LinkConfig`]: delay, jitter, bandwidth with a tail-drop queue,
//! loss, reordering, duplication and corruption, each drawn from one seeded generator, and each
//! changeable mid-run (a blackout, then recovery). Time is virtual: [`Network::step`] jumps to
//! the next frame arrival, link change or stack timer. Nothing sleeps and nothing reads a clock,
//! so a run is a pure function of its seed, and a failing sweep prints the one command that
//! replays it ([`seeds`]).
//!
//! This is a crate of its own rather than a module of `protocols`: it is test infrastructure
//! that the shipped library never links, the integration tests and the goodput bench both use
//! it, and it reaches the stack only through its public API, as an application would.
//!
//! The design follows s2n-quic's `io/testing` model (a network of endpoints with a seeded,
//! per-packet impairment model and a virtual clock) and quinn-proto's `Pair::step`.

pub mod link;
pub mod mixed;
pub mod monitor;
pub mod network;
pub mod seeds;
pub mod smol;
pub mod trace;
pub mod transfer;

pub use link::{LinkConfig, LinkStats};
pub use mixed::run_mixed;
pub use monitor::{Cause, Violation};
pub use network::{
    host_cidr, host_mac, integrity_drops, Host, IdleReport, Network, NodeId, Peer, SimError,
    SimNode, IDLE_SETTLE,
};
pub use seeds::{replay_command, replay_here, seeds, sweep};
pub use smol::{SmolNode, SmolOptions};
pub use transfer::{
    pattern_fill, run_transfer, run_transfers, Transfer, TransferReport, IDLE_CHECK,
};
