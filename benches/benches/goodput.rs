//! Goodput against loss rate in the simulated network, per congestion controller, with the
//! Mathis et al. bound (MSS/RTT * 1.22/sqrt(p)) beside it. Not a test: it prints a table.
//!
//! `cargo bench -p tapir-benches --bench goodput` (set GOODPUT_MB for the transfer size).
//! Path: 10 ms each way (20 ms RTT), a 100 Mbit/s bottleneck with a 128 KiB tail-drop queue,
//! random loss on the data direction only; each cell is the mean of 3 seeds.

use protocols::tcp::TcpConfig;
use protocols::time::Duration;
use sim::{run_transfer, LinkConfig, Network, Transfer};

const RTT_MS: u64 = 20;
const SEEDS: u64 = 3;

/// The controllers this tree has.
fn controllers() -> Vec<(&'static str, TcpConfig)> {
    #[cfg(tapir_has_cubic)]
    {
        use protocols::tcp::congestion::CongestionAlgorithm;
        let cubic = TcpConfig {
            congestion: CongestionAlgorithm::Cubic,
            ..TcpConfig::default()
        };
        let reno = TcpConfig {
            congestion: CongestionAlgorithm::NewReno,
            ..TcpConfig::default()
        };
        vec![("CUBIC", cubic), ("NewReno", reno)]
    }
    #[cfg(not(tapir_has_cubic))]
    {
        vec![("NewReno", TcpConfig::default())]
    }
}

fn goodput(tcp: &TcpConfig, loss: f64, seed: u64, bytes: usize) -> Result<f64, String> {
    let path = LinkConfig {
        delay: Duration::from_millis(RTT_MS / 2),
        bandwidth: 100_000_000,
        queue_bytes: 128 * 1024,
        ..LinkConfig::default()
    };
    let mut net = Network::new(seed, path.clone());
    let a = net.add_host(1, |c| c.tcp = tcp.clone());
    let b = net.add_host(2, |c| c.tcp = tcp.clone());
    net.set_link(a, b, LinkConfig { loss, ..path });
    let r = run_transfer(&mut net, a, b, &Transfer::one_way(bytes)).map_err(|e| e.to_string())?;
    Ok(r.goodput_a_to_b())
}

fn main() {
    let mb: usize = std::env::var("GOODPUT_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let mss = f64::from(TcpConfig::default().mss - 12); // timestamps take 12 bytes
    println!(
        "goodput, {mb} MB one way, RTT {RTT_MS} ms, 100 Mbit/s bottleneck, mean of {SEEDS} seeds (virtual time)"
    );
    println!(
        "{:<8} {:>7} {:>14} {:>14} {:>10}",
        "cc", "loss", "goodput Mb/s", "Mathis Mb/s", "ratio"
    );
    for (name, tcp) in controllers() {
        for loss in [0.0, 0.001, 0.01, 0.05] {
            let mut sum = 0.0;
            let mut failures = Vec::new();
            for seed in 1..=SEEDS {
                match goodput(&tcp, loss, seed, mb << 20) {
                    Ok(g) => sum += g,
                    Err(e) => failures.push(format!("seed {seed}: {e}")),
                }
            }
            let ok = SEEDS as usize - failures.len();
            let mean = if ok > 0 { sum / ok as f64 / 1e6 } else { 0.0 };
            let (mathis, ratio) = if loss > 0.0 {
                let bound = mss * 8.0 / (RTT_MS as f64 / 1000.0) * 1.22 / loss.sqrt() / 1e6;
                (format!("{bound:.1}"), format!("{:.2}", mean / bound))
            } else {
                ("-".into(), "-".into())
            };
            println!(
                "{name:<8} {:>6.1}% {mean:>14.1} {mathis:>14} {ratio:>10}",
                loss * 100.0
            );
            for f in failures {
                println!("         failed: {f}");
            }
        }
    }
}
