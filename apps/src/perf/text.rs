//! iperf3's text layout: units, summary, interval and UDP lines, and the UDP figures they show.

use super::proto::StreamResult;

/// iperf3's unit formatting (`unit_snprintf` with 'a'): bytes in binary units, rates in decimal.
pub fn format_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    let (v, unit) = if b >= 1024.0 * 1024.0 * 1024.0 {
        (b / (1024.0 * 1024.0 * 1024.0), "GBytes")
    } else if b >= 1024.0 * 1024.0 {
        (b / (1024.0 * 1024.0), "MBytes")
    } else if b >= 1024.0 {
        (b / 1024.0, "KBytes")
    } else {
        (b, "Bytes")
    };
    format!("{} {unit}", three_digits(v))
}

pub fn format_rate(bits_per_second: f64) -> String {
    let b = bits_per_second;
    let (v, unit) = if b >= 1e9 {
        (b / 1e9, "Gbits/sec")
    } else if b >= 1e6 {
        (b / 1e6, "Mbits/sec")
    } else if b >= 1e3 {
        (b / 1e3, "Kbits/sec")
    } else {
        (b, "bits/sec")
    };
    format!("{} {unit}", three_digits(v))
}

/// Three significant digits, as iperf3 prints them.
fn three_digits(v: f64) -> String {
    if v < 9.995 {
        format!("{v:.2}")
    } else if v < 99.95 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// A UDP receiver's figures over a test: mean jitter in seconds, datagrams lost and expected.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UdpSummary {
    pub jitter: f64,
    pub lost: u64,
    pub packets: u64,
}

impl UdpSummary {
    /// Over a receiver's streams, as iperf3 sums them (the jitter averaged).
    pub fn of(streams: &[StreamResult]) -> Self {
        let n = streams.len().max(1) as f64;
        UdpSummary {
            jitter: streams.iter().map(|s| s.jitter).sum::<f64>() / n,
            lost: streams
                .iter()
                .map(|s| s.errors.saturating_sub(s.omitted_errors))
                .sum(),
            packets: streams
                .iter()
                .map(|s| s.packets.saturating_sub(s.omitted_packets))
                .sum(),
        }
    }

    pub fn lost_percent(&self) -> f64 {
        if self.packets > 0 {
            100.0 * self.lost as f64 / self.packets as f64
        } else {
            0.0
        }
    }
}

/// Both ends of a UDP test: the sender's datagrams and the receiver's jitter and loss.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UdpReport {
    pub sender: UdpSummary,
    pub receiver: UdpSummary,
}

/// A UDP summary line in iperf3's layout:
/// `[  5]   0.00-2.00   sec  11.9 MBytes  50.0 Mbits/sec  0.068 ms  0/8629 (0%)  receiver`.
pub fn udp_summary_line(
    label: &str,
    seconds: f64,
    bytes: u64,
    u: &UdpSummary,
    role: &str,
) -> String {
    let rate = if seconds > 0.0 {
        bytes as f64 * 8.0 / seconds
    } else {
        0.0
    };
    let pps = if seconds > 0.0 {
        u.packets.saturating_sub(u.lost) as f64 / seconds
    } else {
        0.0
    };
    format!(
        "[{label:>3}]   0.00-{seconds:<5.2} sec  {:>11}  {:>15}  {:.3} ms  {}/{} ({}%)  {role}  \
         {pps:.0} datagrams/sec",
        format_bytes(bytes),
        format_rate(rate),
        u.jitter * 1000.0,
        u.lost,
        u.packets,
        two_digits(u.lost_percent())
    )
}

/// Two significant digits without trailing zeros (C's `%.2g` for a percentage).
fn two_digits(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".into();
    }
    let places = (1 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.places$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// An interim line in iperf3's layout: `[  5]   1.00-2.00   sec  2.19 GBytes  18.8 Gbits/sec`.
pub fn interval_line(label: &str, start: f64, end: f64, bytes: u64) -> String {
    let seconds = end - start;
    let rate = if seconds > 0.0 {
        bytes as f64 * 8.0 / seconds
    } else {
        0.0
    };
    format!(
        "[{label:>3}] {start:>6.2}-{end:<6.2} sec  {:>11}  {:>15}",
        format_bytes(bytes),
        format_rate(rate)
    )
}

/// A summary line in iperf3's layout: `[SUM]   0.00-2.00   sec  2.19 GBytes  9.41 Gbits/sec  sender`.
pub fn summary_line(label: &str, seconds: f64, bytes: u64, role: &str) -> String {
    let rate = if seconds > 0.0 {
        bytes as f64 * 8.0 / seconds
    } else {
        0.0
    };
    format!(
        "[{label:>3}]   0.00-{seconds:<5.2} sec  {:>11}  {:>15}                  {role}",
        format_bytes(bytes),
        format_rate(rate)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_summaries_look_like_iperf3() {
        let u = UdpSummary::of(&[StreamResult {
            jitter: 0.000068,
            errors: 3,
            omitted_errors: 1,
            packets: 1002,
            omitted_packets: 2,
            ..Default::default()
        }]);
        assert_eq!((u.lost, u.packets), (2, 1000));
        let line = udp_summary_line("  5", 2.0, 12_500_000, &u, "receiver");
        assert!(
            line.ends_with("0.068 ms  2/1000 (0.2%)  receiver  499 datagrams/sec"),
            "{line}"
        );
        assert_eq!(two_digits(0.0), "0");
        assert_eq!(two_digits(12.34), "12");
        assert_eq!(two_digits(1.25), "1.2");
    }

    #[test]
    fn units_look_like_iperf3() {
        assert_eq!(format_bytes(2_351_000_000), "2.19 GBytes");
        assert_eq!(format_rate(9.41e9), "9.41 Gbits/sec");
        assert_eq!(format_rate(943e6), "943 Mbits/sec");
    }
}
