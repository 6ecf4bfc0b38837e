//! Per-worker news for blocked callers: a worker with news for applications (data readable,
//! a connection established, room to write) wakes only the threads waiting on it.
//!
//! Each worker has its own [`News`]: an epoch it bumps and the list of threads parked on it. A
//! caller reads the epoch of the worker(s) it depends on, tries its operation, and if that would
//! block registers with those workers and parks until an epoch moves. A worker whose news has
//! no waiters pays one atomic increment and one atomic load, and no lock; nothing here is shared
//! between workers, so traffic on one worker never wakes a caller that waits on another.
//!
//! No wake-up is lost: the waiter announces itself (`waiting`) before it reads the epoch, and
//! the worker bumps the epoch before it reads `waiting`, both sequentially consistent; so either
//! the waiter sees the new epoch or the worker sees the waiter and unparks it (an unpark before
//! the park makes the park return at once).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::Thread;

use crate::node::lock;

/// One worker's news.
#[derive(Default)]
pub(crate) struct News {
    epoch: AtomicU64,
    waiting: AtomicUsize,
    waiters: Mutex<Vec<Thread>>,
    /// Threads woken by this worker's news, counted (each unpark of a registered waiter).
    woken: AtomicU64,
}

impl News {
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Tells this worker's waiters that something changed.
    pub fn publish(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let waiters = lock(&self.waiters);
        for t in waiters.iter() {
            t.unpark();
        }
        self.woken
            .fetch_add(waiters.len() as u64, Ordering::Relaxed);
    }

    /// How many times this worker's news has woken a waiting thread.
    pub fn woken(&self) -> u64 {
        self.woken.load(Ordering::Relaxed)
    }

    fn register(&self) {
        lock(&self.waiters).push(std::thread::current());
        self.waiting.fetch_add(1, Ordering::SeqCst);
    }

    fn unregister(&self) {
        let me = std::thread::current().id();
        let mut waiters = lock(&self.waiters);
        if let Some(i) = waiters.iter().position(|t| t.id() == me) {
            waiters.swap_remove(i);
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The workers a blocked caller depends on: the one that owns its connection, or all of them
/// (a listener or UDP socket has a handle on every worker).
#[derive(Debug, Clone, Copy)]
pub(crate) enum On {
    One(usize),
    All,
}

impl On {
    fn workers<T>(self, news: &[T]) -> &[T] {
        match self {
            On::One(w) => news.get(w..=w).unwrap_or_default(),
            On::All => news,
        }
    }
}

impl AsRef<News> for News {
    fn as_ref(&self) -> &News {
        self
    }
}

/// What a caller saw before trying: the sum of the epochs it depends on (epochs only grow, so
/// the sum moves exactly when one of them does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen(u64);

pub(crate) fn seen<T: AsRef<News>>(news: &[T], on: On) -> Seen {
    Seen(
        on.workers(news)
            .iter()
            .fold(0u64, |s, n| s.wrapping_add(n.as_ref().epoch())),
    )
}

/// Parks until one of the epochs `on` names moves past `before`, `stopped()` is true, or the
/// deadline passes (then false).
pub(crate) fn wait<T: AsRef<News>>(
    news: &[T],
    on: On,
    before: Seen,
    deadline: Option<std::time::Instant>,
    stopped: impl Fn() -> bool,
) -> bool {
    let workers = on.workers(news);
    for n in workers {
        n.as_ref().register();
    }
    struct Unregister<'a, T: AsRef<News>>(&'a [T]);
    impl<T: AsRef<News>> Drop for Unregister<'_, T> {
        fn drop(&mut self) {
            for n in self.0 {
                n.as_ref().unregister();
            }
        }
    }
    let _unregister = Unregister(workers);
    loop {
        if seen(news, on) != before || stopped() {
            return true;
        }
        match deadline {
            None => std::thread::park(),
            Some(d) => {
                let now = std::time::Instant::now();
                if now >= d {
                    return false;
                }
                std::thread::park_timeout(d - now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn pair() -> Arc<[News; 2]> {
        Arc::new([News::default(), News::default()])
    }

    #[test]
    fn news_on_the_awaited_worker_wakes_the_waiter() {
        let news = pair();
        let n2 = news.clone();
        let before = seen(&news[..], On::One(1));
        let t = std::thread::spawn(move || wait(&n2[..], On::One(1), before, None, || false));
        // Publish until the waiter has been woken by it (it may not have parked yet).
        while !t.is_finished() {
            news[1].publish();
            std::thread::yield_now();
        }
        assert!(t.join().unwrap());
    }

    #[test]
    fn news_on_another_worker_wakes_nobody() {
        let news = pair();
        let n2 = news.clone();
        let before = seen(&news[..], On::One(0));
        let deadline = Instant::now() + Duration::from_millis(300);
        let t =
            std::thread::spawn(move || wait(&n2[..], On::One(0), before, Some(deadline), || false));
        while !t.is_finished() {
            news[1].publish();
            std::thread::yield_now();
        }
        // It timed out: worker 1's news never counted for it, and never unparked it.
        assert!(!t.join().unwrap());
        assert_eq!(news[1].woken(), 0);
        assert!(news[1].epoch() > 0);
    }

    #[test]
    fn a_waiter_on_all_workers_wakes_for_any() {
        let news = pair();
        let n2 = news.clone();
        let before = seen(&news[..], On::All);
        let t = std::thread::spawn(move || wait(&n2[..], On::All, before, None, || false));
        while !t.is_finished() {
            news[1].publish();
            std::thread::yield_now();
        }
        assert!(t.join().unwrap());
    }
}
