//! The simulated network itself: determinism, settings changed mid-run (a blackout, then
//! recovery), more than two nodes, and a connection that gives up when the path never returns.

use protocols::time::{Duration, Instant};
use sim::{run_transfer, run_transfers, sweep, LinkConfig, Network, SimError, Transfer};

const MB: usize = 1 << 20;

fn pair(seed: u64, link: LinkConfig) -> (Network, usize, usize) {
    let mut net = Network::new(seed, link);
    let a = net.add_host(1, |_| {});
    let b = net.add_host(2, |_| {});
    (net, a, b)
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let run = |seed| {
        let (mut net, a, b) = pair(seed, LinkConfig::hostile());
        let r = run_transfer(&mut net, a, b, &Transfer::both_ways(MB / 4)).unwrap();
        (net.digest(), r.elapsed, net.link_stats(a, b), net.steps)
    };
    let first = run(7);
    assert_eq!(first, run(7), "one seed gave two different runs");
    assert_ne!(first.0, run(8).0, "two seeds gave the same run");
}

/// The path goes dark for 3 s mid-transfer, then comes back: the connection retransmits with
/// backoff through the blackout and finishes byte-exact.
#[test]
fn blackout_then_recovery() {
    sweep(module_path!(), "blackout_then_recovery", 10, |seed| {
        let link = LinkConfig::with_delay(Duration::from_millis(10));
        let (mut net, a, b) = pair(seed, link.clone());
        let start = net.now();
        let down = LinkConfig {
            down: true,
            ..link.clone()
        };
        net.schedule_path(start + Duration::from_millis(150), a, b, down);
        net.schedule_path(start + Duration::from_millis(3150), a, b, link);
        let r = run_transfer(&mut net, a, b, &Transfer::both_ways(2 * MB))?;
        let dark = net.link_stats(a, b).blackout + net.link_stats(b, a).blackout;
        if dark == 0 {
            return Err(SimError::Failed {
                what: "the blackout dropped nothing: it came after the transfer".into(),
            });
        }
        assert!(r.elapsed > Duration::from_secs(3), "{:?}", r.elapsed);
        Ok(())
    });
}

/// A path that never comes back: the sender gives up after R2 retransmissions (RFC 9293
/// §3.8.3) with "timed out" instead of hanging.
#[test]
fn endless_blackout_times_out() {
    let link = LinkConfig::with_delay(Duration::from_millis(10));
    let (mut net, a, b) = pair(3, link.clone());
    let down = LinkConfig { down: true, ..link };
    let at = net.now() + Duration::from_millis(100);
    net.schedule_path(at, a, b, down);
    let t = Transfer {
        deadline: Duration::from_secs(7200),
        ..Transfer::one_way(4 * MB)
    };
    match run_transfer(&mut net, a, b, &t) {
        Err(SimError::Failed { what }) => assert!(what.contains("timed out"), "{what}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // It gave up in bounded virtual time.
    assert!(net.now() < Instant::from_secs(3600), "{:?}", net.now());
}

/// Three hosts on one segment: two clients transfer to one server at once, each path with its
/// own impairments, and the frames of one pair never reach the third host's TCP.
#[test]
fn three_hosts_two_transfers_at_once() {
    sweep(
        module_path!(),
        "three_hosts_two_transfers_at_once",
        10,
        |seed| {
            let mut net = Network::new(seed, LinkConfig::default());
            let a = net.add_host(1, |_| {});
            let server = net.add_host(2, |_| {});
            let c = net.add_host(3, |_| {});
            net.set_path(a, server, LinkConfig::hostile());
            net.set_path(
                c,
                server,
                LinkConfig {
                    loss: 0.01,
                    delay: Duration::from_millis(3),
                    ..LinkConfig::default()
                },
            );
            let t1 = Transfer::both_ways(MB / 2);
            let t2 = Transfer {
                port: 5002,
                ..Transfer::both_ways(MB / 2)
            };
            run_transfers(&mut net, &[(a, server, t1), (c, server, t2)])?;
            // Only broadcasts (ARP) went from a towards c, never the transfer's unicast frames.
            let stray = net.link_stats(a, c).offered;
            assert!(stray < 10, "{stray} frames from a reached c");
            Ok(())
        },
    );
}

/// A mid-run change of one direction only: the ACK path turns lossy (5%) while data flows.
#[test]
fn lossy_ack_path_mid_run() {
    sweep(module_path!(), "lossy_ack_path_mid_run", 10, |seed| {
        ack_path_loss(seed, 0.05)
    });
}

fn ack_path_loss(seed: u64, p: f64) -> Result<(), SimError> {
    let (mut net, a, b) = pair(seed, LinkConfig::with_delay(Duration::from_millis(5)));
    run_transfer(&mut net, a, b, &Transfer::one_way(MB / 2))?;
    let lossy = LinkConfig {
        loss: p,
        ..net.link_config(b, a)
    };
    net.set_link(b, a, lossy);
    let t = Transfer {
        port: 5002,
        deadline: Duration::from_secs(600),
        ..Transfer::one_way(2 * MB)
    };
    run_transfer(&mut net, a, b, &t)?;
    Ok(())
}

/// Found by this simulator: with 20% of ACKs lost, a 2 MB transfer over a 10 ms RTT path took
/// more than 10 minutes of virtual time: a lost tail ACK cost an RTO, the retransmission was an
/// old duplicate for the receiver, whose ACK echoed the original timestamp, so the RTT sample
/// held the whole RTO wait and the RTO ratcheted up to `max_rto`. Fixed in the TCP by taking no
/// timestamp RTT sample from the first ACK after a timeout; this keeps it fixed. Replay:
/// `TAPIR_SIM_SEED=7 cargo test -p tapir-sim --test network -- --exact lossy_ack_path_20pct`
#[test]
fn lossy_ack_path_20pct() {
    sweep(module_path!(), "lossy_ack_path_20pct", 10, |seed| {
        ack_path_loss(seed, 0.2)
    });
}
