//! `tapir ping`: ICMP echo with iputils-style output.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use engine::{IcmpSocket, Node};

#[derive(Debug, Clone, Args)]
pub struct PingOpts {
    /// Address to ping.
    pub host: Ipv4Addr,
    /// Stop after sending N requests.
    #[arg(short = 'c', default_value_t = 4, value_name = "N")]
    pub count: u32,
    /// Seconds between requests.
    #[arg(short = 'i', default_value_t = 1.0, value_name = "SECS")]
    pub interval: f64,
    /// Payload bytes per request, 0 to 65507 as iputils takes; beyond the MTU a request goes out
    /// in fragments and its reply is reassembled.
    #[arg(short = 's', default_value_t = 56, value_name = "BYTES", value_parser = parse_size)]
    pub size: u16,
    /// Seconds to wait for the last reply.
    #[arg(short = 'W', default_value_t = 2.0, value_name = "SECS")]
    pub timeout: f64,
    /// TTL of the requests.
    #[arg(short = 't', value_name = "TTL", value_parser = clap::value_parser!(u8).range(1..))]
    pub ttl: Option<u8>,
    /// Record route: each request asks for the route it and its reply take (an IPv4 record
    /// route option, room for nine hops) and the route is printed as iputils prints it
    /// (requests beyond the MTU go in fragments, without the option).
    #[arg(short = 'R')]
    pub record_route: bool,
}

/// The largest echo payload: an IPv4 datagram is at most 65,535 bytes, less 20 of IP header
/// and 8 of ICMP header (what iputils' ping accepts).
pub const MAX_SIZE: u16 = 65535 - 20 - 8;

/// `-s BYTES`: 0..=[`MAX_SIZE`], refused with the reason otherwise.
fn parse_size(s: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(n) if n <= u32::from(MAX_SIZE) => Ok(n as u16),
        Ok(n) => Err(format!(
            "{n} bytes do not fit in one IPv4 datagram: the payload is at most {MAX_SIZE} (65535 less 20 bytes of IP and 8 of ICMP header)"
        )),
        Err(_) => Err(format!("'{s}' is not a number of bytes (0 to {MAX_SIZE})")),
    }
}

/// What a ping run saw.
#[derive(Debug, Clone, Default)]
pub struct PingSummary {
    pub transmitted: u32,
    pub received: u32,
    pub rtts: Vec<Duration>,
}

impl PingSummary {
    pub fn loss_percent(&self) -> f64 {
        if self.transmitted == 0 {
            return 0.0;
        }
        100.0 * f64::from(self.transmitted - self.received) / f64::from(self.transmitted)
    }
}

fn secs(x: f64, what: &str) -> Result<Duration> {
    if !(x.is_finite() && (0.0..=3600.0).contains(&x)) {
        anyhow::bail!("{what} must be a number of seconds between 0 and 3600 (got {x})");
    }
    Ok(Duration::from_secs_f64(x))
}

/// Pings `opts.host` from `node`, printing a line per reply and the summary.
pub fn run(node: &Node, opts: &PingOpts, out: &mut dyn std::io::Write) -> Result<PingSummary> {
    let interval = secs(opts.interval, "-i")?;
    let wait = secs(opts.timeout, "-W")?;
    let sock = IcmpSocket::bind(node)?;
    sock.set_record_route(opts.record_route);
    let size = usize::from(opts.size);
    let options = if opts.record_route { 40 } else { 0 };
    writeln!(
        out,
        "PING {} ({}) {}({}) bytes of data.",
        opts.host,
        opts.host,
        size,
        size + 28 + options
    )?;
    let mut last_route: Option<Vec<Ipv4Addr>> = None;
    let start = Instant::now();
    let mut summary = PingSummary::default();
    let mut sent_at: Vec<Option<Instant>> = Vec::new();
    let payload: Vec<u8> = (0..size).map(|i| (i % 256) as u8).collect();
    let mut next_send = Instant::now();
    let mut seq: u16 = 0;
    let mut last_sent = Instant::now();
    loop {
        let all_sent = summary.transmitted >= opts.count;
        let now = Instant::now();
        if !all_sent && now >= next_send {
            seq = seq.wrapping_add(1);
            sock.send_echo(opts.host, seq, opts.ttl, &payload)?;
            summary.transmitted += 1;
            sent_at.push(Some(now));
            last_sent = now;
            next_send = now + interval;
            continue;
        }
        if all_sent && (summary.received >= summary.transmitted || now >= last_sent + wait) {
            break;
        }
        let until = if all_sent {
            last_sent + wait
        } else {
            next_send
        };
        match sock.recv_echo(Some(until.saturating_duration_since(now))) {
            Ok(reply) => {
                let idx = usize::from(reply.seq_no).wrapping_sub(1);
                let Some(Some(t)) = sent_at.get_mut(idx).map(|s| s.take()) else {
                    continue; // a duplicate or a stranger's reply
                };
                let rtt = t.elapsed();
                summary.received += 1;
                summary.rtts.push(rtt);
                writeln!(
                    out,
                    "{} bytes from {}: icmp_seq={} ttl={} time={:.3} ms",
                    reply.data.len() + 8,
                    reply.from,
                    reply.seq_no,
                    reply.ttl,
                    rtt.as_secs_f64() * 1000.0
                )?;
                if opts.record_route {
                    print_route(out, &reply.route, &mut last_route)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e.into()),
        }
    }
    let elapsed = start.elapsed();
    writeln!(out, "\n--- {} ping statistics ---", opts.host)?;
    writeln!(
        out,
        "{} packets transmitted, {} received, {:.0}% packet loss, time {}ms",
        summary.transmitted,
        summary.received,
        summary.loss_percent(),
        elapsed.as_millis()
    )?;
    if !summary.rtts.is_empty() {
        let ms: Vec<f64> = summary
            .rtts
            .iter()
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        let min = ms.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ms.iter().copied().fold(0.0, f64::max);
        let avg = ms.iter().sum::<f64>() / ms.len() as f64;
        let mdev = (ms.iter().map(|x| (x - avg) * (x - avg)).sum::<f64>() / ms.len() as f64).sqrt();
        writeln!(
            out,
            "rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms"
        )?;
    }
    Ok(summary)
}

/// A reply's recorded route as iputils prints it: each address on its own line after `RR:`,
/// then a blank line; a route the same as the last reply's is said so.
fn print_route(
    out: &mut dyn std::io::Write,
    route: &[Ipv4Addr],
    last: &mut Option<Vec<Ipv4Addr>>,
) -> std::io::Result<()> {
    if route.is_empty() {
        return writeln!(out, "RR: \t(none: the reply carried no route)");
    }
    if last.as_deref() == Some(route) {
        return writeln!(out, "RR: \t(same route)");
    }
    for (i, hop) in route.iter().enumerate() {
        let lead = if i == 0 { "RR: " } else { "" };
        writeln!(out, "{lead}\t{hop}")?;
    }
    writeln!(out)?;
    *last = Some(route.to_vec());
    Ok(())
}
