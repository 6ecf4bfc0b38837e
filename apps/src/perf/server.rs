//! `tapir perf -s`: one test at a time from an iperf3 client, TCP or UDP, either direction or
//! both (`--bidir`).

use std::io::Read;
use std::net::{Shutdown, SocketAddrV4};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context, Result};
use engine::{Node, TcpListener, TcpStream, UdpSocket};

use super::proto::{self, state, Params, StreamResult, COOKIE_SIZE};
use super::report::{CpuClock, Details};
use super::{server_error, stream, udp, udp_stream, TestReport, CONTROL_TIMEOUT};

/// Handles one test from a client that connects to `listener`.
pub fn serve_one(node: &Node, listener: &TcpListener, port: u16) -> Result<TestReport> {
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
    let cpu = CpuClock::start();
    let mut details = Details {
        cookie: String::from_utf8_lossy(&cookie[..COOKIE_SIZE - 1]).into_owned(),
        started: SystemTime::now(),
        mss: node.config().stack.mtu.saturating_sub(40),
        ..Details::default()
    };
    if params.udp {
        return serve_udp(node, ctrl, port, &params, (details, cpu));
    }
    proto::write_state(&mut ctrl, state::CREATE_STREAMS)?;
    let mut streams = Vec::new();
    while streams.len() < params.streams() {
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
    // The client numbers its streams in the order it connected them, one after another: by
    // when their SYNs arrived (each sent after our SYN-ACK for the one before), not by which
    // worker's accept queue was looked at first, nor by when their handshakes completed (the
    // last ACK of one can wait on a busy worker while the next completes on another).
    streams.sort_by_key(TcpStream::opened_at);
    let streams: Vec<(TcpStream, bool)> = streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            details.connected.push((s.local_addr(), s.peer_addr()));
            (s, !params.client_sends(i))
        })
        .collect();
    let sending: Vec<bool> = streams.iter().map(|&(_, send)| send).collect();
    proto::write_state(&mut ctrl, state::TEST_START)?;
    proto::write_state(&mut ctrl, state::TEST_RUNNING)?;
    // On TEST_END the apps close the data streams, as iperf3's server does: a client blocked
    // reading a whole block sees the end of the stream instead of waiting for more.
    let omit = Duration::from_secs(params.omit);
    let limit = params.limit();
    let (seconds, bytes) = stream::run(node, streams, params.len, omit, limit, |_| {
        wait_for_test_end(&mut ctrl, &params)
    })?;
    finish(&mut ctrl, &params, seconds, (details, cpu), |ids| {
        bytes
            .iter()
            .zip(ids)
            .zip(&sending)
            .map(|((&bytes, &id), &sender)| StreamResult {
                id,
                sender,
                bytes,
                seconds,
                ..Default::default()
            })
            .collect()
    })
}

fn wait_for_test_end(ctrl: &mut TcpStream, params: &Params) -> Result<()> {
    let limit = Duration::from_secs(params.time + params.omit) + CONTROL_TIMEOUT;
    ctrl.set_read_timeout(Some(limit));
    match proto::read_state(ctrl).context("waiting for the end of the test")? {
        state::TEST_END => Ok(()),
        s => Err(server_error(s)),
    }
}

/// The end of a test: both sides' results exchanged (`ours` makes this side's, given the
/// client's stream ids by stream index), the display, the report.
fn finish(
    ctrl: &mut TcpStream,
    params: &Params,
    seconds: f64,
    (mut details, cpu): (Details, CpuClock),
    ours: impl FnOnce(&[u64]) -> Vec<StreamResult>,
) -> Result<TestReport> {
    ctrl.set_read_timeout(Some(CONTROL_TIMEOUT));
    proto::write_state(ctrl, state::EXCHANGE_RESULTS)?;
    let remote = proto::read_json(ctrl).context("reading the client's results")?;
    let theirs = proto::parse_results(&remote).map_err(|e| anyhow!(e))?;
    // Answer with the client's own stream ids, in order: they are what it looks up.
    let ids: Vec<u64> = (0..params.streams())
        .map(|i| theirs.get(i).map_or(proto::stream_id(i), |t| t.id))
        .collect();
    let ours = ours(&ids);
    let mut report = TestReport::new(&ours, &theirs, seconds, params, false);
    let mut results = proto::results_json(&ours);
    details.cpu = cpu.utilization();
    details.cpu.put(&mut results);
    if params.get_server_output {
        // What a stock server sends: its own report as text.
        let text = report.summary_lines().join("\n") + "\n";
        results["server_output_text"] = text.into();
    }
    proto::write_json(ctrl, &results)?;
    proto::write_state(ctrl, state::DISPLAY_RESULTS)?;
    // IPERF_DONE, or the client simply closing: either ends the test.
    let _ = proto::read_state(ctrl);
    details.ours = ours;
    details.theirs = theirs;
    details.remote = remote;
    report.details = details;
    Ok(report)
}

/// The rest of a UDP test ([`udp`]) after the parameters: the client's streams connect to
/// `port` over UDP, then the datagrams flow until the client's TEST_END.
fn serve_udp(
    node: &Node,
    mut ctrl: TcpStream,
    port: u16,
    params: &Params,
    (mut details, cpu): (Details, CpuClock),
) -> Result<TestReport> {
    let mut sock = UdpSocket::bind(node, port)
        .with_context(|| format!("cannot bind UDP port {port} for the test"))?;
    proto::write_state(&mut ctrl, state::CREATE_STREAMS)?;
    // Each client stream's connect datagram, answered; a repeat from a known stream again.
    sock.set_read_timeout(Some(CONTROL_TIMEOUT));
    let mut peers: Vec<SocketAddrV4> = Vec::new();
    let mut buf = vec![0u8; 65536];
    while peers.len() < params.streams() {
        let (n, from) = sock
            .recv_from(&mut buf)
            .context("waiting for the UDP streams' connect datagrams")?;
        if !udp::is_connect_msg(&buf[..n]) {
            continue;
        }
        if udp::stream_index(&peers, from).is_none() {
            peers.push(from);
            details.connected.push((sock.local_addr(), from));
        }
        sock.send_to(&udp::connect_reply(), from)?;
    }
    proto::write_state(&mut ctrl, state::TEST_START)?;
    proto::write_state(&mut ctrl, state::TEST_RUNNING)?;
    let specs = peers
        .iter()
        .enumerate()
        .map(|(index, &peer)| {
            let (w, handle) = sock.raw_parts_for(peer);
            let send = !params.client_sends(index);
            let spec = udp_stream::StreamSpec {
                index,
                handle,
                peer,
                send,
            };
            (w, spec)
        })
        .collect();
    let sending: Vec<bool> = (0..peers.len()).map(|i| !params.client_sends(i)).collect();
    let test = udp_stream::UdpTest {
        len: params.len,
        rate: params.bandwidth,
        wide: params.udp_counters_64bit,
        omit: Duration::from_secs(params.omit),
        limit: params.limit(),
    };
    let (seconds, stats) =
        udp_stream::run(node, specs, test, |_| wait_for_test_end(&mut ctrl, params))?;
    finish(&mut ctrl, params, seconds, (details, cpu), |ids| {
        udp_stream::results(&stats, ids, &sending, seconds)
    })
}
