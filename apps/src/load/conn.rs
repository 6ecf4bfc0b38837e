//! One load connection's own state and I/O: the requests it has outstanding, what it has not
//! yet handed to the stack, its response reader and (HTTPS) its TLS session. What the run
//! does with a connection (when to send, how it ends, what is counted) is the app's
//! ([`super::client`]).

use std::collections::VecDeque;

use protocols::iface::{SocketHandle, Stack};

use super::report::ErrorKind;
use super::response::{Event, Reader};
use super::tls;

/// A request sent or due: which of the plan's requests, the instant its latency counts from
/// (when sent, closed loop; when due, open loop), and whether it is already being sent the
/// second time.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    pub req: u32,
    pub since: u64,
    /// When it went out (last), for the uncorrected latency.
    pub sent: u64,
    pub retried: bool,
}

#[derive(Debug, Default)]
pub struct Conn {
    pub established: bool,
    /// HTTPS: the connection's TLS session, and whether its handshake is done (counted).
    pub tls: Option<Box<rustls::ClientConnection>>,
    pub handshaken: bool,
    pub opened_us: u64,
    /// The requests outstanding, oldest first.
    pub inflight: VecDeque<Pending>,
    /// Requests queued but not yet taken whole by the stack, and how much of the first was.
    pub unsent: VecDeque<u32>,
    pub unsent_off: usize,
    pub reader: Reader,
    pub last_progress_us: u64,
    /// Responses completed on this connection.
    pub completed: u64,
    /// On the open loop's idle list.
    pub idle: bool,
}

/// Read buffers every connection of a worker shares.
#[derive(Debug)]
pub struct IoBufs {
    buf: Vec<u8>,
    /// HTTPS: the plaintext of what was read, kept for its capacity.
    plain: Vec<u8>,
}

impl Default for IoBufs {
    fn default() -> Self {
        IoBufs {
            buf: vec![0; 64 * 1024],
            plain: Vec::new(),
        }
    }
}

/// What one [`Conn::read`] found.
pub struct Readout {
    pub events: Vec<Event>,
    /// The peer closed its side.
    pub eof: bool,
    /// Bytes read off the connection.
    pub bytes: u64,
    /// HTTPS: the handshake just completed (`true`: it resumed a session).
    pub handshake: Option<bool>,
}

impl Conn {
    pub fn new(now: u64, tls: Option<Box<rustls::ClientConnection>>) -> Conn {
        Conn {
            opened_us: now,
            last_progress_us: now,
            tls,
            ..Conn::default()
        }
    }

    /// Queues request `p` (of `reqs`) and hands the stack what it takes of it.
    pub fn queue(
        &mut self,
        stack: &mut Stack,
        h: SocketHandle,
        reqs: &[Vec<u8>],
        mut p: Pending,
        now: u64,
    ) {
        p.sent = now;
        self.inflight.push_back(p);
        match self.tls.as_mut() {
            // Held by rustls until the handshake is done.
            Some(t) => tls::write(t, &reqs[p.req as usize]),
            None => self.unsent.push_back(p.req),
        }
        self.flush(stack, h, reqs);
    }

    /// Hands the stack as much of the queued bytes (requests, TLS records) as it takes.
    pub fn flush(&mut self, stack: &mut Stack, h: SocketHandle, reqs: &[Vec<u8>]) {
        if let Some(t) = self.tls.as_mut() {
            tls::flush(t, stack, h);
            return;
        }
        while let Some(&i) = self.unsent.front() {
            let req = &reqs[i as usize];
            match stack.tcp_send(h, &req[self.unsent_off..]) {
                Ok(n) if n > 0 => {
                    self.unsent_off += n;
                    if self.unsent_off == req.len() {
                        self.unsent.pop_front();
                        self.unsent_off = 0;
                    }
                }
                _ => break,
            }
        }
    }

    /// Reads all there is (to the end of the stream), through TLS with HTTPS; `head`: the
    /// requests are HEAD.
    pub fn read(
        &mut self,
        stack: &mut Stack,
        h: SocketHandle,
        bufs: &mut IoBufs,
        head: bool,
        now: u64,
    ) -> Readout {
        let mut out = Readout {
            events: Vec::new(),
            eof: false,
            bytes: 0,
            handshake: None,
        };
        let mut tls_failed = false;
        loop {
            let n = match stack.tcp_recv(h, &mut bufs.buf) {
                Ok(0) => {
                    out.eof = true;
                    0
                }
                Ok(n) => n,
                Err(_) => break,
            };
            out.bytes += n as u64;
            self.last_progress_us = now;
            let data = &bufs.buf[..n];
            match self.tls.as_mut() {
                Some(t) => {
                    bufs.plain.clear();
                    tls_failed |= tls::read(t, data, &mut bufs.plain).is_err();
                    self.reader.feed(&bufs.plain, head, &mut out.events);
                }
                None => self.reader.feed(data, head, &mut out.events),
            }
            if out.eof || tls_failed {
                break;
            }
        }
        if let Some(t) = self.tls.as_mut() {
            if !self.handshaken && !t.is_handshaking() {
                self.handshaken = true;
                out.handshake = Some(t.handshake_kind() == Some(rustls::HandshakeKind::Resumed));
            }
            // Requests held for the handshake, and rustls's own replies.
            tls::flush(t, stack, h);
        }
        if tls_failed {
            out.events.push(Event::Bad(ErrorKind::Tls));
        } else if out.eof {
            self.reader.eof(&mut out.events);
        }
        out
    }
}
