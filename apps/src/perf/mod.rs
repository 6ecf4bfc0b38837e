//! `tapir perf`: an iperf3-compatible throughput server and client (TCP and UDP) over tapir's
//! sockets, so that stock `iperf3 -c <tapir>` and `iperf3 -s` work against it ([`proto`] has the
//! protocol, [`server`] and [`client`] the two roles; the data streams run on the workers,
//! [`stream`] for TCP and [`udp_stream`] for UDP).

mod client;
mod interval;
mod json;
pub mod proto;
mod report;
mod server;
mod stream;
mod text;
pub mod udp;
mod udp_stream;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use engine::{Node, TcpListener};

use proto::{state, Params};
pub use report::{Flow, TestReport};

/// How long a peer may stay silent on the control connection outside the running test.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// iperf3's defaults for a UDP test: 1 Mbit/s (`UDP_RATE`) of 1460-byte datagrams.
const UDP_DEFAULT_RATE: u64 = 1024 * 1024;
const UDP_DEFAULT_LEN: usize = 1460;
/// iperf3's bounds on a UDP datagram (`MIN_UDP_BLOCKSIZE`, `MAX_UDP_BLOCKSIZE`).
const UDP_MIN_LEN: usize = 16;
const UDP_MAX_LEN: usize = 65535 - 8 - 20;

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
    /// Client: both directions at once, -P streams each way.
    #[arg(long, conflicts_with = "reverse")]
    pub bidir: bool,
    /// Client: a UDP test instead of TCP.
    #[arg(short = 'u', long)]
    pub udp: bool,
    /// Client, UDP: bits per second per stream, with an optional K, M or G suffix (decimal, as
    /// iperf3's); 0 is as fast as it goes (default 1M).
    #[arg(short = 'b', long, alias = "bandwidth", value_name = "RATE", value_parser = parse_rate)]
    pub bitrate: Option<u64>,
    /// Client, UDP: 64-bit sequence numbers in the datagrams' header.
    #[arg(long)]
    pub udp_counters_64bit: bool,
    /// Bytes per write/read (a UDP datagram's payload), with an optional K or M suffix (default
    /// 128K for TCP, 1460 for UDP).
    #[arg(short = 'l', long, value_parser = parse_len)]
    pub length: Option<usize>,
    /// Client: seconds between interim reports (0: none), as iperf3's -i.
    #[arg(short = 'i', long, default_value_t = 1.0, value_name = "SEC", value_parser = parse_interval)]
    pub interval: f64,
    /// Client: bytes to send instead of a time (K, M, G: binary, as iperf3's).
    #[arg(short = 'n', long, value_name = "BYTES", value_parser = parse_count, conflicts_with = "blockcount")]
    pub bytes: Option<u64>,
    /// Client: blocks (of -l bytes) to send instead of a time.
    #[arg(short = 'k', long, value_name = "BLOCKS", value_parser = parse_count)]
    pub blockcount: Option<u64>,
    /// Client: the server's own report comes back and is printed after the client's.
    #[arg(long)]
    pub get_server_output: bool,
    /// Client: the data streams' local port (the next streams take the ports after it).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub cport: Option<u16>,
    /// IPv4 only (tapir speaks nothing else; accepted for iperf3's command lines).
    #[arg(short = '4', long = "version4")]
    pub ipv4: bool,
    /// Write the report to FILE (appended) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub logfile: Option<std::path::PathBuf>,
    /// Print the results as JSON.
    #[arg(short = 'J', long)]
    pub json: bool,
    /// Server: handle one test, then exit.
    #[arg(short = '1', long)]
    pub one_off: bool,
    /// TCP buffer size (receive window and send buffer) of this node's connections, with an
    /// optional K or M suffix, as iperf3's -w sets its sockets'.
    #[arg(short = 'w', long, value_name = "SIZE", value_parser = parse_window)]
    pub window: Option<usize>,
    /// TCP maximum segment size of this node's connections, as iperf3's -M.
    #[arg(short = 'M', long = "set-mss", value_name = "MSS",
          value_parser = clap::value_parser!(u16).range(88..=9176))]
    pub mss: Option<u16>,
    /// Congestion control of this node's connections: cubic (the default) or reno (NewReno).
    #[arg(short = 'C', long, value_name = "ALGO", value_parser = parse_congestion)]
    pub congestion: Option<protocols::tcp::CongestionAlgorithm>,
    /// Client: TCP_NODELAY on the data streams (no Nagle), as iperf3's -N.
    #[arg(short = 'N', long)]
    pub no_delay: bool,
    /// Accepted for iperf3's command lines: tapir's sender always builds its segments in place
    /// from its pattern, with no copy to save.
    #[arg(short = 'Z', long)]
    pub zerocopy: bool,
    /// Client: a prefix for every line of the text report, as iperf3's -T.
    #[arg(short = 'T', long, value_name = "STR")]
    pub title: Option<String>,
    /// IP type of service: not supported (tapir's stack sends TOS 0); refused with a message.
    #[arg(short = 'S', long, value_name = "TOS", hide = true)]
    pub tos: Option<String>,
    /// Set (by a SIGINT/SIGTERM handler) to end a client's test now, as its time running out
    /// would: the results are exchanged and the summary of what was measured so far printed.
    #[arg(skip)]
    pub interrupt: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl PerfOpts {
    /// Options that cannot make a test, said as a usage error (the caller exits 2).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(t) = &self.tos {
            return Err(format!(
                "-S {t}: tapir's stack sends every packet with TOS 0 and cannot set another; \
                 leave -S out"
            ));
        }
        if self.bitrate.is_some() && !self.udp {
            return Err(
                "-b paces UDP tests only: add -u (tapir's TCP streams are not paced)".into(),
            );
        }
        if self.udp {
            let len = self.len();
            if !(UDP_MIN_LEN..=UDP_MAX_LEN).contains(&len) {
                return Err(format!(
                    "-l {len}: a UDP datagram must carry between {UDP_MIN_LEN} and {UDP_MAX_LEN} \
                     bytes (iperf3's limits)"
                ));
            }
        }
        Ok(())
    }

    fn len(&self) -> usize {
        let default = if self.udp {
            UDP_DEFAULT_LEN
        } else {
            proto::DEFAULT_LEN
        };
        self.length.unwrap_or(default)
    }

    /// What a client asks the server for.
    fn params(&self) -> Params {
        let default_rate = if self.udp { UDP_DEFAULT_RATE } else { 0 };
        Params {
            time: self.time,
            omit: self.omit,
            parallel: usize::from(self.parallel),
            len: self.len(),
            reverse: self.reverse,
            udp: self.udp,
            bandwidth: self.bitrate.unwrap_or(default_rate),
            udp_counters_64bit: self.udp_counters_64bit,
            bidir: self.bidir,
            num: self.bytes.unwrap_or(0),
            blockcount: self.blockcount.unwrap_or(0),
            get_server_output: self.get_server_output,
        }
    }
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

/// `-w`: a TCP buffer size between 2K and 16M.
fn parse_window(s: &str) -> Result<usize, String> {
    let n = parse_len(s)?;
    if n < 2048 {
        return Err(format!("-w {s}: give at least 2K (e.g. 256K)"));
    }
    Ok(n)
}

/// `-C`: the congestion controls tapir has.
fn parse_congestion(s: &str) -> Result<protocols::tcp::CongestionAlgorithm, String> {
    use protocols::tcp::CongestionAlgorithm;
    match s.to_ascii_lowercase().as_str() {
        "cubic" => Ok(CongestionAlgorithm::Cubic),
        "reno" | "newreno" => Ok(CongestionAlgorithm::NewReno),
        _ => Err(format!("-C {s}: tapir has cubic and reno (NewReno)")),
    }
}

impl PerfOpts {
    /// What these options change in the node's own TCP (the node is this test's alone).
    pub fn tune(&self, tcp: &mut protocols::tcp::TcpConfig) {
        if let Some(w) = self.window {
            tcp.rx_buffer = w;
            tcp.tx_buffer = w;
        }
        if let Some(m) = self.mss {
            tcp.mss = tcp.mss.min(m);
        }
        if let Some(c) = self.congestion {
            tcp.congestion = c;
        }
    }
}

/// The text report with `-T`'s prefix at the start of every line, as iperf3 writes it.
struct Titled<'a> {
    out: &'a mut dyn Write,
    prefix: String,
    at_start: bool,
}

impl Write for Titled<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for line in buf.split_inclusive(|&b| b == b'\n') {
            if self.at_start {
                self.out.write_all(self.prefix.as_bytes())?;
            }
            self.out.write_all(line)?;
            self.at_start = line.ends_with(b"\n");
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// `-i`: 0, or between iperf3's bounds of 0.1 and 60 seconds.
fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v == 0.0 || (0.1..=60.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "'{s}' is not an interval: say seconds between 0.1 and 60, or 0 for none"
        )),
    }
}

/// A count as iperf3 reads `-n` and `-k` (`unit_atoi`): binary K, M, G suffixes.
fn parse_count(s: &str) -> Result<u64, String> {
    let (num, mul) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    match num.parse::<u64>().ok().and_then(|n| n.checked_mul(mul)) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(format!("'{s}' is not a positive count (e.g. 100M)")),
    }
}

/// A rate as iperf3 reads it (`unit_atof_rate`): decimal K, M, G and T suffixes.
fn parse_rate(s: &str) -> Result<u64, String> {
    let (num, mul) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1e3),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1e6),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 1e9),
        Some(b'T' | b't') => (&s[..s.len() - 1], 1e12),
        _ => (s, 1.0),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v * mul < u64::MAX as f64 => Ok((v * mul) as u64),
        _ => Err(format!(
            "'{s}' is not a rate in bits per second (e.g. 200M, or 0 for no limit)"
        )),
    }
}

/// Runs the client or server the options ask for, printing to `out`.
pub fn run(node: &Node, opts: &PerfOpts, out: &mut dyn Write) -> Result<()> {
    let mut log;
    let out: &mut dyn Write = match &opts.logfile {
        Some(path) => {
            log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the log file {}", path.display()))?;
            &mut log
        }
        None => out,
    };
    let mut titled;
    let out: &mut dyn Write = match &opts.title {
        Some(title) if !opts.json => {
            titled = Titled {
                out,
                prefix: format!("{title}:  "),
                at_start: true,
            };
            &mut titled
        }
        _ => out,
    };
    if let Some(host) = opts.client {
        let r = client::client(node, opts, SocketAddrV4::new(host, opts.port), out)?;
        if opts.json {
            let v = r.to_json(&host.to_string(), opts.port);
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        } else {
            if opts.interval > 0.0 {
                writeln!(out, "- - - - - - - - - - - - - - - - - - - - - - - - -")?;
            }
            for line in r.summary_lines() {
                writeln!(out, "{line}")?;
            }
            if let Some(text) = r
                .details
                .remote
                .get("server_output_text")
                .and_then(|t| t.as_str())
            {
                writeln!(out, "\nServer output:\n{text}")?;
            }
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
        match server::serve_one(node, &listener, opts.port) {
            Ok(r) => {
                if opts.json {
                    let v = r.to_json("", opts.port);
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                } else {
                    for line in r.summary_lines() {
                        writeln!(out, "{line}")?;
                    }
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

fn server_error(code: i8) -> anyhow::Error {
    match code {
        state::ACCESS_DENIED => anyhow!("the server is busy running a test: try again later"),
        state::SERVER_ERROR => anyhow!("the server reported an error"),
        state::SERVER_TERMINATE => anyhow!("the server terminated the test"),
        state::CLIENT_TERMINATE => anyhow!("the client terminated the test"),
        s => anyhow!("unexpected iperf3 state {s} on the control connection"),
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
