//! Every TCP peer, not only Linux with its defaults (issue 13). Needs root and /dev/net/tun;
//! each lab is a namespace of its own (`tapir-peers-PID-N`, removed on every path by `Lab`).
//!
//! - The repros: `tapir serve http=DIR`, a kernel without window scaling fetches a page
//!   and holds the connection; and a hand-made SYN without options and a bare ACK, the kernel's
//!   RSTs dropped by nftables: fewer than 10 frames from tapir in the next 2 s. Before the fix
//!   (e38ccd9) both saw 100,000+ frames in 3 s.
//! - The peer matrix ([`peers::rows::ROWS`]): the kernel with `tcp_window_scaling=0`,
//!   `tcp_sack=0`, `tcp_timestamps=0`, `tcp_ecn=1` one at a time and all together, `advmss 536`,
//!   MTU 576, MTU 9000, and Nagle/cork write patterns. Every row runs bulk both ways (SHA-256
//!   compared) and request/response rounds, with tapir as server and as client, then holds the
//!   four connections idle (they must be silent) and bounds tapir's frames by the kernel's.
//!   The settings are read back and checked on the wire (the SYNs' options, the segment sizes).
//!   `TAPIR_PEERS_ROW=NAME` runs one row; `TAPIR_PEERS_PARALLEL=N` rows run at once (4). The 17
//!   rows take about 15 s in a debug build; a failure names its row.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use engine::{Node, NodeConfig};
use tapir_apps::lab::Lab;

mod common;
use common::quiet::{assert_idle_silent, Flow, FrameBudget};
use common::{interop_allowed, kernel, run_ok, text, Proc, TempDir};

mod peers {
    pub mod phases;
    pub mod rows;
    pub mod wire;
}
use peers::phases::{self, Held};
use peers::rows::{Row, ROWS};

const TAPIR: &str = env!("CARGO_BIN_EXE_tapir");

/// Sets a `net.ipv4.tcp_*` sysctl inside the lab namespace and reads it back.
fn sysctl(lab: &Lab, key: &str, value: &str) {
    run_ok(
        lab.command("sysctl")
            .args(["-w", &format!("{key}={value}")]),
    );
    let back = run_ok(lab.command("sysctl").args(["-n", key]));
    assert_eq!(text(&back.stdout).trim(), value, "{key} in {}", lab.ns);
}

/// The repro: a kernel without window scaling fetches a page from `tapir serve` and
/// holds the connection open.
#[test]
fn an_idle_http_client_without_window_scaling_draws_no_flood() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("peers").expect("lab up");
    sysctl(&lab, "net.ipv4.tcp_window_scaling", "0");
    let www = TempDir::new("peers-www");
    std::fs::write(www.0.join("index.html"), b"<p>held</p>\n").unwrap();
    let mut child = Command::new(TAPIR)
        .arg("serve")
        .args(lab.node_args())
        .arg(format!("http={}", www.0.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tapir serve");
    let stdout = child.stdout.take().expect("stdout");
    let _tapir = Proc(child);
    // The start line is printed once the service listens.
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(
        line.starts_with("tapir @"),
        "tapir serve did not start: {line:?}"
    );

    let budget = FrameBudget::start(&lab);
    let to = SocketAddr::V4(SocketAddrV4::new(lab.node.address(), 80));
    let s = kernel(&lab, || {
        TcpStream::connect_timeout(&to, Duration::from_secs(5))
    })
    .expect("connect to tapir's HTTP service");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (&s).write_all(b"GET /index.html HTTP/1.1\r\nHost: tapir\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(&s);
    let mut length = None;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).expect("response header");
        if h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = Some(v.trim().parse::<usize>().expect("content-length"));
        }
    }
    let mut body = vec![0u8; length.expect("a content-length")];
    r.read_exact(&mut body).expect("body");
    assert_eq!(body, b"<p>held</p>\n");

    let n = assert_idle_silent(
        &lab,
        &[Flow::of_kernel(&s)],
        Duration::from_secs(2),
        "idle HTTP connection without window scaling",
    );
    assert!(n < 10, "{n} frames from tapir in 2 s on an idle connection");
    // The response, headers and body, is under 1 KiB.
    let (out, inn) = budget.check(&lab, 1024, "HTTP fetch without window scaling");
    eprintln!("idle 2 s: {n} frames from tapir; {out} written for {inn} handed to it");
}

/// Brings up a lab configured as `row` says, with tapir on it.
fn row_lab(row: &Row) -> (Lab, Node) {
    let lab = Lab::up("peers").expect("lab up");
    for (k, v) in row.sysctls {
        sysctl(&lab, k, v);
    }
    if let Some(mtu) = row.mtu {
        let ip = |args: &[&str]| run_ok(Command::new("ip").args(["-n", &lab.ns]).args(args));
        ip(&["link", "set", &lab.tap, "mtu", &mtu.to_string()]);
        let shown = ip(&["link", "show", &lab.tap]);
        assert!(
            text(&shown.stdout).contains(&format!(" mtu {mtu} ")),
            "{}: {}",
            row.name,
            text(&shown.stdout)
        );
    }
    if let Some(advmss) = row.advmss {
        let dst = format!("{}/32", lab.node.address());
        run_ok(Command::new("ip").args([
            "-n",
            &lab.ns,
            "route",
            "add",
            &dst,
            "dev",
            &lab.tap,
            "advmss",
            &advmss.to_string(),
        ]));
        let got = run_ok(Command::new("ip").args(["-n", &lab.ns, "route", "show", &dst]));
        assert!(
            text(&got.stdout).contains(&format!("advmss {advmss}")),
            "{}: route {}",
            row.name,
            text(&got.stdout)
        );
    }
    let mut c = NodeConfig::new(&lab.tap, lab.node);
    c.netns = Some(lab.ns.clone());
    c.seed = Some(13);
    c.pin = false;
    c.offload = row.offload;
    if let Some(mtu) = row.mtu {
        c.stack.mtu = usize::from(mtu);
    }
    let node = Node::start(c).expect("start node");
    (lab, node)
}

/// One row: its exchanges, the wire checks, idle silence and the frame budget.
fn run_row(row: &Row) -> String {
    let started = Instant::now();
    let (lab, node) = row_lab(row);
    let budget = FrameBudget::start(&lab);
    let cap = peers::wire::capture(&lab.ns, &lab.tap, node.address());
    let mut held = Held::default();
    phases::bulk_tapir_serves(&lab, &node, 7001, &mut held);
    phases::bulk_tapir_connects(&lab, &node, 7002, &mut held);
    phases::rr_tapir_serves(&lab, &node, 7003, row.pattern, &mut held);
    phases::rr_tapir_connects(&lab, &node, 7004, row.pattern, &mut held);
    let exchanged = started.elapsed();
    let idle = assert_idle_silent(&lab, &held.flows, Duration::from_secs(1), row.name);
    let segs = cap.stop();
    let wire = peers::wire::check(row, &segs);
    let (out, inn) = budget.check(&lab, phases::tapir_writes(row.pattern), row.name);
    drop(held);
    node.shutdown();
    format!(
        "{}: exchanges in {exchanged:.1?}, {idle} frames from tapir on 4 idle connections in 1 s, {out} frames written for {inn} handed to it, {wire}; {:.1?} in all",
        row.name,
        started.elapsed()
    )
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

#[test]
fn peer_matrix() {
    if !interop_allowed() {
        return;
    }
    let only = std::env::var("TAPIR_PEERS_ROW").ok();
    let rows: Vec<&Row> = ROWS
        .iter()
        .filter(|r| only.as_deref().is_none_or(|o| o == r.name))
        .collect();
    assert!(!rows.is_empty(), "no row named {only:?}");
    let parallel = std::env::var("TAPIR_PEERS_PARALLEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4usize)
        .max(1);
    let mut failures = Vec::new();
    for batch in rows.chunks(parallel) {
        let handles: Vec<_> = batch
            .iter()
            .map(|&row| {
                let h = std::thread::Builder::new()
                    .name(row.name.into())
                    .spawn(move || run_row(row))
                    .expect("spawn row");
                (row.name, h)
            })
            .collect();
        for (name, h) in handles {
            match h.join() {
                Ok(line) => eprintln!("{line}"),
                Err(e) => failures.push(format!("row {name}: {}", panic_text(&*e))),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// The second repro: a hand-made SYN without any option, then a bare ACK, from the
/// kernel side's address with the kernel's own RSTs (it knows no such connection) dropped by
/// nftables in the lab: fewer than 10 frames from tapir in the next 2 s.
#[test]
fn a_handshake_without_options_whose_rsts_are_dropped_draws_no_flood() {
    use common::raw::{eth, mac_of, parse_tcp, tcp, Ip, RawSocket};
    if !interop_allowed() {
        return;
    }
    common::need("nft");
    let lab = Lab::up("peers").expect("lab up");
    for rule in [
        "add table ip tapir_peers",
        "add chain ip tapir_peers out { type filter hook output priority 0 ; }",
        "add rule ip tapir_peers out tcp flags rst counter drop",
    ] {
        run_ok(lab.command("nft").args(rule.split(' ')));
    }
    let mut c = NodeConfig::new(&lab.tap, lab.node);
    c.netns = Some(lab.ns.clone());
    c.seed = Some(13);
    c.pin = false;
    let node_mac = c.stack.mac.0;
    let node = Node::start(c).expect("start node");
    let _listener = engine::TcpListener::bind(&node, 80).expect("listen");
    let (host, tapir) = (lab.host, node.address());
    let host_mac = mac_of(&lab.ns, &lab.tap);
    let sock = RawSocket::open(&lab.ns, &lab.tap).expect("AF_PACKET socket");
    let send = |seq: u32, ack: u32, flags: u8| {
        let seg = tcp(host, tapir, 40000, 80, seq, ack, flags, 65535, &[], &[]);
        sock.send(&eth(
            node_mac,
            host_mac,
            0x0800,
            &Ip::new(host, tapir, 6).packet(&seg),
        ))
        .expect("send");
    };
    send(1000, 0, 0x02);
    let deadline = Instant::now() + Duration::from_secs(5);
    let syn_ack = loop {
        assert!(
            Instant::now() < deadline,
            "no SYN-ACK to a SYN without options"
        );
        if let Some(t) = sock.recv().as_deref().and_then(parse_tcp) {
            if t.src == tapir && t.dport == 40000 && t.flags & 0x12 == 0x12 {
                break t;
            }
        }
    };
    assert_eq!(syn_ack.ack, 1001, "the SYN-ACK acknowledges the SYN");
    send(1001, syn_ack.seq.wrapping_add(1), 0x10);
    let flow = Flow::new(SocketAddrV4::new(tapir, 80), SocketAddrV4::new(host, 40000));
    let n = assert_idle_silent(
        &lab,
        &[flow],
        Duration::from_secs(2),
        "handshake without options",
    );
    assert!(
        n < 10,
        "{n} frames from tapir in 2 s after a handshake without options"
    );
    // The kernel did answer tapir's SYN-ACK with a RST, and the rule dropped it.
    let rules = run_ok(
        lab.command("nft")
            .args(["list", "table", "ip", "tapir_peers"]),
    );
    let listed = text(&rules.stdout);
    assert!(
        !listed.contains("counter packets 0 "),
        "the kernel sent no RST for nftables to drop: {listed}"
    );
    node.shutdown();
}
