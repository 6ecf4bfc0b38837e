//! The run-to-completion API against the kernel: an echo server that runs inside every worker,
//! on the worker's own stack, serving kernel clients byte-exact over one and two queues.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use engine::{AppCtx, Node, NodeConfig, WorkerApp};
use protocols::iface::{SocketHandle, TcpError};
use protocols::time::Instant;
use tapir_apps::lab::Lab;

mod common;
use common::{interop_allowed, kernel, random_bytes};

/// Echoes every byte back, visiting only the connections the stack says have news.
struct Echo {
    port: u16,
    listening: bool,
    /// Bytes read but not yet written back, per connection.
    pending: HashMap<SocketHandle, Vec<u8>>,
    echoed: Arc<AtomicU64>,
}

impl WorkerApp for Echo {
    fn poll(&mut self, ctx: &mut AppCtx<'_>) -> Option<Instant> {
        if !self.listening {
            ctx.stack.tcp_listen(self.port, 64).expect("listen");
            self.listening = true;
        }
        while let Ok(Some((h, _))) = ctx.stack.tcp_accept(self.port) {
            self.pending.insert(h, Vec::new());
        }
        let mut buf = [0u8; 16384];
        let mut visit: Vec<SocketHandle> = ctx.ready.to_vec();
        visit.extend(
            self.pending
                .iter()
                .filter(|(_, p)| !p.is_empty())
                .map(|(h, _)| *h),
        );
        for h in visit {
            let Some(pending) = self.pending.get_mut(&h) else {
                continue;
            };
            loop {
                if !pending.is_empty() {
                    match ctx.stack.tcp_send(h, pending) {
                        Ok(n) => {
                            pending.drain(..n);
                            self.echoed.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        Err(_) => break,
                    }
                    if !pending.is_empty() {
                        break;
                    }
                }
                match ctx.stack.tcp_recv(h, &mut buf) {
                    Ok(0) => {
                        let _ = ctx.stack.tcp_close(h);
                        ctx.stack.tcp_release(h);
                        self.pending.remove(&h);
                        break;
                    }
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                    Err(TcpError::WouldBlock) => break,
                    Err(_) => {
                        ctx.stack.tcp_release(h);
                        self.pending.remove(&h);
                        break;
                    }
                }
            }
        }
        None
    }
}

fn echo_through(queues: usize, flows: u32) {
    let lab = Lab::up("rtc").expect("lab");
    let mut config = NodeConfig::new(&lab.tap, lab.node);
    config.netns = Some(lab.ns.clone());
    config.queues = queues;
    let node = Node::start(config).expect("node");
    let echoed = Arc::new(AtomicU64::new(0));
    for w in 0..queues {
        let app = Echo {
            port: 7,
            listening: false,
            pending: HashMap::new(),
            echoed: echoed.clone(),
        };
        node.spawn_app(w, Box::new(app)).expect("spawn app");
    }
    let addr = SocketAddr::V4(SocketAddrV4::new(lab.node.address(), 7));
    let ok: Vec<bool> = kernel(&lab, || {
        std::thread::scope(|sc| {
            let hs: Vec<_> = (0..flows)
                .map(|i| {
                    sc.spawn(move || {
                        let data = random_bytes(512 * 1024, 40 + i);
                        // The apps start listening at the workers' next wake-up: a refusal
                        // before that is tried again, a bounded number of times.
                        let mut tries = 0;
                        let mut s = loop {
                            match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                                Ok(s) => break s,
                                Err(e)
                                    if e.kind() == std::io::ErrorKind::ConnectionRefused
                                        && tries < 1000 =>
                                {
                                    tries += 1;
                                }
                                Err(e) => panic!("connect: {e}"),
                            }
                        };
                        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                        let mut w = s.try_clone().unwrap();
                        let mut back = Vec::new();
                        std::thread::scope(|sc2| {
                            sc2.spawn(|| {
                                w.write_all(&data).unwrap();
                                w.shutdown(std::net::Shutdown::Write).unwrap();
                            });
                            s.read_to_end(&mut back).unwrap();
                        });
                        back == data
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(false)).collect()
        })
    });
    assert_eq!(ok, vec![true; flows as usize]);
    assert_eq!(
        echoed.load(Ordering::Relaxed),
        u64::from(flows) * 512 * 1024
    );
    node.shutdown();
}

#[test]
fn a_worker_app_echoes_exactly_on_one_queue() {
    if !interop_allowed() {
        return;
    }
    echo_through(1, 4);
}

#[test]
fn worker_apps_echo_exactly_on_two_queues() {
    if !interop_allowed() {
        return;
    }
    echo_through(2, 8);
}

/// Takes over one connection handed out by `TcpStream::into_raw_parts`: reads it to its end
/// (what arrived before the app's first poll included: no news says so), writes it all back,
/// and closes.
struct TakeOver {
    h: SocketHandle,
    got: Vec<u8>,
    finished: bool,
}

impl WorkerApp for TakeOver {
    fn poll(&mut self, ctx: &mut AppCtx<'_>) -> Option<Instant> {
        let mut buf = [0u8; 4096];
        loop {
            match ctx.stack.tcp_recv(self.h, &mut buf) {
                Ok(0) => break,
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
                Err(TcpError::WouldBlock) => return None,
                Err(e) => panic!("recv: {e}"),
            }
        }
        // The send buffer takes this small echo whole.
        assert_eq!(ctx.stack.tcp_send(self.h, &self.got), Ok(self.got.len()));
        ctx.stack.tcp_close(self.h).expect("close");
        ctx.stack.tcp_release(self.h);
        self.finished = true;
        None
    }

    fn done(&self) -> bool {
        self.finished
    }
}

#[test]
fn a_stream_handed_to_a_worker_app_keeps_its_data_and_is_closed_by_the_app() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("rtc-handover").expect("lab");
    let mut config = NodeConfig::new(&lab.tap, lab.node);
    config.netns = Some(lab.ns.clone());
    config.queues = 2;
    let node = Node::start(config).expect("node");
    let listener = engine::TcpListener::bind(&node, 9).expect("listen");
    let data = random_bytes(20_000, 7);
    let addr = SocketAddr::V4(SocketAddrV4::new(lab.node.address(), 9));
    let back = std::thread::scope(|sc| {
        sc.spawn(|| {
            let (mut s, _) = listener.accept().expect("accept");
            // The blocking API reads the greeting; the rest is the app's.
            let mut hello = [0u8; 5];
            s.read_exact(&mut hello).expect("read the greeting");
            assert_eq!(&hello, b"hello");
            let (w, h) = s.into_raw_parts();
            let app = TakeOver {
                h,
                got: Vec::new(),
                finished: false,
            };
            node.spawn_app(w, Box::new(app)).expect("spawn app");
        });
        kernel(&lab, || {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s.write_all(b"hello").unwrap();
            s.write_all(&data).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut back = Vec::new();
            s.read_to_end(&mut back)
                .expect("the app's echo, then its FIN");
            back
        })
    });
    assert!(
        back == data,
        "{} bytes came back of {}",
        back.len(),
        data.len()
    );
    node.shutdown();
}
