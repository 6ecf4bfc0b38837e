//! `tapir load merge`: the JSON reports of several runs (a load too big for one host, run
//! from several at once) as one report. Latencies merge exactly: each report carries its
//! whole histogram in HdrHistogram's standard encoding, so the merged percentiles are those
//! of one histogram fed every sample. Counts add up; the runs are taken to be concurrent, so
//! the merged run lasts as long as the longest and its rate is the sum of theirs.

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;

use super::report::{decode_histogram, new_histogram, Cpu, Report, Results, ERROR_KINDS};

/// `tapir load merge` options.
#[derive(Debug, Clone, Args)]
pub struct MergeOpts {
    /// Reports written by `tapir load --json`, one a file.
    #[arg(value_name = "FILE.json", required = true, num_args = 1..)]
    pub files: Vec<String>,
    /// Print the merged report as JSON (which merges again).
    #[arg(long)]
    pub json: bool,
}

fn u64_of(v: &Value, key: &str) -> Result<u64> {
    v[key]
        .as_u64()
        .with_context(|| format!("no count {key:?} in it"))
}

/// A report back from its JSON.
pub fn from_json(v: &Value) -> Result<Report> {
    let hdr = v["latency_hdr"]
        .as_str()
        .context("no \"latency_hdr\" in it (written by tapir load --json?)")?;
    let mut latency_us = new_histogram();
    latency_us
        .add(decode_histogram(hdr).context("latency_hdr")?)
        .context("latency_hdr holds latencies beyond an hour")?;
    // Reports without it (closed loop before it was written) are their own uncorrected figure.
    let mut uncorrected_us = new_histogram();
    let uncorrected = match v["latency_uncorrected_hdr"].as_str() {
        Some(u) => decode_histogram(u).context("latency_uncorrected_hdr")?,
        None => latency_us.clone(),
    };
    uncorrected_us
        .add(uncorrected)
        .context("latency_uncorrected_hdr holds latencies beyond an hour")?;
    let mut errors = [0; ERROR_KINDS.len()];
    let given = v["errors"].as_object().context("no \"errors\" in it")?;
    for (name, n) in given {
        let Some(k) = ERROR_KINDS.iter().position(|k| k.name() == name) else {
            bail!("unknown error class {name:?} (written by another version of tapir?)");
        };
        errors[k] = n.as_u64().with_context(|| format!("errors.{name}"))?;
    }
    let results = Results {
        latency_us,
        uncorrected_us,
        requests: u64_of(v, "requests")?,
        bytes: u64_of(v, "bytes")?,
        errors,
        conns_opened: u64_of(v, "conns_opened")?,
        conns_peak: u64_of(v, "conns_peak")?,
        conns_at_end: u64_of(v, "conns_at_end")?,
        conns_without_response: u64_of(v, "conns_without_response")?,
        min_requests_at_end: v["min_requests_at_end"].as_u64(),
        handshakes: v["tls_handshakes"].as_u64().unwrap_or(0),
        resumed: v["tls_resumed"].as_u64().unwrap_or(0),
    };
    let urls = match v["urls"].as_array() {
        Some(a) => a
            .iter()
            .filter_map(|u| u.as_str().map(String::from))
            .collect(),
        None => v["url"].as_str().map(String::from).into_iter().collect(),
    };
    Ok(Report {
        urls,
        mode: v["mode"].as_str().unwrap_or("").to_string(),
        secs: v["seconds"].as_f64().context("no \"seconds\" in it")?,
        results,
        cpu: Cpu {
            user_s: v["cpu_user_s"].as_f64().unwrap_or(0.0),
            system_s: v["cpu_system_s"].as_f64().unwrap_or(0.0),
        },
    })
}

/// Several concurrent runs as one.
pub fn merge(reports: &[Report]) -> Report {
    let mut results = Results::default();
    let mut urls: Vec<String> = Vec::new();
    let mut modes: Vec<&str> = Vec::new();
    let mut secs: f64 = 0.0;
    let mut cpu = Cpu::default();
    for r in reports {
        results.merge(&r.results);
        cpu.user_s += r.cpu.user_s;
        cpu.system_s += r.cpu.system_s;
        secs = secs.max(r.secs);
        for u in &r.urls {
            if !urls.contains(u) {
                urls.push(u.clone());
            }
        }
        if !modes.contains(&r.mode.as_str()) {
            modes.push(&r.mode);
        }
    }
    Report {
        urls,
        mode: format!("{} runs merged: {}", reports.len(), modes.join("; ")),
        secs,
        results,
        cpu,
    }
}

/// Reads and merges the files `opts` names.
pub fn run(opts: &MergeOpts) -> Result<Report> {
    let mut reports = Vec::new();
    for f in &opts.files {
        let text = std::fs::read_to_string(f).with_context(|| format!("{f}: cannot read it"))?;
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{f}: not JSON; give reports of tapir load --json"))?;
        reports.push(from_json(&v).with_context(|| format!("{f}: not a tapir load report"))?);
    }
    Ok(merge(&reports))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pseudo-random latency in µs, spread over four decades.
    fn sample(i: u64) -> u64 {
        let x = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            >> 33;
        10u64.pow(1 + (x % 4) as u32) + x % 9973
    }

    fn report(samples: impl Iterator<Item = u64>) -> Report {
        let results = Results::of_latencies(samples);
        Report {
            urls: vec!["http://10.7.0.1/".into()],
            mode: "closed loop".into(),
            secs: 2.0,
            results,
            cpu: Cpu {
                user_s: 0.5,
                system_s: 1.0,
            },
        }
    }

    #[test]
    fn merged_runs_equal_one_run_of_every_sample() {
        let a = report((0..30_000).map(sample));
        let b = report((30_000..50_000).map(sample));
        let one = report((0..50_000).map(sample));
        // Through JSON, as the files carry them.
        let back = |r: &Report| from_json(&r.json()).unwrap();
        let merged = merge(&[back(&a), back(&b)]);
        assert_eq!(merged.results.requests, 50_000);
        let (m, o) = (&merged.results.latency_us, &one.results.latency_us);
        assert_eq!(m.len(), o.len());
        for q in [0.5, 0.9, 0.99, 0.999] {
            let (mv, ov) = (m.value_at_quantile(q), o.value_at_quantile(q));
            // Within one histogram bucket of each other.
            assert!(o.equivalent(mv, ov), "q {q}: merged {mv}, one run {ov}");
        }
        assert_eq!(m.max(), o.max());
        // Concurrent runs: as long as the longest, their rates add up.
        assert_eq!(merged.secs, 2.0);
        assert_eq!(merged.requests_per_sec(), 25_000.0);
        assert!(merged.mode.starts_with("2 runs merged"));
        // Their costs add up too.
        assert_eq!(merged.cpu.total_s(), 3.0);
    }

    #[test]
    fn what_is_not_a_report_is_refused() {
        assert!(from_json(&serde_json::json!({"requests": 1})).is_err());
        let mut v = report(1..10).json();
        v["errors"]["no_such_class"] = 1.into();
        assert!(from_json(&v).is_err());
        let mut v = report(1..10).json();
        v["latency_hdr"] = "bm90IGEgaGlzdG9ncmFt".into();
        assert!(from_json(&v).is_err());
    }
}
