//! The `virtio_net_hdr` that precedes every frame on a tap opened with `IFF_VNET_HDR`
//! (include/uapi/linux/virtio_net.h; little-endian on the hosts tapir runs on).
//!
//! On receive it says whether the kernel vouched for the checksum (`F_DATA_VALID`, or a partial
//! checksum still to be filled, `F_NEEDS_CSUM`, which a local receiver may treat as valid) and
//! whether the frame is a GRO'd segment larger than the MTU (`gso_type` not `NONE`).

/// `sizeof(struct virtio_net_hdr)`: what TUNSETVNETHDRSZ is set to.
pub const LEN: usize = 10;

pub const F_NEEDS_CSUM: u8 = 1;
pub const F_DATA_VALID: u8 = 2;
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;

/// The fields of a received header that the engine acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxInfo {
    /// The kernel computed or verified the transport checksum: skip verifying it.
    pub checksum_trusted: bool,
    /// A GSO/GRO super-frame (larger than the MTU).
    pub gso: bool,
}

/// Reads the header in front of a received frame (None if the read was shorter than it).
pub fn parse(buf: &[u8]) -> Option<RxInfo> {
    let h = buf.get(..LEN)?;
    Some(RxInfo {
        checksum_trusted: h[0] & (F_NEEDS_CSUM | F_DATA_VALID) != 0,
        gso: h[1] & 0x7f != GSO_NONE,
    })
}

/// The header of a frame we send whose checksums are complete and that needs no segmentation:
/// `F_DATA_VALID` lets the kernel skip verifying them again (`virtio_net_hdr_to_skb` marks the
/// skb `CHECKSUM_UNNECESSARY`).
pub fn write_plain(buf: &mut [u8]) {
    buf[..LEN].fill(0);
    buf[0] = F_DATA_VALID;
}

/// The header of a frame the kernel must finish: the transport checksum from `csum_start`
/// (stored at `csum_start + csum_offset`, which holds the pseudo-header sum), and, when
/// `gso_size` is not 0, segmentation of the TCP payload into pieces of `gso_size` bytes
/// (`VIRTIO_NET_HDR_GSO_TCPV4`). Multi-byte fields are little-endian.
pub fn write_offload(buf: &mut [u8], off: &protocols::iface::TxOffload) {
    buf[..LEN].fill(0);
    if let Some((start, at)) = off.csum {
        buf[0] = F_NEEDS_CSUM;
        buf[6..8].copy_from_slice(&start.to_le_bytes());
        buf[8..10].copy_from_slice(&at.to_le_bytes());
    } else {
        buf[0] = F_DATA_VALID;
    }
    if off.gso_size > 0 {
        buf[1] = GSO_TCPV4;
        buf[2..4].copy_from_slice(&off.hdr_len.to_le_bytes());
        buf[4..6].copy_from_slice(&off.gso_size.to_le_bytes());
    }
}

/// For a frame written with a header in front (`buf` holds both): finishes a transport
/// checksum left to the kernel (`F_NEEDS_CSUM`, no segmentation) and marks it `F_DATA_VALID`,
/// so that the frame is traced as it will be on the wire. Segmented frames stay as they are.
pub fn finish_checksum(buf: &mut [u8]) {
    let Some(h) = buf.get(..LEN) else {
        return;
    };
    if h[0] & F_NEEDS_CSUM == 0 || h[1] & 0x7f != GSO_NONE {
        return;
    }
    let start = usize::from(u16::from_le_bytes([h[6], h[7]]));
    let offset = usize::from(u16::from_le_bytes([h[8], h[9]]));
    protocols::wire::checksum::complete_partial(&mut buf[LEN..], start, offset);
    buf[0] = F_DATA_VALID;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_and_gso() {
        assert_eq!(parse(&[0; 9]), None);
        let mut h = [0u8; LEN];
        assert_eq!(parse(&h), Some(RxInfo::default()));
        h[0] = F_DATA_VALID;
        h[1] = GSO_TCPV4;
        assert_eq!(
            parse(&h),
            Some(RxInfo {
                checksum_trusted: true,
                gso: true
            })
        );
        h[0] = F_NEEDS_CSUM;
        h[1] = GSO_NONE;
        assert!(parse(&h).unwrap().checksum_trusted);
        write_plain(&mut h);
        assert_eq!(h, [F_DATA_VALID, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let off = protocols::iface::TxOffload {
            csum: Some((34, 16)),
            gso_size: 1448,
            hdr_len: 66,
        };
        write_offload(&mut h, &off);
        assert_eq!(
            h,
            [F_NEEDS_CSUM, GSO_TCPV4, 66, 0, 0xa8, 0x05, 34, 0, 16, 0]
        );
        write_offload(&mut h, &protocols::iface::TxOffload::default());
        assert_eq!(h, [F_DATA_VALID, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn a_partial_checksum_is_finished_for_the_trace() {
        use protocols::wire::{TcpPacket, TcpRepr, TxChecksum};
        let (src, dst) = ([10, 0, 0, 2].into(), [10, 0, 0, 1].into());
        let payload = b"partial sums are finished";
        let repr = TcpRepr {
            src_port: 80,
            dst_port: 40000,
            payload_len: payload.len(),
            ..TcpRepr::default()
        };
        // Header, Ethernet and IPv4 (contents immaterial here), then the segment.
        let seg_at = LEN + 14 + 20;
        let mut buf = vec![0u8; seg_at + 20 + payload.len()];
        buf[seg_at + 20..].copy_from_slice(payload);
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut buf[seg_at..]),
            src,
            dst,
            TxChecksum::PseudoHeaderOnly,
        );
        let off = protocols::iface::TxOffload {
            csum: Some((34, 16)),
            gso_size: 0,
            hdr_len: 0,
        };
        write_offload(&mut buf, &off);
        let seg = |b: &[u8]| TcpPacket::new_checked(b[seg_at..].to_vec()).unwrap();
        assert!(!seg(&buf).verify_checksum(src, dst));
        finish_checksum(&mut buf);
        assert!(seg(&buf).verify_checksum(src, dst));
        assert_eq!(buf[0], F_DATA_VALID);
        // A segmented frame is left alone.
        let mut gso = [0u8; LEN + 60];
        write_offload(
            &mut gso,
            &protocols::iface::TxOffload {
                gso_size: 1448,
                ..off
            },
        );
        let before = gso;
        finish_checksum(&mut gso);
        assert_eq!(gso, before);
    }
}
