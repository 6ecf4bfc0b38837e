//! One line per frame, tcpdump style, for looking at a failing seed: `Network::set_trace`.

use protocols::wire::{
    EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr,
};

/// A one-line summary of an Ethernet frame (TCP in detail, the rest by type).
pub fn describe_frame(frame: &[u8]) -> String {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return format!("runt frame of {} bytes", frame.len());
    };
    if eth.ethertype() != EtherType::Ipv4 {
        return format!("{} {} bytes", eth.ethertype(), frame.len());
    }
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
        return "bad IPv4".into();
    };
    let Ok(ipr) = Ipv4Repr::parse(&ip, true) else {
        return "IPv4 with a bad header".into();
    };
    if ipr.protocol != IpProtocol::Tcp {
        return format!("{} > {} {}", ipr.src_addr, ipr.dst_addr, ipr.protocol);
    }
    let tcp = TcpPacket::new_checked(ip.payload())
        .and_then(|p| TcpRepr::parse(&p, ipr.src_addr, ipr.dst_addr, true));
    let Ok(t) = tcp else {
        return format!("{} > {} TCP, bad segment", ipr.src_addr, ipr.dst_addr);
    };
    let mut s = format!(
        "{}:{} > {}:{} [{:?}] seq {} len {}",
        ipr.src_addr, t.src_port, ipr.dst_addr, t.dst_port, t.flags, t.seq_number.0, t.payload_len
    );
    if let Some(a) = t.ack_number {
        s += &format!(" ack {}", a.0);
    }
    s += &format!(" win {}", t.window_len);
    for (l, r) in t.sack_ranges.iter().flatten() {
        s += &format!(" sack {}-{}", l.0, r.0);
    }
    if let Some(ts) = t.timestamp {
        s += &format!(" ts {:?}", ts);
    }
    s
}
