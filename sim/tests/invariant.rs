//! "No segment without a cause" (issue 13): the monitor every simulated run passes through, the
//! idle-silence check, and the peer that first showed the storm: one that offers no window
//! scaling.

use std::any::Any;
use std::net::SocketAddrV4;

use protocols::iface::{Stack, StackConfig};
use protocols::rand::Rng;
use protocols::time::{Duration, Instant};
use sim::{
    host_cidr, host_mac, run_transfer, sweep, LinkConfig, Network, Peer, SimError, Transfer,
};

const KB: usize = 1 << 10;

fn no_window_scaling(seed: u64, which: usize, link: LinkConfig) -> Result<(), SimError> {
    let mut net = Network::new(seed, link);
    let a = net.add_host(1, |c| c.tcp.window_scaling = which != 1);
    let b = net.add_host(2, |c| c.tcp.window_scaling = which != 2);
    let r = run_transfer(&mut net, a, b, &Transfer::both_ways(256 * KB))?;
    let idle = r.idle.ok_or_else(|| SimError::Failed {
        what: "the idle check did not run".into(),
    })?;
    assert_eq!(idle.answers, 0, "{idle:?}");
    assert!(idle.probes.is_empty(), "{idle:?}");
    Ok(())
}

/// The repro in the simulator: one side's TcpConfig has window_scaling = false. Before
/// the fix every poll of the other side sent a burst of pure ACKs (its window update was always
/// "due"), which the monitor reports as more than one control segment for one cause.
#[test]
fn server_without_window_scaling() {
    no_window_scaling(1, 2, LinkConfig::default()).unwrap();
}

#[test]
fn client_without_window_scaling() {
    no_window_scaling(1, 1, LinkConfig::default()).unwrap();
}

#[test]
fn both_without_window_scaling() {
    no_window_scaling(1, 0, LinkConfig::default()).unwrap();
}

/// The same over the hostile path, 10 seeds, either side without window scaling.
#[test]
fn no_window_scaling_hostile_sweep() {
    sweep(
        module_path!(),
        "no_window_scaling_hostile_sweep",
        10,
        |seed| no_window_scaling(seed, 1 + (seed as usize % 2), LinkConfig::hostile()),
    );
}

/// A held connection with keep-alive off says nothing for 10 minutes of virtual time; with
/// keep-alive on (30 s), it sends only probes, one per 30 s, each answered once.
#[test]
fn idle_connection_is_silent_and_keepalive_probes_at_its_interval() {
    for keepalive in [None, Some(Duration::from_secs(30))] {
        let mut net = Network::new(5, LinkConfig::with_delay(Duration::from_millis(5)));
        let a = net.add_host(1, |c| c.tcp.keepalive = keepalive);
        let b = net.add_host(2, |_| {});
        let t = Transfer {
            idle_check: Some(Duration::from_secs(600)),
            ..Transfer::both_ways(64 * KB)
        };
        let r = run_transfer(&mut net, a, b, &t).unwrap();
        let idle = r.idle.expect("the idle check ran");
        match keepalive {
            None => {
                assert!(idle.probes.is_empty(), "{idle:?}");
                assert_eq!(idle.answers, 0, "{idle:?}");
            }
            Some(_) => {
                // 600 s at one probe per 30 s (the first may come early: the idle time began
                // before the check).
                let probes: usize = idle.probes.iter().map(|p| p.1).sum();
                assert_eq!(idle.probes.iter().map(|p| p.0).collect::<Vec<_>>(), vec![a]);
                assert!((19..=21).contains(&probes), "{idle:?}");
                assert_eq!(idle.answers, probes, "{idle:?}");
            }
        }
    }
}

/// Keep-alive at 10 s: every probe is answered exactly once and nothing else is sent.
#[test]
fn idle_check_counts_answers_against_probes() {
    let mut net = Network::new(9, LinkConfig::with_delay(Duration::from_millis(5)));
    let a = net.add_host(1, |c| c.tcp.keepalive = Some(Duration::from_secs(10)));
    let b = net.add_host(2, |_| {});
    let t = Transfer {
        idle_check: Some(Duration::from_secs(60)),
        ..Transfer::both_ways(16 * KB)
    };
    let r = run_transfer(&mut net, a, b, &t).unwrap();
    let idle = r.idle.unwrap();
    let probes: usize = idle.probes.iter().map(|p| p.1).sum();
    assert!(probes >= 5, "{idle:?}");
    assert_eq!(idle.answers, probes, "{idle:?}");
}

/// A tapir stack that tells the idle check its keep-alive is off while it probes every 5 s:
/// the check must catch the probes as unprompted segments.
struct Liar {
    stack: Stack,
    honest: bool,
}

impl Peer for Liar {
    fn mac(&self) -> protocols::wire::EthernetAddress {
        self.stack.config().mac
    }
    fn receive(&mut self, now: Instant, frame: &[u8], out: &mut Vec<Vec<u8>>) {
        self.stack.receive(now, frame, out);
    }
    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        self.stack.poll(now, out);
    }
    fn poll_at(&self) -> Option<Instant> {
        self.stack.poll_at()
    }
    fn keepalive(&self) -> Option<Duration> {
        self.stack.config().tcp.keepalive.filter(|_| self.honest)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

fn held_by_a_liar(honest: bool) -> (Network, usize, Result<sim::IdleReport, SimError>) {
    let mut net = Network::new(11, LinkConfig::with_delay(Duration::from_millis(5)));
    let a = net.add_host(1, |_| {});
    let mut config = StackConfig::new(host_mac(2), host_cidr(2));
    config.tcp.keepalive = Some(Duration::from_secs(5));
    let stack = Stack::new(config, Rng::new(11));
    let liar = net.add_peer(Box::new(Liar { stack, honest }));
    net.stack_mut(a).tcp_listen(5001, 4).unwrap();
    let now = net.now();
    let to = SocketAddrV4::new(net.stack(a).address(), 5001);
    let peer = net.peer_mut::<Liar>(liar).unwrap();
    let h = peer.stack.tcp_connect(now, to, None, &|_| true).unwrap();
    let deadline = net.now() + Duration::from_secs(5);
    loop {
        let up = net.peer::<Liar>(liar).unwrap().stack.tcp_info(h);
        if up.is_some_and(|i| i.state == protocols::tcp::State::Established)
            && net.stack_mut(a).tcp_accept(5001).unwrap().is_some()
        {
            break;
        }
        assert!(net.now() < deadline, "no connection");
        net.step().unwrap();
    }
    let r = net.expect_idle_silence(Duration::from_secs(60));
    (net, liar, r)
}

#[test]
fn idle_check_catches_probes_from_a_node_whose_keepalive_is_off() {
    let (_, liar, r) = held_by_a_liar(false);
    match r {
        Err(SimError::Invariant { violation, .. }) => {
            assert_eq!(violation.node, liar);
            assert!(
                violation.rule.contains("keep-alive off"),
                "{}",
                violation.rule
            );
        }
        other => panic!("the idle check let probes through: {other:?}"),
    }
    // The same node telling the truth passes, one probe per 5 s, each answered once.
    let (_, liar, r) = held_by_a_liar(true);
    let idle = r.unwrap();
    let probes: usize = idle.probes.iter().map(|p| p.1).sum();
    assert_eq!(
        idle.probes.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![liar]
    );
    assert!((11..=13).contains(&probes), "{idle:?}");
    assert_eq!(idle.answers, probes, "{idle:?}");
}
