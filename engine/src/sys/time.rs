//! The boot clock and the boot's identity: what lets a node's TCP timestamps go on rising from
//! one process to the next (see `StackConfig::ts_key`).

use std::io;

/// Microseconds of `CLOCK_MONOTONIC`: time since boot, the same clock for every process.
pub fn monotonic_micros() -> io::Result<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, writable timespec; clock_gettime writes only it.
    super::cvt(unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) })?;
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    Ok(secs.saturating_mul(1_000_000).saturating_add(nanos / 1000))
}

/// The kernel's random identity of this boot (`/proc/sys/kernel/random/boot_id`), as 16 bytes.
pub fn boot_id() -> io::Result<[u8; 16]> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?;
    let hex: Vec<u8> = text.trim().bytes().filter(u8::is_ascii_hexdigit).collect();
    let mut id = [0u8; 16];
    if hex.len() != 32 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "boot_id is not 32 hex digits",
        ));
    }
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).unwrap_or("00");
        id[i] = u8::from_str_radix(s, 16).unwrap_or(0);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_clock_moves_forward_and_the_boot_id_is_stable() {
        let a = monotonic_micros().unwrap();
        let b = monotonic_micros().unwrap();
        assert!(b >= a && a > 0);
        assert_eq!(boot_id().unwrap(), boot_id().unwrap());
        assert_ne!(boot_id().unwrap(), [0u8; 16]);
    }
}
