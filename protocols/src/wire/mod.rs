//! Wire formats: zero-copy views and parsed representations.
//!
//! Every format follows one pattern (after smoltcp's `wire`): a `FooPacket<T: AsRef<[u8]>>` view
//! whose `new_checked` validates lengths once, so that its accessors cannot panic afterwards;
//! setters exist only where `T: AsMut<[u8]>`; and a `FooRepr` with `parse`, `buffer_len` /
//! `header_len` and `emit`. Payloads are never copied by this module: an emitter writes headers
//! around a payload that the caller already placed in the buffer.

pub mod arp;
pub(crate) mod bytes;
pub mod checksum;
pub mod dhcp;
pub mod dns;
pub mod ethernet;
pub mod icmpv4;
pub mod ipv4;
pub mod ipv4_options;
pub mod tcp;
pub mod udp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, ParseEthernetAddressError,
};
pub use icmpv4::{Icmpv4Packet, Icmpv4Repr};
pub use ipv4::{CidrError, IpProtocol, Ipv4Cidr, Ipv4Packet, Ipv4Repr};
pub use tcp::{SeqNumber, TcpFlags, TcpOption, TcpPacket, TcpRepr, TcpTimestamp, MAX_SACK_BLOCKS};
pub use udp::{UdpPacket, UdpRepr};

/// Why a buffer could not be read as a packet of some format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the format's headers (or than a length field says).
    #[error("truncated")]
    Truncated,
    /// A field holds a value the format forbids (bad version, length field too small, bad option).
    #[error("malformed")]
    Malformed,
    /// The checksum does not match.
    #[error("bad checksum")]
    BadChecksum,
    /// Valid, but a variant this stack does not handle (e.g. ARP for a non-IPv4 protocol).
    #[error("unsupported")]
    Unsupported,
}

pub type Result<T> = core::result::Result<T, Error>;

/// How an emitter fills a transport checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxChecksum {
    /// Compute the full checksum in software.
    #[default]
    Full,
    /// Write only the pseudo-header sum (not inverted): the device finishes it
    /// (virtio-net `VIRTIO_NET_HDR_F_NEEDS_CSUM`).
    PseudoHeaderOnly,
    /// Leave the field zero.
    None,
}
