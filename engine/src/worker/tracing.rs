//! The tracers a worker feeds, and what it tells them about each frame.

use std::sync::atomic::Ordering;

use protocols::iface::{Stack, StackEvent};

use crate::node::{lock, Inner};
use crate::trace::{unix_micros, Direction, Tracer};

/// The tracers a worker feeds: `--trace` lines and `--pcap` capture, each on or off. The worker
/// picks up new ones when the node's trace generation moves.
#[derive(Default)]
pub(super) struct Tracing {
    pub(super) generation: u64,
    pub(super) tracers: Vec<Tracer>,
    /// Events the stack recorded for the frame being traced.
    pub(super) events: Vec<StackEvent>,
}

impl Tracing {
    pub(super) fn refresh(&mut self, inner: &Inner) {
        let g = inner.trace_generation.load(Ordering::Acquire);
        if g != self.generation {
            self.generation = g;
            self.tracers = lock(&inner.tracers).clone();
        }
    }

    #[inline]
    pub(super) fn on(&self) -> bool {
        self.tracers.iter().any(Tracer::is_on)
    }

    /// Records one frame with what the stack said about it.
    pub(super) fn frame(&mut self, stack: &mut Stack, queue: u16, dir: Direction, frame: &[u8]) {
        let drop = stack.take_drop();
        self.events.clear();
        stack.drain_events(&mut self.events);
        let ts = unix_micros();
        for t in &self.tracers {
            t.frame_with_events(ts, queue, dir, frame, drop, &self.events);
        }
    }
}
