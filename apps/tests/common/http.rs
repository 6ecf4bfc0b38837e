//! `tapir serve` in a lab and the HTTP helpers the interop tests share: curl inside the lab,
//! raw requests from the kernel, answers split into head and body.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tapir_apps::lab::Lab;

use super::{kernel, need, random_bytes, text, Proc, TempDir};

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

/// nginx in the lab namespace, its `http` block holding `servers` (each must listen on
/// 10.7.0.1:8081); killed by its pid on drop.
pub struct Nginx {
    _proc: Proc,
    _dir: TempDir,
}

pub fn nginx_with(lab: &Lab, servers: &str) -> Nginx {
    need("nginx");
    let dir = TempDir::new("nginx");
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
error_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
  fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
{servers}}}\n",
        d = dir.0.display(),
    );
    let conf_path = dir.0.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = lab
        .command("nginx")
        .args(["-p", &dir.0.display().to_string(), "-c"])
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nginx");
    let n = Nginx {
        _proc: Proc(child),
        _dir: dir,
    };
    // Ready when it accepts a connection (bounded: 10 s).
    let ok = kernel(lab, || {
        let addr: SocketAddr = "10.7.0.1:8081".parse().unwrap();
        (0..200).any(|_| {
            TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok() || {
                std::thread::sleep(Duration::from_millis(50));
                false
            }
        })
    });
    assert!(ok, "nginx did not start listening");
    n
}
