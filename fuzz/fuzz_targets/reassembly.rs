//! The IPv4 reassembly pool under arbitrary fragments: whatever arrives, the pool never holds
//! more than its bounds, never panics, and anything it hands back is a well-formed IPv4 packet
//! whose length matches what the fragments said.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use protocols::iface::counters::Counters;
use protocols::iface::reassembly::{FragKey, Fragment, Reassembler, ReassemblyConfig};
use protocols::time::{Duration, Instant};
use protocols::wire::{IpProtocol, Ipv4Packet, Ipv4Repr};

const MAX_BYTES: usize = 16 * 1024;
const MAX_DATAGRAMS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let config = ReassemblyConfig {
        max_bytes: MAX_BYTES,
        max_datagrams: MAX_DATAGRAMS,
        max_frags: 16,
        timeout: Duration::from_secs(30),
    };
    let mut pool = Reassembler::new(config);
    let mut counters = Counters::default();
    let mut now = Instant::from_secs(1);
    let mut header = [0u8; 20];
    Ipv4Repr {
        src_addr: Ipv4Addr::new(10, 0, 0, 1),
        dst_addr: Ipv4Addr::new(10, 0, 0, 2),
        protocol: IpProtocol::Udp,
        payload_len: 0,
        ttl: 64,
        ident: 0,
        dont_frag: false,
        more_frags: true,
        frag_offset: 0,
        dscp_ecn: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut header[..]));
    let filler = [0xa5u8; 4096];
    // Each fragment is 6 bytes: datagram (3 bits) and MF flag, offset in 8-byte units (13 bits
    // as on the wire), length (16 bits), time step.
    for chunk in data.chunks_exact(6) {
        let key = FragKey {
            src: Ipv4Addr::new(10, 0, 0, 1 + (chunk[0] & 0x07)),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: 17,
            ident: u16::from(chunk[0] >> 4),
        };
        let more_frags = chunk[0] & 0x08 != 0;
        let offset = usize::from(u16::from_be_bytes([chunk[1], chunk[2]]) & 0x1fff) * 8;
        let len = usize::from(u16::from_be_bytes([chunk[3], chunk[4]])) % filler.len();
        let frag = Fragment {
            key,
            header: &header,
            offset,
            more_frags,
            payload: &filler[..len],
        };
        if let Some(whole) = pool.insert(now, frag, &mut counters) {
            let p = Ipv4Packet::new_checked(&whole[..]).expect("reassembled packet parses");
            let r = Ipv4Repr::parse(&p, true).expect("reassembled header is valid");
            assert!(!r.more_frags && r.frag_offset == 0);
            assert_eq!(r.payload_len + 20, whole.len());
            assert!(whole.len() <= 65535);
        }
        assert!(pool.bytes_held() <= MAX_BYTES);
        assert!(pool.in_progress() <= MAX_DATAGRAMS);
        now += Duration::from_millis(u64::from(chunk[5]) * 200);
        pool.handle_timeout(now, &mut counters);
    }
});
