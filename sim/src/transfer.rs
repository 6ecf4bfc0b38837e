//! The bulk-transfer scenario: node A connects to node B, each sends its own byte stream, each
//! checks every byte it receives against the stream the other sent, and each closes once it has
//! sent everything and read the end of the other's stream. It passes when both streams arrive
//! byte-exact and both connections end in CLOSED or TIME-WAIT without an error.
//!
//! Between the data and the close, the connections are held open while every transfer's data is
//! done (sent, acknowledged, read) and [`Network::expect_idle_silence`] checks that nobody sends
//! anything for [`Transfer::idle_check`] of virtual time (default [`IDLE_CHECK`]).

use std::net::SocketAddrV4;

use protocols::iface::{SocketHandle, TcpError};
use protocols::tcp::State;
use protocols::time::{Duration, Instant};

use crate::network::{NodeId, SimError};
use crate::Network;

/// What to transfer.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// Bytes from A (the client) to B.
    pub a_to_b: usize,
    /// Bytes from B (the server) to A.
    pub b_to_a: usize,
    pub port: u16,
    /// Virtual time allowed from the connect to both connections closed (the idle check not
    /// counted).
    pub deadline: Duration,
    /// Idle time checked for silence once the data is done, before closing (None: no check).
    pub idle_check: Option<Duration>,
}

/// The idle check of a default transfer: 120 s of virtual time, longer than every TCP timer but
/// keep-alive's (delayed ACK, RTO with backoff to well past its 60 s clamp, TIME-WAIT).
pub const IDLE_CHECK: Duration = Duration::from_secs(120);

impl Transfer {
    /// `bytes` each way on port 5001, within an hour of virtual time.
    pub fn both_ways(bytes: usize) -> Self {
        Transfer {
            a_to_b: bytes,
            b_to_a: bytes,
            port: 5001,
            deadline: Duration::from_secs(3600),
            idle_check: Some(IDLE_CHECK),
        }
    }

    /// `bytes` from A to B only.
    pub fn one_way(bytes: usize) -> Self {
        Transfer {
            b_to_a: 0,
            ..Transfer::both_ways(bytes)
        }
    }
}

/// How a transfer went.
#[derive(Debug, Clone)]
pub struct TransferReport {
    /// Virtual time from the connect until both sides were closed, less the idle check.
    pub elapsed: Duration,
    /// What the idle check saw (None when it did not run).
    pub idle: Option<crate::IdleReport>,
    /// Virtual time from the connect until the last byte of A's stream was read by B.
    pub a_to_b_done: Duration,
    pub bytes_a_to_b: usize,
    pub bytes_b_to_a: usize,
}

impl TransferReport {
    /// A to B goodput in bits per second of virtual time.
    pub fn goodput_a_to_b(&self) -> f64 {
        let secs = self.a_to_b_done.as_secs_f64().max(1e-9);
        self.bytes_a_to_b as f64 * 8.0 / secs
    }
}

/// The byte at `offset` of stream `salt`: a keyed pseudo-random sequence, so that a misplaced,
/// duplicated or stale segment cannot look right.
pub fn pattern_fill(salt: u64, offset: usize, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let pos = (offset + i) as u64;
        let word = splitmix(salt ^ (pos >> 3).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        *b = (word >> ((pos & 7) * 8)) as u8;
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const CHUNK: usize = 64 * 1024;

/// One side of the transfer.
struct Side {
    node: NodeId,
    name: &'static str,
    handle: Option<SocketHandle>,
    tx_salt: u64,
    tx_total: usize,
    tx_done: usize,
    closed: bool,
    rx_salt: u64,
    rx_total: usize,
    rx_done: usize,
    rx_done_at: Option<Instant>,
    eof: bool,
    /// May close once its data is sent (after the idle check).
    may_close: bool,
}

impl Side {
    /// Sends what fits, reads what came, closes when done. Errors on a mismatch or a failure.
    fn drive(
        &mut self,
        net: &mut Network,
        buf: &mut [u8],
        expect: &mut [u8],
    ) -> Result<(), SimError> {
        let Some(h) = self.handle else { return Ok(()) };
        let now = net.now();
        let stack = net.stack_mut(self.node);
        let tx_buffer = stack.config().tcp.tx_buffer;
        while self.tx_done < self.tx_total {
            // Generate only what the send buffer can take now.
            let queued = stack.tcp_info(h).map_or(0, |i| i.send_queue);
            let n = (self.tx_total - self.tx_done)
                .min(CHUNK)
                .min(tx_buffer.saturating_sub(queued));
            if n == 0 {
                break;
            }
            pattern_fill(self.tx_salt, self.tx_done, &mut buf[..n]);
            match stack.tcp_send(h, &buf[..n]) {
                Ok(k) if k > 0 => self.tx_done += k,
                Ok(_) | Err(TcpError::WouldBlock) | Err(TcpError::NotConnected) => break,
                Err(e) => {
                    return Err(SimError::Failed {
                        what: format!("{} send at byte {}: {e}", self.name, self.tx_done),
                    })
                }
            }
        }
        if self.tx_done == self.tx_total && !self.closed && self.may_close {
            // A close before the handshake completes would abort; wait for ESTABLISHED.
            let state = stack.tcp_readiness(h).map(|r| r.state);
            if !matches!(state, Ok(State::SynSent | State::SynReceived)) {
                let _ = stack.tcp_close(h);
                self.closed = true;
            }
        }
        while !self.eof {
            match stack.tcp_recv(h, buf) {
                Ok(0) => {
                    self.eof = true;
                    if self.rx_done != self.rx_total {
                        return Err(SimError::Mismatch {
                            what: format!(
                                "{} read the end of stream after {} of {} bytes",
                                self.name, self.rx_done, self.rx_total
                            ),
                        });
                    }
                    self.rx_done_at = Some(now);
                }
                Ok(n) => {
                    if self.rx_done + n > self.rx_total {
                        return Err(SimError::Mismatch {
                            what: format!(
                                "{} received {} bytes, more than the {} sent",
                                self.name,
                                self.rx_done + n,
                                self.rx_total
                            ),
                        });
                    }
                    pattern_fill(self.rx_salt, self.rx_done, &mut expect[..n]);
                    if buf[..n] != expect[..n] {
                        let at = buf[..n]
                            .iter()
                            .zip(&expect[..n])
                            .position(|(a, b)| a != b)
                            .unwrap_or(0);
                        return Err(SimError::Mismatch {
                            what: format!("{} byte {} differs", self.name, self.rx_done + at),
                        });
                    }
                    self.rx_done += n;
                    if self.rx_done == self.rx_total && self.rx_done_at.is_none() {
                        self.rx_done_at = Some(now);
                    }
                }
                Err(TcpError::WouldBlock) | Err(TcpError::NotConnected) => break,
                Err(e) => {
                    return Err(SimError::Failed {
                        what: format!("{} recv at byte {}: {e}", self.name, self.rx_done),
                    })
                }
            }
        }
        Ok(())
    }

    /// Everything sent is acknowledged and everything the peer sends is read, with the
    /// connection still established: ready for the idle check.
    fn data_done(&self, net: &Network) -> bool {
        let Some(h) = self.handle else { return false };
        self.tx_done == self.tx_total
            && self.rx_done == self.rx_total
            && net
                .stack(self.node)
                .tcp_info(h)
                .is_some_and(|i| i.state == State::Established && i.send_queue == 0)
    }

    fn finished(&self, net: &Network) -> bool {
        let Some(h) = self.handle else { return false };
        self.eof
            && self.closed
            && net.stack(self.node).tcp_readiness(h).is_ok_and(|r| {
                r.error.is_none() && matches!(r.state, State::Closed | State::TimeWait)
            })
    }

    fn describe(&self, net: &Network) -> String {
        let state = self
            .handle
            .and_then(|h| net.stack(self.node).tcp_info(h))
            .map(|i| format!("{} cwnd {} rtt {:?}", i.state, i.cwnd, i.rtt))
            .unwrap_or_else(|| "no socket".into());
        format!(
            "{}: sent {}/{} recv {}/{} eof {} closed {} [{}]",
            self.name,
            self.tx_done,
            self.tx_total,
            self.rx_done,
            self.rx_total,
            self.eof,
            self.closed,
            state
        )
    }
}

/// Runs `t` between node `a` (client) and node `b` (server, listening on `t.port`).
pub fn run_transfer(
    net: &mut Network,
    a: NodeId,
    b: NodeId,
    t: &Transfer,
) -> Result<TransferReport, SimError> {
    let mut reports = run_transfers(net, &[(a, b, t.clone())])?;
    reports.pop().ok_or_else(|| SimError::Failed {
        what: "no report".into(),
    })
}

/// Runs several transfers at once, each `(client, server, transfer)`; a server listens once per
/// transfer, so transfers to one server need distinct ports.
pub fn run_transfers(
    net: &mut Network,
    pairs: &[(NodeId, NodeId, Transfer)],
) -> Result<Vec<TransferReport>, SimError> {
    let to_fail = |e: TcpError, what: &str| SimError::Failed {
        what: format!("{what}: {e}"),
    };
    let start = net.now();
    let mut sides: Vec<(Side, Side, u16, Instant)> = Vec::new();
    for (k, (a, b, t)) in pairs.iter().enumerate() {
        let (a, b) = (*a, *b);
        let salt_ab = net.seed() ^ 0xa5a5_0000_0000_0001 ^ ((k as u64) << 32);
        let salt_ba = net.seed() ^ 0x5a5a_0000_0000_0002 ^ ((k as u64) << 32);
        net.stack_mut(b)
            .tcp_listen(t.port, 8)
            .map_err(|e| to_fail(e, "listen"))?;
        let remote = SocketAddrV4::new(net.stack(b).address(), t.port);
        let ha = net
            .stack_mut(a)
            .tcp_connect(start, remote, None, &|_| true)
            .map_err(|e| to_fail(e, "connect"))?;
        let side = |node, name, handle, tx_salt, tx_total, rx_salt, rx_total| Side {
            node,
            name,
            handle,
            tx_salt,
            tx_total,
            tx_done: 0,
            closed: false,
            rx_salt,
            rx_total,
            rx_done: 0,
            rx_done_at: None,
            eof: false,
            may_close: false,
        };
        sides.push((
            side(a, "A", Some(ha), salt_ab, t.a_to_b, salt_ba, t.b_to_a),
            side(b, "B", None, salt_ba, t.b_to_a, salt_ab, t.a_to_b),
            t.port,
            start + t.deadline,
        ));
    }
    let describe = |net: &Network, sides: &[(Side, Side, u16, Instant)]| {
        sides
            .iter()
            .map(|(sa, sb, port, _)| {
                format!("port {port}: {}; {}", sa.describe(net), sb.describe(net))
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let mut buf = vec![0u8; CHUNK];
    let mut expect = vec![0u8; CHUNK];
    let mut quiet = false;
    // The idle check runs once, for the longest one asked; connections without one may close
    // at once.
    let idle_check = pairs.iter().filter_map(|p| p.2.idle_check).max();
    let mut idle_report = None;
    let mut idle_spent = Duration::ZERO;
    if idle_check.is_none() {
        for (sa, sb, _, _) in sides.iter_mut() {
            sa.may_close = true;
            sb.may_close = true;
        }
    }
    loop {
        let mut all_done = true;
        for (sa, sb, port, deadline) in sides.iter_mut() {
            if sb.handle.is_none() {
                if let Ok(Some((h, _))) = net.stack_mut(sb.node).tcp_accept(*port) {
                    sb.handle = Some(h);
                }
            }
            sa.drive(net, &mut buf, &mut expect)?;
            sb.drive(net, &mut buf, &mut expect)?;
            for s in [&*sa, &*sb] {
                if let Some(e) = s
                    .handle
                    .and_then(|h| net.stack(s.node).tcp_readiness(h).ok())
                    .and_then(|r| r.error)
                {
                    return Err(SimError::Failed {
                        what: format!("connection error: {e}; {}", s.describe(net)),
                    });
                }
            }
            let done = sa.finished(net) && sb.finished(net);
            if !done && net.now() > *deadline + idle_spent {
                return Err(SimError::Deadline {
                    at: net.now(),
                    what: format!("{}; {}", sa.describe(net), sb.describe(net)),
                });
            }
            all_done &= done;
        }
        if all_done {
            break;
        }
        if let Some(d) = idle_check {
            let held = sides
                .iter()
                .all(|(sa, sb, _, _)| !sa.may_close && sa.data_done(net) && sb.data_done(net));
            if held {
                let before = net.now();
                idle_report = Some(net.expect_idle_silence(d)?);
                idle_spent = net.now() - before;
                for (sa, sb, _, _) in sides.iter_mut() {
                    sa.may_close = true;
                    sb.may_close = true;
                }
                quiet = false;
                continue;
            }
        }
        if quiet {
            return Err(SimError::Failed {
                what: format!(
                    "network went quiet before the end: {}",
                    describe(net, &sides)
                ),
            });
        }
        // When nothing is pending any more, look once more at what the last step changed.
        quiet = !net.step()?;
    }
    let end = net.now();
    Ok(sides
        .iter()
        .map(|(sa, sb, _, _)| TransferReport {
            elapsed: end - start - idle_spent,
            idle: idle_report.clone(),
            a_to_b_done: sb.rx_done_at.unwrap_or(end) - start,
            bytes_a_to_b: sb.rx_total,
            bytes_b_to_a: sa.rx_total,
        })
        .collect())
}
