//! `node.trace(callback, filter)`: the packet log, extensible from Python.
//!
//! The engine's trace session already takes frames off the workers into a bounded ring, and its
//! writer thread decodes them; its sink (`TraceConfig::sink`) hands each record, decoded to its
//! summary line, to a bounded queue of ours. A thread of ours drains that queue and calls the
//! Python function with the GIL held. Nothing here runs on a worker: a slow callback fills our
//! queue, then the records that do not fit are counted in `dropped` and the workers go on.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, TrySendError};
use engine::trace::{DecodeOptions, Direction, FrameRecord, LineDecoder, TraceConfig};
use engine::{Node, TraceSlot};
use protocols::wire::{
    ArpPacket, EtherType, EthernetFrame, Icmpv4Packet, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::errors::{os_error, value_error};

/// One traced frame, as the callback receives it.
#[pyclass(module = "tapir._tapir", frozen)]
pub struct Packet {
    /// "in" (read from the tap) or "out" (written to it).
    #[pyo3(get)]
    direction: &'static str,
    /// Seconds since the Unix epoch.
    #[pyo3(get)]
    time: f64,
    #[pyo3(get)]
    queue: u16,
    /// The tcpdump-style line `tapir --trace` prints (without time and direction).
    #[pyo3(get)]
    summary: String,
    /// The frame's length on the wire.
    #[pyo3(get)]
    length: usize,
    /// "dropped: REASON" and the stack events the frame caused.
    #[pyo3(get)]
    comments: Vec<String>,
    raw: Vec<u8>,
}

#[pymethods]
impl Packet {
    /// The Ethernet frame's bytes.
    #[getter]
    fn raw<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.raw)
    }

    /// The frame layer by layer, outermost first: dicts with a "name" ("ethernet", "arp",
    /// "ipv4", "tcp", "udp", "icmp", "payload") and that layer's fields.
    #[getter]
    fn layers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        layers(py, &self.raw)
    }

    fn __str__(&self) -> String {
        self.summary.clone()
    }

    fn __repr__(&self) -> String {
        format!("<tapir.Packet {} {}>", self.direction, self.summary)
    }
}

fn layer<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", name)?;
    Ok(d)
}

fn layers<'py>(py: Python<'py>, frame: &[u8]) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Ok(out);
    };
    let d = layer(py, "ethernet")?;
    d.set_item("src", eth.src_addr().to_string())?;
    d.set_item("dst", eth.dst_addr().to_string())?;
    d.set_item("type", u16::from(eth.ethertype()))?;
    out.append(d)?;
    match eth.ethertype() {
        EtherType::Arp => {
            if let Ok(arp) = ArpPacket::new_checked(eth.payload()) {
                let d = layer(py, "arp")?;
                d.set_item("op", format!("{:?}", arp.oper()).to_lowercase())?;
                out.append(d)?;
            }
        }
        EtherType::Ipv4 => {
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                return Ok(out);
            };
            let d = layer(py, "ipv4")?;
            d.set_item("src", ip.src_addr().to_string())?;
            d.set_item("dst", ip.dst_addr().to_string())?;
            d.set_item("ttl", ip.ttl())?;
            d.set_item("proto", u8::from(ip.protocol()))?;
            d.set_item("length", ip.total_len())?;
            out.append(d)?;
            transport(py, &out, ip.protocol(), ip.payload(), ip.src_addr())?;
        }
        _ => {}
    }
    Ok(out)
}

fn transport(
    py: Python<'_>,
    out: &Bound<'_, PyList>,
    proto: IpProtocol,
    payload: &[u8],
    _src: Ipv4Addr,
) -> PyResult<()> {
    let data_len: usize = match proto {
        IpProtocol::Tcp => {
            let Ok(t) = TcpPacket::new_checked(payload) else {
                return Ok(());
            };
            let d = layer(py, "tcp")?;
            d.set_item("sport", t.src_port())?;
            d.set_item("dport", t.dst_port())?;
            d.set_item("seq", t.seq_number().0)?;
            d.set_item("ack", t.ack_number().0)?;
            let f = t.flags();
            let mut flags = String::new();
            for (on, c) in [
                (f.syn(), 'S'),
                (f.fin(), 'F'),
                (f.rst(), 'R'),
                (f.psh(), 'P'),
                (f.ack(), '.'),
            ] {
                if on {
                    flags.push(c);
                }
            }
            d.set_item("flags", flags)?;
            d.set_item("window", t.window_len())?;
            out.append(d)?;
            payload.len().saturating_sub(t.header_len())
        }
        IpProtocol::Udp => {
            let Ok(u) = UdpPacket::new_checked(payload) else {
                return Ok(());
            };
            let d = layer(py, "udp")?;
            d.set_item("sport", u.src_port())?;
            d.set_item("dport", u.dst_port())?;
            out.append(d)?;
            payload.len().saturating_sub(8)
        }
        IpProtocol::Icmp => {
            let Ok(i) = Icmpv4Packet::new_checked(payload) else {
                return Ok(());
            };
            let d = layer(py, "icmp")?;
            d.set_item("type", i.msg_type())?;
            d.set_item("code", i.msg_code())?;
            out.append(d)?;
            return Ok(());
        }
        IpProtocol::Unknown(_) => return Ok(()),
    };
    if data_len > 0 {
        let d = layer(py, "payload")?;
        d.set_item("length", data_len)?;
        out.append(d)?;
    }
    Ok(())
}

/// A record on its way from the writer thread to the callback.
struct Rec {
    dir: Direction,
    ts_micros: u64,
    queue: u16,
    summary: String,
    raw: Vec<u8>,
    orig_len: usize,
    comments: Vec<String>,
}

struct Counts {
    delivered: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
}

/// A running trace: `stop()` ends it and waits until every queued packet went to the callback.
#[pyclass(module = "tapir._tapir", frozen)]
pub struct Trace {
    node: Node,
    drainer: Mutex<Option<JoinHandle<()>>>,
    counts: Arc<Counts>,
    /// The engine's counters, kept when the session stops.
    final_stats: Mutex<Option<engine::trace::TraceStats>>,
}

pub fn start(
    py: Python<'_>,
    node: &Node,
    callback: Py<PyAny>,
    filter: Option<&str>,
    queue: usize,
) -> PyResult<Trace> {
    if !callback.bind(py).is_callable() {
        return Err(value_error(
            "trace(callback, ...): callback must be callable",
        ));
    }
    if node.tracing(TraceSlot::Lines) {
        return Err(os_error(
            crate::errors::errno::EINVAL,
            "a trace already runs on this node: stop it first",
        ));
    }
    let filter = tapir_apps::tracing::parse_filter(filter)
        .map_err(|e| value_error(format!("bad trace filter: {e:#}")))?;
    let mut decoder = LineDecoder::new(DecodeOptions {
        no_prefix: true,
        ..DecodeOptions::default()
    });
    for d in tapir_apps::trace_cmd::app_decoders() {
        decoder.register(d);
    }
    let (tx, rx) = bounded::<Rec>(queue.max(1));
    let counts = Arc::new(Counts {
        delivered: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let c2 = counts.clone();
    let sink = move |r: &FrameRecord<'_>| {
        if tx.is_full() {
            c2.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut summary = String::new();
        decoder.decode(&r.meta, r.data, &mut summary);
        let rec = Rec {
            dir: r.meta.dir,
            ts_micros: r.meta.ts_micros,
            queue: r.meta.queue,
            summary,
            raw: r.data.to_vec(),
            orig_len: r.orig_len,
            comments: r.comments.to_vec(),
        };
        if let Err(TrySendError::Full(_)) = tx.try_send(rec) {
            c2.dropped.fetch_add(1, Ordering::Relaxed);
        }
    };
    let c3 = counts.clone();
    let drainer = std::thread::Builder::new()
        .name("tapir-py-trace".into())
        .spawn(move || {
            for rec in rx {
                Python::attach(|py| {
                    let p = Packet {
                        direction: match rec.dir {
                            Direction::In => "in",
                            Direction::Out => "out",
                        },
                        time: rec.ts_micros as f64 / 1e6,
                        queue: rec.queue,
                        summary: rec.summary,
                        length: rec.orig_len,
                        comments: rec.comments,
                        raw: rec.raw,
                    };
                    match callback.call1(py, (p,)) {
                        Ok(_) => {
                            c3.delivered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            c3.errors.fetch_add(1, Ordering::Relaxed);
                            e.print(py);
                        }
                    }
                });
            }
        })
        .map_err(|e| {
            os_error(
                crate::errors::errno::EIO,
                format!("cannot start the trace thread: {e}"),
            )
        })?;
    let config = TraceConfig {
        filter,
        sink: Some(Box::new(sink)),
        ..TraceConfig::default()
    };
    node.start_trace(TraceSlot::Lines, config).map_err(|e| {
        os_error(
            crate::errors::errno::EIO,
            format!("cannot start tracing: {e}"),
        )
    })?;
    Ok(Trace {
        node: node.clone(),
        drainer: Mutex::new(Some(drainer)),
        counts,
        final_stats: Mutex::new(None),
    })
}

impl Trace {
    fn engine_stats(&self) -> engine::trace::TraceStats {
        if let Some(s) = *self.final_stats.lock().unwrap_or_else(|e| e.into_inner()) {
            return s;
        }
        self.node.trace_stats(TraceSlot::Lines).unwrap_or_default()
    }
}

#[pymethods]
impl Trace {
    /// Stops tracing; returns once every packet taken went to the callback (unless called from
    /// the callback itself).
    fn stop(&self, py: Python<'_>) {
        let Some(t) = self
            .drainer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let node = self.node.clone();
        let stats = py.detach(move || node.stop_trace(TraceSlot::Lines));
        *self.final_stats.lock().unwrap_or_else(|e| e.into_inner()) = stats;
        if t.thread().id() != std::thread::current().id() {
            py.detach(move || {
                let _ = t.join();
            });
        }
    }

    /// Packets handed to the callback.
    #[getter]
    fn delivered(&self) -> u64 {
        self.counts.delivered.load(Ordering::Relaxed)
    }

    /// Packets left out: our queue full (a slow callback) or the engine's ring full.
    #[getter]
    fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed) + self.engine_stats().ring_full
    }

    /// Calls that raised (the exception is printed, tracing goes on).
    #[getter]
    fn errors(&self) -> u64 {
        self.counts.errors.load(Ordering::Relaxed)
    }

    /// Frames the filter let through, and those it did not.
    #[getter]
    fn recorded(&self) -> u64 {
        self.engine_stats().recorded
    }

    #[getter]
    fn filtered_out(&self) -> u64 {
        self.engine_stats().filtered_out
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.stop(py);
    }
}
