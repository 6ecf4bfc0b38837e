//! The DHCP message parser over arbitrary bytes: parsing never panics, and a message that
//! parses emits back to bytes that parse to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::wire::dhcp::{DhcpPacket, DhcpRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = DhcpPacket::new_checked(data) else { return };
    let Ok(repr) = DhcpRepr::parse(&packet) else { return };
    let mut buf = vec![0u8; repr.buffer_len()];
    let Ok(n) = repr.emit(&mut buf) else { return };
    let again = DhcpPacket::new_checked(&buf[..n]).expect("emitted message has a header");
    assert_eq!(DhcpRepr::parse(&again).expect("emitted message parses"), repr);
});
