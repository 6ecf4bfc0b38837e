//! tapir's HdrHistogram encoding read by a second implementation (the `hdrhistogram` package
//! from PyPI, which scripts/setup installs into its venv), and `tapir load merge` on report
//! files. No network, no root.

use super::*;
use tapir_apps::load::report::{Cpu, Report, Results};

/// The python of the venv scripts/setup makes (TAPIR_PY_VENV, or /opt/tapir-py).
fn venv_python() -> String {
    let venv = std::env::var("TAPIR_PY_VENV").unwrap_or_else(|_| "/opt/tapir-py".into());
    let py = format!("{venv}/bin/python");
    assert!(
        std::path::Path::new(&py).exists(),
        "{py} is missing: run scripts/setup (as root) to install hdrhistogram from PyPI"
    );
    py
}

fn report(samples: impl Iterator<Item = u64>) -> Report {
    let results = Results::of_latencies(samples);
    Report {
        urls: vec!["http://10.7.0.1/".into()],
        mode: "closed loop over 1 connections".into(),
        secs: 1.0,
        results,
        cpu: Cpu::default(),
    }
}

/// What python's hdrhistogram reads from `encoded`: count, min, max, p50, p99, p99.9.
fn python_reads(encoded: &str) -> Vec<u64> {
    let script = "import sys\nfrom hdrh.histogram import HdrHistogram\n\
h = HdrHistogram.decode(sys.argv[1])\n\
print(h.get_total_count(), h.get_min_value(), h.get_max_value(), \
h.get_value_at_percentile(50), h.get_value_at_percentile(99), h.get_value_at_percentile(99.9))\n";
    let out = run_ok(Command::new(venv_python()).args(["-c", script, encoded]));
    text(&out.stdout)
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect()
}

#[test]
fn python_hdrhistogram_decodes_what_tapir_encodes() {
    // Latencies over five decades, with a tail.
    let r = report(
        (0..20_000u64).map(|i| 1 + (i * i) % 100_000 + if i % 997 == 0 { 2_000_000 } else { 0 }),
    );
    let v = r.json();
    let h = &r.results.latency_us;
    let got = python_reads(v["latency_hdr"].as_str().unwrap());
    assert_eq!(got.len(), 6, "{got:?}");
    assert_eq!(got[0], h.len(), "total count");
    for (name, theirs, ours) in [
        ("min", got[1], h.min()),
        ("max", got[2], h.max()),
        ("p50", got[3], h.value_at_quantile(0.5)),
        ("p99", got[4], h.value_at_quantile(0.99)),
        ("p99.9", got[5], h.value_at_quantile(0.999)),
    ] {
        assert!(
            h.equivalent(theirs, ours),
            "{name}: python {theirs}, tapir {ours}"
        );
    }
}

#[test]
fn load_merge_combines_report_files() {
    let dir = TempDir::new("load-merge");
    let a = report((1..=9_000).map(|i| 100 + i % 50));
    let b = report((1..=1_000).map(|i| 5_000 + i));
    let (fa, fb) = (dir.0.join("a.json"), dir.0.join("b.json"));
    std::fs::write(&fa, a.json().to_string()).unwrap();
    std::fs::write(&fb, b.json().to_string()).unwrap();
    let out = run_ok(
        Command::new(TAPIR)
            .arg("load")
            .arg("merge")
            .arg(&fa)
            .arg(&fb)
            .arg("--json"),
    );
    let m: Value = serde_json::from_str(text(&out.stdout).trim()).expect("JSON");
    assert_eq!(m["requests"], 10_000, "{m}");
    // 90% of the samples are near 100 µs, the slowest 10% from 5 ms: p99 is among those.
    let p99 = m["latency_us"]["p99"].as_u64().unwrap();
    assert!((5_000..=6_100).contains(&p99), "{m}");
    // The merged histogram is readable by the second implementation too.
    let got = python_reads(m["latency_hdr"].as_str().unwrap());
    assert_eq!(got[0], 10_000);
    // Text, and bad input is a usage error.
    let out = run_ok(
        Command::new(TAPIR)
            .arg("load")
            .arg("merge")
            .arg(&fa)
            .arg(&fb),
    );
    assert!(
        text(&out.stdout).contains("2 runs merged"),
        "{}",
        text(&out.stdout)
    );
    let out = Command::new(TAPIR)
        .args(["load", "merge"])
        .arg(dir.0.join("none.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot read"),
        "{}",
        text(&out.stderr)
    );
}
