//! Packet-level tracing: tcpdump-style lines, filters, pcapng captures and stack events.
//!
//! What this module owns:
//! - [`decode`]: one line per frame, per-layer, with `-v`/`-vv` levels and application
//!   [`Decoder`]s registered by the apps (the HTTP server registers one for its port).
//! - [`filter`]: the `--trace EXPR` language, evaluated over a frame's bytes without allocating.
//! - [`pcapng`]: a writer that Wireshark and tshark read (an interface per queue, direction
//!   flags, stack events as packet comments) and a reader for `tapir trace FILE`.
//! - [`Tracer`]: the hook the workers call for every frame, and [`TraceWriter`], the thread
//!   behind it that prints lines and writes the capture.
//! - [`event`]: [`StackEvent`]s and the [`StackObserver`] trait.
//!
//! What it must never do: block a worker, allocate on a worker's path, or panic on any frame.
//!
//! # The hook API for the workers
//!
//! A worker holds a [`Tracer`] (cheap to clone; [`Tracer::off`] when tracing is not wanted)
//! and calls, for every frame it reads from or writes to its queue:
//! ```ignore
//! if tracer.is_on() {                         // one branch (and one relaxed load) when on
//!     tracer.frame(now_micros, queue, Direction::In, frame);             // delivered
//!     tracer.dropped(now_micros, queue, Direction::In, frame, reason);  // dropped
//!     tracer.frame_with_events(now_micros, queue, Direction::Out, frame, None, &events);
//! }
//! ```
//! `now_micros` is microseconds since the Unix epoch ([`unix_micros`] reads it); `frame` is
//! the Ethernet frame (after any virtio-net header). Each call evaluates the filter in place,
//! takes a preallocated slot from a bounded free list, copies the frame (up to the snap
//! length) and the events (up to [`TraceConfig::max_events`]) into it and hands it to the
//! writer thread; when no slot is free the frame is counted in [`TraceStats::ring_full`] and
//! the worker goes on. No call allocates, locks or blocks. Stack events emitted while a frame
//! is processed belong to that frame (or, for timer events, to the frame the timer sends);
//! [`Tracer::event`] also hands each event to the registered [`StackObserver`]s.

pub mod capture;
pub mod decode;
pub mod event;
pub mod filter;
pub mod pcapng;
pub mod sample;

use core::fmt;

pub use capture::{
    start, unix_micros, FrameRecord, FrameSink, TraceConfig, TraceStats, TraceWriter, Tracer,
    DEFAULT_RING_SLOTS, DEFAULT_SNAPLEN,
};
pub use decode::{DecodeOptions, Decoder, LineDecoder, PayloadMeta, Transport};
pub use event::{ConnId, RetransmitReason, StackEvent, StackObserver};
pub use filter::{Filter, FilterError, FilterErrorKind};

/// Which way a frame went through the tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Read from the tap (towards the stack).
    In,
    /// Written to the tap (from the stack).
    Out,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::In => "in",
            Direction::Out => "out",
        })
    }
}

/// When, where and which way a frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    /// Microseconds since the Unix epoch.
    pub ts_micros: u64,
    pub queue: u16,
    pub dir: Direction,
}
