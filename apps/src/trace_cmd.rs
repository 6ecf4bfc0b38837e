//! `tapir trace FILE.pcapng [EXPR]`: decode a capture offline with tapir's decoders, and the
//! application decoders the apps register (HTTP request and status lines).

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use engine::trace::{
    pcapng, DecodeOptions, Decoder, Direction, Filter, FilterError, FrameMeta, LineDecoder,
    PayloadMeta, Transport,
};

/// Options of `tapir trace`.
#[derive(Debug, Clone, Args)]
pub struct TraceOpts {
    /// The capture to decode (pcapng, as written by --pcap, tcpdump or Wireshark).
    #[arg(value_name = "FILE.pcapng")]
    pub file: PathBuf,
    /// Which packets to print, e.g. `tcp and port 80`, `not arp`, `src host 10.0.0.1`,
    /// `(icmp or udp) and in`. The words may be given as one argument or several, and the
    /// options before or after them (`tapir trace FILE tcp -v`, as tcpdump takes them).
    #[arg(value_name = "EXPR")]
    pub expr: Vec<String>,
    /// More detail: -v IP fields and checksum status, -vv also IP header checksums.
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print the Ethernet header.
    #[arg(short = 'e')]
    pub link: bool,
    /// Absolute TCP sequence numbers.
    #[arg(short = 'S')]
    pub absolute: bool,
}

impl TraceOpts {
    /// The filter the arguments describe (`None`: every packet).
    pub fn filter(&self) -> Result<Option<Filter>, FilterError> {
        let expr = self.expr.join(" ");
        if expr.trim().is_empty() {
            return Ok(None);
        }
        Filter::parse(&expr).map(Some)
    }
}

/// The HTTP decoder: the request line of a request, the status line of a response. Other
/// segments of the stream (bodies, continuations) get nothing.
#[derive(Debug, Clone)]
pub struct HttpDecoder {
    pub ports: Vec<u16>,
}

impl Default for HttpDecoder {
    fn default() -> Self {
        HttpDecoder {
            ports: vec![80, 8080],
        }
    }
}

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];

impl Decoder for HttpDecoder {
    fn matches(&self, meta: &PayloadMeta) -> bool {
        meta.transport == Transport::Tcp && self.ports.iter().any(|&p| meta.has_port(p))
    }

    fn decode(&self, payload: &[u8], out: &mut String) {
        let head = &payload[..payload.len().min(256)];
        let end = head
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or(head.len());
        let Ok(line) = std::str::from_utf8(&head[..end]) else {
            return;
        };
        if line.chars().any(|c| c.is_control()) {
            return;
        }
        let first = line.split(' ').next().unwrap_or("");
        let is_status = first.starts_with("HTTP/1.") || first == "HTTP/2";
        let is_request = METHODS.contains(&first) && line.contains(" HTTP/");
        if is_status || is_request {
            out.push_str("HTTP: ");
            out.push_str(line);
        }
    }
}

/// The decoders the apps register with every tracer.
pub fn app_decoders() -> Vec<Arc<dyn Decoder>> {
    vec![Arc::new(HttpDecoder::default())]
}

/// Decodes `opts.file` to `out`, one line per packet that passes `filter`, with its comments
/// (stack events) on indented `#` lines below it. Returns the number of packets printed.
pub fn run(opts: &TraceOpts, filter: Option<&Filter>, out: &mut dyn Write) -> Result<usize> {
    let bytes = std::fs::read(&opts.file)
        .with_context(|| format!("cannot read {}", opts.file.display()))?;
    let packets = pcapng::read(&bytes).with_context(|| {
        format!(
            "{} is not a capture tapir can read (pcapng expected)",
            opts.file.display()
        )
    })?;
    let mut decoder = LineDecoder::new(DecodeOptions {
        verbosity: opts.verbose,
        link: opts.link,
        absolute_seq: opts.absolute,
        no_prefix: false,
    });
    for d in app_decoders() {
        decoder.register(d);
    }
    let mut printed = 0;
    let mut line = String::new();
    for p in &packets {
        // Direction unknown (a capture from another tool): taken as inbound.
        let dir = p.dir.unwrap_or(Direction::In);
        if p.link_type != 1 {
            continue;
        }
        if let Some(f) = filter {
            if !f.matches(dir, &p.data) {
                continue;
            }
        }
        line.clear();
        let meta = FrameMeta {
            ts_micros: p.ts_micros,
            queue: p.queue(),
            dir,
        };
        decoder.decode(&meta, &p.data, &mut line);
        line.push('\n');
        for c in &p.comments {
            line.push_str("    # ");
            line.push_str(c);
            line.push('\n');
        }
        match out.write_all(line.as_bytes()) {
            Ok(()) => printed += 1,
            // `tapir trace x | head`: the reader left; that is not a failure.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(printed),
            Err(e) => return Err(e).context("cannot write the trace"),
        }
    }
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e).context("cannot write the trace"),
        _ => Ok(printed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn http(payload: &[u8]) -> String {
        let mut s = String::new();
        HttpDecoder::default().decode(payload, &mut s);
        s
    }

    #[test]
    fn request_and_status_lines() {
        assert_eq!(
            http(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"),
            "HTTP: GET /index.html HTTP/1.1"
        );
        assert_eq!(
            http(b"HTTP/1.1 404 Not Found\r\n\r\n"),
            "HTTP: HTTP/1.1 404 Not Found"
        );
        assert_eq!(http(b"body bytes"), "");
        assert_eq!(http(b"GET \x01 HTTP/1.1\r\n"), "");
        assert_eq!(http(&[0xff, 0xfe, 0x00]), "");
        assert_eq!(http(b""), "");
    }

    #[test]
    fn matches_tcp_on_http_ports_only() {
        let mut m = PayloadMeta {
            transport: Transport::Tcp,
            src: Ipv4Addr::LOCALHOST,
            dst: Ipv4Addr::LOCALHOST,
            src_port: 40000,
            dst_port: 80,
            dir: Direction::In,
        };
        let d = HttpDecoder::default();
        assert!(d.matches(&m));
        m.transport = Transport::Udp;
        assert!(!d.matches(&m));
        m.transport = Transport::Tcp;
        m.dst_port = 22;
        assert!(!d.matches(&m));
    }
}
