//! Interop: tapir takes its address by DHCP from a stock dnsmasq on a bridged lab LAN.
//!
//! The lab (every part inside namespaces this test makes, named `tapir-dh*-PID-N`, removed by
//! [`LanLab`]'s `Drop` on every path, dnsmasq killed by its pid first):
//! - namespace `…-br` holds a bridge `br0`, made by `deploy/bridge up --netns …-br` (the
//!   successor of PyIP's `hostconf bridge`), joining a veth `lan0` and tapir's tap `tap0`;
//! - namespace `…-lan` holds the veth's peer `lan1` at 10.9.0.1/24: the "LAN", where dnsmasq
//!   hands out 10.9.0.100-150 with a 2-minute lease (dnsmasq's shortest), router and DNS server
//!   10.9.0.1, and answers `www.lab.test` (10.9.0.80, where nginx serves when a test asks) from
//!   its own records (nothing is forwarded), and from where curl reaches tapir's HTTP service.
//!
//! Renewal is seen without waiting a minute by the client's test-only `--dhcp-max-lease 20`
//! (T1 = 10 s). Needs root, /dev/net/tun, dnsmasq and curl (`scripts/setup` installs them).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TAPIR: &str = env!("CARGO_BIN_EXE_tapir");
const BRIDGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/bridge");

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn interop_allowed() -> bool {
    if std::env::var_os("TAPIR_SKIP_INTEROP").is_some() {
        eprintln!("TAPIR_SKIP_INTEROP set: skipping");
        return false;
    }
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "interop tests need root and /dev/net/tun (set TAPIR_SKIP_INTEROP=1 to skip them)"
    );
    true
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run a lab command");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The bridged LAN with dnsmasq; everything goes when it drops.
struct LanLab {
    br: String,
    lan: String,
    dir: PathBuf,
    dnsmasq: Option<Child>,
    nginx: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for LanLab {
    fn drop(&mut self) {
        for mut d in [self.dnsmasq.take(), self.nginx.take()]
            .into_iter()
            .flatten()
        {
            let _ = d.kill();
            let _ = d.wait();
        }
        for ns in [&self.br, &self.lan] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl LanLab {
    fn up(tag: &str) -> LanLab {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base = format!("tapir-dh{tag}-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&base);
        let mut lab = LanLab {
            br: format!("{base}-br"),
            lan: format!("{base}-lan"),
            dir,
            dnsmasq: None,
            nginx: None,
            log: Arc::new(Mutex::new(Vec::new())),
        };
        std::fs::create_dir_all(&lab.dir).expect("temp dir");
        sh(&["ip", "netns", "add", &lab.br]);
        sh(&["ip", "netns", "add", &lab.lan]);
        sh(&[
            "ip", "-n", &lab.br, "link", "add", "lan0", "type", "veth", "peer", "name", "lan1",
            "netns", &lab.lan,
        ]);
        sh(&[
            "ip",
            "-n",
            &lab.lan,
            "addr",
            "add",
            "10.9.0.1/24",
            "dev",
            "lan1",
        ]);
        sh(&[
            "ip",
            "-n",
            &lab.lan,
            "addr",
            "add",
            "10.9.0.80/24",
            "dev",
            "lan1",
        ]);
        sh(&["ip", "-n", &lab.lan, "link", "set", "lan1", "up"]);
        sh(&["ip", "-n", &lab.lan, "link", "set", "lo", "up"]);
        sh(&[
            "bash", BRIDGE, "up", "--bridge", "br0", "--iface", "lan0", "--tap", "tap0", "--user",
            "root", "--netns", &lab.br,
        ]);
        std::fs::write(lab.dir.join("hello.txt"), b"hello from tapir\n").expect("write file");
        lab.start_dnsmasq("10.9.0.100,10.9.0.150");
        lab
    }

    fn leases(&self) -> PathBuf {
        self.dir.join("dnsmasq.leases")
    }

    /// Starts dnsmasq handing out `range` (FIRST,LAST), with a fresh lease file.
    fn start_dnsmasq(&mut self, range: &str) {
        let _ = std::fs::remove_file(self.leases());
        let leases = format!("--dhcp-leasefile={}", self.leases().display());
        let range = format!("--dhcp-range={range},255.255.255.0,2m");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.lan, "dnsmasq"])
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--interface=lan1",
                "--bind-interfaces",
                "--pid-file=",
                "--user=root",
                &range,
                "--dhcp-option=option:router,10.9.0.1",
                "--dhcp-option=option:dns-server,10.9.0.1",
                "--dhcp-authoritative",
                "--no-ping",
                "--local=/lab.test/",
                "--domain=lab.test",
                "--host-record=www.lab.test,10.9.0.80",
                "--log-facility=-",
                "--log-dhcp",
                &leases,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dnsmasq (is it installed? scripts/setup installs it)");
        let stderr = child.stderr.take().expect("stderr");
        self.dnsmasq = Some(child);
        let mut lines = BufReader::new(stderr).lines();
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
                _ => panic!("dnsmasq exited before it started: {}", seen.join("\n")),
            }
        }
        let log = self.log.clone();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                log.lock().unwrap().push(l);
            }
        });
    }

    /// Starts nginx on 10.9.0.80:80 serving `root`; waits (bounded) until it answers.
    fn start_nginx(&mut self, root: &std::path::Path) {
        let d = self.dir.join("nginx");
        std::fs::create_dir_all(&d).expect("nginx dir");
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
error_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
  fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
  types {{ application/octet-stream bin; }}\n\
  server {{\n    listen 10.9.0.80:80;\n    root {r};\n  }}\n}}\n",
            d = d.display(),
            r = root.display()
        );
        let conf_path = d.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let child = self
            .in_lan("nginx")
            .arg("-p")
            .arg(&d)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx (scripts/setup installs it)");
        self.nginx = Some(child);
        let ready = (0..100).any(|_| {
            let ok = self
                .in_lan("curl")
                .args(["-s", "-o", "/dev/null", "-m", "1", "http://10.9.0.80/"])
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                std::thread::sleep(Duration::from_millis(100));
            }
            ok
        });
        assert!(ready, "nginx did not start listening");
    }

    /// Stops dnsmasq (by its pid) and forgets its log.
    fn stop_dnsmasq(&mut self) {
        if let Some(mut d) = self.dnsmasq.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        self.log = Arc::new(Mutex::new(Vec::new()));
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits up to `secs` for `pred` over dnsmasq's log.
    fn wait_log(&self, secs: u64, pred: impl Fn(&str) -> bool) -> bool {
        let until = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < until {
            if pred(&self.log_text()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        pred(&self.log_text())
    }

    fn tapir(&self, sub: &str) -> Command {
        let mut c = Command::new(TAPIR);
        c.args([sub, "--netns", &self.br, "--tap", "tap0", "--dhcp"]);
        c
    }

    fn in_lan(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.lan, program]);
        c
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The address of a start line `tapir @ 10.9.0.1xx/24 on ...`.
fn start_address(line: &str) -> String {
    let rest = line
        .split("tapir @ ")
        .nth(1)
        .unwrap_or_else(|| panic!("not a start line: {line}"));
    rest.split('/').next().unwrap().to_string()
}

fn in_pool(addr: &str) -> bool {
    addr.strip_prefix("10.9.0.")
        .and_then(|h| h.parse::<u8>().ok())
        .is_some_and(|h| (100..=150).contains(&h))
}

/// A killer for a child tapir: SIGTERM by pid on drop if it is still running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// SIGTERM to a DHCP `tapir serve`: it exits cleanly and dnsmasq logs the RELEASE of `addr`.
fn stop_and_see_the_release(lab: &LanLab, child: &mut Running, addr: &str) {
    sh(&["kill", "-TERM", &child.0.id().to_string()]);
    let status = child.0.wait().expect("wait tapir");
    assert!(status.success(), "tapir serve exited with {status}");
    assert!(
        lab.wait_log(5, |l| l.contains("DHCPRELEASE(lan1)") && l.contains(addr)),
        "dnsmasq saw no RELEASE: {}",
        lab.log_text()
    );
}

/// `tapir serve --dhcp ARGS http=DIR` on the LAN, and the address it leased (from the pool).
fn serve_http(lab: &LanLab, args: &[&str]) -> (Running, String) {
    let mut child = Running(
        lab.tapir("serve")
            .args(args)
            .arg(format!("http={}", lab.dir.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tapir serve"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .next()
        .and_then(Result::ok)
        .expect("tapir serve printed its start line");
    let addr = start_address(&line);
    assert!(in_pool(&addr), "{line}");
    (child, addr)
}

#[test]
fn node_takes_a_lease_with_router_and_dns() {
    if !interop_allowed() {
        return;
    }
    let lab = LanLab::up("n");
    let out = lab
        .tapir("node")
        .args(["--exec", "dhcp; route"])
        .output()
        .expect("run tapir node");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let first = stdout.lines().next().unwrap_or_default();
    let addr = start_address(first);
    assert!(in_pool(&addr), "address {addr} from the pool: {stdout}");
    assert!(stdout.contains("state bound"), "{stdout}");
    assert!(stdout.contains(&format!("address {addr}/24")), "{stdout}");
    assert!(stdout.contains("router 10.9.0.1\n"), "{stdout}");
    assert!(stdout.contains("dns 10.9.0.1\n"), "{stdout}");
    assert!(stdout.contains("server 10.9.0.1\n"), "{stdout}");
    assert!(stdout.contains("domain lab.test"), "{stdout}");
    assert!(
        stdout.contains("probes 3"),
        "RFC 5227 probes sent: {stdout}"
    );
    // Released on exit.
    assert!(
        lab.wait_log(5, |l| l.contains("DHCPRELEASE(lan1)") && l.contains(&addr)),
        "dnsmasq saw no RELEASE: {}",
        lab.log_text()
    );
}

#[test]
fn resolve_uses_the_dns_server_from_the_lease() {
    if !interop_allowed() {
        return;
    }
    let lab = LanLab::up("r");
    let out = lab
        .tapir("resolve")
        .arg("www.lab.test")
        .output()
        .expect("run tapir resolve");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("10.9.0.80"), "{stdout}");
}

#[test]
fn serves_http_on_the_leased_address_and_releases_on_exit() {
    if !interop_allowed() {
        return;
    }
    let lab = LanLab::up("s");
    let (mut child, addr) = serve_http(&lab, &[]);
    // dnsmasq's lease file shows the lease, with the host name tapir sent.
    let leases = std::fs::read_to_string(lab.leases()).unwrap_or_default();
    assert!(
        leases
            .lines()
            .any(|l| l.contains(&addr) && l.contains("tapir")),
        "lease file: {leases}"
    );
    let out = lab
        .in_lan("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}"])
        .arg(format!("http://{addr}/hello.txt"))
        .output()
        .expect("run curl");
    let body = text(&out.stdout);
    assert_eq!(
        body,
        "hello from tapir\n\n200",
        "curl: {}",
        text(&out.stderr)
    );
    // A clean exit releases the lease: dnsmasq logs it and drops it from the lease file.
    stop_and_see_the_release(&lab, &mut child, &addr);
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let leases = std::fs::read_to_string(lab.leases()).unwrap_or_default();
        if !leases.contains(&addr) {
            break;
        }
        assert!(Instant::now() < until, "lease still in the file: {leases}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn renewal_keeps_the_address() {
    if !interop_allowed() {
        return;
    }
    let lab = LanLab::up("w");
    let mut child = Running(
        lab.tapir("node")
            .args(["--dhcp-max-lease", "20"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tapir node"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = lines
        .next()
        .and_then(Result::ok)
        .expect("tapir node printed its start line");
    let addr = start_address(&line);
    // The first ACK, then a renewal's ACK for the same address (T1 = 10 s after the REQUEST).
    let acks = |l: &str| {
        l.lines()
            .filter(|x| x.contains("DHCPACK(lan1)") && x.contains(&addr))
            .count()
    };
    assert!(
        lab.wait_log(30, |l| acks(l) >= 2),
        "no renewal within 30 s: {}",
        lab.log_text()
    );
    // dnsmasq logs its ACK before tapir has read it: ask `dhcp` until the renewal shows.
    let out = Arc::new(Mutex::new(Vec::<String>::new()));
    let out2 = out.clone();
    let reader = std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            out2.lock().unwrap().push(l);
        }
    });
    let mut stdin = child.0.stdin.take().expect("stdin");
    let renewed = format!("renewed {addr}/24");
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until && !out.lock().unwrap().iter().any(|l| l.ends_with(&renewed)) {
        stdin.write_all(b"dhcp\n").expect("write dhcp");
        std::thread::sleep(Duration::from_millis(500));
    }
    stdin.write_all(b"dhcp\nquit\n").expect("write commands");
    drop(stdin);
    let status = child.0.wait().expect("wait tapir");
    reader.join().expect("reader");
    let rest = out.lock().unwrap().join("\n");
    assert!(status.success(), "{rest}");
    assert!(rest.contains("state bound"), "{rest}");
    assert!(
        rest.contains(&format!("address {addr}/24")),
        "address kept: {rest}"
    );
    assert!(
        rest.contains("renewed 1") || rest.contains("renewed 2"),
        "{rest}"
    );
    assert!(rest.contains(&format!("renewed {addr}/24")), "{rest}");
}

#[test]
fn wget_by_name_from_nginx_on_the_lan_is_byte_exact() {
    if !interop_allowed() {
        return;
    }
    let mut lab = LanLab::up("g");
    let www = lab.dir.join("www");
    std::fs::create_dir_all(&www).expect("www dir");
    let body = tapir_apps::lab::pseudo_random_bytes(300_000, 0x5eed);
    std::fs::write(www.join("file.bin"), &body).expect("write file");
    lab.start_nginx(&www);
    let got = lab.dir.join("got.bin");
    let out = lab
        .tapir("wget")
        .args(["-q", "-O"])
        .arg(&got)
        .arg("http://www.lab.test/file.bin")
        .output()
        .expect("run tapir wget");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::read(&got).expect("fetched file") == body,
        "bytes differ"
    );
}

#[test]
fn a_nak_on_renewal_restarts_and_takes_a_new_address() {
    if !interop_allowed() {
        return;
    }
    let mut lab = LanLab::up("k");
    let mut child = Running(
        lab.tapir("node")
            .args(["--dhcp-max-lease", "20"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tapir node"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = lines
        .next()
        .and_then(Result::ok)
        .expect("tapir node printed its start line");
    let old = start_address(&line);
    // The server forgets everything and now serves another range: tapir's renewal is NAKed.
    lab.stop_dnsmasq();
    lab.start_dnsmasq("10.9.0.200,10.9.0.220");
    assert!(
        lab.wait_log(30, |l| l.contains("DHCPNAK(lan1)")
            && l.lines().any(|x| x.contains("DHCPACK(lan1) 10.9.0.2"))),
        "no NAK and new lease within 30 s: {}",
        lab.log_text()
    );
    // The new address is probed (RFC 5227) before use: ask `dhcp` until it says bound.
    let out = Arc::new(Mutex::new(Vec::<String>::new()));
    let out2 = out.clone();
    let reader = std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            out2.lock().unwrap().push(l);
        }
    });
    let mut stdin = child.0.stdin.take().expect("stdin");
    let until = Instant::now() + Duration::from_secs(20);
    let bound_anew = |v: &[String]| {
        let last_state = v.iter().rposition(|l| l.starts_with("state "));
        last_state.is_some_and(|i| {
            v[i] == "state bound"
                && v.get(i + 1)
                    .is_some_and(|a| a.starts_with("address 10.9.0.2"))
        })
    };
    while Instant::now() < until && !bound_anew(&out.lock().unwrap()) {
        stdin.write_all(b"dhcp\n").expect("write dhcp");
        std::thread::sleep(Duration::from_millis(500));
    }
    stdin.write_all(b"quit\n").expect("write quit");
    drop(stdin);
    let status = child.0.wait().expect("wait tapir");
    reader.join().expect("reader");
    let rest = out.lock().unwrap().join("\n");
    assert!(status.success(), "{rest}");
    assert!(
        bound_anew(&out.lock().unwrap()),
        "bound to a new address: {rest}"
    );
    assert!(rest.contains(&format!("lost {old} (nak)")), "{rest}");
}

#[test]
fn several_queues_share_one_lease() {
    if !interop_allowed() {
        return;
    }
    let lab = LanLab::up("q");
    let (mut child, addr) = serve_http(&lab, &["--queues", "2"]);
    // One client, one lease.
    let leases = std::fs::read_to_string(lab.leases()).unwrap_or_default();
    assert_eq!(leases.lines().count(), 1, "lease file: {leases}");
    // Sixteen connections from fresh source ports: each worker owns about half of them (all
    // on one worker has odds of 2^-16), and a worker that had not taken worker 0's lease
    // would not answer its share. Pings are answered by whichever worker reads them.
    for i in 0..16 {
        let out = lab
            .in_lan("curl")
            .args(["-s", "-m", "10", "-w", "\n%{http_code}"])
            .arg(format!("http://{addr}/hello.txt"))
            .output()
            .expect("run curl");
        assert_eq!(
            text(&out.stdout),
            "hello from tapir\n\n200",
            "request {i}: {}",
            text(&out.stderr)
        );
    }
    let out = lab
        .in_lan("ping")
        .args(["-c", "4", "-i", "0.2", "-W", "2", &addr])
        .output()
        .expect("run ping");
    assert!(out.status.success(), "ping: {}", text(&out.stdout));
    stop_and_see_the_release(&lab, &mut child, &addr);
}
