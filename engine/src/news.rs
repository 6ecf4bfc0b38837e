//! Wake-ups for blocked callers, per worker and per socket: a caller waiting on a socket is woken
//! by news about that socket on that socket's worker, and by nothing else.
//!
//! Each worker has its own [`News`]: the callers parked on it, each with the key it waits for
//! (a [`Wake`] naming its socket, or none: anything). After a batch the worker hands over what
//! its stack says changed ([`protocols::iface::News`]) and unparks the callers it concerns; a
//! worker with no waiters pays one atomic load and takes no lock. Nothing here is shared
//! between workers, and a busy connection never wakes a caller blocked on a quiet one.
//!
//! No wake-up is lost: a caller registers before it tries its operation a last time, under the
//! worker's stack lock. News that the try did not see comes from a later batch, which takes
//! the same lock, and is published after it: by then the caller is on the list, and its flag
//! is set before it is unparked (an unpark before the park makes the park return at once).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;

use protocols::iface::{News as StackNews, SocketHandle, Wake};

use crate::node::lock;

/// A parked caller: its thread and whether news for it arrived.
#[derive(Debug)]
struct Parked {
    thread: Thread,
    fired: AtomicBool,
}

/// One worker's waiters.
#[derive(Default)]
pub(crate) struct News {
    waiting: AtomicUsize,
    waiters: Mutex<Vec<(Arc<Parked>, Option<Wake>)>>,
    /// Threads woken by this worker's news, counted (each unpark of a registered waiter).
    woken: AtomicU64,
}

impl News {
    /// Wakes this worker's waiters that `news` concerns.
    pub fn publish(&self, news: &StackNews) {
        if news.is_empty() || self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let waiters = lock(&self.waiters);
        let mut woken = 0;
        for (p, key) in waiters.iter() {
            if news.concerns(*key) {
                p.fired.store(true, Ordering::SeqCst);
                p.thread.unpark();
                woken += 1;
            }
        }
        self.woken.fetch_add(woken, Ordering::Relaxed);
    }

    /// Wakes every waiter of this worker (the node stops, or changed for everyone).
    pub fn publish_all(&self) {
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let waiters = lock(&self.waiters);
        for (p, _) in waiters.iter() {
            p.fired.store(true, Ordering::SeqCst);
            p.thread.unpark();
        }
        self.woken
            .fetch_add(waiters.len() as u64, Ordering::Relaxed);
    }

    /// How many times this worker's news has woken a waiting thread.
    pub fn woken(&self) -> u64 {
        self.woken.load(Ordering::Relaxed)
    }

    fn register(&self, p: &Arc<Parked>, key: Option<Wake>) {
        lock(&self.waiters).push((p.clone(), key));
        self.waiting.fetch_add(1, Ordering::SeqCst);
    }

    fn unregister(&self, p: &Arc<Parked>) {
        let mut waiters = lock(&self.waiters);
        if let Some(i) = waiters.iter().position(|(q, _)| Arc::ptr_eq(q, p)) {
            waiters.swap_remove(i);
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl AsRef<News> for News {
    fn as_ref(&self) -> &News {
        self
    }
}

/// What a blocked caller waits for, on which workers. `None` as a key: any news at all.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Interest<'a> {
    /// News about `key` on one worker (a TCP connection lives on the worker that owns it).
    One(usize, Option<Wake>),
    /// News about `key` on every worker (a listening port has a listener on each).
    Every(Option<Wake>),
    /// News about `kind(handles[w])` on worker `w` (a UDP, ICMP or raw socket has a handle on
    /// each).
    Each(&'a [SocketHandle], fn(SocketHandle) -> Wake),
}

impl Interest<'_> {
    /// Calls `f(worker, key)` for each worker (of `workers`) and key this interest names.
    fn each(self, workers: usize, mut f: impl FnMut(usize, Option<Wake>)) {
        match self {
            Interest::One(w, key) => f(w, key),
            Interest::Every(key) => (0..workers).for_each(|w| f(w, key)),
            Interest::Each(handles, kind) => {
                for (w, &h) in handles.iter().enumerate() {
                    f(w, Some(kind(h)));
                }
            }
        }
    }
}

thread_local! {
    /// This thread's waiter record, made once: blocking allocates nothing in steady state.
    static PARKED: Arc<Parked> = Arc::new(Parked {
        thread: std::thread::current(),
        fired: AtomicBool::new(false),
    });
}

/// A caller's place on the waiter lists of the workers it depends on; leaves them when dropped.
pub(crate) struct Registration<'a, T: AsRef<News>> {
    news: &'a [T],
    interest: Interest<'a>,
    parked: Arc<Parked>,
}

impl<'a, T: AsRef<News>> Registration<'a, T> {
    pub fn new(news: &'a [T], interest: Interest<'a>) -> Self {
        let parked = PARKED.with(Arc::clone);
        // News for an earlier registration of this thread is no news for this one.
        parked.fired.store(false, Ordering::SeqCst);
        interest.each(news.len(), |w, key| {
            if let Some(n) = news.get(w) {
                n.as_ref().register(&parked, key);
            }
        });
        Registration {
            news,
            interest,
            parked,
        }
    }

    /// Parks until news for this caller arrives (true) or the deadline passes (false). The
    /// news is consumed: the next call waits for more.
    pub fn park(&self, deadline: Option<std::time::Instant>) -> bool {
        loop {
            if self.parked.fired.swap(false, Ordering::SeqCst) {
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
}

impl<T: AsRef<News>> Drop for Registration<'_, T> {
    fn drop(&mut self) {
        let (news, parked) = (self.news, &self.parked);
        self.interest.each(news.len(), |w, _| {
            if let Some(n) = news.get(w) {
                n.as_ref().unregister(parked);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocols::iface::{Stack, StackConfig};
    use protocols::rand::Rng;
    use std::time::{Duration, Instant};

    fn pair() -> Arc<[News; 2]> {
        Arc::new([News::default(), News::default()])
    }

    /// Stack news naming a UDP socket bound on `port` (a real handle from a real stack).
    fn udp_news(port: u16) -> (SocketHandle, StackNews) {
        let cidr = protocols::wire::Ipv4Cidr::new([10, 0, 0, 2].into(), 24).unwrap();
        let mac = protocols::wire::EthernetAddress([2, 0, 0, 0, 0, 2]);
        let mut s = Stack::new(StackConfig::new(mac, cidr), Rng::new(1));
        let h = s.udp().bind(port).unwrap();
        let mut n = StackNews::default();
        n.push(Wake::Udp(h));
        (h, n)
    }

    /// Publishes `news` on `worker` until the waiter thread `t` ends (it may not have parked
    /// yet; a waiter that news does not concern ends at its own deadline).
    fn publish_until_done(
        news: &[News],
        worker: usize,
        what: &StackNews,
        t: &std::thread::JoinHandle<bool>,
    ) {
        while !t.is_finished() {
            news[worker].publish(what);
            std::thread::yield_now();
        }
    }

    #[test]
    fn news_for_the_awaited_key_wakes_the_waiter() {
        let news = pair();
        let (h, what) = udp_news(7);
        let n2 = news.clone();
        let t = std::thread::spawn(move || {
            let r = Registration::new(&n2[..], Interest::One(1, Some(Wake::Udp(h))));
            r.park(None)
        });
        publish_until_done(&news[..], 1, &what, &t);
        assert!(t.join().unwrap());
        assert!(news[1].woken() >= 1);
    }

    #[test]
    fn news_for_another_key_or_worker_wakes_nobody() {
        let news = pair();
        let (h, what) = udp_news(7);
        let n2 = news.clone();
        let deadline = Instant::now() + Duration::from_millis(300);
        let t = std::thread::spawn(move || {
            let r = Registration::new(&n2[..], Interest::One(0, Some(Wake::Tcp(h))));
            r.park(Some(deadline))
        });
        // News about the UDP socket in the same slot on worker 0, then about the awaited TCP
        // key on worker 1, until the waiter's deadline.
        let mut on_1 = StackNews::default();
        on_1.push(Wake::Tcp(h));
        while !t.is_finished() {
            news[0].publish(&what);
            news[1].publish(&on_1);
            std::thread::yield_now();
        }
        assert!(!t.join().unwrap(), "timed out, never fired");
        assert_eq!(news[0].woken() + news[1].woken(), 0);
    }

    #[test]
    fn a_waiter_for_anything_on_every_worker_wakes_for_any() {
        let news = pair();
        let (_, what) = udp_news(7);
        let n2 = news.clone();
        let t = std::thread::spawn(move || {
            let r = Registration::new(&n2[..], Interest::Every(None));
            r.park(None)
        });
        publish_until_done(&news[..], 1, &what, &t);
        assert!(t.join().unwrap());
    }

    #[test]
    fn leaving_takes_the_waiter_off_every_list() {
        let news = pair();
        {
            let _r = Registration::new(&news[..], Interest::Every(None));
            assert_eq!(news[0].waiting.load(Ordering::SeqCst), 1);
            assert_eq!(news[1].waiting.load(Ordering::SeqCst), 1);
        }
        assert_eq!(news[0].waiting.load(Ordering::SeqCst), 0);
        assert!(lock(&news[1].waiters).is_empty());
    }
}
