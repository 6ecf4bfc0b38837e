//! The `tapir` command.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use engine::Node;
use tapir_apps::cli::NodeOpts;
use tapir_apps::perf::PerfOpts;
use tapir_apps::ping::PingOpts;
use tapir_apps::services::ServiceSpec;
use tapir_apps::{demo, perf, ping, serve};

/// tapir: a user-space TCP/IP node on a Linux tap.
#[derive(Debug, Parser)]
#[command(name = "tapir", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build a private lab, serve echo/daytime/HTTP on a node in it, drive it with the kernel's
    /// tools, print a summary, clean up. Needs root.
    Demo {
        /// Tap queues (workers) of the demo node.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        queues: u16,
    },
    /// Run services on a node until SIGINT or SIGTERM: echo, daytime, discard, http[=DIR]
    /// (each as NAME[:PORT][=ARG]).
    Serve {
        #[command(flatten)]
        node: NodeOpts,
        /// Services to run.
        #[arg(required = true, value_name = "SERVICE")]
        services: Vec<ServiceSpec>,
    },
    /// iperf3-compatible TCP throughput server (-s) or client (-c HOST).
    Perf {
        #[command(flatten)]
        node: NodeOpts,
        #[command(flatten)]
        perf: PerfOpts,
    },
    /// Send ICMP echo requests and print the replies, like iputils ping.
    Ping {
        #[command(flatten)]
        node: NodeOpts,
        #[command(flatten)]
        ping: PingOpts,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tapir: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Demo { queues } => {
            let ok = demo::run(usize::from(queues))?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Serve { node, services } => {
            let config = node_config(&node)?;
            let node = Node::start(config)?;
            let labels = serve::start_services(&node, &services)?;
            println!("{}", serve::start_line(&node, &labels));
            serve::wait_for_signal()?;
            node.shutdown();
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Perf { node, perf: opts } => {
            if !opts.server && opts.client.is_none() {
                eprintln!("tapir: perf needs -s (server) or -c HOST (client)");
                return Ok(ExitCode::from(2));
            }
            let config = node_config(&node)?;
            let node = Node::start(config)?;
            let r = perf::run(&node, &opts, &mut std::io::stdout());
            eprintln!("tapir perf: {}", node.stats());
            node.shutdown();
            r?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Ping { node, ping: opts } => {
            let config = node_config(&node)?;
            let node = Node::start(config)?;
            let summary = ping::run(&node, &opts, &mut std::io::stdout())?;
            node.shutdown();
            Ok(if summary.received > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Node options that do not describe a usable node are a usage error: exit 2.
fn node_config(opts: &NodeOpts) -> Result<engine::NodeConfig> {
    match opts.node_config() {
        Ok(c) => Ok(c),
        Err(e) => {
            eprintln!("tapir: {e:#}");
            std::process::exit(2);
        }
    }
}
