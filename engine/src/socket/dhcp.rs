//! The node's DHCP lease, as applications see it. The client itself runs inside worker 0's
//! stack (`protocols::iface`); this module only reads it, waits for it and releases it.
//!
//! Only worker 0 runs a DHCP client; the other workers take its addressing whenever it
//! changes (engine/src/worker/mod.rs, `LeaseShare`), and frames for the client's port are steered
//! to worker 0.

use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

use protocols::dhcp::{Lease, State};
use protocols::iface::DhcpLogEntry;
use protocols::wire::Ipv4Cidr;

use super::{deadline, timed_out};
use crate::news::Interest;
use crate::node::Node;

impl Node {
    /// The address and subnet the node holds now (from DHCP when configured; 0.0.0.0/32
    /// before a lease).
    pub fn cidr(&self) -> Ipv4Cidr {
        self.with_stack(0, |s, _| s.cidr())
    }

    /// The node's address now: the configured one, or with DHCP the lease's (0.0.0.0 before
    /// one). Takes no lock without DHCP.
    pub fn current_address(&self) -> Ipv4Addr {
        if self.config().stack.dhcp {
            self.cidr().address()
        } else {
            self.address()
        }
    }

    /// The gateway in use now (the lease's router with DHCP).
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.with_stack(0, |s, _| s.config().gateway)
    }

    /// The IP MTU in use now (a lease may lower the configured one).
    pub fn mtu(&self) -> usize {
        self.with_stack(0, |s, _| s.config().mtu)
    }

    /// The DHCP client's state; `None` without DHCP.
    pub fn dhcp_state(&self) -> Option<State> {
        self.with_stack(0, |s, _| s.dhcp_state())
    }

    /// The lease in use, if any.
    pub fn dhcp_lease(&self) -> Option<Lease> {
        self.with_stack(0, |s, _| s.dhcp_lease().cloned())
    }

    /// Recent lease events, oldest first.
    pub fn dhcp_log(&self) -> Vec<DhcpLogEntry> {
        self.with_stack(0, |s, _| s.dhcp_log().cloned().collect())
    }

    /// Waits until the DHCP client holds a lease, at most `timeout`.
    pub fn wait_for_lease(&self, timeout: Duration) -> io::Result<Lease> {
        if !self.config().stack.dhcp {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the node was not configured for DHCP",
            ));
        }
        let until = deadline(Some(timeout));
        // Worker 0 runs the DHCP client; its events are news for everyone.
        self.block_on(
            Interest::One(0, None),
            until,
            None,
            || Ok(self.dhcp_lease()),
        )?
        .ok_or_else(timed_out)
    }

    /// Gives the lease back (RFC 2131 §4.4.6) and waits, at most `timeout`, until the RELEASE
    /// has left the node. Returns the server it went to (`None`: there was no lease). Call it
    /// before [`Node::shutdown`]; shutdown alone does not release.
    pub fn dhcp_release(&self, timeout: Duration) -> Option<Ipv4Addr> {
        let server = self.with_stack(0, |s, now| s.dhcp_release(now))?;
        let until = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < until && !self.is_stopped() {
            if self.with_stack(0, |s, _| s.dhcp_release_sent()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(server)
    }
}
