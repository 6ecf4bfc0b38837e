//! The network: stacks on one Ethernet segment, a [`Link`] per ordered pair of nodes, and an
//! event queue in virtual time.
//!
//! One [`Network::step`]:
//! 1. polls every stack at `now` and hands what it sends to the links;
//! 2. jumps `now` to the earliest pending event: a frame arriving, a scheduled link change, or a
//!    stack's `poll_at`;
//! 3. applies every event due at that instant, in (time, sequence) order, so that two runs with
//!    the same seed see the same frames at the same instants.
//!
//! Applications run between steps (see [`crate::transfer`]); nothing sleeps.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::net::Ipv4Addr;

use protocols::iface::{Counters, DropReason, Stack, StackConfig};
use protocols::rand::Rng;
use protocols::time::{Duration, Instant};
use protocols::wire::{EthernetAddress, Ipv4Cidr};

use crate::link::{Departure, Link, LinkConfig, LinkStats};

/// A node's index in its network.
pub type NodeId = usize;

/// Steps in a row at one instant without a frame moving before the network calls it a livelock
/// (a stack whose `poll_at` stays in the past but never sends).
const MAX_IDLE_STEPS: u32 = 100_000;

/// Why a simulation could not go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// A stack kept asking to be polled at an instant already past without doing anything.
    Livelock { at: Instant },
    /// The scenario's virtual deadline passed first.
    Deadline { at: Instant, what: String },
    /// Received bytes differ from the bytes sent.
    Mismatch { what: String },
    /// A connection failed or ended in the wrong state.
    Failed { what: String },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Livelock { at } => {
                write!(f, "livelock at {at}: poll_at stays in the past")
            }
            SimError::Deadline { at, what } => write!(f, "deadline passed at {at}: {what}"),
            SimError::Mismatch { what } => write!(f, "data mismatch: {what}"),
            SimError::Failed { what } => write!(f, "failed: {what}"),
        }
    }
}

impl std::error::Error for SimError {}

/// A stack in the network, with what arrived for it.
pub struct SimNode {
    pub stack: Stack,
    /// Copies the links corrupted on the way to this node.
    pub corrupted_in: u64,
}

enum EventKind {
    Deliver {
        to: NodeId,
        frame: Vec<u8>,
        corrupted: bool,
    },
    SetLink {
        from: NodeId,
        to: NodeId,
        config: LinkConfig,
    },
}

struct Event {
    at: Instant,
    seq: u64,
    kind: EventKind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    /// Reversed, so that the max-heap pops the earliest (time, sequence) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A frame observer: (arrival instant, receiving node, frame).
type TraceFn = dyn FnMut(Instant, NodeId, &[u8]);

/// Stacks joined by impaired links, in virtual time.
pub struct Network {
    seed: u64,
    now: Instant,
    rng: Rng,
    nodes: Vec<SimNode>,
    default_link: LinkConfig,
    links: HashMap<(NodeId, NodeId), Link>,
    queue: BinaryHeap<Event>,
    seq: u64,
    /// Frames to a MAC no node has.
    pub unroutable: u64,
    /// Steps taken.
    pub steps: u64,
    idle_steps: u32,
    digest: u64,
    scratch: Vec<Departure>,
    trace: Option<Box<TraceFn>>,
}

impl Network {
    /// An empty network whose links behave as `default_link` until told otherwise. Every random
    /// choice (the links' and each stack's) derives from `seed`.
    pub fn new(seed: u64, default_link: LinkConfig) -> Self {
        Network {
            seed,
            now: Instant::from_secs(1),
            rng: Rng::new(seed ^ 0x6c69_6e6b_7321),
            nodes: Vec::new(),
            default_link,
            links: HashMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            unroutable: 0,
            steps: 0,
            idle_steps: 0,
            digest: 0xcbf2_9ce4_8422_2325,
            scratch: Vec::new(),
            trace: None,
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// Adds a node with this configuration and lets it announce itself.
    pub fn add_node(&mut self, config: StackConfig) -> NodeId {
        let id = self.nodes.len();
        let stack_seed = self
            .seed
            .wrapping_mul(0x9e37_79b9)
            .wrapping_add(id as u64 + 1);
        let mut stack = Stack::new(config, Rng::new(stack_seed));
        let mut out: Vec<Vec<u8>> = Vec::new();
        stack.start(self.now, &mut out);
        self.nodes.push(SimNode {
            stack,
            corrupted_in: 0,
        });
        self.route(id, out);
        id
    }

    /// Adds host number `n` (1..=250): 10.0.0.n/24 with MAC 02:00:00:00:00:n and default
    /// settings, changed by `tune` first.
    pub fn add_host(&mut self, n: u8, tune: impl FnOnce(&mut StackConfig)) -> NodeId {
        let mut config = StackConfig::new(host_mac(n), host_cidr(n));
        tune(&mut config);
        self.add_node(config)
    }

    pub fn node(&self, id: NodeId) -> &SimNode {
        &self.nodes[id]
    }

    pub fn stack(&self, id: NodeId) -> &Stack {
        &self.nodes[id].stack
    }

    pub fn stack_mut(&mut self, id: NodeId) -> &mut Stack {
        &mut self.nodes[id].stack
    }

    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Sets how frames from `from` to `to` are treated, from now on.
    pub fn set_link(&mut self, from: NodeId, to: NodeId, config: LinkConfig) {
        self.link_mut(from, to).config = config;
    }

    /// Sets both directions between `a` and `b`.
    pub fn set_path(&mut self, a: NodeId, b: NodeId, config: LinkConfig) {
        self.set_link(a, b, config.clone());
        self.set_link(b, a, config);
    }

    /// Changes both directions between `a` and `b` at virtual time `at` (a blackout, a
    /// recovery), in order with the frames in flight.
    pub fn schedule_path(&mut self, at: Instant, a: NodeId, b: NodeId, config: LinkConfig) {
        for (from, to) in [(a, b), (b, a)] {
            self.push(
                at,
                EventKind::SetLink {
                    from,
                    to,
                    config: config.clone(),
                },
            );
        }
    }

    pub fn link_config(&self, from: NodeId, to: NodeId) -> LinkConfig {
        self.links
            .get(&(from, to))
            .map(|l| l.config.clone())
            .unwrap_or_else(|| self.default_link.clone())
    }

    pub fn link_stats(&self, from: NodeId, to: NodeId) -> LinkStats {
        self.links
            .get(&(from, to))
            .map(|l| l.stats.clone())
            .unwrap_or_default()
    }

    /// A hash of every delivery so far (instant, node, frame headers): two runs with one seed
    /// must agree on it.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Calls `f(now, to, frame)` for every frame delivered (after any corruption), e.g. to print
    /// [`crate::trace::describe_frame`] lines for a failing seed.
    pub fn set_trace(&mut self, f: impl FnMut(Instant, NodeId, &[u8]) + 'static) {
        self.trace = Some(Box::new(f));
    }

    /// Prints every delivered frame on stderr from now on.
    pub fn trace_to_stderr(&mut self) {
        self.set_trace(|now, to, frame| {
            eprintln!("{now} ->{to} {}", crate::trace::describe_frame(frame));
        });
    }

    fn link_mut(&mut self, from: NodeId, to: NodeId) -> &mut Link {
        let default = &self.default_link;
        self.links
            .entry((from, to))
            .or_insert_with(|| Link::new(default.clone()))
    }

    fn push(&mut self, at: Instant, kind: EventKind) {
        self.seq += 1;
        self.queue.push(Event {
            at,
            seq: self.seq,
            kind,
        });
    }

    /// Hands the frames node `from` sent to the links towards their recipients.
    fn route(&mut self, from: NodeId, frames: Vec<Vec<u8>>) {
        for frame in frames {
            let Some(dst) = frame.get(..6).and_then(EthernetAddress::from_bytes) else {
                self.unroutable += 1;
                continue;
            };
            let to: Vec<NodeId> = (0..self.nodes.len())
                .filter(|&i| {
                    i != from && (dst.is_broadcast() || self.nodes[i].stack.config().mac == dst)
                })
                .collect();
            if to.is_empty() {
                self.unroutable += 1;
                continue;
            }
            let now = self.now;
            let last = to.len() - 1;
            let mut frame = Some(frame);
            for (k, &t) in to.iter().enumerate() {
                let f = if k == last {
                    frame.take().unwrap_or_default()
                } else {
                    frame.clone().unwrap_or_default()
                };
                let mut deps = std::mem::take(&mut self.scratch);
                {
                    let rng = &mut self.rng;
                    let default = &self.default_link;
                    let link = self
                        .links
                        .entry((from, t))
                        .or_insert_with(|| Link::new(default.clone()));
                    link.offer(now, f, rng, &mut deps);
                }
                for d in deps.drain(..) {
                    self.push(
                        d.at,
                        EventKind::Deliver {
                            to: t,
                            frame: d.frame,
                            corrupted: d.corrupted,
                        },
                    );
                }
                self.scratch = deps;
            }
        }
    }

    /// Polls every stack, then jumps to the next event and applies everything due then.
    /// Returns false when nothing at all is pending (no frame in flight, no timer anywhere).
    pub fn step(&mut self) -> Result<bool, SimError> {
        self.step_bounded(None)
    }

    /// One step that does not jump past `limit`: when the next event is later, time stops at
    /// `limit`.
    fn step_bounded(&mut self, limit: Option<Instant>) -> Result<bool, SimError> {
        self.steps += 1;
        let mut moved = false;
        for i in 0..self.nodes.len() {
            let mut out: Vec<Vec<u8>> = Vec::new();
            self.nodes[i].stack.poll(self.now, &mut out);
            moved |= !out.is_empty();
            self.route(i, out);
        }
        let timers = self.nodes.iter().filter_map(|n| n.stack.poll_at()).min();
        let next = [self.queue.peek().map(|e| e.at), timers]
            .into_iter()
            .flatten()
            .min();
        let Some(mut next) = next else {
            if let Some(l) = limit {
                self.now = self.now.max(l);
            }
            return Ok(false);
        };
        if let Some(l) = limit {
            next = next.min(l);
        }
        let jumped = next > self.now;
        if jumped {
            self.now = next;
        }
        while self.queue.peek().is_some_and(|e| e.at <= self.now) {
            let Some(ev) = self.queue.pop() else { break };
            moved = true;
            self.apply(ev.kind);
        }
        if moved || jumped {
            self.idle_steps = 0;
        } else {
            self.idle_steps += 1;
            if self.idle_steps > MAX_IDLE_STEPS {
                return Err(SimError::Livelock { at: self.now });
            }
        }
        Ok(true)
    }

    fn apply(&mut self, kind: EventKind) {
        match kind {
            EventKind::Deliver {
                to,
                frame,
                corrupted,
            } => {
                self.fold_digest(to, &frame);
                if let Some(t) = self.trace.as_mut() {
                    t(self.now, to, &frame);
                }
                let now = self.now;
                let node = &mut self.nodes[to];
                if corrupted {
                    node.corrupted_in += 1;
                }
                let mut answers: Vec<Vec<u8>> = Vec::new();
                node.stack.receive(now, &frame, &mut answers);
                self.route(to, answers);
            }
            EventKind::SetLink { from, to, config } => self.set_link(from, to, config),
        }
    }

    fn fold_digest(&mut self, to: NodeId, frame: &[u8]) {
        let mut h = self.digest;
        let head = &frame[..frame.len().min(66)];
        let fields = [self.now.total_micros(), to as u64, frame.len() as u64];
        for b in fields
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .chain(head.iter().copied())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.digest = h;
    }

    /// Steps until virtual time reaches `until` (it stops there even when nothing is pending).
    pub fn run_until(&mut self, until: Instant) -> Result<(), SimError> {
        while self.now < until {
            self.step_bounded(Some(until))?;
        }
        Ok(())
    }

    /// Lets `d` of virtual time pass.
    pub fn run_for(&mut self, d: Duration) -> Result<(), SimError> {
        let until = self.now + d;
        self.run_until(until)
    }
}

/// The MAC of host `n`.
pub fn host_mac(n: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, 0, n])
}

/// The address of host `n`: 10.0.0.n/24.
pub fn host_cidr(n: u8) -> Ipv4Cidr {
    match Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, n), 24) {
        Ok(c) => c,
        Err(_) => unreachable!("a /24 prefix is always valid"),
    }
}

/// Drops that an integrity check (a checksum, a length or header sanity check) made: what a
/// corrupted frame must end in.
pub fn integrity_drops(c: &Counters) -> u64 {
    [
        DropReason::Ipv4Truncated,
        DropReason::Ipv4Malformed,
        DropReason::Ipv4BadChecksum,
        DropReason::IcmpMalformed,
        DropReason::IcmpBadChecksum,
        DropReason::UdpMalformed,
        DropReason::UdpBadChecksum,
        DropReason::TcpMalformed,
        DropReason::TcpBadChecksum,
    ]
    .iter()
    .map(|&r| c.drops(r))
    .sum()
}
