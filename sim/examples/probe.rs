//! Replays one transfer with a frame trace on stderr: `cargo run -p tapir-sim --example probe --
//! MB loss|ackloss|hostile|clean SEED [trace-from-seconds]`.
use protocols::time::{Duration, Instant};
use sim::{run_transfer, LinkConfig, Network, Transfer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mb: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let which = args.get(2).cloned().unwrap_or("clean".into());
    let seed: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let trace_from: Option<u64> = args.get(4).and_then(|s| s.parse().ok());
    let link = match which.as_str() {
        "hostile" => LinkConfig::hostile(),
        "loss" => LinkConfig {
            loss: 0.05,
            ..LinkConfig::default()
        },
        _ => LinkConfig::with_delay(Duration::from_millis(5)),
    };
    let mut net = Network::new(seed, link.clone());
    let a = net.add_host(1, |_| {});
    let b = net.add_host(2, |_| {});
    let t = if which == "ackloss" {
        net.set_link(b, a, LinkConfig { loss: 0.2, ..link });
        Transfer::one_way(mb << 20)
    } else {
        Transfer::both_ways(mb << 20)
    };
    if let Some(from) = trace_from {
        let from = Instant::from_secs(from);
        net.set_trace(move |now, to, frame| {
            if now >= from {
                eprintln!("{now} ->{to} {}", sim::trace::describe_frame(frame));
            }
        });
    }
    let t0 = std::time::Instant::now();
    let r = run_transfer(&mut net, a, b, &t);
    println!(
        "{r:?}\nwall {:?} steps {}\na->b {:?}\nb->a {:?}",
        t0.elapsed(),
        net.steps,
        net.link_stats(a, b),
        net.link_stats(b, a)
    );
}
