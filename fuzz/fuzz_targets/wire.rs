//! Every wire parser over arbitrary bytes: parsing must never panic, and whatever parses must
//! emit back to bytes that parse to the same repr.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use protocols::wire::{
    ipv4_options, ArpPacket, ArpRepr, EthernetFrame, EthernetRepr, Icmpv4Packet, Icmpv4Repr, Ipv4Packet,
    Ipv4Repr, TcpPacket, TcpRepr, TxChecksum, UdpPacket, UdpRepr,
};

const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    match selector % 6 {
        0 => {
            if let Ok(f) = EthernetFrame::new_checked(bytes) {
                if let Ok(r) = EthernetRepr::parse(&f) {
                    let mut buf = vec![0u8; r.buffer_len()];
                    r.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
                    assert_eq!(EthernetRepr::parse(&EthernetFrame::new_checked(&buf[..]).unwrap()), Ok(r));
                }
            }
        }
        1 => {
            if let Ok(p) = ArpPacket::new_checked(bytes) {
                if let Ok(r) = ArpRepr::parse(&p) {
                    let mut buf = vec![0u8; r.buffer_len()];
                    r.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
                    assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()), Ok(r));
                }
            }
        }
        2 => {
            if let Ok(p) = Ipv4Packet::new_checked(bytes) {
                let _ = p.verify_checksum();
                let _ = p.options();
                let _ = Ipv4Repr::parse(&p, true);
                let _ = Ipv4Repr::parse(&p, false);
            }
            // Any options area: judged, answered and read back without a panic; what passes the
            // check gives a reply that passes it too.
            let options = bytes.get(..40).unwrap_or(bytes);
            let verdict = ipv4_options::check_received(options);
            let reply = ipv4_options::echo_reply(options, DST, 1);
            let _ = ipv4_options::recorded_route(options);
            assert!(reply.as_bytes().len() <= 40 && reply.as_bytes().len() % 4 == 0);
            if verdict == ipv4_options::Received::Fine {
                assert_ne!(
                    std::mem::discriminant(&ipv4_options::check_received(reply.as_bytes())),
                    std::mem::discriminant(&ipv4_options::Received::Malformed { pointer: 0 })
                );
            }
        }
        3 => {
            if let Ok(p) = Icmpv4Packet::new_checked(bytes) {
                if let Ok(r) = Icmpv4Repr::parse(&p, false) {
                    let mut buf = vec![0u8; r.buffer_len()];
                    r.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
                    let again = Icmpv4Packet::new_checked(&buf[..]).unwrap();
                    assert_eq!(Icmpv4Repr::parse(&again, true), Ok(r));
                }
            }
        }
        4 => {
            if let Ok(p) = UdpPacket::new_checked(bytes) {
                if let Ok(r) = UdpRepr::parse(&p, SRC, DST, false) {
                    let payload = p.payload();
                    let mut buf = vec![0u8; 8 + payload.len()];
                    buf[8..].copy_from_slice(payload);
                    r.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), SRC, DST, payload.len(), TxChecksum::Full);
                    let again = UdpPacket::new_checked(&buf[..]).unwrap();
                    assert_eq!(UdpRepr::parse(&again, SRC, DST, true), Ok(r));
                }
            }
        }
        _ => {
            if let Ok(p) = TcpPacket::new_checked(bytes) {
                let _ = p.verify_checksum(SRC, DST);
                if let Ok(r) = TcpRepr::parse(&p, SRC, DST, false) {
                    let hl = r.header_len();
                    if hl <= 60 {
                        let payload = p.payload();
                        let mut buf = vec![0u8; hl + payload.len()];
                        buf[hl..].copy_from_slice(payload);
                        r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), SRC, DST, TxChecksum::Full);
                        let again = TcpPacket::new_checked(&buf[..]).unwrap();
                        let back = TcpRepr::parse(&again, SRC, DST, true).unwrap();
                        assert_eq!((back.seq_number, back.ack_number, back.flags.0 & 0x3f), (r.seq_number, r.ack_number, r.flags.0 & 0x3f));
                        assert_eq!(back.payload_len, r.payload_len);
                    }
                }
            }
        }
    }
});
