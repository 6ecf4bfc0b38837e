//! The network: stacks on one Ethernet segment, a [`Link`] per ordered pair of nodes, and an
//! event queue in virtual time.
//!
//! One [`Network::step`]:
//! 1. polls every node at `now` and hands what it sends to the links;
//! 2. jumps `now` to the earliest pending event: a frame arriving, a scheduled link change, or a
//!    node's `poll_at`;
//! 3. applies every event due at that instant, in (time, sequence) order, so that two runs with
//!    the same seed see the same frames at the same instants; a node that receives a frame is
//!    polled right after it, so that what it sends then is that frame's doing.
//!
//! Every frame a monitored node sends passes the [`Monitor`] ("no segment without a cause");
//! a broken bound stops the run with [`SimError::Invariant`].
//!
//! A node is a tapir [`Stack`] or any other implementation of [`Peer`] (smoltcp, see
//! [`crate::smol`]). Applications run between steps (see [`crate::transfer`]); nothing sleeps.

use std::any::Any;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::net::Ipv4Addr;

use protocols::iface::{Counters, DropReason, Stack, StackConfig};
use protocols::rand::Rng;
use protocols::time::{Duration, Instant};
use protocols::wire::{EthernetAddress, Ipv4Cidr};

use crate::link::{Departure, Link, LinkConfig, LinkStats};
use crate::monitor::{parse_tcp, Cause, FourTuple, Monitor, Violation};

/// A node's index in its network.
pub type NodeId = usize;

/// Steps in a row at one instant without a frame moving before the network calls it a livelock
/// (a stack whose `poll_at` stays in the past but never sends).
const MAX_IDLE_STEPS: u32 = 100_000;

/// Steps in a row at one instant, frames moving or not, before the network calls it a livelock:
/// a node that sends at every poll without virtual time ever moving (an unbounded storm that
/// the per-cause bounds of the [`Monitor`] did not see, e.g. on an unmonitored node). A real run
/// needs a handful: every link delays a frame by at least its propagation delay.
const MAX_STEPS_PER_INSTANT: u32 = 10_000;

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
    /// A node broke "no segment without a cause" (see [`crate::monitor`]), or sent while it
    /// should have been idle ([`Network::expect_idle_silence`]).
    Invariant {
        seed: u64,
        violation: Box<Violation>,
        replay: String,
    },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Livelock { at } => {
                write!(
                    f,
                    "livelock at {at}: virtual time stopped moving (a poll_at that stays in \
                     the past, or a node that sends at every poll)"
                )
            }
            SimError::Deadline { at, what } => write!(f, "deadline passed at {at}: {what}"),
            SimError::Mismatch { what } => write!(f, "data mismatch: {what}"),
            SimError::Failed { what } => write!(f, "failed: {what}"),
            SimError::Invariant {
                seed,
                violation: v,
                replay,
            } => {
                let (la, lp, ra, rp) = v.conn;
                write!(
                    f,
                    "invariant broken (seed {seed}): node {} on {la}:{lp} > {ra}:{rp}: {}\n  \
                     cause: {}\n  segments ({}):",
                    v.node,
                    v.rule,
                    v.cause,
                    v.segments.len()
                )?;
                for line in v.segments.iter().take(12) {
                    write!(f, "\n    {line}")?;
                }
                if v.segments.len() > 12 {
                    write!(f, "\n    ... {} more", v.segments.len() - 12)?;
                }
                write!(f, "\n  replay: {replay}")
            }
        }
    }
}

impl std::error::Error for SimError {}

/// A node that is not a tapir stack: another TCP/IP implementation on the segment (smoltcp).
/// The network drives it as it drives a [`Stack`]: frames in, polls at `now`, and `poll_at`
/// for its timers.
pub trait Peer {
    fn mac(&self) -> EthernetAddress;
    /// Handles one frame (and may answer at once).
    fn receive(&mut self, now: Instant, frame: &[u8], out: &mut Vec<Vec<u8>>);
    /// Runs timers and sends what is queued.
    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>);
    /// The earliest instant at which `poll` has work; an instant in the past means now.
    fn poll_at(&self) -> Option<Instant>;
    /// The keep-alive idle time the node's connections use, if any (for the idle check).
    fn keepalive(&self) -> Option<Duration> {
        None
    }
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// What a node is.
pub enum Host {
    Tapir(Box<Stack>),
    Peer(Box<dyn Peer>),
}

/// A node in the network, with what arrived for it.
pub struct SimNode {
    pub host: Host,
    /// Copies the links corrupted on the way to this node.
    pub corrupted_in: u64,
    /// Whether the [`Monitor`] checks what this node sends (default: on).
    pub monitored: bool,
    /// Unpaid data segments per cause and connection the monitor allows this node
    /// ([`crate::monitor::MAX_UNPAID`] for tapir, [`crate::monitor::PEER_MAX_UNPAID`] for a peer).
    pub max_unpaid: usize,
}

impl SimNode {
    /// The tapir stack, when the node is one.
    pub fn stack(&self) -> Option<&Stack> {
        match &self.host {
            Host::Tapir(s) => Some(s),
            Host::Peer(_) => None,
        }
    }

    fn mac(&self) -> EthernetAddress {
        match &self.host {
            Host::Tapir(s) => s.config().mac,
            Host::Peer(p) => p.mac(),
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        match &self.host {
            Host::Tapir(s) => s.poll_at(),
            Host::Peer(p) => p.poll_at(),
        }
    }

    fn keepalive(&self) -> Option<Duration> {
        match &self.host {
            Host::Tapir(s) => s.config().tcp.keepalive,
            Host::Peer(p) => p.keepalive(),
        }
    }

    fn keepalive_interval(&self) -> Option<Duration> {
        match &self.host {
            Host::Tapir(s) => Some(s.config().tcp.keepalive_interval),
            Host::Peer(_) => None,
        }
    }

    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        match &mut self.host {
            Host::Tapir(s) => s.poll(now, out),
            Host::Peer(p) => p.poll(now, out),
        }
    }

    fn receive(&mut self, now: Instant, frame: &[u8], out: &mut Vec<Vec<u8>>) {
        match &mut self.host {
            Host::Tapir(s) => s.receive(now, frame, out),
            Host::Peer(p) => p.receive(now, frame, out),
        }
    }
}

/// One TCP segment a node sent during an idle check.
#[derive(Debug, Clone)]
struct IdleSegment {
    at: Instant,
    node: NodeId,
    /// Sent by a poll (a timer), not in answer to a frame.
    unprompted: bool,
    conn: FourTuple,
    /// Could be a keep-alive probe: no payload or one byte, no SYN, FIN or RST.
    probe_like: bool,
    line: String,
}

/// What [`Network::expect_idle_silence`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdleReport {
    /// Keep-alive probes sent, per node.
    pub probes: Vec<(NodeId, usize)>,
    /// Segments sent in answer to a frame (answers to probes).
    pub answers: usize,
}

/// Time an idle check lets pass before it starts counting: delayed ACKs, the last window
/// update and stray duplicates settle (several RTTs of every link in this crate).
pub const IDLE_SETTLE: Duration = Duration::from_secs(2);

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
    instant_steps: u32,
    digest: u64,
    scratch: Vec<Departure>,
    trace: Option<Box<TraceFn>>,
    monitor: Monitor,
    idle_log: Option<Vec<IdleSegment>>,
    trace_tx: bool,
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
            instant_steps: 0,
            digest: 0xcbf2_9ce4_8422_2325,
            scratch: Vec::new(),
            trace: None,
            monitor: Monitor::default(),
            idle_log: None,
            trace_tx: false,
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
            host: Host::Tapir(Box::new(stack)),
            corrupted_in: 0,
            monitored: true,
            max_unpaid: crate::monitor::MAX_UNPAID,
        });
        self.route(id, out);
        id
    }

    /// Adds a node that is not a tapir stack (monitored like one; see [`SimNode::monitored`]).
    pub fn add_peer(&mut self, peer: Box<dyn Peer>) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(SimNode {
            host: Host::Peer(peer),
            corrupted_in: 0,
            monitored: true,
            max_unpaid: crate::monitor::PEER_MAX_UNPAID,
        });
        id
    }

    /// A seed for a peer's own randomness, derived from the network's seed.
    pub fn peer_seed(&self, id: NodeId) -> u64 {
        self.seed
            .wrapping_mul(0x9e37_79b9)
            .wrapping_add(id as u64 + 1)
            ^ 0x736d_6f6c
    }

    /// Turns the invariant monitor on or off for one node (e.g. off for a peer whose own
    /// behaviour is not under test).
    pub fn set_monitored(&mut self, id: NodeId, on: bool) {
        self.nodes[id].monitored = on;
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

    /// The tapir stack of node `id` (panics for a [`Peer`] node).
    pub fn stack(&self, id: NodeId) -> &Stack {
        match &self.nodes[id].host {
            Host::Tapir(s) => s,
            Host::Peer(_) => panic!("node {id} is not a tapir stack"),
        }
    }

    /// The tapir stack of node `id`, to act as its application (panics for a [`Peer`] node).
    pub fn stack_mut(&mut self, id: NodeId) -> &mut Stack {
        match &mut self.nodes[id].host {
            Host::Tapir(s) => s,
            Host::Peer(_) => panic!("node {id} is not a tapir stack"),
        }
    }

    /// True when node `id` is a tapir stack.
    pub fn is_tapir(&self, id: NodeId) -> bool {
        matches!(self.nodes[id].host, Host::Tapir(_))
    }

    /// The peer of node `id` as its concrete type (None for a tapir node or another type).
    pub fn peer_mut<T: 'static>(&mut self, id: NodeId) -> Option<&mut T> {
        match &mut self.nodes[id].host {
            Host::Peer(p) => p.as_any_mut().downcast_mut(),
            Host::Tapir(_) => None,
        }
    }

    /// See [`Network::peer_mut`].
    pub fn peer<T: 'static>(&self, id: NodeId) -> Option<&T> {
        match &self.nodes[id].host {
            Host::Peer(p) => p.as_any().downcast_ref(),
            Host::Tapir(_) => None,
        }
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

    /// Prints every frame a node sends (before the link's impairments) on stderr from now on:
    /// with [`Network::trace_to_stderr`], tells a lost frame from one never sent.
    pub fn trace_tx_to_stderr(&mut self) {
        self.trace_tx = true;
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
                .filter(|&i| i != from && (dst.is_broadcast() || self.nodes[i].mac() == dst))
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
            self.nodes[i].poll(self.now, &mut out);
            moved |= !out.is_empty();
            let cause = Cause::Poll { at: self.now };
            self.emit(i, &cause, out)?;
        }
        let timers = self.nodes.iter().filter_map(|n| n.poll_at()).min();
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
            self.instant_steps = 0;
        } else {
            self.instant_steps += 1;
            if self.instant_steps > MAX_STEPS_PER_INSTANT {
                return Err(SimError::Livelock { at: self.now });
            }
        }
        while self.queue.peek().is_some_and(|e| e.at <= self.now) {
            let Some(ev) = self.queue.pop() else { break };
            moved = true;
            self.apply(ev.kind)?;
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

    fn apply(&mut self, kind: EventKind) -> Result<(), SimError> {
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
                node.receive(now, &frame, &mut answers);
                node.poll(now, &mut answers);
                if self.nodes[to].monitored {
                    self.monitor.inbound(to, &frame);
                }
                let arp = frame.get(12..14) == Some(&[0x08, 0x06][..]);
                let cause = if arp {
                    Cause::Arp { at: now }
                } else if self.nodes[to].monitored || self.idle_log.is_some() {
                    Cause::Frame {
                        at: now,
                        frame: crate::trace::describe_frame(&frame),
                    }
                } else {
                    Cause::Poll { at: now }
                };
                self.emit(to, &cause, answers)?;
            }
            EventKind::SetLink { from, to, config } => self.set_link(from, to, config),
        }
        Ok(())
    }

    /// Checks what node `from` sent because of `cause`, logs it during an idle check, and
    /// hands it to the links.
    fn emit(&mut self, from: NodeId, cause: &Cause, out: Vec<Vec<u8>>) -> Result<(), SimError> {
        if out.is_empty() {
            return Ok(());
        }
        if self.trace_tx {
            for frame in &out {
                let now = self.now;
                eprintln!("{now} {from}-> {}", crate::trace::describe_frame(frame));
            }
        }
        if self.nodes[from].monitored {
            let bound = self.nodes[from].max_unpaid;
            if let Err(v) = self.monitor.outbound(from, cause, &out, bound) {
                return Err(self.invariant(v));
            }
        }
        if let Some(log) = self.idle_log.as_mut() {
            for frame in &out {
                let Some(s) = parse_tcp(frame) else { continue };
                let t = &s.repr;
                log.push(IdleSegment {
                    at: self.now,
                    node: from,
                    unprompted: !matches!(cause, Cause::Frame { .. }),
                    conn: (s.src, t.src_port, s.dst, t.dst_port),
                    probe_like: t.payload_len <= 1
                        && !t.flags.syn()
                        && !t.flags.fin()
                        && !t.flags.rst(),
                    line: crate::trace::describe_frame(frame),
                });
            }
        }
        self.route(from, out);
        Ok(())
    }

    fn invariant(&self, v: Violation) -> SimError {
        SimError::Invariant {
            seed: self.seed,
            violation: Box::new(v),
            replay: crate::seeds::replay_here(self.seed),
        }
    }

    /// The idle check: with every connection established and no application activity, lets
    /// [`IDLE_SETTLE`] and then `d` of virtual time pass and requires every monitored node to
    /// send no TCP segment at all, except keep-alive probes from a node with keep-alive on
    /// (spaced at least its keep-alive time or probe interval apart, whichever is shorter) and
    /// at most one answer per probe from the others. Call it while connections are held open
    /// (data done, nothing closed yet).
    pub fn expect_idle_silence(&mut self, d: Duration) -> Result<IdleReport, SimError> {
        self.run_for(IDLE_SETTLE)?;
        let start = self.now;
        self.idle_log = Some(Vec::new());
        let run = self.run_for(d);
        let log = self.idle_log.take().unwrap_or_default();
        run?;
        let mut report = IdleReport::default();
        let mut probes_sent = 0usize;
        let mut bad: Option<(IdleSegment, String)> = None;
        let mut last_probe: HashMap<(NodeId, FourTuple), Instant> = HashMap::new();
        // A probe is a probe-shaped segment from a node with keep-alive on, whatever released
        // it (a timer, or the ARP reply it waited for). Anything else a poll sends is unprompted
        // noise; anything else a frame drew is an answer, at most one per probe.
        let mut answers: Vec<&IdleSegment> = Vec::new();
        for seg in &log {
            let node = &self.nodes[seg.node];
            if !node.monitored {
                continue;
            }
            let probe = seg.probe_like && node.keepalive().is_some();
            if !probe {
                if seg.unprompted {
                    let why = if node.keepalive().is_some() {
                        "sent while idle and not a keep-alive probe"
                    } else {
                        "sent while idle, keep-alive off"
                    };
                    bad.get_or_insert((seg.clone(), why.into()));
                } else {
                    answers.push(seg);
                }
                continue;
            }
            let idle = node.keepalive().unwrap_or(d);
            let gap = node.keepalive_interval().map_or(idle, |i| i.min(idle));
            // The first probe may come early: the idle time started before the check did.
            if let Some(&prev) = last_probe.get(&(seg.node, seg.conn)) {
                if seg.at - prev + Duration::from_millis(1) < gap {
                    bad.get_or_insert((
                        seg.clone(),
                        format!(
                            "keep-alive probe {:?} after the previous one, interval {gap:?}",
                            seg.at - prev
                        ),
                    ));
                    continue;
                }
            }
            last_probe.insert((seg.node, seg.conn), seg.at);
            probes_sent += 1;
            match report.probes.iter_mut().find(|(n, _)| *n == seg.node) {
                Some((_, c)) => *c += 1,
                None => report.probes.push((seg.node, 1)),
            }
        }
        report.answers = answers.len();
        if bad.is_none() && answers.len() > probes_sent {
            bad = Some((
                answers[probes_sent].clone(),
                format!(
                    "{} segments sent in answer to frames while idle, for {probes_sent} \
                     keep-alive probe(s)",
                    answers.len()
                ),
            ));
        }
        if let Some((seg, rule)) = bad {
            let segments = log
                .iter()
                .filter(|s| s.node == seg.node && s.conn == seg.conn)
                .map(|s| format!("{} {}", s.at, s.line))
                .collect();
            return Err(self.invariant(Violation {
                node: seg.node,
                conn: seg.conn,
                cause: Cause::Poll { at: seg.at },
                rule: format!("idle silence for {d:?} from {start}: {rule}"),
                segments,
            }));
        }
        Ok(report)
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
