//! `tapir serve`: start a node, run services until SIGINT or SIGTERM, then stop gracefully.

use std::time::{Duration, Instant};

use anyhow::Result;
use engine::Node;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::services::{self, Running, ServiceSpec};

/// Starts every service in `specs` (stopping none of them: the caller holds them).
pub fn start_services(node: &Node, specs: &[ServiceSpec]) -> Result<Vec<Running>> {
    specs
        .iter()
        .map(|spec| services::start(node, spec))
        .collect()
}

/// What the start line lists for `running`.
pub fn labels(running: &[Running]) -> Vec<String> {
    running.iter().flat_map(|r| r.labels.clone()).collect()
}

/// Handlers for SIGINT, SIGTERM and SIGHUP, for [`serve_until_signalled`]: install them
/// before the start line, so that a signal sent as soon as it is read is not lost.
pub fn serve_signals() -> Result<Signals> {
    Ok(Signals::new([SIGINT, SIGTERM, SIGHUP])?)
}

/// Serves until SIGINT or SIGTERM, SIGHUP opening the access logs again; then stops
/// gracefully: no new connections (they are refused), the responses in flight finish within
/// `grace` (or a second SIGINT/SIGTERM), and what is left then is cut off. Returns whether
/// everything finished in time.
pub fn serve_until_signalled(running: &[Running], signals: &mut Signals, grace: Duration) -> bool {
    for sig in signals.forever() {
        if sig == SIGHUP {
            running.iter().for_each(Running::reopen_log);
        } else {
            break;
        }
    }
    running.iter().for_each(Running::begin_drain);
    let deadline = Instant::now() + grace;
    // Looked at in short steps, so that a second signal cuts the grace short.
    const STEP: Duration = Duration::from_millis(100);
    let finished = loop {
        let now = Instant::now();
        let step = deadline.min(now + STEP);
        if running.iter().all(|r| r.wait_drained(step)) {
            break true;
        }
        if Instant::now() >= deadline || signals.pending().any(|s| s != SIGHUP) {
            break false;
        }
    };
    running.iter().for_each(Running::stop);
    finished
}

/// The line tapir prints when it is up, e.g.
/// `tapir @ 10.7.0.2/24 on tap0 (1 queue): echo/tcp:7 echo/udp:7`.
pub fn start_line(node: &Node, labels: &[String]) -> String {
    let c = node.config();
    let q = node.queues();
    let ns = c
        .netns
        .as_deref()
        .map(|n| format!(" in netns {n}"))
        .unwrap_or_default();
    let mut line = format!(
        "tapir @ {} on {}{} ({} queue{})",
        node.cidr(),
        c.tap,
        ns,
        q,
        if q == 1 { "" } else { "s" }
    );
    if !labels.is_empty() {
        line.push_str(": ");
        line.push_str(&labels.join(" "));
    }
    line
}

/// Handlers for SIGINT and SIGTERM, in place from this call on (also when the process was
/// started with them ignored, as a script's background job is).
pub fn stop_signals() -> Result<signal_hook::iterator::Signals> {
    Ok(signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?)
}
