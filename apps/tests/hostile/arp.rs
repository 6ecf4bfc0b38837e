//! ARP spoofing against a live tapir: requests, gratuitous ARP and unsolicited replies that
//! claim the kernel's address for another MAC do not redirect tapir's traffic, and a host
//! claiming tapir's own address is warned about and answered with an announcement (RFC 5227).

use std::fs::File;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::common::TempDir;
use super::raw::{self, RawSocket};
use super::{curl, interop_allowed, serial, serve_to};

const EVIL: [u8; 6] = [0x02, 0, 0, 0, 0, 0x66];
const KERNEL: Ipv4Addr = Ipv4Addr::new(10, 7, 0, 1);
const TAPIR: Ipv4Addr = Ipv4Addr::new(10, 7, 0, 2);
/// `tapir serve`'s MAC for 10.7.0.2: 02:74 then the address (apps/src/cli.rs, default_mac).
const TAPIR_MAC: [u8; 6] = [0x02, 0x74, 10, 7, 0, 2];
const REQUEST: u16 = 1;
const REPLY: u16 = 2;

/// An ARP frame for Ethernet/IPv4, sent from `sha`.
fn arp(op: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&sha);
    p.extend_from_slice(&spa.octets());
    p.extend_from_slice(&tha);
    p.extend_from_slice(&tpa.octets());
    let dst = if op == REQUEST { [0xff; 6] } else { tha };
    raw::eth(dst, sha, 0x0806, &p)
}

/// (operation, sender MAC, sender address, target address) of an ARP frame.
fn parse_arp(f: &[u8]) -> Option<(u16, [u8; 6], Ipv4Addr, Ipv4Addr)> {
    if f.get(12..14)? != [8, 6] {
        return None;
    }
    let a = f.get(14..42)?;
    let ip = |r: &[u8]| Ipv4Addr::new(r[0], r[1], r[2], r[3]);
    Some((
        u16::from_be_bytes([a[6], a[7]]),
        a[8..14].try_into().ok()?,
        ip(&a[14..18]),
        ip(&a[24..28]),
    ))
}

#[test]
fn arp_spoofing_does_not_redirect_tapir_and_a_claim_on_its_address_is_warned_and_defended() {
    if !interop_allowed() {
        return;
    }
    let _g = serial();
    let dir = TempDir::new("arp");
    let log = dir.0.join("stderr");
    // Two queues: worker 0 owns ARP (it checks, answers and defends), worker 1 learns from it.
    let s = serve_to(
        &["http"],
        2,
        Stdio::from(File::create(&log).expect("log file")),
    );
    // tapir learns the kernel's MAC from its request: a live entry.
    assert_eq!(curl(&s.lab), "200");
    let sock = RawSocket::open(&s.lab.ns, &s.lab.tap).expect("AF_PACKET");
    // Three ways to claim the kernel's address for EVIL: a request to tapir, a gratuitous ARP,
    // and a reply nobody asked for. Were any taken, tapir's answers would go to EVIL's MAC,
    // which the kernel's tap drops, and curl would time out.
    for f in [
        arp(REQUEST, EVIL, KERNEL, [0; 6], TAPIR),
        arp(REQUEST, EVIL, KERNEL, [0; 6], KERNEL),
        arp(REPLY, EVIL, KERNEL, TAPIR_MAC, TAPIR),
    ] {
        sock.send(&f).expect("send ARP");
    }
    for i in 0..3 {
        assert_eq!(curl(&s.lab), "200", "request {i} after the spoofed ARP");
    }

    // Another host claims tapir's own address: tapir announces it (sender = target = its
    // address, from its MAC) and warns once on standard error.
    sock.send(&arp(REQUEST, EVIL, TAPIR, [0; 6], TAPIR))
        .expect("send claim");
    let deadline = Instant::now() + Duration::from_secs(3);
    let defence = sock.collect_until(deadline, |f| {
        parse_arp(f).is_some_and(|(op, sha, spa, tpa)| {
            op == REQUEST && sha == TAPIR_MAC && spa == TAPIR && tpa == TAPIR
        })
    });
    assert_eq!(
        defence.len(),
        1,
        "one announcement in defence, not one per worker"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let warned = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("02:00:00:00:00:66 also claims this node's address 10.7.0.2")
            || Instant::now() > deadline
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        warned.contains("02:00:00:00:00:66 also claims this node's address 10.7.0.2"),
        "no conflict warning on stderr:\n{warned}"
    );
    assert_eq!(curl(&s.lab), "200", "still serving");
}
