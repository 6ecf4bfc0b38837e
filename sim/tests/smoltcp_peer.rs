//! smoltcp, a second and independent TCP implementation, as tapir's peer in the simulator
//! (issue 13, item 3): both directions, bulk both ways byte-exact, both sides closed cleanly,
//! smoltcp's options and tapir's options on and off, and an impairment sweep (loss,
//! reordering, duplication, corruption, a blackout mid-transfer). Every run passes the
//! invariant monitor (on both nodes) and, before the close, the idle-silence check.
//!
//! More seeds: `TAPIR_SIM_SEEDS=K`; one seed: `TAPIR_SIM_SEED=N`.

use protocols::iface::StackConfig;
use protocols::time::Duration;
use sim::{
    run_mixed, sweep, LinkConfig, Network, NodeId, SimError, SmolNode, SmolOptions, Transfer,
};

const KB: usize = 1 << 10;

/// A tapir host (10.0.0.1) and a smoltcp host (10.0.0.2) on `link`.
fn pair(
    seed: u64,
    link: LinkConfig,
    tune: impl FnOnce(&mut StackConfig),
    opts: SmolOptions,
) -> (Network, NodeId, NodeId) {
    let mut net = Network::new(seed, link);
    if std::env::var_os("TAPIR_SIM_TRACE").is_some() {
        net.trace_to_stderr();
        net.trace_tx_to_stderr();
    }
    // smoltcp 0.12 sizes a segment as the MTU less 20 bytes of TCP header, whatever its options
    // take: with timestamps on (12 option bytes) a full-MSS segment is a 1512-byte packet,
    // which its own egress then drops while its sequence number moves on, so the connection
    // never delivers (smoltcp's bug, not tapir's: see the report of issue 13). tapir then
    // advertises 12 bytes less.
    let smol_ts = opts.timestamps;
    let tapir = net.add_host(1, |c| {
        tune(c);
        if smol_ts {
            c.tcp.mss = c.tcp.mss.min(1448);
        }
    });
    let peer_seed = net.peer_seed(net.nodes());
    let now = net.now();
    let smol = net.add_peer(Box::new(SmolNode::new(2, peer_seed, now, opts)));
    (net, tapir, smol)
}

/// `t` with tapir as the client (`tapir_client`) or the server.
fn transfer(
    net: &mut Network,
    tapir: NodeId,
    smol: NodeId,
    tapir_client: bool,
    t: &Transfer,
) -> Result<sim::TransferReport, SimError> {
    let (c, s) = if tapir_client {
        (tapir, smol)
    } else {
        (smol, tapir)
    };
    let r = run_mixed(net, c, s, t)?;
    let idle = r.idle.as_ref().ok_or_else(|| SimError::Failed {
        what: "the idle check did not run".into(),
    })?;
    if idle.answers != 0 || !idle.probes.is_empty() {
        return Err(SimError::Failed {
            what: format!("an idle connection without keep-alive sent {idle:?}"),
        });
    }
    Ok(r)
}

#[test]
fn tapir_client_smoltcp_server_bulk_both_ways() {
    let (mut net, tapir, smol) = pair(1, LinkConfig::default(), |_| {}, SmolOptions::default());
    let r = transfer(&mut net, tapir, smol, true, &Transfer::both_ways(2048 * KB)).unwrap();
    assert!(r.elapsed < Duration::from_secs(60), "{r:?}");
}

#[test]
fn smoltcp_client_tapir_server_bulk_both_ways() {
    let (mut net, tapir, smol) = pair(2, LinkConfig::default(), |_| {}, SmolOptions::default());
    let r = transfer(
        &mut net,
        tapir,
        smol,
        false,
        &Transfer::both_ways(2048 * KB),
    )
    .unwrap();
    assert!(r.elapsed < Duration::from_secs(60), "{r:?}");
}

/// smoltcp's options, one at a time.
fn smol_variants() -> Vec<(&'static str, SmolOptions)> {
    let d = SmolOptions::default();
    vec![
        ("default", d.clone()),
        (
            "no-ack-delay",
            SmolOptions {
                ack_delay: None,
                ..d.clone()
            },
        ),
        (
            "no-nagle",
            SmolOptions {
                nagle: false,
                ..d.clone()
            },
        ),
        (
            "timestamps",
            SmolOptions {
                timestamps: true,
                ..d.clone()
            },
        ),
        // A 256 KiB receive buffer: smoltcp scales its window by 2.
        (
            "big-buffers",
            SmolOptions {
                rx_buffer: 256 * KB,
                tx_buffer: 256 * KB,
                ..d.clone()
            },
        ),
        (
            "small-buffers",
            SmolOptions {
                rx_buffer: 4 * KB,
                tx_buffer: 4 * KB,
                ..d
            },
        ),
    ]
}

/// tapir's options, one at a time and all off.
/// A named change to tapir's configuration.
type Tune = (&'static str, fn(&mut StackConfig));

fn tapir_variants() -> Vec<Tune> {
    vec![
        ("default", |_| {}),
        ("no-window-scaling", |c| c.tcp.window_scaling = false),
        ("no-sack", |c| c.tcp.sack = false),
        ("no-timestamps", |c| c.tcp.timestamps = false),
        ("no-nagle", |c| c.tcp.nagle = false),
        ("all-off", |c| {
            c.tcp.window_scaling = false;
            c.tcp.sack = false;
            c.tcp.timestamps = false;
        }),
    ]
}

/// Every pair of (smoltcp option, tapir option), both directions, 128 KiB each way on a 5 ms
/// path with 1% loss, byte-exact, in bounded virtual time.
#[test]
fn options_matrix_both_directions() {
    let link = LinkConfig {
        delay: Duration::from_millis(5),
        loss: 0.01,
        ..LinkConfig::default()
    };
    let mut failed = Vec::new();
    let mut seed = 0;
    for (sname, sopts) in smol_variants() {
        for (tname, tune) in tapir_variants() {
            for tapir_client in [true, false] {
                seed += 1;
                let (mut net, tapir, smol) = pair(seed, link.clone(), tune, sopts.clone());
                let t = Transfer {
                    deadline: Duration::from_secs(300),
                    ..Transfer::both_ways(128 * KB)
                };
                if let Err(e) = transfer(&mut net, tapir, smol, tapir_client, &t) {
                    let dir = if tapir_client {
                        "tapir->smoltcp"
                    } else {
                        "smoltcp->tapir"
                    };
                    eprintln!("smoltcp {sname} / tapir {tname} / {dir} (seed {seed}): {e}");
                    failed.push((sname, tname, dir));
                }
            }
        }
    }
    assert!(failed.is_empty(), "failed rows: {failed:?}");
}

/// The impairment of a sweep seed.
fn impairment(seed: u64) -> (&'static str, LinkConfig) {
    let base = LinkConfig::with_delay(Duration::from_millis(5));
    match seed % 6 {
        0 => ("loss", LinkConfig { loss: 0.03, ..base }),
        1 => (
            "reorder",
            LinkConfig {
                reorder: 0.05,
                reorder_delay: Duration::from_millis(4),
                jitter: Duration::from_millis(1),
                ..base
            },
        ),
        2 => (
            "duplicate",
            LinkConfig {
                duplicate: 0.03,
                ..base
            },
        ),
        3 => (
            "corrupt",
            LinkConfig {
                corrupt: 0.01,
                ..base
            },
        ),
        4 => ("blackout", base),
        _ => (
            "everything",
            LinkConfig {
                loss: 0.02,
                reorder: 0.02,
                reorder_delay: Duration::from_millis(4),
                duplicate: 0.01,
                corrupt: 0.002,
                jitter: Duration::from_millis(1),
                ..base
            },
        ),
    }
}

/// The CI sweep: 120 seeds over six impairments (a blackout of 1.5 s mid-transfer among them),
/// both directions, smoltcp and tapir options drawn from the seed; 96 KiB each way, byte-exact,
/// within 10 minutes of virtual time, monitor and idle check on.
#[test]
fn impairment_sweep() {
    sweep(module_path!(), "impairment_sweep", 120, sweep_case);
}

/// Found by the sweep above with `TAPIR_SIM_SEEDS=3000` (seeds 1002, 1043, 1149, 1187, 1614,
/// 2766, all with smoltcp's 4 KiB buffers): smoltcp acknowledges tapir's last segment with a
/// window of 1176 bytes, then opens it to 4096 with a window update. When that update is lost
/// (1002, 1149) or overtaken by the earlier ACK (1043), tapir holds data it does not send
/// (1176 bytes is below one MSS and below half the largest window the peer offered: sender-side
/// SWS avoidance, RFC 9293 §3.8.6.2.1), has nothing in flight, and arms no timer: no
/// retransmission timeout (nothing outstanding), no persist timer (the window is not zero), no
/// SWS override timeout. smoltcp, like any receiver, sends no second window update, so the
/// connection stalls forever (here until the 600 s deadline). Linux arms its probe timer
/// whenever it holds data with nothing in flight (`tcp_check_probe_timer`); RFC 9293 asks for
/// the override timeout; tapir now runs its persist timer in that case too and sends the held
/// data when it fires. Replay one:
/// `TAPIR_SIM_SEED=1149 cargo test -p tapir-sim --test smoltcp_peer -- --exact impairment_sweep`
#[test]
fn small_window_lost_update_does_not_stall() {
    for seed in [1002, 1043, 1149, 1187, 1614, 2766] {
        if let Err(e) = sweep_case(seed) {
            panic!("seed {seed}: {e}");
        }
    }
}

fn sweep_case(seed: u64) -> Result<(), SimError> {
    let svars = smol_variants();
    let tvars = tapir_variants();
    let (what, link) = impairment(seed);
    let (_, sopts) = &svars[(seed / 6) as usize % svars.len()];
    let (_, tune) = &tvars[(seed / 7) as usize % tvars.len()];
    let tapir_client = seed.is_multiple_of(2);
    let (mut net, tapir, smol) = pair(seed, link.clone(), tune, sopts.clone());
    if what == "blackout" {
        let start = net.now();
        let down = LinkConfig {
            down: true,
            ..link.clone()
        };
        net.schedule_path(start + Duration::from_millis(15), tapir, smol, down);
        net.schedule_path(start + Duration::from_millis(1515), tapir, smol, link);
    }
    let t = Transfer {
        deadline: Duration::from_secs(600),
        ..Transfer::both_ways(96 * KB)
    };
    transfer(&mut net, tapir, smol, tapir_client, &t)?;
    if what == "blackout" {
        let dark = net.link_stats(tapir, smol).blackout + net.link_stats(smol, tapir).blackout;
        if dark == 0 {
            return Err(SimError::Failed {
                what: "the blackout dropped nothing".into(),
            });
        }
    }
    if what == "corrupt" {
        let c = sim::integrity_drops(net.stack(tapir).counters());
        if c != net.node(tapir).corrupted_in {
            return Err(SimError::Failed {
                what: format!(
                    "tapir got {} corrupted frames but counted {c} integrity drops",
                    net.node(tapir).corrupted_in
                ),
            });
        }
    }
    Ok(())
}

/// A held connection to smoltcp: silent for 10 minutes with keep-alive off; with tapir's
/// keep-alive at 20 s, only tapir's probes (one per 20 s), each answered once by smoltcp.
#[test]
fn held_connection_idle_and_keepalive() {
    for keepalive in [None, Some(Duration::from_secs(20))] {
        for tapir_client in [true, false] {
            let (mut net, tapir, smol) = pair(
                3,
                LinkConfig::with_delay(Duration::from_millis(5)),
                |c| c.tcp.keepalive = keepalive,
                SmolOptions::default(),
            );
            let (c, s) = if tapir_client {
                (tapir, smol)
            } else {
                (smol, tapir)
            };
            let t = Transfer {
                idle_check: Some(Duration::from_secs(600)),
                ..Transfer::both_ways(32 * KB)
            };
            let r = run_mixed(&mut net, c, s, &t).unwrap();
            let idle = r.idle.unwrap();
            match keepalive {
                None => {
                    assert!(idle.probes.is_empty(), "{idle:?}");
                    assert_eq!(idle.answers, 0, "{idle:?}");
                }
                Some(_) => {
                    let probes: usize = idle.probes.iter().map(|p| p.1).sum();
                    assert_eq!(
                        idle.probes.iter().map(|p| p.0).collect::<Vec<_>>(),
                        vec![tapir]
                    );
                    assert!((29..=31).contains(&probes), "{idle:?}");
                    assert_eq!(idle.answers, probes, "{idle:?}");
                }
            }
        }
    }
}
