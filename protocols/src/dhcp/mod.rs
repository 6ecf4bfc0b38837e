//! A sans-IO DHCP client (RFC 2131 §4.4), with the address-conflict probe of RFC 5227.
//!
//! [`Client`] owns the lease state machine and nothing else: it never sends, never reads a clock
//! and never draws randomness of its own. The driver (the node) moves bytes and time.
//!
//! # Calling order
//!
//! The methods fall into three kinds, as in quinn-proto's `Connection`:
//! - **inputs**: [`Client::handle_message`] for every DHCP message received on UDP port 68
//!   (broadcast or unicast; parse it with [`DhcpRepr::parse`] first),
//!   [`Client::handle_timeout`] when the instant from [`Client::poll_timeout`] has passed,
//!   [`Client::handle_probe_result`] after the driver has probed the address asked for by
//!   [`Event::ProbeRequested`], and [`Client::release`] on clean exit;
//! - **outputs**: [`Client::poll_transmit`] (messages to send from port 68 to port 67),
//!   [`Client::poll_event`] (lease and state changes), [`Client::poll_timeout`] (when to call
//!   `handle_timeout` next);
//! - **queries**: [`Client::state`], [`Client::lease`].
//!
//! After creating the client and after every input, drain `poll_transmit` and `poll_event`
//! until they return `None`, then re-arm the timer from `poll_timeout`. A driver loop:
//!
//! ```text
//! let mut c = Client::new(config, now, &mut rng);
//! loop {
//!     while let Some(t) = c.poll_transmit() { send t.message.to_bytes() from t.src:68 to t.dst:67 }
//!     while let Some(e) = c.poll_event() { match e {
//!         Event::ProbeRequested { address } => start an RFC 5227 probe of address,
//!         Event::Bound(lease) => configure lease.address, lease.router, lease.dns_servers,
//!         Event::Renewed(lease) => update timers shown in stats, address unchanged,
//!         Event::Lost { .. } => remove the address (the node is address-less again),
//!         Event::StateChanged { .. } => log / trace,
//!     } }
//!     wait for a DHCP datagram, a probe verdict, or c.poll_timeout(); feed it in with now
//! }
//! // on exit: c.release(now); drain poll_transmit once more.
//! ```
//!
//! While the client has no lease (states Init to Probing) the node has no address: it must send
//! from 0.0.0.0 (`Transmit::src`) to 255.255.255.255 and accept broadcast replies on port 68.
//! The client sets the BROADCAST flag in those states so that servers broadcast their replies.
//!
//! # Timers
//!
//! Retransmission in SELECTING and REQUESTING follows RFC 2131 §4.1: 4 s, then doubling up to
//! 64 s, each randomised by ±1 s (uniform) with the injected [`Rng`]. REQUESTING gives up after
//! [`MAX_REQUEST_TRIES`] sends and restarts. In RENEWING and REBINDING the client re-sends after
//! half the time left until T2 (resp. the lease's end), at least 60 s (§4.4.5), never past that
//! deadline. Lease times count from the moment the REQUEST was sent (§4.4.1). After a DECLINE
//! the client waits [`DECLINE_BACKOFF`] before restarting (§3.1 point 5).

use core::net::Ipv4Addr;

use crate::rand::Rng;
use crate::time::{Duration, Instant};
use crate::wire::dhcp::{option, DhcpRepr, MessageType, Op};
use crate::wire::{EthernetAddress, Ipv4Cidr};

/// First retransmission interval (RFC 2131 §4.1).
pub const INITIAL_RETRANSMIT: Duration = Duration::from_secs(4);
/// Largest retransmission interval (RFC 2131 §4.1).
pub const MAX_RETRANSMIT: Duration = Duration::from_secs(64);
/// Sends of one REQUEST (in REQUESTING) before restarting from INIT (4+8+16+32 s ≈ 1 min).
pub const MAX_REQUEST_TRIES: u32 = 4;
/// Wait after a DECLINE before starting again (RFC 2131 §3.1: "at least 10 seconds").
pub const DECLINE_BACKOFF: Duration = Duration::from_secs(10);
/// Shortest wait between retransmissions while RENEWING/REBINDING (RFC 2131 §4.4.5).
pub const MIN_RENEW_RETRANSMIT: Duration = Duration::from_secs(60);

/// Options the client asks for (option 55).
const PARAMETERS: [u8; 8] = [
    option::SUBNET_MASK,
    option::ROUTER,
    option::DNS_SERVERS,
    option::DOMAIN_NAME,
    option::INTERFACE_MTU,
    option::LEASE_TIME,
    option::RENEWAL_TIME,
    option::REBINDING_TIME,
];

/// Where the client is (RFC 2131 figure 5, plus PROBING for RFC 5227 and RELEASED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// No lease; waiting to send a DISCOVER (immediately, or after a DECLINE's back-off).
    Init,
    /// DISCOVER sent; waiting for an OFFER.
    Selecting,
    /// REQUEST sent for an offered address; waiting for ACK or NAK.
    Requesting,
    /// ACK received; the driver is probing the address (RFC 5227) before using it.
    Probing,
    /// The address is ours until T1.
    Bound,
    /// Past T1: renewing with the server that gave the lease (unicast).
    Renewing,
    /// Past T2: asking any server (broadcast).
    Rebinding,
    /// Released (or stopped); does nothing more.
    Released,
}

/// Client settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub mac: EthernetAddress,
    /// Option 61; `None` sends the default `[1] ++ mac` (hardware type Ethernet).
    pub client_id: Option<Vec<u8>>,
    /// Option 12, which servers like dnsmasq put in their lease file.
    pub host_name: Option<Vec<u8>>,
    /// An address to ask for in DISCOVER (e.g. the last lease's).
    pub requested_ip: Option<Ipv4Addr>,
    /// A lease time to ask for (option 51 in DISCOVER and REQUEST); servers may ignore it.
    pub requested_lease: Option<u32>,
    /// Never keep a lease longer than this many seconds, whatever the server says (tests use
    /// it to see renewal without waiting hours).
    pub max_lease: Option<u32>,
    /// Ask the driver for an RFC 5227 probe before using an address.
    pub probe: bool,
}

impl Config {
    pub fn new(mac: EthernetAddress) -> Self {
        Config {
            mac,
            client_id: None,
            host_name: None,
            requested_ip: None,
            requested_lease: None,
            max_lease: None,
            probe: true,
        }
    }
}

/// An address lease and what came with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Address and prefix (from option 1; the classful prefix when the server sent no mask).
    pub address: Ipv4Cidr,
    /// The first router of option 3.
    pub router: Option<Ipv4Addr>,
    pub dns_servers: Vec<Ipv4Addr>,
    /// The server that granted it (option 54).
    pub server: Ipv4Addr,
    /// Lease duration; `None` is infinite.
    pub duration: Option<Duration>,
    /// When the REQUEST that got it was sent: the lease's start.
    pub start: Instant,
    /// T1, T2 and the end; all `None` for an infinite lease.
    pub renew_at: Option<Instant>,
    pub rebind_at: Option<Instant>,
    pub expires_at: Option<Instant>,
    pub mtu: Option<u16>,
    pub domain_name: Option<String>,
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// 255.255.255.255, Ethernet broadcast.
    Broadcast,
    /// The server's address (renewal, release).
    Unicast(Ipv4Addr),
}

impl Destination {
    pub fn addr(self) -> Ipv4Addr {
        match self {
            Destination::Broadcast => Ipv4Addr::BROADCAST,
            Destination::Unicast(a) => a,
        }
    }
}

/// A message to send from `src`:68 to `dst`:67.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// 0.0.0.0 while the node has no address; the leased address when renewing or releasing.
    pub src: Ipv4Addr,
    pub dst: Destination,
    pub message: DhcpRepr,
}

/// Why a lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostReason {
    /// A server answered a renewal with DHCPNAK.
    Nak,
    /// The lease ran out while rebinding.
    Expired,
    /// [`Client::release`] was called.
    Released,
    /// A renewal was answered with a different address (which follows as [`Event::Bound`]).
    Replaced,
}

/// Something the driver should know or do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    StateChanged {
        from: State,
        to: State,
    },
    /// Probe this address (RFC 5227 §2.1: ARP probes from 0.0.0.0) and report with
    /// [`Client::handle_probe_result`].
    ProbeRequested {
        address: Ipv4Addr,
    },
    /// A new lease: configure the address, route and DNS servers.
    Bound(Lease),
    /// The same address, extended: new times, maybe new options.
    Renewed(Lease),
    /// The address is no longer ours: remove it.
    Lost {
        address: Ipv4Addr,
        reason: LostReason,
    },
    /// The server's address was in use (probe conflict); a DECLINE was sent.
    Declined {
        address: Ipv4Addr,
    },
    /// A NAK arrived while requesting (no lease was configured yet); restarting.
    Nak {
        message: Option<String>,
    },
}

/// What the driver says about the probe it was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeResult {
    /// Nobody answered the probes: the address is free.
    Free,
    /// Another host uses (or is probing) the address.
    Conflict,
}

/// Why a received message changed nothing (for the drop counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("not a server reply")]
    NotReply,
    #[error("transaction id or hardware address not ours")]
    NotOurs,
    #[error("not expected in this state")]
    Unexpected,
    #[error("a required option is missing or bad")]
    MissingOption,
}

/// The client. See the module docs for the calling order.
#[derive(Debug)]
pub struct Client {
    config: Config,
    state: State,
    xid: u32,
    /// When the current acquisition began (for `secs`).
    started: Instant,
    /// The next retransmission, state deadline or timer.
    timer: Option<Instant>,
    /// Sends of the current message.
    tries: u32,
    /// The offer being requested / the ACK being probed.
    offer: Option<DhcpRepr>,
    /// When the current REQUEST was first sent (a lease starts then).
    request_sent: Instant,
    lease: Option<Lease>,
    /// The lease an ACK granted, held while the driver probes its address.
    pending: Option<Lease>,
    transmits: Vec<Transmit>,
    events: Vec<Event>,
}

impl Client {
    /// A client in INIT that sends its first DISCOVER at `now` (call `handle_timeout` or just
    /// drain `poll_transmit`: the DISCOVER is queued here).
    pub fn new(config: Config, now: Instant, rng: &mut Rng) -> Client {
        let mut c = Client {
            config,
            state: State::Init,
            xid: 0,
            started: now,
            timer: None,
            tries: 0,
            offer: None,
            request_sent: now,
            lease: None,
            pending: None,
            transmits: Vec::new(),
            events: Vec::new(),
        };
        c.discover(now, rng);
        c
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.transmits.is_empty() {
            None
        } else {
            Some(self.transmits.remove(0))
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        }
    }

    /// When to call [`Client::handle_timeout`] next; `None` while waiting only on a probe, or
    /// for ever (released, infinite lease).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    fn set_state(&mut self, to: State) {
        if self.state != to {
            self.events.push(Event::StateChanged {
                from: self.state,
                to,
            });
            self.state = to;
        }
    }

    /// RFC 2131 §4.1: 4 s doubled per retransmission up to 64 s, ±1 s.
    fn backoff(&self, rng: &mut Rng) -> Duration {
        let shift = self.tries.saturating_sub(1).min(4);
        let base = (INITIAL_RETRANSMIT * (1u32 << shift)).min(MAX_RETRANSMIT);
        let jitter = Duration::from_micros(rng.below(2_000_001));
        base + jitter - Duration::from_secs(1)
    }

    fn base_message(&self, t: MessageType, now: Instant) -> DhcpRepr {
        let mut m = DhcpRepr::new(Op::Request, t, self.xid, self.config.mac);
        let secs = (now - self.started).as_secs();
        m.secs = u16::try_from(secs).unwrap_or(u16::MAX);
        let mut id = vec![1];
        id.extend_from_slice(&self.config.mac.0);
        m.client_id = Some(self.config.client_id.clone().unwrap_or(id));
        m
    }

    fn with_params(&self, mut m: DhcpRepr) -> DhcpRepr {
        m.parameter_request_list = Some(PARAMETERS.to_vec());
        m.max_message_size = Some(1500);
        m.host_name.clone_from(&self.config.host_name);
        m.lease_time = self.config.requested_lease;
        m
    }

    fn discover(&mut self, now: Instant, rng: &mut Rng) {
        self.xid = rng.next_u32();
        self.started = now;
        self.tries = 0;
        self.offer = None;
        self.set_state(State::Selecting);
        self.send_discover(now, rng);
    }

    fn send_discover(&mut self, now: Instant, rng: &mut Rng) {
        let mut m = self.with_params(self.base_message(MessageType::Discover, now));
        m.broadcast = true;
        m.requested_ip = self.config.requested_ip;
        self.transmits.push(Transmit {
            src: Ipv4Addr::UNSPECIFIED,
            dst: Destination::Broadcast,
            message: m,
        });
        self.tries += 1;
        self.timer = Some(now + self.backoff(rng));
    }

    fn send_request(&mut self, now: Instant, rng: &mut Rng) {
        let Some(offer) = &self.offer else { return };
        let mut m = self.with_params(self.base_message(MessageType::Request, now));
        m.broadcast = true;
        m.requested_ip = Some(offer.yiaddr);
        m.server_id = offer.server_id;
        if self.tries == 0 {
            self.request_sent = now;
        }
        self.transmits.push(Transmit {
            src: Ipv4Addr::UNSPECIFIED,
            dst: Destination::Broadcast,
            message: m,
        });
        self.tries += 1;
        self.timer = Some(now + self.backoff(rng));
    }

    /// A renewing (unicast) or rebinding (broadcast) REQUEST: ciaddr set, no server id or
    /// requested address (RFC 2131 §4.3.2 table).
    fn send_renewal(&mut self, now: Instant) {
        let Some(lease) = &self.lease else { return };
        let addr = lease.address.address();
        let server = lease.server;
        let deadline = match self.state {
            State::Renewing => lease.rebind_at,
            _ => lease.expires_at,
        };
        let mut m = self.with_params(self.base_message(MessageType::Request, now));
        m.ciaddr = addr;
        let dst = if self.state == State::Renewing {
            Destination::Unicast(server)
        } else {
            Destination::Broadcast
        };
        self.request_sent = now;
        self.transmits.push(Transmit {
            src: addr,
            dst,
            message: m,
        });
        self.timer = deadline.map(|d| {
            let half = (d - now) / 2;
            (now + half.max(MIN_RENEW_RETRANSMIT)).min(d)
        });
    }

    /// Feeds a DHCP message received on port 68.
    pub fn handle_message(
        &mut self,
        now: Instant,
        rng: &mut Rng,
        msg: &DhcpRepr,
    ) -> Result<(), Ignored> {
        if msg.op != Op::Reply {
            return Err(Ignored::NotReply);
        }
        if msg.xid != self.xid || msg.chaddr != self.config.mac {
            return Err(Ignored::NotOurs);
        }
        match (self.state, msg.message_type) {
            (State::Selecting, MessageType::Offer) => {
                if msg.server_id.is_none() || !usable(msg.yiaddr) {
                    return Err(Ignored::MissingOption);
                }
                // The first acceptable offer wins (RFC 2131 §4.4.1 lets the client choose).
                self.offer = Some(msg.clone());
                self.tries = 0;
                self.set_state(State::Requesting);
                self.send_request(now, rng);
                Ok(())
            }
            (State::Requesting, MessageType::Ack) => {
                let offered = self.offer.as_ref().map(|o| o.yiaddr);
                if offered != Some(msg.yiaddr) {
                    return Err(Ignored::Unexpected);
                }
                let lease = self.lease_from(msg).ok_or(Ignored::MissingOption)?;
                self.offer = Some(msg.clone());
                if self.config.probe {
                    self.timer = None;
                    self.lease = None;
                    self.pending = Some(lease);
                    self.set_state(State::Probing);
                    self.events.push(Event::ProbeRequested {
                        address: msg.yiaddr,
                    });
                } else {
                    self.bind(lease);
                }
                Ok(())
            }
            (State::Renewing | State::Rebinding, MessageType::Ack) => {
                let lease = self.lease_from(msg).ok_or(Ignored::MissingOption)?;
                let same = self
                    .lease
                    .as_ref()
                    .is_some_and(|l| l.address.address() == lease.address.address());
                if same {
                    self.lease = Some(lease.clone());
                    self.set_state(State::Bound);
                    self.timer = lease.renew_at;
                    self.events.push(Event::Renewed(lease));
                } else {
                    // A different address: drop the old one, then treat it as a new lease.
                    self.lose(LostReason::Replaced);
                    self.bind(lease);
                }
                Ok(())
            }
            (State::Requesting, MessageType::Nak) => {
                let message = msg
                    .message
                    .as_ref()
                    .map(|m| String::from_utf8_lossy(m).into_owned());
                self.events.push(Event::Nak { message });
                self.discover(now, rng);
                Ok(())
            }
            (State::Renewing | State::Rebinding, MessageType::Nak) => {
                self.lose(LostReason::Nak);
                self.discover(now, rng);
                Ok(())
            }
            _ => Err(Ignored::Unexpected),
        }
    }

    /// The lease an ACK grants, timed from the REQUEST; `None` if the ACK lacks what a lease
    /// needs (server id, a usable address, a lease time).
    fn lease_from(&self, ack: &DhcpRepr) -> Option<Lease> {
        let server = ack.server_id.or(self.lease.as_ref().map(|l| l.server))?;
        if !usable(ack.yiaddr) {
            return None;
        }
        let mut secs = ack.lease_time?;
        if let Some(max) = self.config.max_lease {
            secs = secs.min(max);
        }
        let prefix = match ack.subnet_mask {
            Some(m) => {
                let bits = u32::from(m);
                // A mask must be contiguous ones.
                if bits.leading_ones() + bits.trailing_zeros() != 32 {
                    return None;
                }
                bits.leading_ones() as u8
            }
            None => classful_prefix(ack.yiaddr),
        };
        let address = Ipv4Cidr::new(ack.yiaddr, prefix).ok()?;
        let start = self.request_sent;
        let (duration, renew_at, rebind_at, expires_at) = if secs == u32::MAX {
            (None, None, None, None)
        } else {
            let lease = Duration::from_secs(u64::from(secs));
            // RFC 2131 §4.4.5 defaults: T1 = 0.5, T2 = 0.875 of the lease; server values only
            // when they are ordered T1 < T2 < lease.
            let mut t1 = lease / 2;
            let mut t2 = lease * 7 / 8;
            if let (Some(a), Some(b)) = (ack.renewal_time, ack.rebinding_time) {
                if a < b && b < secs && self.config.max_lease.is_none_or(|m| secs < m) {
                    t1 = Duration::from_secs(u64::from(a));
                    t2 = Duration::from_secs(u64::from(b));
                }
            }
            (
                Some(lease),
                Some(start + t1),
                Some(start + t2),
                Some(start + lease),
            )
        };
        Some(Lease {
            address,
            router: ack.routers.first().copied(),
            dns_servers: ack.dns_servers.clone(),
            server,
            duration,
            start,
            renew_at,
            rebind_at,
            expires_at,
            mtu: ack.interface_mtu,
            domain_name: ack
                .domain_name
                .as_ref()
                .map(|d| String::from_utf8_lossy(d).into_owned()),
        })
    }

    fn bind(&mut self, lease: Lease) {
        self.timer = lease.renew_at;
        self.lease = Some(lease.clone());
        self.set_state(State::Bound);
        self.events.push(Event::Bound(lease));
    }

    fn lose(&mut self, reason: LostReason) {
        if let Some(l) = self.lease.take() {
            self.events.push(Event::Lost {
                address: l.address.address(),
                reason,
            });
        }
    }

    /// Reports the verdict of the probe asked for by [`Event::ProbeRequested`]. Ignored in any
    /// state but PROBING.
    pub fn handle_probe_result(&mut self, now: Instant, result: ProbeResult) {
        if self.state != State::Probing {
            return;
        }
        let Some(lease) = self.pending.take() else {
            return;
        };
        match result {
            ProbeResult::Free => self.bind(lease),
            ProbeResult::Conflict => {
                // RFC 2131 §4.4.1: DECLINE, broadcast, with the address and the server id.
                let address = lease.address.address();
                let mut m = self.base_message(MessageType::Decline, now);
                m.requested_ip = Some(address);
                m.server_id = Some(lease.server);
                m.parameter_request_list = None;
                self.transmits.push(Transmit {
                    src: Ipv4Addr::UNSPECIFIED,
                    dst: Destination::Broadcast,
                    message: m,
                });
                self.events.push(Event::Declined { address });
                self.offer = None;
                self.set_state(State::Init);
                self.timer = Some(now + DECLINE_BACKOFF);
            }
        }
    }

    /// Call when `now` has reached [`Client::poll_timeout`]; early calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut Rng) {
        let Some(at) = self.timer else { return };
        if now < at {
            return;
        }
        match self.state {
            State::Init => self.discover(now, rng),
            State::Selecting => self.send_discover(now, rng),
            State::Requesting => {
                if self.tries >= MAX_REQUEST_TRIES {
                    self.discover(now, rng);
                } else {
                    self.send_request(now, rng);
                }
            }
            State::Probing | State::Released => self.timer = None,
            State::Bound | State::Renewing | State::Rebinding => {
                let Some(l) = &self.lease else {
                    self.discover(now, rng);
                    return;
                };
                let (t1, t2, end) = (l.renew_at, l.rebind_at, l.expires_at);
                if end.is_some_and(|e| now >= e) {
                    self.lose(LostReason::Expired);
                    self.discover(now, rng);
                } else if t2.is_some_and(|t| now >= t) {
                    if self.state != State::Rebinding {
                        self.xid = rng.next_u32();
                        self.started = now;
                        self.set_state(State::Rebinding);
                    }
                    self.send_renewal(now);
                } else if t1.is_some_and(|t| now >= t) {
                    if self.state != State::Renewing {
                        self.xid = rng.next_u32();
                        self.started = now;
                        self.set_state(State::Renewing);
                    }
                    self.send_renewal(now);
                } else {
                    self.timer = t1;
                }
            }
        }
    }

    /// Gives the lease back (RFC 2131 §4.4.6: unicast RELEASE to the server, from the address)
    /// and stops. Without a lease it only stops.
    pub fn release(&mut self, now: Instant) {
        if let Some(l) = &self.lease {
            let mut m = self.base_message(MessageType::Release, now);
            m.ciaddr = l.address.address();
            m.server_id = Some(l.server);
            m.secs = 0;
            self.transmits.push(Transmit {
                src: l.address.address(),
                dst: Destination::Unicast(l.server),
                message: m,
            });
        }
        self.lose(LostReason::Released);
        self.pending = None;
        self.timer = None;
        self.set_state(State::Released);
    }
}

/// An address a server may hand out: not 0.0.0.0, broadcast, multicast or loopback.
fn usable(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
}

/// The prefix of the address's class (RFC 2131 does not require option 1; RFC 1122 §3.3.1.1
/// falls back to the class).
fn classful_prefix(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

#[cfg(test)]
mod tests;
