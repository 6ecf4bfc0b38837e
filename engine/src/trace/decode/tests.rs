use super::*;
use crate::trace::sample;

fn decode_all(d: &mut LineDecoder) -> Vec<String> {
    sample::session()
        .iter()
        .map(|f| {
            let mut s = String::new();
            let meta = FrameMeta {
                ts_micros: 0,
                queue: 0,
                dir: f.dir,
            };
            d.decode(&meta, &f.frame, &mut s);
            s
        })
        .collect()
}

fn lines(opts: DecodeOptions) -> Vec<String> {
    decode_all(&mut LineDecoder::new(DecodeOptions {
        no_prefix: true,
        ..opts
    }))
}

#[test]
fn the_sample_session_reads_like_tcpdump() {
    let l = lines(DecodeOptions::default());
    let want = [
        "ARP, Request who-has 10.9.0.1 tell 10.9.0.2, length 28",
        "ARP, Reply 10.9.0.1 is-at 52:54:00:00:00:01, length 28",
        "IP 10.9.0.1 > 10.9.0.2: ICMP echo request, id 16962, seq 1, length 64",
        "IP 10.9.0.2 > 10.9.0.1: ICMP echo reply, id 16962, seq 1, length 64",
        "IP 10.9.0.1.40000 > 10.9.0.2.80: Flags [S], seq 1000000, win 64240, options [mss 1460,nop,wscale 7,sackOK,TS val 1000 ecr 0], length 0",
        "IP 10.9.0.2.80 > 10.9.0.1.40000: Flags [S.], seq 7000000, ack 1000001, win 64240, options [mss 1460,nop,wscale 7,sackOK,TS val 1000 ecr 1], length 0",
        "IP 10.9.0.1.40000 > 10.9.0.2.80: Flags [.], ack 1, win 64240, options [nop,nop,TS val 1001 ecr 1], length 0",
        "IP 10.9.0.1.40000 > 10.9.0.2.80: Flags [P.], seq 1:41, ack 1, win 64240, options [nop,nop,TS val 1001 ecr 1], length 40",
        "IP 10.9.0.2.80 > 10.9.0.1.40000: Flags [P.], seq 1:41, ack 41, win 64240, options [nop,nop,TS val 1001 ecr 41], length 40",
        "IP 10.9.0.2.80 > 10.9.0.1.40000: Flags [P.], seq 1:41, ack 41, win 64240, options [nop,nop,TS val 1001 ecr 41], length 40",
        "IP 10.9.0.2.53124 > 10.9.0.53.53: 43981+ A? example.com. (29)",
        "IP 10.9.0.53.53 > 10.9.0.2.53124: 43981 1/0/0 A 10.9.0.80 (45)",
        "IP 0.0.0.0.68 > 255.255.255.255.67: BOOTP/DHCP, Request from 52:54:00:00:00:02, length 300, xid 0x3903f326, DHCP Discover",
        "IP 10.9.0.1 > 10.9.0.2: udp (frag 4660:100@1480)",
    ];
    assert_eq!(l, want);
}

#[test]
fn absolute_sequence_numbers_and_link_header() {
    let l = lines(DecodeOptions {
        absolute_seq: true,
        link: true,
        ..DecodeOptions::default()
    });
    assert_eq!(
        l[0],
        "52:54:00:00:00:02 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: ARP, Request who-has 10.9.0.1 tell 10.9.0.2, length 28"
    );
    assert!(l[7].ends_with(
        "Flags [P.], seq 1000001:1000041, ack 7000001, win 64240, options [nop,nop,TS val 1001 ecr 1], length 40"
    ));
}

#[test]
fn verbosity_adds_ip_fields_and_checksum_status() {
    let v = lines(DecodeOptions {
        verbosity: 1,
        ..DecodeOptions::default()
    });
    assert!(v[4].starts_with(
        "IP (tos 0x0, ttl 64, id 16960, offset 0, flags [DF], proto TCP (6), length 60) 10.9.0.1.40000 > 10.9.0.2.80: Flags [S], cksum 0x5633 (correct), seq 1000000"
    ), "{}", v[4]);
    assert!(v[10].contains("[udp sum 0xa066 (correct)] 43981+ A? example.com."));
    let vv = lines(DecodeOptions {
        verbosity: 2,
        ..DecodeOptions::default()
    });
    assert!(
        vv[2].contains("length 84, cksum 0x2694 (correct))"),
        "{}",
        vv[2]
    );
    assert!(vv[11].contains("43981 q: A? example.com. 1/0/0 A 10.9.0.80"));
    assert!(vv[13].contains("offset 1480, flags [none]"));
}

#[test]
fn a_bad_checksum_is_reported_incorrect() {
    let mut frame = sample::session()[7].frame.clone();
    let last = frame.len() - 1;
    frame[last] ^= 0xff;
    let mut d = LineDecoder::new(DecodeOptions {
        verbosity: 1,
        no_prefix: true,
        ..DecodeOptions::default()
    });
    let mut s = String::new();
    d.decode(
        &FrameMeta {
            ts_micros: 0,
            queue: 0,
            dir: Direction::In,
        },
        &frame,
        &mut s,
    );
    assert!(s.contains("(incorrect)"), "{s}");
}

#[test]
fn the_prefix_is_time_direction_and_queue() {
    let mut d = LineDecoder::new(DecodeOptions::default());
    let mut s = String::new();
    // 2023-11-14 22:13:20.000042 UTC.
    let meta = FrameMeta {
        ts_micros: 1_700_000_000_000_042,
        queue: 3,
        dir: Direction::Out,
    };
    d.decode(&meta, &sample::arp_request(), &mut s);
    assert_eq!(
        s,
        "22:13:20.000042 out q3 ARP, Request who-has 10.9.0.1 tell 10.9.0.2, length 28"
    );
}

struct Upper;
impl Decoder for Upper {
    fn matches(&self, meta: &PayloadMeta) -> bool {
        meta.has_port(80)
    }
    fn decode(&self, payload: &[u8], out: &mut String) {
        out.push_str("UPPER ");
        out.push_str(&payload.len().to_string());
    }
}

#[test]
fn a_registered_decoder_decodes_its_port() {
    let mut d = LineDecoder::new(DecodeOptions {
        no_prefix: true,
        ..DecodeOptions::default()
    });
    d.register(Arc::new(Upper));
    let l = decode_all(&mut d);
    assert!(l[7].ends_with("length 40: UPPER 40"), "{}", l[7]);
    // Not on empty segments.
    assert!(l[6].ends_with("length 0"), "{}", l[6]);
    // Not on other ports.
    assert!(l[10].ends_with("(29)"));
}

/// Every prefix of every sample frame, and many corrupted copies, decode without panicking.
#[test]
fn never_panics_on_any_input() {
    let mut d = LineDecoder::new(DecodeOptions {
        verbosity: 2,
        link: true,
        ..DecodeOptions::default()
    });
    let meta = FrameMeta {
        ts_micros: u64::MAX,
        queue: u16::MAX,
        dir: Direction::In,
    };
    let mut s = String::new();
    let mut seed = 0x9e37_79b9u32;
    for f in sample::session() {
        for n in 0..=f.frame.len() {
            s.clear();
            d.decode(&meta, &f.frame[..n], &mut s);
        }
        for _ in 0..500 {
            let mut b = f.frame.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let i = seed as usize % b.len();
                b[i] = (seed >> 24) as u8;
            }
            s.clear();
            d.decode(&meta, &b, &mut s);
        }
    }
}
