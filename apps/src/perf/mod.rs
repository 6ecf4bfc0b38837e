//! `tapir perf`: an iperf3-compatible TCP throughput server and client over tapir's sockets, so
//! that stock `iperf3 -c <tapir>` and `iperf3 -s` work against it ([`proto`] has the protocol).

pub mod proto;
mod stream;
pub mod udp;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use engine::{Node, TcpListener, TcpStream, UdpSocket};
use protocols::iface::SocketHandle;
use serde_json::{json, Value};

use proto::{state, Params, StreamResult, COOKIE_SIZE};
use stream::StreamsApp;

/// How long a peer may stay silent on the control connection outside the running test.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Bytes per write/read, with an optional K or M suffix (default 128K).
    #[arg(short = 'l', long, value_parser = parse_len, default_value = "128K")]
    pub length: usize,
    /// Print the results as JSON.
    #[arg(short = 'J', long)]
    pub json: bool,
    /// Server: handle one test, then exit.
    #[arg(short = '1', long)]
    pub one_off: bool,
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

/// What one test moved, from this side's point of view.
#[derive(Debug, Clone, PartialEq)]
pub struct TestReport {
    pub seconds: f64,
    pub streams: usize,
    pub reverse: bool,
    /// Bytes the sending side wrote, and what the receiving side read, summed over streams.
    pub sent: u64,
    pub received: u64,
    /// A UDP test: the receiver's jitter and loss.
    pub udp: Option<proto::UdpSummary>,
}

impl TestReport {
    pub fn to_json(&self, host: &str, port: u16, len: usize) -> Value {
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
        if let Some(u) = &self.udp {
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
        let r = client(node, opts, SocketAddrV4::new(host, opts.port))?;
        if opts.json {
            let v = r.to_json(&host.to_string(), opts.port, opts.length);
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        } else {
            let label = if r.streams > 1 { "SUM" } else { "  5" };
            writeln!(
                out,
                "{}",
                proto::summary_line(label, r.seconds, r.sent, "sender")
            )?;
            writeln!(
                out,
                "{}",
                proto::summary_line(label, r.seconds, r.received, "receiver")
            )?;
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
        match serve_one(node, &listener, opts.port) {
            Ok(r) => {
                if opts.json {
                    let v = r.to_json("", opts.port, opts.length);
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                } else {
                    let (bytes, role) = if r.reverse {
                        (r.sent, "sender")
                    } else {
                        (r.received, "receiver")
                    };
                    let label = if r.streams > 1 { "SUM" } else { "  5" };
                    let line = match &r.udp {
                        Some(u) => proto::udp_summary_line(label, r.seconds, bytes, u, role),
                        None => proto::summary_line(label, r.seconds, bytes, role),
                    };
                    writeln!(out, "{line}")?;
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

/// Handles one test from a client that connects to `listener`.
fn serve_one(node: &Node, listener: &TcpListener, port: u16) -> Result<TestReport> {
    let (mut ctrl, peer) = listener.accept()?;
    ctrl.set_read_timeout(Some(CONTROL_TIMEOUT));
    ctrl.set_nodelay(true)?;
    let mut cookie = [0u8; COOKIE_SIZE];
    ctrl.read_exact(&mut cookie).context("reading the cookie")?;
    proto::write_state(&mut ctrl, state::PARAM_EXCHANGE)?;
    let params = proto::read_json(&mut ctrl).context("reading the parameters")?;
    let params = Params::from_json(&params).map_err(|e| {
        // The stock client prints "an option you are trying to set is not implemented yet".
        // Sent and acknowledged before the server moves on (with -1 it exits, and the node's
        // end would reset the connection before the client had read why).
        let _ = proto::write_server_error(&mut ctrl, proto::ierr::UNIMP, 0);
        let _ = ctrl.shutdown(Shutdown::Write);
        let _ = ctrl.wait_closed(Some(CONTROL_TIMEOUT));
        anyhow!("client {peer}: {e}")
    })?;
    if params.udp {
        return serve_udp(node, ctrl, port, &params);
    }
    proto::write_state(&mut ctrl, state::CREATE_STREAMS)?;
    let mut streams = Vec::new();
    while streams.len() < params.parallel {
        let (mut s, _) = listener
            .accept_timeout(Some(CONTROL_TIMEOUT))
            .context("waiting for the data connections")?;
        s.set_read_timeout(Some(CONTROL_TIMEOUT));
        let mut c = [0u8; COOKIE_SIZE];
        if s.read_exact(&mut c).is_ok() && c == cookie {
            streams.push(s);
        } else {
            // Another client trying to start a test while this one runs (iperf3 denies it).
            let _ = proto::write_state(&mut s, state::ACCESS_DENIED);
        }
    }
    proto::write_state(&mut ctrl, state::TEST_START)?;
    proto::write_state(&mut ctrl, state::TEST_RUNNING)?;
    let send = params.reverse;
    let limit = Duration::from_secs(params.time + params.omit) + CONTROL_TIMEOUT;
    let n_streams = streams.len();
    // On TEST_END the apps close the data streams, as iperf3's server does: a client blocked
    // reading a whole block sees the end of the stream instead of waiting for more.
    let omit = Duration::from_secs(params.omit);
    let (seconds, bytes) = run_streams(node, streams, send, params.len, omit, || {
        ctrl.set_read_timeout(Some(limit));
        match proto::read_state(&mut ctrl).context("waiting for the end of the test")? {
            state::TEST_END => Ok(()),
            s => Err(server_error(s)),
        }
    })?;
    ctrl.set_read_timeout(Some(CONTROL_TIMEOUT));
    proto::write_state(&mut ctrl, state::EXCHANGE_RESULTS)?;
    let theirs = proto::read_json(&mut ctrl).context("reading the client's results")?;
    let theirs = proto::parse_results(&theirs).map_err(|e| anyhow!(e))?;
    let ours: Vec<StreamResult> = bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| StreamResult {
            // Answer with the client's own stream ids, in order: they are what it looks up.
            id: theirs.get(i).map_or(proto::stream_id(i), |t| t.id),
            bytes: b,
            retransmits: 0,
            seconds,
            ..Default::default()
        })
        .collect();
    proto::write_json(&mut ctrl, &proto::results_json(send, &ours))?;
    proto::write_state(&mut ctrl, state::DISPLAY_RESULTS)?;
    // IPERF_DONE, or the client simply closing: either ends the test.
    let _ = proto::read_state(&mut ctrl);
    let our_total: u64 = bytes.iter().sum();
    let their_total: u64 = theirs.iter().map(|t| t.bytes).sum();
    let (sent, received) = if send {
        (our_total, their_total)
    } else {
        (their_total, our_total)
    };
    Ok(TestReport {
        seconds,
        streams: n_streams,
        reverse: params.reverse,
        sent,
        received,
        udp: None,
    })
}

/// The rest of a UDP test ([`udp`]) after the parameters: the client's streams connect to
/// `port` over UDP, then the datagrams flow one way until the client's TEST_END.
fn serve_udp(node: &Node, mut ctrl: TcpStream, port: u16, params: &Params) -> Result<TestReport> {
    let mut sock = UdpSocket::bind(node, port)
        .with_context(|| format!("cannot bind UDP port {port} for the test"))?;
    proto::write_state(&mut ctrl, state::CREATE_STREAMS)?;
    // Each client stream's connect datagram, answered; a repeat from a known stream again.
    sock.set_read_timeout(Some(CONTROL_TIMEOUT));
    let mut peers: Vec<SocketAddrV4> = Vec::new();
    let mut buf = vec![0u8; 65536];
    while peers.len() < params.parallel {
        let (n, from) = sock
            .recv_from(&mut buf)
            .context("waiting for the UDP streams' connect datagrams")?;
        if !udp::is_connect_msg(&buf[..n]) {
            continue;
        }
        if udp::stream_index(&peers, from).is_none() {
            peers.push(from);
        }
        sock.send_to(&udp::connect_reply(), from)?;
    }
    proto::write_state(&mut ctrl, state::TEST_START)?;
    proto::write_state(&mut ctrl, state::TEST_RUNNING)?;
    let send = params.reverse;
    let wide = params.udp_counters_64bit;
    let omit = Duration::from_secs(params.omit);
    let limit = Duration::from_secs(params.time + params.omit) + CONTROL_TIMEOUT;
    sock.set_read_timeout(Some(Duration::from_millis(20)));
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let (r, stats, sent_counts) = std::thread::scope(|scope| {
        let sock = &sock;
        let peers = &peers;
        let stop = &stop;
        let worker = scope.spawn(move || {
            if send {
                (Vec::new(), udp_send(sock, peers, params, stop))
            } else {
                (udp_receive(sock, peers, wide, omit, stop), Vec::new())
            }
        });
        ctrl.set_read_timeout(Some(limit));
        let r = match proto::read_state(&mut ctrl).context("waiting for the end of the test") {
            Ok(state::TEST_END) => Ok(()),
            Ok(s) => Err(server_error(s)),
            Err(e) => Err(e),
        };
        stop.store(true, Ordering::Release);
        let (stats, sent) = worker.join().unwrap_or_default();
        (r, stats, sent)
    });
    r?;
    let seconds = start.elapsed().saturating_sub(omit).as_secs_f64();
    ctrl.set_read_timeout(Some(CONTROL_TIMEOUT));
    proto::write_state(&mut ctrl, state::EXCHANGE_RESULTS)?;
    let theirs = proto::read_json(&mut ctrl).context("reading the client's results")?;
    let theirs = proto::parse_results(&theirs).map_err(|e| anyhow!(e))?;
    let id = |i: usize| theirs.get(i).map_or(proto::stream_id(i), |t| t.id);
    let ours: Vec<StreamResult> = if send {
        sent_counts
            .iter()
            .enumerate()
            .map(|(i, &(bytes, packets))| StreamResult {
                id: id(i),
                bytes,
                seconds,
                packets,
                ..Default::default()
            })
            .collect()
    } else {
        stats
            .iter()
            .enumerate()
            .map(|(i, s)| StreamResult {
                id: id(i),
                bytes: s.bytes - s.omitted_bytes,
                seconds,
                jitter: s.jitter,
                errors: s.errors,
                omitted_errors: s.omitted_errors,
                packets: s.packets,
                omitted_packets: s.omitted_packets,
                ..Default::default()
            })
            .collect()
    };
    proto::write_json(&mut ctrl, &proto::results_json(send, &ours))?;
    proto::write_state(&mut ctrl, state::DISPLAY_RESULTS)?;
    let _ = proto::read_state(&mut ctrl);
    let our_total: u64 = ours.iter().map(|s| s.bytes).sum();
    let their_total: u64 = theirs.iter().map(|t| t.bytes).sum();
    let (sent, received) = if send {
        (our_total, their_total)
    } else {
        (their_total, our_total)
    };
    let receiver = if send { &theirs } else { &ours };
    Ok(TestReport {
        seconds,
        streams: peers.len(),
        reverse: params.reverse,
        sent,
        received,
        udp: Some(proto::UdpSummary::of(receiver)),
    })
}

/// Receives the streams' datagrams until `stop`; each stream's figures, by stream index.
fn udp_receive(
    sock: &UdpSocket,
    peers: &[SocketAddrV4],
    wide: bool,
    omit: Duration,
    stop: &AtomicBool,
) -> Vec<udp::RecvStats> {
    let mut stats = vec![udp::RecvStats::default(); peers.len()];
    let mut buf = vec![0u8; 65536];
    let start = Instant::now();
    let mut omitting = !omit.is_zero();
    while !stop.load(Ordering::Acquire) {
        if omitting && start.elapsed() >= omit {
            omitting = false;
            stats.iter_mut().for_each(udp::RecvStats::end_omit);
        }
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue; // the read timeout: look at the stop flag again
        };
        let arrival = udp::wall_clock().as_secs_f64();
        let Some(i) = udp::stream_index(peers, from) else {
            continue;
        };
        // A repeated connect datagram is not data.
        if udp::is_connect_msg(&buf[..n]) {
            continue;
        }
        if let Some((sent, count)) = udp::parse_header(&buf[..n], wide) {
            stats[i].on_datagram(n, count, sent, arrival);
        }
    }
    stats
}

/// Sends `len`-byte datagrams to every stream, paced to the client's rate per stream, until
/// `stop`; (bytes, datagrams) sent per stream.
fn udp_send(
    sock: &UdpSocket,
    peers: &[SocketAddrV4],
    params: &Params,
    stop: &AtomicBool,
) -> Vec<(u64, u64)> {
    let wide = params.udp_counters_64bit;
    let len = params.len.max(udp::header_len(wide));
    let mut block = stream::pattern(len).to_vec();
    let mut pacers: Vec<udp::Pacer> = peers
        .iter()
        .map(|_| udp::Pacer::new(params.bandwidth))
        .collect();
    let mut counts = vec![(0u64, 0u64); peers.len()];
    while !stop.load(Ordering::Acquire) {
        let mut soonest = Duration::from_millis(1);
        for (i, &peer) in peers.iter().enumerate() {
            let wait = pacers[i].wait();
            if !wait.is_zero() {
                soonest = soonest.min(wait);
                continue;
            }
            let (bytes, packets) = &mut counts[i];
            udp::write_header(&mut block, udp::wall_clock(), *packets + 1, wide);
            match sock.send_to(&block, peer) {
                Ok(_) => {
                    *packets += 1;
                    *bytes += len as u64;
                    pacers[i].sent(len);
                    soonest = Duration::ZERO;
                }
                // The queue is full: try again in a moment.
                Err(_) => soonest = soonest.min(Duration::from_micros(100)),
            }
        }
        if !soonest.is_zero() {
            std::thread::sleep(soonest);
        }
    }
    counts
}

/// Runs one test against the iperf3 server at `server`.
fn client(node: &Node, opts: &PerfOpts, server: SocketAddrV4) -> Result<TestReport> {
    let mut ctrl = TcpStream::connect_timeout(node, server, Some(CONTROL_TIMEOUT))
        .with_context(|| format!("cannot connect to the iperf3 server at {server}"))?;
    ctrl.set_nodelay(true)?;
    ctrl.set_read_timeout(Some(CONTROL_TIMEOUT));
    let seed = node.now().total_micros() ^ (u64::from(std::process::id()) << 32);
    let cookie = proto::make_cookie(seed | 1);
    ctrl.write_all(&cookie)?;
    let params = Params {
        time: opts.time,
        omit: opts.omit,
        parallel: usize::from(opts.parallel),
        len: opts.length,
        reverse: opts.reverse,
        udp: false,
        bandwidth: 0,
        udp_counters_64bit: false,
    };
    let mut streams = Vec::new();
    let mut outcome: Option<(f64, Vec<u64>)> = None;
    loop {
        let s = proto::read_state(&mut ctrl).context("the server closed the control connection")?;
        match s {
            state::PARAM_EXCHANGE => proto::write_json(&mut ctrl, &params.to_json())?,
            state::CREATE_STREAMS => {
                for _ in 0..params.parallel {
                    let mut d = TcpStream::connect_timeout(node, server, Some(CONTROL_TIMEOUT))
                        .context("cannot open a data connection")?;
                    d.write_all(&cookie)?;
                    streams.push(d);
                }
            }
            state::TEST_START => {}
            state::TEST_RUNNING => {
                let time = Duration::from_secs(params.time);
                let streams = std::mem::take(&mut streams);
                let omit = Duration::from_secs(params.omit);
                let r = run_streams(node, streams, !params.reverse, params.len, omit, || {
                    std::thread::sleep(time + omit);
                    Ok(())
                })?;
                proto::write_state(&mut ctrl, state::TEST_END)?;
                outcome = Some(r);
            }
            state::EXCHANGE_RESULTS => {
                let (seconds, bytes) = outcome.take().ok_or_else(|| server_error(s))?;
                let ours: Vec<StreamResult> = bytes
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| StreamResult {
                        id: proto::stream_id(i),
                        bytes: b,
                        retransmits: 0,
                        seconds,
                        ..Default::default()
                    })
                    .collect();
                proto::write_json(&mut ctrl, &proto::results_json(!params.reverse, &ours))?;
                let theirs =
                    proto::parse_results(&proto::read_json(&mut ctrl)?).map_err(|e| anyhow!(e))?;
                let our_total: u64 = bytes.iter().sum();
                let their_total: u64 = theirs.iter().map(|t| t.bytes).sum();
                let (sent, received) = if params.reverse {
                    (their_total, our_total)
                } else {
                    (our_total, their_total)
                };
                let report = TestReport {
                    seconds,
                    streams: params.parallel,
                    reverse: params.reverse,
                    sent,
                    received,
                    udp: None,
                };
                // DISPLAY_RESULTS follows; answer IPERF_DONE and let the FIN go out.
                let s = proto::read_state(&mut ctrl)?;
                if s != state::DISPLAY_RESULTS {
                    return Err(server_error(s));
                }
                proto::write_state(&mut ctrl, state::IPERF_DONE)?;
                ctrl.shutdown(Shutdown::Write)?;
                let _ = ctrl.wait_closed(Some(Duration::from_secs(2)));
                return Ok(report);
            }
            state::SERVER_ERROR => {
                let detail = match proto::read_server_error(&mut ctrl) {
                    Ok((proto::ierr::UNIMP, _)) => {
                        "an option this test asks for is not implemented there".to_string()
                    }
                    Ok((proto::ierr::ACCESS_DENIED, _)) => {
                        "the server is busy running a test: try again later".to_string()
                    }
                    Ok((i_errno, 0)) => format!("iperf3 error code {i_errno}"),
                    Ok((i_errno, errno)) => {
                        format!("iperf3 error code {i_errno} (errno {errno})")
                    }
                    Err(_) => "no error code came with it".to_string(),
                };
                return Err(anyhow!("the server reported an error: {detail}"));
            }
            s => return Err(server_error(s)),
        }
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
