//! The node shell against a live node in a lab: `--exec`, piped input, and a real terminal (a
//! pty made by `script`), each running commands and showing their output.

use std::io::Write;
use std::process::{Command, Stdio};

use tapir_apps::lab::Lab;

mod common;
use common::interop_allowed;

const TAPIR: &str = env!("CARGO_BIN_EXE_tapir");

#[test]
fn exec_runs_commands_and_exits_with_the_last_status() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("sh").expect("lab");
    let out = Command::new(TAPIR)
        .arg("node")
        .args(lab.node_args())
        .args([
            "--serve",
            "echo,daytime",
            "--exec",
            "ping 10.7.0.1 -c 2 -i 0.2; arp; conns; route",
        ])
        .output()
        .expect("run tapir node");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("echo/tcp:7 echo/udp:7 daytime/tcp:13"),
        "{text}"
    );
    assert!(text.contains("2 packets transmitted, 2 received"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("10.7.0.1 ")),
        "arp shows the kernel side: {text}"
    );
    assert!(text.contains("listening on tcp ports 7 13"), "{text}");
    assert!(
        text.contains("10.7.0.0/24 dev tap0 scope link src 10.7.0.2"),
        "{text}"
    );

    // The status is the last command's: a ping nobody answers fails with 1, bad usage is 2.
    let out = Command::new(TAPIR)
        .arg("node")
        .args(lab.node_args())
        .args(["--exec", "route; ping 10.7.0.99 -c 1 -W 0.5"])
        .output()
        .expect("run tapir node");
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(TAPIR)
        .arg("node")
        .args(lab.node_args())
        .args(["--exec", "nonsense"])
        .output()
        .expect("run tapir node");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("unknown command 'nonsense': try 'help'"));
}

#[test]
fn piped_commands_run_in_order() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("sh").expect("lab");
    let mut child = Command::new(TAPIR)
        .arg("node")
        .args(lab.node_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tapir node");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"serve start discard echo:7007\nserve list\nconns\nserve stop echo\nserve stop echo\nconns\nstats\nquit\nhelp\n")
        .expect("write commands");
    let out = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let a = text
        .find("serving discard/tcp:9 discard/udp:9")
        .expect("serve start");
    let b = text.find("frames: ").expect("stats");
    assert!(a < b, "{text}");
    assert!(
        text.contains("tcp connections 0 (and 0 in TIME-WAIT), buffer memory 0 bytes"),
        "{text}"
    );
    assert!(
        !text.contains("ping HOST"),
        "nothing runs after quit: {text}"
    );
}

#[test]
fn a_terminal_session_shows_a_prompt_and_command_output() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("sh").expect("lab");
    // `script` gives tapir a pseudo-terminal, so the line editor and prompt are in play.
    let cmdline = format!("{TAPIR} node {}", lab.node_args().join(" "));
    let mut child = Command::new("script")
        .args(["-qfec", &cmdline, "/dev/null"])
        .env("HOME", std::env::temp_dir())
        .env("TERM", "dumb")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn script");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"help\nroute\nquit\n")
        .expect("type");
    let out = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("tapir 10.7.0.2> "), "prompt shown: {text}");
    assert!(
        text.contains("conns: every TCP connection"),
        "help output: {text}"
    );
    assert!(
        text.contains("10.7.0.0/24 dev tap0"),
        "route output: {text}"
    );
}

#[test]
fn help_lists_every_command_the_shell_runs() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("sh").expect("lab");
    // Each command bare (usage errors are fine), then help; `quit` ends the script.
    let names: Vec<&str> = tapir_apps::shell::COMMANDS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| *n != "quit")
        .collect();
    let script = format!("{}; help; quit", names.join("; "));
    let out = Command::new(TAPIR)
        .arg("node")
        .args(lab.node_args())
        .args(["--exec", &script])
        .output()
        .expect("run tapir node");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("unknown command"), "{text}");
    let help: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("ping "))
        .collect();
    for (name, _) in tapir_apps::shell::COMMANDS {
        assert!(
            help.iter()
                .any(|l| l.trim_start().starts_with(&format!("{name} "))),
            "help does not list {name}: {text}"
        );
    }
    // The commands the issue found working but missing from help.
    for cmd in ["traceroute", "wget", "resolve", "serve stop", "dhcp"] {
        assert!(
            help.iter().any(|l| l.contains(cmd)),
            "help does not mention {cmd}: {text}"
        );
    }
    // Aliases reach their command; other words are unknown.
    let out = Command::new(TAPIR)
        .arg("node")
        .args(lab.node_args())
        .args(["--exec", "?; route; exit; nonsense"])
        .output()
        .expect("run tapir node");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("  traceroute "), "{text}");
    assert!(
        !text.contains("unknown command"),
        "exit ends the script: {text}"
    );
}
