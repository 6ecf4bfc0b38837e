//! Interop: `tapir resolve` in a private lab against a stock dnsmasq that the test starts inside
//! the lab namespace on the kernel side of the tap (10.7.0.1), answering only from its own
//! records (`--no-resolv --no-hosts --local=/lab.test/`: nothing is forwarded anywhere).
//! Needs root, /dev/net/tun and dnsmasq (`scripts/setup` installs it).
//!
//! The truncated answer: `many.lab.test` has 40 A records (`--host-record` repeated). tapir
//! queries without EDNS, so dnsmasq must fit its UDP answer in 512 bytes (RFC 1035 §4.2.1);
//! 40 records of 16 bytes each do not fit, so it sets TC and tapir asks again over TCP, where
//! dnsmasq (a forked child) sends all 40.

use std::process::{Child, Command, Output, Stdio};

use tapir_apps::lab::Lab;

mod common;
use common::{interop_allowed, text};

const TAPIR: &str = env!("CARGO_BIN_EXE_tapir");

/// A lab with dnsmasq serving lab.test on 10.7.0.1:53; dnsmasq is killed by its pid before
/// the lab goes.
struct DnsLab {
    dnsmasq: Child,
    lab: Lab,
}

impl Drop for DnsLab {
    fn drop(&mut self) {
        let _ = self.dnsmasq.kill();
        let _ = self.dnsmasq.wait();
    }
}

fn dns_lab(tag: &str) -> DnsLab {
    let lab = Lab::up(tag).expect("lab up");
    let mut args: Vec<String> = [
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--port=53",
        "--listen-address=10.7.0.1",
        "--bind-interfaces",
        "--pid-file=",
        "--local=/lab.test/",
        "--host-record=www.lab.test,10.7.0.80",
        "--host-record=web.lab.test,10.7.0.1",
        "--cname=alias.lab.test,www.lab.test",
        "--cname=alias2.lab.test,alias.lab.test",
        "--log-facility=-",
        "--log-queries",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for i in 1..=40 {
        args.push(format!("--host-record=many.lab.test,10.7.1.{i}"));
    }
    let mut dnsmasq = lab
        .command("dnsmasq")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dnsmasq (is it installed? scripts/setup installs it)");
    // dnsmasq logs "started" once it listens: read stderr until then, then drain it in a thread.
    let stderr = dnsmasq.stderr.take().expect("stderr");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let mut seen = Vec::new();
    loop {
        match lines.next() {
            Some(Ok(l)) => {
                let started = l.contains("started");
                seen.push(l);
                if started {
                    break;
                }
            }
            _ => {
                let _ = dnsmasq.kill();
                let _ = dnsmasq.wait();
                panic!("dnsmasq exited before it started: {}", seen.join("\n"));
            }
        }
    }
    std::thread::spawn(move || for _ in lines {});
    DnsLab { dnsmasq, lab }
}

fn resolve(l: &DnsLab, dns: &[&str], extra: &[&str], name: &str) -> Output {
    let mut c = Command::new(TAPIR);
    c.arg("resolve").args(l.lab.node_args());
    for d in dns {
        c.args(["--dns", d]);
    }
    c.args(extra).arg(name);
    c.output().expect("run tapir resolve")
}

#[test]
fn a_record() {
    if !interop_allowed() {
        return;
    }
    let l = dns_lab("dns-a");
    let out = resolve(&l, &["10.7.0.1"], &[], "www.lab.test");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "www.lab.test has address 10.7.0.80\n");
}

#[test]
fn cname_chain_followed() {
    if !interop_allowed() {
        return;
    }
    let l = dns_lab("dns-cname");
    let out = resolve(&l, &["10.7.0.1"], &[], "alias2.lab.test");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "alias2.lab.test is an alias for alias.lab.test.\n\
         alias.lab.test is an alias for www.lab.test.\n\
         www.lab.test has address 10.7.0.80\n"
    );
}

#[test]
fn nxdomain_exits_1_with_a_clear_message() {
    if !interop_allowed() {
        return;
    }
    let l = dns_lab("dns-nx");
    let out = resolve(&l, &["10.7.0.1"], &[], "nothere.lab.test");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "tapir: nothere.lab.test: no such domain (NXDOMAIN)\n"
    );
}

#[test]
fn dead_first_server_skipped() {
    if !interop_allowed() {
        return;
    }
    let l = dns_lab("dns-dead");
    // Nothing answers at 10.7.0.9 (not even ARP): tapir waits 1 s, then asks 10.7.0.1.
    let out = resolve(
        &l,
        &["10.7.0.9", "10.7.0.1"],
        &["--timeout", "1"],
        "www.lab.test",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "www.lab.test has address 10.7.0.80\n");
    // Only dead servers: a timeout, exit 1, naming them.
    let out = resolve(
        &l,
        &["10.7.0.9"],
        &["--timeout", "0.3", "--attempts", "1"],
        "www.lab.test",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no answer from 10.7.0.9"));
}

#[test]
fn truncated_answer_retried_over_tcp() {
    if !interop_allowed() {
        return;
    }
    let l = dns_lab("dns-tc");
    let out = resolve(&l, &["10.7.0.1"], &[], "many.lab.test");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some(";; answer truncated over UDP, asked again over TCP")
    );
    let mut got: Vec<String> = lines.map(str::to_string).collect();
    got.sort();
    let mut want: Vec<String> = (1..=40)
        .map(|i| format!("many.lab.test has address 10.7.1.{i}"))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn no_server_is_a_usage_error() {
    // No lab needed: the check happens before the node starts.
    let out = Command::new(TAPIR)
        .args(["resolve", "--ip", "10.7.0.2/24", "www.lab.test"])
        .output()
        .expect("run tapir");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--dns"));
}

/// `tapir wget` and the node shell take names: resolved through --dns, then fetched from a
/// kernel-side HTTP server in the lab.
#[test]
fn wget_and_the_shell_resolve_names() {
    if !interop_allowed() {
        return;
    }
    let l = dns_lab("dns-wget");
    let body = common::random_bytes(200_000, 5);
    let served = body.clone();
    let listener = engine::sys::netns::run_in_netns(&l.lab.ns, || {
        std::net::TcpListener::bind("10.7.0.1:8080").expect("bind kernel HTTP server")
    })
    .expect("enter lab");
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().expect("accept");
        let mut req = [0u8; 2048];
        let n = s.read(&mut req).expect("read request");
        let req = String::from_utf8_lossy(&req[..n]).into_owned();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            served.len()
        );
        s.write_all(head.as_bytes()).expect("write head");
        s.write_all(&served).expect("write body");
        req
    });
    let file = std::env::temp_dir().join(format!("tapir-wget-name-{}", std::process::id()));
    let out = Command::new(TAPIR)
        .arg("wget")
        .args(l.lab.node_args())
        .args(["--dns", "10.7.0.1", "-q", "-O"])
        .arg(&file)
        .arg("http://web.lab.test:8080/blob")
        .output()
        .expect("run tapir wget");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let req = server.join().expect("server");
    assert!(
        req.starts_with("GET /blob HTTP/1.1\r\n") && req.contains("Host: web.lab.test:8080"),
        "{req}"
    );
    assert!(
        std::fs::read(&file).expect("saved file") == body,
        "body differs"
    );
    let _ = std::fs::remove_file(&file);

    // Without a server a name is a clear error.
    let out = Command::new(TAPIR)
        .arg("wget")
        .args(l.lab.node_args())
        .args(["-q", "http://web.lab.test/"])
        .output()
        .expect("run tapir wget");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("give --dns IP"),
        "{}",
        text(&out.stderr)
    );

    let out = Command::new(TAPIR)
        .arg("node")
        .args(l.lab.node_args())
        .args([
            "--dns",
            "10.7.0.1",
            "--exec",
            "resolve alias2.lab.test; traceroute 10.7.0.1 -q 1",
        ])
        .output()
        .expect("run tapir node");
    let t = text(&out.stdout);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("alias.lab.test is an alias for www.lab.test."),
        "{t}"
    );
    assert!(t.contains("www.lab.test has address 10.7.0.80"), "{t}");
    assert!(
        t.lines()
            .any(|l| l.trim_start().starts_with("1 ") && l.contains("10.7.0.1")),
        "{t}"
    );
}

/// `tapir load` takes a name too: resolved once through --dns, sent in the Host header.
#[test]
fn load_resolves_the_url_s_name() {
    if !interop_allowed() {
        return;
    }
    let l = dns_lab("dns-load");
    let listener = engine::sys::netns::run_in_netns(&l.lab.ns, || {
        std::net::TcpListener::bind("10.7.0.1:8081").expect("bind kernel HTTP server")
    })
    .expect("enter lab");
    // Two keep-alive connections (-c 2), each answered request by request until tapir closes.
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let conns: Vec<_> = (0..2)
            .map(|_| {
                let (mut s, _) = listener.accept().expect("accept");
                s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                    .ok();
                std::thread::spawn(move || {
                    let (mut seen, mut buf, mut hosts) = (Vec::new(), [0u8; 4096], Vec::new());
                    while let Ok(n @ 1..) = s.read(&mut buf) {
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            let req = String::from_utf8_lossy(&seen[..end]).into_owned();
                            hosts.extend(
                                req.lines()
                                    .filter(|l| l.starts_with("Host:"))
                                    .map(String::from),
                            );
                            seen.drain(..end + 4);
                            let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                            if s.write_all(resp).is_err() {
                                return hosts;
                            }
                        }
                    }
                    hosts
                })
            })
            .collect();
        conns
            .into_iter()
            .flat_map(|t| t.join().expect("connection thread"))
            .collect::<Vec<_>>()
    });
    let out = Command::new(TAPIR)
        .arg("load")
        .args(l.lab.node_args())
        .args(["--dns", "10.7.0.1", "-c", "2", "-d", "1", "--json"])
        .arg("http://web.lab.test:8081/x")
        .output()
        .expect("run tapir load");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(text(&out.stdout).trim()).expect("JSON report");
    let requests = report["requests"].as_u64().unwrap_or(0);
    assert!(requests > 10, "{report}");
    let hosts = server.join().expect("server");
    assert!(hosts.len() as u64 >= requests, "{hosts:?}");
    assert!(
        hosts.iter().all(|h| h == "Host: web.lab.test:8081"),
        "{hosts:?}"
    );
}
