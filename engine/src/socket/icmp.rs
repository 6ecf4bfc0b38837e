//! `IcmpSocket`: ICMP echo, for ping.

use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

use protocols::iface::{EchoReply, IcmpErrorReport, SocketHandle};

use super::{deadline, timed_out};
use crate::node::Node;

/// An echo socket: sends echo requests with its own identifier and receives the replies that
/// carry it, whichever worker they arrive on.
pub struct IcmpSocket {
    node: Node,
    ident: u16,
    handles: Vec<SocketHandle>,
}

impl IcmpSocket {
    /// Opens an echo socket with a random identifier.
    pub fn bind(node: &Node) -> io::Result<IcmpSocket> {
        let ident = node.random_u64() as u16;
        let handles = (0..node.queues())
            .map(|w| node.with_stack(w, |s, _| s.icmp().bind(ident)))
            .collect();
        Ok(IcmpSocket {
            node: node.clone(),
            ident,
            handles,
        })
    }

    pub fn ident(&self) -> u16 {
        self.ident
    }

    /// Whether requests ask for the route they take (an IPv4 record route option, `ping
    /// -R`); each reply's `route` holds what was recorded.
    pub fn set_record_route(&self, on: bool) {
        for (w, &h) in self.handles.iter().enumerate() {
            self.node
                .with_stack(w, |s, _| s.icmp().set_record_route(h, on));
        }
    }

    /// Queues an echo request.
    pub fn send_echo(
        &self,
        dst: Ipv4Addr,
        seq_no: u16,
        ttl: Option<u8>,
        data: &[u8],
    ) -> io::Result<()> {
        let h = self.handles[0];
        if self
            .node
            .with_stack(0, |s, _| s.icmp().send_echo(h, dst, seq_no, ttl, data))
        {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "echo send queue full",
            ))
        }
    }

    /// The next echo reply, waiting at most `timeout`. Its `at` is on the node's clock
    /// ([`Node::now`]).
    pub fn recv_echo(&self, timeout: Option<Duration>) -> io::Result<EchoReply> {
        super::recv_any(
            &self.node,
            &self.handles,
            protocols::iface::Wake::Icmp,
            deadline(timeout),
            timed_out,
            |s, h| Ok::<_, std::convert::Infallible>(s.icmp().recv(h)),
            |e| match e {},
        )
    }
}

/// What an echo socket received: a reply, or an ICMP error about one of its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IcmpEvent {
    Reply(EchoReply),
    Error(IcmpErrorReport),
}

impl IcmpSocket {
    /// The next echo reply or ICMP error about a request of this socket, waiting at most
    /// `timeout` (traceroute -I).
    pub fn recv_event(&self, timeout: Option<Duration>) -> io::Result<IcmpEvent> {
        super::recv_any(
            &self.node,
            &self.handles,
            protocols::iface::Wake::Icmp,
            deadline(timeout),
            timed_out,
            |s, h| {
                Ok::<_, std::convert::Infallible>(
                    s.icmp()
                        .recv(h)
                        .map(IcmpEvent::Reply)
                        .or_else(|| s.icmp().recv_error(h).map(IcmpEvent::Error)),
                )
            },
            |e| match e {},
        )
    }
}

impl Drop for IcmpSocket {
    fn drop(&mut self) {
        for (w, &h) in self.handles.iter().enumerate() {
            self.node.with_stack(w, |s, _| s.icmp().close(h));
        }
    }
}
