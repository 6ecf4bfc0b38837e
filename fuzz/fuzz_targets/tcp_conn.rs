//! One TCP connection driven by an arbitrary script of segments, application calls and time
//! steps. Nothing may panic, and the send/receive accounting must stay sane.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use protocols::tcp::{Connection, TcpConfig};
use protocols::time::{Duration, Instant};
use protocols::wire::{SeqNumber, TcpFlags, TcpRepr, TcpTimestamp};

#[derive(Debug, Arbitrary)]
enum Step {
    Segment { flags: u8, seq: u32, ack: Option<u32>, window: u16, len: u16, mss: Option<u16>, wscale: Option<u8>, sack_perm: bool, ts: Option<(u32, u32)>, sack: Option<(u32, u32)> },
    Send(u16),
    Recv(u16),
    Close,
    Abort,
    Wait(u16),
    Poll,
}

#[derive(Debug, Arbitrary)]
struct Script {
    active: bool,
    steps: Vec<Step>,
}

fuzz_target!(|script: Script| {
    let config = TcpConfig { rx_buffer: 8192, tx_buffer: 8192, ..TcpConfig::default() };
    let mut now = Instant::from_secs(1);
    let isn = SeqNumber(1000);
    let mut conn = if script.active {
        Connection::connect(&config, 40000, 80, isn, now)
    } else {
        let syn = TcpRepr { src_port: 80, dst_port: 40000, flags: TcpFlags::SYN, seq_number: SeqNumber(5000), window_len: 1000, max_seg_size: Some(536), ..TcpRepr::default() };
        Connection::accept(&config, &syn, isn, now)
    };
    let payload = [0x5au8; 2048];
    let mut buf = vec![0u8; 2048];
    for step in script.steps.into_iter().take(256) {
        match step {
            Step::Segment { flags, seq, ack, window, len, mss, wscale, sack_perm, ts, sack } => {
                let len = usize::from(len) % payload.len();
                let mut flags = TcpFlags(flags);
                flags.0 &= !TcpFlags::ACK.0;
                if ack.is_some() {
                    flags |= TcpFlags::ACK;
                }
                let mut sack_ranges = [None; 4];
                sack_ranges[0] = sack.map(|(a, b)| (SeqNumber(a), SeqNumber(b)));
                let seg = TcpRepr {
                    src_port: 80,
                    dst_port: 40000,
                    flags,
                    seq_number: SeqNumber(seq),
                    ack_number: ack.map(SeqNumber),
                    window_len: window,
                    max_seg_size: mss,
                    window_scale: wscale.map(|w| w.min(14)),
                    sack_permitted: sack_perm,
                    sack_ranges,
                    timestamp: ts.map(|(tsval, tsecr)| TcpTimestamp { tsval, tsecr }),
                    payload_len: len,
                    ..TcpRepr::default()
                };
                conn.handle_segment(now, &seg, &payload[..len]);
            }
            Step::Send(n) => {
                let n = usize::from(n) % payload.len();
                if let Ok(sent) = conn.send(&payload[..n]) {
                    assert!(sent <= n);
                }
            }
            Step::Recv(n) => {
                let n = usize::from(n) % buf.len();
                if let Ok(got) = conn.recv(&mut buf[..n]) {
                    assert!(got <= n);
                }
            }
            Step::Close => conn.close(),
            Step::Abort => conn.abort(),
            Step::Wait(ms) => {
                now += Duration::from_millis(u64::from(ms));
                if conn.poll_at().is_some_and(|t| t <= now) {
                    conn.handle_timeout(now);
                }
            }
            Step::Poll => {}
        }
        let mut sent = 0;
        while let Some(r) = conn.poll_transmit(now, &mut buf) {
            assert!(r.payload_len <= buf.len());
            sent += 1;
            if sent > 1000 {
                panic!("poll_transmit never runs dry");
            }
        }
        assert!(conn.send_queue() <= config.tx_buffer);
        assert!(conn.recv_queue() <= config.rx_buffer);
    }
});
