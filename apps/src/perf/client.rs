//! `tapir perf -c`: one test against an iperf3 server, TCP or UDP, either direction or both.

use std::io::Write;
use std::net::{Shutdown, SocketAddrV4};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context, Result};
use engine::{Node, TcpStream, UdpSocket};

use super::interval::{Clock, Interval, Shared};
use super::proto::{self, state, Params, StreamResult, COOKIE_SIZE};
use super::report::{self, CpuClock, Details};
use super::udp::{self, RecvStats};
use super::{server_error, stream, udp_stream, PerfOpts, TestReport, CONTROL_TIMEOUT};

/// A UDP stream's connect datagram is sent this many times, waiting this long for the reply.
const UDP_CONNECT_TRIES: u32 = 3;
const UDP_CONNECT_WAIT: Duration = Duration::from_secs(1);

/// The data streams of a test, before and after it runs.
enum Streams {
    Tcp(Vec<TcpStream>),
    Udp(Vec<UdpSocket>),
}

enum Outcome {
    Tcp(f64, Vec<u64>),
    Udp(f64, Vec<RecvStats>),
}

/// Runs one test against the iperf3 server at `server`; interval lines (text mode) go to
/// `out` as they end.
pub fn client(
    node: &Node,
    opts: &PerfOpts,
    server: SocketAddrV4,
    out: &mut dyn Write,
) -> Result<TestReport> {
    let mut ctrl = TcpStream::connect_timeout(node, server, Some(CONTROL_TIMEOUT))
        .with_context(|| format!("cannot connect to the iperf3 server at {server}"))?;
    ctrl.set_nodelay(true)?;
    ctrl.set_read_timeout(Some(CONTROL_TIMEOUT));
    let seed = node.now().total_micros() ^ (u64::from(std::process::id()) << 32);
    let cookie = proto::make_cookie(seed | 1);
    ctrl.write_all(&cookie)?;
    let params = opts.params();
    let mut details = Details {
        cookie: String::from_utf8_lossy(&cookie[..COOKIE_SIZE - 1]).into_owned(),
        started: SystemTime::now(),
        mss: node.config().stack.mtu.saturating_sub(40),
        ..Details::default()
    };
    let cpu = CpuClock::start();
    let mut streams = if params.udp {
        Streams::Udp(Vec::new())
    } else {
        Streams::Tcp(Vec::new())
    };
    let mut outcome: Option<Outcome> = None;
    // A UDP stream whose connect reply never came, and a state the server sent meanwhile
    // (see `udp_connect`).
    let mut unanswered = false;
    let mut early: Option<i8> = None;
    let mut bound: Vec<UdpSocket> = Vec::new();
    loop {
        let next = match early.take() {
            Some(s) => Ok(s),
            None => proto::read_state(&mut ctrl),
        };
        let s = next.map_err(|e| {
            if unanswered {
                anyhow!(
                    "the server at {server} did not answer a UDP stream's connect datagram: is \
                     a firewall dropping UDP to port {}? ({e})",
                    server.port()
                )
            } else {
                anyhow!("the server closed the control connection: {e}")
            }
        })?;
        match s {
            state::PARAM_EXCHANGE => proto::write_json(&mut ctrl, &params.to_json())?,
            state::CREATE_STREAMS => {
                for i in 0..params.streams() {
                    // --cport: the streams take consecutive ports from it.
                    let cport = opts.cport.map(|p| p.saturating_add(i as u16));
                    match &mut streams {
                        Streams::Tcp(v) => {
                            let timeout = Some(CONTROL_TIMEOUT);
                            let mut d = match cport {
                                Some(p) => TcpStream::connect_from_port(node, p, server, timeout),
                                None => TcpStream::connect_timeout(node, server, timeout),
                            }
                            .context("cannot open a data connection")?;
                            if opts.no_delay {
                                d.set_nodelay(true)?;
                            }
                            d.write_all(&cookie)?;
                            details.connected.push((d.local_addr(), d.peer_addr()));
                            v.push(d);
                        }
                        Streams::Udp(v) => {
                            let port = cport.unwrap_or(0);
                            let (sock, answered) = udp_connect(node, server, port, &mut ctrl)?;
                            unanswered |= answered == Answer::None;
                            if let Answer::ServerMovedOn(s) = answered {
                                early = Some(s);
                            }
                            details.connected.push((sock.local_addr(), server));
                            v.push(sock);
                        }
                    }
                }
            }
            state::TEST_START => {}
            state::TEST_RUNNING => {
                let clock = Clock {
                    time: Duration::from_secs(params.time),
                    omit: Duration::from_secs(params.omit),
                    every: (opts.interval > 0.0).then(|| Duration::from_secs_f64(opts.interval)),
                    budget: params.limit().is_some(),
                };
                let mut intervals = Vec::new();
                let json = opts.json;
                let sending: Vec<bool> = (0..params.streams())
                    .map(|i| params.client_sends(i))
                    .collect();
                let mut wait = |shared: &Shared| {
                    let mut each = |i: &Interval| {
                        if !json {
                            for line in report::interval_lines(i, &sending, &params) {
                                let _ = writeln!(out, "{line}");
                            }
                            let _ = out.flush();
                        }
                    };
                    let interrupt = &opts.interrupt;
                    let over =
                        || node.is_stopped() || interrupt.load(std::sync::atomic::Ordering::SeqCst);
                    intervals = clock.run(shared, &over, &mut each);
                    Ok(())
                };
                let omit = clock.omit;
                let r = match std::mem::replace(&mut streams, Streams::Tcp(Vec::new())) {
                    Streams::Tcp(v) => {
                        let v = v
                            .into_iter()
                            .enumerate()
                            .map(|(i, s)| (s, params.client_sends(i)))
                            .collect();
                        let limit = params.limit();
                        let (secs, bytes) =
                            stream::run(node, v, params.len, omit, limit, &mut wait)?;
                        Outcome::Tcp(secs, bytes)
                    }
                    Streams::Udp(socks) => {
                        let (secs, stats) = run_udp(node, &socks, &params, server, &mut wait)?;
                        // The sockets stay bound until the test is over: a sender's datagrams
                        // still on their way would draw port unreachable, and a stock server
                        // whose connected socket hears that aborts the test.
                        bound = socks;
                        Outcome::Udp(secs, stats)
                    }
                };
                details.intervals = intervals;
                proto::write_state(&mut ctrl, state::TEST_END)?;
                outcome = Some(r);
            }
            state::EXCHANGE_RESULTS => {
                let outcome = outcome.take().ok_or_else(|| server_error(s))?;
                let ids: Vec<u64> = (0..params.streams()).map(proto::stream_id).collect();
                let sending: Vec<bool> = (0..params.streams())
                    .map(|i| params.client_sends(i))
                    .collect();
                let (seconds, ours) = match &outcome {
                    Outcome::Tcp(seconds, bytes) => {
                        (*seconds, tcp_results(bytes, &ids, &sending, *seconds))
                    }
                    Outcome::Udp(seconds, stats) => (
                        *seconds,
                        udp_stream::results(stats, &ids, &sending, *seconds),
                    ),
                };
                details.cpu = cpu.utilization();
                let mut results = proto::results_json(&ours);
                details.cpu.put(&mut results);
                proto::write_json(&mut ctrl, &results)?;
                let remote = proto::read_json(&mut ctrl)?;
                let theirs = proto::parse_results(&remote).map_err(|e| anyhow!(e))?;
                let mut report = TestReport::new(&ours, &theirs, seconds, &params, true);
                details.ours = ours;
                details.theirs = theirs;
                details.remote = remote;
                report.details = details;
                // DISPLAY_RESULTS follows; answer IPERF_DONE and let the FIN go out.
                let s = proto::read_state(&mut ctrl)?;
                if s != state::DISPLAY_RESULTS {
                    return Err(server_error(s));
                }
                proto::write_state(&mut ctrl, state::IPERF_DONE)?;
                ctrl.shutdown(Shutdown::Write)?;
                let _ = ctrl.wait_closed(Some(Duration::from_secs(2)));
                drop(bound);
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

fn tcp_results(bytes: &[u64], ids: &[u64], sending: &[bool], seconds: f64) -> Vec<StreamResult> {
    bytes
        .iter()
        .zip(ids)
        .zip(sending)
        .map(|((&bytes, &id), &sender)| StreamResult {
            id,
            sender,
            bytes,
            seconds,
            ..Default::default()
        })
        .collect()
}

/// How a UDP stream's connect exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Replied,
    /// No reply, but the server sent this state on the control connection: it took the stream
    /// (its reply was lost) and the test goes on.
    ServerMovedOn(i8),
    None,
}

/// Opens one UDP stream as iperf3's client does (`iperf_udp_connect`): a socket of its own (on
/// `port`, 0: an ephemeral one) that sends the connect datagram to the server's port and waits
/// for the reply. Without a reply it looks at the control connection first: a server that took
/// the stream (and whose reply was lost) may be running the test already, and would count a
/// repeat as a data datagram with a garbage sequence number. Otherwise the datagram goes again
/// (a stock server ignores what reaches a stream before the test runs).
fn udp_connect(
    node: &Node,
    server: SocketAddrV4,
    port: u16,
    ctrl: &mut TcpStream,
) -> Result<(UdpSocket, Answer)> {
    let mut sock = UdpSocket::bind(node, port)
        .with_context(|| format!("cannot bind UDP port {port} for a stream"))?;
    sock.set_read_timeout(Some(UDP_CONNECT_WAIT));
    let mut buf = [0u8; 64];
    let mut answer = Answer::None;
    for _ in 0..UDP_CONNECT_TRIES {
        sock.send_to(&udp::CONNECT_MSG.to_ne_bytes(), server)?;
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if from == server && n == 4 {
                return Ok((sock, Answer::Replied));
            }
        }
        ctrl.set_read_timeout(Some(UDP_CONNECT_WAIT));
        let moved_on = proto::read_state(ctrl);
        ctrl.set_read_timeout(Some(CONTROL_TIMEOUT));
        if let Ok(s) = moved_on {
            answer = Answer::ServerMovedOn(s);
            break;
        }
    }
    Ok((sock, answer))
}

/// The data phase of a UDP test on the workers: each stream's socket, to the server's port.
fn run_udp(
    node: &Node,
    socks: &[UdpSocket],
    params: &Params,
    server: SocketAddrV4,
    wait: impl FnOnce(&Shared) -> Result<()>,
) -> Result<(f64, Vec<RecvStats>)> {
    let specs = socks
        .iter()
        .enumerate()
        .map(|(index, s)| {
            let (w, handle) = s.raw_parts_for(server);
            let send = params.client_sends(index);
            let peer = server;
            let spec = udp_stream::StreamSpec {
                index,
                handle,
                peer,
                send,
            };
            (w, spec)
        })
        .collect();
    let test = udp_stream::UdpTest {
        len: params.len,
        rate: params.bandwidth,
        wide: params.udp_counters_64bit,
        omit: Duration::from_secs(params.omit),
        limit: params.limit(),
    };
    udp_stream::run(node, specs, test, wait)
}
