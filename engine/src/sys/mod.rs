//! The operating-system layer: the only place in tapir that makes raw syscalls.
//!
//! It owns tap queue file descriptors ([`tap`]), network-namespace entry ([`netns`]), wake-ups and readiness
//! ([`event`]), flow-steering programs for the tap ([`bpf`]), CPU pinning ([`affinity`]), opening files beneath a directory ([`fs`]) and the boot clock ([`time`]). Everything above it sees safe types with typed errors.
//!
//! Rules for this module: every `unsafe` block carries a `// SAFETY:` comment saying why it holds; nothing here
//! panics on a syscall failure (errors are returned); nothing here parses or builds packets.

pub mod affinity;
pub mod bpf;
pub mod event;
pub mod fs;
pub mod netns;
pub mod tap;
pub mod time;

#[cfg(test)]
mod testlab;

pub use affinity::{available_cores, pin_current_thread};
pub use event::{EventFd, Poller, ReadySet};
pub use netns::{run_in_netns, NetnsError};
pub use tap::{open_tap, TapDevice, TapError, TapOptions, TapQueue};

use std::io;

/// Turns a libc return value into `io::Result`, reading `errno` when the call reported failure (`-1`).
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Same as [`cvt`] for calls returning `ssize_t`.
fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}
