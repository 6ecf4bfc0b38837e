//! smoltcp as a second, independent TCP/IP implementation on the simulated segment: a
//! [`SmolNode`] is a smoltcp `Interface` with its `SocketSet`, driven by the network as a
//! [`Peer`] in the network's virtual time (smoltcp's `Instant` is the simulator's `now`, its
//! `poll_at` feeds the event queue, its TCP timestamps read the same clock).
//!
//! smoltcp is the peer, not the system under test: it is simpler (no SACK-based recovery, one
//! congestion controller) and offers window scaling in every SYN it sends (shift 0 for a receive
//! buffer below 64 KiB; its window field is then unscaled). Tests run the invariant monitor on
//! the tapir node and may turn it off for the smoltcp node ([`crate::Network::set_monitored`]).
//!
//! [`run_mixed`] is the bulk-transfer scenario of [`crate::transfer`] between any two nodes,
//! tapir or smoltcp, client or server: byte-exact both ways, idle check before the close, both
//! sides closed cleanly.

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::net::SocketAddrV4;

use protocols::time::{Duration, Instant};
use protocols::wire::EthernetAddress;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint};

use crate::network::Peer;

/// How a smoltcp node's TCP sockets are set up.
#[derive(Debug, Clone, PartialEq)]
pub struct SmolOptions {
    /// Receive buffer bytes; its size sets smoltcp's window shift (0 below 64 KiB).
    pub rx_buffer: usize,
    pub tx_buffer: usize,
    /// Delayed ACK (smoltcp's default: 10 ms; None: every segment acknowledged at once).
    pub ack_delay: Option<Duration>,
    pub nagle: bool,
    /// RFC 7323 timestamps (off in smoltcp by default).
    pub timestamps: bool,
    pub keepalive: Option<Duration>,
}

impl Default for SmolOptions {
    fn default() -> Self {
        SmolOptions {
            rx_buffer: 64 * 1024 - 1,
            tx_buffer: 64 * 1024,
            ack_delay: Some(Duration::from_millis(10)),
            nagle: true,
            timestamps: false,
            keepalive: None,
        }
    }
}

thread_local! {
    /// The virtual clock in milliseconds, for smoltcp's timestamp generator (a plain `fn`).
    static NOW_MS: Cell<u32> = const { Cell::new(0) };
}

fn tsval() -> u32 {
    NOW_MS.with(|c| c.get())
}

fn smol_instant(now: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(now.total_micros() as i64)
}

fn smol_duration(d: Duration) -> smoltcp::time::Duration {
    smoltcp::time::Duration::from_micros(d.as_micros() as u64)
}

/// Frames in and out of the interface.
#[derive(Default)]
struct Pipe {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut Vec<Vec<u8>>);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.0.push(frame);
        r
    }
}

impl Device for Pipe {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(
        &mut self,
        _: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((Rx(frame), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// A smoltcp host on the segment.
pub struct SmolNode {
    mac: EthernetAddress,
    addr: std::net::Ipv4Addr,
    iface: Interface,
    sockets: SocketSet<'static>,
    pipe: Pipe,
    options: SmolOptions,
    next_poll: Option<Instant>,
}

impl SmolNode {
    /// Host `n` of the segment (10.0.0.n/24, MAC 02:00:00:00:00:n), as [`crate::Network::add_host`]
    /// numbers tapir hosts.
    pub fn new(n: u8, seed: u64, now: Instant, options: SmolOptions) -> Self {
        let mac = crate::host_mac(n);
        let mut config = Config::new(HardwareAddress::Ethernet(smoltcp::wire::EthernetAddress(
            mac.0,
        )));
        config.random_seed = seed;
        let mut pipe = Pipe::default();
        let mut iface = Interface::new(config, &mut pipe, smol_instant(now));
        let addr = std::net::Ipv4Addr::new(10, 0, 0, n);
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(addr), 24));
        });
        SmolNode {
            mac,
            addr,
            iface,
            sockets: SocketSet::new(Vec::new()),
            pipe,
            options,
            next_poll: None,
        }
    }

    pub fn address(&self) -> std::net::Ipv4Addr {
        self.addr
    }

    pub fn options(&self) -> &SmolOptions {
        &self.options
    }

    fn new_socket(&mut self) -> tcp::Socket<'static> {
        let o = &self.options;
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0u8; o.rx_buffer]),
            tcp::SocketBuffer::new(vec![0u8; o.tx_buffer]),
        );
        s.set_ack_delay(o.ack_delay.map(smol_duration));
        s.set_nagle_enabled(o.nagle);
        s.set_keep_alive(o.keepalive.map(smol_duration));
        s.set_tsval_generator(if o.timestamps { Some(tsval) } else { None });
        s
    }

    /// A socket listening on `port`; it becomes the connection once a SYN arrives.
    pub fn listen(&mut self, port: u16) -> Result<SocketHandle, tcp::ListenError> {
        let mut s = self.new_socket();
        s.listen(port)?;
        Ok(self.sockets.add(s))
    }

    /// Opens a connection from `local_port` to `remote`.
    pub fn connect(
        &mut self,
        remote: SocketAddrV4,
        local_port: u16,
    ) -> Result<SocketHandle, tcp::ConnectError> {
        let mut s = self.new_socket();
        let ep = IpEndpoint::new(IpAddress::Ipv4(*remote.ip()), remote.port());
        s.connect(self.iface.context(), ep, local_port)?;
        Ok(self.sockets.add(s))
    }

    pub fn socket(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut(h)
    }

    pub fn socket_ref(&self, h: SocketHandle) -> &tcp::Socket<'static> {
        self.sockets.get(h)
    }

    fn run(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        NOW_MS.with(|c| c.set(now.total_millis() as u32));
        let t = smol_instant(now);
        let _ = self.iface.poll(t, &mut self.pipe, &mut self.sockets);
        out.append(&mut self.pipe.tx);
        self.next_poll = self
            .iface
            .poll_at(t, &self.sockets)
            .map(|at| Instant::from_micros(at.total_micros().max(0) as u64));
    }
}

impl Peer for SmolNode {
    fn mac(&self) -> EthernetAddress {
        self.mac
    }

    fn receive(&mut self, now: Instant, frame: &[u8], out: &mut Vec<Vec<u8>>) {
        self.pipe.rx.push_back(frame.to_vec());
        self.run(now, out);
    }

    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        self.run(now, out);
    }

    fn poll_at(&self) -> Option<Instant> {
        self.next_poll
    }

    fn keepalive(&self) -> Option<Duration> {
        self.options.keepalive
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
