//! The DNS message parser over arbitrary bytes: parsing never panics, and a message that parses
//! writes back to bytes that parse to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::wire::dns::{DnsPacket, DnsRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = DnsPacket::new_checked(data) else { return };
    let Ok(repr) = DnsRepr::parse(&packet) else { return };
    let bytes = repr.to_bytes();
    let again = DnsPacket::new_checked(&bytes[..]).expect("written message has a header");
    assert_eq!(DnsRepr::parse(&again).expect("written message parses"), repr);
});
