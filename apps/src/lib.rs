//! The `tapir` command: node options, services, clients, the lab and the demo.
#![forbid(unsafe_code)]

pub mod cli;
pub mod demo;
pub mod lab;
pub mod load;
pub mod perf;
pub mod ping;
pub mod resolve;
pub mod rlogin;
pub mod serve;
pub mod services;
pub mod shell;
pub mod trace_cmd;
pub mod traceroute;
pub mod tracing;
pub mod wget;
