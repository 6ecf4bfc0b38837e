//! CPU pinning for worker threads (`sched_setaffinity` / `sched_getaffinity` on the calling thread).
//!
//! Core numbers are kernel CPU ids. In a container or under `taskset` the allowed set may be sparse (e.g. 4-7), so
//! callers should pick from [`allowed_cores`] rather than assume `0..available_cores()`.

use std::io;

use super::cvt;

fn empty_set() -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the valid empty set.
    unsafe { std::mem::zeroed() }
}

/// The CPUs the calling thread may run on.
fn current_set() -> io::Result<libc::cpu_set_t> {
    let mut set = empty_set();
    // SAFETY: pid 0 means the calling thread; the pointer and size describe our own live cpu_set_t.
    cvt(unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) })?;
    Ok(set)
}

/// Pins the calling thread to CPU `core` (a kernel CPU id).
pub fn pin_current_thread(core: usize) -> io::Result<()> {
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    if core >= max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {core} is beyond the {max} CPUs a cpu_set_t holds"),
        ));
    }
    let mut set = empty_set();
    // SAFETY: `core` was checked against the set's capacity above; CPU_SET only writes inside `set`.
    unsafe { libc::CPU_SET(core, &mut set) };
    // SAFETY: pid 0 means the calling thread; the pointer and size describe our own initialized cpu_set_t.
    cvt(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) })
        .map(drop)
}

/// The CPU ids the calling thread is allowed to run on, ascending.
pub fn allowed_cores() -> io::Result<Vec<usize>> {
    let set = current_set()?;
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY (inside the closure): every index is below the set's capacity; CPU_ISSET only reads inside `set`.
    Ok((0..max)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// How many CPUs the calling thread may run on (at least 1).
pub fn available_cores() -> usize {
    match current_set() {
        // SAFETY: CPU_COUNT only reads our own initialized cpu_set_t.
        Ok(set) => usize::try_from(unsafe { libc::CPU_COUNT(&set) })
            .unwrap_or(1)
            .max(1),
        Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_to_each_allowed_core_on_a_scratch_thread() {
        let cores = allowed_cores().unwrap();
        assert_eq!(cores.len(), available_cores());
        std::thread::spawn(move || {
            for &core in cores.iter().take(4) {
                pin_current_thread(core).unwrap();
                assert_eq!(allowed_cores().unwrap(), vec![core]);
                assert_eq!(available_cores(), 1);
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn out_of_range_core_is_an_error_not_a_panic() {
        let err = pin_current_thread(1 << 20).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
