//! Interop: the `tapir` binary on a real tap in a private lab namespace, against the Linux
//! kernel's own stack and stock tools (ping, curl). Needs root and /dev/net/tun; each test builds
//! its own namespace (`tapir-it-PID-N`) and removes it on every path.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use tapir_apps::lab::Lab;

mod common;
use common::quiet::{assert_idle_silent, Flow, FrameBudget, IDLE_WINDOW};
use common::{interop_allowed, kernel, random_bytes};

const TAPIR: &str = env!("CARGO_BIN_EXE_tapir");

/// A `tapir serve` process in a lab, killed (by its pid) before the lab is removed.
struct Served {
    child: Child,
    start_line: String,
    lab: Lab,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(tag: &str, extra: &[&str], services: &[&str]) -> Served {
    let lab = Lab::up(tag).expect("lab up");
    let mut child = Command::new(TAPIR)
        .arg("serve")
        .args(lab.node_args())
        .args(extra)
        .args(services)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tapir serve");
    // The start line is printed once every service listens: no sleeping.
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    let n = BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read start line");
    if n == 0 {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let _ = child.kill();
        panic!("tapir serve exited before its start line: {err}");
    }
    Served {
        child,
        start_line: line,
        lab,
    }
}

fn node_addr(s: &Served, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(s.lab.node.address(), port)
}

/// Sends `data` to the echo service from a kernel socket and returns what came back. With a lab,
/// the connection is held idle once everything came back, and must be silent, before it closes.
fn kernel_tcp_echo(addr: SocketAddrV4, data: &[u8], idle: Option<&Lab>) -> Vec<u8> {
    let mut s =
        TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut back = vec![0u8; data.len()];
    std::thread::scope(|sc| {
        sc.spawn(|| w.write_all(data).expect("write"));
        s.read_exact(&mut back).expect("read echo");
    });
    if let Some(lab) = idle {
        assert_idle_silent(lab, &[Flow::of_kernel(&s)], IDLE_WINDOW, "echo connection");
    }
    s.shutdown(Shutdown::Write).expect("shutdown");
    s.read_to_end(&mut back).expect("read echo");
    back
}

#[test]
fn start_line_says_where_the_node_is() {
    if !interop_allowed() {
        return;
    }
    let s = serve("it", &["--queues", "1"], &["echo", "daytime"]);
    let expect = format!(
        "tapir @ 10.7.0.2/24 on tap0 in netns {} (1 queue): echo/tcp:7 echo/udp:7 daytime/tcp:13 daytime/udp:13",
        s.lab.ns
    );
    assert_eq!(s.start_line.trim_end(), expect);
}

#[test]
fn kernel_ping_gets_three_replies() {
    if !interop_allowed() {
        return;
    }
    let s = serve("it", &[], &["echo"]);
    let out = s
        .lab
        .command("ping")
        .args([
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            &s.lab.node.address().to_string(),
        ])
        .output()
        .expect("run ping");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ping failed: {text}");
    assert!(text.contains("3 packets transmitted, 3 received"), "{text}");
}

/// The lines of a ping's option block (`RR:` or `TS:`) for its first reply, each split on
/// whitespace, the block's name dropped.
fn option_block(text: &str, name: &str) -> Vec<Vec<String>> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(name));
    let Some(first) = lines.next() else {
        return Vec::new();
    };
    std::iter::once(first.trim_start_matches(name))
        .chain(lines.take_while(|l| l.starts_with('\t')))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// RFC 1122 §3.2.2.6: an echo request's record route and timestamp options come back in the
/// reply with the node in them (iputils `ping -R` and `-T`; the node's stamp in
/// milliseconds since midnight UT, as the kernel's).
#[test]
fn kernel_ping_record_route_and_timestamps_include_the_node() {
    if !interop_allowed() {
        return;
    }
    let s = serve("it", &[], &["echo"]);
    let node = s.lab.node.address().to_string();
    let host = s.lab.host.to_string();
    let ping = |args: &[&str]| {
        let out = s
            .lab
            .command("ping")
            .args(["-c", "1", "-W", "5"])
            .args(args)
            .arg(&node)
            .output()
            .expect("run ping");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "ping {args:?}: {text}");
        text
    };
    let text = ping(&["-R"]);
    let route: Vec<String> = option_block(&text, "RR:").into_iter().flatten().collect();
    assert_eq!(route, [host.as_str(), &node, &host], "{text}");

    let text = ping(&["-T", "tsandaddr"]);
    let stamps = option_block(&text, "TS:");
    let ours = stamps
        .iter()
        .find(|l| l.first() == Some(&node))
        .unwrap_or_else(|| panic!("no stamp from the node: {text}"));
    // Its stamp, relative to the kernel's: the same wall clock, read a moment apart.
    let delta: i64 = ours[1].parse().unwrap_or_else(|_| panic!("{text}"));
    assert!(delta.abs() < 60_000, "{text}");

    let text = ping(&["-T", "tsprespec", &node, &host]);
    let stamps = option_block(&text, "TS:");
    assert_eq!(stamps.first().map(|l| &l[0]), Some(&node), "{text}");
    assert_eq!(ping(&["-T", "tsonly"]).matches("absolute").count(), 1);
}

/// An echo reply carries the request's DSCP (RFC 1349 §5.1), as the kernel's own replies do:
/// `ping -Q 0xb8` (expedited forwarding) gets its replies marked 0xb8; a plain ping, 0.
#[test]
fn echo_replies_carry_the_requests_dscp() {
    if !interop_allowed() {
        return;
    }
    let s = serve("it", &[], &["echo"]);
    let node = s.lab.node.address();
    let capture = common::capture::Capture::open_map(&s.lab.ns, &s.lab.tap, move |f| {
        // IPv4 ICMP echo replies from the node: their TOS byte.
        let ip = f.get(14..)?;
        let from_node = ip.get(12..16)? == node.octets();
        (f.get(12..14)? == [8, 0] && ip[9] == 1 && from_node && ip.get(20)? == &0).then(|| ip[1])
    });
    for tos in ["0xb8", "0"] {
        let out = s
            .lab
            .command("ping")
            .args(["-c", "1", "-W", "5", "-Q", tos, &node.to_string()])
            .output()
            .expect("run ping");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_eq!(capture.stop(), [0xb8, 0]);
}

/// An ICMP timestamp request (RFC 792) is answered as Linux answers it: hping3's two requests
/// get replies carrying their originate time and the node's own, milliseconds since midnight
/// UT from the same wall clock; and nmap's timestamp ping finds the host up (ARP ping off).
#[test]
fn timestamp_requests_are_answered_with_the_nodes_wall_clock() {
    if !interop_allowed() {
        return;
    }
    let s = serve("it", &[], &["echo"]);
    let node = s.lab.node.address().to_string();
    let out = s
        .lab
        .command("hping3")
        .args(["--icmp", "--icmp-ts", "-c", "2", &node])
        .output()
        .expect("run hping3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let stamps: Vec<Vec<i64>> = text
        .lines()
        .filter_map(|l| l.strip_prefix("ICMP timestamp: "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|f| f.split_once('=')?.1.parse().ok())
                .collect()
        })
        .collect();
    assert_eq!(stamps.len(), 2, "{text}");
    for st in &stamps {
        let [originate, receive, transmit] = st[..] else {
            panic!("{text}")
        };
        assert!((receive - originate).abs() < 60_000, "{text}");
        assert_eq!(receive, transmit, "{text}");
    }
    let out = s
        .lab
        .command("nmap")
        .args(["-sn", "-PP", "--disable-arp-ping", "-n", &node])
        .output()
        .expect("run nmap");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 host up"), "{text}");
}

/// RFC 5227 duplicate address detection against the node (iputils `arping -D`, as a host
/// about to take an address runs it): a probe for the node's address is answered, so arping
/// reports it in use (exit 1), on two queues as on one; a free address stays free (exit 0).
/// Before, the node let the prober take its address.
#[test]
fn arping_duplicate_address_detection_finds_the_node() {
    if !interop_allowed() {
        return;
    }
    common::need("arping");
    let s = serve("it", &["--queues", "2"], &["echo"]);
    let node = s.lab.node.address().to_string();
    let dad = |addr: &str| {
        s.lab
            .command("arping")
            .args(["-D", "-I", &s.lab.tap, "-c", "2", "-w", "3", addr])
            .output()
            .expect("run arping")
    };
    let out = dad(&node);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Received 1 response(s)"), "{text}");
    assert_eq!(dad("10.7.0.9").status.code(), Some(0));
}

/// `tapir ping` from a node in `lab` with `args` after the lab's node options: (success,
/// stdout, stderr).
fn tapir_ping(lab: &Lab, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(TAPIR)
        .arg("ping")
        .args(lab.node_args())
        .args(args)
        .output()
        .expect("run tapir ping");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tapir_ping_of_the_kernel_gets_its_replies() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("it").expect("lab");
    let host = lab.host.to_string();
    let (ok, text, err) = tapir_ping(&lab, &[&host, "-c", "3", "-i", "0.2"]);
    assert!(ok, "tapir ping failed: {text} {err}");
    assert!(
        text.contains("3 packets transmitted, 3 received, 0% packet loss"),
        "{text}"
    );
    assert_eq!(
        text.matches(" bytes from 10.7.0.1: icmp_seq=").count(),
        3,
        "{text}"
    );
    assert!(text.contains("rtt min/avg/max/mdev = "), "{text}");
}

#[test]
fn tapir_ping_beyond_the_mtu_is_fragmented_and_answered() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("it").expect("lab");
    let host = lab.host.to_string();
    let (ok, text, err) = tapir_ping(&lab, &[&host, "-s", "4000", "-c", "2", "-i", "0.2"]);
    assert!(ok, "tapir ping -s 4000 failed: {text} {err}");
    assert!(text.contains("4000(4028) bytes of data"), "{text}");
    assert!(
        text.contains("2 packets transmitted, 2 received, 0% packet loss"),
        "{text}"
    );
    assert_eq!(
        text.matches("4008 bytes from 10.7.0.1: icmp_seq=").count(),
        2,
        "{text}"
    );
    // The largest: 45 fragments each way, the first request sent before ARP resolved (a fresh
    // node), all of it held until the reply came.
    let (_, text, err) = tapir_ping(&lab, &[&host, "-s", "65507", "-c", "1", "-W", "3"]);
    assert!(
        text.contains("1 packets transmitted, 1 received"),
        "tapir ping -s 65507: {text} {err}"
    );
}

#[test]
fn tapir_ping_size_is_bounded_as_iputils_bounds_it() {
    let out = run_tapir(&["ping", "--ip", "10.7.0.2/24", "10.7.0.1", "-s", "65508"]);
    assert_clean_error(&out, 2, "the payload is at most 65507");
    let out = run_tapir(&["ping", "--ip", "10.7.0.2/24", "10.7.0.1", "-s", "4k"]);
    assert_clean_error(&out, 2, "is not a number of bytes");
}

#[test]
fn tapir_ping_of_a_silent_address_exits_1() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("it").expect("lab");
    let out = Command::new(TAPIR)
        .arg("ping")
        .args(lab.node_args())
        .args(["10.7.0.99", "-c", "2", "-i", "0.2", "-W", "1"])
        .output()
        .expect("run tapir ping");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("2 packets transmitted, 0 received, 100% packet loss"),
        "{text}"
    );
}

#[test]
fn tcp_echo_returns_a_mebibyte_of_random_bytes_exactly() {
    if !interop_allowed() {
        return;
    }
    let s = serve("it", &[], &["echo"]);
    let budget = FrameBudget::start(&s.lab);
    let data = random_bytes(1 << 20, 7);
    let back = kernel(&s.lab, || {
        kernel_tcp_echo(node_addr(&s, 7), &data, Some(&s.lab))
    });
    assert_eq!(back.len(), data.len());
    assert!(back == data, "echoed bytes differ");
    budget.check(&s.lab, data.len(), "1 MiB echoed");
}

#[test]
fn two_queues_echo_parallel_flows_exactly() {
    if !interop_allowed() {
        return;
    }
    let s = serve("it", &["--queues", "2"], &["echo"]);
    assert!(s.start_line.contains("(2 queues)"), "{}", s.start_line);
    let addr = node_addr(&s, 7);
    let budget = FrameBudget::start(&s.lab);
    let lab = &s.lab;
    let results: Vec<bool> = kernel(&s.lab, || {
        std::thread::scope(|sc| {
            let handles: Vec<_> = (0..8u32)
                .map(|i| {
                    sc.spawn(move || {
                        let data = random_bytes(256 * 1024, i + 1);
                        kernel_tcp_echo(addr, &data, Some(lab)) == data
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(false))
                .collect()
        })
    });
    assert_eq!(results, vec![true; 8]);
    budget.check(&s.lab, 8 * 256 * 1024, "8 flows echoed on 2 queues");
}

#[test]
fn udp_echo_and_daytime_answer_datagrams() {
    if !interop_allowed() {
        return;
    }
    let s = serve("it", &[], &["echo", "daytime"]);
    let (echo, daytime) = (node_addr(&s, 7), node_addr(&s, 13));
    kernel(&s.lab, || {
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 2048];
        for i in 0..32u32 {
            let msg = random_bytes(1 + (i as usize * 37) % 1400, i + 100);
            sock.send_to(&msg, echo).unwrap();
            let (n, from) = sock.recv_from(&mut buf).expect("echo reply");
            assert_eq!(from, SocketAddr::V4(echo));
            assert_eq!(&buf[..n], &msg[..], "datagram {i}");
        }
        sock.send_to(b"", daytime).unwrap();
        let (n, _) = sock.recv_from(&mut buf).expect("daytime reply");
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            text.ends_with("-UTC\r\n") && text.contains(", 20"),
            "{text:?}"
        );
    });
    // And daytime over TCP.
    let text = kernel(&s.lab, || {
        let mut c =
            TcpStream::connect_timeout(&SocketAddr::V4(daytime), Duration::from_secs(5)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut t = String::new();
        c.read_to_string(&mut t).unwrap();
        t
    });
    assert!(text.ends_with("-UTC\r\n"), "{text:?}");
}

/// The HTTP status curl saw for `url`.
fn http_status(lab: &Lab, extra: &[&str], url: &str) -> String {
    let mut args = extra.to_vec();
    args.extend(["-o", "/dev/null", "-w", "%{http_code}", url]);
    String::from_utf8_lossy(&curl(lab, &args).stdout).into_owned()
}

fn curl(lab: &Lab, args: &[&str]) -> Output {
    lab.command("curl")
        .args(["-s", "-m", "10"])
        .args(args)
        .output()
        .expect("run curl")
}

#[test]
fn curl_gets_the_page_and_files_and_404s() {
    if !interop_allowed() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("tapir-it-www-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let big = random_bytes(300_000, 99);
    std::fs::write(dir.join("sub/big.bin"), &big).unwrap();
    std::fs::write(dir.join("hello.txt"), b"hello from a file\n").unwrap();
    let spec = format!("http:8080={}", dir.display());
    let s = serve("it", &[], &["http", &spec]);
    let ip = s.lab.node.address();

    let out = curl(
        &s.lab,
        &[
            "-w",
            "\n%{http_code} %{content_type}",
            &format!("http://{ip}/"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("<h1>tapir</h1>"), "{text}");
    assert!(text.ends_with("\n200 text/html; charset=utf-8"), "{text}");

    let out = curl(&s.lab, &[&format!("http://{ip}:8080/sub/big.bin")]);
    assert!(out.status.success());
    assert!(
        out.stdout == big,
        "file body differs ({} bytes)",
        out.stdout.len()
    );

    // Two requests on one connection: curl reuses it when the server keeps it alive.
    let u = format!("http://{ip}:8080/hello.txt");
    let out = curl(&s.lab, &["-v", &u, &u]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from a file\nhello from a file\n"
    );
    assert!(
        err.contains("Re-using existing connection") || err.contains("Reusing existing"),
        "{err}"
    );

    assert_eq!(
        http_status(&s.lab, &[], &format!("http://{ip}:8080/nope")),
        "404"
    );
    let up = format!("http://{ip}:8080/../../etc/passwd");
    assert_eq!(http_status(&s.lab, &["--path-as-is"], &up), "403");
    let out = curl(
        &s.lab,
        &[
            "-I",
            "-w",
            "%{http_code}",
            &format!("http://{ip}:8080/hello.txt"),
        ],
    );
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(
        head.contains("Content-Length: 18") && head.ends_with("200"),
        "{head}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn closed_ports_are_refused_at_once() {
    if !interop_allowed() {
        return;
    }
    let s = serve("it", &[], &["echo"]);
    let addr = node_addr(&s, 8);
    let (tcp, udp) = kernel(&s.lab, || {
        // A RST makes connect fail with ECONNREFUSED; silence would be a timeout instead.
        let tcp =
            TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_secs(5)).map(|_| ());
        let u = UdpSocket::bind("0.0.0.0:0").unwrap();
        u.connect(addr).unwrap();
        u.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        u.send(b"anyone?").unwrap();
        let mut buf = [0u8; 16];
        let udp = u.recv(&mut buf).map(|_| ());
        (tcp, udp)
    });
    assert_eq!(
        tcp.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    // The kernel turns tapir's ICMP port unreachable into ECONNREFUSED on a connected socket.
    assert_eq!(
        udp.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
}

/// A firewall's REJECT and a router without a route answer tapir's SYN with an ICMP error: the
/// kernel in the lab rejects ports 81-84 with each kind of error (nftables) and routes
/// 10.99.0.0/16 `unreachable` and 10.98.0.0/16 `prohibit`. `tapir wget` fails each at its first
/// SYN with the error Linux gives; before, it sent SYNs until its `-T 30` ran out and reported a
/// timeout.
#[test]
fn an_icmp_error_answering_our_syn_fails_the_connect_with_its_error() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("it").expect("lab up");
    let rules = "table inet tapirrej {
        chain input {
            type filter hook input priority 0;
            tcp dport 81 reject with icmp type port-unreachable
            tcp dport 82 reject with icmp type host-unreachable
            tcp dport 83 reject with icmp type admin-prohibited
            tcp dport 84 reject with icmp type net-unreachable
        }
    }";
    let mut nft = lab
        .command("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft");
    nft.stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    assert!(nft.wait().unwrap().success(), "nft rules");
    // Forward (so the routes below answer), and answer every SYN (no ICMP rate limit).
    for kv in ["net.ipv4.ip_forward=1", "net.ipv4.icmp_ratemask=0"] {
        common::run_ok(lab.command("sysctl").args(["-qw", kv]));
    }
    for (kind, net) in [
        ("unreachable", "10.99.0.0/16"),
        ("prohibit", "10.98.0.0/16"),
    ] {
        common::run_ok(Command::new("ip").args(["-n", &lab.ns, "route", "add", kind, net]));
    }
    let cases = [
        ("10.7.0.1:81", "connection refused"),
        ("10.7.0.1:82", "no route to host"),
        ("10.7.0.1:83", "no route to host"),
        ("10.7.0.1:84", "network is unreachable"),
        ("10.99.0.5:80", "no route to host"),
        ("10.98.0.5:80", "no route to host"),
    ];
    for (to, error) in cases {
        let out = Command::new(TAPIR)
            .arg("wget")
            .args(lab.node_args())
            .args(["--gateway", "10.7.0.1", "-T", "30", "-O", "-"])
            .arg(format!("http://{to}/"))
            .output()
            .expect("run tapir wget");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{to}: {err}");
        assert!(
            err.contains(&format!("cannot connect to {to}: {error}")),
            "{to}: {err}"
        );
    }
}

fn run_tapir(args: &[&str]) -> Output {
    Command::new(TAPIR).args(args).output().expect("run tapir")
}

fn assert_clean_error(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn bad_usage_gets_one_clear_line_and_status_2() {
    let out = run_tapir(&["serve", "--ip", "10.7.0.300/24", "echo"]);
    assert_clean_error(&out, 2, "expected an IPv4 address with a prefix length");
    let out = run_tapir(&["serve", "--ip", "10.7.0.2", "echo"]);
    assert_clean_error(&out, 2, "expected an IPv4 address with a prefix length");
    let out = run_tapir(&["serve", "--ip", "10.7.0.2/24", "gopher"]);
    assert_clean_error(&out, 2, "unknown service 'gopher'");
    let out = run_tapir(&["serve", "echo"]);
    assert_clean_error(&out, 2, "--ip is required");
    let out = run_tapir(&["ping", "--ip", "10.7.0.2/24"]);
    assert_clean_error(&out, 2, "HOST");
}

#[test]
fn serve_help_lists_every_service_the_parser_accepts() {
    let out = run_tapir(&["serve", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for form in tapir_apps::services::FORMS {
        // The table is what the parser reads: each name it lists parses...
        let spec = match form.kind {
            tapir_apps::services::Kind::Login => format!("{}=/etc/passwd", form.name),
            _ => form.name.to_string(),
        };
        assert!(
            spec.parse::<tapir_apps::services::ServiceSpec>().is_ok(),
            "{spec}"
        );
        // ...and the help shows how to write it.
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{} ", form.form))),
            "serve --help does not list {}: {help}",
            form.form
        );
    }
    assert!(help.contains("login=FILE"), "{help}");
    assert!(help.contains("SHA-512 crypt"), "{help}");
}

#[test]
fn a_tap_that_cannot_be_opened_is_one_clear_line_and_status_1() {
    if !interop_allowed() {
        return;
    }
    let out = run_tapir(&[
        "serve",
        "--netns",
        "tapir-no-such-ns",
        "--ip",
        "10.7.0.2/24",
        "echo",
    ]);
    assert_clean_error(&out, 1, "tapir-no-such-ns");

    // Without privileges (nobody, no capabilities) creating a tap is refused.
    let lab = Lab::up("it").expect("lab");
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ])
        .arg(TAPIR)
        .args([
            "serve",
            "--tap",
            "tapirnoperm0",
            "--ip",
            "10.7.0.2/24",
            "echo",
        ])
        .output()
        .expect("run setpriv");
    assert_clean_error(&out, 1, "deploy/hostonly");
    drop(lab);

    // No /dev/net/tun: hide it in a private mount namespace.
    let out = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            &format!("mount -t tmpfs none /dev/net && exec {TAPIR} serve --ip 10.7.0.2/24 echo"),
        ])
        .output()
        .expect("run unshare");
    assert_clean_error(&out, 1, "/dev/net/tun");
}

/// `--max-conns` is the node's, split among its queues' workers: fewer than the queues is a
/// usage error that says what to give instead (no tap is touched).
#[test]
fn max_conns_below_the_queue_count_is_a_usage_error() {
    for (args, says) in [
        (
            &["--queues", "4", "--max-conns", "2"][..],
            "--queues 2 or fewer",
        ),
        (&["--max-conns", "0"][..], "one connection at least"),
    ] {
        let out = Command::new(TAPIR)
            .args(["serve", "--ip", "10.7.0.2/24"])
            .args(args)
            .arg("echo")
            .output()
            .expect("run tapir");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
