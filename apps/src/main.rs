//! The `tapir` command.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use anyhow::Result;
use clap::{Parser, Subcommand};
use engine::Node;
use tapir_apps::cli::NodeOpts;
use tapir_apps::load::merge::MergeOpts;
use tapir_apps::load::LoadOpts;
use tapir_apps::perf::PerfOpts;
use tapir_apps::ping::PingOpts;
use tapir_apps::resolve::{ResolveError, ResolveOpts};
use tapir_apps::rlogin::RloginOpts;
use tapir_apps::services::{Kind, LogTarget, ServiceSpec};
use tapir_apps::trace_cmd::{self, TraceOpts};
use tapir_apps::traceroute::TracerouteOpts;
use tapir_apps::wget::WgetOpts;
use tapir_apps::{demo, perf, ping, resolve, rlogin, serve, shell, traceroute, wget};

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
    /// Run services on a node until SIGINT or SIGTERM (then stops gracefully within --grace;
    /// SIGHUP reopens the access log): echo, daytime, discard, chargen,
    /// http[=DIR], http.log[=DIR], login=FILE (each as NAME[:PORT][=ARG]).
    #[command(after_help = tapir_apps::services::help())]
    Serve {
        #[command(flatten)]
        node: NodeOpts,
        /// HTTP: an access log line per request in nginx's combined format, appended to FILE
        /// (SIGHUP opens it again, for logrotate), or on stdout for `-` (as the name http.log).
        #[arg(long, value_name = "FILE")]
        access_log: Option<std::path::PathBuf>,
        /// HTTP: connections served at once; more are answered 503.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        http_max_conns: Option<u32>,
        /// HTTP: close a keep-alive connection idle this many seconds (default 30).
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u32).range(1..=86400))]
        http_idle: Option<u32>,
        /// HTTP: send `Cache-Control: VALUE` with every successful file answer (e.g. max-age=3600).
        #[arg(long, value_name = "VALUE", value_parser = header_value)]
        cache_control: Option<String>,
        /// After SIGTERM or SIGINT: stop accepting and give in-flight responses this many
        /// seconds to finish before cutting them off.
        #[arg(long, value_name = "SECS", default_value_t = 10,
              value_parser = clap::value_parser!(u32).range(0..=3600))]
        grace: u32,
        /// HTTPS: the certificate chain to present (PEM), for https services.
        #[arg(long, value_name = "FILE", requires = "key")]
        cert: Option<std::path::PathBuf>,
        /// HTTPS: the private key of --cert (PEM: PKCS#8, PKCS#1 or SEC1).
        #[arg(long, value_name = "FILE", requires = "cert")]
        key: Option<std::path::PathBuf>,
        /// Services to run.
        #[arg(required = true, value_name = "SERVICE")]
        services: Vec<ServiceSpec>,
    },
    /// An interactive shell on a live node (ping, serve, arp, route, conns, stats, ...); with
    /// --exec or piped input, runs the commands and exits with the last one's status.
    Node {
        #[command(flatten)]
        node: NodeOpts,
        /// Services to start first, comma-separated (e.g. echo,http=/srv/www).
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        serve: Vec<ServiceSpec>,
        /// Commands to run, separated by ';', instead of a prompt.
        #[arg(long, value_name = "CMDS")]
        exec: Option<String>,
    },
    /// iperf3-compatible TCP and UDP throughput server (-s) or client (-c HOST).
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
    /// Print the path to a host hop by hop (UDP probes, or ICMP echo with -I), like Linux
    /// traceroute. Exit status 1 when the host was not reached.
    Traceroute {
        #[command(flatten)]
        node: NodeOpts,
        #[command(flatten)]
        opts: TracerouteOpts,
    },
    /// Fetch a URL over HTTP/1.1 (redirects, chunked bodies) into a file, like wget.
    Wget {
        #[command(flatten)]
        node: NodeOpts,
        #[command(flatten)]
        opts: WgetOpts,
    },
    /// Log in to a host's rlogind (RFC 1282) from a reserved port: raw terminal, window size
    /// sent when asked, `~.` at the start of a line disconnects. Exit 1 when no session starts
    /// or a signal ended it.
    Rlogin {
        #[command(flatten)]
        node: NodeOpts,
        #[command(flatten)]
        opts: RloginOpts,
    },
    /// Resolve a name to its IPv4 addresses over DNS (servers from --dns), printing the alias
    /// chain; exit 1 when the name does not exist or no server answers.
    Resolve {
        #[command(flatten)]
        node: NodeOpts,
        #[command(flatten)]
        resolve: ResolveOpts,
    },
    /// HTTP/1.1 load generator on every worker: closed loop (-c), open loop (--rate), one
    /// connection per request (--close), many source addresses (--src CIDR); prints
    /// requests/s, throughput, latency percentiles and errors by kind. `tapir load merge
    /// A.json B.json ...` merges the --json reports of several runs into one.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Load {
        #[command(subcommand)]
        merge: Option<LoadCmd>,
        #[command(flatten)]
        node: NodeOpts,
        #[command(flatten)]
        load: LoadOpts,
    },
    /// Decode a pcapng capture offline with tapir's decoders, one tcpdump-style line per
    /// packet, stack events (packet comments) below it.
    Trace(TraceOpts),
}

/// What `tapir load` does besides a run.
#[derive(Debug, Subcommand)]
enum LoadCmd {
    /// Merge the --json reports of several runs (e.g. from several hosts at once) into one:
    /// counts add up, percentiles come from the merged histograms.
    Merge(MergeOpts),
}

/// A header field value given on the command line: visible ASCII and spaces, not empty.
fn header_value(v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.is_empty()
        || !v
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    {
        return Err("give a header value of visible ASCII characters, e.g. max-age=3600".into());
    }
    Ok(v.to_string())
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
        Cmd::Serve {
            node,
            access_log,
            http_max_conns,
            http_idle,
            cache_control,
            grace,
            cert,
            key,
            mut services,
        } => {
            let https = services.iter().any(|s| s.kind == Kind::Https);
            if https && cert.is_none() {
                eprintln!(
                    "tapir: https needs its certificate and key: --cert FILE --key FILE (PEM)"
                );
                return Ok(ExitCode::from(2));
            }
            for s in &mut services {
                s.cache_control.clone_from(&cache_control);
                s.tls = cert.clone().zip(key.clone());
                if let Some(f) = &access_log {
                    s.access_log = Some(if f.as_os_str() == "-" {
                        LogTarget::Stdout
                    } else {
                        LogTarget::File(f.clone())
                    });
                }
                if let Some(n) = http_max_conns {
                    s.max_conns = n as usize;
                }
                if let Some(secs) = http_idle {
                    s.idle = std::time::Duration::from_secs(u64::from(secs));
                }
            }
            let mut signals = serve::serve_signals()?;
            let node = start_node(&node)?;
            let running = serve::start_services(&node, &services)?;
            println!("{}", serve::start_line(&node, &serve::labels(&running)));
            let grace = std::time::Duration::from_secs(u64::from(grace));
            if !serve::serve_until_signalled(&running, &mut signals, grace) {
                eprintln!(
                    "tapir: responses still in flight after the {}-second grace period were cut off",
                    grace.as_secs()
                );
            }
            eprintln!("tapir serve: {}", node.stats());
            tapir_apps::cli::stop_node(&node);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Node { node, serve, exec } => {
            let node_opts = node.clone();
            let node = start_node(&node)?;
            let dns = node_opts.dns_servers(&node);
            let mut shell = shell::Shell::new(node.clone(), dns);
            let labels = shell.serve(&serve)?;
            println!("{}", serve::start_line(&node, &labels));
            let status = shell::run(&mut shell, exec.as_deref());
            tapir_apps::cli::stop_node(&node);
            Ok(ExitCode::from(status))
        }
        Cmd::Perf { node, perf: opts } => {
            if !opts.server && opts.client.is_none() {
                eprintln!("tapir: perf needs -s (server) or -c HOST (client)");
                return Ok(ExitCode::from(2));
            }
            if let Err(e) = opts.validate() {
                eprintln!("tapir: perf: {e}");
                return Ok(ExitCode::from(2));
            }
            let mut config = node_config(&node)?;
            opts.tune(&mut config.stack.tcp);
            let node = start_node_with(&node, config)?;
            // SIGINT and SIGTERM stop a server (the node stops, which ends the wait for a test);
            // a client's test ends at once as if its time were up, and its summary of what was
            // measured so far is printed, as iperf3 does (a second signal stops the node). The
            // handlers are in place before the server says it listens.
            let mut signals = serve::stop_signals()?;
            let signalled = Arc::new(AtomicI32::new(0));
            {
                let (node, signalled) = (node.clone(), signalled.clone());
                let (client, interrupt) = (opts.client.is_some(), opts.interrupt.clone());
                std::thread::spawn(move || {
                    for sig in signals.forever() {
                        let first = signalled.swap(sig, Ordering::SeqCst) == 0;
                        if client && first {
                            interrupt.store(true, Ordering::SeqCst);
                        } else {
                            node.shutdown();
                            break;
                        }
                    }
                });
            }
            let r = perf::run(&node, &opts, &mut std::io::stdout());
            eprintln!("tapir perf: {}", node.stats());
            tapir_apps::cli::stop_node(&node);
            match signalled.load(Ordering::SeqCst) {
                0 => {
                    r?;
                    Ok(ExitCode::SUCCESS)
                }
                sig => {
                    eprintln!("tapir perf: interrupted by signal {sig}");
                    // A server stopped by a signal did its job; a client's test was cut short.
                    Ok(if opts.server {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    })
                }
            }
        }
        Cmd::Ping { node, ping: opts } => {
            let node = start_node(&node)?;
            let summary = ping::run(&node, &opts, &mut std::io::stdout())?;
            tapir_apps::cli::stop_node(&node);
            Ok(if summary.received > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Traceroute { node, opts } => {
            let node = start_node(&node)?;
            let trace = traceroute::run(&node, &opts, &mut std::io::stdout())?;
            tapir_apps::cli::stop_node(&node);
            Ok(if trace.reached {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Wget { node, opts } => {
            let node_opts = node.clone();
            let node = start_node(&node)?;
            let dns = node_opts.dns_servers(&node);
            let r = wget::run(&node, &opts, &dns);
            tapir_apps::cli::stop_node(&node);
            r?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Rlogin { node, opts } => {
            if let Err(e) = opts.check() {
                eprintln!("tapir: {e:#}");
                return Ok(ExitCode::from(2));
            }
            let node_opts = node.clone();
            let node = start_node(&node)?;
            let dns = node_opts.dns_servers(&node);
            let r = rlogin::run(&node, &opts, &dns, &mut std::io::stdout());
            tapir_apps::cli::stop_node(&node);
            Ok(match r? {
                rlogin::Ended::Signalled => ExitCode::from(1),
                _ => ExitCode::SUCCESS,
            })
        }
        Cmd::Resolve {
            node,
            resolve: opts,
        } => {
            if node.dns.is_empty() && !node.dhcp {
                eprintln!("tapir: {}", ResolveError::NoServers);
                return Ok(ExitCode::from(2));
            }
            let n = start_node(&node)?;
            let dns = node.dns_servers(&n);
            let r = resolve::run(&n, &dns, &opts, &mut std::io::stdout());
            tapir_apps::cli::stop_node(&n);
            match r {
                Ok(_) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("tapir: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Cmd::Load {
            merge: Some(LoadCmd::Merge(opts)),
            ..
        } => {
            // Files that are not reports are bad input: a usage error.
            match tapir_apps::load::merge::run(&opts) {
                Ok(report) => {
                    print_report(&report, opts.json);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("tapir: {e:#}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Cmd::Load {
            node, load: opts, ..
        } => run_load(&node, &opts),
        Cmd::Trace(opts) => {
            let filter = match opts.filter() {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("tapir: {e}");
                    eprintln!("tapir: a filter reads like `tcp and port 80`, `not arp` or `src host 10.0.0.1`");
                    return Ok(ExitCode::from(2));
                }
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            trace_cmd::run(&opts, filter.as_ref(), &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `tapir load`: the node owns `--src` besides its address; exit 1 when no request succeeded.
fn run_load(node_opts: &NodeOpts, opts: &LoadOpts) -> Result<ExitCode> {
    if let Err(e) = opts.check() {
        eprintln!("tapir: {e:#}");
        return Ok(ExitCode::from(2));
    }
    let mut config = node_config(node_opts)?;
    if let (Some(src), Some(gw)) = (opts.src, config.stack.gateway) {
        if src.contains(gw) {
            eprintln!("tapir: --src {src} holds the gateway {gw}: pick a range no other host uses");
            return Ok(ExitCode::from(2));
        }
    }
    config.stack.extra_addrs = opts.src;
    config.stack.tcp.rx_buffer = opts.rx_buffer as usize;
    config.stack.tcp.tx_buffer = tapir_apps::load::TX_BUFFER;
    let node = start_node_with(node_opts, config)?;
    let dns = node_opts.dns_servers(&node);
    let r = tapir_apps::load::run(&node, opts, &dns);
    eprintln!("tapir load: {}", node.stats());
    node.shutdown();
    let report = r?;
    print_report(&report, opts.json);
    Ok(if report.results.requests > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_report(report: &tapir_apps::load::report::Report, json: bool) {
    if json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
}

/// Starts the node the options describe, with `--trace` / `--pcap` running.
fn start_node(opts: &NodeOpts) -> Result<Node> {
    let config = node_config(opts)?;
    start_node_with(opts, config)
}

/// Like `start_node`, with a configuration the caller adjusted.
fn start_node_with(opts: &NodeOpts, config: engine::NodeConfig) -> Result<Node> {
    let trace = opts
        .trace
        .as_deref()
        .map(|e| tapir_apps::tracing::parse_filter(Some(e)));
    let pcap_filter = opts
        .pcap_filter
        .as_deref()
        .map(|e| tapir_apps::tracing::parse_filter(Some(e)));
    for f in [trace, pcap_filter].into_iter().flatten() {
        if let Err(e) = f {
            eprintln!("tapir: {e:#}");
            std::process::exit(2);
        }
    }
    let node = Node::start(config)?;
    if let Some(expr) = &opts.trace {
        tapir_apps::tracing::start_lines(&node, Some(expr))?;
    }
    if let Some(path) = &opts.pcap {
        let pcap = tapir_apps::tracing::PcapOpts {
            snaplen: opts.snaplen as usize,
            ring_slots: opts.pcap_ring as usize,
            wait: opts.pcap_wait,
        };
        tapir_apps::tracing::start_pcap(&node, path, opts.pcap_filter.as_deref(), pcap)?;
    }
    tapir_apps::cli::wait_for_lease(opts, &node)?;
    Ok(node)
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
