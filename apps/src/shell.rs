//! `tapir node`: the interactive node shell, PyIP's REPL grown up. Line editing, history and
//! completion on a terminal; commands from `--exec` or from standard input otherwise.
//!
//! Every command writes to the given output and returns an exit status (0 ok, 1 failed, 2 bad
//! usage), so a script's status is its last command's.

use std::io::{self, BufRead, IsTerminal, Write};

use clap::Parser;
use engine::{Node, TraceSlot};

use std::net::Ipv4Addr;

use crate::ping::{self, PingOpts};
use crate::resolve::{Resolver, ResolverConfig};
use crate::rlogin::{self, RloginOpts};
use crate::services::{Running, ServiceSpec};
use crate::traceroute::{self, TracerouteOpts};
use crate::wget::{self, WgetOpts};

/// Commands and a one-line description each, for `help` and completion. The shell runs only
/// the commands named here (anything else is "unknown command"), so `help` lists every command
/// that works.
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "ping",
        "ping HOST [-c N] [-i SECS] [-s BYTES] [-W SECS] [-t TTL]: ICMP echo",
    ),
    (
        "traceroute",
        "traceroute HOST [-I] [-f TTL] [-m HOPS] [-q N] [-w SECS] [-p PORT]: the path hop by hop",
    ),
    (
        "wget",
        "wget URL [-O FILE]: fetch over HTTP/1.1 into a file (names through --dns)",
    ),
    (
        "resolve",
        "resolve NAME: its IPv4 addresses and aliases over DNS (servers from --dns or DHCP)",
    ),
    (
        "rlogin",
        "rlogin [-l USER] [-p PORT] HOST: remote login (a terminal only; ~. disconnects)",
    ),
    (
        "serve",
        "serve start SERVICE... | serve stop NAME[:PORT]... | serve list: services on this node",
    ),
    (
        "trace",
        "trace on [EXPR] | trace off: tcpdump-style lines for frames matching EXPR",
    ),
    (
        "pcap",
        "pcap start [-s SNAPLEN] FILE [EXPR] | pcap stop: a pcapng capture Wireshark reads",
    ),
    ("arp", "arp: the ARP cache"),
    ("route", "route: the routing table"),
    (
        "conns",
        "conns: every TCP connection with its state, queues, RTT and cwnd",
    ),
    (
        "stats",
        "stats: frame counters and drops by reason, per worker, and a running capture's drops",
    ),
    (
        "dhcp",
        "dhcp: the DHCP lease (address, router, DNS, times), counters and recent events",
    ),
    ("help", "help: this list (also ?)"),
    ("quit", "quit: leave (also exit, or end of input)"),
];

/// The shell's state: the node and what it serves.
pub struct Shell {
    node: Node,
    serving: Vec<Running>,
    resolver: Resolver,
}

/// What a command asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue(u8),
    Quit,
}

#[derive(Debug, Parser)]
#[command(name = "ping", no_binary_name = true, disable_version_flag = true)]
struct PingCmd {
    #[command(flatten)]
    opts: PingOpts,
}

#[derive(Debug, Parser)]
#[command(
    name = "traceroute",
    no_binary_name = true,
    disable_version_flag = true
)]
struct TracerouteCmd {
    #[command(flatten)]
    opts: TracerouteOpts,
}

#[derive(Debug, Parser)]
#[command(name = "rlogin", no_binary_name = true, disable_version_flag = true)]
struct RloginCmd {
    #[command(flatten)]
    opts: RloginOpts,
}

#[derive(Debug, Parser)]
#[command(name = "wget", no_binary_name = true, disable_version_flag = true)]
struct WgetCmd {
    #[command(flatten)]
    opts: WgetOpts,
}

/// Parses a command's arguments with clap, printing its usage message on failure.
fn parse<T: Parser>(args: &[String], out: &mut dyn Write) -> Option<T> {
    match T::try_parse_from(args) {
        Ok(c) => Some(c),
        Err(e) => {
            let _ = write!(out, "{e}");
            None
        }
    }
}

impl Shell {
    /// A shell on `node`, resolving names through `dns`.
    pub fn new(node: Node, dns: Vec<Ipv4Addr>) -> Shell {
        let resolver = Resolver::new(&node, ResolverConfig::new(dns));
        Shell {
            node,
            serving: Vec::new(),
            resolver,
        }
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Starts services (as `--serve` and `serve start` do); returns their labels.
    pub fn serve(&mut self, specs: &[ServiceSpec]) -> anyhow::Result<Vec<String>> {
        let mut labels = Vec::new();
        for spec in specs {
            let running = crate::services::start(&self.node, spec)?;
            labels.extend(running.labels.iter().cloned());
            self.serving.push(running);
        }
        Ok(labels)
    }

    /// Runs one command line (no `;`).
    pub fn run_line(&mut self, line: &str, out: &mut dyn Write) -> Flow {
        let Some(words) = shlex::split(line) else {
            let _ = writeln!(out, "unbalanced quotes in: {line}");
            return Flow::Continue(2);
        };
        let Some((cmd, args)) = words.split_first() else {
            return Flow::Continue(0);
        };
        let cmd = match cmd.as_str() {
            "exit" => "quit",
            "?" => "help",
            c => c,
        };
        if !COMMANDS.iter().any(|(name, _)| *name == cmd) {
            let _ = writeln!(out, "unknown command '{cmd}': try 'help'");
            return Flow::Continue(2);
        }
        let status = match cmd {
            "quit" => return Flow::Quit,
            "rlogin" => return self.rlogin(args, out),
            "help" => {
                for (name, what) in COMMANDS {
                    let _ = writeln!(out, "  {name:<10} {what}");
                }
                0
            }
            "ping" => self.ping(args, out),
            "traceroute" => self.traceroute(args, out),
            "wget" => self.wget(args, out),
            "resolve" => self.resolve(args, out),
            "serve" => self.serve_cmd(args, out),
            "trace" => self.trace(args, out),
            "pcap" => self.pcap(args, out),
            "arp" => self.arp(out),
            "route" => self.route(out),
            "conns" => self.conns(out),
            "stats" => self.stats(out),
            "dhcp" => self.dhcp(out),
            other => unreachable!("'{other}' is in COMMANDS but not dispatched"),
        };
        Flow::Continue(status)
    }

    /// Runs `a; b; c`, stopping at `quit`. Returns the last status, and whether to quit.
    pub fn run_script(&mut self, script: &str, out: &mut dyn Write) -> (u8, bool) {
        let mut status = 0;
        for part in script.split(';') {
            match self.run_line(part.trim(), out) {
                Flow::Continue(s) => status = s,
                Flow::Quit => return (status, true),
            }
        }
        (status, false)
    }

    fn traceroute(&self, args: &[String], out: &mut dyn Write) -> u8 {
        let Some(cmd) = parse::<TracerouteCmd>(args, out) else {
            return 2;
        };
        match traceroute::run(&self.node, &cmd.opts, out) {
            Ok(t) if t.reached => 0,
            Ok(_) => 1,
            Err(e) => {
                let _ = writeln!(out, "traceroute: {e:#}");
                1
            }
        }
    }

    fn wget(&self, args: &[String], out: &mut dyn Write) -> u8 {
        let Some(cmd) = parse::<WgetCmd>(args, out) else {
            return 2;
        };
        match wget::run(&self.node, &cmd.opts, self.resolver.servers()) {
            Ok(f) => {
                let _ = writeln!(out, "saved {} bytes", f.bytes);
                0
            }
            Err(e) => {
                let _ = writeln!(out, "wget: {e:#}");
                1
            }
        }
    }

    /// A remote login on the shell's terminal. Only from a terminal: with commands on a pipe,
    /// the session would eat the lines after it. A termination signal during the session
    /// ends the shell too, once the terminal is restored.
    fn rlogin(&self, args: &[String], out: &mut dyn Write) -> Flow {
        let Some(cmd) = parse::<RloginCmd>(args, out) else {
            return Flow::Continue(2);
        };
        if let Err(e) = cmd.opts.check() {
            let _ = writeln!(out, "rlogin: {e:#}");
            return Flow::Continue(2);
        }
        if !io::stdin().is_terminal() {
            let _ = writeln!(
                out,
                "rlogin: the shell's input is not a terminal: use `tapir rlogin` for a piped session"
            );
            return Flow::Continue(2);
        }
        match rlogin::run(&self.node, &cmd.opts, self.resolver.servers(), out) {
            Ok(rlogin::Ended::Signalled) => Flow::Quit,
            Ok(_) => Flow::Continue(0),
            Err(e) => {
                let _ = writeln!(out, "rlogin: {e:#}");
                Flow::Continue(1)
            }
        }
    }

    fn resolve(&self, args: &[String], out: &mut dyn Write) -> u8 {
        let [name] = args else {
            let _ = writeln!(out, "usage: resolve NAME");
            return 2;
        };
        if self.resolver.servers().is_empty() {
            let _ = writeln!(out, "resolve: no DNS server: start the node with --dns IP");
            return 2;
        }
        match self.resolver.lookup_ipv4(name) {
            Ok(r) => {
                for (alias, target) in &r.aliases {
                    let _ = writeln!(out, "{alias} is an alias for {target}.");
                }
                for a in &r.addresses {
                    let _ = writeln!(out, "{} has address {a}", r.canonical());
                }
                0
            }
            Err(e) => {
                let _ = writeln!(out, "resolve: {e}");
                1
            }
        }
    }

    fn ping(&self, args: &[String], out: &mut dyn Write) -> u8 {
        let Some(cmd) = parse::<PingCmd>(args, out) else {
            return 2;
        };
        match ping::run(&self.node, &cmd.opts, out) {
            Ok(s) if s.received > 0 => 0,
            Ok(_) => 1,
            Err(e) => {
                let _ = writeln!(out, "ping: {e:#}");
                1
            }
        }
    }

    fn serve_cmd(&mut self, args: &[String], out: &mut dyn Write) -> u8 {
        match args.split_first() {
            Some((s, specs)) if s == "start" && !specs.is_empty() => {
                let parsed: Result<Vec<ServiceSpec>, _> = specs.iter().map(|s| s.parse()).collect();
                let specs = match parsed {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = writeln!(out, "serve: {e}");
                        return 2;
                    }
                };
                match self.serve(&specs) {
                    Ok(labels) => {
                        let _ = writeln!(out, "serving {}", labels.join(" "));
                        0
                    }
                    Err(e) => {
                        let _ = writeln!(out, "serve: {e:#}");
                        1
                    }
                }
            }
            Some((s, specs)) if s == "stop" && !specs.is_empty() => {
                let mut status = 0;
                for spec in specs {
                    // NAME stops every instance; NAME:PORT only the one on that port.
                    let (name, port) = match spec.split_once(':') {
                        Some((n, p)) => (n, p.parse::<u16>().ok()),
                        None => (spec.as_str(), None),
                    };
                    let before = self.serving.len();
                    self.serving.retain(|r| {
                        let hit = r.kind.name() == name && port.is_none_or(|p| p == r.port);
                        if hit {
                            r.stop();
                            let _ = writeln!(out, "stopped {}", r.labels.join(" "));
                        }
                        !hit
                    });
                    if self.serving.len() == before {
                        let _ = writeln!(out, "serve: '{spec}' is not running");
                        status = 1;
                    }
                }
                status
            }
            Some((s, _)) if s == "list" => {
                if self.serving.is_empty() {
                    let _ = writeln!(out, "serving nothing");
                } else {
                    let labels: Vec<String> =
                        self.serving.iter().flat_map(|r| r.labels.clone()).collect();
                    let _ = writeln!(out, "serving {}", labels.join(" "));
                }
                0
            }
            _ => {
                let _ = writeln!(
                    out,
                    "usage: serve start SERVICE... | serve stop NAME[:PORT]... | serve list"
                );
                2
            }
        }
    }

    fn trace(&self, args: &[String], out: &mut dyn Write) -> u8 {
        match args.split_first() {
            Some((on, expr)) if on == "on" => {
                let expr = expr.join(" ");
                match crate::tracing::start_lines(&self.node, Some(&expr)) {
                    Ok(()) => {
                        let what = if expr.is_empty() {
                            "every frame"
                        } else {
                            &expr
                        };
                        let _ = writeln!(out, "tracing {what}");
                        0
                    }
                    Err(e) => {
                        let _ = writeln!(out, "trace: {e:#}");
                        2
                    }
                }
            }
            Some((off, _)) if off == "off" => {
                match self.node.stop_trace(TraceSlot::Lines) {
                    Some(s) => {
                        let _ = writeln!(
                            out,
                            "tracing off: {} frames shown, {} filtered out",
                            s.recorded, s.filtered_out
                        );
                    }
                    None => {
                        let _ = writeln!(out, "tracing was off");
                    }
                }
                0
            }
            _ => {
                let _ = writeln!(out, "usage: trace on [EXPR] | trace off");
                2
            }
        }
    }

    fn pcap(&self, args: &[String], out: &mut dyn Write) -> u8 {
        match args {
            [start, rest @ ..] if start == "start" && !rest.is_empty() => {
                let mut opts = crate::tracing::PcapOpts::default();
                let rest = match rest {
                    [s, n, rest @ ..] if s == "-s" => match n.parse::<usize>() {
                        Ok(n) if (14..=262_144).contains(&n) && !rest.is_empty() => {
                            opts.snaplen = n;
                            rest
                        }
                        _ => {
                            let _ = writeln!(
                                out,
                                "pcap: -s takes a snap length in 14..=262144, then FILE"
                            );
                            return 2;
                        }
                    },
                    rest => rest,
                };
                let (file, expr) = (&rest[0], rest[1..].join(" "));
                match crate::tracing::start_pcap(
                    &self.node,
                    std::path::Path::new(file),
                    Some(&expr),
                    opts,
                ) {
                    Ok(()) => {
                        let _ = writeln!(out, "capturing to {file}");
                        0
                    }
                    Err(e) => {
                        let _ = writeln!(out, "pcap: {e:#}");
                        1
                    }
                }
            }
            [stop] if stop == "stop" => {
                match self.node.stop_trace(TraceSlot::Pcap) {
                    Some(s) => {
                        let _ = writeln!(
                            out,
                            "capture closed: {} frames written, {} not captured (ring full)",
                            s.recorded, s.ring_full
                        );
                    }
                    None => {
                        let _ = writeln!(out, "no capture running");
                    }
                }
                0
            }
            _ => {
                let _ = writeln!(
                    out,
                    "usage: pcap start [-s SNAPLEN] FILE [EXPR] | pcap stop"
                );
                2
            }
        }
    }

    fn arp(&self, out: &mut dyn Write) -> u8 {
        let entries = self.node.arp_entries();
        let _ = writeln!(out, "{:<16} {:<18} expires", "address", "hwaddr");
        for (ip, mac, left) in entries {
            let _ = writeln!(
                out,
                "{:<16} {:<18} {}s",
                ip.to_string(),
                mac.to_string(),
                left.as_secs()
            );
        }
        0
    }

    fn route(&self, out: &mut dyn Write) -> u8 {
        let c = &self.node.config().stack;
        let _ = writeln!(
            out,
            "{} dev {} scope link src {}",
            net(c.cidr),
            self.node.config().tap,
            c.cidr.address()
        );
        if let Some(gw) = c.gateway {
            let _ = writeln!(out, "default via {gw} dev {}", self.node.config().tap);
        }
        0
    }

    fn conns(&self, out: &mut dyn Write) -> u8 {
        let listeners = self.node.listeners();
        if !listeners.is_empty() {
            let ports: Vec<String> = listeners.iter().map(|p| p.to_string()).collect();
            let _ = writeln!(out, "listening on tcp ports {}", ports.join(" "));
        }
        let _ = writeln!(
            out,
            "{:<3} {:<22} {:<22} {:<12} {:>8} {:>8} {:>9} {:>8}",
            "q", "local", "remote", "state", "send-q", "recv-q", "rtt", "cwnd"
        );
        for (w, c) in self.node.conns() {
            let rtt = c
                .rtt
                .map(|r| format!("{:.3}ms", r.as_secs_f64() * 1000.0))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "{:<3} {:<22} {:<22} {:<12} {:>8} {:>8} {:>9} {:>8}",
                w,
                c.local.to_string(),
                c.remote.to_string(),
                c.state.to_string(),
                c.send_queue,
                c.recv_queue,
                rtt,
                c.cwnd
            );
        }
        0
    }

    fn stats(&self, out: &mut dyn Write) -> u8 {
        let s = self.node.stats();
        let t = &s.stack;
        let _ = writeln!(
            out,
            "frames: {} in ({} bytes), {} out ({} bytes)",
            t.rx_frames, t.rx_bytes, t.tx_frames, t.tx_bytes
        );
        let _ = writeln!(
            out,
            "arp requests sent {}, echo replies {}, timestamp replies {}, redirects taken {}, icmp \
             errors {}, tcp resets {}, tcp conns opened {} (path MTU lowered on {})",
            t.arp_requests_sent,
            t.icmp_echo_replied,
            t.icmp_timestamp_replied,
            t.icmp_redirects_taken,
            t.icmp_errors_sent,
            t.tcp_rst_sent,
            t.tcp_conns_opened,
            t.tcp_path_mtu_lowered
        );
        let _ = writeln!(
            out,
            "ipv4 reassembled {}, fragments sent {}, arp conflicts {} (defended {})",
            t.ipv4_reassembled, t.ipv4_fragments_sent, t.arp_conflicts, t.arp_defended
        );
        if t.arp_conflicts > 0 {
            let who = self
                .node
                .address_conflict()
                .map_or_else(|| "another host".to_string(), |m| m.to_string());
            let _ = writeln!(
                out,
                "warning: {who} claims this node's address (RFC 5227 conflict); check the LAN for a duplicate"
            );
        }
        let _ = writeln!(
            out,
            "tcp connections {} (and {} in TIME-WAIT), buffer memory {} bytes",
            s.tcp_conns, s.tcp_time_wait, s.tcp_buffer_bytes
        );
        let _ = writeln!(out, "drops: {}", t.total_drops());
        if let Some(p) = self.node.trace_stats(TraceSlot::Pcap) {
            let _ = writeln!(
                out,
                "pcap: {} frames written, {} not captured (ring full)",
                p.recorded, p.ring_full
            );
        }
        for (reason, n) in t.nonzero_drops() {
            let _ = writeln!(out, "  {:<20} {n}", reason.name());
        }
        for (i, w) in s.workers.iter().enumerate() {
            let _ = writeln!(
                out,
                "queue {i}: rx {} tx {} handed-off {} handed-in {} handoff-dropped {}",
                w.rx_frames, w.tx_frames, w.handed_off, w.handed_in, w.handoff_dropped
            );
        }
        0
    }
}

impl Shell {
    fn dhcp(&self, out: &mut dyn Write) -> u8 {
        let Some(state) = self.node.dhcp_state() else {
            let _ = writeln!(
                out,
                "dhcp: this node has a static address (start it with --dhcp)"
            );
            return 1;
        };
        let now = self.node.now();
        let secs_until = |t: Option<protocols::time::Instant>| {
            t.map(|t| format!("{}s", t.saturating_duration_since(now).as_secs()))
                .unwrap_or_else(|| "never".into())
        };
        let _ = writeln!(out, "state {}", format!("{state:?}").to_lowercase());
        match self.node.dhcp_lease() {
            Some(l) => {
                let list = |v: &[std::net::Ipv4Addr]| {
                    let s: Vec<String> = v.iter().map(|a| a.to_string()).collect();
                    if s.is_empty() {
                        "-".to_string()
                    } else {
                        s.join(" ")
                    }
                };
                let _ = writeln!(out, "address {}", l.address);
                let _ = writeln!(
                    out,
                    "router {}",
                    list(&l.router.into_iter().collect::<Vec<_>>())
                );
                let _ = writeln!(out, "dns {}", list(&l.dns_servers));
                let _ = writeln!(out, "server {}", l.server);
                if let Some(d) = &l.domain_name {
                    let _ = writeln!(out, "domain {d}");
                }
                let _ = writeln!(out, "mtu {}", self.node.mtu());
                let _ = writeln!(
                    out,
                    "lease {} renew in {} rebind in {} expires in {}",
                    l.duration
                        .map(|d| format!("{}s", d.as_secs()))
                        .unwrap_or_else(|| "infinite".into()),
                    secs_until(l.renew_at),
                    secs_until(l.rebind_at),
                    secs_until(l.expires_at)
                );
            }
            None => {
                let _ = writeln!(out, "address none");
            }
        }
        let t = self.node.stats().stack;
        let _ = writeln!(
            out,
            "sent {} received {} probes {} conflicts {} bound {} renewed {} lost {} declined {} naks {}",
            t.dhcp_sent,
            t.dhcp_received,
            t.dhcp_probes_sent,
            t.dhcp_conflicts,
            t.dhcp_bound,
            t.dhcp_renewed,
            t.dhcp_lost,
            t.dhcp_declined,
            t.dhcp_naks
        );
        for e in self.node.dhcp_log() {
            let at = e.at.total_millis() as f64 / 1000.0;
            let what = match &e.event {
                protocols::dhcp::Event::StateChanged { from, to } => {
                    format!("state {from:?} -> {to:?}").to_lowercase()
                }
                protocols::dhcp::Event::ProbeRequested { address } => format!("probing {address}"),
                protocols::dhcp::Event::Bound(l) => {
                    format!("bound {} from {}", l.address, l.server)
                }
                protocols::dhcp::Event::Renewed(l) => format!("renewed {}", l.address),
                protocols::dhcp::Event::Lost { address, reason } => {
                    format!("lost {address} ({reason:?})").to_lowercase()
                }
                protocols::dhcp::Event::Declined { address } => format!("declined {address}"),
                protocols::dhcp::Event::Nak { message } => {
                    format!("nak {}", message.as_deref().unwrap_or(""))
                }
            };
            let _ = writeln!(out, "  {at:>9.3}s {what}");
        }
        0
    }
}

fn net(c: protocols::wire::Ipv4Cidr) -> String {
    format!("{}/{}", c.network(), c.prefix_len())
}

/// Completes command names at the start of the line.
struct Completer;

impl rustyline::completion::Completer for Completer {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let head = &line[..pos];
        if head.contains(char::is_whitespace) {
            return Ok((pos, Vec::new()));
        }
        let c = COMMANDS
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| n.starts_with(head))
            .map(|n| format!("{n} "))
            .collect();
        Ok((0, c))
    }
}

impl rustyline::hint::Hinter for Completer {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for Completer {}
impl rustyline::validate::Validator for Completer {}
impl rustyline::Helper for Completer {}

/// Runs the shell: `--exec` commands, else an interactive prompt on a terminal, else commands
/// from standard input. Returns the exit status.
pub fn run(shell: &mut Shell, exec: Option<&str>) -> u8 {
    let mut stdout = io::stdout();
    if let Some(script) = exec {
        return shell.run_script(script, &mut stdout).0;
    }
    if !io::stdin().is_terminal() {
        let mut status = 0;
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let (s, quit) = shell.run_script(&line, &mut stdout);
            status = s;
            let _ = stdout.flush();
            if quit {
                break;
            }
        }
        return status;
    }
    interactive(shell)
}

fn interactive(shell: &mut Shell) -> u8 {
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".tapir_history"));
    let mut rl = match rustyline::Editor::<Completer, rustyline::history::DefaultHistory>::new() {
        Ok(rl) => rl,
        Err(e) => {
            eprintln!("tapir: cannot open the terminal for line editing: {e}");
            return 1;
        }
    };
    rl.set_helper(Some(Completer));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    let mut status = 0;
    loop {
        // The address now: with --dhcp it comes (and may change) with the lease.
        let prompt = format!("tapir {}> ", shell.node().current_address());
        match rl.readline(&prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                }
                let (s, quit) = shell.run_script(&line, &mut io::stdout());
                status = s;
                if quit {
                    break;
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => break,
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    status
}
