//! `tapir perf`: an iperf3-compatible throughput server and client (TCP and UDP) over tapir's
//! sockets, so that stock `iperf3 -c <tapir>` and `iperf3 -s` work against it ([`proto`] has the
//! protocol, [`server`] and [`client`] the two roles; the data streams run on the workers,
//! [`stream`] for TCP and [`udp_stream`] for UDP).

mod client;
pub mod proto;
mod server;
mod stream;
pub mod udp;
mod udp_stream;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use engine::{Node, TcpListener, TcpStream};
use protocols::iface::SocketHandle;
use serde_json::{json, Value};

use proto::{state, Params};
use stream::StreamsApp;

/// How long a peer may stay silent on the control connection outside the running test.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// iperf3's defaults for a UDP test: 1 Mbit/s (`UDP_RATE`) of 1460-byte datagrams.
const UDP_DEFAULT_RATE: u64 = 1024 * 1024;
const UDP_DEFAULT_LEN: usize = 1460;
/// iperf3's bounds on a UDP datagram (`MIN_UDP_BLOCKSIZE`, `MAX_UDP_BLOCKSIZE`).
const UDP_MIN_LEN: usize = 16;
const UDP_MAX_LEN: usize = 65535 - 8 - 20;

/// `tapir perf` options (iperf3's names).
#[derive(Debug, Clone, Args)]
pub struct PerfOpts {
    /// Run as a server.
    #[arg(short = 's', long, conflicts_with = "client")]
    pub server: bool,
    /// Run as a client of the iperf3 server at HOST.
    #[arg(short = 'c', long, value_name = "HOST")]
    pub client: Option<Ipv4Addr>,
    /// Server port.
    #[arg(short = 'p', long, default_value_t = proto::DEFAULT_PORT)]
    pub port: u16,
    /// Seconds to transmit.
    #[arg(short = 't', long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub time: u64,
    /// Seconds at the start left out of the figures (slow start, warm-up), as iperf3's -O.
    #[arg(short = 'O', long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub omit: u64,
    /// Parallel streams.
    #[arg(short = 'P', long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=128))]
    pub parallel: u16,
    /// Reverse: the server sends, the client receives.
    #[arg(short = 'R', long)]
    pub reverse: bool,
    /// Client: a UDP test instead of TCP.
    #[arg(short = 'u', long)]
    pub udp: bool,
    /// Client, UDP: bits per second per stream, with an optional K, M or G suffix (decimal, as
    /// iperf3's); 0 is as fast as it goes (default 1M).
    #[arg(short = 'b', long, alias = "bandwidth", value_name = "RATE", value_parser = parse_rate)]
    pub bitrate: Option<u64>,
    /// Client, UDP: 64-bit sequence numbers in the datagrams' header.
    #[arg(long)]
    pub udp_counters_64bit: bool,
    /// Bytes per write/read (a UDP datagram's payload), with an optional K or M suffix (default
    /// 128K for TCP, 1460 for UDP).
    #[arg(short = 'l', long, value_parser = parse_len)]
    pub length: Option<usize>,
    /// Print the results as JSON.
    #[arg(short = 'J', long)]
    pub json: bool,
    /// Server: handle one test, then exit.
    #[arg(short = '1', long)]
    pub one_off: bool,
}

impl PerfOpts {
    /// Options that cannot make a test, said as a usage error (the caller exits 2).
    pub fn validate(&self) -> Result<(), String> {
        if self.bitrate.is_some() && !self.udp {
            return Err(
                "-b paces UDP tests only: add -u (tapir's TCP streams are not paced)".into(),
            );
        }
        if self.udp {
            let len = self.len();
            if !(UDP_MIN_LEN..=UDP_MAX_LEN).contains(&len) {
                return Err(format!(
                    "-l {len}: a UDP datagram must carry between {UDP_MIN_LEN} and {UDP_MAX_LEN} \
                     bytes (iperf3's limits)"
                ));
            }
        }
        Ok(())
    }

    fn len(&self) -> usize {
        let default = if self.udp {
            UDP_DEFAULT_LEN
        } else {
            proto::DEFAULT_LEN
        };
        self.length.unwrap_or(default)
    }

    /// What a client asks the server for.
    fn params(&self) -> Params {
        let default_rate = if self.udp { UDP_DEFAULT_RATE } else { 0 };
        Params {
            time: self.time,
            omit: self.omit,
            parallel: usize::from(self.parallel),
            len: self.len(),
            reverse: self.reverse,
            udp: self.udp,
            bandwidth: self.bitrate.unwrap_or(default_rate),
            udp_counters_64bit: self.udp_counters_64bit,
        }
    }
}

fn parse_len(s: &str) -> Result<usize, String> {
    let (num, mul) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1024),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    let n: usize = num
        .parse()
        .map_err(|_| format!("'{s}' is not a length (e.g. 128K)"))?;
    match n.checked_mul(mul) {
        Some(v) if (1..=16 << 20).contains(&v) => Ok(v),
        _ => Err(format!("length {s} must be between 1 and 16M")),
    }
}

/// A rate as iperf3 reads it (`unit_atof_rate`): decimal K, M, G and T suffixes.
fn parse_rate(s: &str) -> Result<u64, String> {
    let (num, mul) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1e3),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1e6),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 1e9),
        Some(b'T' | b't') => (&s[..s.len() - 1], 1e12),
        _ => (s, 1.0),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v * mul < u64::MAX as f64 => Ok((v * mul) as u64),
        _ => Err(format!(
            "'{s}' is not a rate in bits per second (e.g. 200M, or 0 for no limit)"
        )),
    }
}

/// What one test moved, from this side's point of view.
#[derive(Debug, Clone, PartialEq)]
pub struct TestReport {
    pub seconds: f64,
    pub streams: usize,
    pub reverse: bool,
    /// Bytes the sending side wrote, and what the receiving side read, summed over streams.
    pub sent: u64,
    pub received: u64,
    /// A UDP test: the datagrams sent, the receiver's jitter and loss.
    pub udp: Option<proto::UdpReport>,
    /// Bytes per write (a UDP datagram's payload).
    pub len: usize,
}

impl TestReport {
    /// The summary line of the `role` ("sender" or "receiver") side, in iperf3's layout.
    pub fn summary_line(&self, role: &str) -> String {
        let label = if self.streams > 1 { "SUM" } else { "  5" };
        let sender = role == "sender";
        let bytes = if sender { self.sent } else { self.received };
        match &self.udp {
            Some(u) => {
                let side = if sender { &u.sender } else { &u.receiver };
                proto::udp_summary_line(label, self.seconds, bytes, side, role)
            }
            None => proto::summary_line(label, self.seconds, bytes, role),
        }
    }

    pub fn to_json(&self, host: &str, port: u16) -> Value {
        let len = self.len;
        let sum = |bytes: u64, sender: bool| {
            json!({
                "start": 0,
                "end": self.seconds,
                "seconds": self.seconds,
                "bytes": bytes,
                "bits_per_second": rate(bytes, self.seconds),
                "sender": sender,
            })
        };
        let mut v = json!({
            "start": {
                "connecting_to": {"host": host, "port": port},
                "version": concat!("tapir ", env!("CARGO_PKG_VERSION")),
                "test_start": {
                    "protocol": if self.udp.is_some() { "UDP" } else { "TCP" },
                    "num_streams": self.streams,
                    "blksize": len,
                    "duration": self.seconds.round() as u64,
                    "reverse": i32::from(self.reverse),
                },
            },
            "intervals": [],
            "end": {
                "sum_sent": sum(self.sent, true),
                "sum_received": sum(self.received, false),
            },
        });
        if let Some(u) = self.udp.as_ref().map(|u| &u.receiver) {
            let mut s = sum(self.received, false);
            s["jitter_ms"] = json!(u.jitter * 1000.0);
            s["lost_packets"] = json!(u.lost);
            s["packets"] = json!(u.packets);
            s["lost_percent"] = json!(u.lost_percent());
            v["end"]["sum"] = s;
        }
        v
    }
}

fn rate(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 * 8.0 / seconds
    } else {
        0.0
    }
}

/// Runs the client or server the options ask for, printing to `out`.
pub fn run(node: &Node, opts: &PerfOpts, out: &mut dyn Write) -> Result<()> {
    if let Some(host) = opts.client {
        let r = client::client(node, opts, SocketAddrV4::new(host, opts.port))?;
        if opts.json {
            let v = r.to_json(&host.to_string(), opts.port);
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        } else {
            for role in ["sender", "receiver"] {
                writeln!(out, "{}", r.summary_line(role))?;
            }
        }
        return Ok(());
    }
    if !opts.server {
        bail!("say -s to run a server or -c HOST to run a client");
    }
    let listener = TcpListener::bind(node, opts.port)
        .with_context(|| format!("cannot listen on port {}", opts.port))?;
    if !opts.json {
        writeln!(out, "Server listening on {}", opts.port)?;
        out.flush()?;
    }
    loop {
        match server::serve_one(node, &listener, opts.port) {
            Ok(r) => {
                if opts.json {
                    let v = r.to_json("", opts.port);
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                } else {
                    let role = if r.reverse { "sender" } else { "receiver" };
                    writeln!(out, "{}", r.summary_line(role))?;
                }
                out.flush()?;
            }
            Err(e) => {
                if node.is_stopped() {
                    return Err(e);
                }
                eprintln!("tapir perf: test failed: {e:#}");
                if opts.one_off {
                    return Err(e);
                }
            }
        }
        if opts.one_off {
            return Ok(());
        }
    }
}

/// Runs the data phase on the workers that own the streams ([`stream`]) until `control`
/// returns (the test has ended), then until every stream has finished and closed. Returns the
/// seconds the test ran and the bytes per stream at its end.
fn run_streams(
    node: &Node,
    streams: Vec<TcpStream>,
    send: bool,
    len: usize,
    omit: Duration,
    control: impl FnOnce() -> Result<()>,
) -> Result<(f64, Vec<u64>)> {
    let shared = Arc::new(stream::Shared {
        counts: streams.iter().map(|_| AtomicU64::new(0)).collect(),
        stop: AtomicBool::new(false),
    });
    let counts = || -> Vec<u64> {
        shared
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    };
    let block = if send {
        stream::pattern(len)
    } else {
        Arc::from([])
    };
    let mut by_worker: BTreeMap<usize, Vec<(usize, SocketHandle)>> = BTreeMap::new();
    for (i, s) in streams.into_iter().enumerate() {
        let (w, h) = s.into_raw_parts();
        by_worker.entry(w).or_default().push((i, h));
    }
    let workers: Vec<usize> = by_worker.keys().copied().collect();
    let (done_tx, done_rx) = mpsc::channel();
    let start = Instant::now();
    for (w, handles) in by_worker {
        let app = StreamsApp::new(shared.clone(), block.clone(), handles, done_tx.clone());
        node.spawn_app(w, Box::new(app))?;
    }
    // iperf3's --omit: what the first `omit` seconds moved is left out, and so is their time.
    let (ended_tx, ended_rx) = mpsc::channel::<()>();
    let omitted = std::thread::scope(|scope| {
        let snapshot = (!omit.is_zero()).then(|| {
            let counts = &counts;
            scope.spawn(move || match ended_rx.recv_timeout(omit) {
                Err(mpsc::RecvTimeoutError::Timeout) => Some(counts()),
                _ => None,
            })
        });
        let r = control();
        drop(ended_tx);
        let omitted = snapshot.and_then(|h| h.join().ok().flatten());
        (r, omitted)
    });
    let (r, omitted) = omitted;
    let seconds = (start.elapsed().saturating_sub(omit)).as_secs_f64();
    let mut at_end = counts();
    shared.stop.store(true, Ordering::Release);
    for &w in &workers {
        node.wake_worker(w);
    }
    drop(done_tx);
    for _ in &workers {
        // An error: the node stopped, and its workers dropped the apps.
        if done_rx.recv().is_err() {
            break;
        }
    }
    if send {
        // What a sender wrote includes the end of its last block.
        at_end = counts();
    }
    if let Some(before) = omitted {
        for (end, early) in at_end.iter_mut().zip(before) {
            *end = end.saturating_sub(early);
        }
    }
    r.map(|()| (seconds, at_end))
}

fn server_error(code: i8) -> anyhow::Error {
    match code {
        state::ACCESS_DENIED => anyhow!("the server is busy running a test: try again later"),
        state::SERVER_ERROR => anyhow!("the server reported an error"),
        state::SERVER_TERMINATE => anyhow!("the server terminated the test"),
        state::CLIENT_TERMINATE => anyhow!("the client terminated the test"),
        s => anyhow!("unexpected iperf3 state {s} on the control connection"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_parse_like_iperf3() {
        assert_eq!(parse_len("128K"), Ok(131072));
        assert_eq!(parse_len("1M"), Ok(1 << 20));
        assert_eq!(parse_len("1000"), Ok(1000));
        assert!(parse_len("0").is_err());
        assert!(parse_len("x").is_err());
    }
}
