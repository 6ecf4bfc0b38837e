//! What a test moved, as both sides' results say it, and how `tapir perf` prints that: iperf3's
//! summary lines and its JSON.

use std::net::SocketAddrV4;
use std::time::{Instant, SystemTime};

use serde_json::{json, Value};

use super::interval::Interval;
use super::proto::{self, Params, StreamResult};
use super::text::{self, UdpReport, UdpSummary};

/// One direction of a test: bytes the sending side wrote and the receiving side read, summed
/// over its streams.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub sent: u64,
    pub received: u64,
    /// A UDP test: the datagrams sent, the receiver's jitter and loss.
    pub udp: Option<UdpReport>,
}

/// What one test moved, from this side's point of view.
#[derive(Debug, Clone, PartialEq)]
pub struct TestReport {
    pub seconds: f64,
    /// Streams each way.
    pub streams: usize,
    pub reverse: bool,
    /// The client's side (true) or the server's.
    pub client: bool,
    /// The test's direction: client to server, or server to client with -R; with `--bidir`,
    /// client to server.
    pub flow: Flow,
    /// `--bidir`: server to client.
    pub back: Option<Flow>,
    /// Bytes per write (a UDP datagram's payload).
    pub len: usize,
    pub params: Params,
    /// What a client's JSON report says beyond the totals.
    pub details: Details,
}

/// A client's test beyond its totals: what iperf3's `-J` report also carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Details {
    pub cookie: String,
    pub started: SystemTime,
    /// Each data stream's (local, remote) address, by stream index.
    pub connected: Vec<(SocketAddrV4, SocketAddrV4)>,
    pub mss: usize,
    pub intervals: Vec<Interval>,
    /// Both sides' per-stream results, and the peer's whole results message.
    pub ours: Vec<StreamResult>,
    pub theirs: Vec<StreamResult>,
    pub remote: Value,
    pub cpu: Cpu,
}

impl Default for Details {
    fn default() -> Self {
        Details {
            cookie: String::new(),
            started: SystemTime::UNIX_EPOCH,
            connected: Vec::new(),
            mss: 0,
            intervals: Vec::new(),
            ours: Vec::new(),
            theirs: Vec::new(),
            remote: Value::Null,
            cpu: Cpu::default(),
        }
    }
}

/// This process's CPU use over a test, in percent of one core (iperf3's `cpu_util_*`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cpu {
    pub total: f64,
    pub user: f64,
    pub system: f64,
}

impl Cpu {
    /// Into a results message.
    pub fn put(&self, results: &mut Value) {
        results["cpu_util_total"] = json!(self.total);
        results["cpu_util_user"] = json!(self.user);
        results["cpu_util_system"] = json!(self.system);
    }
}

/// Measures [`Cpu`] from /proc/self/stat (user and system time in clock ticks).
pub struct CpuClock {
    wall: Instant,
    ticks: Option<(u64, u64)>,
}

/// USER_HZ: what /proc reports times in on every Linux architecture tapir runs on.
const TICKS_PER_SECOND: f64 = 100.0;

impl CpuClock {
    pub fn start() -> Self {
        CpuClock {
            wall: Instant::now(),
            ticks: process_ticks(),
        }
    }

    pub fn utilization(&self) -> Cpu {
        let wall = self.wall.elapsed().as_secs_f64();
        match (self.ticks, process_ticks()) {
            (Some((u0, s0)), Some((u1, s1))) if wall > 0.0 => {
                let pct = |t: u64| 100.0 * t as f64 / TICKS_PER_SECOND / wall;
                let (user, system) = (pct(u1.saturating_sub(u0)), pct(s1.saturating_sub(s0)));
                Cpu {
                    total: user + system,
                    user,
                    system,
                }
            }
            _ => Cpu::default(),
        }
    }
}

/// (utime, stime) of this process: fields 14 and 15 of /proc/self/stat, counted after the
/// command name's closing parenthesis (the name may hold spaces).
fn process_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some((user, system))
}

impl TestReport {
    /// From this side's per-stream results (`ours`, each saying whether we sent on it) and the
    /// peer's (`theirs`, matched by stream id).
    pub fn new(
        ours: &[StreamResult],
        theirs: &[StreamResult],
        seconds: f64,
        params: &Params,
        client: bool,
    ) -> TestReport {
        // Whether this side sends the test's direction.
        let we_send = if params.bidir {
            client
        } else {
            client != params.reverse
        };
        let flow = |we_send: bool| flow(ours, theirs, we_send, params.udp);
        TestReport {
            seconds,
            streams: params.parallel,
            reverse: params.reverse,
            client,
            flow: flow(we_send),
            back: params.bidir.then(|| flow(!we_send)),
            len: params.len,
            params: params.clone(),
            details: Details::default(),
        }
    }

    /// The summary lines, in iperf3's layout: a client's sender and receiver line of each
    /// direction, a server's receiver line (sender with -R) of each.
    pub fn summary_lines(&self) -> Vec<String> {
        let label = if self.streams > 1 { "SUM" } else { "  5" };
        let mut out = Vec::new();
        let (tag, back_tag) = if self.client {
            ("][TX-C", "][RX-C")
        } else {
            ("][RX-S", "][TX-S")
        };
        let flows: Vec<(&Flow, &str, bool)> = match &self.back {
            // (flow, tag, whether this side sends it)
            Some(back) => vec![
                (&self.flow, tag, self.client),
                (back, back_tag, !self.client),
            ],
            None => vec![(&self.flow, "", self.client != self.reverse)],
        };
        for (flow, tag, we_send) in flows {
            let label = format!("{label}{tag}");
            let roles: &[&str] = if self.client {
                &["sender", "receiver"]
            } else if we_send {
                &["sender"]
            } else {
                &["receiver"]
            };
            for &role in roles {
                out.push(flow_line(flow, &label, self.seconds, role));
            }
        }
        out
    }
}

/// The totals of the streams on which this side sends (`we_send`) or receives.
fn flow(ours: &[StreamResult], theirs: &[StreamResult], we_send: bool, udp: bool) -> Flow {
    let mine: Vec<StreamResult> = ours
        .iter()
        .filter(|s| s.sender == we_send)
        .cloned()
        .collect();
    let peer: Vec<StreamResult> = mine
        .iter()
        .filter_map(|m| theirs.iter().find(|t| t.id == m.id).cloned())
        .collect();
    let (tx, rx) = if we_send {
        (&mine, &peer)
    } else {
        (&peer, &mine)
    };
    let total = |v: &[StreamResult]| v.iter().map(|s| s.bytes).sum();
    Flow {
        sent: total(tx),
        received: total(rx),
        udp: udp.then(|| UdpReport {
            // What a sender saw of loss and jitter is nothing; iperf3 prints zeros there.
            sender: UdpSummary {
                jitter: 0.0,
                lost: 0,
                ..UdpSummary::of(tx)
            },
            receiver: UdpSummary::of(rx),
        }),
    }
}

/// A client's interim lines for one interval, in iperf3's layout: each stream's, then the sum
/// of each direction when there are several streams.
pub fn interval_lines(i: &Interval, sending: &[bool], params: &Params) -> Vec<String> {
    let seconds = i.end - i.start;
    let omitted = if i.omitted { "  (omitted)" } else { "" };
    let line = |label: &str, bytes: u64, packets: u64| {
        let mut l = text::interval_line(label, i.start, i.end, bytes);
        if params.udp {
            l.push_str(&format!("  {packets}"));
        }
        l + omitted
    };
    let mut out: Vec<String> = i
        .streams
        .iter()
        .enumerate()
        .map(|(n, s)| {
            line(
                &format!("{:>3}", proto::stream_id(n) + 4),
                s.bytes,
                s.packets,
            )
        })
        .collect();
    let directions: &[bool] = if params.bidir {
        &[true, false]
    } else {
        &[true]
    };
    for &main in directions {
        let picked: Vec<_> = i
            .streams
            .iter()
            .zip(sending)
            .filter(|(_, &send)| !params.bidir || send == main)
            .map(|(s, _)| s)
            .collect();
        if picked.len() > 1 && seconds > 0.0 {
            let bytes = picked.iter().map(|s| s.bytes).sum();
            let packets = picked.iter().map(|s| s.packets).sum();
            out.push(line("SUM", bytes, packets));
        }
    }
    out
}

fn flow_line(flow: &Flow, label: &str, seconds: f64, role: &str) -> String {
    let sender = role == "sender";
    let bytes = if sender { flow.sent } else { flow.received };
    match &flow.udp {
        Some(u) => {
            let side = if sender { &u.sender } else { &u.receiver };
            text::udp_summary_line(label, seconds, bytes, side, role)
        }
        None => text::summary_line(label, seconds, bytes, role),
    }
}

pub fn rate(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 * 8.0 / seconds
    } else {
        0.0
    }
}
