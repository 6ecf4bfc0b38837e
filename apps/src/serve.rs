//! `tapir serve`: start a node, run services until SIGINT or SIGTERM.

use anyhow::Result;
use engine::Node;

use crate::services::{self, ServiceSpec};

/// Starts every service in `specs`; returns the labels for the start line.
pub fn start_services(node: &Node, specs: &[ServiceSpec]) -> Result<Vec<String>> {
    let mut labels = Vec::new();
    for spec in specs {
        labels.extend(services::start(node, spec)?.labels);
    }
    Ok(labels)
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

/// Blocks until SIGINT or SIGTERM.
pub fn wait_for_signal() -> Result<i32> {
    Ok(stop_signals()?.forever().next().unwrap_or(0))
}
