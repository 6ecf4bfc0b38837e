//! The private lab: a network namespace of our own holding a multi-queue tap whose kernel side
//! has an address. Made and removed by `deploy/lab` (embedded here, so the binary works from
//! anywhere); removed on every path by [`Lab`]'s `Drop`.

use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};
use protocols::wire::Ipv4Cidr;

/// The lab script, the same file as `deploy/lab`.
pub const LAB_SCRIPT: &str = include_str!("../../deploy/lab");

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A lab namespace; dropping it removes the namespace and everything in it.
#[derive(Debug)]
pub struct Lab {
    pub ns: String,
    pub tap: String,
    /// The kernel side of the tap.
    pub host: Ipv4Addr,
    /// The address tapir takes.
    pub node: Ipv4Cidr,
}

fn lab_script(args: &[&str]) -> Result<Output> {
    Command::new("bash")
        .arg("-c")
        .arg(LAB_SCRIPT)
        .arg("lab")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run bash for the lab script")
}

impl Lab {
    /// Makes a lab named `tapir-TAG-PID-N` with the kernel at 10.7.0.1/24 and tapir at
    /// 10.7.0.2/24 (addresses that exist only inside the namespace).
    pub fn up(tag: &str) -> Result<Lab> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let ns = format!("tapir-{tag}-{}-{n}", std::process::id());
        let out = lab_script(&["up", &ns, "--tap", "tap0", "--host-ip", "10.7.0.1/24"])?;
        if !out.status.success() {
            bail!(
                "cannot build the lab namespace {ns}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Lab {
            ns,
            tap: "tap0".into(),
            host: Ipv4Addr::new(10, 7, 0, 1),
            node: Ipv4Cidr::new(Ipv4Addr::new(10, 7, 0, 2), 24)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        })
    }

    /// A command that runs inside the lab namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }

    /// The node options that attach tapir to this lab's tap.
    pub fn node_args(&self) -> Vec<String> {
        vec![
            "--netns".into(),
            self.ns.clone(),
            "--tap".into(),
            self.tap.clone(),
            "--ip".into(),
            self.node.to_string(),
        ]
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Ok(out) = lab_script(&["down", &self.ns]) {
            if !out.status.success() {
                eprintln!(
                    "tapir: could not remove lab namespace {}: {}",
                    self.ns,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift32) for test payloads: the same `seed` gives the
/// same bytes, so a failing comparison can be reproduced.
pub fn pseudo_random_bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 7) as u8
        })
        .collect()
}
