//! `tapir serve` in a lab and the HTTP helpers the interop tests share: curl inside the lab,
//! raw requests from the kernel, answers split into head and body.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tapir_apps::lab::Lab;

use super::{kernel, random_bytes, text, Proc, TempDir};

pub const TAPIR: &str = env!("CARGO_BIN_EXE_tapir");

/// `tapir serve` in a lab. Its stdout after the start line (access log lines) arrives on `log`.
pub struct Served {
    pub proc: Proc,
    pub start_line: String,
    pub log: mpsc::Receiver<String>,
    pub lab: Lab,
}

pub fn serve_in(lab: Lab, extra: &[&str], services: &[&str]) -> Served {
    let mut child = Command::new(TAPIR)
        .arg("serve")
        .args(lab.node_args())
        .args(extra)
        .args(services)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tapir serve");
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc(child);
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    let n = reader.read_line(&mut line).expect("read start line");
    assert!(n > 0, "tapir serve exited before its start line");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in reader.lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    Served {
        proc,
        start_line: line,
        log: rx,
        lab,
    }
}

pub fn serve(extra: &[&str], services: &[&str]) -> Served {
    serve_in(Lab::up("sv").expect("lab up"), extra, services)
}

pub fn curl(lab: &Lab, args: &[&str]) -> Output {
    lab.command("curl")
        .args(["-s", "-m", "10"])
        .args(args)
        .output()
        .expect("run curl")
}

pub fn addr_of(s: &Served, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(s.lab.node.address(), port))
}

/// Sends `raw` on one connection from the kernel and reads until the server closes.
pub fn raw_http(s: &Served, port: u16, raw: &[u8]) -> String {
    let addr = addr_of(s, port);
    kernel(&s.lab, || {
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(raw).unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        text(&out)
    })
}

pub fn http_site() -> TempDir {
    let d = TempDir::new("site");
    std::fs::create_dir_all(d.0.join("docs/sub")).unwrap();
    std::fs::write(d.0.join("hello.txt"), "hello from a file\n").unwrap();
    std::fs::write(d.0.join("style.css"), "body{}\n").unwrap();
    std::fs::write(d.0.join("docs/a.json"), "{}\n").unwrap();
    std::fs::write(d.0.join("docs/b & c.txt"), "bc\n").unwrap();
    std::fs::write(d.0.join("digits.txt"), "0123456789").unwrap();
    std::fs::write(d.0.join("big.bin"), random_bytes(3 << 20, 11)).unwrap();
    d
}

/// The head and body of a `curl -D -` answer.
pub fn split_head(out: &[u8]) -> (String, Vec<u8>) {
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head")
        + 4;
    (text(&out[..end]), out[end..].to_vec())
}

pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
