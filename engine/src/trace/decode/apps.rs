//! Light parses of the UDP application protocols the stack itself speaks: DHCP (a BOOTP
//! header and option 53) and DNS (header, question, answer addresses). They read only what a
//! one-line summary needs and return `None` on anything they do not understand; they never
//! panic on any input.

use core::fmt::Write;
use core::net::Ipv4Addr;

/// BOOTP ports (RFC 951).
pub const BOOTPS: u16 = 67;
pub const BOOTPC: u16 = 68;
/// DNS port (RFC 1035 §4.2).
pub const DNS: u16 = 53;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// DHCP message type names (RFC 2132 §9.6).
fn dhcp_type_name(t: u8) -> &'static str {
    match t {
        1 => "Discover",
        2 => "Offer",
        3 => "Request",
        4 => "Decline",
        5 => "ACK",
        6 => "NAK",
        7 => "Release",
        8 => "Inform",
        _ => "Unknown",
    }
}

/// `BOOTP/DHCP, Request from 52:54:00:12:34:56, length 300, xid 0x3903f326, DHCP Discover`.
pub fn dhcp(payload: &[u8], out: &mut String) -> Option<()> {
    // RFC 2131 §2: op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr,
    // chaddr (16), sname (64), file (128), magic cookie, options.
    let op = *payload.first()?;
    let hlen = *payload.get(2)?;
    let xid = be32(payload, 4)?;
    let yiaddr = be32(payload, 16)?;
    let chaddr = payload.get(28..34)?;
    let _ = write!(
        out,
        "BOOTP/DHCP, {} ",
        if op == 1 { "Request from" } else { "Reply to" }
    );
    if hlen == 6 {
        let _ = write!(
            out,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            chaddr[0], chaddr[1], chaddr[2], chaddr[3], chaddr[4], chaddr[5]
        );
    } else {
        out.push('?');
    }
    let _ = write!(out, ", length {}, xid 0x{xid:08x}", payload.len());
    if op == 2 && yiaddr != 0 {
        let _ = write!(out, ", Your-IP {}", Ipv4Addr::from(yiaddr));
    }
    const COOKIE: u32 = 0x6382_5363;
    if be32(payload, 236) != Some(COOKIE) {
        return Some(());
    }
    let mut at = 240;
    while let Some(&code) = payload.get(at) {
        match code {
            0 => at += 1,
            255 => break,
            _ => {
                let len = usize::from(*payload.get(at + 1)?);
                let data = payload.get(at + 2..at + 2 + len)?;
                if code == 53 && len == 1 {
                    let _ = write!(out, ", DHCP {}", dhcp_type_name(data[0]));
                    return Some(());
                }
                at += 2 + len;
            }
        }
    }
    Some(())
}

fn qtype_name(t: u16) -> Option<&'static str> {
    Some(match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        255 => "ANY",
        _ => return None,
    })
}

fn push_type(out: &mut String, t: u16) {
    match qtype_name(t) {
        Some(n) => out.push_str(n),
        None => {
            let _ = write!(out, "Type{t}");
        }
    }
}

/// Writes the (possibly compressed, RFC 1035 §4.1.4) name at `at` with a trailing dot and
/// returns the offset just after it in the original message.
fn name(msg: &[u8], mut at: usize, out: &mut String) -> Option<usize> {
    let mut end = None;
    let mut jumps = 0;
    let mut written = 0;
    loop {
        let len = *msg.get(at)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                if written == 0 {
                    out.push('.');
                }
                return Some(end.unwrap_or(at + 1));
            }
            0x00 => {
                let label = msg.get(at + 1..at + 1 + usize::from(len))?;
                written += label.len() + 1;
                if written > 255 {
                    return None;
                }
                for &c in label {
                    if c.is_ascii_graphic() && c != b'.' {
                        out.push(char::from(c));
                    } else {
                        let _ = write!(out, "\\{c:03}");
                    }
                }
                out.push('.');
                at += 1 + usize::from(len);
            }
            0xc0 => {
                jumps += 1;
                if jumps > 16 {
                    return None;
                }
                let ptr = usize::from(be16(msg, at)? & 0x3fff);
                end.get_or_insert(at + 2);
                at = ptr;
            }
            _ => return None,
        }
    }
}

/// tcpdump's DNS summary: `43981+ A? example.com. (29)` for a query,
/// `43981 1/0/0 A 93.184.216.34 (45)` for a response.
pub fn dns(msg: &[u8], verbose: bool, out: &mut String) -> Option<()> {
    let id = be16(msg, 0)?;
    let flags = be16(msg, 2)?;
    let qd = be16(msg, 4)?;
    let an = be16(msg, 6)?;
    let ns = be16(msg, 8)?;
    let ar = be16(msg, 10)?;
    let response = flags & 0x8000 != 0;
    let rcode = flags & 0x000f;
    let mut at = 12;
    let mut question = String::new();
    if qd > 0 {
        let mut qname = String::new();
        at = name(msg, at, &mut qname)?;
        let qtype = be16(msg, at)?;
        at += 4;
        push_type(&mut question, qtype);
        question.push_str("? ");
        question.push_str(&qname);
        for _ in 1..qd {
            at = name(msg, at, &mut String::new())? + 4;
        }
    }
    let _ = write!(out, "{id}");
    if !response {
        if flags & 0x0100 != 0 {
            out.push('+');
        }
        let _ = write!(out, " {question}");
    } else {
        match rcode {
            0 => {}
            3 => out.push_str(" NXDomain"),
            2 => out.push_str(" ServFail"),
            5 => out.push_str(" Refused"),
            r => {
                let _ = write!(out, " rcode{r}");
            }
        }
        if verbose && qd > 0 {
            let _ = write!(out, " q: {question}");
        }
        let _ = write!(out, " {an}/{ns}/{ar}");
        for i in 0..an {
            at = name(msg, at, &mut String::new())?;
            let rtype = be16(msg, at)?;
            let rdlen = usize::from(be16(msg, at + 8)?);
            let rdata_at = at + 10;
            let rdata = msg.get(rdata_at..rdata_at + rdlen)?;
            out.push_str(if i == 0 { " " } else { ", " });
            push_type(out, rtype);
            match (rtype, rdata.len()) {
                (1, 4) => {
                    let _ = write!(
                        out,
                        " {}",
                        Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3])
                    );
                }
                (28, 16) => {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(rdata);
                    let _ = write!(out, " {}", core::net::Ipv6Addr::from(b));
                }
                (5 | 2 | 12, _) => {
                    out.push(' ');
                    name(msg, rdata_at, out)?;
                }
                _ => {}
            }
            at = rdata_at + rdlen;
        }
    }
    let _ = write!(out, " ({})", msg.len());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `example.com A` query, id 0xabcd, RD.
    const QUERY: [u8; 29] = [
        0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, b'e', b'x',
        b'a', b'm', b'p', b'l', b'e', 0x03, b'c', b'o', b'm', 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    fn response() -> Vec<u8> {
        let mut r = QUERY.to_vec();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 1;
        // Answer: pointer to the question name, A, IN, TTL 60, 4 bytes.
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 34]);
        r
    }

    #[test]
    fn dns_query_and_answer() {
        let mut s = String::new();
        dns(&QUERY, false, &mut s).unwrap();
        assert_eq!(s, "43981+ A? example.com. (29)");
        let mut s = String::new();
        dns(&response(), false, &mut s).unwrap();
        assert_eq!(s, "43981 1/0/0 A 93.184.216.34 (45)");
        let mut s = String::new();
        dns(&response(), true, &mut s).unwrap();
        assert_eq!(s, "43981 q: A? example.com. 1/0/0 A 93.184.216.34 (45)");
    }

    #[test]
    fn dns_pointer_loops_and_truncation_are_refused() {
        let mut looped = QUERY.to_vec();
        looped[12] = 0xc0;
        looped[13] = 12;
        assert!(dns(&looped, false, &mut String::new()).is_none());
        for n in 0..QUERY.len() {
            let _ = dns(&QUERY[..n], false, &mut String::new());
        }
        let r = response();
        for n in 0..r.len() {
            let _ = dns(&r[..n], true, &mut String::new());
        }
    }

    #[test]
    fn dhcp_discover() {
        let mut p = vec![0u8; 300];
        p[0] = 1;
        p[1] = 1;
        p[2] = 6;
        p[4..8].copy_from_slice(&0x3903_f326u32.to_be_bytes());
        p[28..34].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        p[236..240].copy_from_slice(&[0x63, 0x82, 0x53, 0x63]);
        p[240..243].copy_from_slice(&[53, 1, 1]);
        p[243] = 255;
        let mut s = String::new();
        dhcp(&p, &mut s).unwrap();
        assert_eq!(
            s,
            "BOOTP/DHCP, Request from 52:54:00:12:34:56, length 300, xid 0x3903f326, DHCP Discover"
        );
        for n in 0..p.len() {
            let _ = dhcp(&p[..n], &mut String::new());
        }
    }
}
