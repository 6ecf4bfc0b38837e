//! Live tracing on a node in a lab: `--trace` lines on stdout and a `--pcap` capture written
//! while the kernel pings the node and talks TCP to it through `--impair` loss; tshark reads
//! the capture without complaint, and the stack's events ride on the packets as comments.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use tapir_apps::lab::Lab;

mod common;
use common::{interop_allowed, kernel, random_bytes};

const TAPIR: &str = env!("CARGO_BIN_EXE_tapir");

#[test]
fn a_live_capture_reads_in_tshark_with_stack_events_as_comments() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("tl").expect("lab");
    let pcap = std::env::temp_dir().join(format!("tapir-live-{}.pcapng", std::process::id()));
    let mut child = Command::new(TAPIR)
        .arg("serve")
        .args(lab.node_args())
        .args(["--impair", "loss=0.05,seed=3", "--trace", "icmp", "--pcap"])
        .arg(&pcap)
        .arg("echo")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tapir serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut start = String::new();
    stdout.read_line(&mut start).expect("start line");
    assert!(start.starts_with("tapir @ "), "{start}");

    // Lossy both ways: a ping may need several tries, the transfer retransmits.
    let ping = lab
        .command("ping")
        .args(["-c", "10", "-i", "0.05", "-W", "1", "10.7.0.2"])
        .output()
        .expect("ping");
    assert!(String::from_utf8_lossy(&ping.stdout).contains(" received"));
    let data = random_bytes(400_000, 11);
    let back = kernel(&lab, || {
        let addr = SocketAddr::V4(SocketAddrV4::new(lab.node.address(), 7));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut back = Vec::new();
        std::thread::scope(|sc| {
            sc.spawn(|| {
                w.write_all(&data).unwrap();
                w.shutdown(std::net::Shutdown::Write).unwrap();
            });
            s.read_to_end(&mut back).expect("echo");
        });
        back
    });
    assert!(back == data, "echo through loss differs");

    // SIGTERM: the node shuts down cleanly and closes the capture.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
    let mut lines = String::new();
    stdout.read_to_string(&mut lines).unwrap();
    assert!(lines.contains("ICMP echo request"), "trace lines: {lines}");
    assert!(
        !lines.contains(" tcp ") && !lines.contains("Flags ["),
        "the filter let only ICMP through: {lines}"
    );

    let out = Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args([
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
            "-V",
        ])
        .output()
        .expect("run tshark");
    let verbose = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !verbose.contains("Malformed"),
        "malformed packets in the capture"
    );
    assert!(verbose.contains("Internet Control Message Protocol"));
    let comments = Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args(["-Y", "frame.comment", "-T", "fields", "-e", "frame.comment"])
        .output()
        .expect("run tshark");
    let comments = String::from_utf8_lossy(&comments.stdout);
    assert!(
        comments.contains("state SYN-RECEIVED -> ESTABLISHED"),
        "comments: {comments}"
    );
    assert!(
        comments.contains("retransmit seq"),
        "a retransmission under 5% loss: {comments}"
    );
    let _ = std::fs::remove_file(&pcap);
}
