//! Live tracing on a running node: `--trace EXPR` (tcpdump-style lines on stdout) and
//! `--pcap FILE` (a pcapng capture Wireshark reads), and the shell's `trace` and `pcap`.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::{Context, Result};
use engine::trace::{
    DecodeOptions, Filter, LineDecoder, TraceConfig, DEFAULT_RING_SLOTS, DEFAULT_SNAPLEN,
};
use engine::{Node, TraceSlot};

use crate::trace_cmd::app_decoders;

/// A filter from the command line: `all` (or nothing) records every frame.
pub fn parse_filter(expr: Option<&str>) -> Result<Option<Filter>> {
    match expr.map(str::trim) {
        None | Some("") | Some("all") => Ok(None),
        Some(e) => Ok(Some(Filter::parse(e).map_err(|e| anyhow::anyhow!("{e}"))?)),
    }
}

/// Starts printing one line per frame that matches `expr` on standard output.
pub fn start_lines(node: &Node, expr: Option<&str>) -> Result<()> {
    let filter = parse_filter(expr)?;
    let mut decoder = LineDecoder::new(DecodeOptions::default());
    for d in app_decoders() {
        decoder.register(d);
    }
    let config = TraceConfig {
        filter,
        lines: Some((Box::new(std::io::stdout()), decoder)),
        ..TraceConfig::default()
    };
    node.start_trace(TraceSlot::Lines, config)
        .context("cannot start tracing")
}

/// How a capture keeps frames: its snap length and its ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcapOpts {
    /// Bytes kept of each frame (`--snaplen`); the default keeps whole frames.
    pub snaplen: usize,
    /// Frames in flight to the writer at most (`--pcap-ring`); more are not captured, and
    /// counted.
    pub ring_slots: usize,
    /// With the ring full, the workers wait for the writer instead (`--pcap-wait`): nothing is
    /// left out of the capture.
    pub wait: bool,
}

impl Default for PcapOpts {
    fn default() -> Self {
        PcapOpts {
            snaplen: DEFAULT_SNAPLEN,
            ring_slots: DEFAULT_RING_SLOTS,
            wait: false,
        }
    }
}

/// Starts writing frames that match `expr` to a pcapng capture at `path`.
pub fn start_pcap(node: &Node, path: &Path, expr: Option<&str>, opts: PcapOpts) -> Result<()> {
    let filter = parse_filter(expr)?;
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let config = TraceConfig {
        filter,
        pcap: Some(Box::new(BufWriter::new(file))),
        snaplen: opts.snaplen.max(1),
        ring_slots: opts.ring_slots.max(1),
        wait: opts.wait,
        ..TraceConfig::default()
    };
    node.start_trace(TraceSlot::Pcap, config)
        .context("cannot start the capture")
}
