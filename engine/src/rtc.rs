//! The run-to-completion API: application code that runs on a worker, inside its loop, with the
//! worker's own stack in hand. No lock, no thread hop, no copy into a blocking socket: what a
//! [`WorkerApp`] sends goes out in the same batch as the frames that prompted it.
//!
//! Each worker runs its own instances (one per worker for a sharded server or load generator:
//! connections stay with the worker that owns their flow), so apps keep their counters
//! unshared and merge them when they finish.
//!
//! Calling order, per worker wake-up: received frames go to the stack; then every app's
//! [`WorkerApp::poll`]; then the stack's timers and sends; then the worker sleeps until a frame,
//! an application call, the stack's next timer, or the earliest instant an app asked for.

use protocols::iface::{SocketHandle, Stack};
use protocols::time::Instant;

/// What an app gets on each call.
pub struct AppCtx<'a> {
    pub stack: &'a mut Stack,
    pub now: Instant,
    /// This worker's index, and how many there are.
    pub worker: usize,
    pub workers: usize,
    /// Connections with news since the last call (data, room, state, error), each once.
    pub ready: &'a [SocketHandle],
}

/// Application code run by a worker.
pub trait WorkerApp: Send {
    /// Does the app's work; returns the latest instant at which it wants to run again (None:
    /// at the next wake-up, whenever that is).
    fn poll(&mut self, ctx: &mut AppCtx<'_>) -> Option<Instant>;

    /// True once the app has finished: the worker drops it after this call.
    fn done(&self) -> bool {
        false
    }
}
