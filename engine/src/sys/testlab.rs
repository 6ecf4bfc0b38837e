//! Test-only lab: a private network namespace `tapir-sys-<pid>-<n>` that is deleted when the guard drops.
//!
//! Every link the tests make lives inside such a namespace, so nothing touches the machine's own network.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace owned by one test. Dropping it deletes the namespace and every link inside it.
pub struct Lab {
    name: String,
}

impl Lab {
    /// Creates a fresh namespace, or prints why the test is skipped and returns `None` (not root, no
    /// /dev/net/tun, no `ip`).
    pub fn new() -> Option<Lab> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("note: skipping: needs root (network namespaces and taps)");
            return None;
        }
        if !Path::new("/dev/net/tun").exists() {
            eprintln!("note: skipping: /dev/net/tun is missing (modprobe tun)");
            return None;
        }
        let name = format!(
            "tapir-sys-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        match Command::new("ip").args(["netns", "add", &name]).output() {
            Ok(out) if out.status.success() => Some(Lab { name }),
            Ok(out) => {
                eprintln!(
                    "note: skipping: `ip netns add {name}` failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                None
            }
            Err(e) => {
                eprintln!("note: skipping: cannot run `ip`: {e}");
                None
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n LAB ARGS...` and returns its output, successful or not.
    pub fn ip_output(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run ip: {e}"))
    }

    /// Runs `ip -n LAB ARGS...`, failing the test when it fails; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = self.ip_output(args);
        assert!(
            out.status.success(),
            "ip -n {} {}: {}",
            self.name,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
