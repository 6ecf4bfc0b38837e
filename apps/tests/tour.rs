//! The README's tour runs word for word (issue 18): `scripts/tour` takes the ```sh block under
//! "## A short tour", runs each line in one shell against a fresh lab (`deploy/lab up tapir-lab`),
//! driving the servers, the interactive shell and the rlogin session as a person at a terminal
//! would, and stops at the first line that fails. This test runs it with the binary cargo built,
//! so a README line that no longer works fails CI. Needs root and /dev/net/tun; the runner
//! removes the lab, the user and the files it made on every path.

use std::path::Path;
use std::process::Command;

mod common;
use common::{interop_allowed, need, text};

const TAPIR: &str = env!("CARGO_BIN_EXE_tapir");

#[test]
fn the_readme_tour_runs_word_for_word() {
    if !interop_allowed() {
        return;
    }
    for tool in [
        "python3", "dnsmasq", "iperf3", "curl", "openssl", "inetd", "chpasswd",
    ] {
        need(tool);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("scripts/tour");
    let listed = Command::new("bash")
        .arg(&script)
        .arg("--list")
        .output()
        .expect("run scripts/tour --list");
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let lines = text(&listed.stdout).lines().count();
    assert!(
        lines >= 20,
        "the tour should have its ~29 command lines, found {lines}"
    );
    let out = Command::new("bash")
        .arg(&script)
        .args(["--bin", TAPIR])
        .output()
        .expect("run scripts/tour");
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "the README's tour failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("tour: all {lines} lines ran")),
        "every line of the tour should have run:\n{stdout}\n{stderr}"
    );
}
