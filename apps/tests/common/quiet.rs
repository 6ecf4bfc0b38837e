//! The "no segment without a cause" invariant (issue 13), checked from outside tapir on the
//! lab's tap:
//!
//! - [`assert_idle_silent`]: established connections with no application activity draw
//!   (almost) no frames from tapir. The frames are counted with an AF_PACKET socket on the
//!   kernel side of the tap, filtered to TCP from tapir on the named connections (ARP refreshes
//!   and other flows do not count).
//! - [`FrameBudget`]: over a whole test, the frames tapir wrote to the tap are bounded by the
//!   frames the kernel handed it (the tap's own counters, read inside the lab namespace).
//!
//! Both bounds are generous on purpose: a correct stack stays far below them, and any storm
//! (issue 13's was 1.5 million pure ACKs a second) breaks them by orders of magnitude.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use tapir_apps::lab::Lab;

use super::raw::{parse_tcp, RawSocket};

/// How long an idle connection is watched by the interop tests that call this in passing.
pub const IDLE_WINDOW: Duration = Duration::from_secs(1);

/// Frames tapir may send on one idle connection during a window beyond one per frame the kernel
/// sent on it there (a retransmission by the kernel rightly draws an ACK). Zero is what a correct
/// stack sends unprompted (no keep-alives are on in these tests); the slack covers a late window
/// update or a retransmission of tapir's own after a lost ACK (tests with `--impair`).
pub const IDLE_FRAMES_PER_CONN: usize = 2;

/// Before the window opens, tapir's frames on the connections must pause for this long (the
/// tail of the last exchange: a delayed ACK, a window update after the last read) ...
const SETTLE_GAP: Duration = Duration::from_millis(200);
/// ... within this deadline; a stack that never pauses fails here.
const SETTLE_DEADLINE: Duration = Duration::from_secs(3);

/// One TCP connection between tapir and the kernel, by its two ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub tapir: SocketAddrV4,
    pub kernel: SocketAddrV4,
}

impl Flow {
    pub fn new(tapir: SocketAddrV4, kernel: SocketAddrV4) -> Flow {
        Flow { tapir, kernel }
    }

    /// The flow of a kernel socket connected to (or accepted from) tapir.
    pub fn of_kernel(s: &std::net::TcpStream) -> Flow {
        let v4 = |a: std::net::SocketAddr| match a {
            std::net::SocketAddr::V4(a) => a,
            std::net::SocketAddr::V6(a) => panic!("IPv6 address {a} in the lab"),
        };
        Flow {
            tapir: v4(s.peer_addr().expect("peer_addr")),
            kernel: v4(s.local_addr().expect("local_addr")),
        }
    }

    /// The flow of a tapir socket.
    pub fn of_tapir(s: &engine::TcpStream) -> Flow {
        Flow {
            tapir: s.local_addr(),
            kernel: s.peer_addr(),
        }
    }
}

/// What one captured frame was: (from tapir, flow index, flags, payload length).
fn classify(f: &[u8], flows: &[Flow]) -> Option<(bool, usize, u8, usize)> {
    let t = parse_tcp(f)?;
    let from = SocketAddrV4::new(t.src, t.sport);
    let to = SocketAddrV4::new(t.dst, t.dport);
    flows.iter().enumerate().find_map(|(i, fl)| {
        if from == fl.tapir && to == fl.kernel {
            Some((true, i, t.flags, t.len))
        } else if from == fl.kernel && to == fl.tapir {
            Some((false, i, t.flags, t.len))
        } else {
            None
        }
    })
}

/// Asserts that `flows`, established and idle (no application reads or writes while this runs),
/// draw at most [`IDLE_FRAMES_PER_CONN`] frames each from tapir over `window` (plus one per
/// frame the kernel sent on the connection in the window), after tapir's
/// frames on them first pause for 200 ms (at most 3 s). Returns the frames tapir sent in the
/// window. `what` names the caller in the failure message.
pub fn assert_idle_silent(lab: &Lab, flows: &[Flow], window: Duration, what: &str) -> usize {
    let sock = RawSocket::open(&lab.ns, &lab.tap).expect("AF_PACKET socket in the lab");
    let start = Instant::now();
    let mut last = start;
    let mut settling = 0usize;
    loop {
        let now = Instant::now();
        if now.duration_since(last) >= SETTLE_GAP {
            break;
        }
        assert!(
            now.duration_since(start) < SETTLE_DEADLINE,
            "{what}: tapir never paused for {SETTLE_GAP:?} on {} idle connection(s): {settling} frames from it in {SETTLE_DEADLINE:?} ({flows:?})",
            flows.len()
        );
        if let Some(f) = sock.recv() {
            if let Some((true, ..)) = classify(&f, flows) {
                settling += 1;
                last = Instant::now();
            }
        }
    }
    let deadline = Instant::now() + window;
    let mut per_flow = vec![0usize; flows.len()];
    let mut seen = Vec::new();
    let mut from_kernel = vec![0usize; flows.len()];
    while Instant::now() < deadline {
        let Some(f) = sock.recv() else { continue };
        match classify(&f, flows) {
            Some((true, i, flags, len)) => {
                per_flow[i] += 1;
                if seen.len() < 8 {
                    seen.push(format!("conn {i} flags {flags:#04x} len {len}"));
                }
            }
            Some((false, i, ..)) => from_kernel[i] += 1,
            None => {}
        }
    }
    let total: usize = per_flow.iter().sum();
    for (i, &n) in per_flow.iter().enumerate() {
        let allowed = IDLE_FRAMES_PER_CONN + from_kernel[i];
        assert!(
            n <= allowed,
            "{what}: idle connection {i} ({:?}) drew {n} frames from tapir in {window:?} (at most {allowed}: {IDLE_FRAMES_PER_CONN} + one per frame from the kernel, which sent {}; {total} from tapir on all {} connections); first ones: {seen:?}",
            flows[i],
            from_kernel[i],
            flows.len()
        );
    }
    total
}

/// The kernel's counters of the lab's tap: what tapir wrote to it and what the kernel handed
/// tapir.
#[derive(Debug, Clone, Copy, Default)]
pub struct TapCounters {
    /// Frames tapir wrote (the tap's rx_packets: what the kernel received).
    pub from_tapir: u64,
    /// Frames the kernel queued for tapir (tx_packets), and those it dropped (tx_dropped).
    pub to_tapir: u64,
}

impl TapCounters {
    /// Read inside the lab namespace (`ip netns exec` mounts its own /sys).
    pub fn read(lab: &Lab) -> TapCounters {
        let dir = format!("/sys/class/net/{}/statistics", lab.tap);
        let out = lab
            .command("cat")
            .arg(format!("{dir}/rx_packets"))
            .arg(format!("{dir}/tx_packets"))
            .arg(format!("{dir}/tx_dropped"))
            .output()
            .expect("read the tap's counters");
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Vec<u64> = text
            .split_whitespace()
            .map(|n| n.parse().expect("counter"))
            .collect();
        assert_eq!(v.len(), 3, "tap counters: {text:?} {:?}", out.stderr);
        TapCounters {
            from_tapir: v[0],
            to_tapir: v[1] + v[2],
        }
    }
}

/// Frames tapir may write per frame it was handed, over a whole test, besides the segments that
/// carry its applications' data: a receiver sends about one ACK per two segments (one per
/// offloaded super-frame or more), a request draws its response, a duplicate ACK or SACK a
/// retransmission; 8 leaves room for all of it, far below any storm (issue 13's wrote 1.5
/// million frames a second for none).
pub const FRAMES_OUT_PER_FRAME_IN: u64 = 8;
/// Data segments are allowed for on top, one per this many bytes the applications wrote (the
/// smallest MSS the tests use): a sender answers one stretch ACK that covers many segments with
/// as many new ones. Measured in all frames: up to 1.13 out per frame in on the peer matrix, but
/// 7.0 in transfer.rs at 1% loss, where tapir sends 100 MB (without TSO under `--impair`) and
/// the kernel's ACKs each cover several segments.
pub const DATA_BYTES_PER_FRAME: u64 = 536;
/// Plus this many for what timers alone may send over a test (retransmissions, probes, ARP).
pub const FRAMES_OUT_SLACK: u64 = 200;

/// The tap's counters when a test began; [`FrameBudget::check`] bounds what tapir wrote since.
pub struct FrameBudget {
    start: TapCounters,
}

impl FrameBudget {
    pub fn start(lab: &Lab) -> FrameBudget {
        FrameBudget {
            start: TapCounters::read(lab),
        }
    }

    /// Asserts frames out ≤ [`FRAMES_OUT_PER_FRAME_IN`] × frames in + `written` /
    /// [`DATA_BYTES_PER_FRAME`] + [`FRAMES_OUT_SLACK`] since [`FrameBudget::start`], where
    /// `written` is the payload tapir's applications sent meanwhile; returns (out, in).
    pub fn check(&self, lab: &Lab, written: usize, what: &str) -> (u64, u64) {
        let now = TapCounters::read(lab);
        let out = now.from_tapir - self.start.from_tapir;
        let inn = now.to_tapir - self.start.to_tapir;
        let data = (written as u64).div_ceil(DATA_BYTES_PER_FRAME);
        assert!(
            out <= FRAMES_OUT_PER_FRAME_IN * inn + data + FRAMES_OUT_SLACK,
            "{what}: tapir wrote {out} frames for {inn} it was handed and {written} bytes of data (at most {FRAMES_OUT_PER_FRAME_IN} per frame + 1 per {DATA_BYTES_PER_FRAME} bytes + {FRAMES_OUT_SLACK})"
        );
        (out, inn)
    }
}
