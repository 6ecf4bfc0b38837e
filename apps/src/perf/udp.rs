//! UDP tests (`iperf3 -u`): iperf3's datagram format, the receiver's counting and the sender's
//! pacing ([`super::udp_stream`] runs them on the workers).
//!
//! iperf3 opens no data connection for UDP: each client stream sends a 4-byte "connect"
//! datagram to the server's port and waits for a 4-byte reply, and the data datagrams follow
//! once the test runs. Every data datagram starts with the sender's wall-clock time (seconds
//! and microseconds, 32 bits each) and a sequence number counted from 1 (32 bits, or 64 when
//! the client asked for "udp_counters_64bit"), all in network order. The receiver counts loss,
//! out-of-order datagrams and jitter (RFC 1889 A.8) from them as `iperf_udp_recv` does.

use std::net::SocketAddrV4;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The connect datagram and its reply, as iperf3 3.12 writes them: a 32-bit integer in the
/// sender's own byte order (`write(s, &buf, sizeof(buf))`), "9876" and "6789" on x86.
pub const CONNECT_MSG: u32 = 0x3637_3839;
pub const CONNECT_REPLY: u32 = 0x3938_3736;
/// Before 3.11: 123456789.
const LEGACY_CONNECT_MSG: u32 = 123_456_789;

/// Whether `d` is a client stream's connect datagram (either byte order, current or legacy).
pub fn is_connect_msg(d: &[u8]) -> bool {
    let Ok(b) = <[u8; 4]>::try_from(d) else {
        return false;
    };
    [u32::from_be_bytes(b), u32::from_le_bytes(b)]
        .iter()
        .any(|&v| v == CONNECT_MSG || v == LEGACY_CONNECT_MSG)
}

/// The reply, in this host's byte order as iperf3 sends it.
pub fn connect_reply() -> [u8; 4] {
    CONNECT_REPLY.to_ne_bytes()
}

/// The smallest datagram with a header: 12 bytes, 16 with 64-bit counters.
pub fn header_len(wide: bool) -> usize {
    if wide {
        16
    } else {
        12
    }
}

/// A datagram's header: the sending time in seconds since the epoch, and its sequence number.
pub fn parse_header(d: &[u8], wide: bool) -> Option<(f64, u64)> {
    if d.len() < header_len(wide) {
        return None;
    }
    let u32_at = |i: usize| u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
    let sent = f64::from(u32_at(0)) + f64::from(u32_at(4)) / 1e6;
    let count = if wide {
        u64::from_be_bytes(d[8..16].try_into().ok()?)
    } else {
        u64::from(u32_at(8))
    };
    Some((sent, count))
}

/// Writes the header for datagram `count` sent at `now` (seconds and microseconds) into `d`.
pub fn write_header(d: &mut [u8], now: Duration, count: u64, wide: bool) {
    d[0..4].copy_from_slice(&(now.as_secs() as u32).to_be_bytes());
    d[4..8].copy_from_slice(&now.subsec_micros().to_be_bytes());
    if wide {
        d[8..16].copy_from_slice(&count.to_be_bytes());
    } else {
        d[8..12].copy_from_slice(&(count as u32).to_be_bytes());
    }
}

/// The wall clock as iperf3 stamps datagrams with it (`gettimeofday`).
pub fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// One receiving stream's figures, kept as iperf3 keeps them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecvStats {
    pub bytes: u64,
    /// The highest sequence number seen (iperf3's `packet_count`).
    pub packets: u64,
    /// Lost: gaps in the sequence, less one for each late arrival (`cnt_error`).
    pub errors: u64,
    pub out_of_order: u64,
    /// Seconds, smoothed by 1/16 per datagram.
    pub jitter: f64,
    prev_transit: f64,
    /// What the omitted seconds held.
    pub omitted_bytes: u64,
    pub omitted_packets: u64,
    pub omitted_errors: u64,
}

impl RecvStats {
    /// Counts a datagram of `len` bytes numbered `count`, sent at `sent` and arrived at
    /// `arrival` (seconds on the wall clock).
    pub fn on_datagram(&mut self, len: usize, count: u64, sent: f64, arrival: f64) {
        self.bytes += len as u64;
        if count > self.packets {
            // Forward; a gap is counted as lost until its datagrams turn up late.
            self.errors += count - 1 - self.packets;
            self.packets = count;
        } else {
            self.out_of_order += 1;
            self.errors = self.errors.saturating_sub(1);
        }
        // RFC 1889 A.8: the difference between consecutive transit times, whatever the offset
        // between the two clocks.
        let transit = (arrival - sent).abs();
        let d = (transit - self.prev_transit).abs();
        self.prev_transit = transit;
        self.jitter += (d - self.jitter) / 16.0;
    }

    /// The end of the omitted seconds (iperf3's `iperf_reset_stats`): what came so far is
    /// reported apart.
    pub fn end_omit(&mut self) {
        self.omitted_bytes = self.bytes;
        self.omitted_packets = self.packets;
        self.omitted_errors = self.errors;
    }
}

/// Sends at most `rate` bits per second (0: as fast as it can), as iperf3's throttle does: a
/// datagram may go whenever what was sent so far is below the rate times the time elapsed.
/// Time is passed in: `elapsed` is counted from the start of the sending.
#[derive(Debug, Clone)]
pub struct Pacer {
    rate: u64,
    sent_bits: u64,
}

impl Pacer {
    pub fn new(rate: u64) -> Self {
        Pacer { rate, sent_bits: 0 }
    }

    /// How long after `elapsed` the next datagram may go (zero: now).
    pub fn wait(&self, elapsed: Duration) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let due = Duration::from_secs_f64(self.sent_bits as f64 / self.rate as f64);
        due.saturating_sub(elapsed)
    }

    pub fn sent(&mut self, bytes: usize) {
        self.sent_bits += bytes as u64 * 8;
    }
}

/// The client streams of a test, by the address their connect datagram came from.
pub fn stream_index(peers: &[SocketAddrV4], from: SocketAddrV4) -> Option<usize> {
    peers.iter().position(|&p| p == from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_messages_are_recognised() {
        assert!(is_connect_msg(&CONNECT_MSG.to_ne_bytes()));
        assert!(is_connect_msg(b"9876"));
        assert!(is_connect_msg(&LEGACY_CONNECT_MSG.to_be_bytes()));
        assert!(!is_connect_msg(b"abcd"));
        assert!(!is_connect_msg(b"98765"));
    }

    #[test]
    fn headers_round_trip_in_both_widths() {
        for wide in [false, true] {
            let mut d = [0u8; 20];
            let now = Duration::new(1_700_000_000, 250_000_000);
            write_header(&mut d, now, 7, wide);
            let (sent, count) = parse_header(&d, wide).unwrap();
            assert_eq!(count, 7);
            assert!((sent - 1_700_000_000.25).abs() < 1e-6);
        }
        assert_eq!(
            &{
                let mut d = [0u8; 12];
                write_header(&mut d, Duration::new(1, 2000), 3, false);
                d
            },
            &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]
        );
        assert!(parse_header(&[0; 11], false).is_none());
    }

    #[test]
    fn loss_and_reordering_are_counted_as_iperf3_counts_them() {
        let mut s = RecvStats::default();
        for c in [1, 2, 4, 5, 3, 8] {
            s.on_datagram(100, c, 0.0, 0.001);
        }
        // 3 was late (a gap of one, then taken back); 6 and 7 are lost.
        assert_eq!((s.packets, s.errors, s.out_of_order), (8, 2, 1));
        assert_eq!(s.bytes, 600);
    }

    #[test]
    fn jitter_follows_rfc1889() {
        let mut s = RecvStats::default();
        s.on_datagram(1, 1, 10.0, 10.001);
        s.on_datagram(1, 2, 11.0, 11.003);
        // |0.001 - 0| / 16, then + (|0.003 - 0.001| - j) / 16.
        let j1 = 0.001 / 16.0;
        let j2 = j1 + (0.002 - j1) / 16.0;
        assert!((s.jitter - j2).abs() < 1e-9, "{}", s.jitter);
    }

    #[test]
    fn pacing_holds_the_rate() {
        let mut p = Pacer::new(8_000_000); // 1 MB/s
        assert_eq!(p.wait(Duration::ZERO), Duration::ZERO);
        p.sent(100_000);
        assert_eq!(p.wait(Duration::ZERO), Duration::from_millis(100));
        assert_eq!(p.wait(Duration::from_millis(30)), Duration::from_millis(70));
        assert_eq!(p.wait(Duration::from_millis(150)), Duration::ZERO);
        let mut unlimited = Pacer::new(0);
        unlimited.sent(1 << 30);
        assert_eq!(unlimited.wait(Duration::ZERO), Duration::ZERO);
    }
}
