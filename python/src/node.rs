//! `tapir._tapir.Node`: a running node, its options parsed by the same code as the `tapir`
//! command's (`tapir_apps::cli::NodeOpts`), and the clients and services as methods.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use engine::Node;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use tapir_apps::cli::{self, NodeOpts};
use tapir_apps::resolve::{Resolver, ResolverConfig};

use crate::errors::{app_error, errno, os_error, value_error};
use crate::out::PyOut;

/// The node options as the command line has them, parsed by clap.
#[derive(Debug, Parser)]
#[command(
    name = "python -m tapir",
    about = "tapir's Python REPL: a Python session as a network node"
)]
pub struct Args {
    #[command(flatten)]
    pub node: NodeOpts,
}

/// Parses node options given as `argv` (without the program name). A `--help` or a bad option
/// comes back as `Err((exit status, text))`, the text clap prints.
pub fn parse_args(argv: &[String]) -> Result<Args, (i32, String)> {
    let all = std::iter::once("python -m tapir".to_string()).chain(argv.iter().cloned());
    Args::try_parse_from(all).map_err(|e| (e.exit_code(), e.render().to_string()))
}

/// What a Python `Node` holds: the engine's node until it is closed, and who it asks for names.
pub struct Held {
    pub node: Node,
    pub dns: Vec<Ipv4Addr>,
    pub opts: NodeOpts,
}

#[pyclass(module = "tapir._tapir", subclass, frozen, name = "Node")]
pub struct PyNode {
    held: Mutex<Option<Arc<Held>>>,
}

impl PyNode {
    /// The running node, or `OSError(EBADF)` once closed.
    pub fn held(&self) -> PyResult<Arc<Held>> {
        let h = self.held.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match h {
            Some(h) if !h.node.is_stopped() => Ok(h),
            _ => Err(os_error(errno::EBADF, "the node is closed")),
        }
    }

    /// The address `host` names: an IPv4 literal, or a name asked of the node's DNS servers.
    pub fn lookup(py: Python<'_>, held: &Arc<Held>, host: &str) -> PyResult<Ipv4Addr> {
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Ok(ip);
        }
        let h = held.clone();
        let name = host.to_string();
        py.detach(move || {
            Resolver::new(&h.node, ResolverConfig::new(h.dns.clone())).socket_addr(&name, 0)
        })
        .map(|a| *a.ip())
        .map_err(|e| gaierror(py, &format!("{e:#}")))
    }
}

/// `socket.gaierror(EAI_NONAME, msg)`, as `getaddrinfo` raises for a name that does not resolve.
pub fn gaierror(py: Python<'_>, msg: &str) -> PyErr {
    const EAI_NONAME: i32 = -2;
    match py
        .import("socket")
        .and_then(|m| m.getattr("gaierror"))
        .and_then(|c| c.call1((EAI_NONAME, msg.to_string())))
    {
        Ok(e) => PyErr::from_value(e),
        Err(e) => e,
    }
}

#[pymethods]
impl PyNode {
    /// Starts a node from command-line style options (`["--netns", "NS", "--ip", "CIDR"]`).
    #[new]
    #[pyo3(signature = (argv))]
    fn new(py: Python<'_>, argv: Vec<String>) -> PyResult<Self> {
        let args = parse_args(&argv).map_err(|(_, text)| {
            let text = text.trim().strip_prefix("error: ").unwrap_or(text.trim());
            value_error(
                text.lines()
                    .next()
                    .unwrap_or("bad node options")
                    .to_string(),
            )
        })?;
        let opts = args.node;
        let config = opts
            .node_config()
            .map_err(|e| value_error(format!("{e:#}")))?;
        let o2 = opts.clone();
        let node = py
            .detach(move || cli::start_node(&o2, config))
            .map_err(|e| os_error(errno::EIO, format!("cannot start the node: {e:#}")))?;
        let dns = opts.dns_servers(&node);
        Ok(PyNode {
            held: Mutex::new(Some(Arc::new(Held { node, dns, opts }))),
        })
    }

    /// Stops the node (idempotent): its sockets fail with OSError from then on.
    fn close(&self, py: Python<'_>) {
        let h = self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = h {
            py.detach(move || cli::stop_node(&h.node));
        }
    }

    #[getter]
    fn closed(&self) -> bool {
        self.held().is_err()
    }

    /// The node's address and prefix, e.g. "10.7.0.2/24".
    #[getter]
    fn ip(&self) -> PyResult<String> {
        Ok(self.held()?.node.cidr().to_string())
    }

    /// The node's address, e.g. "10.7.0.2".
    #[getter]
    fn address(&self) -> PyResult<String> {
        Ok(self.held()?.node.current_address().to_string())
    }

    #[getter]
    fn queues(&self) -> PyResult<usize> {
        Ok(self.held()?.node.queues())
    }

    #[getter]
    fn dns(&self) -> PyResult<Vec<String>> {
        Ok(self.held()?.dns.iter().map(|a| a.to_string()).collect())
    }

    /// The one-line counters of the shell's `stats` (frames per queue, drops by reason).
    fn stats(&self) -> PyResult<String> {
        Ok(self.held()?.node.stats().to_string())
    }

    /// Echo requests to `host`, printing iputils-style lines; returns a dict of what came back.
    #[pyo3(signature = (host, count=3, interval=1.0, size=56, timeout=2.0, ttl=None, quiet=false))]
    #[allow(clippy::too_many_arguments)]
    fn ping<'py>(
        &self,
        py: Python<'py>,
        host: &str,
        count: u32,
        interval: f64,
        size: u16,
        timeout: f64,
        ttl: Option<u8>,
        quiet: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let held = self.held()?;
        let ip = PyNode::lookup(py, &held, host)?;
        if size > tapir_apps::ping::MAX_SIZE {
            return Err(value_error(format!(
                "size {size}: an echo payload is at most {} bytes",
                tapir_apps::ping::MAX_SIZE
            )));
        }
        let opts = tapir_apps::ping::PingOpts {
            host: ip,
            count,
            interval,
            size,
            timeout,
            ttl,
            record_route: false,
        };
        let mut out = PyOut::stdout(quiet);
        let r = py.detach(|| tapir_apps::ping::run(&held.node, &opts, &mut out));
        out.flush_py(py)?;
        let s = r.map_err(app_error)?;
        let d = PyDict::new(py);
        d.set_item("host", ip.to_string())?;
        d.set_item("transmitted", s.transmitted)?;
        d.set_item("received", s.received)?;
        d.set_item("loss", s.loss_percent())?;
        let rtts: Vec<f64> = s.rtts.iter().map(|r| r.as_secs_f64() * 1000.0).collect();
        d.set_item("rtts_ms", rtts)?;
        Ok(d)
    }

    /// The path to `host`, hop by hop (UDP probes, or ICMP echo with `icmp=True`); prints each
    /// hop's line and returns a list of `(ttl, [address or None, ...])`.
    #[pyo3(signature = (host, max_hops=30, icmp=false, queries=3, wait=5.0, first_ttl=1, port=33434, quiet=false))]
    #[allow(clippy::too_many_arguments)]
    fn traceroute<'py>(
        &self,
        py: Python<'py>,
        host: &str,
        max_hops: u8,
        icmp: bool,
        queries: u8,
        wait: f64,
        first_ttl: u8,
        port: u16,
        quiet: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        use tapir_apps::traceroute::{ProbeResult, TracerouteOpts};
        let held = self.held()?;
        let ip = PyNode::lookup(py, &held, host)?;
        if max_hops == 0 || first_ttl == 0 || !(1..=10).contains(&queries) {
            return Err(value_error(
                "max_hops and first_ttl must be at least 1, queries between 1 and 10",
            ));
        }
        let opts = TracerouteOpts {
            host: ip,
            icmp,
            max_ttl: max_hops,
            first_ttl,
            queries,
            wait,
            port,
        };
        let mut out = PyOut::stdout(quiet);
        let r = py.detach(|| tapir_apps::traceroute::run(&held.node, &opts, &mut out));
        out.flush_py(py)?;
        let trace = r.map_err(app_error)?;
        let hops = PyList::empty(py);
        for hop in &trace.hops {
            let probes: Vec<Option<(String, f64)>> = hop
                .probes
                .iter()
                .map(|p| match p {
                    ProbeResult::Silent => None,
                    ProbeResult::Answer { from, rtt, .. } => {
                        Some((from.to_string(), rtt.as_secs_f64() * 1000.0))
                    }
                })
                .collect();
            hops.append((hop.ttl, probes))?;
        }
        Ok(hops)
    }

    /// The IPv4 addresses of `name`, asked of the node's DNS servers (`dns=[...]`).
    #[pyo3(signature = (name, timeout=2.0, attempts=2))]
    fn resolve(
        &self,
        py: Python<'_>,
        name: &str,
        timeout: f64,
        attempts: usize,
    ) -> PyResult<Vec<String>> {
        let held = self.held()?;
        if !(timeout.is_finite() && (0.05..=60.0).contains(&timeout)) || attempts == 0 {
            return Err(value_error(
                "timeout must be 0.05 to 60 seconds, attempts at least 1",
            ));
        }
        let mut config = ResolverConfig::new(held.dns.clone());
        config.timeout = Duration::from_secs_f64(timeout);
        config.attempts = attempts;
        let name = name.to_string();
        let h = held.clone();
        let r = py.detach(move || Resolver::new(&h.node, config).lookup_ipv4(&name));
        match r {
            Ok(r) => Ok(r.addresses.iter().map(|a| a.to_string()).collect()),
            Err(e) => Err(gaierror(py, &e.to_string())),
        }
    }

    /// Fetches an http:// URL into `path` (default: the URL's file name; "-" for standard
    /// output), following redirects; returns a dict with the status and the bytes saved.
    #[pyo3(signature = (url, path=None, quiet=true, timeout=30))]
    fn wget<'py>(
        &self,
        py: Python<'py>,
        url: &str,
        path: Option<std::path::PathBuf>,
        quiet: bool,
        timeout: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let held = self.held()?;
        let opts = tapir_apps::wget::WgetOpts {
            url: url.to_string(),
            output: path.map(|p| p.to_string_lossy().into_owned()),
            quiet,
            max_redirect: 20,
            timeout,
        };
        let h = held.clone();
        let f = py
            .detach(move || tapir_apps::wget::run(&h.node, &opts, &h.dns))
            .map_err(app_error)?;
        let d = PyDict::new(py);
        d.set_item("status", f.status)?;
        d.set_item("bytes", f.bytes)?;
        d.set_item("redirects", f.redirects)?;
        d.set_item(
            "url",
            format!("http://{}{}", f.url.host_header(), f.url.path),
        )?;
        Ok(d)
    }

    /// Starts services (`"echo"`, `"http=DIR"`, `"daytime:1013"`, ... as `tapir serve` takes
    /// them); returns a handle whose `stop()` stops them all.
    #[pyo3(signature = (*specs))]
    fn serve(&self, py: Python<'_>, specs: Vec<String>) -> PyResult<Services> {
        let held = self.held()?;
        if specs.is_empty() {
            return Err(value_error(format!(
                "name at least one service:\n{}",
                tapir_apps::services::help()
            )));
        }
        let mut parsed = Vec::new();
        for s in &specs {
            let spec: tapir_apps::services::ServiceSpec = s
                .parse()
                .map_err(|e: tapir_apps::services::SpecError| value_error(e.0))?;
            parsed.push(spec);
        }
        let h = held.clone();
        let running = py
            .detach(move || tapir_apps::serve::start_services(&h.node, &parsed))
            .map_err(app_error)?;
        Ok(Services {
            running: Mutex::new(Some(running)),
        })
    }

    /// Calls `callback(packet)` with every frame that matches `filter` (the `--trace`
    /// language: "tcp and port 80"), from a thread of its own; returns a handle to stop it.
    #[pyo3(signature = (callback, filter=None, queue=4096))]
    fn trace(
        &self,
        py: Python<'_>,
        callback: Py<PyAny>,
        filter: Option<&str>,
        queue: usize,
    ) -> PyResult<crate::trace::Trace> {
        let held = self.held()?;
        crate::trace::start(py, &held.node, callback, filter, queue)
    }

    /// A socket core (the `tapir.socket` class wraps it).
    #[pyo3(signature = (kind, proto=0))]
    fn _socket(&self, kind: i32, proto: i32) -> PyResult<crate::sock::Core> {
        crate::sock::Core::new(self.held()?, kind, proto)
    }

    fn __repr__(&self) -> String {
        match self.held() {
            Ok(h) => {
                let c = h.node.config();
                let ns = c
                    .netns
                    .as_deref()
                    .map(|n| format!(" netns={n}"))
                    .unwrap_or_default();
                format!(
                    "<tapir.Node {} tap={}{} queues={}>",
                    h.node.cidr(),
                    c.tap,
                    ns,
                    h.node.queues()
                )
            }
            Err(_) => "<tapir.Node closed>".into(),
        }
    }
}

/// Running services: `stop()` stops them (refusing new connections; the ones open finish).
#[pyclass(module = "tapir._tapir", frozen)]
pub struct Services {
    running: Mutex<Option<Vec<tapir_apps::services::Running>>>,
}

#[pymethods]
impl Services {
    /// What listens, e.g. `["echo/tcp:7", "echo/udp:7"]`.
    #[getter]
    fn labels(&self) -> Vec<String> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            .map(tapir_apps::serve::labels)
            .unwrap_or_default()
    }

    fn stop(&self, py: Python<'_>) {
        let r = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(r) = r {
            py.detach(move || r.iter().for_each(tapir_apps::services::Running::stop));
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.stop(py);
    }

    fn __repr__(&self) -> String {
        format!("<tapir.Services {}>", self.labels().join(" "))
    }
}

/// Writes what the clients print to Python's `sys.stdout`.
pub fn write_stdout(py: Python<'_>, text: &str) -> PyResult<()> {
    let sys = py.import("sys")?;
    let out = sys.getattr("stdout")?;
    out.call_method1("write", (text,))?;
    out.call_method0("flush")?;
    Ok(())
}
