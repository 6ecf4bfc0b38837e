//! Hostile input against a live tapir, in a private lab namespace (`tapir-hostile-PID-N`,
//! removed on every path by `Lab`'s Drop): fragments both ways with the kernel, a SYN flood, a
//! fragment flood, 10,000 random and mutated frames during a bulk transfer, an nmap scan, and
//! spoofed RST/SYN in the window of a live connection, ARP spoofing (hostile/arp.rs). Needs root, /dev/net/tun, hping3 and nmap
//! (`scripts/setup` installs them). Every flood is bounded in time and count, aimed at tapir's
//! lab address only, and every process started is killed by its pid.
//!
//! The tests take one lock so that floods never overlap and memory figures are their own.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use engine::sys::netns::run_in_netns;
use engine::{Node, NodeConfig};
use protocols::iface::DropReason;
use tapir_apps::lab::Lab;

mod common;
use common::interop_allowed;

// The packet tool (hostile/raw.rs) is shared through tests/common.
use common::raw;

#[path = "hostile/arp.rs"]
mod arp;
use raw::{eth, Ip, Rand, RawSocket, Target};

const TAPIR: &str = env!("CARGO_BIN_EXE_tapir");
/// tapir's MAC (NodeConfig's default).
const NODE_MAC: [u8; 6] = [0x02, 0x54, 0x41, 0x50, 0, 0x02];
/// The resident memory `tapir serve` must stay under during a SYN flood.
const SERVE_RSS_LIMIT_KB: u64 = 64 * 1024;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn tool_present(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A child process stopped by its pid (and reaped) when dropped: SIGTERM first, which
/// `timeout` passes on to the command it runs (SIGKILL would orphan that command), then SIGKILL
/// if it is still there after two seconds.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tapir serve` in a lab; the child is killed before the lab is removed.
struct Served {
    child: Killed,
    lab: Lab,
}

fn serve(services: &[&str]) -> Served {
    serve_to(services, 1, Stdio::null())
}

/// `tapir serve` on `queues` queues with its standard error going to `stderr`.
fn serve_to(services: &[&str], queues: u16, stderr: Stdio) -> Served {
    let lab = Lab::up("hostile").expect("lab up");
    // One queue by default (`serve`): on a 2-core machine a second worker competes with the
    // flood generator for the only other core, and what is measured is the stack's defences,
    // not scheduling.
    let mut child = Command::new(TAPIR)
        .arg("serve")
        .args(lab.node_args())
        .args(["--queues", &queues.to_string()])
        .args(services)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn tapir serve");
    let stdout = child.stdout.take().expect("stdout");
    let child = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("start line");
    assert!(!line.is_empty(), "tapir serve exited before its start line");
    Served { child, lab }
}

/// (packets, dropped) the kernel sent into the lab's tap so far: what tapir was offered.
fn tap_tx(lab: &Lab) -> (u64, u64) {
    let out = Command::new("ip")
        .args(["-n", &lab.ns, "-s", "-o", "link", "show", &lab.tap])
        .output()
        .expect("ip -s link");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // One line: "... TX: bytes packets errors dropped ...\    N N N N ...".
    let tx = text
        .split("TX:")
        .nth(1)
        .and_then(|t| t.split('\\').nth(1))
        .map(|t| {
            t.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect::<Vec<u64>>()
        })
        .unwrap_or_default();
    (
        tx.get(1).copied().unwrap_or(0),
        tx.get(3).copied().unwrap_or(0),
    )
}

/// The HTTP status curl gets for tapir's page (3 s at most), "000" when nothing came back.
fn curl(lab: &Lab) -> String {
    let out = lab
        .command("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "3",
        ])
        .arg(format!("http://{}/", lab.node.address()))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A node in this process on the lab's tap, with the given services.
fn node_in(lab: &Lab, services: &[&str]) -> Node {
    let mut c = NodeConfig::new(&lab.tap, lab.node);
    c.netns = Some(lab.ns.clone());
    c.seed = Some(9);
    c.pin = false;
    let node = Node::start(c).expect("start node");
    for s in services {
        tapir_apps::services::start(&node, &s.parse().expect("service")).expect("service starts");
    }
    node
}

fn kernel<T: Send>(lab: &Lab, f: impl FnOnce() -> T + Send) -> T {
    run_in_netns(&lab.ns, f).expect("enter lab namespace")
}

fn payload(n: usize, seed: u64) -> Vec<u8> {
    let mut r = Rand::new(seed);
    r.bytes(n)
}

/// The kernel sends `data` to tapir's UDP echo and returns the answer (None on timeout).
fn udp_echo(sock: &UdpSocket, to: SocketAddrV4, data: &[u8]) -> Option<Vec<u8>> {
    sock.send_to(data, to).ok()?;
    let mut buf = vec![0u8; 65536];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn drops_report(node: &Node) -> String {
    let s = node.stats().stack;
    s.nonzero_drops()
        .map(|(r, n)| format!("{}={n}", r.name()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_kernel_and_tapir_exchange_fragmented_datagrams_both_ways() {
    if !interop_allowed() {
        return;
    }
    let _g = serial();
    let s = serve(&["echo"]);
    let to = SocketAddrV4::new(s.lab.node.address(), 7);
    // 4000 bytes: the kernel fragments it (MTU 1500), tapir reassembles, echoes it back in
    // fragments, and the kernel reassembles those.
    let got = kernel(&s.lab, || {
        let sock = UdpSocket::bind("10.7.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(3))).ok();
        (0..3)
            .map(|i| {
                let data = payload(4000 + i * 1000, i as u64 + 1);
                udp_echo(&sock, to, &data) == Some(data)
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(got, [true, true, true], "4000..6000-byte UDP echoes");
    // ping -s 3000: fragmented requests, fragmented replies.
    let out = s
        .lab
        .command("ping")
        .args(["-c", "3", "-s", "3000", "-W", "2", "-i", "0.2", "10.7.0.2"])
        .output()
        .expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ping -s 3000 failed:\n{text}");
    assert!(text.contains("3 received"), "{text}");
    assert!(text.contains("3008 bytes from"), "{text}");
}

#[test]
fn a_syn_flood_with_random_sources_leaves_http_serving_and_memory_bounded() {
    if !interop_allowed() {
        return;
    }
    assert!(tool_present("hping3"), "hping3 missing: run scripts/setup");
    let _g = serial();
    let s = serve(&["http"]);
    let pid = s.child.0.id();
    let before = rss_kb(pid).expect("VmRSS");
    let (tx0, drop0) = tap_tx(&s.lab);
    // Full rate, random sources, 10 s at most: `timeout` ends it, and we kill it by pid too.
    let flood = Killed(
        s.lab
            .command("timeout")
            .args([
                "10",
                "hping3",
                // As fast as hping3 can send (hundreds of thousands a second on this machine).
                "--flood",
                "--rand-source",
                "-S",
                "-p",
                "80",
                "-q",
            ])
            .arg(s.lab.node.address().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("hping3"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let (mut ok, mut total, mut peak) = (0, 0, before);
    while started.elapsed() < Duration::from_secs(9) {
        let code = curl(&s.lab);
        total += 1;
        if code == "200" {
            ok += 1;
        }
        peak = peak.max(rss_kb(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(flood);
    peak = peak.max(rss_kb(pid).unwrap_or(0));
    let (tx1, drop1) = tap_tx(&s.lab);
    let offered = tx1 - tx0;
    eprintln!(
        "syn flood: {offered} frames into the tap ({} dropped by the kernel, tapir busy); {ok}/{total} curl requests succeeded; tapir VmRSS {before} kB before, peak {peak} kB (limit {SERVE_RSS_LIMIT_KB} kB)",
        drop1 - drop0
    );
    assert!(
        offered > 100_000,
        "the flood did not reach tapir: {offered} frames"
    );
    // A request whose SYN the kernel's full tap queue dropped takes a SYN retransmission
    // (1 s): on a quiet machine the flood is fiercest and fewest requests fit in the 9 s.
    assert!(total >= 5, "too few requests made: {total}");
    assert!(
        ok * 100 >= total * 95,
        "only {ok}/{total} requests succeeded during the flood"
    );
    assert!(peak < SERVE_RSS_LIMIT_KB, "VmRSS peaked at {peak} kB");
    // Still serving afterwards.
    let code = curl(&s.lab);
    assert_eq!(code, "200");
}

#[test]
fn a_fragment_flood_stays_bounded_while_good_datagrams_reassemble() {
    if !interop_allowed() {
        return;
    }
    let _g = serial();
    let lab = Lab::up("hostile").expect("lab up");
    let node = node_in(&lab, &["echo"]);
    let host_mac = raw::mac_of(&lab.ns, &lab.tap);
    let node_ip = lab.node.address();
    let me = std::process::id();
    let before = rss_kb(me).expect("VmRSS");
    let stop = Arc::new(AtomicBool::new(false));
    // The flood: first fragments that never complete and overlapping pairs, from many
    // sources, 200,000 frames or 10 s, whichever comes first.
    let flood = {
        let stop = stop.clone();
        let sock = RawSocket::open(&lab.ns, &lab.tap).expect("AF_PACKET");
        std::thread::spawn(move || {
            let mut r = Rand::new(42);
            let start = Instant::now();
            let mut sent = 0u64;
            while sent < 200_000
                && start.elapsed() < Duration::from_secs(10)
                && !stop.load(Ordering::SeqCst)
            {
                let src = Ipv4Addr::new(10, 7, 0, 100 + r.below(100) as u8);
                let mut ip = Ip::new(src, node_ip, 17);
                ip.ident = r.next() as u16;
                ip.more_frags = true;
                let body = r.bytes(1480);
                let _ = sock.send(&eth(NODE_MAC, host_mac, 0x0800, &ip.packet(&body)));
                if sent.is_multiple_of(3) {
                    // Overlaps the one just sent.
                    ip.frag_offset = 8 * (1 + r.below(100) as usize);
                    let _ = sock.send(&eth(NODE_MAC, host_mac, 0x0800, &ip.packet(&body)));
                }
                sent += 1;
                if sent.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            sent
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let to = SocketAddrV4::new(node_ip, 7);
    let (good, tries) = kernel(&lab, || {
        let sock = UdpSocket::bind("10.7.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(500))).ok();
        let mut good = 0;
        for i in 0..20u64 {
            let data = payload(4000, 100 + i);
            // Drain a late answer of an earlier try.
            if udp_echo(&sock, to, &data).is_some_and(|d| d == data) {
                good += 1;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (good, 20)
    });
    let peak = rss_kb(me).unwrap_or(0);
    stop.store(true, Ordering::SeqCst);
    let sent = flood.join().expect("flood thread");
    let stats = node.stats().stack;
    eprintln!(
        "fragment flood: {sent} flood frames; {good}/{tries} good 4000-byte datagrams echoed; test VmRSS {before} kB -> {peak} kB; drops: {}",
        drops_report(&node)
    );
    assert!(sent >= 10_000, "the flood was too small: {sent}");
    assert!(
        good * 100 >= tries * 80,
        "only {good}/{tries} good datagrams came back"
    );
    assert!(stats.ipv4_reassembled >= good);
    assert!(stats.drops(DropReason::FragEvicted) + stats.drops(DropReason::FragOverlap) > 1000);
    // Reassembly holds at most 4 MiB per worker; allow for the test's own threads.
    assert!(
        peak < before + 64 * 1024,
        "memory grew from {before} kB to {peak} kB"
    );
    node.shutdown();
}

/// FNV-1a, 64 bits: enough to tell a byte-exact stream from a damaged one.
fn fnv(h: &mut u64, data: &[u8]) {
    for &b in data {
        *h ^= u64::from(b);
        *h = h.wrapping_mul(0x0100_0000_01b3);
    }
}

const FNV_INIT: u64 = 0xcbf2_9ce4_8422_2325;

#[test]
fn ten_thousand_hostile_frames_do_not_disturb_a_large_transfer() {
    if !interop_allowed() {
        return;
    }
    let _g = serial();
    let mb: usize = std::env::var("TAPIR_HOSTILE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let total = mb << 20;
    let lab = Lab::up("hostile").expect("lab up");
    let node = node_in(&lab, &["echo"]);
    let host_mac = raw::mac_of(&lab.ns, &lab.tap);
    let node_ip = lab.node.address();
    let to = SocketAddrV4::new(node_ip, 7);
    // The transfer: the kernel writes `total` bytes to tapir's echo and reads them back.
    let stream = kernel(&lab, || TcpStream::connect(to)).expect("connect");
    let kport = stream.local_addr().expect("local").port();
    let mut reader = stream.try_clone().expect("clone");
    reader.set_read_timeout(Some(Duration::from_secs(20))).ok();
    // The overlap is made, not hoped for: the hostile frames start once the first echoed byte is
    // back, and the last chunk is written only after the last hostile frame, so all 10,000
    // arrive while the transfer runs, however fast either side is.
    let (first_tx, first_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let mut w = stream;
        let mut h = FNV_INIT;
        let mut off = 0;
        while off < total {
            let chunk = payload(64 * 1024, off as u64);
            let n = chunk.len().min(total - off);
            if off + n == total {
                let _ = done_rx.recv();
            }
            fnv(&mut h, &chunk[..n]);
            w.write_all(&chunk[..n]).expect("write");
            off += n;
        }
        w.shutdown(Shutdown::Write).ok();
        h
    });
    // The hostile frames, spread over the transfer.
    let sock = RawSocket::open(&lab.ns, &lab.tap).expect("AF_PACKET");
    let target = Target {
        node_mac: NODE_MAC,
        node_ip,
        host_mac,
        host_ip: lab.host,
        avoid_port: kport,
    };
    let sent = Arc::new(AtomicUsize::new(0));
    let sent2 = sent.clone();
    let hostile = std::thread::spawn(move || {
        let mut r = Rand::new(7);
        let _ = first_rx.recv();
        for i in 0..10_000 {
            let _ = sock.send(&raw::hostile_frame(i, &mut r, &target));
            sent2.store(i + 1, Ordering::SeqCst);
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let _ = done_tx.send(());
    });
    let mut h = FNV_INIT;
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let mut started = false;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if !started {
                    started = true;
                    let _ = first_tx.send(());
                }
                fnv(&mut h, &buf[..n]);
                got += n;
            }
            Err(e) => panic!("transfer read failed after {got} bytes: {e}"),
        }
    }
    // Sent between the first echoed byte and the writer's last chunk.
    let during = sent.load(Ordering::SeqCst);
    hostile.join().expect("hostile thread");
    let sent_hash = writer.join().expect("writer");
    let stats = node.stats().stack;
    eprintln!(
        "hostile frames: {during} of 10000 sent while the transfer ran; transfer {got}/{total} bytes; drops: {}",
        drops_report(&node)
    );
    assert_eq!(
        during, 10_000,
        "every hostile frame should overlap the transfer"
    );
    assert_eq!(got, total, "the transfer lost bytes");
    assert_eq!(h, sent_hash, "the transfer came back different");
    let reasons = stats.nonzero_drops().count();
    assert!(
        reasons >= 8,
        "drops by too few reasons: {}",
        drops_report(&node)
    );
    assert!(stats.total_drops() >= 3000, "{}", drops_report(&node));
    // Still answering.
    let again = kernel(&lab, || {
        let mut s = TcpStream::connect(to).ok()?;
        s.write_all(b"still here").ok()?;
        let mut b = [0u8; 10];
        s.read_exact(&mut b).ok()?;
        Some(b)
    });
    assert_eq!(again.as_ref().map(|b| &b[..]), Some(&b"still here"[..]));
    node.shutdown();
}

/// The `nmap -oG` lines' open ports.
fn open_ports(grepable: &str) -> Vec<(u16, String)> {
    let mut v = Vec::new();
    for line in grepable.lines() {
        let Some(ports) = line.split("Ports: ").nth(1) else {
            continue;
        };
        for p in ports.split(", ") {
            let f: Vec<&str> = p.split('/').collect();
            if f.len() > 2 && f[1] == "open" {
                if let Ok(n) = f[0].trim().parse() {
                    v.push((n, f[2].to_string()));
                }
            }
        }
    }
    v.sort();
    v
}

#[test]
fn nmap_scans_complete_and_show_exactly_the_served_ports() {
    if !interop_allowed() {
        return;
    }
    assert!(tool_present("nmap"), "nmap missing: run scripts/setup");
    let _g = serial();
    let s = serve(&["echo", "discard", "daytime", "http"]);
    let nmap = |args: &[&str]| {
        let out = s
            .lab
            .command("timeout")
            .args(["120", "nmap", "-n", "-Pn", "-T4", "-oG", "-"])
            .args(args)
            .arg("10.7.0.2")
            .output()
            .expect("nmap");
        assert!(out.status.success(), "nmap {args:?} failed");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let syn = nmap(&["-sS", "-p", "1-1024"]);
    let tcp: Vec<u16> = open_ports(&syn).into_iter().map(|(p, _)| p).collect();
    assert_eq!(tcp, [7, 9, 13, 80], "SYN scan:\n{syn}");
    // RFC 9293 §3.10.7.2: FIN, NULL and Xmas probes to a listening port are dropped, so nmap
    // sees no answer (open|filtered) there and a RST (closed) from a port nobody serves.
    for scan in ["-sF", "-sN", "-sX"] {
        let out = nmap(&[scan, "-p", "7,8,80"]);
        for open in [
            "7/open|filtered/tcp",
            "80/open|filtered/tcp",
            "8/closed/tcp",
        ] {
            assert!(out.contains(open), "nmap {scan}: no {open} in\n{out}");
        }
    }
    let udp = nmap(&["-sU", "-p", "7,13,53,161"]);
    let open_udp: Vec<u16> = open_ports(&udp).into_iter().map(|(p, _)| p).collect();
    assert_eq!(open_udp, [7, 13], "UDP scan:\n{udp}");
    assert!(udp.contains("53/closed/udp"), "UDP scan:\n{udp}");
    let os = nmap(&["-O", "-p", "7,80,81"]);
    eprintln!("nmap -O:\n{os}");
    // tapir took it all: still serving.
    let code = curl(&s.lab);
    assert_eq!(code, "200");
    assert!(s.child.0.id() > 0);
}

#[test]
fn spoofed_rst_and_syn_in_the_window_draw_challenge_acks_and_do_not_kill_the_connection() {
    if !interop_allowed() {
        return;
    }
    let _g = serial();
    let lab = Lab::up("hostile").expect("lab up");
    let node = node_in(&lab, &["echo"]);
    let host_mac = raw::mac_of(&lab.ns, &lab.tap);
    let node_ip = lab.node.address();
    let to = SocketAddrV4::new(node_ip, 7);
    let sock = RawSocket::open(&lab.ns, &lab.tap).expect("AF_PACKET");
    let mut stream = kernel(&lab, || TcpStream::connect(to)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok();
    let kport = stream.local_addr().expect("local").port();
    let echo = |s: &mut TcpStream, msg: &[u8]| {
        s.write_all(msg).expect("write");
        let mut b = vec![0u8; msg.len()];
        s.read_exact(&mut b).expect("read echo");
        assert_eq!(b, msg);
    };
    echo(&mut stream, b"hello");
    // Learn the live sequence numbers from the wire: the kernel's last data segment.
    stream.write_all(b"probe").expect("write");
    let mut b = [0u8; 5];
    stream.read_exact(&mut b).expect("read");
    let ours = |t: &raw::TcpSeen| t.sport == kport && t.dport == 7;
    let seen = sock.collect_until(Instant::now() + Duration::from_millis(300), |f| {
        raw::parse_tcp(f).is_some_and(|t| ours(&t) || (t.sport == 7 && t.dport == kport))
    });
    // The capture opened before "probe": its data segment is there.
    let data_seg = seen
        .iter()
        .rev()
        .filter_map(|f| raw::parse_tcp(f))
        .find(|t| ours(t) && t.len > 0)
        .expect("the kernel's data segment on the wire");
    let rcv_nxt = data_seg.seq.wrapping_add(data_seg.len as u32);
    let host = lab.host;
    let inject = |flags: u8, seq: u32| {
        let seg = raw::tcp(host, node_ip, kport, 7, seq, 0, flags, 64240, &[], &[]);
        let frame = eth(
            NODE_MAC,
            host_mac,
            0x0800,
            &Ip::new(host, node_ip, 6).packet(&seg),
        );
        sock.send(&frame).expect("inject");
        // tapir's answers on this connection.
        sock.collect_until(Instant::now() + Duration::from_millis(300), |f| {
            raw::parse_tcp(f).is_some_and(|t| t.src_mac == NODE_MAC && t.dport == kport)
        })
        .iter()
        .filter_map(|f| raw::parse_tcp(f))
        .collect::<Vec<_>>()
    };
    const RST: u8 = 0x04;
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    // RFC 5961 §3: a RST in the window but not at RCV.NXT draws a challenge ACK.
    let answers = inject(RST, rcv_nxt.wrapping_add(1000));
    assert!(
        answers
            .iter()
            .any(|t| t.flags & ACK != 0 && t.flags & RST == 0 && t.ack == rcv_nxt),
        "no challenge ACK for an in-window RST: {answers:?}"
    );
    // RFC 5961 §4: a SYN in the window draws a challenge ACK too.
    let answers = inject(SYN, rcv_nxt.wrapping_add(500));
    assert!(
        answers
            .iter()
            .any(|t| t.flags & ACK != 0 && t.flags & (RST | SYN) == 0 && t.ack == rcv_nxt),
        "no challenge ACK for an in-window SYN: {answers:?}"
    );
    // And a RST out of the window is ignored.
    inject(RST, rcv_nxt.wrapping_add(0x4000_0000));
    // The connection lives on.
    echo(&mut stream, b"still alive after the spoofs");
    let conns = node.conns();
    assert!(
        conns.iter().any(|(_, c)| c.remote.port() == kport),
        "connection gone: {conns:?}"
    );
    node.shutdown();
}

/// An IPv4 packet from the kernel's address to the node: `Ip::packet`'s header with `options`
/// (a multiple of 4 bytes) after it, lengths and checksum redone.
fn ip_with_options(lab: &Lab, proto: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut p = Ip::new(lab.host, lab.node.address(), proto).packet(payload);
    let header = 20 + options.len();
    p.splice(20..20, options.iter().copied());
    p[0] = 0x40 | (header / 4) as u8;
    p[2..4].copy_from_slice(&((header + payload.len()) as u16).to_be_bytes());
    p[10..12].copy_from_slice(&[0, 0]);
    let c = raw::checksum(0, &p[..header]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

/// IPv4 options as Linux meets them by default: a source-routed datagram is dropped unanswered
/// (counted), a malformed options area draws a parameter problem (the kernel counts it in
/// `Icmp InParmProbs`), and a datagram with a good record route is served.
#[test]
fn source_routes_are_refused_and_malformed_options_draw_a_parameter_problem() {
    if !interop_allowed() {
        return;
    }
    let _g = serial();
    let lab = Lab::up("hostile").expect("lab up");
    let node = node_in(&lab, &["echo"]);
    let node_ip = lab.node.address();
    let host_mac = raw::mac_of(&lab.ns, &lab.tap);
    let sock = RawSocket::open(&lab.ns, &lab.tap).expect("AF_PACKET");
    let echo = kernel(&lab, || UdpSocket::bind("10.7.0.1:40007")).expect("kernel bind");
    echo.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let send = |options: &[u8], data: &[u8]| {
        let datagram = raw::udp(lab.host, node_ip, 40007, 7, data);
        let p = ip_with_options(&lab, 17, options, &datagram);
        sock.send(&eth(NODE_MAC, host_mac, 0x0800, &p))
            .expect("send");
    };
    let drops = |r: DropReason| node.stats().stack.drops(r);
    let parm_probs = || common::kernel_snmp(&lab, "Icmp", "InParmProbs");
    let before = parm_probs();

    // Loose and strict source routes via 10.7.0.9, pointer at the first hop.
    for kind in [131u8, 137] {
        send(&[1, kind, 7, 4, 10, 7, 0, 9], b"routed");
    }
    // Record route with its pointer inside a slot, and a timestamp option with unknown flags.
    send(&[7, 7, 5, 0, 0, 0, 0, 1], b"bad options");
    send(&[68, 8, 5, 2, 0, 0, 0, 0], b"bad options");
    assert!(
        common::wait_until(10, || drops(DropReason::Ipv4BadOptions) == 2
            && parm_probs() - before == 2),
        "{}; InParmProbs +{}",
        drops_report(&node),
        parm_probs() - before
    );
    assert_eq!(
        drops(DropReason::Ipv4SourceRouted),
        2,
        "{}",
        drops_report(&node)
    );

    // A good record route: the echo comes back, and it is the first (the worker answers in
    // order: an echo of a refused datagram would have come before it).
    send(&[1, 7, 7, 4, 0, 0, 0, 0], b"echo me");
    let mut buf = [0u8; 64];
    let (n, from) = echo
        .recv_from(&mut buf)
        .expect("the echo of a datagram with RR");
    assert_eq!(&buf[..n], b"echo me");
    assert_eq!(from.ip(), std::net::IpAddr::V4(node_ip));
    node.shutdown();
}
