//! Bulk transfers between two tapir stacks over impaired simulated links: byte-exact both ways,
//! both sides closed cleanly, every corrupted frame caught by a checksum and counted.
//!
//! Sizes: a few full 10 MB runs per impairment, and many-seed sweeps with smaller transfers
//! (more seeds with `TAPIR_SIM_SEEDS=K`, one seed with `TAPIR_SIM_SEED=N`).

use protocols::time::Duration;
use sim::{integrity_drops, run_transfer, sweep, LinkConfig, Network, SimError, Transfer};

const MB: usize = 1 << 20;

/// Two default hosts over `link` (both directions), then `t`; checks the corruption ledger.
fn transfer(seed: u64, link: LinkConfig, t: &Transfer) -> Result<sim::TransferReport, SimError> {
    let mut net = Network::new(seed, link);
    let a = net.add_host(1, |_| {});
    let b = net.add_host(2, |_| {});
    let report = run_transfer(&mut net, a, b, t)?;
    check_integrity(&net)?;
    Ok(report)
}

/// Every corrupted copy a node received was dropped by an integrity check, and no integrity drop
/// happened without a corrupted copy: the checksums catch every bit flip and nothing else.
fn check_integrity(net: &Network) -> Result<(), SimError> {
    for id in 0..net.nodes() {
        let node = net.node(id);
        let Some(stack) = node.stack() else { continue };
        let dropped = integrity_drops(stack.counters());
        if dropped != node.corrupted_in {
            return Err(SimError::Failed {
                what: format!(
                    "node {id}: {} corrupted frames arrived but {dropped} integrity drops counted",
                    node.corrupted_in
                ),
            });
        }
    }
    Ok(())
}

fn loss(p: f64) -> LinkConfig {
    LinkConfig {
        loss: p,
        ..LinkConfig::default()
    }
}

fn reorder() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(5),
        reorder: 0.05,
        reorder_delay: Duration::from_millis(3),
        ..LinkConfig::default()
    }
}

fn duplicate() -> LinkConfig {
    LinkConfig {
        duplicate: 0.01,
        ..LinkConfig::default()
    }
}

fn corrupt() -> LinkConfig {
    LinkConfig {
        corrupt: 0.001,
        ..LinkConfig::default()
    }
}

fn rtt_50ms() -> LinkConfig {
    LinkConfig::with_delay(Duration::from_millis(25))
}

fn jitter() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(4),
        ..LinkConfig::default()
    }
}

/// 100 Mbit/s with a 64 KiB queue: a sender that overruns it loses the tail.
fn bottleneck() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(5),
        bandwidth: 100_000_000,
        queue_bytes: 64 * 1024,
        ..LinkConfig::default()
    }
}

fn full(test: &str, link: LinkConfig, seeds: u64) {
    sweep(module_path!(), test, seeds, |seed| {
        transfer(seed, link.clone(), &Transfer::both_ways(10 * MB))
    });
}

#[test]
fn ten_mb_each_way_clean() {
    let r = sweep(module_path!(), "ten_mb_each_way_clean", 1, |seed| {
        transfer(seed, LinkConfig::default(), &Transfer::both_ways(10 * MB))
    });
    assert!(r.iter().all(|r| r.elapsed < Duration::from_secs(10)));
}

#[test]
fn ten_mb_each_way_loss_5pct() {
    full("ten_mb_each_way_loss_5pct", loss(0.05), 2);
}

#[test]
fn ten_mb_each_way_reordering() {
    full("ten_mb_each_way_reordering", reorder(), 2);
}

#[test]
fn ten_mb_each_way_duplication_1pct() {
    full("ten_mb_each_way_duplication_1pct", duplicate(), 2);
}

#[test]
fn ten_mb_each_way_corruption_0_1pct() {
    full("ten_mb_each_way_corruption_0_1pct", corrupt(), 2);
}

#[test]
fn ten_mb_each_way_rtt_50ms() {
    full("ten_mb_each_way_rtt_50ms", rtt_50ms(), 2);
}

#[test]
fn ten_mb_each_way_jitter() {
    full("ten_mb_each_way_jitter", jitter(), 2);
}

#[test]
fn ten_mb_each_way_bottleneck_tail_drop() {
    full("ten_mb_each_way_bottleneck_tail_drop", bottleneck(), 2);
}

#[test]
fn ten_mb_each_way_everything_at_once() {
    full(
        "ten_mb_each_way_everything_at_once",
        LinkConfig::hostile(),
        4,
    );
}

/// The CI sweep: every impairment at once (5% loss, reordering, 1% duplication, 0.1% corruption,
/// 50 ms RTT, jitter) over 200 seeds, 1 MiB each way.
#[test]
fn sweep_everything_at_once() {
    sweep(module_path!(), "sweep_everything_at_once", 200, |seed| {
        transfer(seed, LinkConfig::hostile(), &Transfer::both_ways(MB))
    });
}

/// Each impairment alone, 25 seeds each, 256 KiB each way.
#[test]
fn sweep_each_impairment_alone() {
    let links = [
        ("loss", loss(0.05)),
        ("reorder", reorder()),
        ("duplicate", duplicate()),
        ("corrupt", corrupt()),
        ("rtt", rtt_50ms()),
        ("jitter", jitter()),
        ("bottleneck", bottleneck()),
    ];
    for (name, link) in links {
        let test = "sweep_each_impairment_alone";
        let r = sweep(module_path!(), test, 25, |seed| {
            transfer(seed, link.clone(), &Transfer::both_ways(MB / 4))
        });
        eprintln!("{name}: {} seeds passed", r.len());
    }
}

/// Heavy corruption: 2% of frames with a flipped bit, every one caught and counted.
#[test]
fn heavy_corruption_is_caught_by_checksums() {
    sweep(
        module_path!(),
        "heavy_corruption_is_caught_by_checksums",
        10,
        |seed| {
            let link = LinkConfig {
                corrupt: 0.02,
                ..LinkConfig::default()
            };
            let mut net = Network::new(seed, link);
            let a = net.add_host(1, |_| {});
            let b = net.add_host(2, |_| {});
            run_transfer(&mut net, a, b, &Transfer::both_ways(MB))?;
            check_integrity(&net)?;
            let corrupted = net.node(a).corrupted_in + net.node(b).corrupted_in;
            assert!(corrupted > 20, "only {corrupted} corrupted frames");
            Ok(())
        },
    );
}
