//! scripts/setup and scripts/test (issue 18), run against fakes: a fake `dpkg-query` on the PATH
//! says which packages are installed, a fake `apt-get` records its arguments (and can say that
//! another process holds a lock), so nothing is installed and no real lock is taken. The step
//! runner of scripts/test (scripts/lib-steps.sh) runs a tiny step list of its own, never the suite.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A directory of fake programs, put first on the PATH; removed on drop.
struct Fakes(PathBuf);

impl Fakes {
    fn new(tag: &str) -> Fakes {
        let dir = std::env::temp_dir().join(format!("tapir-setup-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("make the fakes directory");
        Fakes(dir)
    }

    fn program(&self, name: &str, body: &str) {
        let p = self.0.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write a fake");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// `dpkg-query -W -f='${Status}' PKG`: the packages in $FAKE_ABSENT are unknown, those in
    /// $FAKE_REMOVED left only their configuration, every other one is installed.
    fn dpkg_query(&self) {
        self.program(
            "dpkg-query",
            r#"for pkg; do :; done
for p in $FAKE_ABSENT; do
  [ "$p" = "$pkg" ] && { echo "dpkg-query: no packages found matching $pkg" >&2; exit 1; }
done
for p in $FAKE_REMOVED; do
  [ "$p" = "$pkg" ] && { printf 'deinstall ok config-files'; exit 0; }
done
printf 'install ok installed'"#,
        );
    }

    fn setup(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(scripts().join("setup")).args(args).env(
            "PATH",
            format!(
                "{}:{}",
                self.0.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
        cmd
    }
}

impl Drop for Fakes {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const CHECKED_BY_PACKAGE: [&str; 8] = [
    "rsh-redone-client",
    "rsh-redone-server",
    "netcat-openbsd",
    "nginx-light",
    "iputils-ping",
    "dnsmasq-base",
    "iperf3",
    "tshark",
];

fn missing(out: &Output) -> Vec<String> {
    text(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| CHECKED_BY_PACKAGE.contains(&l.as_str()))
        .collect()
}

/// A machine with netkit's rsh-server and rsh-client has `in.rlogind` and `rlogin`, but not
/// rsh-redone, which the rlogin tests need: --check names rsh-redone-*, and a package removed
/// with its configuration left is missing too.
#[test]
fn setup_check_names_packages_that_commands_of_another_implementation_hide() {
    let fakes = Fakes::new("check");
    fakes.dpkg_query();
    // netkit's commands, as rsh-server and rsh-client install them.
    fakes.program("in.rlogind", "exit 0");
    fakes.program("rlogin", "exit 0");
    fakes.program("nc", "exit 0");

    let out = fakes
        .setup(&["--check"])
        .env("FAKE_ABSENT", "rsh-redone-client rsh-redone-server")
        .env("FAKE_REMOVED", "netcat-openbsd")
        .output()
        .expect("run scripts/setup --check");
    assert_eq!(
        missing(&out),
        ["rsh-redone-client", "rsh-redone-server", "netcat-openbsd"],
        "stdout {:?} stderr {:?}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // Everything installed: none of them named.
    let out = fakes
        .setup(&["--check"])
        .output()
        .expect("run scripts/setup --check");
    assert_eq!(missing(&out), Vec::<String>::new(), "{out:?}");
}

/// Installing waits for a lock another process holds, saying which, and apt-get gets the
/// timeout for dpkg's own lock; the wait is bounded.
#[test]
fn setup_waits_for_a_held_apt_lock_and_gives_up_after_the_bound() {
    let fakes = Fakes::new("lock");
    fakes.dpkg_query();
    fakes.program("debconf-set-selections", "exit 0");
    let log = fakes.0.join("apt-get.log");
    // Records its arguments; `update` finds the lists lock held $FAKE_HELD times, then runs.
    fakes.program(
        "apt-get",
        &format!(
            r#"echo "$*" >>{log}
case " $* " in *" update "*)
  n=$(grep -c ' update' {log})
  if [ "$n" -le "$FAKE_HELD" ]; then
    echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)" >&2
    exit 100
  fi;;
esac
exit 0"#,
            log = log.display()
        ),
    );
    let run = |held: &str, wait: &str| {
        let _ = std::fs::remove_file(&log);
        let start = Instant::now();
        let out = fakes
            .setup(&[])
            .env("FAKE_ABSENT", "rsh-redone-server")
            .env("FAKE_HELD", held)
            .env("TAPIR_SETUP_LOCK_WAIT", wait)
            .env("TAPIR_SETUP_LOCK_POLL", "0.1")
            .output()
            .expect("run scripts/setup");
        let calls: Vec<String> = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        (out, calls, start.elapsed())
    };

    let root = text(&Command::new("id").arg("-u").output().expect("id -u").stdout).trim() == "0";
    if !root {
        // Not root: refused before apt-get, naming the missing package.
        let (out, calls, _) = run("0", "300");
        assert!(calls.is_empty(), "{calls:?}");
        assert!(
            text(&out.stderr).contains("missing rsh-redone-server; run as root"),
            "{out:?}"
        );
        return;
    }

    // The lists lock is held twice, then free: two waits, then update and install.
    let (out, calls, _) = run("2", "300");
    let err = text(&out.stderr);
    let timeout = |c: &String| {
        c.split_whitespace()
            .skip_while(|w| *w != "-o")
            .nth(1)
            .and_then(|o| o.strip_prefix("DPkg::Lock::Timeout="))
            .and_then(|t| t.parse::<u32>().ok())
            .is_some_and(|t| (1..=300).contains(&t))
    };
    let updates = calls.iter().filter(|c| c.contains(" update")).count();
    assert_eq!(updates, 3, "apt-get calls {calls:?}, stderr {err:?}");
    let install: Vec<_> = calls.iter().filter(|c| c.contains(" install")).collect();
    assert_eq!(install.len(), 1, "{calls:?}");
    assert!(install[0].contains("rsh-redone-server"), "{calls:?}");
    assert!(calls.iter().all(timeout), "no lock timeout: {calls:?}");
    assert_eq!(
        err.matches("setup: waiting (up to").count(),
        2,
        "stderr {err:?}"
    );
    assert!(
        err.contains("/var/lib/apt/lists/lock. It is held by process 4242 (apt-get)"),
        "the wait does not say what it waits for: {err:?}"
    );

    // Held for good: setup gives up after the bound, says so, and installs nothing.
    let (out, calls, took) = run("1000000", "1");
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(err.contains("setup: gave up after 1 s"), "stderr {err:?}");
    assert!(calls.len() >= 2, "no retry: {calls:?}");
    assert!(calls.iter().all(|c| !c.contains(" install")), "{calls:?}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

fn steps(list: &str) -> Output {
    Command::new("bash")
        .args([
            "-c",
            &format!(
                "source {}/lib-steps.sh\n{list}\nsteps_summary",
                scripts().display()
            ),
        ])
        .output()
        .expect("run the step runner")
}

/// scripts/test's runner: a failing step does not stop the next ones, cargo's own lines still
/// show, the summary names each failure and its failing tests, and the status is 0 only when
/// every step passed.
#[test]
fn test_steps_all_run_and_the_summary_names_each_failure() {
    let dir = Fakes::new("steps");
    let mark = dir.0.join("third-ran");
    let out = steps(&format!(
        "step first false\n\
         step second sh -c 'echo \"test result: FAILED. 3 passed; 1 failed\"; \
         echo \"test a::b ... FAILED\"; exit 101'\n\
         step third touch {}",
        mark.display()
    ));
    let so = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{so}");
    assert!(
        mark.exists(),
        "the step after two failures did not run: {so}"
    );
    assert!(
        so.contains("test result: FAILED. 3 passed; 1 failed"),
        "{so}"
    );
    let summary = so.split("summary:").nth(1).unwrap_or_default();
    assert!(summary.contains("2 of 3 steps failed"), "{so}");
    assert!(summary.contains("first (exit 1)"), "{so}");
    assert!(summary.contains("second (exit 101)"), "{so}");
    assert!(summary.contains("test a::b ... FAILED"), "{so}");
    assert!(!summary.contains("third"), "{so}");

    let out = steps("step one true\nstep two true");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text(&out.stdout).contains("all 2 steps passed"), "{out:?}");

    // scripts/test itself runs its steps through the runner, cargo test without stopping at
    // the first failing binary, and ends with the summary (its status).
    let test = std::fs::read_to_string(scripts().join("test")).expect("read scripts/test");
    assert!(test.contains("source scripts/lib-steps.sh"), "{test}");
    assert!(!test.contains("set -e"), "{test}");
    assert!(
        test.contains(
            "step \"cargo test\" cargo test --locked --workspace --all-targets --no-fail-fast"
        ),
        "{test}"
    );
    assert_eq!(test.trim_end().lines().last(), Some("steps_summary"));
}
