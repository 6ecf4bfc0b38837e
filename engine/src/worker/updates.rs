//! Node-wide state, owned once and pushed. Each worker's stack is its own; what one of them
//! learns that the others need travels as a [`NodeUpdate`] over each other worker's bounded
//! channel, taken at its next batch: path MTUs and redirects (any worker), ARP (the owner's entries to the
//! followers, the followers' requests to the owner) and the DHCP lease (worker 0's client to
//! the others). Nothing is locked between workers on the way.

use std::net::Ipv4Addr;

use crossbeam_channel::Receiver;
use protocols::iface::{Addressing, Sink, Stack};
use protocols::time::Instant;
use protocols::wire::EthernetAddress;

use crate::node::Inner;
use crate::steer::ARP_OWNER;

/// What one worker's stack learned that the other workers' stacks need too.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NodeUpdate {
    /// The path to a host takes packets of at most this many bytes (RFC 1191).
    PathMtu(Ipv4Addr, usize),
    /// A redirect said packets to a host go to this first hop (RFC 1122 §3.2.2.2).
    Redirect(Ipv4Addr, Ipv4Addr),
    /// The ARP owner learnt (or was asked for, and holds) this neighbour.
    Neighbour(Ipv4Addr, EthernetAddress),
    /// A follower wants this address resolved (to the ARP owner only).
    Resolve(Ipv4Addr),
    /// Worker 0's DHCP client holds this addressing now.
    Addressing(Addressing),
}

impl NodeUpdate {
    fn apply(self, stack: &mut Stack, now: Instant, sink: &mut impl Sink) {
        match self {
            NodeUpdate::PathMtu(dst, mtu) => stack.learn_path_mtu(dst, mtu, now),
            NodeUpdate::Redirect(dst, gw) => stack.learn_redirect(dst, gw, now),
            NodeUpdate::Neighbour(addr, mac) => stack.learn_neighbour(now, addr, mac, sink),
            NodeUpdate::Resolve(addr) => stack.resolve_for_follower(now, addr, sink),
            NodeUpdate::Addressing(a) => stack.set_addressing(&a),
        }
    }
}

/// One worker's side of the sharing: what it takes from its channel, and what its stack
/// learned in a batch for the others (storage reused between batches).
#[derive(Default)]
pub(super) struct Sharing {
    mtus: Vec<(Ipv4Addr, usize)>,
    redirects: Vec<(Ipv4Addr, Ipv4Addr)>,
    neighbours: Vec<(Ipv4Addr, EthernetAddress)>,
    wanted: Vec<Ipv4Addr>,
    /// Worker 0 with DHCP on several queues: the addressing last published, and the workers
    /// whose channel has not taken it yet (bit i: worker i). Unlike the rest, a lease must
    /// not be lost to a full channel: it is offered again every batch until taken.
    lease: Option<Addressing>,
    lease_unsent: u64,
}

impl Sharing {
    /// Applies what the other workers sent, in the order they sent it.
    pub fn take(
        &mut self,
        rx: &Receiver<NodeUpdate>,
        stack: &mut Stack,
        now: Instant,
        sink: &mut impl Sink,
    ) {
        while let Ok(update) = rx.try_recv() {
            update.apply(stack, now, sink);
        }
    }

    /// Sends what `stack` learned in this batch to the workers that need it, and wakes each
    /// that got something, once.
    pub fn give(&mut self, inner: &Inner, me: usize, stack: &mut Stack) {
        stack.take_path_mtus(&mut self.mtus);
        stack.take_redirects(&mut self.redirects);
        stack.take_arp_learned(&mut self.neighbours);
        stack.take_arp_wanted(&mut self.wanted);
        let others = (0..inner.workers.len()).filter(|&o| o != me);
        let mut woken = 0u64;
        let mut send = |o: usize, u: NodeUpdate| {
            if inner.workers[o].updates_tx.try_send(u).is_ok() {
                woken |= 1 << o;
                true
            } else {
                false
            }
        };
        // The lease first: a flood of ARP news must not keep it out of a channel.
        if me == 0 && inner.config.stack.dhcp && inner.workers.len() > 1 {
            let now = stack.addressing();
            if self.lease != Some(now) {
                self.lease = Some(now);
                self.lease_unsent = others.clone().fold(0, |bits, o| bits | 1 << o);
            }
            for o in others.clone() {
                if self.lease_unsent & 1 << o != 0 && send(o, NodeUpdate::Addressing(now)) {
                    self.lease_unsent &= !(1 << o);
                }
            }
        }
        // Lost to a full channel: an MTU or a redirect is learnt again from the next report, a
        // neighbour asked for again at the follower's next request timer.
        let everyone = self
            .mtus
            .drain(..)
            .map(|(d, m)| NodeUpdate::PathMtu(d, m))
            .chain(
                self.redirects
                    .drain(..)
                    .map(|(d, gw)| NodeUpdate::Redirect(d, gw)),
            )
            .chain(
                self.neighbours
                    .drain(..)
                    .map(|(a, mac)| NodeUpdate::Neighbour(a, mac)),
            );
        for u in everyone {
            for o in others.clone() {
                send(o, u);
            }
        }
        for a in self.wanted.drain(..) {
            if me != ARP_OWNER {
                send(ARP_OWNER, NodeUpdate::Resolve(a));
            }
        }
        super::wake_workers(inner, woken);
    }
}
