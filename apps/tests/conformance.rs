//! Segment-level conformance to RFC 9293 (and RFC 5961, RFC 7323 where they refine it), against a
//! live tapir on a real tap. Each test builds a private lab namespace (`tapir-conf-PID-N`,
//! removed on every path by `Lab`'s Drop), starts a node in this process on the lab's tap, and
//! runs one scenario script from `tests/conformance/` inside the namespace with Debian's scapy
//! (`/usr/bin/python3`, explicitly: another python3 may come first on the PATH). The script is
//! tapir's peer on the kernel side of the tap: it sends hand-made segments and asserts on what
//! tapir answers, and on the invariants every scenario checks (valid checksums, reserved bits
//! zero, a bounded reply to every segment: `tapconf.py`). It exits non-zero with a `VIOLATION:`
//! line and the recent exchange when tapir breaks a rule.
//!
//! The kernel in the namespace has no socket for the scripts' ports, so it would answer tapir's
//! segments with RSTs and tear down what the script builds: an nftables rule in the namespace
//! drops the kernel's outgoing RSTs (the rule lives and dies with the namespace; the scripts send
//! on an AF_PACKET socket, which netfilter does not see).
//!
//! The node runs with offloads off and one queue: every segment is a frame as it would be on a
//! wire (no TSO super-segments), and answers come in the order of the segments that caused
//! them, which the scripts use to tell "no answer" from "a late answer" without timing.
//!
//! Needs root, /dev/net/tun, nftables and python3-scapy (`scripts/setup`). A scenario can be run
//! by hand in a lab: `ip netns exec NS /usr/bin/python3 apps/tests/conformance/NAME.py --iface
//! tap0 --node-ip 10.7.0.2 --node-mac 02:54:41:50:00:02 --host-ip 10.7.0.1 [--seed N] ...`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use engine::{Node, NodeConfig};
use protocols::iface::DropReason;
use tapir_apps::lab::Lab;

mod common;
use common::{interop_allowed, kernel, text};

/// tapir's MAC (NodeConfig's default).
const NODE_MAC: &str = "02:54:41:50:00:02";
/// The interpreter with Debian's scapy.
const PYTHON: &str = "/usr/bin/python3";
/// A scenario that has not finished in this long is stopped (`timeout`) and fails.
const SCRIPT_LIMIT_S: &str = "120";
/// A port nothing listens on.
const CLOSED_PORT: u16 = 4;

/// One scenario at a time: the scripts' quiet windows are short, and two labs' scapy processes
/// and nodes on a 2-core machine would only make them noisier.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A lab with a node in it; the node (and its services) go before the lab.
struct Conformance {
    services: Vec<tapir_apps::services::Running>,
    node: Option<Node>,
    lab: Lab,
}

impl Drop for Conformance {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failed scenario may have wedged a worker (a parser that loops): stopping the
            // node would wait for it forever. Leave the node and its services to the end of the
            // process and still remove the lab.
            std::mem::forget(std::mem::take(&mut self.services));
            std::mem::forget(self.node.take());
        }
    }
}

impl Conformance {
    /// A lab whose kernel's RSTs are dropped, with a node serving `services` on it.
    fn up(services: &[&str]) -> Conformance {
        assert!(
            std::path::Path::new(PYTHON).exists(),
            "{PYTHON} missing: run scripts/setup"
        );
        let lab = Lab::up("conf").expect("lab up");
        drop_kernel_rsts(&lab);
        let mut c = NodeConfig::new(&lab.tap, lab.node);
        c.netns = Some(lab.ns.clone());
        c.seed = Some(13);
        c.pin = false;
        c.offload = engine::Offload::Off;
        c.queues = 1;
        let node = Node::start(c).expect("start node");
        let services = services
            .iter()
            .map(|s| {
                tapir_apps::services::start(&node, &s.parse().expect("service"))
                    .expect("service starts")
            })
            .collect();
        Conformance {
            services,
            node: Some(node),
            lab,
        }
    }

    /// The scenario script `name` with the common arguments and `extra`, to run in the lab.
    fn script(&self, name: &str, extra: &[String]) -> Command {
        let path = format!("{}/tests/conformance/{name}.py", env!("CARGO_MANIFEST_DIR"));
        let mut cmd = self.lab.command("timeout");
        cmd.args([SCRIPT_LIMIT_S, PYTHON, &path])
            .args(["--iface", &self.lab.tap])
            .args(["--node-ip", &self.lab.node.address().to_string()])
            .args(["--node-mac", NODE_MAC])
            .args(["--host-ip", &self.lab.host.to_string()])
            .args(extra)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs scenario `name` to its end; it must pass.
    fn run(&self, name: &str, extra: &[String]) {
        let out = self.script(name, extra).output().expect("run python3");
        self.judge(name, &out);
    }

    fn node(&self) -> &Node {
        self.node.as_ref().expect("node")
    }

    fn judge(&self, name: &str, out: &Output) {
        eprintln!(
            "--- {name}.py ---\n{}{}--- tapir's drops: {}",
            text(&out.stdout),
            text(&out.stderr),
            drops_report(self.node())
        );
        assert!(
            out.status.success(),
            "conformance scenario {name}.py failed ({}): see its VIOLATION line above",
            out.status
        );
    }

    fn drops(&self, reason: DropReason) -> u64 {
        self.node().stats().stack.drops(reason)
    }

    /// The kernel's echo through tapir's echo service: tapir still serves.
    fn still_serves(&self) {
        let to = SocketAddrV4::new(self.lab.node.address(), 7);
        let got = kernel(&self.lab, || {
            let mut s = TcpStream::connect_timeout(&to.into(), Duration::from_secs(5)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            s.write_all(b"still serving").ok()?;
            let mut b = [0u8; 13];
            s.read_exact(&mut b).ok()?;
            Some(b)
        });
        assert_eq!(
            got.as_ref().map(|b| &b[..]),
            Some(&b"still serving"[..]),
            "tapir stopped serving after the scenario"
        );
    }
}

/// An nftables table in the lab namespace that drops every RST the kernel sends.
fn drop_kernel_rsts(lab: &Lab) {
    let rules = "table inet tapir_conformance {\n\
                 \tchain out {\n\
                 \t\ttype filter hook output priority 0; policy accept;\n\
                 \t\ttcp flags & rst != 0 drop\n\
                 \t}\n\
                 }\n";
    let mut child = lab
        .command("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nft missing: run scripts/setup");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(rules.as_bytes())
        .expect("write rules");
    let out = child.wait_with_output().expect("nft");
    assert!(
        out.status.success(),
        "nft could not drop the kernel's RSTs in {}: {}",
        lab.ns,
        text(&out.stderr)
    );
}

/// tapir's drop counters, or a note that its stack did not answer within 2 s (a wedged worker
/// holds its stack's lock).
fn drops_report(node: &Node) -> String {
    let node = node.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let s = node.stats().stack;
        let report = s
            .nonzero_drops()
            .map(|(r, n)| format!("{}={n}", r.name()))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = tx.send(report);
    });
    rx.recv_timeout(Duration::from_secs(2)).unwrap_or_else(|_| {
        "none read: tapir's stack did not answer in 2 s (a worker is wedged)".into()
    })
}

fn args(list: &[(&str, u16)]) -> Vec<String> {
    list.iter()
        .flat_map(|(k, v)| [format!("--{k}"), v.to_string()])
        .collect()
}

/// Scenario 1: RFC 9293 §3.1 and §3.10.7 (MUST-3): segments with a wrong or a zero checksum are
/// dropped unseen, a SYN's as well as an ACK's or data's in ESTABLISHED.
#[test]
fn segments_with_a_wrong_or_zero_checksum_are_ignored() {
    if !interop_allowed() {
        return;
    }
    let _g = serial();
    let c = Conformance::up(&["echo"]);
    c.run("checksum", &args(&[("echo", 7)]));
    let bad = c.drops(DropReason::TcpBadChecksum);
    assert!(
        bad >= 4,
        "tapir counted {bad} bad checksums for the script's 4 or 5"
    );
}

/// Scenario 2: RFC 9293 §3.1 and §3.2 (MUST-4, MUST-6, MUST-64): EOL, NOP and unknown options
/// in a SYN are skipped and the known ones around them honoured.
#[test]
fn nop_eol_and_unknown_options_are_skipped_and_known_ones_honoured() {
    if !interop_allowed() {
        return;
    }
    let _g = serial();
    let c = Conformance::up(&["chargen"]);
    c.run("options", &args(&[("chargen", 19)]));
}

/// Scenario 3: RFC 9293 §3.7.1 (MUST-14, MUST-15) and RFC 6691: every segment fits the peer's MSS,
/// the smallest of several MSS options, and 536 when the SYN has none.
#[test]
fn every_segment_fits_the_peers_mss_and_536_without_one() {
    if !interop_allowed() {
        return;
    }
    let _g = serial();
    let c = Conformance::up(&["chargen"]);
    c.run("mss", &args(&[("chargen", 19)]));
}

/// Scenario 4: RFC 9293 §3.1: the reserved bits are ignored on receipt and zero on send.
#[test]
fn reserved_bits_are_ignored_on_receipt_and_zero_on_send() {
    if !interop_allowed() {
        return;
    }
    let _g = serial();
    let c = Conformance::up(&["echo"]);
    c.run("reserved", &args(&[("echo", 7)]));
}

/// Scenario 5: RFC 9293 §3.8.5 (MUST-30..33, MUST-62) and RFC 6093: urgent data is delivered in
/// line, complete and in order, whatever the urgent pointer says.
#[test]
fn urgent_data_is_delivered_in_line_complete_and_in_order() {
    if !interop_allowed() {
        return;
    }
    let _g = serial();
    let c = Conformance::up(&["echo"]);
    c.run("urgent", &args(&[("echo", 7)]));
    c.still_serves();
}

/// Scenario 6: RFC 9293 §3.1 and §3.2 (MUST-7): options with an illegal length, and bytes after
/// EOL, neither crash nor confuse tapir.
#[test]
fn illegal_option_lengths_and_options_after_eol_do_not_confuse_tapir() {
    if !interop_allowed() {
        return;
    }
    let _g = serial();
    let c = Conformance::up(&["echo", "chargen"]);
    c.run("bad_options", &args(&[("echo", 7), ("chargen", 19)]));
    c.still_serves();
}

/// Scenario 7: RFC 9293 §3.10.7.3 and §3.10.7.4 with RFC 5961 §3: RSTs in SYN-SENT (tapir
/// connecting to the script) and in SYN-RECEIVED (the script connecting to tapir).
#[test]
fn rst_in_syn_sent_and_syn_received_follows_rfc_9293_and_5961() {
    if !interop_allowed() {
        return;
    }
    let _g = serial();
    let c = Conformance::up(&["echo"]);
    let (accepted, refused) = (5001u16, 5002u16);
    let mut child = c
        .script(
            "rst",
            &args(&[("echo", 7), ("accepted", accepted), ("refused", refused)]),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut log = String::new();
    // The script says READY once its socket on the tap is open: only then does tapir connect.
    loop {
        let mut line = String::new();
        let n = stdout.read_line(&mut line).expect("script output");
        log.push_str(&line);
        if n == 0 || line.trim() == "READY" {
            assert!(n > 0, "the script ended before it was ready:\n{log}");
            break;
        }
    }
    let host = c.lab.host;
    // SYN-SENT, part 1: the script sends unacceptable RSTs (ignored), then a SYN-ACK.
    let first = connect_and_greet(c.node(), SocketAddrV4::new(host, accepted));
    // SYN-SENT, part 2: an acceptable RST (with the ACK of our SYN) refuses the connection.
    let second = connect_and_greet(c.node(), SocketAddrV4::new(host, refused));
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).ok();
    log.push_str(&rest);
    let mut out = child.wait_with_output().expect("script");
    out.stdout = log.into_bytes();
    c.judge("rst", &out);
    match first {
        Ok(()) => {}
        Err(e) => panic!(
            "RFC 9293 §3.10.7.3: the connection the script accepted after unacceptable RSTs failed: {e}"
        ),
    }
    match second {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        other => panic!(
            "RFC 9293 §3.10.7.3: an acceptable RST in SYN-SENT must refuse the connection, got {other:?}"
        ),
    }
}

/// tapir connects to `to` (15 s at most) and, once connected, writes "hello".
fn connect_and_greet(node: &Node, to: SocketAddrV4) -> std::io::Result<()> {
    let mut s = engine::TcpStream::connect_timeout(node, to, Some(Duration::from_secs(15)))?;
    s.write_all(b"hello")?;
    // The script reads it and resets the connection; wait for that so the order holds.
    s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        Ok(0) => Ok(()),
        other => Err(std::io::Error::other(format!(
            "after hello: {other:?} instead of the script's RST"
        ))),
    }
}

/// Scenario 8: RFC 9293 §3.10.7.2: FIN, NULL and Xmas segments to a listening port are dropped (a
/// closed port answers them with RST, §3.10.7.1), so a FIN scan cannot tell open from closed as
/// answered-with-RST.
#[test]
fn fin_null_and_xmas_to_a_listening_port_draw_nothing() {
    if !interop_allowed() {
        return;
    }
    let _g = serial();
    let c = Conformance::up(&["echo"]);
    c.run(
        "listen_scan",
        &args(&[("listen", 7), ("closed", CLOSED_PORT)]),
    );
}

/// Scenario 9: Issue 13's storm: after a SYN without options (and one with only MSS) and a bare
/// ACK, the kernel's RSTs dropped, an idle connection draws fewer than 10 frames in 2 s.
#[test]
fn a_handshake_without_window_scaling_leaves_tapir_quiet() {
    if !interop_allowed() {
        return;
    }
    let _g = serial();
    let c = Conformance::up(&["echo"]);
    c.run("storm", &args(&[("echo", 7)]));
}
