//! What the matrix checks on the wire: the options of every SYN and SYN-ACK, and the largest
//! segments each side sent, from a capture on the kernel side of the tap that runs through a
//! row's exchanges.

use std::net::Ipv4Addr;

use super::rows::Row;
use crate::common::capture::{tcp_options, Capture, SynOptions};
use crate::common::raw::parse_tcp;

/// One captured TCP segment.
#[derive(Debug, Clone)]
pub struct Seg {
    pub from_tapir: bool,
    /// Payload per segment: the frame's, or its GSO size when it is offloaded (many segments).
    pub len: usize,
    /// The options, for SYNs only.
    pub syn: Option<SynOptions>,
}

pub fn capture(ns: &str, tap: &str, tapir: Ipv4Addr) -> Capture<Seg> {
    Capture::open_map_gso(ns, tap, move |gso, f| {
        let t = parse_tcp(f)?;
        let from_tapir = t.src == tapir;
        if !from_tapir && t.dst != tapir {
            return None;
        }
        let syn = if t.flags & 0x02 != 0 {
            tcp_options(f)
        } else {
            None
        };
        Some(Seg {
            from_tapir,
            len: if gso > 0 {
                t.len.min(usize::from(gso))
            } else {
                t.len
            },
            syn,
        })
    })
}

fn who(from_tapir: bool, o: &SynOptions) -> &'static str {
    match (from_tapir, o.ack) {
        (true, false) => "tapir's SYN",
        (true, true) => "tapir's SYN-ACK",
        (false, false) => "the kernel's SYN",
        (false, true) => "the kernel's SYN-ACK",
    }
}

/// Checks the segments of a row against what its configuration implies; returns a line of
/// figures for the log.
pub fn check(row: &Row, segs: &[Seg]) -> String {
    let name = row.name;
    let syns: Vec<(bool, &SynOptions)> = segs
        .iter()
        .filter_map(|s| s.syn.as_ref().map(|o| (s.from_tapir, o)))
        .collect();
    for kind in [(true, false), (true, true), (false, false), (false, true)] {
        assert!(
            syns.iter().any(|(t, o)| (*t, o.ack) == kind),
            "{name}: no {} captured",
            who(
                kind.0,
                &SynOptions {
                    ack: kind.1,
                    ..SynOptions::default()
                }
            )
        );
    }
    let off = |k: &str| row.sysctl(k) == Some("0");
    for &(from_tapir, o) in &syns {
        let w = who(from_tapir, o);
        let mss = o
            .mss
            .unwrap_or_else(|| panic!("{name}: {w} without MSS: {o:?}"));
        let want = if from_tapir {
            row.tapir_mss()
        } else {
            row.kernel_mss()
        };
        assert_eq!(mss, want, "{name}: the MSS {w} offers: {o:?}");
        // The kernel's options as configured; tapir's SYN offers all three, its SYN-ACK only
        // what the kernel's SYN offered (RFC 7323 §1.3 and §3.2, RFC 2018 §2).
        let offered = !(from_tapir && o.ack);
        for (opt, sysctl, has) in [
            (
                "window scale",
                "tcp_window_scaling",
                o.window_scale.is_some(),
            ),
            ("SACK-permitted", "tcp_sack", o.sack_permitted),
            ("timestamps", "tcp_timestamps", o.timestamps),
        ] {
            let expect = if from_tapir && offered {
                true
            } else {
                !off(sysctl)
            };
            assert_eq!(has, expect, "{name}: {opt} in {w}: {o:?}");
        }
        if !from_tapir && !o.ack && row.sysctl("tcp_ecn") == Some("1") {
            assert!(
                o.ece && o.cwr,
                "{name}: {w} is not ECN-setup (ECE and CWR): {o:?}"
            );
        }
        // An ECN-setup SYN-ACK carries ECE without CWR (RFC 3168 §6.1.1).
        if o.ack {
            assert!(!o.cwr, "{name}: {w} with CWR: {o:?}");
        }
    }
    let biggest = |from_tapir: bool| {
        segs.iter()
            .filter(|s| s.from_tapir == from_tapir)
            .map(|s| s.len)
            .max()
            .unwrap_or(0)
    };
    let (tapir_max, kernel_max) = (biggest(true), biggest(false));
    let to_kernel = row.kernel_mss().min(row.tapir_mss());
    assert!(
        tapir_max <= usize::from(to_kernel),
        "{name}: tapir sent a segment of {tapir_max} bytes to a peer whose MSS is {to_kernel}"
    );
    assert!(
        kernel_max <= usize::from(row.tapir_mss()),
        "{name}: the kernel sent {kernel_max} bytes to tapir, whose MSS is {}",
        row.tapir_mss()
    );
    // Full-sized segments flowed both ways (a jumbo MSS that is offered but not used
    // fails here): within 40 bytes of the MSS, the room TCP options take from it.
    let full = |max: usize, mss: u16| max + 40 > usize::from(mss);
    assert!(
        full(tapir_max, to_kernel) && full(kernel_max, row.tapir_mss()),
        "{name}: largest segments tapir {tapir_max}, kernel {kernel_max}: not full-sized (MSS {to_kernel} to the kernel, {} to tapir)",
        row.tapir_mss()
    );
    format!(
        "{} segments captured, largest payload tapir {tapir_max} kernel {kernel_max}",
        segs.len()
    )
}
