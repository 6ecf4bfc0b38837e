//! Opening: active, passive, simultaneous; SYN-SENT checks; options; the closed-port reply and
//! the ISN generator.

use std::net::Ipv4Addr;

use super::*;
use crate::tcp::{rst_for_unexpected, ConnError, IsnGenerator, RecvError, SendError};
use crate::wire::tcp::TcpTimestamp;

fn connect(cfg: &TcpConfig) -> Harness {
    Harness {
        conn: Connection::connect(cfg, LOCAL_PORT, REMOTE_PORT, LOCAL_ISS, ms(0)),
        now: ms(0),
    }
}

#[test]
fn active_open_offers_options_and_completes() {
    let cfg = TcpConfig::default();
    let mut h = connect(&cfg);
    assert_eq!(h.conn.state(), State::SynSent);
    assert_eq!(h.conn.send(b"x"), Err(SendError::NotConnected));
    let (syn, payload) = h.expect();
    assert!(payload.is_empty());
    assert_eq!(syn.flags, SYN);
    assert_eq!(syn.seq_number, LOCAL_ISS);
    assert_eq!(syn.ack_number, None);
    assert_eq!(syn.max_seg_size, Some(1460));
    // 256 KiB needs a shift of 3 to fit 16 bits; a SYN's window is never scaled.
    assert_eq!(syn.window_scale, Some(3));
    assert_eq!(syn.window_len, 65535);
    assert!(syn.sack_permitted);
    let ts = syn.timestamp.expect("timestamps offered");
    assert_eq!(ts.tsecr, 0);
    h.expect_nothing();
    assert_eq!(h.conn.poll_at(), Some(ms(1000)), "initial RTO is 1 s");

    h.now = ms(30);
    let synack = TcpRepr {
        seq_number: REMOTE_ISS,
        max_seg_size: Some(1200),
        window_scale: Some(2),
        sack_permitted: true,
        timestamp: Some(TcpTimestamp {
            tsval: 777,
            tsecr: ts.tsval,
        }),
        ..peer(SYN, 0, Some(0), 1000)
    };
    h.send(synack, &[]);
    assert_eq!(h.conn.state(), State::Established);
    assert!(h.conn.take_wakeup());
    let (ack, _) = h.expect();
    assert_eq!(ack.flags, ACK);
    assert_eq!(ack.seq_number, lseq(0));
    assert_eq!(ack.ack_number, Some(rseq(0)));
    assert_eq!(ack.timestamp.map(|t| t.tsecr), Some(777));
    // Scaled from now on: 256 KiB >> 3.
    assert_eq!(ack.window_len, 32768);
    assert_eq!(h.conn.window_scales(), (3, 2));
    assert_eq!(
        h.conn.peer_window(),
        1000,
        "the SYN-ACK's window is not scaled"
    );
    assert_eq!(h.conn.send_mss(), 1200 - 12);
    assert_eq!(h.conn.rtt(), Some(Duration::from_millis(30)));
    assert_eq!(h.conn.poll_at(), None, "nothing outstanding");
    h.expect_nothing();
}

#[test]
fn options_only_when_both_offer() {
    let cfg = TcpConfig::default();
    let mut h = connect(&cfg);
    h.expect();
    h.send(
        TcpRepr {
            seq_number: REMOTE_ISS,
            ..peer(SYN, 0, Some(0), 5000)
        },
        &[],
    );
    let (ack, _) = h.expect();
    assert_eq!(ack.timestamp, None);
    assert_eq!(
        ack.window_len, 65535,
        "no scaling without the peer's option"
    );
    assert_eq!(h.conn.window_scales(), (0, 0));
    // No MSS option: RFC 9293 default 536.
    assert_eq!(h.conn.send_mss(), 536);
}

#[test]
fn passive_open() {
    let cfg = TcpConfig {
        mss: 1400,
        ..TcpConfig::default()
    };
    let syn = TcpRepr {
        seq_number: REMOTE_ISS,
        max_seg_size: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamp: Some(TcpTimestamp {
            tsval: 100,
            tsecr: 0,
        }),
        window_len: 64240,
        ..peer(SYN, 0, None, 0)
    };
    let mut h = Harness {
        conn: Connection::accept(&cfg, &syn, LOCAL_ISS, ms(0)),
        now: ms(0),
    };
    assert_eq!(h.conn.state(), State::SynReceived);
    assert_eq!(h.conn.local_port(), LOCAL_PORT);
    assert_eq!(h.conn.remote_port(), REMOTE_PORT);
    let (synack, _) = h.expect();
    assert_eq!(synack.flags, SYN | ACK);
    assert_eq!(synack.seq_number, LOCAL_ISS);
    assert_eq!(synack.ack_number, Some(rseq(0)));
    assert_eq!(synack.max_seg_size, Some(1400));
    assert_eq!(synack.window_scale, Some(3));
    assert!(synack.sack_permitted);
    assert_eq!(synack.timestamp.map(|t| t.tsecr), Some(100));
    h.expect_nothing();

    // A retransmitted SYN gets the SYN-ACK again.
    h.now = ms(5);
    h.send(syn, &[]);
    let (again, _) = h.expect();
    assert_eq!(again.flags, SYN | ACK);

    h.now = ms(20);
    let ack = TcpRepr {
        timestamp: Some(TcpTimestamp {
            tsval: 120,
            tsecr: 0,
        }),
        ..peer(ACK, 0, Some(0), 500)
    };
    h.send(ack, &[]);
    assert_eq!(h.conn.state(), State::Established);
    assert_eq!(h.conn.peer_window(), 500 << 7);
    assert_eq!(h.conn.send(b"hello"), Ok(5));
    let (data, payload) = h.expect();
    assert_eq!(payload, b"hello");
    assert_eq!(data.flags, ACK | PSH);
    assert_eq!(data.seq_number, lseq(0));
}

#[test]
fn passive_open_without_options() {
    let cfg = TcpConfig::default();
    let syn = TcpRepr {
        seq_number: REMOTE_ISS,
        ..peer(SYN, 0, None, 8192)
    };
    let mut h = Harness {
        conn: Connection::accept(&cfg, &syn, LOCAL_ISS, ms(0)),
        now: ms(0),
    };
    let (synack, _) = h.expect();
    assert_eq!(synack.window_scale, None);
    assert!(!synack.sack_permitted);
    assert_eq!(synack.timestamp, None);
    assert_eq!(synack.max_seg_size, Some(1460));
}

#[test]
fn synack_bad_ack_in_syn_received_gets_rst() {
    let cfg = plain_config();
    let syn = TcpRepr {
        seq_number: REMOTE_ISS,
        ..peer(SYN, 0, None, 8192)
    };
    let mut h = Harness {
        conn: Connection::accept(&cfg, &syn, LOCAL_ISS, ms(0)),
        now: ms(0),
    };
    h.expect();
    h.send(peer(ACK, 0, Some(500), 8192), &[]);
    let (rst, _) = h.expect();
    assert_eq!(rst.flags, RST);
    assert_eq!(rst.seq_number, lseq(500));
    assert_eq!(h.conn.state(), State::SynReceived);
}

#[test]
fn simultaneous_open() {
    let cfg = plain_config();
    let mut h = connect(&cfg);
    h.expect();
    h.send(
        TcpRepr {
            seq_number: REMOTE_ISS,
            ..peer(SYN, 0, None, 8192)
        },
        &[],
    );
    assert_eq!(h.conn.state(), State::SynReceived);
    let (synack, _) = h.expect();
    assert_eq!(synack.flags, SYN | ACK);
    assert_eq!(synack.seq_number, LOCAL_ISS);
    assert_eq!(synack.ack_number, Some(rseq(0)));
    h.send(
        TcpRepr {
            seq_number: REMOTE_ISS,
            ..peer(SYN, 0, Some(0), 8192)
        },
        &[],
    );
    // Its SYN-ACK: the SYN is a duplicate now, the ACK completes the handshake.
    h.send(peer(ACK, 0, Some(0), 8192), &[]);
    assert_eq!(h.conn.state(), State::Established);
}

#[test]
fn rst_to_syn_is_refused() {
    let mut h = connect(&plain_config());
    h.expect();
    // A RST without an acceptable ACK is ignored in SYN-SENT.
    h.send(
        TcpRepr {
            seq_number: SeqNumber(0),
            ..peer(RST, 0, None, 0)
        },
        &[],
    );
    assert_eq!(h.conn.state(), State::SynSent);
    h.send(
        TcpRepr {
            seq_number: SeqNumber(0),
            ..peer(RST, 0, Some(0), 0)
        },
        &[],
    );
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.conn.error(), Some(ConnError::Refused));
    assert!(h.conn.is_closed());
    assert_eq!(
        h.conn.recv(&mut [0; 4]),
        Err(RecvError::Conn(ConnError::Refused))
    );
    assert_eq!(h.conn.send(b"x"), Err(SendError::NotConnected));
    h.expect_nothing();
}

#[test]
fn syn_sent_unacceptable_ack_gets_rst() {
    let mut h = connect(&plain_config());
    h.expect();
    let bad = TcpRepr {
        seq_number: REMOTE_ISS,
        ..peer(SYN, 0, Some(41), 8192)
    };
    h.send(bad, &[]);
    let (rst, _) = h.expect();
    assert_eq!(rst.flags, RST);
    assert_eq!(rst.seq_number, lseq(41));
    assert_eq!(h.conn.state(), State::SynSent);
}

#[test]
fn syn_retransmitted_with_backoff_then_times_out() {
    let mut h = connect(&plain_config());
    h.expect();
    let mut expected = ms(0);
    for i in 0..6u32 {
        expected += Duration::from_secs(1 << i);
        assert_eq!(h.fire_next_timer(), expected);
        let (syn, _) = h.expect();
        assert_eq!(syn.flags, SYN);
        assert_eq!(syn.seq_number, LOCAL_ISS);
        h.expect_nothing();
    }
    expected += Duration::from_secs(60);
    assert_eq!(
        h.fire_next_timer(),
        expected,
        "7th timeout: 64 s clamped to 60 s"
    );
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.conn.error(), Some(ConnError::TimedOut));
    h.expect_nothing();
}

#[test]
fn close_in_syn_sent_closes() {
    let mut h = connect(&plain_config());
    h.expect();
    h.conn.close();
    assert!(h.conn.is_closed());
    assert_eq!(h.conn.error(), None);
    assert_eq!(h.conn.poll_at(), None);
}

#[test]
fn rst_for_unexpected_segments() {
    // With ACK: <SEQ=SEG.ACK><CTL=RST>.
    let seg = TcpRepr {
        payload_len: 10,
        ..peer(ACK, 5, Some(77), 100)
    };
    let rst = rst_for_unexpected(&seg).expect("reply");
    assert_eq!(rst.flags, RST);
    assert_eq!(rst.seq_number, lseq(77));
    assert_eq!(rst.ack_number, None);
    assert_eq!((rst.src_port, rst.dst_port), (LOCAL_PORT, REMOTE_PORT));
    // Without ACK: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, SYN and FIN counted.
    let syn = TcpRepr {
        seq_number: REMOTE_ISS,
        payload_len: 3,
        ..peer(SYN | FIN, 0, None, 100)
    };
    let rst = rst_for_unexpected(&syn).expect("reply");
    assert_eq!(rst.flags, RST | ACK);
    assert_eq!(rst.seq_number, SeqNumber(0));
    assert_eq!(rst.ack_number, Some(REMOTE_ISS + 5));
    // Never answer a RST.
    assert_eq!(rst_for_unexpected(&peer(RST, 0, None, 0)), None);
    assert_eq!(rst_for_unexpected(&peer(RST, 0, Some(1), 0)), None);
}

#[test]
fn isn_generator() {
    let g = IsnGenerator::new([7; 16], [0; 16]);
    let a = (Ipv4Addr::new(10, 0, 0, 1), 40000);
    let b = (Ipv4Addr::new(10, 0, 0, 2), 80);
    let t = Instant::from_secs(10);
    let isn = g.isn(a, b, t);
    assert_eq!(isn, g.isn(a, b, t), "deterministic");
    // M ticks every 4 us.
    assert_eq!(g.isn(a, b, t + Duration::from_micros(4)), isn + 1);
    assert_eq!(g.isn(a, b, t + Duration::from_millis(4)), isn + 1000);
    assert_ne!(g.isn(b, a, t), isn, "depends on direction");
    assert_ne!(g.isn((a.0, 40001), b, t), isn, "depends on the port");
    assert_ne!(
        g.isn(a, (Ipv4Addr::new(10, 0, 0, 3), 80), t),
        isn,
        "depends on the address"
    );
    assert_ne!(
        IsnGenerator::new([8; 16], [0; 16]).isn(a, b, t),
        isn,
        "depends on the key"
    );
    assert!(!format!("{g:?}").contains('7'), "the key is not printed");
}
