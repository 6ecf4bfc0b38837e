//! `tapir load`: an HTTP/1.1 load generator that runs on every worker of the node.
//!
//! Each worker runs one [`client::LoadApp`] with its share of the connections and of the rate;
//! connections are opened from source ports that hash to the opening worker and, with
//! `--src`, from every address of a range the node owns, so a run can hold far more than 64k
//! connections to one server port. Each app keeps its own histogram and counters and sends
//! them over a channel when the run ends; they are merged here ([`report`]).

mod chunked;
pub mod client;
mod conn;
pub mod merge;
pub mod report;
pub mod request;
mod response;
pub mod tls;

use std::io::{IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use engine::Node;
use protocols::wire::Ipv4Cidr;

use crate::resolve::{Resolver, ResolverConfig};
use crate::wget::Url;

use client::{LoadApp, Plan};
use report::{Cpu, Report, Results};

/// `tapir load` options.
#[derive(Debug, Clone, Args)]
pub struct LoadOpts {
    /// The URLs to request, in turn (round-robin; name one twice to weight it):
    /// http://HOST[:PORT]/PATH, all on one HOST:PORT (an IPv4 address, or a name resolved once
    /// through --dns).
    #[arg(value_name = "URL", required = true, num_args = 1..)]
    pub urls: Vec<String>,
    /// The request method.
    #[arg(
        short = 'm',
        long = "method",
        default_value = "GET",
        value_name = "METHOD"
    )]
    pub method: String,
    /// A header field to send with every request, as 'Name: value' (repeatable; replaces
    /// tapir's own Host, User-Agent or Connection).
    #[arg(short = 'H', long = "header", value_name = "'NAME: VALUE'")]
    pub headers: Vec<String>,
    /// Send FILE's bytes as every request's body (with its Content-Length).
    #[arg(long, value_name = "FILE")]
    pub body: Option<String>,
    /// Connections held (closed loop), or at most (open loop).
    #[arg(short = 'c', long = "connections", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4_000_000))]
    pub conns: u32,
    /// Seconds to run.
    #[arg(short = 'd', long = "duration", default_value_t = 10.0)]
    pub duration: f64,
    /// Requests outstanding per keep-alive connection.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub pipeline: u32,
    /// Open loop: send R requests per second on schedule and measure latency from when each was
    /// due (coordinated omission corrected).
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// One connection per request (Connection: close).
    #[arg(long)]
    pub close: bool,
    /// Open at most R connections per second.
    #[arg(long, value_name = "R")]
    pub ramp: Option<f64>,
    /// Own every address of CIDR (besides --ip) and spread connections over them; the host
    /// needs a route to CIDR through the tap.
    #[arg(long, value_name = "CIDR")]
    pub src: Option<Ipv4Cidr>,
    /// Seconds without progress before a request or a connection attempt counts as a timeout.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
    /// Receive buffer per connection in bytes (a load generator needs little: a small buffer
    /// keeps the memory per connection low).
    #[arg(long, default_value_t = 16384, value_parser = clap::value_parser!(u32).range(1024..=16_777_216))]
    pub rx_buffer: u32,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// HTTPS: take any certificate (no check of its issuer or name).
    #[arg(long)]
    pub insecure: bool,
    /// HTTPS: also trust the CA certificates in FILE (PEM).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<String>,
    /// HTTPS: a full handshake on every connection, no session resumption.
    #[arg(long)]
    pub no_resume: bool,
}

/// Send buffer per connection: requests are small.
pub const TX_BUFFER: usize = 8192;

/// Where the load goes: the URL's host (a name or an IPv4 address; it goes in the Host
/// header), the address to connect to once resolved, and the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: Url,
    pub addr: SocketAddrV4,
}

/// The URL, checked for syntax (a name is resolved once the node runs); https:// too (its
/// port 443 unless given).
pub fn parse_url(url: &str) -> Result<Url> {
    let lower = url.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("https://").map(|_| &url[8..]) {
        let mut u = Url::parse(&format!("http://{rest}"))?;
        let authority = rest.split('/').next().unwrap_or("");
        if !authority.contains(':') {
            u.port = 443;
        }
        return Ok(u);
    }
    if !lower.starts_with("http://") {
        bail!("{url}: only http:// and https:// URLs are supported, e.g. http://10.7.0.1/");
    }
    Url::parse(url)
}

/// Whether the run is HTTPS (all URLs are on one server, so the first says).
fn is_https(urls: &[String]) -> bool {
    urls.first()
        .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"))
}

impl LoadOpts {
    /// The TLS set-up of an https:// run (`None` for http://).
    pub fn tls(&self, host: &str) -> Result<Option<tls::TlsSetup>> {
        if !is_https(&self.urls) {
            if self.insecure || self.cacert.is_some() || self.no_resume {
                bail!("--insecure, --cacert and --no-resume are for https:// URLs");
            }
            return Ok(None);
        }
        let o = tls::TlsOpts {
            insecure: self.insecure,
            cacert: self.cacert.as_deref(),
            resume: !self.no_resume,
        };
        tls::TlsSetup::new(host, &o).map(Some)
    }
}

/// The URLs, checked: all on one server (connections are not tied to a URL).
pub fn parse_urls(urls: &[String]) -> Result<Vec<Url>> {
    let parsed = urls
        .iter()
        .map(|u| parse_url(u))
        .collect::<Result<Vec<_>>>()?;
    let Some(first) = parsed.first() else {
        bail!("give a URL to load, e.g. http://10.7.0.1/");
    };
    for (u, s) in parsed.iter().zip(urls) {
        let same = (u.host.to_ascii_lowercase(), u.port)
            == (first.host.to_ascii_lowercase(), first.port)
            && is_https(std::slice::from_ref(s)) == is_https(urls);
        if !same {
            bail!(
                "{s}: every URL must name the same server as {} ({}:{}); run one tapir load per server",
                urls[0],
                first.host,
                first.port
            );
        }
    }
    Ok(parsed)
}

/// The requests of a run, one per URL, in turn.
pub fn requests(opts: &LoadOpts, urls: &[Url]) -> Result<Vec<Vec<u8>>> {
    let headers = opts
        .headers
        .iter()
        .map(|h| request::parse_header(h))
        .collect::<Result<Vec<_>>>()?;
    let body = opts.body.as_deref().map(request::read_body).transpose()?;
    let host = urls[0].host_header();
    let t = request::Template {
        method: &opts.method,
        host: &host,
        headers: &headers,
        body: body.as_deref(),
        close: opts.close,
    };
    Ok(urls.iter().map(|u| t.build(&u.path)).collect())
}

/// The URL's address: the host itself, or its first IPv4 address from DNS (`dns`).
pub fn resolve(node: &Node, url: &Url, dns: &[Ipv4Addr]) -> Result<Target> {
    let resolver = Resolver::new(node, ResolverConfig::new(dns.to_vec()));
    let addr = url.addr(&resolver)?;
    Ok(Target {
        url: url.clone(),
        addr,
    })
}

impl LoadOpts {
    /// Checks what clap cannot: returns a usage error message.
    pub fn check(&self) -> Result<Url> {
        let urls = parse_urls(&self.urls)?;
        request::check_method(&self.method)?;
        // Header syntax, the body file and the TLS options, before the node starts.
        requests(self, &urls)?;
        self.tls(&urls[0].host)?;
        let t = urls[0].clone();
        if !(self.duration > 0.0 && self.duration <= 86400.0) {
            bail!("-d {}: give a duration in seconds, above 0", self.duration);
        }
        if self.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            bail!("--rate: give requests per second, above 0");
        }
        if self.ramp.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            bail!("--ramp: give connections per second, above 0");
        }
        if !(self.timeout > 0.0 && self.timeout.is_finite()) {
            bail!("--timeout: give seconds, above 0");
        }
        if let Ok(ip) = t.host.parse() {
            self.check_src(ip)?;
        }
        Ok(t)
    }

    /// The node answers ARP for every address of `--src`: it must not claim the server's.
    pub fn check_src(&self, server: Ipv4Addr) -> Result<()> {
        if let Some(src) = self.src {
            if src.contains(server) {
                bail!(
                    "--src {src} holds the server's address {server}: pick a range no other host uses"
                );
            }
        }
        Ok(())
    }

    fn mode(&self) -> String {
        let mut m = format!("{} ", self.method);
        m += &match self.rate {
            Some(r) => format!(
                "open loop at {r} req/s over at most {} connections",
                self.conns
            ),
            None => format!("closed loop over {} connections", self.conns),
        };
        if self.body.is_some() {
            m += ", with a body";
        }
        if self.pipeline > 1 {
            m += &format!(", pipeline {}", self.pipeline);
        }
        if self.close {
            m += ", one connection per request";
        }
        m
    }
}

/// The addresses of `cidr` that connections may come from (its host addresses).
pub fn source_addrs(cidr: Ipv4Cidr) -> Vec<Ipv4Addr> {
    let net = u32::from(cidr.network());
    let size = 1u64 << (32 - u32::from(cidr.prefix_len()));
    let (lo, hi) = if cidr.prefix_len() >= 31 {
        (0, size)
    } else {
        (1, size - 1)
    };
    (lo..hi).map(|i| Ipv4Addr::from(net + i as u32)).collect()
}

/// The CPU time this process (all its threads) has used so far.
fn cpu_used() -> Cpu {
    use nix::sys::resource::{getrusage, UsageWho};
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => Cpu {
            user_s: secs(u.user_time()),
            system_s: secs(u.system_time()),
        },
        Err(_) => Cpu::default(),
    }
}

/// Splits `total` over `n` workers; worker `i`'s share.
fn share(total: usize, n: usize, i: usize) -> usize {
    total / n + usize::from(i < total % n)
}

/// Runs the load described by `opts` on `node` (whose config already owns `--src`), printing
/// a progress line per second when stderr is a terminal. Returns the merged report.
pub fn run(node: &Node, opts: &LoadOpts, dns: &[Ipv4Addr]) -> Result<Report> {
    let target = resolve(node, &opts.check()?, dns)?;
    let urls = parse_urls(&opts.urls)?;
    opts.check_src(*target.addr.ip())?;
    let workers = node.queues();
    let srcs = Arc::new(match opts.src {
        Some(c) => source_addrs(c),
        None => vec![node.address()],
    });
    let requests = Arc::new(requests(opts, &urls)?);
    let tls = opts.tls(&urls[0].host)?.map(Arc::new);
    let duration_us = (opts.duration * 1e6) as u64;
    let (tx, rx) = mpsc::channel();
    let mut progress = Vec::new();
    // The run's cost: what the process uses from the first connection to the last report.
    let cpu_before = cpu_used();
    for w in 0..workers {
        let conns = share(opts.conns as usize, workers, w);
        if conns == 0 {
            continue;
        }
        let frac = conns as f64 / f64::from(opts.conns);
        let plan = Plan {
            remote: target.addr,
            requests: requests.clone(),
            head: opts.method == "HEAD",
            retry: request::idempotent(&opts.method),
            conns,
            pipeline: opts.pipeline as usize,
            rate: opts.rate.map(|r| r * frac),
            close: opts.close,
            duration_us,
            ramp: opts.ramp.map(|r| r * frac),
            timeout_us: (opts.timeout * 1e6) as u64,
            srcs: srcs.clone(),
            tls: tls.clone(),
        };
        let p = Arc::new(AtomicU64::new(0));
        progress.push(p.clone());
        node.spawn_app(w, Box::new(LoadApp::new(plan, tx.clone(), p)))?;
    }
    drop(tx);
    let started = Instant::now();
    let expected = progress.len();
    let deadline = started + Duration::from_secs_f64(opts.duration) + Duration::from_secs(10);
    let live = std::io::stderr().is_terminal();
    let mut merged = Results::default();
    let mut got = 0;
    let mut last = 0u64;
    let mut next_tick = started + Duration::from_secs(1);
    while got < expected {
        let now = Instant::now();
        if now >= deadline {
            bail!("the workers did not finish the run in time ({got} of {expected} reported)");
        }
        let wait = next_tick.min(deadline).saturating_duration_since(now);
        match rx.recv_timeout(wait) {
            Ok(r) => {
                merged.merge(&r);
                got += 1;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!("a worker stopped before reporting ({got} of {expected} reported)")
            }
        }
        if Instant::now() >= next_tick {
            next_tick += Duration::from_secs(1);
            if live {
                let total: u64 = progress.iter().map(|p| p.load(Ordering::Relaxed)).sum();
                let secs = started.elapsed().as_secs_f64();
                eprint!(
                    "\r{:>5.0}s {:>10} requests {:>10} req/s  ",
                    secs,
                    total,
                    total - last
                );
                let _ = std::io::stderr().flush();
                last = total;
            }
        }
    }
    if live {
        eprintln!();
    }
    let cpu_after = cpu_used();
    Ok(Report {
        urls: opts.urls.clone(),
        mode: opts.mode(),
        secs: opts.duration,
        results: merged,
        cpu: Cpu {
            user_s: cpu_after.user_s - cpu_before.user_s,
            system_s: cpu_after.system_s - cpu_before.system_s,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_an_address_and_a_path() {
        let t = parse_url("http://10.7.0.1:8080/a/b?c").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("10.7.0.1", 8080));
        assert_eq!(t.path, "/a/b?c");
        let t = parse_url("http://10.7.0.1").unwrap();
        assert_eq!(t.port, 80);
        assert_eq!(t.path, "/");
        assert_eq!(parse_url("https://10.7.0.1/").unwrap().port, 443);
        assert_eq!(parse_url("HTTPS://10.7.0.1:8443/x").unwrap().port, 8443);
        assert!(parse_url("ftp://10.7.0.1/").is_err());
        // One server, one scheme.
        let mixed = [
            "http://10.7.0.1/".to_string(),
            "https://10.7.0.1:80/".into(),
        ];
        assert!(parse_urls(&mixed).is_err());
        assert!(parse_url("10.7.0.1/").is_err(), "the scheme is required");
        let t = parse_url("http://www.lab.test/x").unwrap();
        assert_eq!(t.host, "www.lab.test");
    }

    #[test]
    fn a_source_range_may_not_hold_the_server() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            load: LoadOpts,
        }
        let ok = Cli::parse_from(["x", "http://10.7.0.1/", "--src", "10.9.0.0/20"]);
        assert!(ok.load.check().is_ok());
        let bad = Cli::parse_from(["x", "http://10.7.0.1/", "--src", "10.7.0.0/24"]);
        assert!(bad.load.check().is_err());
    }

    #[test]
    fn sources_are_the_host_addresses_of_the_range() {
        let v = source_addrs("10.9.0.0/24".parse().unwrap());
        assert_eq!(v.len(), 254);
        assert_eq!(v[0], Ipv4Addr::new(10, 9, 0, 1));
        assert_eq!(source_addrs("10.9.0.0/20".parse().unwrap()).len(), 4094);
    }

    #[test]
    fn shares_add_up() {
        let s: usize = (0..3).map(|i| share(100, 3, i)).sum();
        assert_eq!(s, 100);
    }
}
