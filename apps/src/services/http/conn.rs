//! One HTTP connection on a worker: the bytes read but not yet parsed, the responses queued in
//! request order (pipelining), and what to do when the socket has news. Everything runs inside
//! the worker's poll; nothing here waits.

use std::collections::VecDeque;
use std::net::SocketAddrV4;

use protocols::iface::{SocketHandle, Stack, TcpError};

use super::chunked::{ChunkError, Decoder};
use super::log::{AccessLog, Logged};
use super::request::{self, Framing, Head, Request, MAX_HEAD};
use super::response::Response;
use super::send::{Outgoing, SendFail};
use super::tls::Transport;
use super::Responder;

/// Responses queued on one connection before it reads further requests: a client that
/// pipelines without reading its answers is held back by TCP's window, not by our memory.
const MAX_QUEUED: usize = 16;

/// What the connection needs after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Still open: wait for news.
    Open,
    /// Every response has gone into the socket and no more will come: close gracefully.
    Close,
    /// Broken (the peer reset, a file could not be sent whole): reset it.
    Abort,
}

/// RFC 9110 §15.2.1: the interim answer that asks for the body.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What the front of the unparsed input is.
enum Incoming {
    Head,
    /// A body of this many more bytes.
    Length(u64),
    Chunked(Decoder),
}

/// An answer ready to go once its request's body has been read.
struct Held {
    out: Outgoing,
    keep: bool,
    logged: Logged,
}

pub struct Conn {
    pub peer: SocketAddrV4,
    /// Plain, or TLS for HTTPS.
    pub transport: Transport,
    /// Received bytes; `input[start..]` not parsed yet.
    input: Vec<u8>,
    start: usize,
    /// What the bytes at `input[start..]` are: a request head or a body being thrown away.
    incoming: Incoming,
    /// The answer to a request whose body is still being read.
    held: Option<Held>,
    out: VecDeque<Outgoing>,
    /// No more requests will be read: close once `out` drains.
    closing: bool,
    /// The peer sent its FIN.
    eof: bool,
    /// The server is draining: no request after the one being read is taken.
    draining: bool,
    /// When the connection last moved bytes either way (µs), for the idle and stall timeouts.
    pub last_progress_us: u64,
}

impl Conn {
    pub fn new(peer: SocketAddrV4, now_us: u64, transport: Transport) -> Conn {
        Conn {
            peer,
            transport,
            input: Vec::new(),
            start: 0,
            incoming: Incoming::Head,
            held: None,
            out: VecDeque::new(),
            closing: false,
            eof: false,
            draining: false,
            last_progress_us: now_us,
        }
    }

    /// Takes no further request: the answers queued (and one whose body is being read) go,
    /// then the connection closes.
    pub fn drain(&mut self) {
        self.draining = true;
        if self.held.is_none() && matches!(self.incoming, Incoming::Head) {
            self.closing = true;
        }
    }

    /// Responses are waiting for the socket to take them.
    pub fn sending(&self) -> bool {
        !self.out.is_empty() || self.transport.pending()
    }

    /// Moves everything that can move: output into the socket, complete requests into
    /// responses, received bytes into the input, until nothing changes.
    pub fn drive(
        &mut self,
        stack: &mut Stack,
        h: SocketHandle,
        now_us: u64,
        site: &mut Responder<'_>,
        log: &mut AccessLog,
        scratch: &mut [u8],
    ) -> Verdict {
        loop {
            let mut moved = false;
            if self.transport.flush(stack, h).is_err() {
                return Verdict::Abort;
            }
            while let Some(o) = self.out.front_mut() {
                match o.write(stack, h, &mut self.transport) {
                    Ok(n) => moved |= n > 0,
                    Err(SendFail::Socket) => return Verdict::Abort,
                    Err(SendFail::File(e)) => {
                        // The head promised a length the body cannot keep: reset, and say why.
                        eprintln!("tapir http: a response to {} broke off: {e}", self.peer);
                        return Verdict::Abort;
                    }
                }
                if !o.finished() {
                    break;
                }
                self.out.pop_front();
            }
            moved |= self.answer(site, log);
            if !self.eof && !self.closing && self.input.len() - self.start <= MAX_HEAD {
                if self.start > 0 {
                    self.input.drain(..self.start);
                    self.start = 0;
                }
                match self.transport.recv(stack, h, scratch) {
                    Ok(0) => {
                        self.eof = true;
                        moved = true;
                    }
                    Ok(n) => {
                        self.input.extend_from_slice(&scratch[..n]);
                        moved = true;
                    }
                    Err(TcpError::WouldBlock) => {}
                    Err(_) => return Verdict::Abort,
                }
            }
            if !moved {
                break;
            }
            self.last_progress_us = now_us;
        }
        if !self.sending() && (self.closing || self.eof) {
            // After the peer's FIN, a request cut short will never complete.
            return Verdict::Close;
        }
        Verdict::Open
    }

    /// Turns complete requests at the front of the input into queued responses, throwing away
    /// their bodies; true if anything was taken or queued.
    fn answer(&mut self, site: &mut Responder<'_>, log: &mut AccessLog) -> bool {
        let (start, queued) = (self.start, self.out.len());
        while !self.closing && self.out.len() < MAX_QUEUED {
            if !self.read_body(log) {
                break;
            }
            let pending = &self.input[self.start..];
            if pending.is_empty() {
                break;
            }
            match request::parse(pending) {
                Head::Partial => break,
                Head::Refuse(status, reason) => {
                    let first = pending.split(|&b| b == b'\n').next().unwrap_or(b"");
                    let first = String::from_utf8_lossy(&first[..first.len().min(200)])
                        .trim_end()
                        .to_string();
                    self.refuse(log, &first, status, reason);
                }
                Head::Request { req, used, body } => {
                    self.start += used;
                    self.queue(site, log, &req, body);
                }
            }
        }
        self.start != start || self.out.len() != queued
    }

    /// Queues the answer to `req`, whose body (framed as `body`) follows in the input.
    fn queue(
        &mut self,
        site: &mut Responder<'_>,
        log: &mut AccessLog,
        req: &Request,
        body: Framing,
    ) {
        let r = site.respond(req);
        let status = r.status;
        let head_only = req.method == "HEAD";
        // RFC 9110 §10.1.1: refusing a request that waits for 100 Continue, the final status
        // goes at once and the body the client then may or may not send is not waited for:
        // the connection closes after the answer.
        let refused_early = req.expect_continue && body != Framing::None && status >= 400;
        let keep = req.keep && status != 400 && !refused_early;
        let answer = Held {
            logged: Logged::of(req, status, if head_only { 0 } else { r.body_len() }),
            out: Outgoing::new(r, !head_only, keep),
            keep,
        };
        self.incoming = match body {
            _ if refused_early => Incoming::Head,
            Framing::None => Incoming::Head,
            Framing::Length(n) => Incoming::Length(n),
            Framing::Chunked => Incoming::Chunked(Decoder::default()),
        };
        if matches!(self.incoming, Incoming::Head) {
            self.release(answer, log);
            return;
        }
        if req.expect_continue {
            self.out.push_back(Outgoing::interim(CONTINUE));
        }
        // The answer goes once the body is read, so that what follows is the next request.
        self.held = Some(answer);
    }

    /// Throws away request body bytes at the front of the input; true once none are owed (the
    /// held answer is then queued), false while the body goes on past the input.
    fn read_body(&mut self, log: &mut AccessLog) -> bool {
        let pending = &self.input[self.start..];
        let done = match &mut self.incoming {
            Incoming::Head => return true,
            Incoming::Length(left) => {
                let n = pending
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                self.start += n;
                *left -= n as u64;
                *left == 0
            }
            Incoming::Chunked(d) => match d.feed(pending) {
                Ok((n, done)) => {
                    self.start += n;
                    done
                }
                Err(e) => {
                    self.incoming = Incoming::Head;
                    self.held = None;
                    let (status, reason) = match e {
                        ChunkError::TooLarge => (413, "Content Too Large"),
                        ChunkError::Malformed => (400, "Bad Request"),
                    };
                    self.refuse(log, "-", status, reason);
                    return false;
                }
            },
        };
        if done {
            self.incoming = Incoming::Head;
            if let Some(answer) = self.held.take() {
                self.release(answer, log);
            }
        }
        done
    }

    /// Queues an answer whose request is wholly read.
    fn release(&mut self, answer: Held, log: &mut AccessLog) {
        log.line(self.peer, &answer.logged);
        self.out.push_back(answer.out);
        self.closing = !answer.keep || self.draining;
    }

    /// Answers `status` and closes after it.
    fn refuse(&mut self, log: &mut AccessLog, line: &str, status: u16, reason: &'static str) {
        let r = Response::error(status, reason);
        log.line(self.peer, &Logged::bare(line, status, r.body_len()));
        self.out.push_back(Outgoing::new(r, true, false));
        self.closing = true;
    }
}
