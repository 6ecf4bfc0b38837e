//! What a load run found: per-worker results merged at the end, printed for people or as JSON.

use std::fmt::Write as _;

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Why a request or a connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The server answered the SYN with a RST.
    ConnectRefused,
    /// The SYN went unanswered (retransmitted) for the whole timeout.
    ConnectTimeout,
    /// An established connection was reset with a response under way (or, after one retry,
    /// before any of it).
    Reset,
    /// No progress on a response for the whole timeout.
    Timeout,
    /// What came back does not begin with an HTTP/1.x status line.
    BadStatusLine,
    /// Header fields or body framing that are not HTTP/1.x (a bad length, chunk or coding).
    BadResponse,
    /// The server closed the connection before the response was whole (or, after one retry,
    /// before any of it).
    Truncated,
    /// A response with a 4xx or 5xx status.
    HttpStatus,
    /// No local port or connection slot to open a connection with.
    Local,
    /// HTTPS: the TLS session failed (a certificate refused, a handshake or record error).
    Tls,
}

pub const ERROR_KINDS: [ErrorKind; 10] = [
    ErrorKind::ConnectRefused,
    ErrorKind::ConnectTimeout,
    ErrorKind::Reset,
    ErrorKind::Timeout,
    ErrorKind::BadStatusLine,
    ErrorKind::BadResponse,
    ErrorKind::Truncated,
    ErrorKind::HttpStatus,
    ErrorKind::Local,
    ErrorKind::Tls,
];

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::BadStatusLine => "bad_status_line",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::Truncated => "truncated",
            ErrorKind::HttpStatus => "http_4xx_5xx",
            ErrorKind::Local => "local",
            ErrorKind::Tls => "tls",
        }
    }
}

/// Latencies are recorded in microseconds, from 1 µs to an hour, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// HdrHistogram's standard compressed encoding, base64: the V2 encoding deflated (zlib)
/// behind the compressed-V2 cookie, as Java's `encodeIntoCompressedByteBuffer` and its
/// histogram logs write it and every HdrHistogram implementation reads it.
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    // Writing to a Vec cannot fail; a u64 histogram always has a V2 encoding.
    let _ = V2DeflateSerializer::new().serialize(h, &mut buf);
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// Reads what [`encode_histogram`] (or any HdrHistogram writing the V2 encoding) wrote.
pub fn decode_histogram(s: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| anyhow::anyhow!("not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("not an HdrHistogram V2 encoding: {e:?}"))
}

/// One worker's results, or all of them merged.
#[derive(Debug, Clone)]
pub struct Results {
    /// Latency from when each request was due (open loop; corrected for coordinated
    /// omission) or sent (closed loop).
    pub latency_us: Histogram<u64>,
    /// Latency from when each request was sent: what a tool without the correction reports.
    pub uncorrected_us: Histogram<u64>,
    /// Complete responses.
    pub requests: u64,
    /// Response bytes read (headers and bodies).
    pub bytes: u64,
    pub errors: [u64; ERROR_KINDS.len()],
    /// Connections opened, and the most open at once.
    pub conns_opened: u64,
    pub conns_peak: u64,
    /// Connections still open when the run ended.
    pub conns_at_end: u64,
    /// Connections (ended early or open at the end) that never completed a request: with
    /// keep-alive, every connection held should have completed many.
    pub conns_without_response: u64,
    /// Fewest requests completed on one connection open at the end (`None` with none open).
    pub min_requests_at_end: Option<u64>,
    /// HTTPS: TLS handshakes completed, and how many of them resumed a session.
    pub handshakes: u64,
    pub resumed: u64,
}

impl Default for Results {
    fn default() -> Self {
        Results {
            latency_us: new_histogram(),
            uncorrected_us: new_histogram(),
            requests: 0,
            bytes: 0,
            errors: [0; ERROR_KINDS.len()],
            conns_opened: 0,
            conns_peak: 0,
            conns_at_end: 0,
            conns_without_response: 0,
            min_requests_at_end: None,
            handshakes: 0,
            resumed: 0,
        }
    }
}

impl Results {
    /// Results of one request per latency in `samples` (µs), nothing else: what a report
    /// test or a synthetic run starts from.
    pub fn of_latencies(samples: impl IntoIterator<Item = u64>) -> Results {
        let mut r = Results::default();
        for s in samples {
            // Clamped into range: cannot fail.
            r.latency_us.saturating_record(s.max(1));
            r.uncorrected_us.saturating_record(s.max(1));
            r.requests += 1;
        }
        r
    }

    pub fn error(&mut self, kind: ErrorKind) {
        self.errors[kind as usize] += 1;
    }

    pub fn merge(&mut self, other: &Results) {
        // Same bounds on both sides: cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        let _ = self.uncorrected_us.add(&other.uncorrected_us);
        self.requests += other.requests;
        self.bytes += other.bytes;
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
        self.conns_opened += other.conns_opened;
        // Peaks of different workers may not coincide: their sum bounds the node's peak.
        self.conns_peak += other.conns_peak;
        self.conns_at_end += other.conns_at_end;
        self.conns_without_response += other.conns_without_response;
        self.handshakes += other.handshakes;
        self.resumed += other.resumed;
        self.min_requests_at_end = match (self.min_requests_at_end, other.min_requests_at_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }
}

/// CPU time the load generator's process used (all its threads: workers and the rest), from
/// the kernel's accounting (getrusage).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cpu {
    pub user_s: f64,
    pub system_s: f64,
}

impl Cpu {
    pub fn total_s(&self) -> f64 {
        self.user_s + self.system_s
    }

    /// Seconds of CPU per 100,000 requests (`None` with none).
    pub fn per_100k(&self, requests: u64) -> Option<f64> {
        (requests > 0).then(|| self.total_s() / requests as f64 * 1e5)
    }
}

/// A finished run: merged results over `secs` seconds.
#[derive(Debug, Clone)]
pub struct Report {
    /// The URLs requested in turn.
    pub urls: Vec<String>,
    pub mode: String,
    pub secs: f64,
    pub results: Results,
    /// What the run cost (merged runs: the sum of their costs).
    pub cpu: Cpu,
}

/// The percentiles the text report prints; JSON has these and [`MORE_PERCENTILES`].
const PERCENTILES: [(&str, f64); 4] =
    [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)];
const MORE_PERCENTILES: [(&str, f64); 3] = [("p75", 75.0), ("p99.99", 99.99), ("p99.999", 99.999)];
/// Steps of the JSON spectrum per halving of the distance to 100% (as HdrHistogram's
/// percentile distribution output prints it).
const SPECTRUM_TICKS: u32 = 5;

impl Report {
    pub fn requests_per_sec(&self) -> f64 {
        self.results.requests as f64 / self.secs.max(1e-9)
    }

    pub fn text(&self) -> String {
        let r = &self.results;
        let h = &r.latency_us;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} {} for {:.2} s",
            self.mode,
            self.urls.join(" "),
            self.secs
        );
        let _ = writeln!(
            s,
            "  requests    {} ({:.1}/s), {:.2} MB/s read",
            r.requests,
            self.requests_per_sec(),
            r.bytes as f64 / self.secs.max(1e-9) / 1e6
        );
        let _ = writeln!(
            s,
            "  connections {} opened, {} at most at once, {} open at the end",
            r.conns_opened, r.conns_peak, r.conns_at_end
        );
        let _ = writeln!(
            s,
            "  per conn    {} never completed a request, fewest completed by one open at the end {}",
            r.conns_without_response,
            r.min_requests_at_end
                .map_or_else(|| "-".to_string(), |n| n.to_string())
        );
        let mut lat = String::from("  latency    ");
        for (name, q) in PERCENTILES {
            let _ = write!(lat, " {name} {}", fmt_us(h.value_at_quantile(q / 100.0)));
        }
        let _ = write!(lat, " max {}", fmt_us(h.max()));
        let _ = writeln!(s, "{lat}");
        let u = &r.uncorrected_us;
        if u != h {
            // Open loop: the latency above counts from when each request was due.
            let mut unc = String::from("  uncorrected");
            for (name, q) in PERCENTILES {
                let _ = write!(unc, " {name} {}", fmt_us(u.value_at_quantile(q / 100.0)));
            }
            let _ = write!(unc, " max {} (from when sent)", fmt_us(u.max()));
            let _ = writeln!(s, "{unc}");
        }
        let mut errs = String::from("  errors     ");
        for k in ERROR_KINDS {
            let _ = write!(errs, " {} {}", k.name(), r.errors[k as usize]);
        }
        let _ = writeln!(s, "{errs}");
        if r.handshakes > 0 {
            let _ = writeln!(
                s,
                "  tls         {} handshakes ({:.1}/s), {} of them resumed",
                r.handshakes,
                r.handshakes as f64 / self.secs.max(1e-9),
                r.resumed
            );
        }
        let c = &self.cpu;
        let _ = writeln!(
            s,
            "  cpu         user {:.2} s, system {:.2} s: {} per 100,000 requests",
            c.user_s,
            c.system_s,
            c.per_100k(r.requests)
                .map_or_else(|| "-".to_string(), |x| format!("{x:.3} s"))
        );
        s
    }

    pub fn json(&self) -> Value {
        let r = &self.results;
        let h = &r.latency_us;
        let mut errs = serde_json::Map::new();
        for k in ERROR_KINDS {
            errs.insert(k.name().into(), json!(r.errors[k as usize]));
        }
        json!({
            "url": self.urls.first(),
            "urls": self.urls,
            "mode": self.mode,
            "seconds": self.secs,
            "requests": r.requests,
            "requests_per_sec": self.requests_per_sec(),
            "bytes": r.bytes,
            "bytes_per_sec": r.bytes as f64 / self.secs.max(1e-9),
            "latency_us": latency_json(h),
            "latency_hdr": encode_histogram(h),
            "latency_uncorrected_us": latency_json(&r.uncorrected_us),
            "latency_uncorrected_hdr": encode_histogram(&r.uncorrected_us),
            "tls_handshakes": r.handshakes,
            "tls_handshakes_per_sec": r.handshakes as f64 / self.secs.max(1e-9),
            "tls_resumed": r.resumed,
            "cpu_user_s": self.cpu.user_s,
            "cpu_system_s": self.cpu.system_s,
            "cpu_s_per_100k_requests": self.cpu.per_100k(r.requests),
            "errors": errs,
            "conns_opened": r.conns_opened,
            "conns_peak": r.conns_peak,
            "conns_at_end": r.conns_at_end,
            "conns_without_response": r.conns_without_response,
            "min_requests_at_end": r.min_requests_at_end,
        })
    }
}

/// Percentiles, extremes and the spectrum of `h`.
fn latency_json(h: &Histogram<u64>) -> Value {
    let mut lat = serde_json::Map::new();
    for (name, q) in PERCENTILES.iter().chain(&MORE_PERCENTILES) {
        lat.insert((*name).into(), json!(h.value_at_quantile(q / 100.0)));
    }
    lat.insert("min".into(), json!(h.min()));
    lat.insert("max".into(), json!(h.max()));
    lat.insert("mean".into(), json!(h.mean()));
    lat.insert("stdev".into(), json!(h.stdev()));
    let spectrum: Vec<Value> = h
        .iter_quantiles(SPECTRUM_TICKS)
        .map(|v| {
            json!({
                "percentile": v.quantile_iterated_to() * 100.0,
                "value": v.value_iterated_to(),
                "count": v.count_since_last_iteration(),
            })
        })
        .collect();
    lat.insert("spectrum".into(), json!(spectrum));
    Value::Object(lat)
}

fn fmt_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else if us >= 1000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{us}us")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_results_add_up_and_keep_the_tail() {
        let mut a = Results::default();
        let mut b = Results::default();
        for _ in 0..999 {
            a.latency_us.record(100).unwrap();
        }
        b.latency_us.record(1_000_000).unwrap();
        a.requests = 999;
        b.requests = 1;
        b.error(ErrorKind::Timeout);
        a.min_requests_at_end = Some(7);
        b.min_requests_at_end = Some(3);
        b.conns_without_response = 2;
        a.merge(&b);
        assert_eq!(a.min_requests_at_end, Some(3));
        assert_eq!(a.conns_without_response, 2);
        assert_eq!(a.requests, 1000);
        assert_eq!(a.errors[ErrorKind::Timeout as usize], 1);
        assert!(a.latency_us.max() >= 999_000);
        assert!(a.latency_us.value_at_quantile(0.5) < 200);
        let rep = Report {
            urls: vec!["http://x/".into()],
            mode: "closed".into(),
            secs: 1.0,
            results: a,
            cpu: Cpu {
                user_s: 0.25,
                system_s: 0.75,
            },
        };
        assert_eq!(rep.json()["requests"], 1000);
        assert!(rep.text().contains(" timeout 1"));
        // 1 s of CPU for 1000 requests: 100 s per 100,000.
        assert_eq!(rep.json()["cpu_s_per_100k_requests"], 100.0);
        assert!(rep
            .text()
            .contains("user 0.25 s, system 0.75 s: 100.000 s per 100,000"));
    }
}
