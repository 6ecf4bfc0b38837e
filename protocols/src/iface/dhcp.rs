//! The node side of DHCP: drives the sans-IO [`crate::dhcp::Client`] from inside the stack, so
//! that a device driver needs nothing beyond `receive` / `poll` / `poll_at`.
//!
//! This module owns: the client's UDP port 68 (replies are taken here, before the socket
//! table), sending its messages from port 68 to port 67 (from 0.0.0.0 to 255.255.255.255 while
//! the node has no address), the RFC 5227 probe the client asks for (ARP probes from 0.0.0.0;
//! any ARP packet that claims the address, or another host's probe for it, is a conflict), and
//! applying the lease to the stack's configuration: address and prefix, router as gateway, MTU
//! bounded by the configured one. Renewal, rebinding, NAK and expiry change the address on the
//! fly; TCP connections made on a lost address are not moved (they fail as their peers stop
//! answering).
//!
//! Simplifications, on purpose for now: one announcement after binding (RFC 5227 §2.3 asks for
//! two, 2 s apart); no defence of the address once bound (§2.4: a conflicting ARP while bound
//! is ignored); no INIT-REBOOT with a remembered address (the client may ask for one through
//! `Config::requested_ip`).
//!
//! It must never: send from an address it does not hold (other than 0.0.0.0 while acquiring),
//! keep an address after the client lost it, or raise the MTU above the configured one.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use super::counters::DropReason;
use super::egress::emit_ipv4;
use super::{Sink, Stack};
use crate::dhcp::{Client, Event, Lease, LostReason, ProbeResult, State, Transmit};
use crate::time::{Duration, Instant};
use crate::wire::dhcp::{DhcpPacket, DhcpRepr};
use crate::wire::{IpProtocol, Ipv4Cidr, UdpPacket, UdpRepr};

/// The client's port and the servers' (RFC 2131 §4.1).
pub const CLIENT_PORT: u16 = 68;
pub const SERVER_PORT: u16 = 67;

/// RFC 5227 §1.1 timing constants.
pub const PROBE_WAIT: Duration = Duration::from_secs(1);
pub const PROBE_NUM: u32 = 3;
pub const PROBE_MIN: Duration = Duration::from_secs(1);
pub const PROBE_MAX: Duration = Duration::from_secs(2);
pub const ANNOUNCE_WAIT: Duration = Duration::from_secs(2);

/// Entries kept in the DHCP log that `dhcp` in the shell prints.
const LOG_LEN: usize = 32;

/// Something that happened to the node's lease, with when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpLogEntry {
    pub at: Instant,
    pub event: Event,
}

/// An RFC 5227 probe in progress.
#[derive(Debug, Clone, Copy)]
struct Probe {
    address: Ipv4Addr,
    /// Probes sent so far.
    sent: u32,
    /// The next probe, or (after the last one) the verdict.
    next_at: Instant,
}

/// What the stack holds for DHCP.
#[derive(Debug)]
pub(super) struct DhcpDriver {
    settings: crate::dhcp::Config,
    client: Option<Client>,
    probe: Option<Probe>,
    tx: VecDeque<Transmit>,
    log: VecDeque<DhcpLogEntry>,
    /// The configured values a lease overrides, restored when it is lost.
    base_gateway: Option<Ipv4Addr>,
    base_mtu: usize,
    base_mss: u16,
    /// Drop the address once the queued RELEASE has been sent.
    unconfigure_after_flush: bool,
    /// The server a RELEASE was sent to (for the engine to wait until it left).
    released_to: Option<Ipv4Addr>,
}

/// The address a node without a lease holds: 0.0.0.0/32, so that nothing but the limited
/// broadcast is on-link. (`fallback` is never used: the prefix is valid.)
pub(super) fn unconfigured(fallback: Ipv4Cidr) -> Ipv4Cidr {
    Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 32).unwrap_or(fallback)
}

impl DhcpDriver {
    pub fn new(
        settings: crate::dhcp::Config,
        base_gateway: Option<Ipv4Addr>,
        base_mtu: usize,
        base_mss: u16,
    ) -> Self {
        DhcpDriver {
            settings,
            client: None,
            probe: None,
            tx: VecDeque::new(),
            log: VecDeque::new(),
            base_gateway,
            base_mtu,
            base_mss,
            unconfigure_after_flush: false,
            released_to: None,
        }
    }

    /// When the stack has DHCP work.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.client.is_none() || !self.tx.is_empty() {
            return Some(Instant::ZERO);
        }
        let client = self.client.as_ref().and_then(|c| c.poll_timeout());
        let probe = self.probe.map(|p| p.next_at);
        [client, probe].into_iter().flatten().min()
    }
}

/// True when `body` (an IPv4 payload) is a UDP datagram to the DHCP client port.
pub(super) fn is_dhcp_reply(protocol: IpProtocol, body: &[u8]) -> bool {
    protocol == IpProtocol::Udp
        && UdpPacket::new_checked(body).is_ok_and(|p| p.dst_port() == CLIENT_PORT)
}

impl Stack {
    /// The DHCP client's state; `None` when the stack was configured without DHCP or has not
    /// started yet.
    pub fn dhcp_state(&self) -> Option<State> {
        self.dhcp.as_ref()?.client.as_ref().map(|c| c.state())
    }

    /// The lease in use, if any.
    pub fn dhcp_lease(&self) -> Option<&Lease> {
        self.dhcp.as_ref()?.client.as_ref()?.lease()
    }

    /// Recent lease events, oldest first.
    pub fn dhcp_log(&self) -> impl Iterator<Item = &DhcpLogEntry> {
        self.dhcp.iter().flat_map(|d| d.log.iter())
    }

    /// Gives the lease back (RFC 2131 §4.4.6): a RELEASE goes out at the next `poll`, then the
    /// address is dropped. Returns the server it goes to, `None` when there was no lease. Call
    /// on clean exit, then poll until [`Stack::dhcp_release_sent`].
    pub fn dhcp_release(&mut self, now: Instant) -> Option<Ipv4Addr> {
        let d = self.dhcp.as_mut()?;
        let client = d.client.as_mut()?;
        let server = client.lease().map(|l| l.server);
        client.release(now);
        d.probe = None;
        d.released_to = server;
        self.dhcp_drain(now);
        server
    }

    /// True once a RELEASE queued by [`Stack::dhcp_release`] has left the stack (it is not
    /// waiting in the DHCP queue nor for the server's ARP reply).
    pub fn dhcp_release_sent(&self) -> bool {
        let Some(d) = &self.dhcp else { return true };
        d.tx.is_empty() && d.released_to.is_none_or(|s| !self.arp.is_pending(s))
    }

    /// Creates the client on first use (the stack has no clock until `start` or `poll`).
    pub(super) fn dhcp_start(&mut self, now: Instant) {
        let Some(d) = self.dhcp.as_mut() else { return };
        if d.client.is_some() {
            return;
        }
        let mut settings = d.settings.clone();
        settings.mac = self.config.mac;
        d.client = Some(Client::new(settings, now, &mut self.rng));
        self.dhcp_drain(now);
    }

    /// A UDP datagram to port 68 (already checksum-verified by the caller).
    pub(super) fn receive_dhcp(&mut self, now: Instant, payload: &[u8]) {
        let Some(client) = self.dhcp.as_mut().and_then(|d| d.client.as_mut()) else {
            return self.counters.drop(DropReason::DhcpIgnored);
        };
        let msg = match DhcpPacket::new_checked(payload).and_then(|p| DhcpRepr::parse(&p)) {
            Ok(m) => m,
            Err(_) => return self.counters.drop(DropReason::DhcpMalformed),
        };
        self.counters.dhcp_received += 1;
        if client.handle_message(now, &mut self.rng, &msg).is_err() {
            self.counters.drop(DropReason::DhcpIgnored);
        }
        self.dhcp_drain(now);
    }

    /// An ARP packet seen while probing: a conflict if anyone claims the address or probes it
    /// too (RFC 5227 §2.1.1).
    pub(super) fn dhcp_check_arp(
        &mut self,
        now: Instant,
        sender: Ipv4Addr,
        target: Ipv4Addr,
        sender_mac: crate::wire::EthernetAddress,
        is_request: bool,
    ) {
        let Some(d) = self.dhcp.as_mut() else { return };
        let Some(p) = d.probe else { return };
        if sender_mac == self.config.mac {
            return;
        }
        let claims = sender == p.address;
        let probes = is_request && sender.is_unspecified() && target == p.address;
        if claims || probes {
            d.probe = None;
            self.counters.dhcp_conflicts += 1;
            if let Some(c) = d.client.as_mut() {
                c.handle_probe_result(now, ProbeResult::Conflict);
            }
            self.dhcp_drain(now);
        }
    }

    /// Timers, probes and queued messages.
    pub(super) fn poll_dhcp(&mut self, now: Instant, sink: &mut impl Sink) {
        if self.dhcp.is_none() {
            return;
        }
        self.dhcp_start(now);
        let mut probe_now = None;
        if let Some(d) = self.dhcp.as_mut() {
            if let Some(c) = d.client.as_mut() {
                if c.poll_timeout().is_some_and(|t| t <= now) {
                    c.handle_timeout(now, &mut self.rng);
                }
            }
            if let Some(p) = d.probe.as_mut() {
                if p.next_at <= now {
                    if p.sent < PROBE_NUM {
                        p.sent += 1;
                        probe_now = Some(p.address);
                        p.next_at = if p.sent < PROBE_NUM {
                            let span = (PROBE_MAX - PROBE_MIN).as_micros() as u64;
                            now + PROBE_MIN + Duration::from_micros(self.rng.below(span + 1))
                        } else {
                            now + ANNOUNCE_WAIT
                        };
                    } else {
                        d.probe = None;
                        if let Some(c) = d.client.as_mut() {
                            c.handle_probe_result(now, ProbeResult::Free);
                        }
                    }
                }
            }
        }
        if let Some(addr) = probe_now {
            // Sent from 0.0.0.0: the node holds no address while probing.
            self.counters.dhcp_probes_sent += 1;
            self.send_arp_request_for(addr, sink);
        }
        self.dhcp_drain(now);
        self.flush_dhcp(now, sink);
    }

    /// Takes the client's transmits into the queue and acts on its events.
    fn dhcp_drain(&mut self, now: Instant) {
        let Some(d) = self.dhcp.as_mut() else { return };
        let Some(c) = d.client.as_mut() else { return };
        while let Some(t) = c.poll_transmit() {
            d.tx.push_back(t);
        }
        let mut events = Vec::new();
        while let Some(e) = c.poll_event() {
            events.push(e);
        }
        for e in events {
            self.dhcp_apply(now, &e);
            if let Some(d) = self.dhcp.as_mut() {
                if d.log.len() >= LOG_LEN {
                    d.log.pop_front();
                }
                d.log.push_back(DhcpLogEntry { at: now, event: e });
            }
            self.news.push_all();
        }
    }

    fn dhcp_apply(&mut self, now: Instant, e: &Event) {
        match e {
            Event::ProbeRequested { address } => {
                let wait = Duration::from_micros(self.rng.below(PROBE_WAIT.as_micros() as u64 + 1));
                if let Some(d) = self.dhcp.as_mut() {
                    d.probe = Some(Probe {
                        address: *address,
                        sent: 0,
                        next_at: now + wait,
                    });
                }
            }
            Event::Bound(lease) => {
                self.counters.dhcp_bound += 1;
                self.apply_lease(lease);
                // RFC 5227 §2.3: announce the address we now hold.
                self.dhcp_announce = true;
            }
            Event::Renewed(lease) => {
                self.counters.dhcp_renewed += 1;
                self.apply_lease(lease);
            }
            Event::Lost { reason, .. } => {
                self.counters.dhcp_lost += 1;
                if *reason == LostReason::Released {
                    if let Some(d) = self.dhcp.as_mut() {
                        d.unconfigure_after_flush = true;
                    }
                } else {
                    self.unconfigure();
                }
            }
            Event::Declined { .. } => self.counters.dhcp_declined += 1,
            Event::Nak { .. } => self.counters.dhcp_naks += 1,
            Event::StateChanged { .. } => {}
        }
    }

    fn apply_lease(&mut self, lease: &Lease) {
        let Some(d) = self.dhcp.as_ref() else { return };
        let (base_gw, base_mtu, base_mss) = (d.base_gateway, d.base_mtu, d.base_mss);
        self.config.cidr = lease.address;
        self.config.gateway = lease.router.or(base_gw);
        // RFC 2132 §5.1: the MTU option is at least 68; we never go below 576 nor above ours.
        let mtu = lease
            .mtu
            .map_or(base_mtu, |m| usize::from(m).clamp(576, base_mtu));
        self.config.mtu = mtu.min(base_mtu);
        self.config.tcp.mss = base_mss.min(self.config.mss());
    }

    fn unconfigure(&mut self) {
        let Some(d) = self.dhcp.as_ref() else { return };
        self.config.cidr = unconfigured(self.config.cidr);
        self.config.gateway = d.base_gateway;
        self.config.mtu = d.base_mtu;
        self.config.tcp.mss = d.base_mss.min(self.config.mss());
    }

    /// Sends the queued DHCP messages from port 68 to port 67.
    fn flush_dhcp(&mut self, now: Instant, sink: &mut impl Sink) {
        if std::mem::take(&mut self.dhcp_announce) {
            let me = self.address();
            self.send_arp_request_for(me, sink);
        }
        let csum = self.config.tx_checksum;
        let ttl = self.config.ttl;
        while let Some(t) = self.dhcp.as_mut().and_then(|d| d.tx.pop_front()) {
            let bytes = t.message.to_bytes();
            let (src, dst) = (t.src, t.dst.addr());
            let repr = UdpRepr {
                src_port: CLIENT_PORT,
                dst_port: SERVER_PORT,
            };
            self.counters.dhcp_sent += 1;
            let mut eg = self.egress();
            let ident = eg.next_ident();
            eg.send_ipv4(now, sink, dst, |buf| {
                let udp_len = 8 + bytes.len();
                let Some(seg) = buf.get_mut(20..20 + udp_len) else {
                    return 0;
                };
                crate::wire::bytes::copy(crate::wire::bytes::get_mut(seg, 8..), &bytes);
                repr.emit(
                    &mut UdpPacket::new_unchecked(seg),
                    src,
                    dst,
                    bytes.len(),
                    csum,
                );
                emit_ipv4(buf, src, dst, IpProtocol::Udp, udp_len, ident, ttl)
            });
        }
        if let Some(d) = self.dhcp.as_mut() {
            if std::mem::take(&mut d.unconfigure_after_flush) {
                self.unconfigure();
            }
        }
    }
}

#[cfg(test)]
#[path = "dhcp_tests.rs"]
mod tests;
