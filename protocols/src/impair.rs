//! What an impaired path does to a frame's bytes, shared by the engine's `--impair` and the
//! simulator's links so that both corrupt frames the same way (and draw the same numbers from a
//! seeded generator for it).

use crate::rand::Rng;
use crate::wire::{EtherType, EthernetFrame};

/// Flips one random bit of the IPv4 packet in `frame`: header or payload, never the Ethernet
/// header nor link padding past the IPv4 total length. That is corruption an Ethernet FCS did
/// not see (in a router's memory, a buggy NIC), which is what the IP, UDP and TCP checksums are
/// for. ARP carries no checksum, so non-IPv4 frames are left alone: false, and nothing drawn.
pub fn flip_ipv4_bit(frame: &mut [u8], rng: &mut Rng) -> bool {
    const ETH: usize = 14;
    let ipv4 = EthernetFrame::new_checked(&*frame)
        .is_ok_and(|eth| eth.ethertype() == EtherType::Ipv4)
        && frame.len() >= ETH + 20;
    let Some(&[hi, lo]) = frame.get(ETH + 2..ETH + 4) else {
        return false;
    };
    if !ipv4 {
        return false;
    }
    let end = (ETH + usize::from(u16::from_be_bytes([hi, lo]))).min(frame.len());
    if end <= ETH {
        return false;
    }
    let bit = rng.below(((end - ETH) * 8) as u64) as usize;
    match frame.get_mut(ETH + bit / 8) {
        Some(b) => {
            *b ^= 1 << (bit % 8);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_frame(len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[12] = 0x08;
        f[14] = 0x45;
        let total = (len - 14) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f
    }

    #[test]
    fn one_bit_of_the_ip_packet_flips_and_nothing_else() {
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            let orig = ipv4_frame(60);
            let mut f = orig.clone();
            assert!(flip_ipv4_bit(&mut f, &mut rng));
            let diff: u32 = f.iter().zip(&orig).map(|(a, b)| (a ^ b).count_ones()).sum();
            assert_eq!(diff, 1);
            assert_eq!(f[..14], orig[..14], "the Ethernet header is left alone");
        }
    }

    #[test]
    fn padding_past_the_total_length_is_not_touched() {
        let mut rng = Rng::new(5);
        for _ in 0..200 {
            let mut f = ipv4_frame(60);
            f[16..18].copy_from_slice(&28u16.to_be_bytes());
            let orig = f.clone();
            assert!(flip_ipv4_bit(&mut f, &mut rng));
            assert_eq!(f[14 + 28..], orig[14 + 28..]);
        }
    }

    #[test]
    fn arp_and_runts_are_left_alone() {
        let mut rng = Rng::new(1);
        let mut arp = ipv4_frame(60);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!flip_ipv4_bit(&mut arp, &mut rng));
        let mut runt = vec![0u8; 20];
        runt[12] = 0x08;
        assert!(!flip_ipv4_bit(&mut runt, &mut rng));
    }
}
