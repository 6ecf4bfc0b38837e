//! Stock iperf3 in a lab namespace, for the perf test files.

use std::process::Stdio;
use std::time::{Duration, Instant};

use super::Proc;
use tapir_apps::lab::Lab;

/// Stock `iperf3 -s -1` in the lab namespace (plus `extra`); returns once it listens.
pub fn kernel_server(lab: &Lab, extra: &[&str]) -> Proc {
    let child = lab
        .command("iperf3")
        .args(["-s", "-1", "-B", &lab.host.to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn iperf3 -s (run scripts/setup to install iperf3)");
    let p = Proc(child);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let ss = lab
            .command("ss")
            .args(["-Hltn", "sport = :5201"])
            .output()
            .expect("ss");
        if !String::from_utf8_lossy(&ss.stdout).trim().is_empty() {
            return p;
        }
        assert!(Instant::now() < until, "iperf3 -s never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
}
