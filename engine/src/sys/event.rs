//! Wake-ups and readiness: an `eventfd` to wake a worker from another thread, and a reusable `poll(2)` set.
//!
//! A worker blocks in [`Poller::wait`] on its tap queue fd plus its [`EventFd`]; other threads call
//! [`EventFd::notify`] after pushing into the worker's hand-off channel. Nothing here allocates after construction.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::{cvt, cvt_size};

/// A non-blocking, close-on-exec Linux `eventfd` used as a counter of pending wake-ups.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointers; a non-negative return is a new fd that we own exclusively.
        let raw = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: `raw` was just returned by eventfd and is owned by nobody else.
        Ok(EventFd {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        })
    }

    /// Makes the fd readable until the next [`drain`](Self::drain). Cheap and safe to call from any thread.
    pub fn notify(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes exactly 8 bytes from a live u64 on the stack, as eventfd requires.
        let ret = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        match cvt_size(ret) {
            Ok(_) => Ok(()),
            // The counter is at its maximum: the fd is already readable, which is all a wake-up needs.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Resets the counter and returns how many notifications were pending (0 when none).
    pub fn drain(&self) -> io::Result<u64> {
        let mut count: u64 = 0;
        // SAFETY: reads exactly 8 bytes into a live, writable u64 on the stack, as eventfd requires.
        let ret = unsafe { libc::read(self.fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
        match cvt_size(ret) {
            Ok(_) => Ok(count),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A fixed set of fds to wait on for readability, built once and reused for every wait (no allocation per call).
///
/// The poller does not own the fds: the caller keeps them open for as long as it waits on them.
#[derive(Debug, Clone)]
pub struct Poller {
    fds: Vec<libc::pollfd>,
}

impl Poller {
    pub fn new(fds: &[RawFd]) -> Poller {
        Poller {
            fds: fds
                .iter()
                .map(|&fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect(),
        }
    }

    /// Number of fds in the set.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Blocks until at least one fd is readable (or has an error/hang-up pending, which a read will report), or
    /// until `timeout` passes (`None`: wait forever). An interrupted wait is resumed for the time left.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<ReadySet<'_>> {
        let deadline = timeout.map(|t| Instant::now().checked_add(t));
        loop {
            // ppoll takes a timespec: a timer due in 300 µs sleeps 300 µs, not poll(2)'s whole millisecond
            // (a paced load generator sending on time depends on it).
            let left = match deadline {
                None | Some(None) => None,
                Some(Some(deadline)) => {
                    Some(timespec(deadline.saturating_duration_since(Instant::now())))
                }
            };
            let left_ptr = left
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            for p in &mut self.fds {
                p.revents = 0;
            }
            let nfds = libc::nfds_t::try_from(self.fds.len()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "too many fds for poll")
            })?;
            // SAFETY: the pointer and length describe our own live, initialized `pollfd` vector; ppoll writes only
            // the `revents` fields of those entries. `left_ptr` is null or points at `left`, alive until the call
            // returns; a null signal mask leaves the thread's mask as it is.
            match cvt(unsafe {
                libc::ppoll(self.fds.as_mut_ptr(), nfds, left_ptr, std::ptr::null())
            }) {
                Ok(_) => return Ok(ReadySet { fds: &self.fds }),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// A timeout for ppoll(2), to the microsecond; absurdly long ones are capped rather than wrapped.
// `c_long` is 32 bits on some targets, where the conversion below can fail in principle.
#[allow(clippy::unnecessary_fallible_conversions)]
fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// Which fds of a [`Poller`] were ready after a wait, by their index in the set given to [`Poller::new`].
#[derive(Debug, Clone, Copy)]
pub struct ReadySet<'a> {
    fds: &'a [libc::pollfd],
}

impl ReadySet<'_> {
    /// Whether the fd at `index` is readable (or has an error or hang-up to report). False when out of range.
    pub fn is_ready(&self, index: usize) -> bool {
        self.fds.get(index).is_some_and(|p| p.revents != 0)
    }

    /// Indices of the ready fds, in set order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.fds
            .iter()
            .enumerate()
            .filter(|(_, p)| p.revents != 0)
            .map(|(i, _)| i)
    }

    /// True when the wait timed out with nothing ready.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    pub fn count(&self) -> usize {
        self.iter().count()
    }
}

/// One-shot convenience over [`Poller`]: which of `fds` are readable within `timeout`. Allocates; prefer a
/// long-lived [`Poller`] on hot paths.
pub fn poll_readable(fds: &[RawFd], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut poller = Poller::new(fds);
    let ready = poller.wait(timeout)?;
    Ok((0..fds.len()).map(|i| ready.is_ready(i)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventfd_notify_wakes_poller_and_drain_resets() {
        let a = EventFd::new().unwrap();
        let b = EventFd::new().unwrap();
        let mut poller = Poller::new(&[a.as_raw_fd(), b.as_raw_fd()]);
        assert!(poller.wait(Some(Duration::ZERO)).unwrap().is_empty());

        b.notify().unwrap();
        b.notify().unwrap();
        let ready = poller.wait(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(ready.iter().collect::<Vec<_>>(), vec![1]);
        assert!(!ready.is_ready(0) && ready.is_ready(1) && !ready.is_ready(7));

        assert_eq!(b.drain().unwrap(), 2);
        assert_eq!(b.drain().unwrap(), 0);
        assert!(poller
            .wait(Some(Duration::from_millis(1)))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn notify_from_another_thread_wakes_a_blocked_wait() {
        let ev = EventFd::new().unwrap();
        let mut poller = Poller::new(&[ev.as_raw_fd()]);
        std::thread::scope(|s| {
            s.spawn(|| ev.notify().unwrap());
            assert_eq!(poller.wait(None).unwrap().count(), 1);
        });
        assert_eq!(ev.drain().unwrap(), 1);
    }

    #[test]
    fn poll_readable_reports_each_fd() {
        let a = EventFd::new().unwrap();
        let b = EventFd::new().unwrap();
        a.notify().unwrap();
        assert_eq!(
            poll_readable(&[a.as_raw_fd(), b.as_raw_fd()], Some(Duration::ZERO)).unwrap(),
            vec![true, false]
        );
    }

    #[test]
    fn timeouts_keep_their_microseconds() {
        let t = timespec(Duration::from_micros(1_000_300));
        assert_eq!((t.tv_sec, t.tv_nsec), (1, 300_000));
        assert_eq!(
            timespec(Duration::from_secs(u64::MAX)).tv_sec,
            libc::time_t::MAX
        );
    }
}
