//! `tapir perf -c`: one test against an iperf3 server, TCP or UDP, either direction or both.

use std::io::Write;
use std::net::{Shutdown, SocketAddrV4};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use engine::{Node, TcpStream, UdpSocket};

use super::proto::{self, state, Params, StreamResult};
use super::udp::{self, RecvStats};
use super::{server_error, stream, udp_stream, PerfOpts, TestReport, CONTROL_TIMEOUT};

/// A UDP stream's connect datagram is sent this many times before the client gives up.
const UDP_CONNECT_TRIES: u32 = 3;

/// The data streams of a test, before and after it runs.
enum Streams {
    Tcp(Vec<TcpStream>),
    Udp(Vec<UdpSocket>),
}

enum Outcome {
    Tcp(f64, Vec<u64>),
    Udp(f64, Vec<RecvStats>),
}

/// Runs one test against the iperf3 server at `server`.
pub fn client(node: &Node, opts: &PerfOpts, server: SocketAddrV4) -> Result<TestReport> {
    let mut ctrl = TcpStream::connect_timeout(node, server, Some(CONTROL_TIMEOUT))
        .with_context(|| format!("cannot connect to the iperf3 server at {server}"))?;
    ctrl.set_nodelay(true)?;
    ctrl.set_read_timeout(Some(CONTROL_TIMEOUT));
    let seed = node.now().total_micros() ^ (u64::from(std::process::id()) << 32);
    let cookie = proto::make_cookie(seed | 1);
    ctrl.write_all(&cookie)?;
    let params = opts.params();
    let mut streams = if params.udp {
        Streams::Udp(Vec::new())
    } else {
        Streams::Tcp(Vec::new())
    };
    let mut outcome: Option<Outcome> = None;
    loop {
        let s = proto::read_state(&mut ctrl).context("the server closed the control connection")?;
        match s {
            state::PARAM_EXCHANGE => proto::write_json(&mut ctrl, &params.to_json())?,
            state::CREATE_STREAMS => {
                for _ in 0..params.streams() {
                    match &mut streams {
                        Streams::Tcp(v) => {
                            let mut d =
                                TcpStream::connect_timeout(node, server, Some(CONTROL_TIMEOUT))
                                    .context("cannot open a data connection")?;
                            d.write_all(&cookie)?;
                            v.push(d);
                        }
                        Streams::Udp(v) => v.push(udp_connect(node, server)?),
                    }
                }
            }
            state::TEST_START => {}
            state::TEST_RUNNING => {
                let time = Duration::from_secs(params.time);
                let omit = Duration::from_secs(params.omit);
                let wait = || {
                    std::thread::sleep(time + omit);
                    Ok(())
                };
                let r = match std::mem::replace(&mut streams, Streams::Tcp(Vec::new())) {
                    Streams::Tcp(v) => {
                        let v = v
                            .into_iter()
                            .enumerate()
                            .map(|(i, s)| (s, params.client_sends(i)))
                            .collect();
                        let (secs, bytes) = stream::run(node, v, params.len, omit, wait)?;
                        Outcome::Tcp(secs, bytes)
                    }
                    Streams::Udp(socks) => {
                        let (secs, stats) = run_udp(node, &socks, &params, server, wait)?;
                        // The sockets stay bound until the apps have stopped.
                        drop(socks);
                        Outcome::Udp(secs, stats)
                    }
                };
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
                proto::write_json(&mut ctrl, &proto::results_json(&ours))?;
                let theirs =
                    proto::parse_results(&proto::read_json(&mut ctrl)?).map_err(|e| anyhow!(e))?;
                let report = TestReport::new(&ours, &theirs, seconds, &params, true);
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

/// Opens one UDP stream as iperf3's client does (`iperf_udp_connect`): a socket of its own
/// that sends the connect datagram to the server's port and waits for the reply.
fn udp_connect(node: &Node, server: SocketAddrV4) -> Result<UdpSocket> {
    let mut sock = UdpSocket::bind(node, 0).context("cannot bind a UDP socket for a stream")?;
    sock.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 64];
    for _ in 0..UDP_CONNECT_TRIES {
        sock.send_to(&udp::CONNECT_MSG.to_ne_bytes(), server)?;
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if from == server && n == 4 {
                return Ok(sock);
            }
        }
    }
    Err(anyhow!(
        "the server at {server} did not answer the UDP stream's connect datagram: is a \
         firewall dropping UDP to port {}?",
        server.port()
    ))
}

/// The data phase of a UDP test on the workers: each stream's socket, to the server's port.
fn run_udp(
    node: &Node,
    socks: &[UdpSocket],
    params: &Params,
    server: SocketAddrV4,
    wait: impl FnOnce() -> Result<()>,
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
    };
    udp_stream::run(node, specs, test, wait)
}
