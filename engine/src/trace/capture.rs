//! The bounded ring between the workers and the trace writer thread.
//!
//! Slots are allocated once, when tracing starts, and cycle between two bounded channels: the
//! free list (writer -> workers) and the full list (workers -> writer). A worker that finds
//! the free list empty drops the record and counts it, and does not wait, unless the session
//! asked for a complete capture ([`TraceConfig::wait`]): then the worker waits for the writer to
//! free a slot (back-pressure: the tap's queue holds what arrives meanwhile, and the kernel
//! counts what it cannot hold), and counts the waits.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};
use protocols::iface::DropReason;

use super::pcapng::{EpbRecord, IsbRecord, PcapngWriter};
use super::{Direction, Filter, FrameMeta, LineDecoder, StackEvent, StackObserver};

/// Microseconds since the Unix epoch, for the hook's timestamps.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The default [`TraceConfig::snaplen`]: tcpdump's, more than any frame the tap carries (an
/// offloaded GRO/TSO frame is at most an Ethernet header and a 64 KiB IPv4 packet).
pub const DEFAULT_SNAPLEN: usize = 262_144;

/// The largest frame the tap hands over or takes: slots never hold more than this.
pub const MAX_FRAME: usize = 14 + 65_536;

/// The default [`TraceConfig::ring_slots`].
pub const DEFAULT_RING_SLOTS: usize = 1024;

/// What to trace and where to.
pub struct TraceConfig {
    /// Tap queues: one pcapng interface each.
    pub queues: u16,
    /// Only frames that pass are recorded; `None` records every frame.
    pub filter: Option<Filter>,
    /// Print one line per frame here, decoded by the given decoder.
    pub lines: Option<(Box<dyn Write + Send>, LineDecoder)>,
    /// Write a pcapng capture here.
    pub pcap: Option<Box<dyn Write + Send>>,
    /// Hand every record to this function, on the writer thread (never on a worker): the
    /// Python module's `trace(callback)` feeds its own queue from here.
    pub sink: Option<FrameSink>,
    /// Slots in the ring (records in flight at most).
    pub ring_slots: usize,
    /// Bytes of a frame that are kept; longer frames are cut (the capture keeps their length).
    /// The default, [`DEFAULT_SNAPLEN`], keeps whole frames, offloaded 64 KiB ones included.
    pub snaplen: usize,
    /// Events kept per frame; more are counted in [`TraceStats::events_lost`].
    pub max_events: usize,
    /// With every slot in flight, wait for the writer instead of dropping the frame: a complete
    /// capture, at the price of the workers' speed (`--pcap-wait`). Only for outputs that do not
    /// block forever (a file; not a pipe nobody reads).
    pub wait: bool,
    pub observers: Vec<Arc<dyn StackObserver>>,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            queues: 1,
            filter: None,
            lines: None,
            pcap: None,
            sink: None,
            ring_slots: DEFAULT_RING_SLOTS,
            snaplen: DEFAULT_SNAPLEN,
            max_events: 8,
            wait: false,
            observers: Vec::new(),
        }
    }
}

/// A recorded frame as the writer thread hands it to a [`TraceConfig::sink`].
pub struct FrameRecord<'a> {
    pub meta: FrameMeta,
    /// The frame's length on the wire (`data` may be cut to the snap length).
    pub orig_len: usize,
    pub data: &'a [u8],
    /// "dropped: REASON" and the stack events the frame caused, as the capture's comments.
    pub comments: &'a [String],
}

/// See [`TraceConfig::sink`].
pub type FrameSink = Box<dyn FnMut(&FrameRecord<'_>) + Send>;

/// Counters of a trace session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceStats {
    /// Frames handed to the writer.
    pub recorded: u64,
    /// Frames the filter rejected.
    pub filtered_out: u64,
    /// Frames not recorded because every slot was in flight.
    pub ring_full: u64,
    /// Events not attached because a frame already held `max_events`.
    pub events_lost: u64,
    /// Frames the writer failed to write (I/O error on the line output or the capture).
    pub write_errors: u64,
    /// Times a worker found every slot in flight and waited for the writer
    /// ([`TraceConfig::wait`]).
    pub ring_waits: u64,
}

impl TraceStats {
    /// Frames the session saw (the filter's rejects included).
    pub fn seen(&self) -> u64 {
        self.recorded + self.filtered_out + self.ring_full
    }
}

/// Per-queue counters, for the capture's Interface Statistics Blocks.
#[derive(Default)]
struct QueueCounters {
    /// Frames seen on the queue (before the filter).
    seen: AtomicU64,
    /// Frames that passed the filter.
    accepted: AtomicU64,
    /// Frames that passed the filter but found the ring full.
    dropped: AtomicU64,
}

struct Slot {
    meta: FrameMeta,
    orig_len: usize,
    data: Vec<u8>,
    drop: Option<DropReason>,
    events: Vec<StackEvent>,
}

enum Msg {
    Record(Box<Slot>),
    Stop,
}

struct Shared {
    on: AtomicBool,
    filter: Option<Filter>,
    free: Receiver<Box<Slot>>,
    full: Sender<Msg>,
    snaplen: usize,
    max_events: usize,
    wait: bool,
    observers: Vec<Arc<dyn StackObserver>>,
    recorded: AtomicU64,
    filtered_out: AtomicU64,
    ring_full: AtomicU64,
    events_lost: AtomicU64,
    write_errors: AtomicU64,
    ring_waits: AtomicU64,
    /// One per queue; frames of a queue past the last count on the last one.
    queues: Vec<QueueCounters>,
}

impl Shared {
    #[inline]
    fn queue(&self, q: u16) -> &QueueCounters {
        let i = usize::from(q).min(self.queues.len() - 1);
        &self.queues[i]
    }
}

/// The hook the workers call (see the [module docs](super) for the contract).
#[derive(Clone, Default)]
pub struct Tracer {
    shared: Option<Arc<Shared>>,
}

impl Tracer {
    /// A tracer that records nothing; every call returns at once.
    pub fn off() -> Tracer {
        Tracer { shared: None }
    }

    /// Whether frames are being recorded. Workers test this before building anything.
    #[inline]
    pub fn is_on(&self) -> bool {
        match &self.shared {
            Some(s) => s.on.load(Ordering::Relaxed),
            None => false,
        }
    }

    /// Pauses or resumes recording (the shell's `trace on|off`).
    pub fn set_on(&self, on: bool) {
        if let Some(s) = &self.shared {
            s.on.store(on, Ordering::Relaxed);
        }
    }

    /// Records a frame that was read (`In`) or written (`Out`) on `queue`.
    #[inline]
    pub fn frame(&self, ts_micros: u64, queue: u16, dir: Direction, frame: &[u8]) {
        self.frame_with_events(ts_micros, queue, dir, frame, None, &[]);
    }

    /// Records a frame the stack dropped, with its reason (the capture's comment reads
    /// "dropped: REASON").
    #[inline]
    pub fn dropped(
        &self,
        ts_micros: u64,
        queue: u16,
        dir: Direction,
        frame: &[u8],
        reason: DropReason,
    ) {
        self.frame_with_events(ts_micros, queue, dir, frame, Some(reason), &[]);
    }

    /// Records a frame with the stack events it caused, and hands the events to the observers.
    pub fn frame_with_events(
        &self,
        ts_micros: u64,
        queue: u16,
        dir: Direction,
        frame: &[u8],
        drop: Option<DropReason>,
        events: &[StackEvent],
    ) {
        let Some(s) = &self.shared else { return };
        if !s.on.load(Ordering::Relaxed) {
            return;
        }
        for o in &s.observers {
            for e in events {
                o.on_event(queue, ts_micros, e);
            }
        }
        let q = s.queue(queue);
        q.seen.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = &s.filter {
            if !f.matches(dir, frame) {
                s.filtered_out.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        q.accepted.fetch_add(1, Ordering::Relaxed);
        let slot = match s.free.try_recv() {
            Ok(slot) => Some(slot),
            // The writer gives every slot back and holds the free list's sender until it stops:
            // the wait ends with a slot, or with the session's end (Disconnected).
            Err(TryRecvError::Empty) if s.wait => {
                s.ring_waits.fetch_add(1, Ordering::Relaxed);
                s.free.recv().ok()
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        };
        let mut slot = match slot {
            Some(slot) => slot,
            None => {
                s.ring_full.fetch_add(1, Ordering::Relaxed);
                q.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        slot.meta = FrameMeta {
            ts_micros,
            queue,
            dir,
        };
        slot.orig_len = frame.len();
        slot.data.clear();
        slot.data
            .extend_from_slice(&frame[..frame.len().min(s.snaplen)]);
        slot.drop = drop;
        slot.events.clear();
        let keep = events.len().min(s.max_events);
        slot.events.extend_from_slice(&events[..keep]);
        if keep < events.len() {
            s.events_lost
                .fetch_add((events.len() - keep) as u64, Ordering::Relaxed);
        }
        // Never blocks: there are exactly as many slots as the channel holds.
        if s.full.try_send(Msg::Record(slot)).is_ok() {
            s.recorded.fetch_add(1, Ordering::Relaxed);
        } else {
            s.ring_full.fetch_add(1, Ordering::Relaxed);
            q.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands an event that belongs to no frame to the observers.
    pub fn event(&self, ts_micros: u64, queue: u16, event: &StackEvent) {
        if let Some(s) = &self.shared {
            for o in &s.observers {
                o.on_event(queue, ts_micros, event);
            }
        }
    }

    pub fn stats(&self) -> TraceStats {
        match &self.shared {
            None => TraceStats::default(),
            Some(s) => TraceStats {
                recorded: s.recorded.load(Ordering::Relaxed),
                filtered_out: s.filtered_out.load(Ordering::Relaxed),
                ring_full: s.ring_full.load(Ordering::Relaxed),
                events_lost: s.events_lost.load(Ordering::Relaxed),
                write_errors: s.write_errors.load(Ordering::Relaxed),
                ring_waits: s.ring_waits.load(Ordering::Relaxed),
            },
        }
    }
}

/// The writer thread of a trace session. [`TraceWriter::finish`] stops recording, drains the
/// ring, flushes the outputs and returns the counters.
pub struct TraceWriter {
    tracer: Tracer,
    thread: Option<JoinHandle<()>>,
}

/// Starts a trace session: the tracer for the workers and the writer thread behind it.
pub fn start(mut config: TraceConfig) -> io::Result<(Tracer, TraceWriter)> {
    let slots = config.ring_slots.max(1);
    let (free_tx, free_rx) = bounded(slots);
    let (full_tx, full_rx) = bounded(slots + 1);
    for _ in 0..slots {
        let slot = Box::new(Slot {
            meta: FrameMeta {
                ts_micros: 0,
                queue: 0,
                dir: Direction::In,
            },
            orig_len: 0,
            // Whole frames fit without growing: the worker's copy never allocates.
            data: Vec::with_capacity(config.snaplen.min(MAX_FRAME)),
            drop: None,
            events: Vec::with_capacity(config.max_events),
        });
        let _ = free_tx.send(slot);
    }
    let pcap = match config.pcap.take() {
        Some(w) => Some(PcapngWriter::new(
            w,
            config.queues,
            u32::try_from(config.snaplen).unwrap_or(u32::MAX),
        )?),
        None => None,
    };
    let shared = Arc::new(Shared {
        on: AtomicBool::new(true),
        filter: config.filter.take(),
        free: free_rx,
        full: full_tx,
        snaplen: config.snaplen,
        max_events: config.max_events,
        wait: config.wait,
        observers: std::mem::take(&mut config.observers),
        recorded: AtomicU64::new(0),
        filtered_out: AtomicU64::new(0),
        ring_full: AtomicU64::new(0),
        events_lost: AtomicU64::new(0),
        write_errors: AtomicU64::new(0),
        ring_waits: AtomicU64::new(0),
        queues: (0..config.queues.max(1))
            .map(|_| QueueCounters::default())
            .collect(),
    });
    let tracer = Tracer {
        shared: Some(shared.clone()),
    };
    let lines = config.lines.take();
    let sink = config.sink.take();
    let thread = std::thread::Builder::new()
        .name("tapir-trace".into())
        .spawn(move || writer_loop(&shared, &full_rx, &free_tx, lines, pcap, sink))?;
    Ok((
        tracer.clone(),
        TraceWriter {
            tracer,
            thread: Some(thread),
        },
    ))
}

fn writer_loop(
    shared: &Shared,
    full: &Receiver<Msg>,
    free: &Sender<Box<Slot>>,
    mut lines: Option<(Box<dyn Write + Send>, LineDecoder)>,
    mut pcap: Option<PcapngWriter<Box<dyn Write + Send>>>,
    mut sink: Option<FrameSink>,
) {
    let mut line = String::new();
    let mut texts: Vec<String> = Vec::new();
    while let Ok(msg) = full.recv() {
        let slot = match msg {
            Msg::Record(slot) => slot,
            Msg::Stop => break,
        };
        texts.clear();
        if let Some(reason) = slot.drop {
            texts.push(format!("dropped: {reason}"));
        }
        texts.extend(slot.events.iter().map(|e| e.to_string()));
        let mut ok = true;
        if let Some((out, decoder)) = &mut lines {
            line.clear();
            decoder.decode(&slot.meta, &slot.data, &mut line);
            for t in &texts {
                line.push_str("\n    # ");
                line.push_str(t);
            }
            line.push('\n');
            ok &= out.write_all(line.as_bytes()).is_ok();
        }
        if let Some(w) = &mut pcap {
            let comments: Vec<&str> = texts.iter().map(String::as_str).collect();
            let rec = EpbRecord {
                interface: u32::from(slot.meta.queue),
                ts_micros: slot.meta.ts_micros,
                dir: Some(slot.meta.dir),
                data: &slot.data,
                orig_len: slot.orig_len,
            };
            ok &= w.write_packet(&rec, &comments).is_ok();
        }
        if let Some(f) = &mut sink {
            f(&FrameRecord {
                meta: slot.meta,
                orig_len: slot.orig_len,
                data: &slot.data,
                comments: &texts,
            });
        }
        if !ok {
            shared.write_errors.fetch_add(1, Ordering::Relaxed);
        }
        let _ = free.try_send(slot);
        if full.is_empty() {
            if let Some((out, _)) = &mut lines {
                let _ = out.flush();
            }
        }
    }
    if let Some((out, _)) = &mut lines {
        let _ = out.flush();
    }
    if let Some(w) = &mut pcap {
        // The capture closes: what each queue saw and what the ring could not take.
        let now = unix_micros();
        for (i, q) in shared.queues.iter().enumerate() {
            let isb = IsbRecord {
                interface: i as u32,
                ts_micros: now,
                ifrecv: q.seen.load(Ordering::Relaxed),
                ifdrop: q.dropped.load(Ordering::Relaxed),
                filter_accept: q.accepted.load(Ordering::Relaxed),
            };
            if w.write_stats(&isb).is_err() {
                shared.write_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _ = w.flush();
    }
}

impl TraceWriter {
    /// Stops recording, writes what is in the ring, flushes, and returns the counters.
    pub fn finish(mut self) -> TraceStats {
        self.stop();
        self.tracer.stats()
    }

    fn stop(&mut self) {
        if let Some(s) = &self.tracer.shared {
            s.on.store(false, Ordering::Relaxed);
            // The channel has one place more than there are slots, so this never waits long.
            let _ = s.full.send(Msg::Stop);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TraceWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests;
