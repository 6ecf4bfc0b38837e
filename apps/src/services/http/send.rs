//! A response on its way into a socket's send buffer: the head and the first piece of the body
//! go in one call, a file follows in pieces of at most [`CHUNK`] read only when the socket has
//! room, so a worker never waits on a slow client and never holds a whole file in memory.
//!
//! The file reads are ordinary synchronous disk reads on the worker: for a static server whose
//! files sit in the page cache that is cheaper than a hand-off to an I/O thread, at the price of a
//! stalled worker while a cold disk answers.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use protocols::iface::{SocketHandle, Stack, TcpError};

use super::response::{Body, Piece, Response};
use super::tls::Transport;

/// Most bytes read from a file at a time, and held per response.
pub const CHUNK: usize = 64 * 1024;

/// Why a response could not be sent whole.
#[derive(Debug)]
pub enum SendFail {
    /// The connection failed (reset, closed).
    Socket,
    /// The file could not be read, or shrank: the length promised cannot be kept.
    File(io::Error),
}

pub struct Outgoing {
    /// Bytes ready for the socket; `buf[off..]` not taken yet.
    buf: Vec<u8>,
    off: usize,
    file: Option<Arc<File>>,
    pieces: VecDeque<Piece>,
}

impl Outgoing {
    /// The response's head, then its body unless `with_body` is false (HEAD).
    pub fn new(r: Response, with_body: bool, keep: bool) -> Outgoing {
        let mut buf = r.head(keep);
        let mut out = Outgoing {
            buf: Vec::new(),
            off: 0,
            file: None,
            pieces: VecDeque::new(),
        };
        if with_body {
            match r.body {
                Body::None => {}
                // Small and already in memory: head and body in one segment.
                Body::Bytes(b) => buf.extend_from_slice(&b),
                Body::File { file, pieces } => {
                    out.file = Some(file);
                    out.pieces = pieces.into();
                }
            }
        }
        out.buf = buf;
        out
    }

    /// Bytes sent as they are: an interim (1xx) answer ahead of the final one.
    pub fn interim(bytes: &[u8]) -> Outgoing {
        Outgoing {
            buf: bytes.to_vec(),
            off: 0,
            file: None,
            pieces: VecDeque::new(),
        }
    }

    /// Everything has gone into the socket.
    pub fn finished(&self) -> bool {
        self.off == self.buf.len() && self.pieces.is_empty()
    }

    /// Hands the socket (through `t`) as much as it takes; returns the bytes it took.
    pub fn write(
        &mut self,
        stack: &mut Stack,
        h: SocketHandle,
        t: &mut Transport,
    ) -> Result<usize, SendFail> {
        let mut taken = 0;
        loop {
            if self.off == self.buf.len() {
                self.buf.clear();
                self.off = 0;
            }
            if self.buf.len() < CHUNK && !self.pieces.is_empty() {
                // Read ahead only while the socket has room for it.
                if !t.writable(stack, h).map_err(|_| SendFail::Socket)? {
                    return Ok(taken);
                }
                self.fill().map_err(SendFail::File)?;
            }
            if self.off == self.buf.len() {
                return Ok(taken);
            }
            match t.send(stack, h, &self.buf[self.off..]) {
                Ok(n) if n > 0 => {
                    self.off += n;
                    taken += n;
                }
                Ok(_) | Err(TcpError::WouldBlock) => return Ok(taken),
                Err(_) => return Err(SendFail::Socket),
            }
        }
    }

    /// Moves pieces into `buf` until it holds [`CHUNK`] bytes or the body ends.
    fn fill(&mut self) -> io::Result<()> {
        while self.buf.len() < CHUNK {
            let Some(piece) = self.pieces.front_mut() else {
                break;
            };
            match piece {
                Piece::Bytes(b) => {
                    self.buf.append(b);
                    self.pieces.pop_front();
                }
                Piece::Span { start, len } => {
                    let Some(file) = &self.file else {
                        return Err(io::Error::other("a file span without its file"));
                    };
                    let have = self.buf.len();
                    let want = (CHUNK - have).min(usize::try_from(*len).unwrap_or(usize::MAX));
                    self.buf.resize(have + want, 0);
                    // UnexpectedEof when the file shrank under us.
                    file.read_exact_at(&mut self.buf[have..], *start)?;
                    *start += want as u64;
                    *len -= want as u64;
                    if *len == 0 {
                        self.pieces.pop_front();
                    }
                }
            }
        }
        Ok(())
    }
}
