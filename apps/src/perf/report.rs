//! What a test moved, as both sides' results say it, and how `tapir perf` prints that: iperf3's
//! summary lines and its JSON.

use serde_json::{json, Value};

use super::proto::{self, Params, StreamResult, UdpReport, UdpSummary};

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

    pub fn to_json(&self, host: &str, port: u16) -> Value {
        let len = self.len;
        let mut v = json!({
            "start": {
                "connecting_to": {"host": host, "port": port},
                "version": concat!("tapir ", env!("CARGO_PKG_VERSION")),
                "test_start": {
                    "protocol": if self.flow.udp.is_some() { "UDP" } else { "TCP" },
                    "num_streams": self.streams,
                    "blksize": len,
                    "duration": self.seconds.round() as u64,
                    "reverse": i32::from(self.reverse),
                    "bidir": i32::from(self.back.is_some()),
                },
            },
            "intervals": [],
            "end": {},
        });
        let end = &mut v["end"];
        self.flow_json(&self.flow, end, "");
        if let Some(back) = &self.back {
            self.flow_json(back, end, "_bidir_reverse");
        }
        v
    }

    fn flow_json(&self, flow: &Flow, end: &mut Value, suffix: &str) {
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
        end[format!("sum_sent{suffix}")] = sum(flow.sent, true);
        end[format!("sum_received{suffix}")] = sum(flow.received, false);
        if let Some(u) = flow.udp.as_ref().map(|u| &u.receiver) {
            let mut s = sum(flow.received, false);
            s["jitter_ms"] = json!(u.jitter * 1000.0);
            s["lost_packets"] = json!(u.lost);
            s["packets"] = json!(u.packets);
            s["lost_percent"] = json!(u.lost_percent());
            end[format!("sum{suffix}")] = s;
        }
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

fn flow_line(flow: &Flow, label: &str, seconds: f64, role: &str) -> String {
    let sender = role == "sender";
    let bytes = if sender { flow.sent } else { flow.received };
    match &flow.udp {
        Some(u) => {
            let side = if sender { &u.sender } else { &u.receiver };
            proto::udp_summary_line(label, seconds, bytes, side, role)
        }
        None => proto::summary_line(label, seconds, bytes, role),
    }
}

pub fn rate(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 * 8.0 / seconds
    } else {
        0.0
    }
}
