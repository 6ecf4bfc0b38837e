//! tapir's engine: everything that touches the operating system.
//!
//! It owns the tap queues ([`sys`], the only module with `unsafe`), the buffer pools ([`pool`]),
//! one worker thread per tap queue ([`worker`]) each driving its own sans-IO
//! [`protocols::iface::Stack`], the steering of frames to the worker that owns their flow
//! ([`steer`]), and the blocking socket API shaped like `std::net` ([`socket`]).
//!
//! A TCP connection or UDP flow is owned by exactly one worker, chosen by tapir's own hash of its
//! 4-tuple. Application threads reach a worker's stack through that worker's own lock; nothing on
//! the per-packet path takes a lock shared between workers.
#![deny(unsafe_code)]

pub mod clock;
pub mod fault;
mod news;
pub mod node;
pub mod pool;
pub mod rtc;
pub mod socket;
pub mod steer;
#[allow(unsafe_code)]
pub mod sys;
pub mod trace;
pub mod vnet;
mod worker;

pub use fault::{FaultCounters, ImpairSpec};
pub use node::{Node, NodeConfig, NodeError, NodeStats, Offload, TraceSlot, DEFAULT_RING};
pub use rtc::{AppCtx, WorkerApp};
pub use socket::{IcmpEvent, IcmpSocket, SocketCloser, TcpListener, TcpStream, UdpSocket};
