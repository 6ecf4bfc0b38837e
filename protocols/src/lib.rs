//! tapir's sans-IO core: wire formats and protocol state machines.
//!
//! This crate owns every byte-level decision of the stack and nothing else: it never reads a clock
//! (time is passed in as [`time::Instant`]), never draws randomness on its own (a seeded
//! [`rand::Rng`] is passed in), never makes a syscall and never spawns a thread. That is what lets
//! a whole node run inside a simulated network in virtual time (see `iface`), and lets the engine
//! drive the same code from a tap.
//!
//! Layers, bottom up:
//! - [`wire`]: zero-copy views (`*Packet<T>`) and parsed representations (`*Repr`) of Ethernet II,
//!   ARP, IPv4, ICMPv4, UDP and TCP, with checksums.
//! - [`tcp`]: one TCP connection's state machine (RFC 9293), its buffers, timers and RTT estimator.
//! - [`dhcp`]: the DHCP client's lease state machine (RFC 2131, RFC 5227 probing), driven by
//!   the node.
//! - [`iface`]: a whole node: ARP cache (with anti-poisoning and RFC 5227 defence), IPv4
//!   dispatch, reassembly into a bounded pool and fragmentation on send, ICMP, UDP and TCP socket
//!   tables, drop counters. Frames in, frames out.
//! - [`impair`]: what an impaired path does to a frame's bytes (the engine's `--impair` and the
//!   simulator's links share it).
//!
//! Nothing that arrives from the wire may panic this crate: outside tests it denies `unwrap`,
//! `expect`, `panic!` and unchecked indexing or slicing (wire views read through
//! `wire::bytes`' checked helpers); `tests/no_panic_lints.rs` keeps that setting in place.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod dhcp;
pub mod iface;
pub mod impair;
pub mod rand;
pub mod tcp;
pub mod time;
pub mod wire;
