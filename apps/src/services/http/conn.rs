//! One HTTP connection on a worker: the bytes read but not yet parsed, the responses queued in
//! request order (pipelining), and what to do when the socket has news. Everything runs inside
//! the worker's poll; nothing here waits.

use std::collections::VecDeque;
use std::net::SocketAddrV4;

use protocols::iface::{SocketHandle, Stack, TcpError};

use super::log::AccessLog;
use super::request::{self, Head, MAX_HEAD};
use super::response::Response;
use super::send::{Outgoing, SendFail};
use super::Site;

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

pub struct Conn {
    pub peer: SocketAddrV4,
    /// Received bytes; `input[start..]` not parsed yet.
    input: Vec<u8>,
    start: usize,
    /// Request body bytes still to throw away.
    skip: u64,
    out: VecDeque<Outgoing>,
    /// No more requests will be read: close once `out` drains.
    closing: bool,
    /// The peer sent its FIN.
    eof: bool,
    /// When the connection last moved bytes either way (µs), for the idle and stall timeouts.
    pub last_progress_us: u64,
}

impl Conn {
    pub fn new(peer: SocketAddrV4, now_us: u64) -> Conn {
        Conn {
            peer,
            input: Vec::new(),
            start: 0,
            skip: 0,
            out: VecDeque::new(),
            closing: false,
            eof: false,
            last_progress_us: now_us,
        }
    }

    /// Responses are waiting for the socket to take them.
    pub fn sending(&self) -> bool {
        !self.out.is_empty()
    }

    /// Moves everything that can move: output into the socket, complete requests into
    /// responses, received bytes into the input, until nothing changes.
    pub fn drive(
        &mut self,
        stack: &mut Stack,
        h: SocketHandle,
        now_us: u64,
        site: &Site,
        log: &mut AccessLog,
        scratch: &mut [u8],
    ) -> Verdict {
        loop {
            let mut moved = false;
            while let Some(o) = self.out.front_mut() {
                match o.write(stack, h) {
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
                match stack.tcp_recv(h, scratch) {
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
        if self.out.is_empty() && (self.closing || self.eof) {
            // After the peer's FIN, a request cut short will never complete.
            return Verdict::Close;
        }
        Verdict::Open
    }

    /// Turns complete requests at the front of the input into queued responses; true if any.
    fn answer(&mut self, site: &Site, log: &mut AccessLog) -> bool {
        let mut any = false;
        while !self.closing && self.out.len() < MAX_QUEUED {
            if self.skip > 0 {
                let n = (self.input.len() - self.start)
                    .min(usize::try_from(self.skip).unwrap_or(usize::MAX));
                self.start += n;
                self.skip -= n as u64;
                if self.skip > 0 {
                    break;
                }
            }
            let pending = &self.input[self.start..];
            if pending.is_empty() {
                break;
            }
            match request::parse(pending) {
                Head::Partial => break,
                Head::Refuse(status, reason) => {
                    let first = pending.split(|&b| b == b'\n').next().unwrap_or(b"");
                    let first = String::from_utf8_lossy(&first[..first.len().min(200)]);
                    let r = Response::error(status, reason);
                    log.line(self.peer, first.trim_end(), status, r.body_len());
                    self.out.push_back(Outgoing::new(r, true, false));
                    self.closing = true;
                }
                Head::Request { req, used, body } => {
                    self.start += used;
                    self.skip = body;
                    let r = site.respond(&req);
                    let head_only = req.method == "HEAD";
                    let keep = req.keep && r.status != 400;
                    let bytes = if head_only { 0 } else { r.body_len() };
                    log.line(self.peer, &req.line(), r.status, bytes);
                    self.out.push_back(Outgoing::new(r, !head_only, keep));
                    self.closing = !keep;
                }
            }
            any = true;
        }
        any
    }
}
