//! Seeds for sweeps, and the replay line a failure prints.
//!
//! `TAPIR_SIM_SEED=N` runs one seed (to replay a failure); `TAPIR_SIM_SEEDS=K` runs seeds 1..=K
//! instead of a test's default count (for soak runs).

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::network::SimError;

/// The seeds a sweep of `default_count` runs, after the environment had its say.
pub fn seeds(default_count: u64) -> Vec<u64> {
    if let Some(seed) = env_u64("TAPIR_SIM_SEED") {
        return vec![seed];
    }
    let count = env_u64("TAPIR_SIM_SEEDS").unwrap_or(default_count);
    (1..=count).collect()
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={v:?}: expected a non-negative integer"),
    }
}

/// The one command that replays `seed` of test `test` in integration test target `target`.
pub fn replay_command(target: &str, test: &str, seed: u64) -> String {
    format!("TAPIR_SIM_SEED={seed} cargo test -p tapir-sim --test {target} -- --exact {test} --include-ignored")
}

thread_local! {
    /// (target, test) of the sweep running on this thread, for [`replay_here`].
    static CURRENT: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// The replay command for `seed` of whatever test is running on this thread: the sweep's
/// target and test when inside [`sweep`], else the test binary's name (its file name without
/// cargo's hash) and the thread's name (libtest names each test's thread after the test).
pub fn replay_here(seed: u64) -> String {
    if let Some((target, test)) = CURRENT.with(|c| c.borrow().clone()) {
        return replay_command(&target, &test, seed);
    }
    let target = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| match s.rsplit_once('-') {
            Some((name, _hash)) => name.to_string(),
            None => s,
        })
        .unwrap_or_else(|| "TARGET".into());
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("TEST");
    replay_command(&target, test, seed)
}

/// Runs `scenario` for every seed of the sweep (see [`seeds`]). Every failure, a panic included,
/// prints its seed and replay command; the sweep then panics listing the failed seeds. Returns
/// the results of the seeds that passed, in seed order.
///
/// `target` is the integration-test target (`module_path!()` at the test file's top level),
/// `test` the test function's name.
pub fn sweep<R>(
    target: &str,
    test: &str,
    default_count: u64,
    mut scenario: impl FnMut(u64) -> Result<R, SimError>,
) -> Vec<R> {
    let target = target.split("::").next().unwrap_or(target);
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    CURRENT.with(|c| *c.borrow_mut() = Some((target.to_string(), test.to_string())));
    for seed in seeds(default_count) {
        let outcome = catch_unwind(AssertUnwindSafe(|| scenario(seed)));
        let why = match outcome {
            Ok(Ok(r)) => {
                ok.push(r);
                continue;
            }
            Ok(Err(e)) => e.to_string(),
            Err(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into()),
        };
        if why.contains("\n  replay: ") {
            // An invariant error names its replay command already.
            eprintln!("sim: {test} seed {seed} FAILED: {why}");
        } else {
            eprintln!(
                "sim: {test} seed {seed} FAILED: {why}\n  replay: {}",
                replay_command(target, test, seed)
            );
        }
        failed.push(seed);
    }
    CURRENT.with(|c| *c.borrow_mut() = None);
    assert!(
        failed.is_empty(),
        "{test}: {} seed(s) failed: {failed:?} (replay commands above)",
        failed.len()
    );
    ok
}
