//! Interop: raw IPv4 sockets on a tapir node in a private lab, against the Linux kernel on the
//! other side of the tap (10.7.0.1; tapir is 10.7.0.2). The node runs in this test process so
//! that the test can hold an `engine::socket::RawSocket`. Needs root and /dev/net/tun (and
//! python3 for the kernel UDP receiver).

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use engine::socket::{RawPacket, RawSocket};
use engine::{IcmpSocket, Node, NodeConfig};
use protocols::wire::{Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr};
use tapir_apps::cli::default_mac;
use tapir_apps::lab::Lab;

fn interop_allowed() -> bool {
    if std::env::var_os("TAPIR_SKIP_INTEROP").is_some() {
        eprintln!("TAPIR_SKIP_INTEROP set: skipping");
        return false;
    }
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "interop tests need root and /dev/net/tun (set TAPIR_SKIP_INTEROP=1 to skip them)"
    );
    true
}

/// The node is declared after the lab so that it stops before the namespace goes.
fn lab_node(tag: &str) -> (Lab, Node) {
    let lab = Lab::up(tag).expect("lab up");
    let mut config = NodeConfig::new(&lab.tap, lab.node);
    config.netns = Some(lab.ns.clone());
    config.stack.mac = default_mac(lab.node.address());
    let node = Node::start(config).expect("start the node");
    (lab, node)
}

/// Waits for an ICMP echo reply from `from` carrying `ident` on the raw socket.
fn echo_reply(raw: &RawSocket, from: Ipv4Addr, ident: u16) -> RawPacket {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let p = raw
            .recv(Some(left))
            .unwrap_or_else(|e| panic!("no echo reply from {from} with ident {ident}: {e}"));
        let icmp = Icmpv4Packet::new_checked(p.payload()).expect("an ICMP message");
        if let Ok(Icmpv4Repr::EchoReply { ident: i, .. }) = Icmpv4Repr::parse(&icmp, true) {
            if i == ident && p.src() == from {
                return p;
            }
        }
    }
}

#[test]
fn a_raw_icmp_socket_sees_the_echo_replies_to_a_ping() {
    if !interop_allowed() {
        return;
    }
    let (lab, node) = lab_node("raw");
    let raw = RawSocket::bind(&node, 1).expect("raw socket");
    let ping = IcmpSocket::bind(&node).expect("echo socket");
    for seq in 1..=3u16 {
        ping.send_echo(lab.host, seq, None, b"tapir raw test")
            .expect("send echo");
        let p = echo_reply(&raw, lab.host, ping.ident());
        let ip = Ipv4Packet::new_checked(&p.packet[..]).expect("whole IPv4 packet");
        assert_eq!(ip.dst_addr(), lab.node.address());
        // The echo socket got its copy too: normal processing goes on.
        let r = ping
            .recv_echo(Some(Duration::from_secs(5)))
            .expect("echo reply on the echo socket");
        assert_eq!(r.seq_no, seq);
    }
    node.shutdown();
}

/// An IPv4 packet built by hand: header with source 0.0.0.0 (tapir fills its own) and a zero
/// checksum (tapir computes it), then `payload`.
fn hand_built(dst: Ipv4Addr, protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + payload.len()];
    Ipv4Repr {
        src_addr: Ipv4Addr::UNSPECIFIED,
        dst_addr: dst,
        protocol,
        payload_len: payload.len(),
        ttl: 64,
        ident: 0,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        dscp_ecn: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut p[..]));
    p[10] = 0;
    p[11] = 0;
    p[20..].copy_from_slice(payload);
    p
}

#[test]
fn a_hand_built_echo_request_is_answered_by_the_kernel() {
    if !interop_allowed() {
        return;
    }
    let (lab, node) = lab_node("rawh");
    let raw = RawSocket::bind(&node, 1).expect("raw socket");
    let ident = 0x7a70;
    let data = b"built by hand";
    let repr = Icmpv4Repr::EchoRequest {
        ident,
        seq_no: 9,
        data,
    };
    let mut icmp = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut icmp[..]));
    raw.send_packet(&hand_built(lab.host, IpProtocol::Icmp, &icmp))
        .expect("send a hand-built packet");
    let p = echo_reply(&raw, lab.host, ident);
    let icmp = Icmpv4Packet::new_checked(p.payload()).unwrap();
    match Icmpv4Repr::parse(&icmp, true).unwrap() {
        Icmpv4Repr::EchoReply {
            seq_no, data: d, ..
        } => {
            assert_eq!(seq_no, 9);
            assert_eq!(d, data);
        }
        other => panic!("not an echo reply: {other:?}"),
    }
    // A source that is not ours is refused.
    let mut forged = hand_built(lab.host, IpProtocol::Icmp, &[8, 0, 0, 0, 0, 0, 0, 0]);
    forged[12..16].copy_from_slice(&[10, 7, 0, 99]);
    assert!(raw.send_packet(&forged).is_err());
    node.shutdown();
}

#[test]
fn a_hand_built_udp_datagram_reaches_a_kernel_socket() {
    if !interop_allowed() {
        return;
    }
    let (lab, node) = lab_node("rawu");
    // A kernel UDP socket in the lab namespace prints the first datagram it gets.
    let script = "import socket,sys\n\
        s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
        s.bind(('10.7.0.1',5555))\n\
        print('ready',flush=True)\n\
        s.settimeout(10)\n\
        d,a=s.recvfrom(2000)\n\
        print(a[0],a[1],d.decode(),flush=True)\n";
    let mut child = lab
        .command("python3")
        .args(["-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 in the lab");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("ready"));
    let raw = RawSocket::bind(&node, 17).expect("raw socket");
    let body = b"hello kernel";
    // UDP header: ports 4444 -> 5555, length, checksum 0 (none, allowed over IPv4).
    let mut udp = vec![0u8; 8 + body.len()];
    udp[0..2].copy_from_slice(&4444u16.to_be_bytes());
    udp[2..4].copy_from_slice(&5555u16.to_be_bytes());
    let len = udp.len() as u16;
    udp[4..6].copy_from_slice(&len.to_be_bytes());
    udp[8..].copy_from_slice(body);
    raw.send_packet(&hand_built(lab.host, IpProtocol::Udp, &udp))
        .expect("send");
    let got = lines.next().and_then(Result::ok);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(got.as_deref(), Some("10.7.0.2 4444 hello kernel"));
    node.shutdown();
}
