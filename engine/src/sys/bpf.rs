//! Loading an eBPF socket-filter program (`bpf(BPF_PROG_LOAD)`), for the tap's queue steering
//! (`TUNSETSTEERINGEBPF`, [`super::TapQueue::set_steering_program`]).
//!
//! Kernel facts (include/uapi/linux/bpf.h): `BPF_PROG_LOAD` is command 5 and takes the leading
//! fields of `union bpf_attr` below (the kernel zero-extends a shorter attribute); program type
//! 1 is `BPF_PROG_TYPE_SOCKET_FILTER`; each instruction is 8 bytes; the verifier's log explains
//! a refusal when a buffer is given. Loading needs CAP_BPF or CAP_SYS_ADMIN (or unprivileged BPF
//! allowed by `kernel.unprivileged_bpf_disabled`).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;

/// The `BPF_PROG_LOAD` member of `union bpf_attr`, up to `prog_name`.
#[repr(C, align(8))]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// Loads `insns` (encoded instructions) as a socket filter; on refusal the error carries the
/// last line of the verifier's reason (asked for in a second try: with a log buffer the
/// verifier writes its whole trace, and a full buffer alone fails the load with ENOSPC).
pub fn load_socket_filter(insns: &[u64], name: &str) -> io::Result<OwnedFd> {
    load(insns, name, 0).or_else(|_| load(insns, name, 1 << 16))
}

fn load(insns: &[u64], name: &str, log_len: usize) -> io::Result<OwnedFd> {
    let license = c"MIT";
    let mut log = vec![0u8; log_len];
    let mut prog_name = [0u8; 16];
    for (d, s) in prog_name.iter_mut().take(15).zip(name.bytes()) {
        *d = s;
    }
    let insn_cnt = u32::try_from(insns.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "program too long"))?;
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_SOCKET_FILTER,
        insn_cnt,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(log_len > 0),
        log_size: log.len() as u32,
        log_buf: if log_len > 0 {
            log.as_mut_ptr() as u64
        } else {
            0
        },
        kern_version: 0,
        prog_flags: 0,
        prog_name,
    };
    // SAFETY: `attr` is a live, fully initialised `bpf_attr` prefix of the size passed; the
    // pointers in it (instructions, license, log buffer) point at live buffers of the stated
    // lengths that outlive the call, and the kernel writes only into `log`.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if fd < 0 {
        let err = io::Error::last_os_error();
        let reason = String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap_or(0)])
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(str::to_owned);
        return Err(match reason {
            Some(r) => io::Error::new(err.kind(), format!("{err}: {r}")),
            None => err,
        });
    }
    // The kernel returned a new descriptor (a small non-negative int) that nothing else owns.
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("bpf returned no descriptor"))?;
    // SAFETY: `fd` is a freshly created descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
