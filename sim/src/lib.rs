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
//! Every run is also checked against issue 13's invariant, "no segment without a cause"
//! ([`monitor`]): each frame a node sends is charged to the frame or timer instant that drew it,
//! per connection, and a storm of any kind stops the run with [`SimError::Invariant`] and its
//! replay command; [`Network::expect_idle_silence`] checks that a held connection says nothing
//! (keep-alive probes aside), and every transfer scenario calls it before it closes.
//!
//! A node is a tapir stack or any other [`Peer`]: [`smol`] puts smoltcp, a second and
//! independent TCP/IP implementation, on the segment, and [`run_mixed`] runs the transfer
//! scenario between any two of them.
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
