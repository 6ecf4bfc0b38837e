//! The matrix's four exchanges, each on a connection of its own that is left open (idle) for the
//! silence check: bulk both ways and request/response rounds, with tapir as server and as client.

use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use engine::Node;
use sha2::{Digest, Sha256};
use tapir_apps::lab::Lab;

use super::rows::Pattern;
use crate::common::kernel;
use crate::common::quiet::Flow;
use crate::common::random_bytes;

/// Bytes each way of each bulk connection.
pub const BULK: usize = 2 << 20;
/// Request/response message sizes (the rounds are the row's).
const REQUEST: usize = 100;
const RESPONSE: usize = 300;

/// The payload tapir's side writes in a row's four exchanges.
pub fn tapir_writes(p: Pattern) -> usize {
    2 * BULK + p.rounds * (REQUEST + RESPONSE)
}

const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections held open after their exchange, both ends.
#[derive(Default)]
pub struct Held {
    pub kernel: Vec<TcpStream>,
    pub tapir: Vec<engine::TcpStream>,
    pub flows: Vec<Flow>,
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha(d: &[u8]) -> String {
    hex(&Sha256::digest(d))
}

fn read_n(mut r: impl Read, n: usize, what: &str) -> Vec<u8> {
    let mut v = vec![0u8; n];
    r.read_exact(&mut v)
        .unwrap_or_else(|e| panic!("{what}: read of {n} bytes: {e}"));
    v
}

fn kernel_connect(lab: &Lab, to: SocketAddrV4) -> TcpStream {
    let s = kernel(lab, || {
        TcpStream::connect_timeout(&SocketAddr::V4(to), Duration::from_secs(10))
    })
    .expect("kernel connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

fn kernel_listen(lab: &Lab, port: u16) -> TcpListener {
    kernel(lab, || TcpListener::bind(SocketAddrV4::new(lab.host, port))).expect("kernel listen")
}

fn kernel_accepted(l: &TcpListener) -> TcpStream {
    let (s, _) = l.accept().expect("kernel accept");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

fn tapir_timeouts(mut s: engine::TcpStream) -> engine::TcpStream {
    s.set_read_timeout(Some(IO_TIMEOUT));
    s.set_write_timeout(Some(IO_TIMEOUT));
    s
}

fn tapir_accept(l: &engine::TcpListener) -> engine::TcpStream {
    let (s, _) = l
        .accept_timeout(Some(Duration::from_secs(10)))
        .expect("tapir accept");
    tapir_timeouts(s)
}

fn tapir_connect(node: &Node, to: SocketAddrV4) -> engine::TcpStream {
    let s = engine::TcpStream::connect_timeout(node, to, Some(Duration::from_secs(10)))
        .expect("tapir connect");
    tapir_timeouts(s)
}

/// Bulk data as received against what was sent, by length and SHA-256.
fn check_bulk(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert_eq!(sha(got), sha(want), "{what}: SHA-256 differs");
}

/// The kernel connects to tapir and sends [`BULK`] bytes; tapir reads them, then sends
/// [`BULK`] back.
pub fn bulk_tapir_serves(lab: &Lab, node: &Node, port: u16, held: &mut Held) {
    let up = random_bytes(BULK, 11);
    let down = random_bytes(BULK, 12);
    let listener = engine::TcpListener::bind(node, port).expect("tapir listen");
    let to = SocketAddrV4::new(node.address(), port);
    let (k, t) = std::thread::scope(|sc| {
        let kernel_side = sc.spawn(|| {
            let s = kernel_connect(lab, to);
            (&s).write_all(&up).expect("kernel write");
            let back = read_n(&s, BULK, "kernel reading tapir's bulk (tapir serves)");
            check_bulk(&back, &down, "tapir to kernel, tapir serving");
            s
        });
        let t = tapir_accept(&listener);
        let got = read_n(&t, BULK, "tapir reading the kernel's bulk (tapir serves)");
        check_bulk(&got, &up, "kernel to tapir, tapir serving");
        (&t).write_all(&down).expect("tapir write");
        (kernel_side.join().expect("kernel side"), t)
    });
    held.flows.push(Flow::of_tapir(&t));
    held.kernel.push(k);
    held.tapir.push(t);
}

/// Tapir connects to the kernel and sends [`BULK`] bytes; the kernel reads them, then sends
/// [`BULK`] back.
pub fn bulk_tapir_connects(lab: &Lab, node: &Node, port: u16, held: &mut Held) {
    let up = random_bytes(BULK, 21);
    let down = random_bytes(BULK, 22);
    let listener = kernel_listen(lab, port);
    let (k, t) = std::thread::scope(|sc| {
        let kernel_side = sc.spawn(|| {
            let s = kernel_accepted(&listener);
            let got = read_n(&s, BULK, "kernel reading tapir's bulk (tapir connects)");
            check_bulk(&got, &up, "tapir to kernel, tapir connecting");
            (&s).write_all(&down).expect("kernel write");
            s
        });
        let t = tapir_connect(node, SocketAddrV4::new(lab.host, port));
        (&t).write_all(&up).expect("tapir write");
        let back = read_n(&t, BULK, "tapir reading the kernel's bulk (tapir connects)");
        check_bulk(&back, &down, "kernel to tapir, tapir connecting");
        (kernel_side.join().expect("kernel side"), t)
    });
    held.flows.push(Flow::of_tapir(&t));
    held.kernel.push(k);
    held.tapir.push(t);
}

fn request(round: usize) -> Vec<u8> {
    random_bytes(REQUEST, 1000 + round as u32)
}

/// The answer to a request: the request three times, each copy XORed with its index.
fn response(req: &[u8]) -> Vec<u8> {
    (0..RESPONSE)
        .map(|i| req[i % REQUEST] ^ (i / REQUEST) as u8)
        .collect()
}

fn set_cork(s: &TcpStream, on: bool) {
    let v: libc::c_int = on.into();
    // SAFETY: the fd is the open socket `s` owns; the pointer and length describe `v`.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    assert_eq!(rc, 0, "TCP_CORK: {}", std::io::Error::last_os_error());
}

fn kernel_socket(s: &TcpStream, p: Pattern) {
    s.set_nodelay(p.kernel_nodelay).expect("TCP_NODELAY");
}

/// Writes `msg` in `p.pieces` writes, corked when the pattern says so.
fn kernel_write(s: &TcpStream, msg: &[u8], p: Pattern) {
    if p.kernel_cork {
        set_cork(s, true);
    }
    for piece in msg.chunks(msg.len().div_ceil(p.pieces)) {
        (&*s).write_all(piece).expect("kernel write");
    }
    if p.kernel_cork {
        set_cork(s, false);
    }
}

fn tapir_write(s: &engine::TcpStream, msg: &[u8], p: Pattern) {
    for piece in msg.chunks(msg.len().div_ceil(p.pieces)) {
        (&*s).write_all(piece).expect("tapir write");
    }
}

/// The kernel asks, tapir answers, `p.rounds` times.
pub fn rr_tapir_serves(lab: &Lab, node: &Node, port: u16, p: Pattern, held: &mut Held) {
    let listener = engine::TcpListener::bind(node, port).expect("tapir listen");
    let to = SocketAddrV4::new(node.address(), port);
    let (k, t) = std::thread::scope(|sc| {
        let tapir_side = sc.spawn(|| {
            let t = tapir_accept(&listener);
            t.set_nodelay(p.tapir_nodelay).expect("tapir set_nodelay");
            for round in 0..p.rounds {
                let req = read_n(&t, REQUEST, &format!("tapir reading request {round}"));
                assert_eq!(req, request(round), "request {round} as tapir read it");
                tapir_write(&t, &response(&req), p);
            }
            t
        });
        let s = kernel_connect(lab, to);
        kernel_socket(&s, p);
        for round in 0..p.rounds {
            let req = request(round);
            kernel_write(&s, &req, p);
            let resp = read_n(&s, RESPONSE, &format!("kernel reading response {round}"));
            assert_eq!(
                resp,
                response(&req),
                "response {round} as the kernel read it"
            );
        }
        (s, tapir_side.join().expect("tapir side"))
    });
    held.flows.push(Flow::of_tapir(&t));
    held.kernel.push(k);
    held.tapir.push(t);
}

/// Tapir asks, the kernel answers, `p.rounds` times.
pub fn rr_tapir_connects(lab: &Lab, node: &Node, port: u16, p: Pattern, held: &mut Held) {
    let listener = kernel_listen(lab, port);
    let (k, t) = std::thread::scope(|sc| {
        let kernel_side = sc.spawn(|| {
            let s = kernel_accepted(&listener);
            kernel_socket(&s, p);
            for round in 0..p.rounds {
                let req = read_n(&s, REQUEST, &format!("kernel reading request {round}"));
                assert_eq!(req, request(round), "request {round} as the kernel read it");
                kernel_write(&s, &response(&req), p);
            }
            s
        });
        let t = tapir_connect(node, SocketAddrV4::new(lab.host, port));
        t.set_nodelay(p.tapir_nodelay).expect("tapir set_nodelay");
        for round in 0..p.rounds {
            let req = request(round);
            tapir_write(&t, &req, p);
            let resp = read_n(&t, RESPONSE, &format!("tapir reading response {round}"));
            assert_eq!(resp, response(&req), "response {round} as tapir read it");
        }
        (kernel_side.join().expect("kernel side"), t)
    });
    held.flows.push(Flow::of_tapir(&t));
    held.kernel.push(k);
    held.tapir.push(t);
}
