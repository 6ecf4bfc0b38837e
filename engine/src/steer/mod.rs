//! Flow steering: which worker owns a frame's flow.
//!
//! tapir decides ownership with its own hash of the 4-tuple. With several queues the tap runs
//! the same decision as an eBPF program ([`bpf`]) and puts each frame on its owner's queue; the
//! kernel's own choice (a keyed hash user space cannot compute, and a flow table learned from
//! the frames tapir writes) applies only where the program was refused, and a frame that lands
//! on another worker is then handed to the owner.

pub mod bpf;

use protocols::iface::DHCP_CLIENT_PORT;
use protocols::wire::{ethernet, EtherType, IpProtocol};

/// Where a received frame should be processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steer {
    /// By the worker that read it.
    Here,
    /// By worker `n`.
    Owner(usize),
}

/// The worker that owns the node's ARP (answers, announces, asks on the wire, and shares what
/// it learns with the others: `protocols::iface::ArpRole`). The tap's steering program puts
/// ARP on its queue too.
pub const ARP_OWNER: usize = 0;

/// The worker that owns the flow (our port, their address, their port) among `workers`.
/// Symmetric in the sense that matters: the same flow maps to the same worker whichever side
/// sent the packet, because it is always keyed from our point of view.
pub fn flow_owner(local_port: u16, remote_ip: [u8; 4], remote_port: u16, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    // FNV-1a over the tuple, then a final avalanche: cheap, and good enough to spread ports.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in local_port
        .to_be_bytes()
        .iter()
        .chain(remote_ip.iter())
        .chain(remote_port.to_be_bytes().iter())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h % workers as u64) as usize
}

/// Decides who processes `frame`, reading only what it needs and trusting nothing: anything it
/// cannot classify is processed here (and dropped with a counted reason there).
pub fn classify(frame: &[u8], me: usize, workers: usize) -> Steer {
    if workers <= 1 {
        return Steer::Here;
    }
    let ethertype = match frame.get(12..14) {
        Some(b) => EtherType::from(u16::from_be_bytes([b[0], b[1]])),
        None => return Steer::Here,
    };
    match ethertype {
        EtherType::Arp if me == ARP_OWNER => Steer::Here,
        EtherType::Arp => Steer::Owner(ARP_OWNER),
        EtherType::Ipv4 => {
            let ip = match frame.get(ethernet::HEADER_LEN..) {
                Some(ip) => ip,
                None => return Steer::Here,
            };
            let (Some(&vihl), Some(&proto)) = (ip.first(), ip.get(9)) else {
                return Steer::Here;
            };
            let ihl = usize::from(vihl & 0x0f) * 4;
            // Fragments: a later fragment carries no ports, so every fragment of a datagram
            // goes to the worker its (source, identification) names, which reassembles it.
            if let (Some(frag), Some(id), Some(src)) = (ip.get(6..8), ip.get(4..6), ip.get(12..16))
            {
                let more = frag[0] & 0x20 != 0;
                let offset = u16::from_be_bytes([frag[0] & 0x1f, frag[1]]);
                if more || offset != 0 {
                    let ident = u16::from_be_bytes([id[0], id[1]]);
                    let owner = flow_owner(
                        ident,
                        [src[0], src[1], src[2], src[3]],
                        u16::from(proto),
                        workers,
                    );
                    return if owner == me {
                        Steer::Here
                    } else {
                        Steer::Owner(owner)
                    };
                }
            }
            let proto = IpProtocol::from(proto);
            if proto == IpProtocol::Icmp {
                return icmp_error_owner(ip.get(ihl..).unwrap_or_default(), workers)
                    .filter(|&o| o != me)
                    .map_or(Steer::Here, Steer::Owner);
            }
            if !matches!(proto, IpProtocol::Tcp | IpProtocol::Udp) {
                return Steer::Here;
            }
            let (Some(src), Some(ports)) = (ip.get(12..16), ip.get(ihl..ihl + 4)) else {
                return Steer::Here;
            };
            let remote_ip = [src[0], src[1], src[2], src[3]];
            let remote_port = u16::from_be_bytes([ports[0], ports[1]]);
            let local_port = u16::from_be_bytes([ports[2], ports[3]]);
            // The DHCP client runs on worker 0 (its lease is shared with the others).
            let owner = if proto == IpProtocol::Udp && local_port == DHCP_CLIENT_PORT {
                0
            } else {
                flow_owner(local_port, remote_ip, remote_port, workers)
            };
            if owner == me {
                Steer::Here
            } else {
                Steer::Owner(owner)
            }
        }
        _ => Steer::Here,
    }
}

/// The owner of the TCP connection or UDP flow an ICMP destination-unreachable or time-exceeded
/// quotes (a path MTU report, or the error that ends an attempt to connect, is that
/// connection's business, and the owner is the worker that sends the flow's datagrams), or None
/// for any other ICMP message. Reads only what it needs, trusting nothing.
fn icmp_error_owner(icmp: &[u8], workers: usize) -> Option<usize> {
    const DST_UNREACHABLE: u8 = 3;
    const TIME_EXCEEDED: u8 = 11;
    if !matches!(icmp.first()?, &DST_UNREACHABLE | &TIME_EXCEEDED) {
        return None;
    }
    let quoted = icmp.get(8..)?;
    let qihl = usize::from(quoted.first()? & 0x0f) * 4;
    if !matches!(quoted.get(9)?, 6 | 17) || qihl < 20 {
        return None;
    }
    let dst = quoted.get(16..20)?;
    let ports = quoted.get(qihl..qihl + 4)?;
    let local_port = u16::from_be_bytes([ports[0], ports[1]]);
    let remote_port = u16::from_be_bytes([ports[2], ports[3]]);
    Some(flow_owner(
        local_port,
        [dst[0], dst[1], dst[2], dst[3]],
        remote_port,
        workers,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_spread_and_are_stable() {
        let mut counts = [0usize; 4];
        for port in 40000..44000u16 {
            let o = flow_owner(80, [10, 0, 0, 1], port, 4);
            assert_eq!(o, flow_owner(80, [10, 0, 0, 1], port, 4));
            counts[o] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "uneven spread: {counts:?}");
        }
        assert_eq!(flow_owner(80, [10, 0, 0, 1], 5, 1), 0);
    }

    #[test]
    fn every_fragment_of_a_datagram_goes_to_one_worker() {
        let frag = |offset_words: u16, more: bool, ports: [u8; 4]| {
            let mut f = vec![0u8; 54];
            f[12] = 0x08;
            f[14] = 0x45;
            f[14 + 4..14 + 6].copy_from_slice(&0x1234u16.to_be_bytes());
            let word = offset_words | if more { 0x2000 } else { 0 };
            f[14 + 6..14 + 8].copy_from_slice(&word.to_be_bytes());
            f[14 + 9] = 17;
            f[14 + 12..14 + 16].copy_from_slice(&[10, 0, 0, 1]);
            f[34..38].copy_from_slice(&ports);
            f
        };
        for workers in 2..6 {
            let first = classify(&frag(0, true, [0x9c, 0x40, 0, 7]), 0, workers);
            for (i, garbage) in [[1, 2, 3, 4], [9, 9, 9, 9], [0xff, 0, 0x10, 0x20]]
                .into_iter()
                .enumerate()
            {
                let later = classify(&frag(185 * (i as u16 + 1), i < 2, garbage), 0, workers);
                assert_eq!(later, first, "{workers} workers, fragment {i}");
            }
        }
    }

    #[test]
    fn classify_never_panics_and_steers_arp_to_its_owner() {
        assert_eq!(classify(&[], 0, 2), Steer::Here);
        let mut arp = vec![0u8; 42];
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert_eq!(classify(&arp, ARP_OWNER, 2), Steer::Here);
        assert_eq!(classify(&arp, 1, 2), Steer::Owner(ARP_OWNER));
        let mut tcp = vec![0u8; 54];
        tcp[12] = 0x08;
        tcp[14] = 0x45;
        tcp[14 + 9] = 6;
        tcp[14 + 12..14 + 16].copy_from_slice(&[10, 0, 0, 1]);
        tcp[34..36].copy_from_slice(&1234u16.to_be_bytes());
        tcp[36..38].copy_from_slice(&80u16.to_be_bytes());
        let owner = flow_owner(80, [10, 0, 0, 1], 1234, 2);
        let expect = if owner == 0 {
            Steer::Here
        } else {
            Steer::Owner(owner)
        };
        assert_eq!(classify(&tcp, 0, 2), expect);
        for len in 0..tcp.len() {
            let _ = classify(&tcp[..len], 1, 2);
        }
    }

    /// A destination unreachable quoting our segment or datagram (10.0.0.2:80 -> 10.0.0.1:port)
    /// goes to the worker owning that flow; an echo request, and one quoting ICMP, stay where
    /// read.
    #[test]
    fn an_icmp_error_quoting_tcp_goes_to_the_connection_owner() {
        let icmp = |icmp_type: u8, proto: u8, port: u16| {
            let mut f = vec![0u8; 14 + 20 + 8 + 28];
            f[12] = 0x08;
            f[14] = 0x45;
            f[14 + 9] = 1;
            f[14 + 12..14 + 16].copy_from_slice(&[10, 0, 0, 9]); // a router
            f[34] = icmp_type;
            let q = 42;
            f[q] = 0x45;
            f[q + 9] = proto;
            f[q + 12..q + 16].copy_from_slice(&[10, 0, 0, 2]);
            f[q + 16..q + 20].copy_from_slice(&[10, 0, 0, 1]);
            f[q + 20..q + 22].copy_from_slice(&80u16.to_be_bytes());
            f[q + 22..q + 24].copy_from_slice(&port.to_be_bytes());
            f
        };
        let workers = 4;
        let mut owners = std::collections::HashSet::new();
        for port in 40000..40040u16 {
            let owner = flow_owner(80, [10, 0, 0, 1], port, workers);
            owners.insert(owner);
            for me in 0..workers {
                let want = if owner == me {
                    Steer::Here
                } else {
                    Steer::Owner(owner)
                };
                assert_eq!(classify(&icmp(3, 6, port), me, workers), want);
                assert_eq!(classify(&icmp(3, 17, port), me, workers), want);
                assert_eq!(classify(&icmp(11, 6, port), me, workers), want);
                assert_eq!(classify(&icmp(3, 1, port), me, workers), Steer::Here);
                assert_eq!(classify(&icmp(8, 6, port), me, workers), Steer::Here);
            }
        }
        assert_eq!(owners.len(), workers, "the ports reach every worker");
        let frame = icmp(3, 6, 40000);
        for len in 0..frame.len() {
            let _ = classify(&frame[..len], 1, workers);
        }
    }
}
