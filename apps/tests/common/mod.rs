//! Shared by the interop test files: the privilege gate and test data.
#![allow(dead_code, unused_imports)]

use std::process::Command;

/// The hostile tests' AF_PACKET tool, shared.
#[path = "../hostile/raw.rs"]
pub mod raw;

pub mod capture;
pub mod http;
pub mod iperf;
pub mod quiet;

/// False (and the test returns early) only when the caller asked to skip interop tests; without
/// root they fail, so a CI without privileges cannot pass by skipping.
pub fn interop_allowed() -> bool {
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

pub use tapir_apps::lab::pseudo_random_bytes as random_bytes;

/// Runs `f` inside the lab namespace, where sockets are the kernel's.
pub fn kernel<T: Send>(lab: &tapir_apps::lab::Lab, f: impl FnOnce() -> T + Send) -> T {
    engine::sys::netns::run_in_netns(&lab.ns, f).expect("enter lab namespace")
}

pub static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A temporary directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("tapir-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("make temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (by its pid) and reaped on drop.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `cond` every 10 ms until it holds or `secs` seconds have passed; whether it held. For
/// waits on a real condition (a file's contents, a process's exit), never before an assertion
/// on timing.
pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    cond()
}

/// Bytes as text, lossily.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `cmd`, which must succeed; its output.
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// A tool the test drives (on the PATH or in /usr/sbin); scripts/setup installs it.
pub fn need(tool: &str) {
    let found = Command::new("sh")
        .args([
            "-c",
            &format!("command -v {tool} || test -x /usr/sbin/{tool}"),
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} is missing: run scripts/setup (as root) to install it"
    );
}

/// A system account for login tests: a home directory of its own, a password when given (for
/// PAM); removed on drop.
pub struct SystemUser {
    pub name: String,
    _home: TempDir,
}

impl SystemUser {
    pub fn new(tag: &str, password: Option<&str>) -> SystemUser {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("tapir-{tag}-{}-{n}", std::process::id() % 100_000);
        let home = TempDir::new(&format!("{tag}-home"));
        run_ok(Command::new("useradd").args([
            "-M",
            "-d",
            &home.0.display().to_string(),
            "-s",
            "/bin/sh",
            &name,
        ]));
        let user = SystemUser { name, _home: home };
        if let Some(password) = password {
            use std::io::Write;
            let mut chpasswd = Command::new("chpasswd")
                .stdin(std::process::Stdio::piped())
                .spawn()
                .expect("spawn chpasswd");
            chpasswd
                .stdin
                .take()
                .expect("stdin")
                .write_all(format!("{}:{password}\n", user.name).as_bytes())
                .expect("write to chpasswd");
            assert!(chpasswd.wait().expect("chpasswd").success(), "chpasswd");
        }
        user
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// What the tests' python3 pty drivers share: `spawn(argv, size)` runs ARGV on a new pty (of
/// `size` (rows, cols) when given) and returns its pid; `wait_for(needle, secs, start)` reads
/// the pty into `seen` until `needle` appears past `start` (None: until the pty closes), at most
/// `secs`. A driver's own script follows this prelude.
pub const PTY_PRELUDE: &str = r#"
import fcntl, os, pty, select, struct, sys, termios, time
seen = b""
fd = -1
def spawn(argv, size=None):
    global fd
    pid, fd = pty.fork()
    if pid == 0:
        if size:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
        os.execvp(argv[0], argv)
    return pid
def wait_for(needle, secs, start=0):
    global seen
    end = time.time() + secs
    while time.time() < end:
        if needle is not None and seen.find(needle, start) >= 0:
            return True
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                d = os.read(fd, 4096)
            except OSError:
                d = b""
            if not d:
                return needle is None
            seen += d
    return False
"#;

/// A counter of the lab kernel's /proc/net/snmp: `field` of the `group` rows (`"Tcp"`,
/// `"InCsumErrors"`).
pub fn kernel_snmp(lab: &tapir_apps::lab::Lab, group: &str, field: &str) -> u64 {
    kernel_counter(&lab.ns, "/proc/net/snmp", group, field)
}

/// A counter of the lab kernel's /proc/net/netstat (`"TcpExt"`, `"TCPSynRetrans"`).
pub fn kernel_netstat(lab: &tapir_apps::lab::Lab, group: &str, field: &str) -> u64 {
    kernel_counter(&lab.ns, "/proc/net/netstat", group, field)
}

/// `field` of the `group` rows of `file` in network namespace `ns` (one a test made): a table
/// of name rows and value rows, as /proc/net/snmp and /proc/net/netstat are.
pub fn kernel_counter(ns: &str, file: &str, group: &str, field: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", file])
        .output()
        .expect("cat");
    let table = text(&out.stdout);
    let prefix = format!("{group}:");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let [names, values] = &rows[..] else {
        panic!("no {group} counters in {file}: {table}");
    };
    let at = names.iter().position(|&n| n == field);
    at.and_then(|i| values.get(i)?.parse().ok())
        .unwrap_or_else(|| panic!("no {group} {field} in {file}: {table}"))
}
