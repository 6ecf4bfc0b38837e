//! echo (RFC 862), daytime (RFC 867), discard (RFC 863) and chargen (RFC 864), on TCP and UDP.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::thread;

use engine::{AppCtx, TcpListener, TcpStream, WorkerApp};
use protocols::iface::SocketHandle;
use protocols::time::Instant;

use super::daytime::daytime_string;
use super::Kind;

pub fn run_tcp(kind: Kind, listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept() {
        let _ = thread::Builder::new()
            .name(format!("{}-conn", kind.name()))
            .spawn(move || serve_tcp(kind, stream));
    }
}

fn serve_tcp(kind: Kind, mut stream: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    match kind {
        Kind::Echo => loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        },
        Kind::Discard => while let Ok(1..) = stream.read(&mut buf) {},
        Kind::Daytime => {
            let _ = stream.write_all(daytime_string().as_bytes());
        }
        Kind::Chargen => {
            // Until the client goes away (a write fails) or stops reading for a minute.
            stream.set_write_timeout(Some(std::time::Duration::from_secs(60)));
            let cycle = chargen_lines(0, CHARGEN_CYCLE);
            while stream.write_all(&cycle).is_ok() {}
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        Kind::Http | Kind::Https | Kind::Login => {}
    }
    let _ = stream.shutdown(Shutdown::Write);
    // Hold the stream until the peer closes too, so nothing queued is cut off.
    let _ = stream.wait_closed(Some(std::time::Duration::from_secs(10)));
}

/// The UDP side of a service, on worker `worker` as a run-to-completion app: it answers the
/// datagrams of the flows that worker owns from the worker's own loop, in the batch that
/// brought them (no thread hop, no lock, no allocation per datagram). It finishes when the
/// service's socket is closed.
pub struct UdpApp {
    kind: Kind,
    handle: SocketHandle,
    buf: Vec<u8>,
    next_line: usize,
    closed: bool,
}

impl UdpApp {
    pub fn new(kind: Kind, handle: SocketHandle) -> Self {
        UdpApp {
            kind,
            handle,
            buf: vec![0u8; 65536],
            next_line: 0,
            closed: false,
        }
    }
}

impl WorkerApp for UdpApp {
    fn poll(&mut self, ctx: &mut AppCtx<'_>) -> Option<Instant> {
        loop {
            let (n, from) = match ctx.stack.udp().recv_into(self.handle, &mut self.buf) {
                Ok(Some(got)) => got,
                Ok(None) => return None,
                Err(_) => {
                    self.closed = true;
                    return None;
                }
            };
            // A reply the send queue has no room for is lost, as UDP may lose it anywhere.
            let _ = match self.kind {
                Kind::Echo => ctx.stack.udp().send_to(self.handle, from, &self.buf[..n]),
                Kind::Daytime => {
                    ctx.stack
                        .udp()
                        .send_to(self.handle, from, daytime_string().as_bytes())
                }
                Kind::Chargen => {
                    // RFC 864: an answer of 0 to 512 characters; six whole lines are 444.
                    let d = chargen_lines(self.next_line, 6);
                    self.next_line = (self.next_line + 6) % CHARGEN_CYCLE;
                    ctx.stack.udp().send_to(self.handle, from, &d)
                }
                _ => Ok(()),
            };
        }
    }

    fn done(&self) -> bool {
        self.closed
    }
}

/// RFC 864's pattern repeats after this many lines: the 95 printable ASCII characters, each
/// line starting one character later than the one before.
const CHARGEN_CYCLE: usize = 95;
/// Characters per line, before CR LF.
const CHARGEN_WIDTH: usize = 72;

/// `count` lines of the chargen pattern starting at line `first`.
pub fn chargen_lines(first: usize, count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * (CHARGEN_WIDTH + 2));
    for line in first..first + count {
        for i in 0..CHARGEN_WIDTH {
            out.push(b' ' + ((line + i) % CHARGEN_CYCLE) as u8);
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chargen_pattern_is_rfc_864s() {
        let d = chargen_lines(0, 96);
        let lines: Vec<&[u8]> = d.chunks(74).collect();
        assert_eq!(&lines[0][..4], b" !\"#");
        assert_eq!(lines[0][CHARGEN_WIDTH - 1], b'g');
        assert_eq!(lines[1][0], b'!');
        assert_eq!(lines[94][0], b'~');
        assert_eq!(lines[94][1], b' ', "the pattern wraps after '~'");
        assert_eq!(lines[95], lines[0], "and repeats every 95 lines");
        assert!(lines.iter().all(|l| l.ends_with(b"\r\n")));
    }
}
