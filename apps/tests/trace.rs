//! Tracing end to end: a capture written by tapir's trace ring is read by tshark without
//! warnings and with the same addresses, ports, flags, sequence numbers and comments as
//! tapir's own decoders print; `tapir trace` decodes it offline and filters it; a bad filter is
//! a usage error. No network traffic: the frames are built in memory.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use engine::trace::event::ConnId;
use engine::trace::{
    self, sample, DecodeOptions, Direction, FrameMeta, LineDecoder, RetransmitReason, StackEvent,
    TraceConfig,
};
use protocols::iface::DropReason;
use protocols::tcp::State;

const TAPIR: &str = env!("CARGO_BIN_EXE_tapir");

/// A capture file removed when the test ends, pass or fail.
struct TempCapture(PathBuf);

impl TempCapture {
    fn new(tag: &str) -> TempCapture {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempCapture(std::env::temp_dir().join(format!(
            "tapir-trace-{tag}-{}-{n}.pcapng",
            std::process::id()
        )))
    }
}

impl Drop for TempCapture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn conn() -> ConnId {
    ConnId {
        local: (sample::NODE, sample::HTTP_PORT),
        remote: (sample::HOST, sample::CLIENT_PORT),
    }
}

/// The frames of the capture with the queue each goes on, its timestamp, and the comments
/// expected on it.
struct Written {
    frame: Vec<u8>,
    dir: Direction,
    queue: u16,
    ts: u64,
    comments: Vec<String>,
}

const T0: u64 = 1_700_000_000_000_000;

/// Writes the sample session through the trace ring into `path`: TCP on queue 1, the rest on
/// queue 0; the handshake's last ACK carries a state change, the retransmission an RTO and a
/// retransmit event, and the DNS answer is recorded as dropped.
fn write_capture(path: &Path) -> Vec<Written> {
    let file = BufWriter::new(File::create(path).unwrap());
    let (tracer, writer) = trace::start(TraceConfig {
        queues: 2,
        pcap: Some(Box::new(file)),
        ..TraceConfig::default()
    })
    .unwrap();
    let mut written = Vec::new();
    for (i, f) in sample::session().into_iter().enumerate() {
        let ts = T0 + 1000 * i as u64;
        let tcp = f.what.contains("syn")
            || ["ack", "request", "response", "retransmission"].contains(&f.what);
        let queue = u16::from(tcp);
        let mut events = Vec::new();
        let mut drop = None;
        match f.what {
            "ack" => events.push(StackEvent::TcpState {
                conn: conn(),
                from: State::SynReceived,
                to: State::Established,
            }),
            "retransmission" => {
                events.push(StackEvent::RtoFired {
                    conn: conn(),
                    rto_ms: 200,
                    backoff: 1,
                });
                events.push(StackEvent::Retransmit {
                    conn: conn(),
                    seq: sample::SERVER_ISN + 1,
                    len: sample::RESPONSE.len() as u32,
                    reason: RetransmitReason::Rto,
                });
            }
            "dns answer" => drop = Some(DropReason::UdpNoListener),
            _ => {}
        }
        let mut comments: Vec<String> = drop.iter().map(|r| format!("dropped: {r}")).collect();
        comments.extend(events.iter().map(|e| e.to_string()));
        tracer.frame_with_events(ts, queue, f.dir, &f.frame, drop, &events);
        written.push(Written {
            frame: f.frame,
            dir: f.dir,
            queue,
            ts,
            comments,
        });
    }
    let stats = writer.finish();
    assert_eq!(stats.recorded, written.len() as u64);
    assert_eq!(stats.ring_full, 0);
    written
}

/// False (and the test returns early) only when the caller asked to skip tool tests; a missing
/// tshark fails the test, so a CI without it cannot pass by skipping.
fn tshark_allowed() -> bool {
    if std::env::var_os("TAPIR_SKIP_INTEROP").is_some() {
        eprintln!("TAPIR_SKIP_INTEROP set: skipping");
        return false;
    }
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "tshark is missing: run scripts/setup (or set TAPIR_SKIP_INTEROP=1 to skip)"
    );
    true
}

fn tshark(args: &[&str]) -> String {
    let out = Command::new("tshark")
        .args([
            "-n",
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
        ])
        .args(["-o", "udp.check_checksum:TRUE"])
        .args(args)
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn tshark_reads_the_capture_without_warnings() {
    if !tshark_allowed() {
        return;
    }
    let cap = TempCapture::new("verbose");
    let written = write_capture(&cap.0);
    let path = cap.0.to_str().unwrap();
    let v = tshark(&["-r", path, "-V"]);
    assert!(!v.contains("Malformed"), "{v}");
    assert!(!v.contains("Expert Info (Warning"), "{v}");
    assert!(!v.contains("Expert Info (Error"), "{v}");
    assert!(!v.contains("[incorrect"), "{v}");
    assert_eq!(v.matches("\nFrame ").count() + 1, written.len(), "{v}");
    assert!(v.contains("Interface name: tapir-q0"), "{v}");
    assert!(v.contains("Interface name: tapir-q1"), "{v}");
    assert!(
        v.contains("Direction: Inbound") && v.contains("Direction: Outbound"),
        "{v}"
    );
    assert!(
        v.contains("Dynamic Host Configuration Protocol (Discover)"),
        "{v}"
    );
    assert!(v.contains("Domain Name System (query)"), "{v}");
    assert!(v.contains("Domain Name System (response)"), "{v}");
    assert!(
        v.contains("example.com: type A, class IN, addr 10.9.0.80"),
        "{v}"
    );
    assert!(v.contains("(suspected) retransmission"), "{v}");
    assert!(v.contains("Hypertext Transfer Protocol"), "{v}");
}

/// tcpdump flag letters to the TCP flag bits.
fn flag_bits(letters: &str) -> u16 {
    letters
        .chars()
        .map(|c| match c {
            'F' => 0x01,
            'S' => 0x02,
            'R' => 0x04,
            'P' => 0x08,
            '.' => 0x10,
            'U' => 0x20,
            'E' => 0x40,
            'W' => 0x80,
            _ => 0,
        })
        .sum()
}

/// What tapir's decoder says of a frame, in tshark's terms: ip.src, ip.dst, tcp.srcport,
/// tcp.dstport, tcp.flags, tcp.seq_raw (empty when not IPv4 / not TCP).
fn tapir_fields(frame: &[u8], dir: Direction) -> [String; 6] {
    let mut d = LineDecoder::new(DecodeOptions {
        absolute_seq: true,
        no_prefix: true,
        ..DecodeOptions::default()
    });
    let mut line = String::new();
    let meta = FrameMeta {
        ts_micros: 0,
        queue: 0,
        dir,
    };
    d.decode(&meta, frame, &mut line);
    let mut f: [String; 6] = Default::default();
    let Some(rest) = line.strip_prefix("IP ") else {
        return f;
    };
    let (addrs, after) = rest.split_once(": ").unwrap();
    let (src, dst) = addrs.split_once(" > ").unwrap();
    let Some(flags) = after.strip_prefix("Flags [") else {
        // Not TCP: the addresses are the ones without a port.
        let host = |s: &str| s.split('.').take(4).collect::<Vec<_>>().join(".");
        f[0] = host(src);
        f[1] = host(dst);
        return f;
    };
    let split = |s: &str| {
        let (a, p) = s.rsplit_once('.').unwrap();
        (a.to_string(), p.to_string())
    };
    (f[0], f[2]) = split(src);
    (f[1], f[3]) = split(dst);
    let (letters, after) = flags.split_once(']').unwrap();
    f[4] = format!("0x{:04x}", flag_bits(letters));
    let seq = after
        .split(", ")
        .find_map(|p| p.strip_prefix("seq "))
        .unwrap_or("");
    f[5] = seq.split(':').next().unwrap().to_string();
    f
}

#[test]
fn tshark_fields_agree_with_tapirs_lines_and_comments_sit_on_their_packets() {
    if !tshark_allowed() {
        return;
    }
    let cap = TempCapture::new("fields");
    let written = write_capture(&cap.0);
    let path = cap.0.to_str().unwrap();
    let out = tshark(&[
        "-r",
        path,
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-E",
        "aggregator=;",
        "-e",
        "ip.src",
        "-e",
        "ip.dst",
        "-e",
        "tcp.srcport",
        "-e",
        "tcp.dstport",
        "-e",
        "tcp.flags",
        "-e",
        "tcp.seq_raw",
        "-e",
        "frame.comment",
        "-e",
        "frame.interface_name",
        "-e",
        "frame.time_epoch",
    ]);
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), written.len(), "{out}");
    for (row, w) in rows.iter().zip(&written) {
        let cols: Vec<&str> = row.split('|').collect();
        assert_eq!(cols.len(), 9, "{row}");
        let ours = tapir_fields(&w.frame, w.dir);
        // A later fragment: tshark shows no ports, and neither do we.
        let mut want: Vec<&str> = ours.iter().map(String::as_str).collect();
        if want[4] == "0x0010" && want[5].is_empty() {
            // tcpdump style prints no sequence number on a bare ACK; nothing to compare.
            want[5] = cols[5];
        }
        assert_eq!(&cols[..6], &want[..], "tshark row {row}");
        let comments: Vec<&str> = if cols[6].is_empty() {
            Vec::new()
        } else {
            cols[6].split(';').collect()
        };
        assert_eq!(comments, w.comments, "comments of {row}");
        assert_eq!(cols[7], format!("tapir-q{}", w.queue), "{row}");
        let ts: f64 = cols[8].parse().unwrap();
        assert!((ts - w.ts as f64 / 1e6).abs() < 1e-5, "{row}");
    }
    // The rows that matter, named: the retransmission carries its events.
    assert!(
        rows[9].contains("retransmit seq 7000001 len 40 (rto)"),
        "{}",
        rows[9]
    );
    assert!(
        rows[11].contains("dropped: udp_no_listener"),
        "{}",
        rows[11]
    );
}

fn text_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tapir_trace(args: &[&str]) -> Output {
    Command::new(TAPIR)
        .arg("trace")
        .args(args)
        .output()
        .expect("run tapir trace")
}

#[test]
fn tapir_trace_prints_the_capture_and_filters_it() {
    let cap = TempCapture::new("cmd");
    write_capture(&cap.0);
    let path = cap.0.to_str().unwrap();
    let out = tapir_trace(&[path]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let want = [
        "22:13:20.000000 out q0 ARP, Request who-has 10.9.0.1 tell 10.9.0.2, length 28",
        "22:13:20.001000 in q0 ARP, Reply 10.9.0.1 is-at 52:54:00:00:00:01, length 28",
        "22:13:20.002000 in q0 IP 10.9.0.1 > 10.9.0.2: ICMP echo request, id 16962, seq 1, length 64",
        "22:13:20.003000 out q0 IP 10.9.0.2 > 10.9.0.1: ICMP echo reply, id 16962, seq 1, length 64",
        "22:13:20.004000 in q1 IP 10.9.0.1.40000 > 10.9.0.2.80: Flags [S], seq 1000000, win 64240, options [mss 1460,nop,wscale 7,sackOK,TS val 1000 ecr 0], length 0",
        "22:13:20.005000 out q1 IP 10.9.0.2.80 > 10.9.0.1.40000: Flags [S.], seq 7000000, ack 1000001, win 64240, options [mss 1460,nop,wscale 7,sackOK,TS val 1000 ecr 1], length 0",
        "22:13:20.006000 in q1 IP 10.9.0.1.40000 > 10.9.0.2.80: Flags [.], ack 1, win 64240, options [nop,nop,TS val 1001 ecr 1], length 0",
        "    # tcp 10.9.0.2:80-10.9.0.1:40000: state SYN-RECEIVED -> ESTABLISHED",
        "22:13:20.007000 in q1 IP 10.9.0.1.40000 > 10.9.0.2.80: Flags [P.], seq 1:41, ack 1, win 64240, options [nop,nop,TS val 1001 ecr 1], length 40: HTTP: GET /index.html HTTP/1.1",
        "22:13:20.008000 out q1 IP 10.9.0.2.80 > 10.9.0.1.40000: Flags [P.], seq 1:41, ack 41, win 64240, options [nop,nop,TS val 1001 ecr 41], length 40: HTTP: HTTP/1.1 200 OK",
        "22:13:20.009000 out q1 IP 10.9.0.2.80 > 10.9.0.1.40000: Flags [P.], seq 1:41, ack 41, win 64240, options [nop,nop,TS val 1001 ecr 41], length 40: HTTP: HTTP/1.1 200 OK",
        "    # tcp 10.9.0.2:80-10.9.0.1:40000: rto fired (200 ms, backoff 1)",
        "    # tcp 10.9.0.2:80-10.9.0.1:40000: retransmit seq 7000001 len 40 (rto)",
        "22:13:20.010000 out q0 IP 10.9.0.2.53124 > 10.9.0.53.53: 43981+ A? example.com. (29)",
        "22:13:20.011000 in q0 IP 10.9.0.53.53 > 10.9.0.2.53124: 43981 1/0/0 A 10.9.0.80 (45)",
        "    # dropped: udp_no_listener",
        "22:13:20.012000 out q0 IP 0.0.0.0.68 > 255.255.255.255.67: BOOTP/DHCP, Request from 52:54:00:00:00:02, length 300, xid 0x3903f326, DHCP Discover",
        "22:13:20.013000 in q0 IP 10.9.0.1 > 10.9.0.2: udp (frag 4660:100@1480)",
    ];
    assert_eq!(lines, want);

    let out = tapir_trace(&[path, "tcp", "and", "src", "port", "80"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let heads: Vec<&str> = text.lines().filter(|l| !l.starts_with("    #")).collect();
    assert_eq!(heads.len(), 3, "{text}");
    assert!(
        heads.iter().all(|l| l.contains("IP 10.9.0.2.80 > ")),
        "{text}"
    );

    // Options after the filter are options, not filter words (tcpdump takes them anywhere).
    let before = tapir_trace(&["-v", "-e", path, "icmp"]);
    let after = tapir_trace(&[path, "icmp", "-v", "-e"]);
    assert!(after.status.success(), "{after:?}");
    assert_eq!(text_of(&after), text_of(&before));
    assert!(text_of(&after).contains("ICMP echo"), "{}", text_of(&after));

    let out = tapir_trace(&[path, "arp or (udp and in)"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let heads: Vec<&str> = text.lines().filter(|l| !l.starts_with("    #")).collect();
    assert_eq!(heads.len(), 4, "{text}");

    let out = tapir_trace(&["-vv", "-e", "-S", path, "icmp"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("52:54:00:00:00:01 > 52:54:00:00:00:02, ethertype IPv4 (0x0800), length 98: IP (tos 0x0, ttl 64"), "{text}");
}

#[test]
fn a_bad_filter_is_a_usage_error() {
    let cap = TempCapture::new("bad");
    write_capture(&cap.0);
    let out = tapir_trace(&[cap.0.to_str().unwrap(), "tcp and port"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("trace filter: expected a port number (0-65535) after 'port' at column 13"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_missing_or_foreign_file_fails_clearly() {
    let out = tapir_trace(&["/nonexistent/tapir.pcapng"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("cannot read /nonexistent/tapir.pcapng"),
        "{err}"
    );

    let cap = TempCapture::new("foreign");
    std::fs::write(&cap.0, b"this is not a capture at all").unwrap();
    let out = tapir_trace(&[cap.0.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("not a capture tapir can read"), "{err}");
}
