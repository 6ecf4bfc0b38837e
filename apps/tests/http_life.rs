//! Interop for issue 17's life cycle: SIGTERM stops `tapir serve` gracefully (new connections
//! refused, the responses in flight finish within --grace, then it exits), SIGHUP opens the
//! access log again. Needs root and /dev/net/tun; every namespace is made by the test (names
//! start with `tapir`) and removed on every path by a Drop guard; every process a test starts is
//! killed by its pid. Waits are bounded and on real conditions (a file's size, a refused
//! connection, a process's exit), never sleeps before an assertion.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

mod common;
use common::http::{addr_of, curl, serve, Served};
use common::{interop_allowed, kernel, random_bytes, text, wait_until, Proc, TempDir};

const MB100: usize = 100 << 20;

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid this test spawned and has not reaped.
    let r = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(r, 0, "kill {pid} {sig}");
}

/// The exit status of `child` once it exits, waiting at most `secs` seconds.
fn exited(child: &mut Child, secs: u64) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(secs, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    status
}

/// A site with a 100 MB file, and the file's sha256.
fn big_site() -> (TempDir, String) {
    let site = TempDir::new("life");
    let big = random_bytes(MB100, 17);
    std::fs::write(site.0.join("big.bin"), &big).unwrap();
    (site, hex(&Sha256::digest(&big)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// curl in the lab downloading `url` into `out` at `rate`, printing status and size.
fn download(s: &Served, url: &str, out: &Path, rate: &str) -> Proc {
    let child = s
        .lab
        .command("curl")
        .args(["-s", "-m", "120", "--limit-rate", rate, "-o"])
        .arg(out)
        .args(["-w", "%{http_code} %{size_download}", url])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    Proc(child)
}

fn stdout_of(p: &mut Proc) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Some(mut o) = p.0.stdout.take() {
        let _ = o.read_to_string(&mut s);
    }
    s
}

/// Waits (bounded) until a new connection to port 8080 is refused: draining has begun.
fn assert_refused(s: &Served) {
    let addr = addr_of(s, 8080);
    let mut tries = Vec::new();
    let refused = wait_until(10, || {
        let r = kernel(&s.lab, || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        });
        // Accepted: draining had not begun yet; try again.
        let refused = matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionRefused);
        tries.push(r.map(|_| ()).map_err(|e| e.kind()));
        refused
    });
    assert!(
        refused,
        "a new connection was not refused after SIGTERM: {tries:?}"
    );
}

#[test]
fn http_sigterm_lets_a_download_in_flight_finish_and_refuses_new_connections() {
    if !interop_allowed() {
        return;
    }
    let (site, sum) = big_site();
    let spec = format!("http:8080={}", site.0.display());
    let mut s = serve(&["--grace", "60", "--queues", "2"], &[&spec]);
    let url = format!("http://{}:8080/big.bin", s.lab.node.address());
    let dl = TempDir::new("life-dl");
    let got = dl.0.join("big.bin");
    // 20 MB/s: five seconds for the whole file, so SIGTERM finds it in flight.
    let mut curl_proc = download(&s, &url, &got, "20M");
    assert!(
        wait_until(20, || size(&got) > 1 << 20),
        "the download did not start"
    );
    let at_signal = size(&got);
    assert!(at_signal < MB100 as u64, "still in flight when signalled");
    signal(s.proc.0.id(), libc::SIGTERM);

    // New connections are refused (reset) while the download goes on.
    assert_refused(&s);
    assert!(
        s.proc.0.try_wait().unwrap().is_none(),
        "tapir is still serving the download when the new connection is refused"
    );

    let status = exited(&mut curl_proc.0, 120).expect("curl finished");
    let out = stdout_of(&mut curl_proc);
    assert!(status.success(), "curl: {status} {out}");
    assert_eq!(out, format!("200 {MB100}"));
    let bytes = std::fs::read(&got).unwrap();
    assert_eq!(hex(&Sha256::digest(&bytes)), sum, "byte-exact");
    let status = exited(&mut s.proc.0, 30).expect("tapir exits once the download is done");
    assert!(status.success(), "tapir: {status}");
}

#[test]
fn http_sigterm_cuts_what_is_left_after_the_grace_period() {
    if !interop_allowed() {
        return;
    }
    let (site, _) = big_site();
    let spec = format!("http:8080={}", site.0.display());
    let mut s = serve(&["--grace", "1"], &[&spec]);
    let url = format!("http://{}:8080/big.bin", s.lab.node.address());
    let dl = TempDir::new("life-cut");
    let got = dl.0.join("big.bin");
    // 1 MB/s: a hundred seconds for the whole file, far past the grace.
    let mut curl_proc = download(&s, &url, &got, "1M");
    assert!(
        wait_until(20, || size(&got) > 100_000),
        "the download did not start"
    );
    signal(s.proc.0.id(), libc::SIGTERM);
    let status = exited(&mut s.proc.0, 30).expect("tapir exits after its grace period");
    assert!(status.success(), "tapir: {status}");
    let status = exited(&mut curl_proc.0, 30).expect("curl ends when tapir has gone");
    assert!(
        !status.success(),
        "the download was cut: {}",
        stdout_of(&mut curl_proc)
    );
    assert!(size(&got) < MB100 as u64);
}

#[test]
fn http_a_second_sigterm_cuts_the_grace_period_short() {
    if !interop_allowed() {
        return;
    }
    let (site, _) = big_site();
    let spec = format!("http:8080={}", site.0.display());
    let mut s = serve(&["--grace", "3600"], &[&spec]);
    let url = format!("http://{}:8080/big.bin", s.lab.node.address());
    let dl = TempDir::new("life-twice");
    let got = dl.0.join("big.bin");
    let mut curl_proc = download(&s, &url, &got, "1M");
    assert!(
        wait_until(20, || size(&got) > 100_000),
        "the download did not start"
    );
    signal(s.proc.0.id(), libc::SIGTERM);
    assert_refused(&s);
    // Draining, with an hour of grace left: a second SIGTERM stops now.
    signal(s.proc.0.id(), libc::SIGTERM);
    let status = exited(&mut s.proc.0, 30).expect("tapir exits at the second SIGTERM");
    assert!(status.success(), "tapir: {status}");
    let status = exited(&mut curl_proc.0, 30).expect("curl ends when tapir has gone");
    assert!(!status.success(), "the download was cut");
}

#[test]
fn http_sighup_opens_the_access_log_again() {
    if !interop_allowed() {
        return;
    }
    let site = common::http::http_site();
    let logdir = TempDir::new("life-log");
    let log = logdir.0.join("access.log");
    let rotated = logdir.0.join("access.log.1");
    let spec = format!("http:8080={}", site.0.display());
    let s = serve(&["--access-log", &log.display().to_string()], &[&spec]);
    let base = format!("http://{}:8080", s.lab.node.address());
    let lines = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();

    assert!(
        curl(&s.lab, &["-o", "/dev/null", &format!("{base}/hello.txt")])
            .status
            .success()
    );
    assert!(wait_until(5, || lines(&log).contains("GET /hello.txt")));
    // logrotate's way: move the file away, then SIGHUP.
    std::fs::rename(&log, &rotated).unwrap();
    signal(s.proc.0.id(), libc::SIGHUP);
    assert!(
        wait_until(5, || log.exists()),
        "SIGHUP made a new access log"
    );
    assert!(
        curl(&s.lab, &["-o", "/dev/null", &format!("{base}/digits.txt")])
            .status
            .success()
    );
    assert!(wait_until(5, || lines(&log).contains("GET /digits.txt")));
    let (old, new) = (lines(&rotated), lines(&log));
    assert_eq!(old.lines().count(), 1, "{old}");
    assert!(old.contains("GET /hello.txt"), "{old}");
    assert_eq!(new.lines().count(), 1, "{new}");
    assert!(
        text(new.as_bytes()).contains("\"GET /digits.txt HTTP/1.1\" 200 10"),
        "{new}"
    );
}
