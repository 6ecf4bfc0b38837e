//! Running a closure inside a named network namespace (`/run/netns/NAME`, as `ip netns add` makes them).
//!
//! The namespace switch (`setns(CLONE_NEWNET)`) happens on a short-lived helper thread, so the caller's thread never
//! changes namespace. Sockets and tap fds opened by the closure stay bound to that namespace after the thread ends:
//! a file descriptor keeps the namespace it was opened in.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use thiserror::Error;

use super::cvt;

/// Where `ip netns` keeps its named namespaces (iproute2's `NETNS_RUN_DIR`).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Why entering a network namespace failed.
#[derive(Debug, Error)]
pub enum NetnsError {
    /// The name cannot be a namespace name (empty, `.`/`..`, contains `/` or NUL).
    #[error("{name:?} is not a valid network namespace name: use a plain name such as tapir-lab")]
    InvalidName { name: String },
    /// No `/run/netns/NAME`.
    #[error(
        "network namespace {name} not found (no {NETNS_RUN_DIR}/{name}): create it with `ip netns add {name}` \
         or `deploy/lab up {name}`"
    )]
    NotFound { name: String },
    /// Opening or entering the namespace was refused.
    #[error(
        "permission denied entering network namespace {name}: run as root (needs CAP_SYS_ADMIN)"
    )]
    PermissionDenied { name: String },
    /// The helper thread could not be started.
    #[error("could not start a helper thread to enter network namespace {name}: {source}")]
    Spawn {
        name: String,
        #[source]
        source: io::Error,
    },
    /// Any other failure of `open` or `setns`.
    #[error("entering network namespace {name}: {source}")]
    Io {
        name: String,
        #[source]
        source: io::Error,
    },
}

impl NetnsError {
    fn from_io(name: &str, source: io::Error) -> Self {
        let name = name.to_owned();
        match source.raw_os_error() {
            Some(libc::ENOENT) => NetnsError::NotFound { name },
            Some(libc::EPERM) | Some(libc::EACCES) => NetnsError::PermissionDenied { name },
            _ => NetnsError::Io { name, source },
        }
    }
}

/// The path of a named namespace, after checking the name cannot escape [`NETNS_RUN_DIR`].
pub fn netns_path(name: &str) -> Result<PathBuf, NetnsError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(NetnsError::InvalidName {
            name: name.to_owned(),
        });
    }
    Ok(PathBuf::from(NETNS_RUN_DIR).join(name))
}

/// Runs `f` on a helper thread that has entered network namespace `name`, and returns its result.
///
/// The calling thread's namespace is untouched. A panic inside `f` is propagated to the caller unchanged.
pub fn run_in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
    let path = netns_path(name)?;
    // Opened on the caller's thread so a missing namespace is reported before any thread is started.
    let ns = File::open(&path).map_err(|e| NetnsError::from_io(name, e))?;

    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn_scoped(scope, move || -> Result<T, NetnsError> {
                // SAFETY: `ns` is an open fd on an nsfs file for the whole call; setns only changes this helper
                // thread's network namespace (CLONE_NEWNET is allowed in a multi-threaded process) and the
                // thread ends right after `f`, so no other code runs in the switched namespace by surprise.
                cvt(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) })
                    .map_err(|e| NetnsError::from_io(name, e))?;
                Ok(f())
            })
            .map_err(|source| NetnsError::Spawn {
                name: name.to_owned(),
                source,
            })?;
        match helper.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::testlab::Lab;

    #[test]
    fn rejects_names_that_escape_the_run_dir() {
        for bad in ["", ".", "..", "a/b", "../etc", "x\0y"] {
            assert!(
                matches!(netns_path(bad), Err(NetnsError::InvalidName { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            netns_path("tapir-x").unwrap(),
            PathBuf::from("/run/netns/tapir-x")
        );
    }

    #[test]
    fn missing_namespace_is_not_found() {
        let err = run_in_netns("tapir-does-not-exist-\u{1F980}", || ()).unwrap_err();
        assert!(matches!(err, NetnsError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("ip netns add"));
    }

    #[test]
    fn closure_runs_in_the_namespace_and_caller_stays_put() {
        let Some(lab) = Lab::new() else { return };
        let own = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let inside = run_in_netns(lab.name(), || {
            std::fs::read_link("/proc/thread-self/ns/net").unwrap()
        })
        .unwrap();
        let target = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(netns_path(lab.name()).unwrap())
                .unwrap()
                .ino()
        };
        assert_ne!(own, inside);
        assert_eq!(inside.to_string_lossy(), format!("net:[{target}]"));
        assert_eq!(std::fs::read_link("/proc/thread-self/ns/net").unwrap(), own);
    }
}
