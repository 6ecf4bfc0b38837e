//! Interop for `tapir rlogin` (issue 5): it logs in to Debian's `in.rlogind` (rsh-redone, PAM
//! password login) in the lab namespace, driven through a pty: runs a command and sees its
//! output, answers the server's urgent 0x80 with the pty's window size (and again after a
//! resize), disconnects with `~.`; a wrong password is refused. Needs root and /dev/net/tun;
//! the lab namespace (named `tapir-*`) and the test user are removed on every path by Drop
//! guards, and the one-shot server is killed by its pid.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tapir_apps::lab::Lab;

mod common;
use common::{interop_allowed, need, text, Proc, SystemUser, PTY_PRELUDE};

const TAPIR: &str = env!("CARGO_BIN_EXE_tapir");

/// `/etc/netns/NS/hosts`, which `ip netns exec NS` mounts over /etc/hosts: in.rlogind looks
/// up its peer's name and gives up when that fails (the lab has no DNS). Removed on drop.
struct LabHosts(std::path::PathBuf);

impl LabHosts {
    fn new(lab: &Lab) -> LabHosts {
        let dir = std::path::Path::new("/etc/netns").join(&lab.ns);
        std::fs::create_dir_all(&dir).expect("make /etc/netns/NS");
        let guard = LabHosts(dir);
        std::fs::write(
            guard.0.join("hosts"),
            format!(
                "127.0.0.1 localhost\n{} tapir-lab-host\n{} tapir-node\n",
                lab.host,
                lab.node.address()
            ),
        )
        .expect("write the lab's hosts file");
        guard
    }
}

impl Drop for LabHosts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The in.rlogind the tests talk to.
const RLOGIND: &str = "/usr/sbin/in.rlogind";

/// The tests expect rsh-redone's in.rlogind: netkit's rsh-server installs one at the same path,
/// and sessions with it fail with an empty transcript. Says which binary is there and which
/// package (and version) it comes from, asking DPKG_QUERY; an error when it is not rsh-redone's.
fn rlogind_peer(dpkg_query: &str, path: &str) -> Result<String, String> {
    let query = |args: &[&str]| {
        Command::new(dpkg_query)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| text(&o.stdout).trim().to_string())
    };
    let expected = "rsh-redone-server";
    let redone = query(&["-W", "-f=${Status} ${Version}", expected])
        .and_then(|s| s.strip_prefix("install ok installed ").map(String::from))
        .map_or_else(|| "not installed".into(), |v| format!("{v} installed"));
    let Ok(real) = std::fs::canonicalize(path) else {
        return Err(format!(
            "no {path}: the rlogin tests need {expected}'s in.rlogind ({expected}: {redone}); \
             run scripts/setup as root"
        ));
    };
    let real = real.display().to_string();
    let shown = if real == path {
        path.to_string()
    } else {
        format!("{path} (-> {real})")
    };
    // `dpkg-query -S` answers "PACKAGE[, PACKAGE]: PATH" for the path as the package has it.
    let owner = [path, real.as_str()]
        .iter()
        .find_map(|p| {
            let out = query(&["-S", p])?;
            out.lines()
                .find_map(|l| l.strip_suffix(&format!(": {p}")).map(String::from))
        })
        .unwrap_or_else(|| "no package".into());
    let version = query(&["-W", "-f=${Version}", &owner]).unwrap_or_default();
    let from = format!("{owner} {version}").trim_end().to_string();
    if owner == expected {
        Ok(format!("{shown} from {from}"))
    } else {
        Err(format!(
            "the peer {shown} is from {from}, not {expected} ({expected}: {redone}): the rlogin \
             tests need rsh-redone's in.rlogind; run scripts/setup as root to install it"
        ))
    }
}

/// The peer, checked before a session: a test against another in.rlogind fails saying so.
fn expect_rsh_redone() -> String {
    rlogind_peer("dpkg-query", RLOGIND).unwrap_or_else(|e| panic!("{e}"))
}

/// A one-connection inetd: listens on 513 in the lab namespace, says "ready", accepts one
/// connection and execs in.rlogind on it (stdin and stdout the socket, as inetd does), so
/// the process's pid is rlogind's.
const INETD: &str = r#"
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 513))
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
s.close()
os.dup2(c.fileno(), 0)
os.dup2(c.fileno(), 1)
os.execv(sys.argv[2], ["in.rlogind"])
"#;

/// in.rlogind for one session, listening on the lab's kernel side.
fn rlogind(lab: &Lab) -> Proc {
    let mut child = lab
        .command("python3")
        .args(["-c", INETD, &lab.host.to_string(), RLOGIND])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the inetd");
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the inetd's ready line");
    assert_eq!(line.trim(), "ready", "the inetd did not start");
    proc
}

/// Waits (bounded) for a process to exit.
fn exits_within(p: &mut Proc, secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if let Ok(Some(_)) = p.0.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The pty harness. Runs ARGV on a pty of 33 rows by 101 columns and plays MODE:
/// - `good`: answers "Password: " with PASSWORD, runs a command printing a marker, the user
///   and `stty size`; resizes the pty to 40x120 and runs `stty size` until it shows; types
///   `~.` at a line start and waits for the client to exit.
/// - `bad`: answers with PASSWORD and waits for the client to exit.
/// - `shell`: ARGV is `tapir node` and $RLOGIN_HOST the host: types `rlogin -l USER HOST` at
///   the shell's prompt, plays `good`, then waits for the prompt to come back and quits.
///
/// Every wait is bounded and waits for output, never for time. Prints `STEP name` for each
/// step reached, then the transcript as hex, then `EXIT status`.
const PTY_DRIVER: &str = r#"
mode, password, user = sys.argv[1], sys.argv[2], sys.argv[3]
pid = spawn(sys.argv[4:], (33, 101))
def step(name):
    print("STEP " + name, flush=True)
def finish():
    wait_for(None, 15)
    status = "none"
    end = time.time() + 5
    while time.time() < end:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p == pid:
            status = str(os.waitstatus_to_exitcode(st))
            break
        time.sleep(0.05)
    if status == "none":
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    print("HEX " + seen.hex(), flush=True)
    print("EXIT " + status, flush=True)
    sys.exit(0)
if mode == "shell":
    if not wait_for(b"> ", 20):
        finish()
    os.write(fd, ("rlogin -l " + user + " " + os.environ["RLOGIN_HOST"] + "\r").encode())
if not wait_for(b"Password: ", 20):
    finish()
step("prompt")
os.write(fd, password.encode() + b"\r")
if mode == "bad":
    finish()
os.write(fd, b"echo tapir-$((6*7)) $(id -un); stty size\r")
if not wait_for(("tapir-42 " + user).encode(), 20):
    finish()
step("command")
if not wait_for(b"\r\n33 101\r\n", 10):
    finish()
step("size")
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
resized = False
for _ in range(10):
    os.write(fd, b"stty size\r")
    if wait_for(b"\r\n40 120\r\n", 2):
        resized = True
        break
if not resized:
    finish()
step("resize")
os.write(fd, b"\r~.")
if mode == "shell":
    if wait_for(b"disconnected from", 15):
        if wait_for(b"> ", 15, seen.find(b"disconnected from")):
            step("back")
            os.write(fd, b"quit\r")
finish()
"#;

struct Session {
    steps: Vec<String>,
    transcript: Vec<u8>,
    exit: String,
}

fn drive(lab: &Lab, mode: &str, password: &str, user: &str) -> Session {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        &format!("{PTY_PRELUDE}{PTY_DRIVER}"),
        mode,
        password,
        user,
        TAPIR,
    ]);
    if mode == "shell" {
        cmd.arg("node")
            .args(lab.node_args())
            .args(["--queues", "2"])
            .env("RLOGIN_HOST", lab.host.to_string());
    } else {
        cmd.arg("rlogin").args(lab.node_args()).args([
            "--queues",
            "2",
            "-T",
            "20",
            "-l",
            user,
            &lab.host.to_string(),
        ]);
    }
    let out = cmd
        .env("TERM", "xterm")
        .stderr(Stdio::inherit())
        .output()
        .expect("run the pty driver");
    let stdout = text(&out.stdout);
    let mut s = Session {
        steps: Vec::new(),
        transcript: Vec::new(),
        exit: String::new(),
    };
    for line in stdout.lines() {
        if let Some(step) = line.strip_prefix("STEP ") {
            s.steps.push(step.into());
        } else if let Some(hex) = line.strip_prefix("HEX ") {
            s.transcript = (0..hex.len() / 2)
                .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                .collect();
        } else if let Some(e) = line.strip_prefix("EXIT ") {
            s.exit = e.into();
        }
    }
    s
}

#[test]
fn tapir_rlogin_logs_in_to_debian_rlogind_sends_window_sizes_and_a_wrong_password_is_refused() {
    if !interop_allowed() {
        return;
    }
    need("python3");
    let peer = expect_rsh_redone();
    let user = SystemUser::new("rl", Some("s3cret-Rl"));
    let lab = Lab::up("rl").expect("lab up");
    let _hosts = LabHosts::new(&lab);

    let mut server = rlogind(&lab);
    let s = drive(&lab, "good", "s3cret-Rl", &user.name);
    let seen = text(&s.transcript);
    assert_eq!(
        s.steps,
        ["prompt", "command", "size", "resize"],
        "peer {peer}, transcript: {seen:?}"
    );
    // The urgent 0x80 was taken as control, not shown. rsh-redone's in.rlogind sends it twice
    // (both sides of its fork call send(MSG_OOB)): when both are in before the client reads,
    // or share a segment, only the newer sits at the mark (one mark, as in BSD and Linux) and
    // the older is plain data. Without marks both show.
    let shown = s.transcript.iter().filter(|&&b| b == 0x80).count();
    assert!(shown <= 1, "{shown} urgent bytes shown: {seen:?}");
    assert_eq!(s.exit, "0", "tapir rlogin after ~.: {seen:?}");
    assert!(
        seen.contains("disconnected from"),
        "no word of the disconnect: {seen:?}"
    );
    // ~. closed the connection: the server's session ends.
    assert!(
        exits_within(&mut server, 15),
        "in.rlogind still runs after ~."
    );

    let mut server = rlogind(&lab);
    let s = drive(&lab, "bad", "wrong", &user.name);
    let seen = text(&s.transcript);
    assert_eq!(s.steps, ["prompt"], "peer {peer}: {seen:?}");
    assert!(seen.contains("Authentication failure"), "{seen:?}");
    assert!(
        !seen.contains("$ "),
        "a shell after a wrong password: {seen:?}"
    );
    assert_eq!(
        s.exit, "0",
        "tapir rlogin after the server closed: {seen:?}"
    );
    assert!(exits_within(&mut server, 15), "in.rlogind still runs");
}

/// The node shell's `rlogin` on the shell's terminal: the same session, then the prompt again.
#[test]
fn node_shell_rlogin_runs_a_session_and_returns_to_the_prompt() {
    if !interop_allowed() {
        return;
    }
    need("python3");
    let peer = expect_rsh_redone();
    let user = SystemUser::new("rl", Some("s3cret-Sh"));
    let lab = Lab::up("rls").expect("lab up");
    let _hosts = LabHosts::new(&lab);
    let _server = rlogind(&lab);
    let s = drive(&lab, "shell", "s3cret-Sh", &user.name);
    let seen = text(&s.transcript);
    assert_eq!(
        s.steps,
        ["prompt", "command", "size", "resize", "back"],
        "peer {peer}, transcript: {seen:?}"
    );
    assert_eq!(s.exit, "0", "tapir node after quit: {seen:?}");
}

#[test]
fn bad_rlogin_usage_exits_2() {
    for args in [
        &["-l", "", "10.7.0.1"][..],
        &["-p", "0", "10.7.0.1"][..],
        &[][..],
    ] {
        let out = Command::new(TAPIR)
            .args(["rlogin", "--ip", "10.7.0.2/24"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tapir rlogin");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).trim().is_empty(), "{args:?}");
    }
}

/// A fake `dpkg-query` (in a directory removed on drop) answering for a machine where the
/// in.rlogind at PATH comes from OWNER at VERSION and rsh-redone-server is REDONE ("" when
/// unknown).
struct FakeDpkg(std::path::PathBuf);

impl FakeDpkg {
    fn new(tag: &str, owner: &str, version: &str, redone: &str) -> FakeDpkg {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tapir-rlpeer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("make the fake's directory");
        let fake = FakeDpkg(dir);
        std::fs::write(fake.rlogind(), "#!/bin/sh\n").expect("write a fake in.rlogind");
        let script = format!(
            r#"#!/bin/sh
for last; do :; done
case "$1|$2|$last" in
  '-S|{rlogind}|{rlogind}') echo "{owner}: {rlogind}" ;;
  '-W|-f=${{Version}}|{owner}') printf '{version}' ;;
  '-W|-f=${{Status}} ${{Version}}|rsh-redone-server') [ -n "{redone}" ] || exit 1; printf '{redone}' ;;
  *) exit 1 ;;
esac
"#,
            rlogind = fake.rlogind()
        );
        std::fs::write(fake.dpkg_query(), script).expect("write the fake dpkg-query");
        std::fs::set_permissions(fake.dpkg_query(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        fake
    }
    fn dpkg_query(&self) -> String {
        self.0.join("dpkg-query").display().to_string()
    }
    fn rlogind(&self) -> String {
        self.0.join("in.rlogind").display().to_string()
    }
}

impl Drop for FakeDpkg {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Against netkit's in.rlogind the tests fail up front naming the binary, its package and
/// version, and that rsh-redone is not installed; rsh-redone's passes and is named.
#[test]
fn another_rlogind_is_named_with_its_package_and_version() {
    let netkit = FakeDpkg::new("netkit", "rsh-server", "0.17-22", "");
    let err = rlogind_peer(&netkit.dpkg_query(), &netkit.rlogind()).expect_err("netkit's rlogind");
    assert!(err.contains(&netkit.rlogind()), "{err}");
    assert!(err.contains("from rsh-server 0.17-22"), "{err}");
    assert!(err.contains("(rsh-redone-server: not installed)"), "{err}");

    let redone = FakeDpkg::new(
        "redone",
        "rsh-redone-server",
        "85-4",
        "install ok installed 85-4",
    );
    let ok = rlogind_peer(&redone.dpkg_query(), &redone.rlogind()).expect("rsh-redone's rlogind");
    assert_eq!(
        ok,
        format!("{} from rsh-redone-server 85-4", redone.rlogind())
    );

    let gone = rlogind_peer(&redone.dpkg_query(), "/nonexistent/in.rlogind").expect_err("none");
    assert!(gone.contains("no /nonexistent/in.rlogind"), "{gone}");
    assert!(gone.contains("rsh-redone-server: 85-4 installed"), "{gone}");
}
