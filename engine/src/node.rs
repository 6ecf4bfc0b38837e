//! A node: a tap device and one worker per queue, each with its own news for the callers that
//! wait on it (see the `news` module).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use protocols::iface::{ArpRole, ConnInfo, Counters, Stack, StackConfig};
use protocols::rand::Rng;
use protocols::time::Instant;
use protocols::wire::{EthernetAddress, Ipv4Cidr};

use crate::clock::Clock;
use crate::news::{Interest, News, Registration};
use crate::pool::BufferPool;
use crate::sys::event::EventFd;
use crate::sys::tap::{open_tap, TapError, TapOptions};
use crate::trace::{TraceConfig, TraceStats, TraceWriter, Tracer};
use crate::worker::{self, WorkerCounters};

/// What a worker receives from the others: frames of its flows, apps to run, and what another
/// worker learned that concerns the whole node.
type WorkerInbox = (
    Receiver<crate::worker::Handoff>,
    Receiver<Box<dyn crate::rtc::WorkerApp>>,
    Receiver<crate::worker::NodeUpdate>,
);

/// Node-wide updates waiting in one worker's channel before more are dropped (each is a rare
/// event, such as a path MTU learned; one lost costs its host one more report).
pub const UPDATE_QUEUE: usize = 256;

/// Frames waiting in one worker's hand-off channel before more are dropped.
pub const HANDOFF_QUEUE: usize = 4096;

/// How to start a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The tap to attach to (created when it does not exist).
    pub tap: String,
    /// Open the tap inside this network namespace.
    pub netns: Option<String>,
    /// Tap queues, one worker each.
    pub queues: usize,
    /// Pin worker `i` to core `i % cores`.
    pub pin: bool,
    pub stack: StackConfig,
    /// Which tap offloads to ask for ([`Offload`]): probed, falling back to what the kernel
    /// grants.
    pub offload: Offload,
    /// Seed of the node's randomness (ISN keys, ports, IP ids); None draws one from the OS.
    pub seed: Option<u64>,
    /// Impair the frames every worker reads and writes (`--impair`, see [`crate::fault`]).
    pub impair: Option<crate::fault::ImpairSpec>,
    /// Frames the kernel may hold for each tap queue before it drops (the tap's txqueuelen,
    /// grown to this if smaller; a NIC's receive ring). The tun driver's default, 500, is 2 ms
    /// of a SYN flood: a worker descheduled that long loses frames.
    pub ring: Option<u32>,
    /// With several queues, have the kernel put each frame on its flow owner's queue with an
    /// eBPF steering program ([`crate::steer::bpf`]); off (or refused), frames that land on
    /// another worker's queue are handed over.
    pub kernel_steering: bool,
}

/// The tap offloads a node asks for (`--offload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offload {
    /// No virtio-net header: every frame is at most the MTU and every checksum is computed and
    /// verified in software, on both sides of the tap.
    Off,
    /// The virtio-net header with checksums only (`TUN_F_CSUM`): frames are at most the MTU,
    /// but neither side computes or verifies a TCP checksum the other vouched for (as a NIC with
    /// checksum offload and no TSO/GRO).
    Checksum,
    /// Checksums and segmentation: the kernel hands over GRO'd segments of up to 64 KiB and
    /// takes TSO segments as large (`TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`).
    Full,
}

/// The default [`NodeConfig::ring`].
pub const DEFAULT_RING: u32 = 4096;

impl NodeConfig {
    pub fn new(tap: &str, cidr: Ipv4Cidr) -> Self {
        NodeConfig {
            tap: tap.to_string(),
            netns: None,
            queues: 1,
            pin: true,
            stack: StackConfig::new(EthernetAddress([0x02, 0x54, 0x41, 0x50, 0, 0x02]), cidr),
            seed: None,
            impair: None,
            offload: Offload::Full,
            ring: Some(DEFAULT_RING),
            kernel_steering: true,
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Tap(#[from] TapError),
    #[error("cannot set up worker {worker}: {source}")]
    Worker {
        worker: usize,
        source: std::io::Error,
    },
    #[error("--queues must be between 1 and 64 (got {0})")]
    Queues(usize),
    #[error("the node has stopped")]
    Stopped,
}

/// Where a trace session goes: `--trace` lines or the `--pcap` capture (both may run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceSlot {
    Lines = 0,
    Pcap = 1,
}

/// Counters of a whole node.
#[derive(Debug, Clone, Default)]
pub struct NodeStats {
    /// The stacks' counters summed over workers.
    pub stack: Counters,
    /// Per worker: frames read and written, hand-offs.
    pub workers: Vec<WorkerCounters>,
    /// TCP connections held now, and the heap bytes their buffers hold (0 when all are idle).
    pub tcp_conns: usize,
    /// 4-tuples in TIME-WAIT that no application holds (kept compact, without a connection).
    pub tcp_time_wait: usize,
    /// Heap bytes those take (their tables at capacity).
    pub tcp_time_wait_bytes: usize,
    pub tcp_buffer_bytes: usize,
}

impl std::fmt::Display for NodeStats {
    /// One line: frames per queue, hand-offs, then every drop by reason (stack and engine).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stats:")?;
        for (i, w) in self.workers.iter().enumerate() {
            write!(
                f,
                " q{i} rx={} tx={} handed_off={} handed_in={};",
                w.rx_frames, w.tx_frames, w.handed_off, w.handed_in
            )?;
        }
        let gso: u64 = self.workers.iter().map(|w| w.rx_gso_frames).sum();
        let trusted: u64 = self.workers.iter().map(|w| w.rx_csum_trusted).sum();
        let tx_gso: u64 = self.workers.iter().map(|w| w.tx_gso_frames).sum();
        write!(
            f,
            " rx_gso={gso} tx_gso={tx_gso} rx_csum_trusted={trusted}; tcp_conns={} tcp_time_wait={} \
             tcp_time_wait_bytes={} tcp_buffer_bytes={} tcp_time_wait_recycled={};",
            self.tcp_conns,
            self.tcp_time_wait,
            self.tcp_time_wait_bytes,
            self.tcp_buffer_bytes,
            self.stack.tcp_time_wait_recycled
        )?;
        write!(f, " drops:")?;
        let mut any = false;
        for (r, n) in self.stack.nonzero_drops() {
            write!(f, " {r}={n}")?;
            any = true;
        }
        let engine = [
            (
                "handoff_full",
                self.workers.iter().map(|w| w.handoff_dropped).sum::<u64>(),
            ),
            (
                "tx_no_buffer",
                self.workers.iter().map(|w| w.tx_no_buffer).sum(),
            ),
            ("tx_error", self.workers.iter().map(|w| w.tx_errors).sum()),
            ("rx_error", self.workers.iter().map(|w| w.rx_errors).sum()),
        ];
        for (name, n) in engine {
            if n > 0 {
                write!(f, " {name}={n}")?;
                any = true;
            }
        }
        if !any {
            write!(f, " none")?;
        }
        Ok(())
    }
}

/// One worker's state that application threads reach: its stack behind its own lock.
pub(crate) struct WorkerShared {
    pub stack: Mutex<WorkerState>,
    pub wake: EventFd,
    pub handoff_tx: Sender<crate::worker::Handoff>,
    /// Hand-off buffers coming back from the owners they were sent to, for reuse.
    pub recycle_tx: Sender<Vec<u8>>,
    pub recycle_rx: Receiver<Vec<u8>>,
    /// Run-to-completion apps waiting to be picked up by the worker.
    pub apps_tx: Sender<Box<dyn crate::rtc::WorkerApp>>,
    /// Node-wide updates for this worker's stack, from the worker that learned them.
    pub updates_tx: Sender<crate::worker::NodeUpdate>,
    pub counters: Mutex<WorkerCounters>,
    /// What blocked callers of this worker's sockets wait on.
    pub news: News,
}

impl AsRef<News> for WorkerShared {
    fn as_ref(&self) -> &News {
        &self.news
    }
}

pub(crate) struct WorkerState {
    pub stack: Stack,
    /// The instant the worker sleeps until (None: until woken).
    pub sleep_until: Option<Instant>,
}

pub(crate) struct Inner {
    pub workers: Vec<WorkerShared>,
    pub clock: Clock,
    pub stop: AtomicBool,
    pub config: NodeConfig,
    threads: Mutex<Vec<JoinHandle<()>>>,
    pub rng: Mutex<Rng>,
    /// The TUN_F_* offloads the kernel granted (0 with `--offload off`).
    pub offloads: u32,
    /// The tracers the workers feed; they copy it when `trace_generation` moves.
    pub tracers: Mutex<Vec<Tracer>>,
    pub trace_generation: AtomicU64,
    /// The running trace sessions: `--trace` lines and `--pcap` capture.
    sessions: Mutex<[Option<(Tracer, TraceWriter)>; 2]>,
    /// The first other host seen claiming our address (RFC 5227), warned about once.
    pub conflict: OnceLock<EthernetAddress>,
    /// Whether the tap steers frames to their owner's queue itself (see
    /// [`NodeConfig::kernel_steering`]), or why not.
    pub steering: Result<(), String>,
}

/// A running node. Cheap to clone; the workers stop when [`Node::shutdown`] is called or the
/// last clone is dropped.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
    _guard: Arc<StopGuard>,
}

struct StopGuard(Arc<Inner>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        stop(&self.0);
    }
}

fn stop(inner: &Inner) {
    inner.stop.store(true, Ordering::SeqCst);
    for w in &inner.workers {
        let _ = w.wake.notify();
    }
    let threads = std::mem::take(&mut *inner.threads.lock().unwrap_or_else(|e| e.into_inner()));
    for t in threads {
        let _ = t.join();
    }
    // The workers are gone: flush every capture, and say what the capture missed.
    let sessions = std::mem::take(&mut *inner.sessions.lock().unwrap_or_else(|e| e.into_inner()));
    for (slot, session) in sessions.into_iter().enumerate() {
        let Some((_, writer)) = session else { continue };
        let stats = writer.finish();
        if slot == TraceSlot::Pcap as usize && stats.ring_full > 0 {
            eprintln!("pcap: {} frames not captured (ring full)", stats.ring_full);
        }
        if slot == TraceSlot::Pcap as usize && stats.ring_waits > 0 {
            eprintln!(
                "pcap: the workers waited for the writer {} times (--pcap-wait)",
                stats.ring_waits
            );
        }
    }
    inner.publish_all();
}

impl Node {
    /// Opens the tap and starts one worker per queue.
    pub fn start(mut config: NodeConfig) -> Result<Node, NodeError> {
        // Offloaded frames may carry a checksum the kernel left for the receiver to finish
        // (`F_NEEDS_CSUM`) or vouched for before `--impair` flipped a bit: with corruption on,
        // every checksum must be real and verified, so offloads are off.
        if config.impair.is_some_and(|i| i.corrupt > 0.0) {
            config.offload = Offload::Off;
        }
        if config.queues == 0 || config.queues > 64 {
            return Err(NodeError::Queues(config.queues));
        }
        let tap = open_tap(&TapOptions {
            name: config.tap.clone(),
            queues: config.queues,
            netns: config.netns.clone(),
            vnet_hdr: config.offload != Offload::Off,
            ring: config.ring,
            mtu: u32::try_from(config.stack.mtu).ok(),
        })?;
        let offloads = if config.offload != Offload::Off {
            negotiate_offloads(&tap.queues[0], config.offload)
                .map_err(|source| NodeError::Worker { worker: 0, source })?
        } else {
            // A persistent tap keeps the offloads a previous user asked for: clear them, so the
            // kernel segments and checksums everything before it reaches us.
            let _ = tap.queues[0].set_offload(0);
            0
        };
        let steering = if config.queues < 2 {
            Err("one queue".to_owned())
        } else if !config.kernel_steering {
            Err("turned off".to_owned())
        } else {
            attach_steering(&tap.queues[0], config.queues).inspect_err(|why| {
                eprintln!(
                    "tapir: no steering program on the tap ({why}; loading one needs CAP_BPF or \
                     root): frames that arrive on another worker's queue are handed over to it"
                )
            })
        };
        let seed = config.seed.unwrap_or_else(os_seed);
        let mut rng = Rng::new(seed);
        // Not drawn from `rng`: turning impairment on must not change the node's other choices.
        let impair_seed = seed ^ 0x696d_7061_6972;
        let clock = Clock::new();
        let mut workers = Vec::new();
        let mut receivers: Vec<WorkerInbox> = Vec::new();
        let mut stack_config = config.stack.clone();
        // The wall clock for IP timestamps (an echo reply's timestamp option).
        if stack_config.unix_ms_at_zero.is_none() {
            stack_config.unix_ms_at_zero = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|d| u64::try_from(d.as_millis()).ok())
                .map(|ms| ms.saturating_sub(clock.now().total_millis()));
        }
        // Timestamp offsets keyed per boot (with the boot clock, `Clock`): a restarted node's
        // timestamps on a 4-tuple are newer than its previous run's, so a peer still in
        // TIME-WAIT for that 4-tuple takes the new SYN at once. The boot id is not secret to
        // local users; it hides nothing they could not read (the uptime), and stays unknown
        // off the host.
        if stack_config.ts_key.is_none() {
            if let Ok(id) = crate::sys::time::boot_id() {
                let mut key = *b"tapir ts offsets";
                for (k, b) in key.iter_mut().zip(id) {
                    *k ^= b;
                }
                stack_config.ts_key = Some(key);
            }
        }
        // TSO: segments up to a 64 KiB IPv4 packet, which the kernel cuts up. Not with
        // `--impair`, which writes every frame with a plain header.
        let tso = offloads & libc::TUN_F_TSO4 != 0 && config.impair.is_none();
        if tso {
            stack_config.tcp.tso_max = usize::from(u16::MAX) - 20;
        }
        // With the header on, the kernel takes a partial checksum in any frame we write (it
        // then never computes it for a local receiver); not with `--impair` either.
        stack_config.tx_csum_offload = config.offload != Offload::Off && config.impair.is_none();
        // Limits are the node's, each worker holding its share: reassembly (fragments of one
        // datagram all reach one worker, steered by source and IP id), connections held
        // (`--max-conns`) and ICMP errors a second (flows spread over the workers by hash).
        // Before, each worker held the whole limit: N queues, N times the promise.
        let share = |total: usize, floor: usize| (total / config.queues).max(floor);
        stack_config.reassembly.max_bytes = share(stack_config.reassembly.max_bytes, 256 << 10);
        stack_config.reassembly.max_datagrams = share(stack_config.reassembly.max_datagrams, 64);
        stack_config.max_conns = share(stack_config.max_conns, 1);
        let icmp_rate = share(stack_config.icmp_error_rate as usize, 1);
        stack_config.icmp_error_rate = u32::try_from(icmp_rate).unwrap_or(u32::MAX);
        for i in 0..config.queues {
            let mut worker_config = stack_config.clone();
            // One worker owns the node's ARP, the others ask it and learn from it (their
            // updates travel over the workers' update channels).
            worker_config.arp.role = match (config.queues, i) {
                (1, _) => ArpRole::Alone,
                (_, crate::steer::ARP_OWNER) => ArpRole::Owner,
                _ => ArpRole::Follower,
            };
            // With DHCP, worker 0 runs the client and the others take its lease (sent as a
            // `NodeUpdate`); until then they hold no address.
            if i > 0 && worker_config.dhcp {
                worker_config.dhcp = false;
                worker_config.cidr =
                    Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 32).unwrap_or(worker_config.cidr);
            }
            let stack = Stack::new(worker_config, Rng::new(rng.next_u64()));
            let wake = EventFd::new().map_err(|source| NodeError::Worker { worker: i, source })?;
            let (tx, rx) = bounded(HANDOFF_QUEUE);
            let (apps_tx, apps_rx) = crossbeam_channel::unbounded();
            let (updates_tx, updates_rx) = bounded(UPDATE_QUEUE);
            let (recycle_tx, recycle_rx) = bounded(HANDOFF_QUEUE);
            receivers.push((rx, apps_rx, updates_rx));
            workers.push(WorkerShared {
                stack: Mutex::new(WorkerState {
                    stack,
                    sleep_until: None,
                }),
                wake,
                handoff_tx: tx,
                recycle_tx,
                recycle_rx,
                apps_tx,
                updates_tx,
                counters: Mutex::new(WorkerCounters::default()),
                news: News::default(),
            });
        }
        let inner = Arc::new(Inner {
            workers,
            clock,
            stop: AtomicBool::new(false),
            config: config.clone(),
            threads: Mutex::new(Vec::new()),
            rng: Mutex::new(rng),
            offloads,
            tracers: Mutex::new(Vec::new()),
            trace_generation: AtomicU64::new(0),
            sessions: Mutex::new([None, None]),
            conflict: OnceLock::new(),
            steering,
        });
        let cores = crate::sys::affinity::available_cores().max(1);
        let mut threads = Vec::new();
        for (i, (queue, (handoff_rx, apps_rx, updates_rx))) in
            tap.queues.into_iter().zip(receivers).enumerate()
        {
            let small = BufferPool::new(worker::POOL_BUFFERS, worker::buf_size(config.stack.mtu))
                .map_err(|source| NodeError::Worker { worker: i, source })?;
            let big = if tso {
                Some(
                    BufferPool::new(worker::BIG_BUFFERS, worker::BIG_BUF_SIZE)
                        .map_err(|source| NodeError::Worker { worker: i, source })?,
                )
            } else {
                None
            };
            let pool = worker::TxPools { small, big };
            let inner2 = inner.clone();
            let core = if config.pin { Some(i % cores) } else { None };
            let faults = config
                .impair
                .map(|spec| worker::Faults::new(spec, spec.seed.unwrap_or(impair_seed), i));
            let t = std::thread::Builder::new()
                .name(format!("tapir-q{i}"))
                .spawn(move || {
                    let io = worker::WorkerIo {
                        queue,
                        pool,
                        handoff_rx,
                        apps_rx,
                        updates_rx,
                        core,
                        faults,
                    };
                    worker::run(inner2, i, io)
                })
                .map_err(|source| NodeError::Worker { worker: i, source })?;
            threads.push(t);
        }
        *inner.threads.lock().unwrap_or_else(|e| e.into_inner()) = threads;
        let guard = Arc::new(StopGuard(inner.clone()));
        Ok(Node {
            inner,
            _guard: guard,
        })
    }

    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    pub fn address(&self) -> Ipv4Addr {
        self.inner.config.stack.cidr.address()
    }

    pub fn queues(&self) -> usize {
        self.inner.workers.len()
    }

    /// Whether the kernel puts each frame on the queue of the worker that owns its flow (an
    /// eBPF steering program on the tap), or why not.
    pub fn kernel_steering(&self) -> Result<(), &str> {
        self.inner
            .steering
            .as_ref()
            .map(|_| ())
            .map_err(String::as_str)
    }

    /// The TUN_F_* offloads in force (0 when off).
    pub fn offloads(&self) -> u32 {
        self.inner.offloads
    }

    pub fn now(&self) -> Instant {
        self.inner.clock.now()
    }

    /// Stops the workers (idempotent). Sockets fail with an error afterwards.
    pub fn shutdown(&self) {
        stop(&self.inner);
    }

    pub fn is_stopped(&self) -> bool {
        self.inner.stop.load(Ordering::SeqCst)
    }

    /// Counters summed over workers, and per worker.
    pub fn stats(&self) -> NodeStats {
        let mut s = NodeStats::default();
        for w in &self.inner.workers {
            let st = lock(&w.stack);
            s.stack.merge(st.stack.counters());
            s.tcp_conns += st.stack.tcp_conn_count();
            s.tcp_time_wait += st.stack.tcp_time_wait_count();
            s.tcp_time_wait_bytes += st.stack.tcp_time_wait_bytes();
            s.tcp_buffer_bytes += st.stack.tcp_buffer_bytes();
            drop(st);
            let mut c = lock(&w.counters).clone();
            c.callers_woken = w.news.woken();
            s.workers.push(c);
        }
        s
    }

    /// Every TCP connection of every worker.
    pub fn conns(&self) -> Vec<(usize, ConnInfo)> {
        let mut v = Vec::new();
        for (i, w) in self.inner.workers.iter().enumerate() {
            v.extend(lock(&w.stack).stack.tcp_conns().into_iter().map(|c| (i, c)));
        }
        v
    }

    /// The ARP cache (every worker keeps one; merged, freshest entry first): (address, MAC,
    /// seconds left).
    /// The MAC of the first other host seen claiming this node's address (RFC 5227), if any.
    /// The node also warns about it once on standard error, and defends its address.
    pub fn address_conflict(&self) -> Option<EthernetAddress> {
        self.inner.conflict.get().copied()
    }

    pub fn arp_entries(&self) -> Vec<(Ipv4Addr, EthernetAddress, Duration)> {
        let now = self.inner.clock.now();
        let mut all: Vec<(Ipv4Addr, EthernetAddress, Duration)> = Vec::new();
        for w in &self.inner.workers {
            all.extend(lock(&w.stack).stack.arp_entries(now));
        }
        all.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)));
        all.dedup_by_key(|e| e.0);
        all
    }

    /// TCP ports with a listener.
    pub fn listeners(&self) -> Vec<u16> {
        self.inner
            .workers
            .first()
            .map(|w| lock(&w.stack).stack.tcp_listeners())
            .unwrap_or_default()
    }

    /// Runs `app` on worker `worker` (see [`crate::rtc`]); it starts at the worker's next
    /// wake-up, which this call causes.
    pub fn spawn_app(
        &self,
        worker: usize,
        app: Box<dyn crate::rtc::WorkerApp>,
    ) -> Result<(), NodeError> {
        let w = self
            .inner
            .workers
            .get(worker)
            .ok_or(NodeError::Queues(worker))?;
        w.apps_tx.send(app).map_err(|_| NodeError::Stopped)?;
        let _ = w.wake.notify();
        Ok(())
    }

    /// Wakes worker `worker` so that its apps poll soon: for news an app learns from outside
    /// the stack (e.g. a stop flag set by another thread). A worker that does not exist is
    /// ignored.
    pub fn wake_worker(&self, worker: usize) {
        if let Some(w) = self.inner.workers.get(worker) {
            let _ = w.wake.notify();
        }
    }

    /// Starts a trace session in `slot` (replacing and finishing the one there): every worker
    /// feeds it from its next wake-up, and the stacks record events while any session runs.
    pub fn start_trace(&self, slot: TraceSlot, mut config: TraceConfig) -> std::io::Result<()> {
        config.queues = u16::try_from(self.queues()).unwrap_or(u16::MAX);
        let session = crate::trace::start(config)?;
        let old = lock(&self.inner.sessions)[slot as usize].replace(session);
        self.publish_tracers();
        if let Some((_, w)) = old {
            w.finish();
        }
        Ok(())
    }

    /// Stops the trace session in `slot`, flushing its output; its counters, if one ran.
    pub fn stop_trace(&self, slot: TraceSlot) -> Option<TraceStats> {
        let old = lock(&self.inner.sessions)[slot as usize].take();
        self.publish_tracers();
        old.map(|(_, w)| w.finish())
    }

    /// The counters of the session running in `slot`, if one runs.
    pub fn trace_stats(&self, slot: TraceSlot) -> Option<TraceStats> {
        lock(&self.inner.sessions)[slot as usize]
            .as_ref()
            .map(|(t, _)| t.stats())
    }

    /// Whether a session runs in `slot`.
    pub fn tracing(&self, slot: TraceSlot) -> bool {
        lock(&self.inner.sessions)[slot as usize].is_some()
    }

    fn publish_tracers(&self) {
        let tracers: Vec<Tracer> = lock(&self.inner.sessions)
            .iter()
            .flatten()
            .map(|(t, _)| t.clone())
            .collect();
        let on = !tracers.is_empty();
        *lock(&self.inner.tracers) = tracers;
        self.inner.trace_generation.fetch_add(1, Ordering::AcqRel);
        for (w, shared) in self.inner.workers.iter().enumerate() {
            self.with_stack(w, |s, _| s.set_events(on));
            let _ = shared.wake.notify();
        }
    }

    /// Runs `f` on worker `w`'s stack, then wakes the worker if `f` gave it earlier work.
    pub(crate) fn with_stack<R>(&self, w: usize, f: impl FnOnce(&mut Stack, Instant) -> R) -> R {
        let shared = &self.inner.workers[w];
        let mut st = lock(&shared.stack);
        let now = self.inner.clock.now();
        let r = f(&mut st.stack, now);
        if let Some(t) = st.stack.poll_at() {
            if st.sleep_until.is_none_or(|s| t < s) {
                st.sleep_until = Some(t);
                let _ = shared.wake.notify();
            }
        }
        r
    }

    /// Runs `attempt` until it answers, parking between tries until news that `interest`
    /// names arrives: `Ok(Some)` with the answer, `Ok(None)` once `until` passes, an error when
    /// `attempt` fails or the node has stopped. `wakes` counts the times news woke the caller.
    /// The first try registers nothing: a caller that need not wait takes no waiter lock.
    pub(crate) fn block_on<R>(
        &self,
        interest: Interest<'_>,
        until: Option<std::time::Instant>,
        wakes: Option<&AtomicU64>,
        mut attempt: impl FnMut() -> std::io::Result<Option<R>>,
    ) -> std::io::Result<Option<R>> {
        if let Some(r) = attempt()? {
            return Ok(Some(r));
        }
        let reg = Registration::new(&self.inner.workers, interest);
        loop {
            // Registered first, then tried: news the try misses wakes us.
            if let Some(r) = attempt()? {
                return Ok(Some(r));
            }
            if self.is_stopped() {
                return Err(crate::socket::stopped());
            }
            if !reg.park(until) {
                return Ok(None);
            }
            if let Some(w) = wakes {
                w.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Draws from the node's RNG (application-level choices such as ICMP idents).
    pub(crate) fn random_u64(&self) -> u64 {
        lock(&self.inner.rng).next_u64()
    }
}

/// Loads the steering program for `queues` workers and sets it on the tap (through any of its
/// queues: the program is the device's).
fn attach_steering(queue: &crate::sys::TapQueue, queues: usize) -> Result<(), String> {
    let insns: Vec<u64> = crate::steer::bpf::steering_program(queues)
        .iter()
        .map(|i| i.encode())
        .collect();
    let prog = crate::sys::bpf::load_socket_filter(&insns, "tapir_steer")
        .map_err(|e| format!("loading it: {e}"))?;
    queue
        .set_steering_program(Some(std::os::fd::AsFd::as_fd(&prog)))
        .map_err(|e| format!("TUNSETSTEERINGEBPF: {e}"))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// Wakes every waiter of every worker (a socket closed, the node stopping).
    pub(crate) fn publish_all(&self) {
        for w in &self.workers {
            w.news.publish_all();
        }
    }
}

/// Sets the vnet header length and asks for checksum and TSO offloads (`Full`) or checksums
/// alone, falling back to checksum only, then none. Returns the TUN_F_* bits granted.
/// TUNSETOFFLOAD applies to the whole device.
fn negotiate_offloads(q: &crate::sys::tap::TapQueue, want: Offload) -> std::io::Result<u32> {
    q.set_vnet_hdr_len(crate::vnet::LEN as libc::c_int)?;
    let all = [
        libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6,
        libc::TUN_F_CSUM,
        0,
    ];
    let tries = if want == Offload::Full {
        &all[..]
    } else {
        &all[1..]
    };
    for &flags in tries {
        if q.set_offload(flags).is_ok() {
            return Ok(flags);
        }
    }
    Ok(0)
}

/// A seed from the OS's random source, falling back to the clock.
fn os_seed() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
    {
        return u64::from_le_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    t.as_nanos() as u64 ^ u64::from(std::process::id())
}
