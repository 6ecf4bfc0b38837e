//! Interop for the services and clients of issue 5: traceroute (kernel's and tapir's, through a
//! chain of router namespaces), tapir wget against nginx, curl and nc against tapir's HTTP,
//! chargen/echo/daytime answered to nc. Needs root and /dev/net/tun; every namespace is made by the
//! test (names start with `tapir`) and removed on every path by a Drop guard; every server a test
//! starts is killed by its pid.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use tapir_apps::lab::Lab;

mod common;
use common::http::{
    addr_of, curl, header, http_site, nginx_with, raw_http, serve, serve_in, split_head, Nginx,
    TAPIR,
};
use common::quiet::{assert_idle_silent, Flow};
use common::{
    interop_allowed, kernel, kernel_counter, kernel_netstat, kernel_snmp, need, random_bytes,
    run_ok, text, Proc, SystemUser, TempDir, COUNTER, PTY_PRELUDE,
};

fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

/// Extra namespaces made by a test, deleted (with their veths) on drop.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn add(&mut self, tag: &str) -> String {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("tapir-{tag}-{}-{n}", std::process::id());
        ip(&["netns", "add", &name]);
        self.0.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in self.0.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn sysctl(ns: &str, kv: &str) {
    run_ok(Command::new("ip").args(["netns", "exec", ns, "sysctl", "-q", "-w", kv]));
}

/// Joins `a` and `b` with a veth pair addressed `a_ip` / `b_ip` (CIDRs); returns the names of
/// its ends, in `a` and in `b`.
fn veth(a: &str, a_ip: &str, b: &str, b_ip: &str) -> (String, String) {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let (ea, eb) = (format!("tpa{n}"), format!("tpb{n}"));
    ip(&[
        "-n", a, "link", "add", &ea, "type", "veth", "peer", "name", &eb, "netns", b,
    ]);
    ip(&["-n", a, "addr", "add", a_ip, "dev", &ea]);
    ip(&["-n", b, "addr", "add", b_ip, "dev", &eb]);
    ip(&["-n", a, "link", "set", &ea, "up"]);
    ip(&["-n", b, "link", "set", &eb, "up"]);
    (ea, eb)
}

/// The lab (router 1: 10.7.0.1 towards tapir) and two more routers and a destination:
/// tapir 10.7.0.2 -> 10.7.0.1 | 10.7.1.1 -> 10.7.1.2 | 10.7.2.1 -> 10.7.2.2 | 10.7.3.1 -> 10.7.3.2.
struct Chain {
    lab: Lab,
    _ns: Namespaces,
    /// Router 2, router 3 and the destination's namespaces.
    r2: String,
    r3: String,
    dst: String,
    /// The ends of the router 2 - router 3 link (in r2, in r3).
    r2_r3: (String, String),
}

fn chain() -> Chain {
    let lab = Lab::up("tr").expect("lab up");
    let mut ns = Namespaces(Vec::new());
    let r2 = ns.add("r2");
    let r3 = ns.add("r3");
    let dst = ns.add("dst");
    veth(&lab.ns, "10.7.1.1/24", &r2, "10.7.1.2/24");
    let r2_r3 = veth(&r2, "10.7.2.1/24", &r3, "10.7.2.2/24");
    veth(&r3, "10.7.3.1/24", &dst, "10.7.3.2/24");
    for r in [lab.ns.as_str(), &r2, &r3] {
        sysctl(r, "net.ipv4.ip_forward=1");
    }
    // Every router and the destination answer every probe: no ICMP rate limit inside the
    // test's own namespaces. `icmp_ratelimit=0` lifts only the per-host limit; the namespace-wide
    // one (`icmp_msgs_per_sec`, which spends a random 0-2 credits per message) still dropped one
    // answer in about a hundred traces. An empty `icmp_ratemask` exempts every type from both.
    for n in [lab.ns.as_str(), &r2, &r3, &dst] {
        sysctl(n, "net.ipv4.icmp_ratelimit=0");
        sysctl(n, "net.ipv4.icmp_ratemask=0");
    }
    for net in ["10.7.2.0/24", "10.7.3.0/24"] {
        ip(&["-n", &lab.ns, "route", "add", net, "via", "10.7.1.2"]);
    }
    ip(&["-n", &r2, "route", "add", "10.7.0.0/24", "via", "10.7.1.1"]);
    ip(&["-n", &r2, "route", "add", "10.7.3.0/24", "via", "10.7.2.2"]);
    ip(&["-n", &r3, "route", "add", "default", "via", "10.7.2.1"]);
    ip(&["-n", &dst, "route", "add", "default", "via", "10.7.3.1"]);
    Chain {
        lab,
        _ns: ns,
        r2,
        r3,
        dst,
        r2_r3,
    }
}

fn tapir_traceroute(c: &Chain, extra: &[&str]) -> Output {
    Command::new(TAPIR)
        .arg("traceroute")
        .args(c.lab.node_args())
        .args(["--gateway", "10.7.0.1", "10.7.3.2", "-w", "2", "-m", "8"])
        .args(extra)
        .output()
        .expect("run tapir traceroute")
}

/// The hop lines' first address, in order.
fn hop_addrs(out: &str) -> Vec<String> {
    out.lines()
        .skip(1)
        .map(|l| {
            l.split_whitespace()
                .find(|w| w.contains('.') && !w.contains("ms"))
                .unwrap_or("*")
                .to_string()
        })
        .collect()
}

#[test]
fn tapir_traceroute_lists_three_routers_then_the_destination() {
    if !interop_allowed() {
        return;
    }
    let c = chain();
    for mode in [&[][..], &["-I"][..]] {
        let out = tapir_traceroute(&c, mode);
        let so = text(&out.stdout);
        assert!(out.status.success(), "{mode:?}: {so} {}", text(&out.stderr));
        assert!(
            so.starts_with("traceroute to 10.7.3.2 (10.7.3.2), 8 hops max, 60 byte packets\n"),
            "{so}"
        );
        assert_eq!(
            hop_addrs(&so),
            ["10.7.0.1", "10.7.1.2", "10.7.2.2", "10.7.3.2"],
            "{mode:?}: {so}"
        );
        // Every probe of every hop answered, with a time.
        for l in so.lines().skip(1) {
            assert_eq!(l.matches(" ms").count(), 3, "{mode:?}: {l}");
            assert!(!l.contains('*'), "{mode:?}: {l}");
        }
    }
}

/// `tapir ping -R` through three kernel routers: the record route comes back with the node,
/// each router's address on the way out, the destination, and each router's on the way back
/// (nine addresses, the option full), printed as iputils prints it.
#[test]
fn tapir_ping_record_route_lists_the_routers_both_ways() {
    if !interop_allowed() {
        return;
    }
    let c = chain();
    let out = Command::new(TAPIR)
        .arg("ping")
        .args(c.lab.node_args())
        .args([
            "--gateway",
            "10.7.0.1",
            "10.7.3.2",
            "-R",
            "-c",
            "2",
            "-i",
            "0.2",
        ])
        .output()
        .expect("run tapir ping -R");
    let so = text(&out.stdout);
    assert!(out.status.success(), "{so} {}", text(&out.stderr));
    let route: Vec<&str> = so
        .lines()
        .skip_while(|l| !l.starts_with("RR:"))
        .take_while(|l| !l.is_empty())
        .map(|l| l.trim_start_matches("RR:").trim())
        .collect();
    assert_eq!(
        route,
        [
            "10.7.0.2", "10.7.1.1", "10.7.2.1", "10.7.3.1", "10.7.3.2", "10.7.3.2", "10.7.2.2",
            "10.7.1.2", "10.7.0.1"
        ],
        "{so}"
    );
    assert!(so.contains("RR: \t(same route)"), "{so}");
}

/// ICMP redirects from a kernel router (RFC 1122 §3.2.2.2: a host MUST take them): the lab's
/// router (10.7.0.1, tapir's gateway) reaches 10.9.0.1 through 10.7.0.5, a second router on
/// the same link (a bridge joins the tap and a veth to it). Forwarding tapir's first echo back
/// out the link it came in on, the kernel sends tapir a host redirect; tapir then sends to
/// 10.7.0.5 directly, so the lab's router forwards one or two requests of five, not five.
#[test]
fn a_kernel_routers_redirect_moves_tapirs_traffic_to_the_better_router() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("rd").expect("lab up");
    let mut ns = Namespaces(Vec::new());
    let rx = ns.add("rx");
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let (ea, eb) = (format!("tpa{n}"), format!("tpb{n}"));
    let l = lab.ns.as_str();
    ip(&["-n", l, "link", "add", "br0", "type", "bridge"]);
    ip(&["-n", l, "addr", "del", "10.7.0.1/24", "dev", &lab.tap]);
    ip(&["-n", l, "link", "set", &lab.tap, "master", "br0"]);
    ip(&["-n", l, "addr", "add", "10.7.0.1/24", "dev", "br0"]);
    ip(&["-n", l, "link", "set", "br0", "up"]);
    ip(&[
        "-n", l, "link", "add", &ea, "type", "veth", "peer", "name", &eb, "netns", &rx,
    ]);
    ip(&["-n", l, "link", "set", &ea, "master", "br0"]);
    ip(&["-n", l, "link", "set", &ea, "up"]);
    ip(&["-n", &rx, "addr", "add", "10.7.0.5/24", "dev", &eb]);
    ip(&["-n", &rx, "addr", "add", "10.9.0.1/32", "dev", "lo"]);
    ip(&["-n", &rx, "link", "set", &eb, "up"]);
    sysctl(l, "net.ipv4.ip_forward=1");
    ip(&["-n", l, "route", "add", "10.9.0.0/24", "via", "10.7.0.5"]);
    let forwarded = || kernel_snmp(&lab, "Ip", "ForwDatagrams");
    let (fwd0, redirects0) = (forwarded(), kernel_snmp(&lab, "Icmp", "OutRedirects"));
    let out = Command::new(TAPIR)
        .arg("ping")
        .args(lab.node_args())
        .args(["--gateway", "10.7.0.1", "10.9.0.1", "-c", "5", "-i", "0.2"])
        .output()
        .expect("run tapir ping");
    let so = text(&out.stdout);
    assert!(out.status.success(), "{so} {}", text(&out.stderr));
    assert!(so.contains("5 packets transmitted, 5 received"), "{so}");
    let fwd = forwarded() - fwd0;
    let redirects = kernel_snmp(&lab, "Icmp", "OutRedirects") - redirects0;
    assert!(redirects >= 1, "the router sent no redirect: {so}");
    assert!(
        fwd <= 2,
        "the router forwarded {fwd} of 5 requests after redirecting"
    );
}

#[test]
fn tapir_traceroute_of_a_silent_host_prints_stars_and_exits_1() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("tr").expect("lab up");
    // 10.7.0.99 is on the link but nobody has it: no ARP reply, so every probe goes unanswered.
    let out = Command::new(TAPIR)
        .arg("traceroute")
        .args(lab.node_args())
        .args(["10.7.0.99", "-m", "2", "-q", "2", "-w", "0.3"])
        .output()
        .expect("run tapir traceroute");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "traceroute to 10.7.0.99 (10.7.0.99), 2 hops max, 60 byte packets\n 1  * *\n 2  * *\n"
    );
}

#[test]
fn kernel_traceroute_reaches_tapir() {
    if !interop_allowed() {
        return;
    }
    need("traceroute");
    let s = serve(&[], &["echo"]);
    let node = s.lab.node.address().to_string();
    for mode in [&[][..], &["-I"][..]] {
        let out = run_ok(
            s.lab
                .command("traceroute")
                .args(["-n", "-q", "2", "-w", "2", "-m", "5"])
                .args(mode)
                .arg(&node),
        );
        let so = text(&out.stdout);
        let hops: Vec<&str> = so.lines().skip(1).collect();
        assert_eq!(hops.len(), 1, "{mode:?}: one hop, and it is tapir: {so}");
        assert!(
            hops[0].starts_with(" 1  10.7.0.2 ") && hops[0].matches(" ms").count() == 2,
            "{mode:?}: {so}"
        );
    }
}

/// nginx in the lab namespace on 10.7.0.1:8081, serving `root` with a redirect and a chunked
/// location; killed by its pid on drop.
fn nginx(lab: &Lab, root: &Path) -> Nginx {
    nginx_with(
        lab,
        &format!(
            "  types {{ text/plain txt; application/octet-stream bin; }}\n\
  server {{\n    listen 10.7.0.1:8081;\n    root {r};\n\
    location = /old {{ return 301 /big.bin; }}\n\
    location = /hop {{ return 302 http://10.7.0.1:8081/old; }}\n\
    location = /chunked.txt {{ sub_filter 'PLACEHOLDER' 'filtered'; sub_filter_types text/plain; }}\n\
  }}\n",
            r = root.display()
        ),
    )
}

fn tapir_wget(lab: &Lab, url: &str, out: &Path) -> Output {
    Command::new(TAPIR)
        .arg("wget")
        .args(lab.node_args())
        .args([url, "-O"])
        .arg(out)
        .args(["-T", "20"])
        .output()
        .expect("run tapir wget")
}

fn sha256(p: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(p));
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn tapir_wget_fetches_from_nginx_follows_redirects_and_decodes_chunks() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("wg").expect("lab up");
    let www = TempDir::new("www");
    let big = www.0.join("big.bin");
    std::fs::write(&big, random_bytes(6 << 20, 5)).unwrap();
    std::fs::write(
        www.0.join("chunked.txt"),
        "first line\nPLACEHOLDER body\nlast line\n",
    )
    .unwrap();
    // nginx (its worker) runs as www-data: let it read the files.
    let _ = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&www.0)
        .status();
    let _ = Command::new("chmod")
        .args(["a+x"])
        .arg(std::env::temp_dir())
        .status();
    let _nginx = nginx(&lab, &www.0);
    let dl = TempDir::new("dl");

    let got = dl.0.join("big.bin");
    let out = tapir_wget(&lab, "http://10.7.0.1:8081/big.bin", &got);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sha256(&got), sha256(&big), "6 MiB body differs");
    let err = text(&out.stderr);
    assert!(
        err.contains("200 OK") && err.contains("Length: 6291456"),
        "{err}"
    );

    // Two redirects: 302 to an absolute URL, then 301 to a path.
    let got2 = dl.0.join("via-redirect.bin");
    let out = tapir_wget(&lab, "http://10.7.0.1:8081/hop", &got2);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("302 Moved Temporarily") && err.contains("301 Moved Permanently"),
        "{err}"
    );
    assert_eq!(sha256(&got2), sha256(&big));

    // nginx sends a filtered body chunked (no length known in advance): check that it does.
    let head = run_ok(lab.command("curl").args([
        "-s",
        "-m",
        "10",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "http://10.7.0.1:8081/chunked.txt",
    ]));
    assert!(
        text(&head.stdout)
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{}",
        text(&head.stdout)
    );
    let got3 = dl.0.join("chunked.txt");
    let out = tapir_wget(&lab, "http://10.7.0.1:8081/chunked.txt", &got3);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&got3).unwrap(),
        "first line\nfiltered body\nlast line\n"
    );
    assert!(text(&out.stderr).contains("Length: unspecified"));

    // A 404 is a failed operation: status 1 and the server's answer on stderr.
    let out = tapir_wget(&lab, "http://10.7.0.1:8081/missing", &dl.0.join("m"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("404 Not Found"),
        "{}",
        text(&out.stderr)
    );
}

/// Runs `nc` in the lab with `input` on its stdin; returns what it printed.
fn nc(lab: &Lab, args: &[&str], input: &[u8]) -> Vec<u8> {
    need("nc");
    let mut child = lab
        .command("nc")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nc");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("nc output");
    let _ = writer.join();
    out.stdout
}

#[test]
fn echo_daytime_chargen_answer_nc_over_tcp_and_udp() {
    if !interop_allowed() {
        return;
    }
    let s = serve(&[], &["echo", "daytime", "chargen", "discard"]);
    assert!(
        s.start_line.contains("chargen/tcp:19 chargen/udp:19"),
        "{}",
        s.start_line
    );
    let ip = s.lab.node.address().to_string();
    // TCP: -N closes our side after stdin ends, -q waits for the rest.
    let out = nc(&s.lab, &["-N", "-w", "5", &ip, "7"], b"hello tapir\n");
    assert_eq!(text(&out), "hello tapir\n");
    let out = nc(&s.lab, &["-d", "-w", "5", &ip, "13"], b"");
    assert!(text(&out).ends_with("-UTC\r\n"), "{:?}", text(&out));
    // UDP: nc sends a line and prints the answer; -w bounds the wait for it.
    let out = nc(&s.lab, &["-u", "-w", "2", &ip, "7"], b"udp echo\n");
    assert_eq!(text(&out), "udp echo\n");
    let out = nc(&s.lab, &["-u", "-w", "2", &ip, "13"], b"\n");
    assert!(text(&out).ends_with("-UTC\r\n"), "{:?}", text(&out));
    let out = nc(&s.lab, &["-u", "-w", "2", &ip, "19"], b"\n");
    let t = text(&out);
    assert!(!t.is_empty() && t.len() <= 512, "{t:?}");
    assert!(t.lines().all(|l| l.len() == 72), "{t:?}");

    // chargen over TCP: read a few KiB and hang up; the stream is RFC 864's rotating pattern.
    let addr: SocketAddr = format!("{ip}:19").parse().unwrap();
    let got = kernel(&s.lab, || {
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = vec![0u8; 10 * 74];
        c.read_exact(&mut buf).unwrap();
        buf
    });
    let lines: Vec<&[u8]> = got.chunks(74).collect();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(&l[72..], b"\r\n");
        let first = b' ' + (i % 95) as u8;
        assert_eq!(
            l[0], first,
            "line {i} starts one character later than the last"
        );
    }
}

#[test]
fn curl_and_nc_against_tapir_http() {
    if !interop_allowed() {
        return;
    }
    let site = http_site();
    let spec = format!("http:8080={}", site.0.display());
    let s = serve(&["--access-log", "-"], &[&spec]);
    let base = format!("http://{}:8080", s.lab.node.address());

    // 200 with length and type.
    let out = curl(
        &s.lab,
        &[
            "-w",
            "%{http_code} %{content_type} %{size_download}",
            "-o",
            "/dev/null",
            &format!("{base}/style.css"),
        ],
    );
    assert_eq!(text(&out.stdout), "200 text/css 7");
    // A big file streams byte-exact.
    let out = curl(&s.lab, &[&format!("{base}/big.bin")]);
    assert!(out.stdout == random_bytes(3 << 20, 11), "big.bin differs");
    // HEAD: the headers, no body.
    let out = curl(&s.lab, &["-I", &format!("{base}/hello.txt")]);
    let head = text(&out.stdout);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 18\r\n"), "{head}");
    assert!(head.contains("Last-Modified: "), "{head}");
    assert!(head.contains("Accept-Ranges: bytes\r\n"), "{head}");
    // Ranges: 206 with Content-Range; an unsatisfiable one is 416.
    let out = curl(
        &s.lab,
        &["-r", "2-5", "-D", "-", &format!("{base}/digits.txt")],
    );
    let t = text(&out.stdout);
    assert!(t.starts_with("HTTP/1.1 206 Partial Content\r\n"), "{t}");
    assert!(t.contains("Content-Range: bytes 2-5/10\r\n"), "{t}");
    assert!(t.ends_with("\r\n\r\n2345"), "{t}");
    let out = curl(&s.lab, &["-r", "-3", &format!("{base}/digits.txt")]);
    assert_eq!(text(&out.stdout), "789");
    let out = curl(
        &s.lab,
        &[
            "-r",
            "20-30",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{base}/digits.txt"),
        ],
    );
    assert_eq!(text(&out.stdout), "416");
    // If-Modified-Since: 304 once the client has the current copy.
    let lm = head
        .lines()
        .find_map(|l| l.strip_prefix("Last-Modified: "))
        .unwrap()
        .trim()
        .to_string();
    let out = curl(
        &s.lab,
        &[
            "-H",
            &format!("If-Modified-Since: {lm}"),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{base}/hello.txt"),
        ],
    );
    assert_eq!(text(&out.stdout), "304");
    // 404, traversal refused, 405.
    let code = |args: &[&str]| {
        let mut a = vec!["-o", "/dev/null", "-w", "%{http_code}"];
        a.extend_from_slice(args);
        text(&curl(&s.lab, &a).stdout)
    };
    assert_eq!(code(&[&format!("{base}/nope")]), "404");
    assert_eq!(
        code(&["--path-as-is", &format!("{base}/../../etc/passwd")]),
        "403"
    );
    assert_eq!(code(&[&format!("{base}/%2e%2e/%2e%2e/etc/passwd")]), "403");
    assert_eq!(code(&["-X", "DELETE", &format!("{base}/hello.txt")]), "405");
    // A directory index lists the entries, names escaped.
    let out = curl(&s.lab, &[&format!("{base}/docs/")]);
    let idx = text(&out.stdout);
    assert!(idx.contains("Index of /docs/"), "{idx}");
    assert!(idx.contains("href=\"a.json\""), "{idx}");
    assert!(idx.contains("href=\"sub/\""), "{idx}");
    assert!(idx.contains("b &amp; c.txt"), "{idx}");
    // A directory without its slash is redirected to it.
    let out = curl(
        &s.lab,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            &format!("{base}/docs"),
        ],
    );
    assert_eq!(text(&out.stdout), format!("301 {base}/docs/"));
    // Keep-alive: curl reuses the connection for a second URL.
    let u = format!("{base}/hello.txt");
    let out = curl(&s.lab, &["-v", &u, &u]);
    let err = text(&out.stderr);
    assert!(
        err.contains("Re-using existing connection") || err.contains("Reusing existing"),
        "{err}"
    );

    // Pipelining with nc: three requests in one write, answered in order.
    let reqs = b"GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n\
HEAD /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let ip = s.lab.node.address().to_string();
    let out = text(&nc(&s.lab, &["-N", "-w", "5", &ip, "8080"], reqs));
    let statuses: Vec<&str> = out
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| out[i..].split("\r\n").next())
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 200 OK",
            "HTTP/1.1 404 Not Found",
            "HTTP/1.1 200 OK"
        ],
        "{out}"
    );
    assert!(out.contains("\r\n\r\n0123456789HTTP/1.1 404"), "{out}");
    assert!(out.ends_with("\r\n\r\n"), "HEAD has no body: {out}");

    // Bad requests get their own status and the connection is closed.
    assert!(raw_http(&s, 8080, b"BLAH\r\n\r\n").starts_with("HTTP/1.1 400 "));
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    assert!(raw_http(&s, 8080, long_uri.as_bytes()).starts_with("HTTP/1.1 414 "));
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20_000)
    );
    let r = raw_http(&s, 8080, big_head.as_bytes());
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    let body = b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n";
    assert!(raw_http(&s, 8080, body).starts_with("HTTP/1.1 413 "));
    let v2 = b"GET / HTTP/2.0\r\nHost: x\r\n\r\n";
    assert!(raw_http(&s, 8080, v2).starts_with("HTTP/1.1 400 "));

    // The access log has a line per request, in common log format.
    let mut log = Vec::new();
    while let Ok(l) = s.log.recv_timeout(Duration::from_secs(2)) {
        log.push(l);
        if log.iter().any(|l| l.contains("\"GET / HTTP/2.0\"")) {
            break;
        }
    }
    assert!(
        log.iter().any(|l| l.starts_with("10.7.0.1 - - [")
            && l.contains("] \"GET /style.css HTTP/1.1\" 200 7")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("\"GET /nope HTTP/1.1\" 404 ")),
        "{log:#?}"
    );
}

/// The parts of a `multipart/byteranges` body (RFC 9110 §14.6): each part's head and bytes.
fn byteranges(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delim = format!("--{boundary}");
    let close = format!("\r\n--{boundary}--\r\n");
    assert!(body.starts_with(delim.as_bytes()), "{}", text(body));
    assert!(body.ends_with(close.as_bytes()), "{}", text(body));
    let inner = &body[delim.len()..body.len() - close.len()];
    let sep = format!("\r\n{delim}");
    let mut parts = Vec::new();
    let mut rest = inner;
    loop {
        let at = rest
            .windows(sep.len())
            .position(|w| w == sep.as_bytes())
            .unwrap_or(rest.len());
        let part = rest[..at]
            .strip_prefix(b"\r\n")
            .expect("CRLF after a delimiter");
        parts.push(split_head(part));
        if at == rest.len() {
            return parts;
        }
        rest = &rest[at + sep.len()..];
    }
}

#[test]
fn http_several_ranges_answer_multipart_byteranges() {
    if !interop_allowed() {
        return;
    }
    let site = http_site();
    let spec = format!("http:8080={}", site.0.display());
    let s = serve(&[], &[&spec]);
    let base = format!("http://{}:8080", s.lab.node.address());
    let big = random_bytes(3 << 20, 11);
    let len = big.len();

    let ranges = [(0usize, 9usize), (20, 29), (1 << 20, (2 << 20) + 99)];
    let asked: Vec<String> = ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect();
    let out = curl(
        &s.lab,
        &[
            "-r",
            &asked.join(","),
            "-D",
            "-",
            &format!("{base}/big.bin"),
        ],
    );
    let (head, body) = split_head(&out.stdout);
    assert!(
        head.starts_with("HTTP/1.1 206 Partial Content\r\n"),
        "{head}"
    );
    let ctype = header(&head, "content-type").expect("a type");
    let boundary = ctype
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{head}"));
    assert_eq!(
        header(&head, "content-length"),
        Some(body.len().to_string().as_str()),
        "the length is exact"
    );
    assert!(header(&head, "content-range").is_none(), "{head}");
    let parts = byteranges(&body, boundary);
    assert_eq!(parts.len(), ranges.len());
    for ((phead, bytes), (a, b)) in parts.iter().zip(ranges) {
        assert_eq!(
            header(phead, "content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(
            header(phead, "content-range"),
            Some(format!("bytes {a}-{b}/{len}").as_str())
        );
        assert!(
            bytes[..] == big[a..=b],
            "part {a}-{b} differs from the file"
        );
    }

    // HEAD promises the same length (boundaries are all as long) and sends no body.
    let out = curl(
        &s.lab,
        &["-I", "-r", &asked.join(","), &format!("{base}/big.bin")],
    );
    let h = text(&out.stdout);
    assert!(h.starts_with("HTTP/1.1 206 "), "{h}");
    assert_eq!(
        header(&h, "content-length"),
        Some(body.len().to_string().as_str()),
        "{h}"
    );
    assert!(h.ends_with("\r\n\r\n"), "no body: {h}");

    // Overlapping ranges coalesce into one: a plain 206.
    let out = curl(
        &s.lab,
        &[
            "-r",
            "0-4,3-6,7-9",
            "-D",
            "-",
            &format!("{base}/digits.txt"),
        ],
    );
    let (head, body) = split_head(&out.stdout);
    assert!(head.starts_with("HTTP/1.1 206 "), "{head}");
    assert_eq!(header(&head, "content-range"), Some("bytes 0-9/10"));
    assert_eq!(text(&body), "0123456789");
    // An unsatisfiable range drops out; none satisfiable is 416.
    let out = curl(
        &s.lab,
        &["-r", "2-3,50-60", "-D", "-", &format!("{base}/digits.txt")],
    );
    let (head, body) = split_head(&out.stdout);
    assert_eq!(
        header(&head, "content-range"),
        Some("bytes 2-3/10"),
        "{head}"
    );
    assert_eq!(text(&body), "23");
    let out = curl(
        &s.lab,
        &[
            "-r",
            "20-30,40-",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{base}/digits.txt"),
        ],
    );
    assert_eq!(text(&out.stdout), "416");
    // Too many ranges: the whole file, 200.
    let many: Vec<String> = (0..20)
        .map(|i| format!("{}-{}", 4 * i, 4 * i + 1))
        .collect();
    let out = curl(
        &s.lab,
        &[
            "-r",
            &many.join(","),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            &format!("{base}/big.bin"),
        ],
    );
    assert_eq!(text(&out.stdout), format!("200 {len}"));
}

#[test]
fn http_serve_stop_closes_the_listener_and_its_connections() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("sv").expect("lab up");
    let site = http_site();
    let mut child = Command::new(TAPIR)
        .arg("node")
        .args(lab.node_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tapir node");
    let mut shell = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let _proc = Proc(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    // Types a command and waits (bounded) for the line that says it is done.
    let mut command = |cmd: &str, want: &str| {
        shell.write_all(format!("{cmd}\n").as_bytes()).unwrap();
        loop {
            match lines.recv_timeout(Duration::from_secs(10)) {
                Ok(l) if l.contains(want) => return l,
                Ok(_) => {}
                Err(e) => panic!("'{cmd}': no line with '{want}': {e}"),
            }
        }
    };
    let start = format!("serve start http:8080={}", site.0.display());
    command(&start, "serving http/tcp:8080");
    let url = format!("http://{}:8080/digits.txt", lab.node.address());
    let status = |lab: &Lab| {
        let out = curl(lab, &["-o", "/dev/null", "-w", "%{http_code}", &url]);
        (out.status.code(), text(&out.stdout))
    };
    assert_eq!(status(&lab), (Some(0), "200".to_string()));

    // A keep-alive connection, idle after its first answer.
    let addr = SocketAddr::V4(SocketAddrV4::new(lab.node.address(), 8080));
    let mut held = kernel(&lab, || answered_keep_alive(&addr, Duration::from_secs(10)));

    command("serve stop http", "stopped http/tcp:8080");
    // The held connection is closed by the server: EOF (or a reset), not the read timeout.
    let mut rest = Vec::new();
    match held.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{}", text(&rest)),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    // Nobody listens: curl's connection is refused (exit 7).
    assert_eq!(status(&lab), (Some(7), "000".to_string()));
    // The port is free again at once.
    command(&start, "serving http/tcp:8080");
    assert_eq!(status(&lab), (Some(0), "200".to_string()));
}

/// A keep-alive connection to `addr` that asked for /digits.txt and read the whole answer.
fn answered_keep_alive(addr: &SocketAddr, read_timeout: Duration) -> TcpStream {
    let mut c = TcpStream::connect_timeout(addr, Duration::from_secs(5)).unwrap();
    c.set_read_timeout(Some(read_timeout)).unwrap();
    c.write_all(b"GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !text(&got).ends_with("0123456789") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {}", text(&got));
        got.extend_from_slice(&buf[..n]);
    }
    c
}

/// Threads of process `pid`.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("read the task list")
        .count()
}

#[test]
fn http_connections_are_served_on_the_workers_without_a_thread_each() {
    if !interop_allowed() {
        return;
    }
    let site = http_site();
    let spec = format!("http:8080={}", site.0.display());
    let s = serve(&[], &[&spec]);
    let pid = s.proc.0.id();
    let before = threads(pid);
    let addr = addr_of(&s, 8080);
    let (during, held) = kernel(&s.lab, || {
        // 32 keep-alive connections, each answered once and held open.
        let held: Vec<TcpStream> = (0..32)
            .map(|_| answered_keep_alive(&addr, Duration::from_secs(5)))
            .collect();
        (threads(pid), held)
    });
    assert_eq!(
        during, before,
        "threads before the connections and while they are held"
    );
    // Held and idle, the 32 answered keep-alive connections draw nothing from the server.
    let flows: Vec<Flow> = held.iter().map(Flow::of_kernel).collect();
    assert_idle_silent(
        &s.lab,
        &flows,
        Duration::from_secs(1),
        "32 held keep-alives",
    );
    drop(held);
}

#[test]
fn http_connection_limit_answers_503_beyond_it() {
    if !interop_allowed() {
        return;
    }
    let site = http_site();
    let spec = format!("http:8080={}", site.0.display());
    let s = serve(&["--http-max-conns", "2"], &[&spec]);
    let addr = addr_of(&s, 8080);
    let third = kernel(&s.lab, || {
        // Two idle keep-alive connections hold both slots.
        let held: Vec<TcpStream> = (0..2)
            .map(|_| answered_keep_alive(&addr, Duration::from_secs(5)))
            .collect();
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        drop(held);
        text(&out)
    });
    assert!(third.starts_with("HTTP/1.1 503 "), "{third}");
}

/// A server that closes first keeps each connection in TIME-WAIT for 60 s, so clients arriving
/// from ever new ports would fill `--max-conns` with TIME-WAIT and be refused for a minute. With
/// room for 8, 60 kernel clients one after another (each asking `Connection: close`, so tapir
/// closes first) are all answered: TIME-WAIT no application holds takes no room from
/// connections, and at 8 of them the oldest gives way.
#[test]
fn time_wait_does_not_lock_out_new_clients_at_max_conns() {
    if !interop_allowed() {
        return;
    }
    let site = http_site();
    let spec = format!("http:8080={}", site.0.display());
    let s = serve(&["--max-conns", "8"], &[&spec]);
    // raw_http panics at the first client that is not answered (its connect times out).
    for i in 0..60 {
        let t = raw_http(
            &s,
            8080,
            b"GET /digits.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(
            t.starts_with("HTTP/1.1 200 ") && t.ends_with("0123456789"),
            "client {i}: {t}"
        );
    }
}

/// Path MTU discovery (RFC 1191) through kernel routers: between router 2 and router 3 the link
/// takes 1000-byte packets, and tapir's full-sized segments (DF set) are dropped there with an
/// ICMP "fragmentation needed". tapir sends them again smaller at once, so curl at the far end
/// gets a 300 KB file whole; router 2 reports a handful of segments, not one per segment of the
/// file; and a second download starts at the path's MSS (router 2 reports nothing). tapir runs
/// 2 queues and curl's ports are chosen so that worker 1 owns the first connection (the report,
/// which the tap queues on queue 0, must reach it) and worker 0 the second (the path MTU worker 1
/// learned must reach worker 0's stack).
#[test]
fn a_narrow_link_on_the_path_shrinks_the_segments_and_the_download_completes() {
    if !interop_allowed() {
        return;
    }
    let c = chain();
    for (ns, dev) in [(&c.r2, &c.r2_r3.0), (&c.r3, &c.r2_r3.1)] {
        ip(&["-n", ns, "link", "set", "dev", dev, "mtu", "1000"]);
    }
    let site = http_site();
    let body = random_bytes(300_000, 9);
    std::fs::write(site.0.join("big.bin"), &body).unwrap();
    let spec = format!("http={}", site.0.display());
    let Chain {
        lab, _ns, r2, dst, ..
    } = c;
    let _served = serve_in(lab, &["--gateway", "10.7.0.1", "--queues", "2"], &[&spec]);
    let port_on = |worker: usize| {
        (41000..)
            .find(|&p| engine::steer::flow_owner(80, [10, 7, 3, 2], p, 2) == worker)
            .unwrap()
    };
    let reports = || kernel_counter(&r2, "/proc/net/snmp", "Icmp", "OutDestUnreachs");
    let fetch = |worker: usize| {
        let port = port_on(worker).to_string();
        Command::new("ip")
            .args(["netns", "exec", &dst, "curl", "-s", "-m", "20"])
            .args(["--local-port", &port, "http://10.7.0.2/big.bin"])
            .output()
            .expect("run curl")
    };
    let before = reports();
    let out = fetch(1);
    assert!(out.status.success(), "curl: {:?}", out.status);
    assert!(
        out.stdout == body,
        "{} of {} bytes",
        out.stdout.len(),
        body.len()
    );
    let first = reports() - before;
    assert!(
        (1..=64).contains(&first),
        "router 2 reported {first} segments too big"
    );
    let out = fetch(0);
    assert!(
        out.stdout == body,
        "{} of {} bytes",
        out.stdout.len(),
        body.len()
    );
    assert_eq!(
        reports() - before,
        first,
        "the second download, on the other worker, started small"
    );
}

/// The same narrow link for UDP: tapir perf sends 1400-byte datagrams (DF set, as they fit its
/// link) to a stock iperf3 server past it. The first draws "fragmentation needed"; from then on
/// tapir cuts the datagrams to the path into fragments the server reassembles, so it loses a
/// handful, where it lost every one before and router 2 answered each with a report.
#[test]
fn a_narrow_link_on_the_path_makes_udp_datagrams_fragments_that_arrive() {
    if !interop_allowed() {
        return;
    }
    need("iperf3");
    let c = chain();
    for (ns, dev) in [(&c.r2, &c.r2_r3.0), (&c.r3, &c.r2_r3.1)] {
        ip(&["-n", ns, "link", "set", "dev", dev, "mtu", "1000"]);
    }
    let mut server = Proc(
        Command::new("ip")
            .args(["netns", "exec", &c.dst, "iperf3", "-s", "-1", "-p", "5201"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn iperf3 -s"),
    );
    let reports = || kernel_counter(&c.r2, "/proc/net/snmp", "Icmp", "OutDestUnreachs");
    let before = reports();
    // Until iperf3 -s listens (bounded).
    let listening = || {
        let o = Command::new("ip")
            .args([
                "netns", "exec", &c.dst, "ss", "-Hltn", "sport", "=", ":5201",
            ])
            .output()
            .expect("ss");
        !o.stdout.is_empty()
    };
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !listening() {
        assert!(
            std::time::Instant::now() < until,
            "iperf3 -s never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = Command::new(TAPIR)
        .arg("perf")
        .args(c.lab.node_args())
        .args(["--gateway", "10.7.0.1", "-c", "10.7.3.2", "-u", "-b", "20M"])
        .args(["-l", "1400", "-t", "1", "-J"])
        .output()
        .expect("run tapir perf");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let sum = &j["end"]["sum"];
    let (packets, lost) = (
        sum["packets"].as_u64().unwrap(),
        sum["lost_packets"].as_u64().unwrap(),
    );
    assert!(packets > 1000, "{sum}");
    // A handful: those sent before the first report came back (a worker descheduled on a busy
    // machine may send a few dozen meanwhile, at 1,786 a second), not the 1,786 of before.
    assert!(lost <= 50, "the server lost {lost} of {packets}: {sum}");
    let reported = reports() - before;
    assert!((1..=50).contains(&reported), "router 2 reported {reported}");
    let _ = server.0.wait();
}

/// A kernel client asks for a file 8 times from one port, `Connection: close`: tapir closes
/// first, so each reconnect meets the 4-tuple in tapir's TIME-WAIT (kept compact). RFC 6191 lets
/// each SYN in at once: by its newer timestamp, and with timestamps off in the kernel by its
/// higher ISN. A SYN refused there would draw an ACK, the client's RST and the SYN again a second
/// later: the kernel sends neither.
#[test]
fn a_client_reconnecting_from_its_port_gets_past_time_wait_with_and_without_timestamps() {
    if !interop_allowed() {
        return;
    }
    const CLIENT: &str = r#"
import errno, socket, sys, time

def connect_from_40123():
    # The previous socket on the port may wait in LAST-ACK for tapir's ACK of its FIN a moment
    # longer: connect() refuses its 4-tuple locally (no SYN) until then.
    deadline = time.monotonic() + 10
    while True:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.settimeout(10)
        try:
            s.bind(("10.7.0.1", 40123))
            s.connect((sys.argv[1], 8080))
            return s
        except OSError as e:
            s.close()
            if e.errno not in (errno.EADDRNOTAVAIL, errno.EADDRINUSE) or time.monotonic() > deadline:
                raise
            time.sleep(0.001)

for i in range(8):
    s = connect_from_40123()
    s.sendall(b"GET /digits.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got = b""
    while True:
        d = s.recv(4096)
        if not d:
            break  # the server's FIN: it closed first
        got += d
    s.close()
    print(got.split(b"\r\n")[0].decode(), got.endswith(b"0123456789"))
"#;
    let site = http_site();
    let spec = format!("http:8080={}", site.0.display());
    for timestamps in ["1", "0"] {
        let s = serve(&[], &[&spec]);
        run_ok(
            s.lab
                .command("sysctl")
                .args(["-qw", &format!("net.ipv4.tcp_timestamps={timestamps}")]),
        );
        let syn_again = kernel_netstat(&s.lab, "TcpExt", "TCPSynRetrans");
        let rsts = kernel_snmp(&s.lab, "Tcp", "OutRsts");
        let out = s
            .lab
            .command("python3")
            .args(["-c", CLIENT, &s.lab.node.address().to_string()])
            .output()
            .expect("run the client");
        let so = text(&out.stdout);
        assert!(out.status.success(), "{so} {}", text(&out.stderr));
        assert_eq!(
            so,
            "HTTP/1.1 200 OK True\n".repeat(8),
            "timestamps={timestamps}"
        );
        assert_eq!(
            kernel_netstat(&s.lab, "TcpExt", "TCPSynRetrans"),
            syn_again,
            "timestamps={timestamps}: a SYN had to go again"
        );
        assert_eq!(
            kernel_snmp(&s.lab, "Tcp", "OutRsts"),
            rsts,
            "timestamps={timestamps}: the kernel reset"
        );
    }
}

/// A python3 pty harness: runs ARGV on a pty, answers "Password: " with PASSWORD, sends COMMAND,
/// waits for MARKER, then sends "exit" and waits for the end. Prints everything it saw; exits 0
/// only when MARKER was seen and the session ended. Every wait is bounded.
const PTY_DRIVER: &str = r#"
password, command, marker = sys.argv[1], sys.argv[2], sys.argv[3]
pid = spawn(sys.argv[4:])
ok = wait_for(b"Password: ", 15)
if ok:
    os.write(fd, password.encode() + b"\r")
    time.sleep(0.5)
    os.write(fd, command.encode() + b"\r")
    ok = wait_for(marker.encode(), 15)
    if ok:
        os.write(fd, b"exit\r")
        ok = wait_for(None, 15)
    else:
        wait_for(None, 5)
sys.stdout.write(seen.decode("utf-8", "replace"))
try:
    os.kill(pid, 9)
except OSError:
    pass
sys.exit(0 if ok else 1)
"#;

#[test]
fn debian_rlogin_logs_in_to_tapir_login_and_a_wrong_password_is_refused() {
    if !interop_allowed() {
        return;
    }
    need("rlogin");
    need("openssl");
    let user = SystemUser::new("lg", None);
    let hash =
        run_ok(Command::new("openssl").args(["passwd", "-6", "-salt", "tapirsalt", "s3cret"]));
    let dir = TempDir::new("login");
    let creds = dir.0.join("credentials");
    std::fs::write(
        &creds,
        format!(
            "# tapir login credentials\n{}:{}",
            user.name,
            text(&hash.stdout)
        ),
    )
    .unwrap();
    let spec = format!("login={}", creds.display());
    let s = serve(&[], &[&spec]);
    assert!(s.start_line.contains("login/tcp:513"), "{}", s.start_line);
    let ip = s.lab.node.address().to_string();
    let script = format!("{PTY_PRELUDE}{PTY_DRIVER}");
    let drive = |password: &str| {
        Command::new("python3")
            .args([
                "-c",
                &script,
                password,
                "echo tapir-$((6*7)) as $(id -un)",
                "tapir-42 as ",
            ])
            .args([
                "ip", "netns", "exec", &s.lab.ns, "rlogin", "-l", &user.name, &ip,
            ])
            .output()
            .expect("run the pty driver")
    };
    let out = drive("s3cret");
    let seen = text(&out.stdout);
    assert!(out.status.success(), "{seen}");
    assert!(
        seen.contains(&format!("tapir-42 as {}", user.name)),
        "{seen}"
    );
    let out = drive("wrong");
    let seen = text(&out.stdout);
    assert!(!out.status.success(), "{seen}");
    assert!(seen.contains("Login incorrect"), "{seen}");
}

#[test]
fn http_closes_idle_keep_alive_connections_after_http_idle() {
    if !interop_allowed() {
        return;
    }
    let site = http_site();
    let spec = format!("http:8080={}", site.0.display());
    let s = serve(&["--http-idle", "1"], &[&spec]);
    let addr = addr_of(&s, 8080);
    let rest = kernel(&s.lab, || {
        // Answered, then idle: the server closes it (EOF), well before the 15 s read timeout
        // would turn the read into an error.
        let mut held = answered_keep_alive(&addr, Duration::from_secs(15));
        let mut rest = Vec::new();
        held.read_to_end(&mut rest).map(|_| rest)
    });
    match rest {
        Ok(rest) => assert!(rest.is_empty(), "{}", text(&rest)),
        Err(e) => panic!("the idle connection was not closed: {e}"),
    }
}
