//! News for applications: what changed since the engine last asked, named by the socket it is
//! about, so that a caller blocked on one socket is woken by news about that socket only.
//!
//! The stack adds a [`Wake`] wherever something an application may wait for happens (data or
//! room on a TCP connection, a connection ready to accept, a datagram, an echo reply); news
//! about the node as a whole (a DHCP lease, an ICMP error for some socket) is news for
//! everyone. The engine takes the list once per batch ([`Stack::take_news`]) and wakes the
//! callers whose key it names.

use super::{SocketHandle, Stack};

/// What a piece of news is about. Each kind of socket has its own handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wake {
    /// A TCP connection: data, room to write, a state change, an error.
    Tcp(SocketHandle),
    /// A connection on this listening port is ready to accept.
    Listener(u16),
    /// A datagram for this UDP socket.
    Udp(SocketHandle),
    /// An echo reply for this ICMP socket.
    Icmp(SocketHandle),
    /// A packet for this raw socket.
    Raw(SocketHandle),
}

/// Keys kept per batch before the news turns into news for everyone: a batch that touches more
/// sockets than this wakes every waiter once, which costs less than matching them all.
pub const MAX_KEYS: usize = 64;

/// The news gathered between two [`Stack::take_news`] calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct News {
    keys: Vec<Wake>,
    all: bool,
}

impl News {
    /// Nothing happened.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && !self.all
    }

    /// News for everyone: every waiter should look again.
    pub fn is_for_all(&self) -> bool {
        self.all
    }

    /// The sockets the news is about (all of them when [`News::is_for_all`]).
    pub fn keys(&self) -> &[Wake] {
        &self.keys
    }

    /// Whether a caller waiting for `key` (None: for anything) should look again.
    pub fn concerns(&self, key: Option<Wake>) -> bool {
        match key {
            _ if self.all => true,
            None => !self.keys.is_empty(),
            Some(k) => self.keys.contains(&k),
        }
    }

    pub fn clear(&mut self) {
        self.keys.clear();
        self.all = false;
    }

    /// Adds news about `key`; a repeat of a key already here is skipped.
    pub fn push(&mut self, key: Wake) {
        if self.all || self.keys.contains(&key) {
            return;
        }
        if self.keys.len() >= MAX_KEYS {
            self.all = true;
            self.keys.clear();
            return;
        }
        self.keys.push(key);
    }

    /// Adds news for everyone.
    pub fn push_all(&mut self) {
        self.all = true;
        self.keys.clear();
    }
}

impl Stack {
    /// Moves the news gathered since the last call into `out` (emptied first; its storage is
    /// reused, so a steady caller allocates nothing). True if there was any.
    pub fn take_news(&mut self, out: &mut News) -> bool {
        out.clear();
        std::mem::swap(&mut self.news, out);
        !out.is_empty()
    }

    /// True once since something an application may wait for happened, whatever it was about
    /// (the news is dropped).
    pub fn take_wakeup(&mut self) -> bool {
        let any = !self.news.is_empty();
        self.news.clear();
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iface::sockets::Slab;

    fn handles(n: usize) -> Vec<SocketHandle> {
        let mut slab = Slab::default();
        (0..n).map(|_| slab.insert(())).collect()
    }

    #[test]
    fn news_concerns_the_keys_it_names_and_dedups_them() {
        let h = handles(3);
        let mut n = News::default();
        assert!(n.is_empty());
        assert!(!n.concerns(None));
        n.push(Wake::Tcp(h[0]));
        n.push(Wake::Tcp(h[0]));
        n.push(Wake::Listener(80));
        assert_eq!(n.keys(), &[Wake::Tcp(h[0]), Wake::Listener(80)]);
        assert!(n.concerns(Some(Wake::Tcp(h[0]))));
        assert!(n.concerns(Some(Wake::Listener(80))));
        assert!(n.concerns(None), "a waiter for anything");
        assert!(!n.concerns(Some(Wake::Tcp(h[1]))));
        assert!(
            !n.concerns(Some(Wake::Udp(h[0]))),
            "kinds have their own handles"
        );
        assert!(!n.concerns(Some(Wake::Listener(81))));
    }

    #[test]
    fn too_many_keys_or_node_news_concern_everyone() {
        let h = handles(MAX_KEYS + 1);
        let mut n = News::default();
        for &x in &h[..MAX_KEYS] {
            n.push(Wake::Raw(x));
        }
        assert!(!n.is_for_all());
        assert!(!n.concerns(Some(Wake::Udp(h[0]))));
        n.push(Wake::Raw(h[MAX_KEYS]));
        assert!(n.is_for_all());
        assert!(n.concerns(Some(Wake::Udp(h[0]))));
        n.clear();
        assert!(n.is_empty());
        n.push_all();
        assert!(n.concerns(Some(Wake::Icmp(h[3]))));
    }
}
