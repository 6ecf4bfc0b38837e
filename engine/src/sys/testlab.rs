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

/// Drops CAP_NET_ADMIN from the calling thread only (capabilities are per thread in Linux and the raw syscall
/// does not broadcast like glibc's setuid family), so a test can see what an unprivileged caller sees while keeping
/// CAP_SYS_ADMIN for `setns`. Threads spawned afterwards from this thread inherit the reduced set.
pub fn drop_net_admin_on_this_thread() -> std::io::Result<()> {
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_ADMIN: u32 = 12;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget reads the header and writes two `__user_cap_data_struct`s (version 3), which `data` holds;
    // both are live locals laid out as the kernel's structs (#[repr(C)]).
    super::cvt(unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr(),
        )
    } as libc::c_int)?;
    data[0].effective &= !(1 << CAP_NET_ADMIN);
    data[0].permitted &= !(1 << CAP_NET_ADMIN);
    // SAFETY: capset reads the same header and two data structs; pid 0 means the calling thread only.
    super::cvt(
        unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) }
            as libc::c_int,
    )?;
    Ok(())
}
