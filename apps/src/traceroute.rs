//! `tapir traceroute`: the path to a host, hop by hop, in the style of Linux traceroute.
//!
//! Probes go out with TTL 1, 2, ... (UDP to port `-p` + probe number by default, ICMP echo with
//! `-I`); each router where a probe's TTL runs out answers "time exceeded", and the destination
//! answers "port unreachable" (UDP) or an echo reply (ICMP), which ends the trace. The stack hands
//! those ICMP errors to the socket that sent the probe (see `protocols::iface::IcmpErrorReport`).

use std::fmt::Write as _;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use engine::{IcmpEvent, IcmpSocket, Node, UdpSocket};
use protocols::iface::IcmpErrorReport;
use protocols::time::Instant;
use protocols::wire::icmpv4::{dst_unreachable, msg_type};

#[derive(Debug, Clone, Args)]
pub struct TracerouteOpts {
    /// Address to trace the path to.
    pub host: Ipv4Addr,
    /// Probe with ICMP echo requests instead of UDP datagrams.
    #[arg(short = 'I', long = "icmp")]
    pub icmp: bool,
    /// Largest TTL (hops) to try.
    #[arg(short = 'm', default_value_t = 30, value_name = "HOPS", value_parser = clap::value_parser!(u8).range(1..))]
    pub max_ttl: u8,
    /// TTL to start from.
    #[arg(short = 'f', default_value_t = 1, value_name = "TTL", value_parser = clap::value_parser!(u8).range(1..))]
    pub first_ttl: u8,
    /// Probes per hop.
    #[arg(short = 'q', default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=10))]
    pub queries: u8,
    /// Seconds to wait for the answers to a hop's probes.
    #[arg(short = 'w', default_value_t = 5.0, value_name = "SECS")]
    pub wait: f64,
    /// UDP: destination port of the first probe (each later probe adds one). ICMP: the first
    /// sequence number.
    #[arg(short = 'p', default_value_t = 33434, value_name = "PORT")]
    pub port: u16,
}

/// What one probe saw.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeResult {
    /// Nothing came back in time.
    Silent,
    /// `from` answered after `rtt`; `note` is traceroute's `!H`-style annotation, if any.
    Answer {
        from: Ipv4Addr,
        rtt: Duration,
        note: Option<&'static str>,
    },
}

/// One hop: its TTL and what each of its probes saw.
#[derive(Debug, Clone)]
pub struct Hop {
    pub ttl: u8,
    pub probes: Vec<ProbeResult>,
}

/// The whole trace: every hop tried, and whether the destination answered.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    pub hops: Vec<Hop>,
    pub reached: bool,
}

/// Payload bytes of a probe: with the IPv4 and UDP headers a probe is 60 bytes, as Linux
/// traceroute's default.
const PROBE_DATA: usize = 32;

enum Prober {
    Udp(UdpSocket),
    Icmp(IcmpSocket),
}

/// An answer to a probe, as the sockets report it: which probe (port or sequence number), who
/// answered, when, and whether it ends the trace.
struct Answer {
    key: u16,
    from: Ipv4Addr,
    at: Instant,
    final_hop: bool,
    note: Option<&'static str>,
}

fn from_error(r: &IcmpErrorReport, dst: Ipv4Addr) -> Option<Answer> {
    if r.dst != dst {
        return None;
    }
    let (final_hop, note) = match (r.msg_type, r.code) {
        (msg_type::TIME_EXCEEDED, _) => (false, None),
        (msg_type::DST_UNREACHABLE, dst_unreachable::PORT_UNREACHABLE) => (true, None),
        (msg_type::DST_UNREACHABLE, dst_unreachable::HOST_UNREACHABLE) => (true, Some("!H")),
        (msg_type::DST_UNREACHABLE, dst_unreachable::NET_UNREACHABLE) => (true, Some("!N")),
        (msg_type::DST_UNREACHABLE, dst_unreachable::PROTO_UNREACHABLE) => (true, Some("!P")),
        (msg_type::DST_UNREACHABLE, dst_unreachable::FRAG_REQUIRED) => (true, Some("!F")),
        (msg_type::DST_UNREACHABLE, _) => (true, Some("!X")),
        _ => return None,
    };
    Some(Answer {
        key: r.detail,
        from: r.from,
        at: r.at,
        final_hop,
        note,
    })
}

impl Prober {
    fn send(&self, dst: Ipv4Addr, key: u16, ttl: u8, payload: &[u8]) -> Result<()> {
        match self {
            Prober::Udp(s) => {
                s.send_to_ttl(payload, SocketAddrV4::new(dst, key), ttl)?;
            }
            Prober::Icmp(s) => s.send_echo(dst, key, Some(ttl), payload)?,
        }
        Ok(())
    }

    /// The next answer about a probe to `dst`, or None when `timeout` passes.
    fn recv(&self, dst: Ipv4Addr, timeout: Duration) -> Result<Option<Answer>> {
        let r = match self {
            Prober::Udp(s) => s.recv_error(Some(timeout)).map(|r| from_error(&r, dst)),
            Prober::Icmp(s) => s.recv_event(Some(timeout)).map(|e| match e {
                IcmpEvent::Reply(r) if r.from == dst => Some(Answer {
                    key: r.seq_no,
                    from: r.from,
                    at: r.at,
                    final_hop: true,
                    note: None,
                }),
                IcmpEvent::Reply(_) => None,
                IcmpEvent::Error(r) => from_error(&r, dst),
            }),
        };
        match r {
            Ok(a) => Ok(a),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Traces the path to `opts.host`, printing a line per hop to `out` as it goes.
pub fn run(node: &Node, opts: &TracerouteOpts, out: &mut dyn Write) -> Result<Trace> {
    if !(opts.wait.is_finite() && (0.0..=60.0).contains(&opts.wait)) {
        bail!(
            "-w must be a number of seconds between 0 and 60 (got {})",
            opts.wait
        );
    }
    if opts.first_ttl > opts.max_ttl {
        bail!(
            "-f {} is beyond -m {}: the first TTL must not exceed the largest",
            opts.first_ttl,
            opts.max_ttl
        );
    }
    let wait = Duration::from_secs_f64(opts.wait);
    let prober = if opts.icmp {
        Prober::Icmp(IcmpSocket::bind(node)?)
    } else {
        Prober::Udp(UdpSocket::bind(node, 0)?)
    };
    let dst = opts.host;
    writeln!(
        out,
        "traceroute to {dst} ({dst}), {} hops max, {} byte packets",
        opts.max_ttl,
        20 + 8 + PROBE_DATA
    )?;
    let payload: Vec<u8> = (0..PROBE_DATA).map(|i| 0x40 + i as u8).collect();
    let q = u16::from(opts.queries);
    let mut trace = Trace::default();
    for ttl in opts.first_ttl..=opts.max_ttl {
        // Probe n of the whole trace uses key port + n, so every answer names its probe.
        let base = opts
            .port
            .wrapping_add(u16::from(ttl - opts.first_ttl).wrapping_mul(q));
        let mut sent = Vec::with_capacity(usize::from(q));
        for i in 0..q {
            sent.push(node.now());
            prober.send(dst, base.wrapping_add(i), ttl, &payload)?;
        }
        let mut probes = vec![ProbeResult::Silent; usize::from(q)];
        let mut answered = 0;
        let mut final_hop = false;
        let deadline = std::time::Instant::now() + wait;
        while answered < q {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let Some(a) = prober.recv(dst, left)? else {
                continue;
            };
            let i = a.key.wrapping_sub(base);
            let Some(slot) = probes.get_mut(usize::from(i)) else {
                continue; // a late answer to an earlier hop
            };
            if *slot != ProbeResult::Silent {
                continue;
            }
            *slot = ProbeResult::Answer {
                from: a.from,
                rtt: a.at.saturating_duration_since(sent[usize::from(i)]),
                note: a.note,
            };
            answered += 1;
            final_hop |= a.final_hop;
        }
        let hop = Hop { ttl, probes };
        writeln!(out, "{}", hop_line(&hop))?;
        trace.hops.push(hop);
        if final_hop {
            trace.reached =
                trace.hops.last().into_iter().flat_map(|h| &h.probes).any(
                    |p| matches!(p, ProbeResult::Answer { from, note: None, .. } if *from == dst),
                );
            break;
        }
    }
    Ok(trace)
}

/// A hop's line: ` 2  10.0.1.1  0.512 ms  0.300 ms *`, the address repeated only where it
/// changes between probes, as Linux traceroute prints it.
pub fn hop_line(hop: &Hop) -> String {
    let mut line = format!("{:2} ", hop.ttl);
    let mut last: Option<Ipv4Addr> = None;
    for p in &hop.probes {
        match p {
            ProbeResult::Silent => line.push_str(" *"),
            ProbeResult::Answer { from, rtt, note } => {
                if last != Some(*from) {
                    let _ = write!(line, " {from}");
                    last = Some(*from);
                }
                let _ = write!(line, "  {:.3} ms", rtt.as_secs_f64() * 1000.0);
                if let Some(n) = note {
                    let _ = write!(line, " {n}");
                }
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_lines_look_like_linux_traceroute() {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 9);
        let ms = |m| Duration::from_micros(m);
        let hop = Hop {
            ttl: 3,
            probes: vec![
                ProbeResult::Answer {
                    from: a,
                    rtt: ms(512),
                    note: None,
                },
                ProbeResult::Answer {
                    from: a,
                    rtt: ms(1300),
                    note: None,
                },
                ProbeResult::Silent,
            ],
        };
        assert_eq!(hop_line(&hop), " 3  10.0.0.1  0.512 ms  1.300 ms *");
        let hop = Hop {
            ttl: 12,
            probes: vec![
                ProbeResult::Silent,
                ProbeResult::Answer {
                    from: a,
                    rtt: ms(1000),
                    note: None,
                },
                ProbeResult::Answer {
                    from: b,
                    rtt: ms(2000),
                    note: Some("!H"),
                },
            ],
        };
        assert_eq!(
            hop_line(&hop),
            "12  * 10.0.0.1  1.000 ms 10.0.0.9  2.000 ms !H"
        );
        let silent = Hop {
            ttl: 1,
            probes: vec![ProbeResult::Silent; 3],
        };
        assert_eq!(hop_line(&silent), " 1  * * *");
    }

    #[test]
    fn errors_are_read_as_traceroute_reads_them() {
        let dst = Ipv4Addr::new(10, 9, 0, 2);
        let r = |msg_type, code| IcmpErrorReport {
            from: Ipv4Addr::new(10, 1, 0, 1),
            msg_type,
            code,
            dst,
            detail: 33435,
            at: Instant::from_millis(5),
        };
        let a = from_error(&r(11, 0), dst).unwrap();
        assert_eq!((a.key, a.final_hop, a.note), (33435, false, None));
        let a = from_error(&r(3, 3), dst).unwrap();
        assert!(a.final_hop && a.note.is_none());
        assert_eq!(from_error(&r(3, 1), dst).unwrap().note, Some("!H"));
        assert!(from_error(&r(3, 3), Ipv4Addr::new(1, 2, 3, 4)).is_none());
        assert!(from_error(&r(5, 0), dst).is_none());
    }
}
