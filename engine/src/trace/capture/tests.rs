use std::sync::{Mutex, MutexGuard};

use super::*;
use crate::trace::event::ConnId;
use crate::trace::{pcapng, sample, DecodeOptions, RetransmitReason};

/// A `Write` whose bytes a test can read after the writer thread is done.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn bytes(&self) -> MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap()
    }
}

fn conn() -> ConnId {
    ConnId {
        local: (sample::NODE, 80),
        remote: (sample::HOST, 40000),
    }
}

#[test]
fn frames_events_and_drops_reach_the_capture_and_the_lines() {
    let (pcap, text) = (Shared::default(), Shared::default());
    let (tracer, writer) = start(TraceConfig {
        queues: 2,
        pcap: Some(Box::new(pcap.clone())),
        lines: Some((
            Box::new(text.clone()),
            LineDecoder::new(DecodeOptions::default()),
        )),
        ..TraceConfig::default()
    })
    .unwrap();
    let s = sample::session();
    tracer.frame(1_000_000, 0, s[4].dir, &s[4].frame);
    let rto = [
        StackEvent::RtoFired {
            conn: conn(),
            rto_ms: 200,
            backoff: 1,
        },
        StackEvent::Retransmit {
            conn: conn(),
            seq: sample::SERVER_ISN + 1,
            len: 40,
            reason: RetransmitReason::Rto,
        },
    ];
    tracer.frame_with_events(2_000_000, 1, s[9].dir, &s[9].frame, None, &rto);
    tracer.dropped(
        3_000_000,
        1,
        Direction::In,
        &s[2].frame,
        DropReason::IcmpBadChecksum,
    );
    let stats = writer.finish();
    assert_eq!(stats.recorded, 3);
    assert_eq!(stats.ring_full, 0);

    let p = pcapng::read(&pcap.bytes()).unwrap();
    assert_eq!(p.len(), 3);
    assert_eq!((p[0].queue(), p[0].dir), (0, Some(Direction::In)));
    assert!(p[0].comments.is_empty());
    assert_eq!((p[1].queue(), p[1].dir), (1, Some(Direction::Out)));
    assert_eq!(p[1].data, s[9].frame);
    assert_eq!(
        p[1].comments,
        [
            "tcp 10.9.0.2:80-10.9.0.1:40000: rto fired (200 ms, backoff 1)",
            "tcp 10.9.0.2:80-10.9.0.1:40000: retransmit seq 7000001 len 40 (rto)"
        ]
    );
    assert_eq!(p[2].comments, ["dropped: icmp_bad_checksum"]);
    assert_eq!(p[2].ts_micros, 3_000_000);

    let text = String::from_utf8(text.bytes().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(
        lines[0].starts_with("00:00:01.000000 in q0 IP 10.9.0.1.40000 > 10.9.0.2.80: Flags [S]")
    );
    assert!(
        lines[1].starts_with("00:00:02.000000 out q1 IP 10.9.0.2.80 > 10.9.0.1.40000: Flags [P.]")
    );
    assert_eq!(
        lines[2],
        "    # tcp 10.9.0.2:80-10.9.0.1:40000: rto fired (200 ms, backoff 1)"
    );
    assert_eq!(lines[5], "    # dropped: icmp_bad_checksum");
}

#[test]
fn the_filter_decides_what_is_recorded() {
    let pcap = Shared::default();
    let (tracer, writer) = start(TraceConfig {
        filter: Some(Filter::parse("tcp and in").unwrap()),
        pcap: Some(Box::new(pcap.clone())),
        ..TraceConfig::default()
    })
    .unwrap();
    for f in sample::session() {
        tracer.frame(1, 0, f.dir, &f.frame);
    }
    let stats = writer.finish();
    assert_eq!((stats.recorded, stats.filtered_out), (3, 11));
    assert_eq!(pcapng::read(&pcap.bytes()).unwrap().len(), 3);
}

/// A `Write` that blocks until the test opens the gate.
struct Gate(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Write for Gate {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let (m, c) = &*self.0;
        let mut open = m.lock().unwrap();
        while !*open {
            open = c.wait(open).unwrap();
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_full_ring_drops_and_counts_instead_of_blocking() {
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let (tracer, writer) = start(TraceConfig {
        ring_slots: 2,
        lines: Some((
            Box::new(Gate(gate.clone())),
            LineDecoder::new(DecodeOptions::default()),
        )),
        ..TraceConfig::default()
    })
    .unwrap();
    let f = sample::arp_request();
    for _ in 0..10 {
        tracer.frame(1, 0, Direction::Out, &f);
    }
    assert_eq!(tracer.stats().ring_full, 8);
    assert_eq!(tracer.stats().recorded, 2);
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    let stats = writer.finish();
    assert_eq!((stats.recorded, stats.ring_full), (2, 8));
}

#[test]
fn long_frames_are_cut_to_the_snap_length_and_excess_events_counted() {
    let pcap = Shared::default();
    let (tracer, writer) = start(TraceConfig {
        snaplen: 20,
        max_events: 1,
        pcap: Some(Box::new(pcap.clone())),
        ..TraceConfig::default()
    })
    .unwrap();
    let f = sample::arp_request();
    let e = StackEvent::Drop {
        reason: DropReason::NotForUs,
    };
    tracer.frame_with_events(1, 0, Direction::In, &f, None, &[e, e, e]);
    let stats = writer.finish();
    assert_eq!(stats.events_lost, 2);
    let p = pcapng::read(&pcap.bytes()).unwrap();
    assert_eq!(p[0].data, &f[..20]);
    assert_eq!(p[0].orig_len as usize, f.len());
    assert_eq!(p[0].comments.len(), 1);
}

#[derive(Default)]
struct Count(AtomicU64);
impl StackObserver for Count {
    fn on_event(&self, _queue: u16, _ts: u64, _e: &StackEvent) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn observers_see_events_and_off_records_nothing() {
    let count = Arc::new(Count::default());
    let (tracer, writer) = start(TraceConfig {
        observers: vec![count.clone()],
        ..TraceConfig::default()
    })
    .unwrap();
    let e = StackEvent::Congestion {
        conn: conn(),
        cwnd: 14600,
        ssthresh: 65535,
    };
    tracer.event(1, 0, &e);
    tracer.frame_with_events(1, 0, Direction::In, &sample::arp_reply(), None, &[e]);
    assert_eq!(count.0.load(Ordering::Relaxed), 2);
    tracer.set_on(false);
    assert!(!tracer.is_on());
    tracer.frame(1, 0, Direction::In, &sample::arp_reply());
    assert_eq!(writer.finish().recorded, 1);

    let off = Tracer::off();
    assert!(!off.is_on());
    off.frame(1, 0, Direction::In, &sample::arp_reply());
    assert_eq!(off.stats(), TraceStats::default());
}

/// A capture whose writes wait while the gate is shut, and are kept once it opens.
#[derive(Clone)]
struct GatedCapture(Arc<(Mutex<bool>, std::sync::Condvar)>, Shared);

impl Write for GatedCapture {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let (m, c) = &*self.0;
        let mut open = m.lock().unwrap();
        while !*open {
            open = c.wait(open).unwrap();
        }
        self.1.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_capture_closes_with_per_queue_statistics_counting_ring_drops() {
    let gate = Arc::new((Mutex::new(true), std::sync::Condvar::new()));
    let pcap = GatedCapture(gate.clone(), Shared::default());
    let (tracer, writer) = start(TraceConfig {
        queues: 2,
        ring_slots: 2,
        filter: Some(crate::trace::Filter::parse("arp").unwrap()),
        pcap: Some(Box::new(pcap.clone())),
        ..TraceConfig::default()
    })
    .unwrap();
    // The headers are written; now the writer thread stalls on its first packet.
    *gate.0.lock().unwrap() = false;
    let s = sample::session();
    for _ in 0..3 {
        tracer.frame(1, 0, s[4].dir, &s[4].frame);
    }
    let arp = sample::arp_request();
    for _ in 0..10 {
        tracer.frame(2, 1, Direction::In, &arp);
    }
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    let stats = writer.finish();
    assert_eq!(
        (stats.recorded, stats.filtered_out, stats.ring_full),
        (2, 3, 8)
    );
    let c = pcapng::read_capture(&pcap.1.bytes()).unwrap();
    assert_eq!(c.packets.len(), 2);
    let per_queue: Vec<_> = c
        .stats
        .iter()
        .map(|s| (s.interface, s.ifrecv, s.filter_accept, s.ifdrop))
        .collect();
    assert_eq!(
        per_queue,
        vec![
            (0, Some(3), Some(0), Some(0)),
            (1, Some(10), Some(10), Some(8)),
        ]
    );
    // Dropped = seen by the capture (past the filter) - written.
    let written = c.packets.iter().filter(|p| p.queue() == 1).count() as u64;
    assert_eq!(c.stats[1].ifdrop, Some(10 - written));
}

#[test]
fn by_default_a_64k_offloaded_frame_is_captured_whole() {
    let pcap = Shared::default();
    let (tracer, writer) = start(TraceConfig {
        pcap: Some(Box::new(pcap.clone())),
        ..TraceConfig::default()
    })
    .unwrap();
    // An Ethernet header and a GRO'd IPv4 packet of 65,212 bytes.
    let mut f = sample::arp_request();
    f.resize(65_226, 0xab);
    tracer.frame(1, 0, Direction::In, &f);
    writer.finish();
    let p = pcapng::read(&pcap.bytes()).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].data.len(), p[0].orig_len as usize),
        (f.len(), f.len())
    );
    assert_eq!(p[0].data, f);
}
