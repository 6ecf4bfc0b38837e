use super::*;
use crate::trace::sample::{self, SampleFrame};

/// The names of the sample frames that `expr` selects.
fn select(expr: &str) -> Vec<&'static str> {
    let f = Filter::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    sample::session()
        .into_iter()
        .filter(|s: &SampleFrame| f.matches(s.dir, &s.frame))
        .map(|s| s.what)
        .collect()
}

const TCP: [&str; 6] = [
    "syn",
    "syn-ack",
    "ack",
    "request",
    "response",
    "retransmission",
];

#[test]
fn protocols() {
    assert_eq!(select("arp"), ["arp request", "arp reply"]);
    assert_eq!(select("icmp"), ["ping request", "ping reply"]);
    assert_eq!(select("tcp"), TCP);
    assert_eq!(
        select("udp"),
        ["dns query", "dns answer", "dhcp discover", "fragment"]
    );
    assert_eq!(select("ip").len(), 12);
    assert_eq!(select("not ip"), ["arp request", "arp reply"]);
}

#[test]
fn hosts() {
    assert_eq!(select("host 10.9.0.53"), ["dns query", "dns answer"]);
    assert_eq!(select("src host 10.9.0.53"), ["dns answer"]);
    assert_eq!(select("dst host 10.9.0.53"), ["dns query"]);
    // ARP sender/target count as hosts.
    assert_eq!(
        select("src host 10.9.0.1 and not tcp"),
        ["arp reply", "ping request", "fragment"]
    );
    assert_eq!(select("host 255.255.255.255"), ["dhcp discover"]);
    assert!(select("host 192.0.2.1").is_empty());
}

#[test]
fn ports() {
    assert_eq!(select("port 80"), TCP);
    assert_eq!(select("dst port 80"), ["syn", "ack", "request"]);
    assert_eq!(
        select("src port 80"),
        ["syn-ack", "response", "retransmission"]
    );
    assert_eq!(select("port 53"), ["dns query", "dns answer"]);
    assert_eq!(select("port 67 or port 68"), ["dhcp discover"]);
    // A later fragment has no ports.
    assert!(!select("udp and not port 53 and not port 67").contains(&"dns query"));
    assert_eq!(select("udp and not port 53 and not port 67"), ["fragment"]);
}

#[test]
fn direction() {
    assert_eq!(select("in and tcp"), ["syn", "ack", "request"]);
    assert_eq!(
        select("out and tcp"),
        ["syn-ack", "response", "retransmission"]
    );
    assert_eq!(select("in").len() + select("out").len(), 14);
}

#[test]
fn precedence_and_grouping() {
    // `and` binds tighter than `or`.
    assert_eq!(
        select("arp or tcp and in"),
        ["arp request", "arp reply", "syn", "ack", "request"]
    );
    assert_eq!(
        select("(arp or tcp) and in"),
        ["arp reply", "syn", "ack", "request"]
    );
    // `not` binds tightest.
    assert_eq!(select("not tcp and port 80"), Vec::<&str>::new());
    assert_eq!(
        select("not (tcp and in) and port 80"),
        ["syn-ack", "response", "retransmission"]
    );
    // Juxtaposition and the C-style operators.
    assert_eq!(select("tcp dst port 80"), ["syn", "ack", "request"]);
    assert_eq!(
        select("icmp && in || arp && !in"),
        ["arp request", "ping request"]
    );
}

fn err(expr: &str) -> String {
    Filter::parse(expr).unwrap_err().to_string()
}

#[test]
fn errors_name_the_column_and_what_was_expected() {
    assert_eq!(
        err("tcp and port"),
        "trace filter: expected a port number (0-65535) after 'port' at column 13"
    );
    assert_eq!(
        err("tcp and port http"),
        "trace filter: expected a port number (0-65535) after 'port' at column 14"
    );
    assert_eq!(
        err("src port 70000"),
        "trace filter: expected a port number (0-65535) after 'src port' at column 10"
    );
    assert_eq!(
        err("host 10.0.0"),
        "trace filter: expected an IPv4 address (A.B.C.D) after 'host' at column 6"
    );
    assert_eq!(
        err("dst 10.0.0.1"),
        "trace filter: expected 'host' or 'port' after 'dst' at column 5"
    );
    assert_eq!(
        err("(tcp or udp"),
        "trace filter: expected ')' but found the end of the expression at column 12"
    );
    assert_eq!(
        err("tcp or"),
        "trace filter: expected a protocol, host, port, in, out, not or '(' but found the end of the expression at column 7"
    );
    assert_eq!(
        err("tcp)"),
        "trace filter: expected a protocol, host, port, in, out, not or '(' but found an unmatched ')' at column 4"
    );
    assert!(err("tcpp").starts_with("trace filter: unknown word 'tcpp'"));
    assert!(err("tcpp").ends_with("at column 1"));
    assert!(err("").contains("found the end of the expression at column 1"));
    assert!(err("and tcp").contains("found 'and'") || err("and tcp").contains("found '&&'"));
}

#[test]
fn parsing_never_panics() {
    let words = [
        "tcp", "(", ")", "and", "or", "not", "!", "&&", "||", "host", "port", "src", "1.2.3.4",
        "80", "&", "é", "in",
    ];
    let mut seed = 7u32;
    for _ in 0..5000 {
        let mut s = String::new();
        for _ in 0..(seed % 7) {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            s.push_str(words[(seed >> 16) as usize % words.len()]);
            s.push(' ');
        }
        seed = seed.wrapping_add(1);
        if let Ok(f) = Filter::parse(&s) {
            for frame in sample::session() {
                let _ = f.matches(frame.dir, &frame.frame);
            }
        }
    }
}
