//! `tapir perf -J`: the report in iperf3 3.12's JSON layout, key for key (`start`, `intervals`,
//! `end`, and the server's output when asked for), so that a script reading a stock pair's JSON
//! reads tapir's. Figures tapir's stack does not keep (send window, RTT variance, socket buffer
//! sizes) are written as 0.

use serde_json::{json, Map, Value};

use super::interval::{Interval, Sample};
use super::proto::{self, StreamResult};
use super::report::{rate, Flow, TestReport};

/// iperf3 numbers its sockets from the first free descriptor; tapir's streams have none, so
/// they are numbered as a stock client's usually are.
fn socket_of(i: usize) -> u64 {
    5 + 2 * i as u64
}

impl TestReport {
    pub fn to_json(&self, host: &str, port: u16) -> Value {
        let mut v = json!({
            "start": self.start_json(host, port),
            "intervals": self.details.intervals.iter().map(|i| self.interval_json(i)).collect::<Vec<_>>(),
            "end": self.end_json(),
        });
        for k in ["server_output_text", "server_output_json"] {
            if let Some(out) = self.details.remote.get(k) {
                v[k] = out.clone();
            }
        }
        v
    }

    fn udp(&self) -> bool {
        self.params.udp
    }

    /// Whether this side sends on stream `i`.
    fn sends(&self, i: usize) -> bool {
        if self.client {
            self.params.client_sends(i)
        } else {
            !self.params.client_sends(i)
        }
    }

    fn start_json(&self, host: &str, port: u16) -> Value {
        let d = &self.details;
        let p = &self.params;
        let connected: Vec<Value> = d
            .connected
            .iter()
            .enumerate()
            .map(|(i, (local, remote))| {
                json!({
                    "socket": socket_of(i),
                    "local_host": local.ip().to_string(),
                    "local_port": local.port(),
                    "remote_host": remote.ip().to_string(),
                    "remote_port": remote.port(),
                })
            })
            .collect();
        let secs = d
            .started
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_secs());
        let mut start = json!({
            "connected": connected,
            "version": concat!("tapir ", env!("CARGO_PKG_VERSION"), " (iperf 3.12 protocol)"),
            "system_info": system_info(),
            "timestamp": {
                "time": httpdate::fmt_http_date(d.started),
                "timesecs": secs,
            },
            "connecting_to": {"host": host, "port": port},
            "cookie": d.cookie,
        });
        if !self.udp() {
            start["tcp_mss_default"] = json!(d.mss);
        }
        start["target_bitrate"] = json!(p.bandwidth);
        start["sock_bufsize"] = json!(0);
        start["sndbuf_actual"] = json!(0);
        start["rcvbuf_actual"] = json!(0);
        start["test_start"] = json!({
            "protocol": if self.udp() { "UDP" } else { "TCP" },
            "num_streams": p.parallel,
            "blksize": p.len,
            "omit": p.omit,
            "duration": p.time,
            "bytes": p.num,
            "blocks": p.blockcount,
            "reverse": i32::from(p.reverse),
            "tos": 0,
            "target_bitrate": p.bandwidth,
        });
        start
    }

    fn interval_json(&self, i: &Interval) -> Value {
        let seconds = i.end - i.start;
        let base = |bytes: u64| {
            let mut m = Map::new();
            m.insert("start".into(), json!(i.start));
            m.insert("end".into(), json!(i.end));
            m.insert("seconds".into(), json!(seconds));
            m.insert("bytes".into(), json!(bytes));
            m.insert("bits_per_second".into(), json!(rate(bytes, seconds)));
            m
        };
        let streams: Vec<Value> = i
            .streams
            .iter()
            .enumerate()
            .map(|(n, s)| {
                let send = self.sends(n);
                let mut m = Map::new();
                m.insert("socket".into(), json!(socket_of(n)));
                m.extend(base(s.bytes));
                if self.udp() {
                    self.udp_interval_fields(&mut m, &[*s], send);
                } else if send {
                    m.insert("retransmits".into(), json!(0));
                    m.insert("snd_cwnd".into(), json!(s.cwnd));
                    m.insert("snd_wnd".into(), json!(0));
                    m.insert("rtt".into(), json!(s.rtt_us));
                    m.insert("rttvar".into(), json!(0));
                    m.insert("pmtu".into(), json!(self.details.mss + 40));
                }
                m.insert("omitted".into(), json!(i.omitted));
                m.insert("sender".into(), json!(send));
                Value::Object(m)
            })
            .collect();
        let sum = |send: bool| {
            let picked: Vec<Sample> = i
                .streams
                .iter()
                .enumerate()
                .filter(|&(n, _)| self.sends(n) == send)
                .map(|(_, s)| *s)
                .collect();
            let mut m = base(picked.iter().map(|s| s.bytes).sum());
            if self.udp() {
                self.udp_interval_fields(&mut m, &picked, send);
            } else if send {
                m.insert("retransmits".into(), json!(0));
            }
            m.insert("omitted".into(), json!(i.omitted));
            m.insert("sender".into(), json!(send));
            Value::Object(m)
        };
        // The test's direction: what this side sends, unless it receives it (-R on a client).
        let main = self.main_sends();
        let mut v = json!({"streams": streams, "sum": sum(main)});
        if self.back.is_some() {
            v["sum_bidir_reverse"] = sum(!main);
        }
        v
    }

    /// Whether this side sends the test's main direction.
    fn main_sends(&self) -> bool {
        if self.params.bidir {
            self.client
        } else {
            self.client != self.params.reverse
        }
    }

    fn udp_interval_fields(&self, m: &mut Map<String, Value>, s: &[Sample], send: bool) {
        let packets: u64 = s.iter().map(|s| s.packets).sum();
        if !send {
            let lost: u64 = s.iter().map(|s| s.errors).sum();
            let jitter = s.iter().map(|s| s.jitter).sum::<f64>() / s.len().max(1) as f64;
            m.insert("jitter_ms".into(), json!(jitter * 1000.0));
            m.insert("lost_packets".into(), json!(lost));
            m.insert("packets".into(), json!(packets));
            m.insert("lost_percent".into(), json!(percent(lost, packets)));
        } else {
            m.insert("packets".into(), json!(packets));
        }
    }

    fn end_json(&self) -> Value {
        let d = &self.details;
        let seconds = self.seconds;
        let streams: Vec<Value> = d
            .ours
            .iter()
            .enumerate()
            .map(|(n, ours)| {
                let theirs = d.theirs.iter().find(|t| t.id == ours.id);
                let send = self.sends(n);
                let part = |r: Option<&StreamResult>, with_tcp_info: bool| {
                    let bytes = r.map_or(0, |r| r.bytes);
                    let mut m = Map::new();
                    m.insert("socket".into(), json!(socket_of(n)));
                    m.insert("start".into(), json!(0));
                    m.insert("end".into(), json!(seconds));
                    m.insert("seconds".into(), json!(seconds));
                    m.insert("bytes".into(), json!(bytes));
                    m.insert("bits_per_second".into(), json!(rate(bytes, seconds)));
                    if with_tcp_info {
                        let retransmits = r.map_or(0, |r| r.retransmits);
                        m.insert("retransmits".into(), json!(retransmits));
                        for k in [
                            "max_snd_cwnd",
                            "max_snd_wnd",
                            "max_rtt",
                            "min_rtt",
                            "mean_rtt",
                        ] {
                            m.insert(k.into(), json!(self.tcp_stat(n, k)));
                        }
                    }
                    m.insert("sender".into(), json!(send));
                    Value::Object(m)
                };
                if self.udp() {
                    let receiver = if send { theirs } else { Some(ours) };
                    let mut m = part(Some(ours), false);
                    let u = receiver
                        .map(|r| (r.jitter, r.errors, r.packets))
                        .unwrap_or_default();
                    let lost = u.1;
                    let packets = u.2;
                    if let Value::Object(m) = &mut m {
                        m.remove("sender");
                        m.insert("jitter_ms".into(), json!(u.0 * 1000.0));
                        m.insert("lost_packets".into(), json!(lost));
                        m.insert("packets".into(), json!(packets));
                        m.insert("lost_percent".into(), json!(percent(lost, packets)));
                        m.insert("out_of_order".into(), json!(0));
                        m.insert("sender".into(), json!(send));
                    }
                    json!({ "udp": m })
                } else {
                    let (tx, rx) = if send {
                        (Some(ours), theirs)
                    } else {
                        (theirs, Some(ours))
                    };
                    json!({"sender": part(tx, true), "receiver": part(rx, false)})
                }
            })
            .collect();
        let mut end = json!({ "streams": streams });
        self.flow_json(&self.flow, &mut end, "");
        if let Some(back) = &self.back {
            self.flow_json(back, &mut end, "_bidir_reverse");
        }
        let remote = |k: &str| d.remote.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        end["cpu_utilization_percent"] = json!({
            "host_total": d.cpu.total,
            "host_user": d.cpu.user,
            "host_system": d.cpu.system,
            "remote_total": remote("cpu_util_total"),
            "remote_user": remote("cpu_util_user"),
            "remote_system": remote("cpu_util_system"),
        });
        if !self.udp() {
            let theirs = d
                .remote
                .get("congestion_used")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let ours = proto::CONGESTION.to_string();
            let (sender, receiver) = if self.main_sends() {
                (ours, theirs)
            } else {
                (theirs, ours)
            };
            end["sender_tcp_congestion"] = json!(sender);
            end["receiver_tcp_congestion"] = json!(receiver);
        }
        end
    }

    /// The TCP_INFO summaries iperf3 keeps per sending stream, from the intervals' samples.
    fn tcp_stat(&self, n: usize, k: &str) -> u64 {
        let samples = self
            .details
            .intervals
            .iter()
            .filter_map(|i| i.streams.get(n));
        match k {
            "max_snd_cwnd" => samples.map(|s| s.cwnd).max().unwrap_or(0),
            "max_rtt" => samples.map(|s| s.rtt_us).max().unwrap_or(0),
            "min_rtt" => samples
                .map(|s| s.rtt_us)
                .filter(|&r| r > 0)
                .min()
                .unwrap_or(0),
            "mean_rtt" => {
                let rtts: Vec<u64> = samples.map(|s| s.rtt_us).filter(|&r| r > 0).collect();
                rtts.iter().sum::<u64>() / rtts.len().max(1) as u64
            }
            _ => 0,
        }
    }

    fn flow_json(&self, flow: &Flow, end: &mut Value, suffix: &str) {
        let sum = |bytes: u64, sender: bool| {
            let mut m = Map::new();
            m.insert("start".into(), json!(0));
            m.insert("end".into(), json!(self.seconds));
            m.insert("seconds".into(), json!(self.seconds));
            m.insert("bytes".into(), json!(bytes));
            m.insert("bits_per_second".into(), json!(rate(bytes, self.seconds)));
            if let Some(u) = &flow.udp {
                let side = if sender { &u.sender } else { &u.receiver };
                m.insert("jitter_ms".into(), json!(side.jitter * 1000.0));
                m.insert("lost_packets".into(), json!(side.lost));
                m.insert("packets".into(), json!(side.packets));
                m.insert("lost_percent".into(), json!(side.lost_percent()));
            } else if sender {
                m.insert("retransmits".into(), json!(0));
            }
            m.insert("sender".into(), json!(sender));
            Value::Object(m)
        };
        if flow.udp.is_some() {
            end[format!("sum{suffix}")] = sum(flow.received, false);
        }
        end[format!("sum_sent{suffix}")] = sum(flow.sent, true);
        end[format!("sum_received{suffix}")] = sum(flow.received, false);
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole > 0 {
        100.0 * part as f64 / whole as f64
    } else {
        0.0
    }
}

/// What `uname -a` says, as iperf3's `system_info` has it, from /proc.
fn system_info() -> String {
    let read = |k: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/{k}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    format!(
        "{} {} {} {} {}",
        read("ostype"),
        read("hostname"),
        read("osrelease"),
        read("version"),
        std::env::consts::ARCH
    )
}
