//! Segment-level scripts with explicit times (after smoltcp's `send!` / `recv!` tests): build
//! the peer's segments by hand, feed them to one [`Connection`], assert what it sends back.

mod close;
mod data;
mod handshake;
mod loss;
mod memory;
mod pair;
mod quiet;
mod rack;
mod robustness;
mod sack;
mod timers;

use super::{Connection, State, TcpConfig};
use crate::time::{Duration, Instant};
use crate::wire::tcp::{SeqNumber, TcpFlags, TcpRepr};

pub const LOCAL_PORT: u16 = 49152;
pub const REMOTE_PORT: u16 = 80;
pub const LOCAL_ISS: SeqNumber = SeqNumber(1000);
pub const REMOTE_ISS: SeqNumber = SeqNumber(0xffff_ff00);

pub const ACK: TcpFlags = TcpFlags::ACK;
pub const SYN: TcpFlags = TcpFlags::SYN;
pub const FIN: TcpFlags = TcpFlags::FIN;
pub const RST: TcpFlags = TcpFlags::RST;
pub const PSH: TcpFlags = TcpFlags::PSH;

pub fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

/// A configuration without options, so that windows and header sizes are easy to predict.
pub fn plain_config() -> TcpConfig {
    TcpConfig {
        mss: 1000,
        rx_buffer: 64 * 1024 - 1,
        tx_buffer: 64 * 1024,
        window_scaling: false,
        timestamps: false,
        sack: false,
        ..TcpConfig::default()
    }
}

/// A segment from the peer: sequence number `REMOTE_ISS + 1 + seq`, acknowledging
/// `LOCAL_ISS + 1 + ack` when `ack` is given.
pub fn peer(flags: TcpFlags, seq: usize, ack: Option<usize>, window: u16) -> TcpRepr {
    let mut flags = flags;
    if ack.is_some() {
        flags |= ACK;
    }
    TcpRepr {
        src_port: REMOTE_PORT,
        dst_port: LOCAL_PORT,
        flags,
        seq_number: REMOTE_ISS + 1 + seq,
        ack_number: ack.map(|a| LOCAL_ISS + 1 + a),
        window_len: window,
        ..TcpRepr::default()
    }
}

/// Our sequence number `LOCAL_ISS + 1 + off`.
pub fn lseq(off: usize) -> SeqNumber {
    LOCAL_ISS + 1 + off
}

/// The peer's sequence number `REMOTE_ISS + 1 + off`.
pub fn rseq(off: usize) -> SeqNumber {
    REMOTE_ISS + 1 + off
}

/// One connection under test with its own notion of now.
pub struct Harness {
    pub conn: Connection,
    pub now: Instant,
}

impl Harness {
    /// Feeds a peer segment with `payload` (its `payload_len` is set from it).
    pub fn send(&mut self, repr: TcpRepr, payload: &[u8]) {
        let repr = TcpRepr {
            payload_len: payload.len(),
            ..repr
        };
        self.conn.handle_segment(self.now, &repr, payload);
    }

    /// The next segment out, with its payload.
    pub fn recv(&mut self) -> Option<(TcpRepr, Vec<u8>)> {
        let mut buf = [0u8; 1500];
        let repr = self.conn.poll_transmit(self.now, &mut buf)?;
        let hlen = 20 + options_len_for_test(&repr);
        Some((repr, buf[hlen..hlen + repr.payload_len].to_vec()))
    }

    /// The next segment out, which must exist.
    #[track_caller]
    pub fn expect(&mut self) -> (TcpRepr, Vec<u8>) {
        match self.recv() {
            Some(x) => x,
            None => panic!("expected a segment at {:?}", self.now),
        }
    }

    #[track_caller]
    pub fn expect_nothing(&mut self) {
        if let Some((r, _)) = self.recv() {
            panic!("unexpected segment at {:?}: {:?}", self.now, r);
        }
    }

    /// Moves time to `at` and runs the timers.
    pub fn advance_to(&mut self, at: Instant) {
        self.now = at;
        self.conn.handle_timeout(at);
    }

    pub fn advance(&mut self, d: Duration) {
        let at = self.now + d;
        self.advance_to(at);
    }

    /// Jumps to the next timer deadline and runs it.
    #[track_caller]
    pub fn fire_next_timer(&mut self) -> Instant {
        let Some(at) = self.conn.poll_at() else {
            panic!("no timer running")
        };
        self.advance_to(at);
        at
    }

    /// Drains outgoing segments.
    pub fn drain(&mut self) -> Vec<(TcpRepr, Vec<u8>)> {
        core::iter::from_fn(|| self.recv()).collect()
    }
}

/// Independent of the code under test: option bytes as RFC 793/7323/2018 lay them out.
pub fn options_len_for_test(r: &TcpRepr) -> usize {
    let mut n = 0;
    n += if r.max_seg_size.is_some() { 4 } else { 0 };
    n += if r.window_scale.is_some() { 4 } else { 0 };
    n += if r.sack_permitted { 4 } else { 0 };
    n += if r.timestamp.is_some() { 12 } else { 0 };
    let blocks = r.sack_ranges.iter().flatten().count();
    n += if blocks > 0 { 4 + 8 * blocks } else { 0 };
    n
}

/// A connection established by active open at time 0 with `cfg`; the peer offered `window`
/// and MSS 1000, and no other options.
pub fn established(cfg: &TcpConfig, window: u16) -> Harness {
    established_with(cfg, window, |_| {})
}

/// As [`established`], with the peer's SYN-ACK edited by `edit` (to add options).
pub fn established_with(cfg: &TcpConfig, window: u16, edit: impl FnOnce(&mut TcpRepr)) -> Harness {
    let mut h = Harness {
        conn: Connection::connect(cfg, LOCAL_PORT, REMOTE_PORT, LOCAL_ISS, ms(0)),
        now: ms(0),
    };
    let (syn, _) = h.expect();
    assert_eq!(syn.flags, SYN);
    h.now = ms(10);
    let mut synack = TcpRepr {
        seq_number: REMOTE_ISS,
        max_seg_size: Some(1000),
        ..peer(SYN, 0, Some(0), window)
    };
    edit(&mut synack);
    h.send(synack, &[]);
    let (ack, _) = h.expect();
    assert_eq!(ack.flags, ACK);
    assert_eq!(h.conn.state(), State::Established);
    h.conn.take_wakeup();
    h
}
