//! The connection: RFC 9293 state, sequence variables and the application API.
//!
//! Calling order (one connection, one owner):
//! - inputs: [`Connection::handle_segment`] for every segment of the 4-tuple,
//!   [`Connection::handle_timeout`] once `now` reaches [`Connection::poll_at`], and the
//!   application commands (`send`, `recv`, `close`, `abort`, `set_nodelay`);
//! - outputs: after any input, call [`Connection::poll_transmit`] until it returns `None`, then
//!   re-read [`Connection::poll_at`]; [`Connection::take_wakeup`] says whether the application
//!   has something new to look at.
//!
//! Segment arrival lives in `input.rs`, segment building in `output.rs`; this file holds the
//! state, the constructors, timers and the application side.

mod input;
mod output;
mod recovery;

use std::collections::VecDeque;

use super::checks::ChallengeBudget;
use super::congestion::{CongestionController, Controller};
use super::event::EVENT_QUEUE;
use super::rack::Rack;
use super::recv_buffer::RecvBuffer;
use super::rtt::RttEstimator;
use super::sack::Scoreboard;
use super::send_buffer::SendBuffer;
use super::time_wait::{TimeWait, Timestamps};
use super::timer::{Timer, TimerTable};
use super::TcpEvent;
use super::{ConnError, RecvError, SegmentDrop, SendError, State, TcpConfig};
use crate::time::{Duration, Instant};
use crate::wire::tcp::{SeqNumber, TcpFlags, TcpRepr};

/// RFC 9293 §3.7.1: the send MSS when the peer sends no MSS option.
const DEFAULT_PEER_MSS: usize = 536;

/// The smallest send MSS a peer can make us use (Linux's `tcp_min_snd_mss`): a peer that
/// announces MSS 0 or 1 must not make us cut the send buffer into one-byte segments
/// (CVE-2019-11479; found by the `tcp_conn` fuzz target).
const MIN_PEER_MSS: usize = 48;

/// The smallest path MTU an ICMP "fragmentation needed" can make us use (Linux's
/// `ip_rt_min_pmtu`): a smaller one would only multiply the segments an attacker can make us
/// send.
pub const MIN_PATH_MTU: usize = 552;

/// What an ICMP "fragmentation needed" did to a connection ([`Connection::on_path_mtu`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathMtu {
    /// The MSS shrank; what was in flight goes again in smaller segments.
    Lowered,
    /// The quoted segment is in flight, and the MSS is already no larger.
    Unchanged,
    /// The quoted segment is not in flight (stale, or forged): ignored.
    NotInFlight,
}

/// IPv4 and TCP headers without options: path MTU minus this is the MSS.
const IP_TCP_HEADERS: usize = 40;

/// RFC 7323 §2.3: the largest window shift.
const MAX_WINDOW_SHIFT: u8 = 14;

/// Bytes the timestamps option takes in every segment once negotiated (10 + 2 NOPs).
const TIMESTAMP_OPTION_LEN: usize = 12;
/// How often the stack frees the receive rings of connections whose data was all read.
pub const BUFFER_SWEEP: Duration = Duration::from_secs(1);

/// One TCP connection. See the module docs for the calling order.
#[derive(Debug)]
pub struct Connection {
    cfg: TcpConfig,
    state: State,
    local_port: u16,
    remote_port: u16,

    // Send sequence space (RFC 9293 §3.3.1).
    iss: SeqNumber,
    snd_una: SeqNumber,
    snd_nxt: SeqNumber,
    /// Highest sequence number sent so far (SND.NXT before a go-back after a timeout).
    snd_max: SeqNumber,
    /// Peer's window in bytes, scale applied.
    snd_wnd: usize,
    max_snd_wnd: usize,
    snd_wl1: SeqNumber,
    snd_wl2: SeqNumber,
    /// Shift applied to the peer's window field.
    snd_wscale: u8,
    /// Window scaling negotiated (both sides offered it).
    wscale_on: bool,
    /// Largest segment (payload plus options) the peer accepts, capped by our own MSS.
    snd_mss: usize,
    /// The MSS the path allows (RFC 1191): `usize::MAX` until an ICMP "fragmentation needed"
    /// (or the node's path MTU cache) says less.
    path_mss: usize,
    tx: SendBuffer,
    /// Sequence number of the first byte in `tx`.
    tx_start: SeqNumber,
    /// `close()` was called: a FIN follows the queued data, at `tx_start + tx.len()`.
    fin_queued: bool,

    // Receive sequence space.
    irs: SeqNumber,
    rcv_nxt: SeqNumber,
    /// Shift applied to the window field we send.
    rcv_wscale: u8,
    /// Right edge of the window we last advertised; it never moves left.
    rcv_adv_edge: SeqNumber,
    /// The application has read since the last segment we sent: only a read opens the window
    /// enough to be worth a segment of its own (as Linux sends window updates from recvmsg).
    read_since_sent: bool,
    rx: RecvBuffer,
    /// Sequence number of the next byte the application reads (RCV.NXT less what `rx` holds).
    rcv_read: SeqNumber,
    /// The urgent byte not yet read past, if any: SEG.SEQ + SEG.UP - 1 of the newest urgent
    /// pointer (RFC 6093 §4: the pointer names the byte after the urgent data).
    rcv_up: Option<SeqNumber>,
    fin_received: bool,
    /// A FIN that arrived past a hole, taken once RCV.NXT reaches it.
    pending_fin: Option<SeqNumber>,

    // Negotiated options.
    ts_on: bool,
    ts_recent: u32,
    /// When TS.Recent was last set (RFC 7323 §5.5: it goes stale after 24 days idle).
    ts_recent_at: Instant,
    ts_offset: u32,
    last_ack_sent: SeqNumber,
    sack_on: bool,

    // Timers, RTT, loss recovery.
    timers: TimerTable,
    rtt: RttEstimator,
    /// Segment end and send time of the one segment being timed (when timestamps are off);
    /// cleared on any retransmission (Karn's rule).
    rtt_probe: Option<(SeqNumber, Instant)>,
    /// Consecutive retransmission timeouts (R2 counter).
    rto_count: u32,
    /// Zero-window probes sent since the window was last open (persist backoff).
    persist_count: u32,
    send_probe: bool,
    /// The persist timer fired while the window was open but data was held back by sender-side
    /// SWS avoidance or Nagle with nothing in flight: the next poll sends what the window
    /// allows (RFC 9293 §3.8.6.2.1's override timeout).
    sws_override: bool,
    cc: Controller,
    dupacks: u32,
    in_recovery: bool,
    /// RFC 6582 `recover` / RFC 6675 `RecoveryPoint`: highest sequence sent when recovery (or
    /// a timeout) began.
    recover: SeqNumber,
    /// Retransmit the first unacknowledged segment on the next poll (fast retransmit).
    retransmit_una: bool,
    /// SACK scoreboard (RFC 6675), used when SACK was negotiated.
    sack: Scoreboard,
    /// RFC 6675 `HighRxt`: the end of the highest retransmission in this recovery.
    high_rxt: SeqNumber,
    /// The inflated window of RFC 6582 recovery (without SACK).
    recovery_cwnd: usize,
    /// Per-segment send times and marks for RACK (RFC 8985) and SACK recovery.
    rack: Rack,
    /// The loss probe timer fired: the next poll sends a probe (RFC 8985 §7.3).
    tlp_send: bool,
    /// SND.MAX after the last probe, until an ACK covers it.
    tlp_end: Option<SeqNumber>,
    /// Probes sent since an ACK last delivered anything (at most [`MAX_PROBES`]).
    tlp_probes: u32,

    // Keep-alive and RFC 5961 challenge ACK budget.
    keepalive_probes: u32,
    send_keepalive: bool,
    challenge: ChallengeBudget,
    /// The application let go of the connection ([`Connection::orphan`]).
    orphaned: bool,
    last_drop: Option<SegmentDrop>,

    // ACK generation.
    ack_now: bool,
    unacked_bytes: usize,
    pending_rst: Option<TcpRepr>,

    error: Option<ConnError>,
    wakeup: bool,
    /// Recorded events, when tracing asked for them ([`Connection::set_events`]).
    events: Option<VecDeque<TcpEvent>>,
    nodelay: bool,
}

impl Connection {
    fn new(
        cfg: &TcpConfig,
        local_port: u16,
        remote_port: u16,
        iss: SeqNumber,
        state: State,
    ) -> Self {
        let rcv_wscale = if cfg.window_scaling {
            window_shift_for(cfg.rx_buffer)
        } else {
            0
        };
        let mss = usize::from(cfg.mss).max(1);
        Connection {
            cfg: cfg.clone(),
            state,
            local_port,
            remote_port,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: SeqNumber(0),
            snd_wl2: iss,
            snd_wscale: 0,
            wscale_on: false,
            snd_mss: mss,
            path_mss: usize::MAX,
            tx: SendBuffer::new(cfg.tx_buffer),
            tx_start: iss + 1,
            fin_queued: false,
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_wscale,
            rcv_adv_edge: SeqNumber(0),
            read_since_sent: false,
            rx: RecvBuffer::new(cfg.rx_buffer),
            rcv_read: SeqNumber(0),
            rcv_up: None,
            fin_received: false,
            pending_fin: None,
            ts_on: false,
            ts_recent: 0,
            ts_recent_at: Instant::ZERO,
            // RFC 7323 §5.4: a per-connection offset keeps TSval from revealing the clock.
            ts_offset: iss.0.rotate_left(13),
            last_ack_sent: SeqNumber(0),
            sack_on: false,
            timers: TimerTable::default(),
            rtt: RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto),
            rtt_probe: None,
            rto_count: 0,
            persist_count: 0,
            send_probe: false,
            sws_override: false,
            cc: cfg.congestion.build(mss),
            dupacks: 0,
            in_recovery: false,
            recover: iss,
            retransmit_una: false,
            sack: Scoreboard::default(),
            high_rxt: iss,
            recovery_cwnd: 0,
            rack: Rack::default(),
            tlp_send: false,
            tlp_end: None,
            tlp_probes: 0,
            keepalive_probes: 0,
            send_keepalive: false,
            challenge: ChallengeBudget::default(),
            orphaned: false,
            last_drop: None,
            ack_now: false,
            unacked_bytes: 0,
            pending_rst: None,
            error: None,
            wakeup: false,
            events: None,
            nodelay: !cfg.nagle,
        }
    }

    /// Active open: state SYN-SENT; the SYN comes out of the next [`Connection::poll_transmit`].
    pub fn connect(
        config: &TcpConfig,
        local_port: u16,
        remote_port: u16,
        isn: SeqNumber,
        _now: Instant,
    ) -> Connection {
        let mut c = Connection::new(config, local_port, remote_port, isn, State::SynSent);
        c.ts_on = config.timestamps;
        c.sack_on = config.sack;
        c
    }

    /// Passive open from a received SYN (the listener is the caller's): state SYN-RECEIVED, the
    /// SYN-ACK comes out of the next poll. MSS, window scale, SACK-permitted and timestamps are
    /// negotiated from `syn`.
    pub fn accept(config: &TcpConfig, syn: &TcpRepr, isn: SeqNumber, now: Instant) -> Connection {
        let mut c = Connection::new(config, syn.dst_port, syn.src_port, isn, State::SynReceived);
        c.take_peer_syn(syn);
        c.ts_recent_at = now;
        c.snd_wnd = usize::from(syn.window_len);
        c.max_snd_wnd = c.snd_wnd;
        c.snd_wl1 = syn.seq_number;
        c.snd_wl2 = isn;
        c
    }

    /// A connection made from a SYN cookie (RFC 4987): `ack` is the peer's segment completing
    /// the handshake (its ACK field is our ISN `isn` + 1) and `mss` the MSS the cookie kept.
    /// The connection starts ESTABLISHED, without window scaling, SACK or timestamps (a
    /// cookie SYN-ACK offers none of them), and processes `ack` with its `payload`.
    pub fn from_syn_cookie(
        config: &TcpConfig,
        ack: &TcpRepr,
        payload: &[u8],
        isn: SeqNumber,
        mss: u16,
        now: Instant,
    ) -> Connection {
        let syn = TcpRepr {
            flags: TcpFlags::SYN,
            seq_number: ack.seq_number - 1usize,
            ack_number: None,
            max_seg_size: Some(mss),
            payload_len: 0,
            ..TcpRepr::default()
        };
        let syn = TcpRepr {
            src_port: ack.src_port,
            dst_port: ack.dst_port,
            window_len: ack.window_len,
            ..syn
        };
        let mut c = Connection::accept(config, &syn, isn, now);
        // The SYN-ACK went out with the cookie; it is not timed (no RTT sample from it).
        c.snd_nxt = isn + 1;
        c.snd_max = c.snd_nxt;
        c.handle_segment(now, ack, payload);
        c.rtt_probe = None;
        c
    }

    /// The SYN-ACK that carries a SYN cookie `isn` for `syn`: our MSS and no other option
    /// (the cookie keeps no state to remember them by), the window our receive buffer will
    /// offer, unscaled. Built directly, without a connection: under a SYN flood this is the
    /// whole per-SYN cost.
    pub fn syn_cookie_syn_ack(config: &TcpConfig, syn: &TcpRepr, isn: SeqNumber) -> TcpRepr {
        TcpRepr {
            src_port: syn.dst_port,
            dst_port: syn.src_port,
            flags: TcpFlags::SYN | TcpFlags::ACK,
            seq_number: isn,
            ack_number: Some(syn.seq_number + 1),
            // Never scaled in a SYN (RFC 7323 §2.2).
            window_len: config.rx_buffer.min(usize::from(u16::MAX)) as u16,
            max_seg_size: Some(config.mss),
            ..TcpRepr::default()
        }
    }

    /// RFC 6191: whether this connection, in TIME-WAIT, may give way to a new incarnation
    /// opened by `syn` (see [`super::checks::reopens_time_wait`]).
    pub fn time_wait_accepts(&self, syn: &TcpRepr) -> bool {
        self.state == State::TimeWait
            && super::checks::reopens_time_wait(
                self.ts_on.then_some(self.ts_recent),
                self.rcv_nxt,
                syn,
            )
    }

    /// This connection as a compact [`TimeWait`], once it is in TIME-WAIT with nothing left to
    /// send (its last ACK out); None before.
    pub fn time_wait(&self) -> Option<TimeWait> {
        if self.state != State::TimeWait || self.ack_now || self.pending_rst.is_some() {
            return None;
        }
        let expires = self.timers.get(Timer::TimeWait)?;
        // The window that advertises the edge we last advertised again: never less (RFC 9293
        // §3.8.6.2.2 does not let a window shrink), and what lies in it stays acceptable.
        let open = self.rcv_adv_edge - self.rcv_nxt;
        let window_field = (open >> self.rcv_wscale).min(usize::from(u16::MAX)) as u16;
        Some(TimeWait {
            local_port: self.local_port,
            remote_port: self.remote_port,
            snd_nxt: self.snd_max,
            max_snd_wnd: self.max_snd_wnd,
            rcv_nxt: self.rcv_nxt,
            rcv_adv_edge: self.rcv_adv_edge,
            window_field,
            ts: self.ts_on.then_some(Timestamps {
                offset: self.ts_offset,
                recent: self.ts_recent,
                recent_at: self.ts_recent_at,
            }),
            expires,
            challenge: self.challenge,
        })
    }

    /// The last segment dropped (or answer held back) since the previous call, for counters.
    pub fn take_drop(&mut self) -> Option<SegmentDrop> {
        self.last_drop.take()
    }

    /// Learns the peer's ISN and options from its SYN (or SYN-ACK).
    fn take_peer_syn(&mut self, syn: &TcpRepr) {
        self.irs = syn.seq_number;
        self.rcv_nxt = syn.seq_number + 1;
        self.rcv_read = self.rcv_nxt;
        let peer_mss = syn.max_seg_size.map_or(DEFAULT_PEER_MSS, usize::from);
        self.snd_mss = peer_mss
            .max(MIN_PEER_MSS)
            .min(usize::from(self.cfg.mss))
            .min(self.path_mss)
            .max(1);
        match syn.window_scale {
            Some(shift) if self.cfg.window_scaling => {
                self.snd_wscale = shift.min(MAX_WINDOW_SHIFT);
                self.wscale_on = true;
            }
            _ => {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
                self.wscale_on = false;
            }
        }
        self.sack_on = self.cfg.sack && syn.sack_permitted;
        match syn.timestamp {
            Some(ts) if self.cfg.timestamps => {
                self.ts_on = true;
                self.ts_recent = ts.tsval;
            }
            _ => self.ts_on = false,
        }
        // Our SYN's window is never scaled (RFC 7323 §2.2).
        self.rcv_adv_edge = self.rcv_nxt + self.rx.window().min(usize::from(u16::MAX));
        self.last_ack_sent = self.rcv_nxt;
        let smss = self.smss();
        self.cc.set_mss(smss);
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    pub fn remote_port(&self) -> u16 {
        self.remote_port
    }

    /// The earliest instant at which [`Connection::handle_timeout`] must run, if any.
    pub fn poll_at(&self) -> Option<Instant> {
        self.timers.earliest()
    }

    /// Runs every timer that expired at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timers.take_expired(Timer::TimeWait, now) {
            self.set_state(State::Closed);
            self.timers.stop_all();
            return;
        }
        if self.timers.take_expired(Timer::Retransmit, now) {
            self.on_retransmit_timeout(now);
        }
        if self.timers.take_expired(Timer::LossProbe, now) {
            self.on_probe_timeout(now);
        }
        if self.timers.take_expired(Timer::Reorder, now) {
            self.rack_detect(now);
        }
        if self.timers.take_expired(Timer::DelayedAck, now) {
            self.ack_now = true;
        }
        if self.timers.take_expired(Timer::Persist, now) {
            if self.snd_wnd == 0 {
                self.send_probe = true;
            } else {
                self.sws_override = true;
            }
            self.persist_count = self.persist_count.saturating_add(1);
            let at = now + self.persist_interval();
            self.timers.set(Timer::Persist, at);
        }
        if self.timers.take_expired(Timer::UserTimeout, now) && self.snd_una < self.snd_max {
            self.fail(ConnError::TimedOut);
            return;
        }
        if self.timers.take_expired(Timer::FinWait2, now) && self.state == State::FinWait2 {
            // Linux `tcp_fin_timeout`: the peer never closed; give up quietly.
            self.set_state(State::Closed);
            self.timers.stop_all();
            return;
        }
        if self.timers.take_expired(Timer::KeepAlive, now) {
            self.on_keepalive_timeout(now);
        }
    }

    /// RFC 9293 §3.8.4: the connection was idle for the keep-alive time (or a probe went
    /// unanswered for the interval).
    fn on_keepalive_timeout(&mut self, now: Instant) {
        let Some(idle) = self.cfg.keepalive else {
            return;
        };
        if !matches!(self.state, State::Established | State::CloseWait) {
            return;
        }
        let busy = self.snd_max > self.snd_una || self.tx_start + self.tx.len() > self.snd_nxt;
        if busy {
            // Retransmissions watch over a busy connection.
            self.timers.set(Timer::KeepAlive, now + idle);
        } else if self.keepalive_probes >= self.cfg.keepalive_count {
            self.fail(ConnError::TimedOut);
        } else {
            self.keepalive_probes += 1;
            self.send_keepalive = true;
            self.timers
                .set(Timer::KeepAlive, now + self.cfg.keepalive_interval);
        }
    }

    /// A segment from the peer passed the acceptability test: the peer is alive.
    fn on_peer_activity(&mut self, now: Instant) {
        self.keepalive_probes = 0;
        if let Some(idle) = self.cfg.keepalive {
            if matches!(self.state, State::Established | State::CloseWait) {
                self.timers.set(Timer::KeepAlive, now + idle);
            }
        }
        if self.state == State::FinWait2 {
            if let Some(t) = self.cfg.fin_wait2_timeout {
                self.timers.set(Timer::FinWait2, now + t);
            }
        }
    }

    /// RFC 5961 §7: a challenge ACK, unless this second's budget is spent.
    fn challenge_ack(&mut self, now: Instant) {
        if self.challenge.allow(now, self.cfg.challenge_ack_limit) {
            self.ack_now = true;
        } else {
            self.last_drop = Some(SegmentDrop::ChallengeAckLimited);
        }
    }

    fn on_retransmit_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        let limit = if self.syn_acked() && self.state != State::SynReceived {
            self.cfg.max_retransmissions
        } else {
            self.cfg.max_syn_retransmissions
        };
        let user_timeout = self.cfg.user_timeout.is_some() && self.syn_acked();
        if self.rto_count >= limit && !user_timeout {
            self.fail(ConnError::TimedOut);
            return;
        }
        self.rto_count = self.rto_count.saturating_add(1);
        self.rtt.back_off();
        let rto_ms = u32::try_from(self.rtt.rto().as_millis()).unwrap_or(u32::MAX);
        let backoff = u8::try_from(self.rto_count).unwrap_or(u8::MAX);
        self.emit(TcpEvent::RtoFired { rto_ms, backoff });
        self.forget_flight();
        if self.rto_count >= 2 {
            // RFC 6675 §5.1: SACKed data the peer may have reneged on is sent again after a
            // second timeout in a row.
            self.sack.clear();
            self.rack.forget_sacks();
        }
        let data_outstanding = self.snd_una < self.tx_start + self.tx.len();
        if self.snd_wnd == 0 && self.syn_acked() && data_outstanding {
            // The peer's window is closed: what is outstanding lies beyond it, so this is the
            // persist timer's business, not a loss (RFC 9293 §3.8.6.1).
            self.rto_count -= 1;
            self.snd_nxt = self.snd_una;
            self.update_persist(now);
            return;
        }
        let flight = self.snd_max - self.snd_una;
        self.cc.on_rto(now, flight);
        self.emit_congestion();
        // RFC 6582 §3.2 step 1 after a timeout: no fast retransmit for data sent before it.
        self.recover = self.snd_max;
        // Go back: everything from SND.UNA is sent again, SYN or FIN included.
        self.snd_nxt = self.snd_una;
        // Keep timing while anything is outstanding, whether or not a segment fits right now.
        self.timers.set(Timer::Retransmit, now + self.rtt.rto());
    }

    /// Everything in flight counts as lost, to be sent again from SND.UNA: no RTT sample from
    /// it, no recovery or loss probe under way.
    fn forget_flight(&mut self) {
        self.rtt_probe = None;
        self.retransmit_una = false;
        self.dupacks = 0;
        self.in_recovery = false;
        self.high_rxt = self.snd_una;
        self.timers.stop(Timer::LossProbe);
        self.timers.stop(Timer::Reorder);
        self.tlp_send = false;
        self.tlp_end = None;
        self.tlp_probes = 0;
        self.rack.mark_all_lost();
    }

    /// RFC 1191 with RFC 5927's check: an ICMP "fragmentation needed" quoting our segment at
    /// `seq` says the path takes IP packets of at most `mtu` bytes. Taken only when `seq` is in
    /// flight (an off-path attacker must guess it) and the MSS shrinks (never below what a
    /// [`MIN_PATH_MTU`] allows). What is in flight is then sent again at once in smaller
    /// segments, with no congestion response: the path dropped them for their size, not for
    /// congestion (as Linux's `tcp_simple_retransmit`).
    pub fn on_path_mtu(&mut self, now: Instant, seq: SeqNumber, mtu: usize) -> PathMtu {
        let in_flight = self.snd_una <= seq && seq < self.snd_max;
        if !(self.sends_data() && in_flight) {
            return PathMtu::NotInFlight;
        }
        let mss = mtu.max(MIN_PATH_MTU) - IP_TCP_HEADERS;
        if mss >= self.snd_mss {
            // Another segment of a flight already sent again smaller, most likely.
            return PathMtu::Unchanged;
        }
        self.path_mss = mss;
        self.snd_mss = mss;
        let smss = self.smss();
        self.cc.set_mss(smss);
        self.forget_flight();
        // RFC 6582 §3.2 step 1: no fast retransmit for data sent before this.
        self.recover = self.snd_max;
        self.snd_nxt = self.snd_una;
        self.timers.set(Timer::Retransmit, now + self.rtt.rto());
        PathMtu::Lowered
    }

    /// RFC 1122 §4.2.3.9 and RFC 5927: an ICMP error (other than "fragmentation needed")
    /// quoting our segment at `seq`. Answering our SYN (SYN-SENT, `seq` our ISN) it ends the
    /// attempt at once with `err`, as Linux does, rather than after minutes of SYNs nobody will
    /// answer (a firewall's REJECT, a router without a route). Anything later is a soft error a
    /// connection survives: ignored. Returns whether it ended the connection.
    pub fn on_icmp_error(&mut self, seq: SeqNumber, err: ConnError) -> bool {
        if self.state != State::SynSent || seq != self.iss {
            return false;
        }
        self.fail(err);
        true
    }

    /// Caps the MSS this connection sends with at what a path MTU of `mtu` allows (a path MTU
    /// the node learned earlier towards the same host), whatever the peer's SYN offers.
    pub fn set_path_mtu(&mut self, mtu: usize) {
        self.path_mss = mtu.max(MIN_PATH_MTU) - IP_TCP_HEADERS;
        if self.snd_mss > self.path_mss {
            self.snd_mss = self.path_mss;
            let smss = self.smss();
            self.cc.set_mss(smss);
        }
    }

    /// Interval before the next zero-window probe: RTO backed off per probe, clamped.
    fn persist_interval(&self) -> Duration {
        let shift = self.persist_count.min(16);
        self.rtt
            .rto()
            .checked_mul(1 << shift)
            .unwrap_or(self.cfg.max_rto)
            .min(self.cfg.max_rto)
    }

    /// Starts or stops the persist timer after anything changed: it runs while data waits
    /// unsent with nothing in flight (so no retransmission timer will come), whether the
    /// peer's window is zero (zero-window probes) or merely too small to send into under SWS
    /// avoidance (the override timeout). Without the second case a lost window update from a
    /// peer with a small buffer stalled the connection for good (found by the smoltcp sweep).
    fn update_persist(&mut self, now: Instant) {
        let can_send = self.sends_data();
        let unsent = self.tx_start + self.tx.len() > self.snd_nxt;
        let idle = self.snd_nxt == self.snd_una;
        let held = self.snd_wnd == 0 || idle;
        if can_send && held && unsent && !self.timers.is_set(Timer::Retransmit) {
            let at = now + self.persist_interval();
            self.timers.set_if_stopped(Timer::Persist, at);
        } else {
            self.timers.stop(Timer::Persist);
            self.send_probe = false;
            self.sws_override = false;
            if self.snd_wnd > 0 {
                self.persist_count = 0;
            }
        }
    }

    fn set_state(&mut self, state: State) {
        if self.state != state {
            let from = self.state;
            self.state = state;
            self.wakeup = true;
            self.emit(TcpEvent::State { from, to: state });
        }
    }

    /// Starts (or stops) recording [`TcpEvent`]s for [`Connection::take_event`].
    pub fn set_events(&mut self, on: bool) {
        self.events = on.then(|| VecDeque::with_capacity(EVENT_QUEUE));
    }

    /// The oldest recorded event not yet taken.
    pub fn take_event(&mut self) -> Option<TcpEvent> {
        self.events.as_mut()?.pop_front()
    }

    /// Records `ev` if events are on; the oldest goes when the queue is full.
    pub(super) fn emit(&mut self, ev: TcpEvent) {
        if let Some(q) = self.events.as_mut() {
            if q.len() >= EVENT_QUEUE {
                q.pop_front();
            }
            q.push_back(ev);
        }
    }

    /// Records the congestion state after a congestion event.
    pub(super) fn emit_congestion(&mut self) {
        if self.events.is_some() {
            let cwnd = u32::try_from(self.cwnd()).unwrap_or(u32::MAX);
            let ssthresh = u32::try_from(self.ssthresh()).unwrap_or(u32::MAX);
            self.emit(TcpEvent::Congestion { cwnd, ssthresh });
        }
    }

    /// The connection failed: record why and close at once.
    fn fail(&mut self, err: ConnError) {
        self.error = Some(err);
        self.set_state(State::Closed);
        self.timers.stop_all();
        self.ack_now = false;
        self.wakeup = true;
    }

    /// The states in which data (or our FIN) may still go out.
    pub(super) fn sends_data(&self) -> bool {
        matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        )
    }

    fn syn_acked(&self) -> bool {
        self.snd_una != self.iss
    }

    /// Whether our FIN has been acknowledged.
    fn fin_acked(&self) -> bool {
        self.fin_queued && self.snd_una == self.tx_start + self.tx.len() + 1
    }

    /// Sender MSS in payload bytes, options that every segment carries taken off (RFC 6691).
    fn smss(&self) -> usize {
        let ts = if self.ts_on { TIMESTAMP_OPTION_LEN } else { 0 };
        self.snd_mss.saturating_sub(ts).max(1)
    }

    /// Sets the timestamp offset (RFC 7323 §7.1) before the first segment goes out; without
    /// it the offset is derived from the ISN.
    pub fn set_ts_offset(&mut self, offset: u32) {
        self.ts_offset = offset;
    }

    /// Timestamp clock: milliseconds plus the per-connection offset.
    fn ts_now(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    // Application side.

    /// Copies as much of `data` as fits into the send buffer; returns how much (may be 0).
    pub fn send(&mut self, data: &[u8]) -> Result<usize, SendError> {
        match self.state {
            State::Established | State::CloseWait => Ok(self.tx.write(data)),
            State::FinWait1
            | State::FinWait2
            | State::Closing
            | State::LastAck
            | State::TimeWait => Err(SendError::Closed),
            State::Closed if self.fin_queued && self.error.is_none() => Err(SendError::Closed),
            _ => Err(SendError::NotConnected),
        }
    }

    /// Reads in-order data. `Ok(0)` is the end of the stream (the peer's FIN, with everything
    /// before it read); data received before a reset stays readable. Urgent data is delivered
    /// in line (RFC 6093 §6), but a read stops short of the urgent byte (as Linux's does with
    /// SO_OOBINLINE), so that a read starting at it can tell: see [`Connection::recv_marked`].
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.recv_marked(buf).map(|(n, _)| n)
    }

    /// Like [`Connection::recv`], also saying whether the first byte read is the urgent byte
    /// (the read started at the urgent mark, where `SIOCATMARK` would be true).
    pub fn recv_marked(&mut self, buf: &mut [u8]) -> Result<(usize, bool), RecvError> {
        if self.rx.ready() > 0 {
            let (limit, at_mark) = match self.urgent_mark() {
                Some(0) => (buf.len(), true),
                Some(ahead) => (ahead.min(buf.len()), false),
                None => (buf.len(), false),
            };
            let n = self.rx.read(buf.get_mut(..limit).unwrap_or_default());
            self.consumed(n);
            return Ok((n, at_mark && n > 0));
        }
        self.nothing_to_read().map(|n| (n, false))
    }

    /// Like [`Connection::recv`] without copying: drops up to `max` bytes of in-order data as
    /// if read (urgent bytes included: a reader that only counts has no use for the mark).
    pub fn discard(&mut self, max: usize) -> Result<usize, RecvError> {
        if self.rx.ready() > 0 {
            let n = self.rx.discard(max);
            self.consumed(n);
            return Ok(n);
        }
        self.nothing_to_read()
    }

    /// The application took `n` in-order bytes.
    fn consumed(&mut self, n: usize) {
        self.rcv_read += n;
        self.read_since_sent |= n > 0;
        if self.rcv_up.is_some_and(|up| up < self.rcv_read) {
            self.rcv_up = None;
        }
    }

    /// What a read finds with no data ready: the end of the stream, an error, or nothing yet.
    fn nothing_to_read(&self) -> Result<usize, RecvError> {
        if self.fin_received {
            return Ok(0);
        }
        if let Some(err) = self.error {
            return Err(err.into());
        }
        match self.state {
            State::Closed => Err(RecvError::NotConnected),
            _ => Err(RecvError::WouldBlock),
        }
    }

    /// Bytes to read before the urgent byte (`Some(0)`: the next byte read is the urgent
    /// one), while the peer's urgent pointer is ahead of what the application has read. The
    /// byte itself may not have arrived yet.
    pub fn urgent_mark(&self) -> Option<usize> {
        self.rcv_up
            .filter(|&up| up >= self.rcv_read)
            .map(|up| up - self.rcv_read)
    }

    /// In-order bytes ready to read.
    pub fn recv_queue(&self) -> usize {
        self.rx.ready()
    }

    /// Bytes in the send buffer (unsent and unacknowledged).
    pub fn send_queue(&self) -> usize {
        self.tx.len()
    }

    /// Heap bytes the connection's buffers and loss-recovery records hold now (receive ring
    /// and out-of-order list, send ring, SACK scoreboard, RACK records). Each is allocated when
    /// needed and freed when drained (the receive ring at the next [`BUFFER_SWEEP`]), so an idle
    /// connection (everything read, everything acknowledged, no hole open) holds 0.
    pub fn buffer_footprint(&self) -> usize {
        self.rx.footprint() + self.tx.footprint() + self.sack.footprint() + self.rack.footprint()
    }

    /// Frees the receive ring if everything in it was read (the stack calls it for every
    /// connection once a [`BUFFER_SWEEP`]): an idle connection holds no receive memory, while a
    /// busy one keeps its ring instead of allocating (and zeroing) it anew after every read.
    /// The send ring goes by itself once everything is acknowledged.
    pub fn release_idle_buffers(&mut self) {
        let mut gone = super::SpareBuffers::default();
        self.release_idle_buffers_into(&mut gone);
    }

    /// Like [`Connection::release_idle_buffers`], keeping what it gives up in `spares` for the
    /// next connections: the empty receive ring, the send ring once everything is acknowledged,
    /// and the room of the RACK records once nothing is in flight.
    pub fn release_idle_buffers_into(&mut self, spares: &mut super::SpareBuffers) {
        self.rx.release_into(spares);
        self.tx.release_into(spares);
        self.rack.release_into(spares);
    }

    /// Takes buffers from `spares` (a new connection, before its first data): what it
    /// receives, sends and keeps in flight then lands in memory another connection gave up.
    pub fn adopt_buffers(&mut self, spares: &mut super::SpareBuffers) {
        self.rx.adopt(spares);
        self.tx.adopt(spares);
        self.rack.adopt(spares);
    }

    /// Free room in the send buffer.
    pub fn send_capacity(&self) -> usize {
        self.tx.free()
    }

    /// Whether `send` can take data now (or once the handshake is done, it will).
    pub fn may_send(&self) -> bool {
        matches!(self.state, State::Established | State::CloseWait)
    }

    /// Whether more data may still arrive or be read.
    pub fn may_recv(&self) -> bool {
        self.rx.ready() > 0
            || matches!(
                self.state,
                State::Established | State::FinWait1 | State::FinWait2
            )
    }

    /// Shuts down the write side: a FIN follows the queued data.
    pub fn close(&mut self) {
        match self.state {
            State::SynSent | State::Listen => {
                self.set_state(State::Closed);
                self.timers.stop_all();
            }
            State::SynReceived | State::Established => {
                self.fin_queued = true;
                self.set_state(State::FinWait1);
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.set_state(State::LastAck);
            }
            _ => {}
        }
    }

    /// The application let go of the connection: no one will read from it again. Data still
    /// unread is dropped and the connection closes gracefully, so that what it sent (a response)
    /// still reaches the peer. Data arriving later is taken and dropped while some of ours is in
    /// flight (as a server's lingering close does), and resets the connection once all of ours
    /// is acknowledged (RFC 1122 §4.2.2.13, Linux's `TCPAbortOnData`). Without this a peer
    /// could keep a let-go connection, and its buffer, alive for good by sending into it.
    /// (Linux resets at once when data is unread at close, `TCPAbortOnClose`, losing whatever
    /// it had not sent yet; tapir delivers it.) Returns the unread bytes dropped.
    pub fn orphan(&mut self) -> usize {
        self.orphaned = true;
        let unread = self.rx.ready();
        if unread > 0 {
            let n = self.rx.discard(unread);
            self.consumed(n);
        }
        if !self.is_closed() {
            self.close();
        }
        unread
    }

    /// Resets the connection: a RST goes out (if synchronized) on the next poll, state CLOSED.
    pub fn abort(&mut self) {
        if self.state.is_synchronized() && self.state != State::TimeWait {
            self.pending_rst = Some(TcpRepr {
                src_port: self.local_port,
                dst_port: self.remote_port,
                flags: TcpFlags::RST,
                seq_number: self.snd_nxt,
                ..TcpRepr::default()
            });
        }
        self.set_state(State::Closed);
        self.timers.stop_all();
        self.ack_now = false;
    }

    /// CLOSED with nothing left to send: the owner may drop the connection.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed && self.pending_rst.is_none()
    }

    pub fn error(&self) -> Option<ConnError> {
        self.error
    }

    /// Whether anything the application can see changed since the last call.
    pub fn take_wakeup(&mut self) -> bool {
        core::mem::take(&mut self.wakeup)
    }

    /// Turns Nagle's algorithm off (`on == true`) or back on.
    pub fn set_nodelay(&mut self, on: bool) {
        self.nodelay = on;
    }

    /// Turns keep-alive on (`Some(idle)`: a probe after `idle` without a segment from the
    /// peer, RFC 9293 §3.8.4) or off for this connection (`SO_KEEPALIVE` and `TCP_KEEPIDLE`).
    /// The idle time counts from `now`.
    pub fn set_keepalive(&mut self, now: Instant, idle: Option<Duration>) {
        self.cfg.keepalive = idle;
        self.keepalive_probes = 0;
        match idle {
            Some(idle) if matches!(self.state, State::Established | State::CloseWait) => {
                self.timers.set(Timer::KeepAlive, now + idle);
            }
            Some(_) => {}
            None => self.timers.stop(Timer::KeepAlive),
        }
    }

    /// Smoothed RTT, once measured.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }

    /// Current retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.rtt.rto()
    }

    /// Congestion window in bytes (inflated during RFC 6582 recovery).
    pub fn cwnd(&self) -> usize {
        if self.in_recovery && !self.sack_on {
            self.recovery_cwnd
        } else {
            self.cc.window()
        }
    }

    /// Slow-start threshold in bytes.
    pub fn ssthresh(&self) -> usize {
        self.cc.ssthresh()
    }

    /// Whether fast recovery is in progress (SACK-based when SACK was negotiated).
    pub fn in_recovery(&self) -> bool {
        self.in_recovery
    }

    /// Whether SACK was negotiated.
    pub fn sack_enabled(&self) -> bool {
        self.sack_on
    }

    /// Replaces the congestion controller (the default follows `TcpConfig::congestion`).
    pub fn set_congestion_controller(&mut self, mut cc: Box<dyn CongestionController>) {
        cc.set_mss(self.smss());
        self.cc = Controller::Custom(cc);
    }

    /// The peer's window in bytes (scale applied).
    pub fn peer_window(&self) -> usize {
        self.snd_wnd
    }

    /// The MSS we send with (payload bytes, per-segment options taken off).
    pub fn send_mss(&self) -> usize {
        self.smss()
    }

    /// The window shifts in use: (ours, the peer's).
    pub fn window_scales(&self) -> (u8, u8) {
        (self.rcv_wscale, self.snd_wscale)
    }
}

/// The smallest shift that lets `buffer` bytes fit the 16-bit window field (RFC 7323 §2.3).
fn window_shift_for(buffer: usize) -> u8 {
    let mut shift = 0;
    while shift < MAX_WINDOW_SHIFT && (buffer >> shift) > usize::from(u16::MAX) {
        shift += 1;
    }
    shift
}
