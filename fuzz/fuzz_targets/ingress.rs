//! The whole ingress path: arbitrary frames into a node with a TCP listener, an open UDP port
//! and an echo socket, with time moving on. Nothing may panic; every frame is handled or
//! dropped for a counted reason.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use protocols::iface::{Stack, StackConfig};
use protocols::rand::Rng;
use protocols::time::{Duration, Instant};
use protocols::wire::{EthernetAddress, Ipv4Cidr};

fuzz_target!(|data: &[u8]| {
    let mac = EthernetAddress([2, 0, 0, 0, 0, 2]);
    let cidr = Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 2), 24).unwrap();
    let mut stack = Stack::new(StackConfig::new(mac, cidr), Rng::new(1));
    stack.tcp_listen(80, 4).unwrap();
    let udp = stack.udp().bind(7).unwrap();
    let mut now = Instant::from_secs(1);
    let mut out: Vec<Vec<u8>> = Vec::new();
    stack.start(now, &mut out);
    // Frames are length-prefixed (one byte, times 8) so one input drives a conversation.
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = (usize::from(len) * 8).min(tail.len());
        let (frame, tail) = tail.split_at(n);
        rest = tail;
        stack.receive(now, frame, &mut out);
        now += Duration::from_millis(u64::from(len % 16) * 50);
        stack.poll(now, &mut out);
        while let Ok(Some(_)) = stack.udp().recv_from(udp) {}
        while let Ok(Some((h, _))) = stack.tcp_accept(80) {
            let mut buf = [0u8; 256];
            let _ = stack.tcp_recv(h, &mut buf);
            let _ = stack.tcp_send(h, b"hello");
            stack.tcp_release(h);
        }
        out.clear();
    }
    let total = stack.counters().rx_frames;
    assert!(total > 0 || data.is_empty());
});
