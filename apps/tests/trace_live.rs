//! Live tracing on a node in a lab: `--trace` lines on stdout and a `--pcap` capture written
//! while the kernel pings the node and talks TCP to it through `--impair` loss; tshark reads
//! the capture without complaint, and the stack's events ride on the packets as comments.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use tapir_apps::lab::Lab;

mod common;
use common::{interop_allowed, kernel, random_bytes};

const TAPIR: &str = env!("CARGO_BIN_EXE_tapir");

#[test]
fn a_live_capture_reads_in_tshark_with_stack_events_as_comments() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("tl").expect("lab");
    let pcap = std::env::temp_dir().join(format!("tapir-live-{}.pcapng", std::process::id()));
    let mut child = Command::new(TAPIR)
        .arg("serve")
        .args(lab.node_args())
        .args(["--impair", "loss=0.05,seed=3", "--trace", "icmp", "--pcap"])
        .arg(&pcap)
        .arg("echo")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tapir serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut start = String::new();
    stdout.read_line(&mut start).expect("start line");
    assert!(start.starts_with("tapir @ "), "{start}");

    // Lossy both ways: a ping may need several tries, the transfer retransmits.
    let ping = lab
        .command("ping")
        .args(["-c", "10", "-i", "0.05", "-W", "1", "10.7.0.2"])
        .output()
        .expect("ping");
    assert!(String::from_utf8_lossy(&ping.stdout).contains(" received"));
    let data = random_bytes(400_000, 11);
    let back = kernel(&lab, || {
        let addr = SocketAddr::V4(SocketAddrV4::new(lab.node.address(), 7));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut back = Vec::new();
        std::thread::scope(|sc| {
            sc.spawn(|| {
                w.write_all(&data).unwrap();
                w.shutdown(std::net::Shutdown::Write).unwrap();
            });
            s.read_to_end(&mut back).expect("echo");
        });
        back
    });
    assert!(back == data, "echo through loss differs");

    // SIGTERM: the node shuts down cleanly and closes the capture.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
    let mut lines = String::new();
    stdout.read_to_string(&mut lines).unwrap();
    assert!(lines.contains("ICMP echo request"), "trace lines: {lines}");
    assert!(
        !lines.contains(" tcp ") && !lines.contains("Flags ["),
        "the filter let only ICMP through: {lines}"
    );

    let out = Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args([
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
            "-V",
        ])
        .output()
        .expect("run tshark");
    let verbose = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !verbose.contains("Malformed"),
        "malformed packets in the capture"
    );
    assert!(verbose.contains("Internet Control Message Protocol"));
    let comments = Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args(["-Y", "frame.comment", "-T", "fields", "-e", "frame.comment"])
        .output()
        .expect("run tshark");
    let comments = String::from_utf8_lossy(&comments.stdout);
    assert!(
        comments.contains("state SYN-RECEIVED -> ESTABLISHED"),
        "comments: {comments}"
    );
    assert!(
        comments.contains("retransmit seq"),
        "a retransmission under 5% loss: {comments}"
    );
    let _ = std::fs::remove_file(&pcap);
}

/// A `tapir serve` on the lab with a `--pcap` capture, stopped by SIGTERM (which closes the
/// capture); its standard error comes back from [`Served::stop`].
struct Served {
    child: std::process::Child,
    pcap: Option<TempFile>,
}

/// A file removed on drop.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Served {
    fn start(lab: &Lab, tag: &str, extra: &[&str], services: &[&str]) -> Served {
        let pcap =
            std::env::temp_dir().join(format!("tapir-live-{tag}-{}.pcapng", std::process::id()));
        let mut child = Command::new(TAPIR)
            .arg("serve")
            .args(lab.node_args())
            .arg("--pcap")
            .arg(&pcap)
            .args(extra)
            .args(services)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tapir serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut start = String::new();
        stdout.read_line(&mut start).expect("start line");
        assert!(start.starts_with("tapir @ "), "{start}");
        Served {
            child,
            pcap: Some(TempFile(pcap)),
        }
    }

    /// SIGTERM, wait, and the capture read back (with tapir's reader) and standard error.
    fn stop(mut self) -> (engine::trace::pcapng::Capture, String, TempFile) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().expect("wait");
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut err).unwrap();
        }
        assert!(status.success(), "{status}: {err}");
        let pcap = self.pcap.take().expect("the capture");
        let bytes = std::fs::read(&pcap.0).expect("read the capture");
        let c = engine::trace::pcapng::read_capture(&bytes).expect("tapir reads its capture");
        (c, err, pcap)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kernel sends `n` bytes to tapir's discard service and closes.
fn send_to_discard(lab: &Lab, n: usize) {
    let data = random_bytes(n, 5);
    kernel(lab, || {
        let addr = SocketAddr::V4(SocketAddrV4::new(lab.node.address(), 9));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(&data).expect("send");
        s.shutdown(std::net::Shutdown::Write).unwrap();
        // Discard closes after the FIN: the whole transfer is on the wire.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
}

/// tshark's frame length and captured length of every frame.
fn tshark_lengths(pcap: &std::path::Path) -> Vec<(usize, usize)> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-T", "fields", "-e", "frame.len", "-e", "frame.cap_len"])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut f = l.split('\t').map(|n| n.trim().parse::<usize>().expect(l));
            (f.next().unwrap(), f.next().unwrap())
        })
        .collect()
}

/// With offloads on, tapir leaves its TCP checksums to the kernel (`F_NEEDS_CSUM`); while a
/// capture runs it finishes them itself, so its segments are captured as they go on the wire:
/// tshark, checking checksums, finds every TCP segment tapir sent correct.
#[test]
fn segments_tapir_leaves_to_the_kernel_to_checksum_are_captured_with_their_checksum() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("ts").expect("lab");
    let served = Served::start(&lab, "sum", &["--queues", "1"], &["discard"]);
    send_to_discard(&lab, 20_000);
    let (_, _, pcap) = served.stop();
    let filter = format!("ip.src == {} && tcp", lab.node.address());
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap.0)
        .args(["-o", "tcp.check_checksum:TRUE", "-Y", &filter])
        .args(["-T", "fields", "-e", "tcp.checksum.status"])
        .output()
        .expect("run tshark");
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Vec<&str> = status.lines().map(str::trim).collect();
    assert!(all.len() >= 3, "SYN-ACK, ACKs, FIN: {all:?}");
    // 1: good (0 bad, 2 unverified).
    assert!(
        all.iter().all(|s| *s == "1"),
        "checksum status of tapir's segments: {all:?}"
    );
}

#[test]
fn an_offloaded_transfer_is_captured_whole_and_snaplen_cuts_it() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("tw").expect("lab");
    // Offload on (the default): the kernel hands tapir GRO/TSO frames of up to 64 KiB.
    let served = Served::start(&lab, "whole", &["--queues", "1"], &["discard"]);
    send_to_discard(&lab, 1 << 20);
    let (c, _, pcap) = served.stop();
    let lengths = tshark_lengths(&pcap.0);
    let biggest = c.packets.iter().map(|p| p.orig_len).max().unwrap_or(0);
    assert!(
        biggest > 9216,
        "no offloaded frame in the capture (biggest {biggest})"
    );
    for p in &c.packets {
        assert_eq!(p.data.len(), p.orig_len as usize, "a frame was cut");
    }
    assert_eq!(lengths.len(), c.packets.len());
    assert!(
        lengths.iter().all(|(len, cap)| len == cap),
        "tshark: {lengths:?}"
    );

    let served = Served::start(
        &lab,
        "snap",
        &["--queues", "1", "--snaplen", "128"],
        &["discard"],
    );
    send_to_discard(&lab, 1 << 20);
    let (c, _, pcap) = served.stop();
    let lengths = tshark_lengths(&pcap.0);
    assert!(c.packets.iter().any(|p| p.orig_len > 9216));
    for p in &c.packets {
        assert_eq!(p.data.len(), (p.orig_len as usize).min(128));
    }
    assert!(
        lengths.iter().all(|&(len, cap)| cap == len.min(128)),
        "tshark: {lengths:?}"
    );
}

#[test]
fn capture_drops_are_counted_at_exit_and_in_the_interface_statistics() {
    if !interop_allowed() {
        return;
    }
    // A one-slot ring cannot keep the hundreds of frames of 1 MiB.
    let (c, err, pcap) = one_mib_through_a_one_slot_ring("drops", &[]);
    let line = err
        .lines()
        .find(|l| l.starts_with("pcap: ") && l.ends_with(" frames not captured (ring full)"))
        .unwrap_or_else(|| panic!("no drop line on stderr: {err}"));
    let said: u64 = line["pcap: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(said > 0);
    assert_eq!(c.stats.len(), 1, "one ISB per queue");
    let isb = &c.stats[0];
    let (recv, drop) = (isb.ifrecv.unwrap(), isb.ifdrop.unwrap());
    assert_eq!(drop, said);
    assert_eq!(
        recv - drop,
        c.packets.len() as u64,
        "dropped = seen - written"
    );
    // Wireshark's tools read the statistics block too.
    let out = Command::new("capinfos")
        .arg(&pcap.0)
        .output()
        .expect("run capinfos");
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        info.contains("Number of stat entries = 1"),
        "capinfos: {info}"
    );
}

#[test]
fn pcap_wait_makes_the_workers_wait_so_a_one_slot_ring_misses_nothing() {
    if !interop_allowed() {
        return;
    }
    // The same load that a one-slot ring drops most of (the test above), with back-pressure.
    let (c, err, _pcap) = one_mib_through_a_one_slot_ring("wait", &["--pcap-wait"]);
    assert!(
        !err.contains("not captured"),
        "a waiting capture drops nothing: {err}"
    );
    let isb = &c.stats[0];
    assert_eq!(isb.ifdrop, Some(0), "{err}");
    assert_eq!(isb.ifrecv, Some(c.packets.len() as u64));
    // 1 MiB without offloads is over 700 data segments in, and their ACKs out.
    assert!(c.packets.len() > 700, "{} frames", c.packets.len());
    // Every byte the kernel sent is in the capture: the data segments to port 9, each sequence
    // number once (a retransmission repeats one), add up to what was sent.
    let mut segments = std::collections::BTreeMap::new();
    for p in &c.packets {
        if let Some((seq, len @ 1..)) = segment_to_discard(&p.data) {
            segments.insert(seq, len);
        }
    }
    let payload: usize = segments.values().sum();
    assert_eq!(payload, 1 << 20, "payload bytes in the capture");
}

/// Without offloads, 1 MiB to discard is hundreds of frames: the load both one-slot-ring tests
/// capture, with `extra` options. The capture, tapir's standard error, and the file.
fn one_mib_through_a_one_slot_ring(
    tag: &str,
    extra: &[&str],
) -> (engine::trace::pcapng::Capture, String, TempFile) {
    let lab = Lab::up("tr").expect("lab");
    let mut args = vec!["--queues", "1", "--offload", "off", "--pcap-ring", "1"];
    args.extend_from_slice(extra);
    let served = Served::start(&lab, tag, &args, &["discard"]);
    send_to_discard(&lab, 1 << 20);
    served.stop()
}

/// A TCP segment to the discard port: its sequence number and payload length.
fn segment_to_discard(frame: &[u8]) -> Option<(u32, usize)> {
    use protocols::wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, TcpPacket};
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.protocol() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    (tcp.dst_port() == 9).then(|| (tcp.seq_number().0, tcp.payload().len()))
}

fn kernel_arp(frame: &[u8]) -> bool {
    frame.len() >= 42 && frame[12..14] == [0x08, 0x06] && frame[28..32] == [10, 7, 0, 1]
}

#[test]
fn a_two_queue_node_captures_each_arp_frame_once() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("ta").expect("lab");
    let served = Served::start(&lab, "arp", &["--queues", "2"], &["echo"]);
    let wire =
        common::capture::Capture::open_map(&lab.ns, &lab.tap, |f| kernel_arp(f).then_some(()));
    let flush = lab
        .command("ip")
        .args(["neigh", "flush", "dev", &lab.tap])
        .status()
        .expect("ip neigh flush");
    assert!(flush.success());
    let ping = lab
        .command("ping")
        .args(["-c", "1", "-W", "2", "10.7.0.2"])
        .output()
        .expect("ping");
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let sent = wire.stop().len();
    let (c, _, _pcap) = served.stop();
    let captured = c
        .packets
        .iter()
        .filter(|p| p.dir == Some(engine::trace::Direction::In) && kernel_arp(&p.data))
        .count();
    assert!(sent >= 1, "the kernel sent no ARP after the flush");
    assert_eq!(
        captured, sent,
        "ARP frames from the kernel: captured vs on the wire"
    );
}

/// Reads lines from the shell until one starts with `prefix`; returns it and the lines before.
fn line_starting(out: &mut impl BufRead, prefix: &str) -> (String, String) {
    let mut seen = String::new();
    loop {
        let mut l = String::new();
        if out.read_line(&mut l).expect("shell output") == 0 {
            panic!("no line starting {prefix:?} in: {seen}");
        }
        if l.starts_with(prefix) {
            return (l, seen);
        }
        seen.push_str(&l);
    }
}

/// The first number after `after` in `line`.
fn number_after(line: &str, after: &str) -> u64 {
    let at = line
        .find(after)
        .unwrap_or_else(|| panic!("{after:?} in {line:?}"))
        + after.len();
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("a number after {after:?} in {line:?}"))
}

#[test]
fn the_shell_shows_capture_drops_and_takes_a_snap_length() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("ts").expect("lab");
    let first = TempFile(
        std::env::temp_dir().join(format!("tapir-live-shell1-{}.pcapng", std::process::id())),
    );
    let second = TempFile(
        std::env::temp_dir().join(format!("tapir-live-shell2-{}.pcapng", std::process::id())),
    );
    let mut child = Command::new(TAPIR)
        .arg("node")
        .args(lab.node_args())
        .args([
            "--queues",
            "1",
            "--offload",
            "off",
            "--pcap-ring",
            "1",
            "--pcap",
        ])
        .arg(&first.0)
        .args(["--serve", "discard"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tapir node");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut node = common::Proc(child);
    line_starting(&mut out, "tapir @ ");

    // Hundreds of frames through a one-slot ring: most are not captured, and stats says so.
    send_to_discard(&lab, 1 << 20);
    // `pcap stop` after `stats`: its line ends what stats printed, so a missing line fails
    // rather than waits.
    stdin.write_all(b"stats\npcap stop\n").unwrap();
    let (closed, before) = line_starting(&mut out, "capture closed: ");
    let stats = before
        .lines()
        .find(|l| l.starts_with("pcap: "))
        .unwrap_or_else(|| panic!("no pcap line in stats: {before}"));
    let written = number_after(stats, "pcap: ");
    let missed = number_after(stats, "written, ");
    assert!(stats.ends_with(" not captured (ring full)"), "{stats}");
    assert!(missed > 0 && written > 0, "{stats}");
    assert!(number_after(&closed, "written, ") >= missed, "{closed}");
    let c = engine::trace::pcapng::read_capture(&std::fs::read(&first.0).unwrap()).unwrap();
    assert_eq!(c.stats[0].ifdrop, Some(number_after(&closed, "written, ")));

    // pcap start -s N: frames cut to N bytes.
    let cmd = format!("pcap start -s 100 {}\n", second.0.display());
    stdin.write_all(cmd.as_bytes()).unwrap();
    line_starting(&mut out, "capturing to ");
    send_to_discard(&lab, 100_000);
    stdin.write_all(b"pcap stop\nquit\n").unwrap();
    line_starting(&mut out, "capture closed: ");
    let status = node.0.wait().expect("wait");
    assert!(status.success(), "{status}");
    let c = engine::trace::pcapng::read_capture(&std::fs::read(&second.0).unwrap()).unwrap();
    assert!(c.packets.iter().any(|p| p.orig_len > 100));
    for p in &c.packets {
        assert_eq!(p.data.len(), (p.orig_len as usize).min(100));
    }
}
