//! `tapir._tapir`: the Rust half of the `tapir` Python module, a thin layer over the engine's
//! socket API and the apps' clients and services (nothing of the stack is in Python).
//!
//! - [`node`]: `Node`, started from the same node options as the `tapir` command, with ping,
//!   traceroute, resolve, wget, serve and trace.
//! - [`sock`]: `Core`, one socket (TCP, UDP or raw IPv4) that `tapir.socket` wraps.
//! - [`trace`]: the packet log handed to a Python callback off the workers' path.
//!
//! Every call that waits releases the GIL; the ones that may wait long wait in slices and
//! look for signals between them, so Ctrl-C interrupts them.

mod errors;
mod node;
mod out;
mod sock;
mod trace;

use pyo3::prelude::*;

/// Parses node options (`["--netns", "NS", "--ip", "CIDR"]`): None when they are good, else
/// `(exit status, what clap prints)` (for `--help`, status 0).
#[pyfunction]
fn check_args(argv: Vec<String>) -> Option<(i32, String)> {
    node::parse_args(&argv).err()
}

#[pymodule]
fn _tapir(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<node::PyNode>()?;
    m.add_class::<node::Services>()?;
    m.add_class::<sock::Core>()?;
    m.add_class::<trace::Trace>()?;
    m.add_class::<trace::Packet>()?;
    m.add_function(wrap_pyfunction!(check_args, m)?)?;
    for (name, v) in [
        ("AF_INET", 2),
        ("SOCK_STREAM", sock::SOCK_STREAM),
        ("SOCK_DGRAM", sock::SOCK_DGRAM),
        ("SOCK_RAW", sock::SOCK_RAW),
        ("IPPROTO_IP", sock::IPPROTO_IP),
        ("IPPROTO_ICMP", sock::IPPROTO_ICMP),
        ("IPPROTO_TCP", sock::IPPROTO_TCP),
        ("IPPROTO_UDP", sock::IPPROTO_UDP),
        ("IPPROTO_RAW", sock::IPPROTO_RAW),
        ("SOL_SOCKET", sock::SOL_SOCKET),
        ("SO_REUSEADDR", sock::SO_REUSEADDR),
        ("SO_REUSEPORT", sock::SO_REUSEPORT),
        ("SO_BROADCAST", sock::SO_BROADCAST),
        ("SO_TYPE", sock::SO_TYPE),
        ("SO_ERROR", sock::SO_ERROR),
        ("SO_KEEPALIVE", sock::SO_KEEPALIVE),
        ("TCP_NODELAY", sock::TCP_NODELAY),
        ("TCP_KEEPIDLE", sock::TCP_KEEPIDLE),
        ("IP_TTL", sock::IP_TTL),
        ("IP_HDRINCL", sock::IP_HDRINCL),
        ("SHUT_RD", sock::SHUT_RD),
        ("SHUT_WR", sock::SHUT_WR),
        ("SHUT_RDWR", sock::SHUT_RDWR),
    ] {
        m.add(name, v)?;
    }
    Ok(())
}
