//! `tapir demo`: builds a private lab, starts a node serving echo, daytime and HTTP, drives it
//! with the kernel's own tools and sockets, prints a summary, and removes the lab.

use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use engine::sys::netns::run_in_netns;
use engine::Node;

use crate::cli::default_mac;
use crate::lab::Lab;
use crate::ping::{self, PingOpts};
use crate::serve::{start_line, start_services};
use crate::services::ServiceSpec;

struct Check {
    name: String,
    ok: bool,
    detail: String,
}

/// Runs the demo; returns whether every check passed.
pub fn run(queues: usize) -> Result<bool> {
    let lab = Lab::up("demo")?;
    // Removing the lab on Ctrl-C too: the signal thread exits the process after `lab` is
    // dropped by the main thread's unwinding is not guaranteed, so it removes it itself.
    let ns = lab.ns.clone();
    let mut signals = crate::serve::stop_signals()?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &ns])
                .status();
            eprintln!("\ntapir demo: interrupted; lab {ns} removed");
            std::process::exit(130);
        }
    });
    println!(
        "lab {}: kernel {}/24 on {}, tapir {}",
        lab.ns, lab.host, lab.tap, lab.node
    );

    let mut config = engine::NodeConfig::new(&lab.tap, lab.node);
    config.netns = Some(lab.ns.clone());
    config.queues = queues;
    config.stack.mac = default_mac(lab.node.address());
    let node = Node::start(config).context("cannot start the node on the lab tap")?;
    let specs: Vec<ServiceSpec> = ["echo", "daytime", "discard", "http"]
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let running = start_services(&node, &specs)?;
    println!("{}", start_line(&node, &crate::serve::labels(&running)));

    let checks = vec![
        kernel_ping(&lab),
        tapir_ping(&node, &lab),
        curl_page(&lab),
        tcp_echo(&lab),
        udp_echo(&lab),
        daytime(&lab),
        closed_tcp(&lab),
        closed_udp(&lab),
    ];
    println!();
    println!("  {:<40} {:<6} detail", "check", "result");
    for c in &checks {
        println!(
            "  {:<40} {:<6} {}",
            c.name,
            if c.ok { "ok" } else { "FAIL" },
            c.detail
        );
    }
    let stats = node.stats();
    println!(
        "\n  node: {} frames in, {} out, {} dropped ({})",
        stats.stack.rx_frames,
        stats.stack.tx_frames,
        stats.stack.total_drops(),
        stats
            .stack
            .nonzero_drops()
            .map(|(r, n)| format!("{r}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let passed = checks.iter().filter(|c| c.ok).count();
    node.shutdown();
    drop(lab);
    println!("  {passed}/{} checks passed; lab removed", checks.len());
    Ok(passed == checks.len())
}

fn check(name: &str, r: Result<String>) -> Check {
    match r {
        Ok(detail) => Check {
            name: name.into(),
            ok: true,
            detail,
        },
        Err(e) => Check {
            name: name.into(),
            ok: false,
            detail: format!("{e:#}"),
        },
    }
}

fn kernel_ping(lab: &Lab) -> Check {
    let r = (|| {
        let out = lab
            .command("ping")
            .args([
                "-c",
                "3",
                "-i",
                "0.2",
                "-W",
                "2",
                &lab.node.address().to_string(),
            ])
            .output()
            .context("cannot run ping (install iputils-ping)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let summary = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or("")
            .to_string();
        anyhow::ensure!(
            out.status.success() && summary.contains(" 3 received"),
            "ping said: {summary}"
        );
        let rtt = text
            .lines()
            .find(|l| l.starts_with("rtt"))
            .unwrap_or("")
            .to_string();
        Ok(format!("3/3 replies; {rtt}"))
    })();
    check(&format!("kernel: ping -c 3 {}", lab.node.address()), r)
}

fn tapir_ping(node: &Node, lab: &Lab) -> Check {
    let r = (|| {
        let opts = PingOpts {
            host: lab.host,
            count: 3,
            interval: 0.2,
            size: 56,
            timeout: 2.0,
            ttl: None,
            record_route: false,
        };
        let mut sink = Vec::new();
        let s = ping::run(node, &opts, &mut sink)?;
        anyhow::ensure!(s.received == 3, "{} of 3 replies", s.received);
        let avg = s.rtts.iter().map(|d| d.as_secs_f64()).sum::<f64>() / 3.0 * 1000.0;
        Ok(format!("3/3 replies; avg {avg:.3} ms"))
    })();
    check(&format!("tapir: ping -c 3 {}", lab.host), r)
}

fn curl_page(lab: &Lab) -> Check {
    let url = format!("http://{}/", lab.node.address());
    let r = (|| {
        let out = lab
            .command("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{size_download} %{content_type}",
                "-m",
                "5",
                &url,
            ])
            .output()
            .context("cannot run curl (install curl)")?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        anyhow::ensure!(
            out.status.success() && text.starts_with("200 "),
            "curl: {text} (exit {})",
            out.status
        );
        Ok(text)
    })();
    check(&format!("kernel: curl {url}"), r)
}

/// Runs `f` on a thread inside the lab namespace, where sockets are the kernel's own.
fn in_lab<T: Send>(lab: &Lab, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    run_in_netns(&lab.ns, f).map_err(|e| anyhow::anyhow!("{e}"))?
}

fn tcp_echo(lab: &Lab) -> Check {
    let addr = SocketAddrV4::new(lab.node.address(), 7);
    let r = in_lab(lab, || {
        let data = crate::lab::pseudo_random_bytes(1 << 20, 0x1234_5678);
        let start = Instant::now();
        let mut s = TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut w = s.try_clone()?;
        let to_send = data.clone();
        let writer = std::thread::spawn(move || -> std::io::Result<()> {
            w.write_all(&to_send)?;
            w.shutdown(std::net::Shutdown::Write)
        });
        let mut back = Vec::with_capacity(data.len());
        s.read_to_end(&mut back)?;
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))??;
        let secs = start.elapsed().as_secs_f64();
        anyhow::ensure!(
            back == data,
            "echoed {} bytes, differing from the {} sent",
            back.len(),
            data.len()
        );
        Ok(format!("1 MiB byte-exact in {:.0} ms", secs * 1000.0))
    });
    check(&format!("kernel: TCP echo 1 MiB to {addr}"), r)
}

fn udp_echo(lab: &Lab) -> Check {
    let addr = SocketAddrV4::new(lab.node.address(), 7);
    let r = in_lab(lab, || {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut buf = [0u8; 2048];
        for i in 0..10u32 {
            let msg = format!("tapir udp echo {i}");
            s.send_to(msg.as_bytes(), addr)?;
            let (n, _) = s.recv_from(&mut buf)?;
            anyhow::ensure!(
                &buf[..n] == msg.as_bytes(),
                "datagram {i} came back different"
            );
        }
        Ok("10 datagrams echoed".to_string())
    });
    check(&format!("kernel: UDP echo to {addr}"), r)
}

fn daytime(lab: &Lab) -> Check {
    let addr = SocketAddrV4::new(lab.node.address(), 13);
    let r = in_lab(lab, || {
        let mut s = TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        anyhow::ensure!(
            text.ends_with("-UTC\r\n"),
            "unexpected daytime answer {text:?}"
        );
        Ok(text.trim_end().to_string())
    });
    check(&format!("kernel: daytime TCP {addr}"), r)
}

fn closed_tcp(lab: &Lab) -> Check {
    let addr = SocketAddrV4::new(lab.node.address(), 8);
    let r = in_lab(lab, || {
        let start = Instant::now();
        match TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_secs(5)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(format!(
                "refused (RST) in {:.2} ms",
                start.elapsed().as_secs_f64() * 1000.0
            )),
            Err(e) => anyhow::bail!("expected refused, got {e}"),
            Ok(_) => anyhow::bail!("connected to a closed port"),
        }
    });
    check(&format!("kernel: connect to closed {addr}"), r)
}

fn closed_udp(lab: &Lab) -> Check {
    let addr = SocketAddrV4::new(lab.node.address(), 8);
    let r = in_lab(lab, || {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.send(b"anyone?")?;
        let mut buf = [0u8; 64];
        match s.recv(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                Ok("port unreachable reported (ECONNREFUSED)".to_string())
            }
            Err(e) => anyhow::bail!("expected ECONNREFUSED, got {e}"),
            Ok(_) => anyhow::bail!("a closed port answered"),
        }
    });
    check(&format!("kernel: UDP to closed {addr}"), r)
}
