//! Interop for issue 17's HTTPS: tapir's `https` service (rustls on the workers) against curl
//! with `--cacert` of a certificate the test makes, and `openssl s_client` for ALPN and session
//! resumption. Needs root and /dev/net/tun; every namespace is made by the test (names start
//! with `tapir`) and removed on every path by a Drop guard; every process a test starts is
//! killed by its pid.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;
use common::http::{curl, http_site, nginx_with, serve_in, split_head, Served, TAPIR};
use common::{interop_allowed, need, random_bytes, run_ok, text, TempDir};

/// A self-signed certificate for the lab's tapir address, and its key (PEM).
fn make_cert(dir: &Path, ip: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1", "-subj", &format!("/CN={ip}")])
            .args(["-addext", &format!("subjectAltName=IP:{ip}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null()),
    );
    (cert, key)
}

/// `openssl s_client` in the lab against tapir's port 8443 sending one request; its output.
fn s_client(s: &Served, args: &[&str]) -> String {
    let mut child = s
        .lab
        .command("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("{}:8443", s.lab.node.address()),
        ])
        .args(["-ign_eof", "-servername", "tapir.test"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn openssl s_client");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /digits.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _proc = common::Proc(child);
    let mut o = String::new();
    let _ = std::io::Read::read_to_string(&mut { stdout }, &mut o);
    o
}

#[test]
fn https_serves_curl_and_openssl_with_alpn_and_resumption() {
    if !interop_allowed() {
        return;
    }
    need("openssl");
    let site = http_site();
    let certs = TempDir::new("tls");
    let lab = tapir_apps::lab::Lab::up("tls").expect("lab up");
    let ip = lab.node.address().to_string();
    let (cert, key) = make_cert(&certs.0, &ip);
    let spec = format!("https:8443={}", site.0.display());
    let s = serve_in(
        lab,
        &[
            "--cert",
            &cert.display().to_string(),
            "--key",
            &key.display().to_string(),
        ],
        &[&spec],
    );
    assert!(s.start_line.contains("https/tcp:8443"), "{}", s.start_line);
    let cacert = cert.display().to_string();
    let url = |p: &str| format!("https://{ip}:8443{p}");

    // TLS 1.3 and 1.2, verified against the test's certificate; HTTP/1.1 by ALPN.
    for version in [&["--tlsv1.3"][..], &["--tlsv1.2", "--tls-max", "1.2"][..]] {
        let mut a = vec!["--cacert", &cacert, "-D", "-"];
        a.extend_from_slice(version);
        let u = url("/digits.txt");
        a.push(&u);
        let out = curl(&s.lab, &a);
        assert!(
            out.status.success(),
            "{version:?}: curl exit {:?}",
            out.status
        );
        let (head, body) = split_head(&out.stdout);
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\n"),
            "{version:?}: {head}"
        );
        assert_eq!(text(&body), "0123456789");
    }
    // A 3 MiB file byte-exact, and keep-alive: two requests on one connection.
    let big = random_bytes(3 << 20, 11);
    let got = certs.0.join("big.bin");
    let out = curl(
        &s.lab,
        &[
            "--cacert",
            &cacert,
            "-o",
            &got.display().to_string(),
            &url("/big.bin"),
        ],
    );
    assert!(out.status.success());
    assert!(std::fs::read(&got).unwrap() == big, "the file came whole");
    let out = curl(
        &s.lab,
        &[
            "--cacert",
            &cacert,
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{num_connects} ",
            &url("/hello.txt"),
            &url("/digits.txt"),
        ],
    );
    assert_eq!(text(&out.stdout), "1 0 ", "one connection, kept alive");
    // Without the CA, curl refuses: the certificate is the one given.
    let out = curl(&s.lab, &["-o", "/dev/null", &url("/digits.txt")]);
    assert_eq!(out.status.code(), Some(60), "unknown CA");

    // ALPN and session resumption, TLS 1.2 (session ID) and 1.3 (tickets).
    let alpn = s_client(&s, &["-alpn", "http/1.1", "-CAfile", &cacert]);
    assert!(alpn.contains("ALPN protocol: http/1.1"), "{alpn}");
    assert!(alpn.contains("Verify return code: 0 (ok)"), "{alpn}");
    assert!(alpn.contains("0123456789"), "{alpn}");
    for v in ["-tls1_2", "-tls1_3"] {
        let sess = certs.0.join(format!("sess{v}.pem"));
        let sess = sess.display().to_string();
        let first = s_client(&s, &[v, "-sess_out", &sess]);
        assert!(first.contains("New, TLSv1."), "{v}: {first}");
        let again = s_client(&s, &[v, "-sess_in", &sess]);
        assert!(again.contains("Reused, TLSv1."), "{v} resumes: {again}");
        assert!(again.contains("0123456789"), "{again}");
    }
}

#[test]
fn https_without_a_certificate_is_a_usage_error() {
    let out = Command::new(TAPIR)
        .args(["serve", "https"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--cert FILE --key FILE"),
        "{}",
        text(&out.stderr)
    );
    let out = Command::new(TAPIR)
        .args(["serve", "--cert", "/nonexistent.pem", "https"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "--cert needs --key: {}",
        text(&out.stderr)
    );
}

#[test]
fn https_with_a_bad_certificate_file_says_so() {
    if !interop_allowed() {
        return;
    }
    let d = TempDir::new("badtls");
    std::fs::write(d.0.join("c.pem"), "not a certificate\n").unwrap();
    std::fs::write(d.0.join("k.pem"), "not a key\n").unwrap();
    let lab = tapir_apps::lab::Lab::up("badtls").expect("lab up");
    let out = Command::new(TAPIR)
        .arg("serve")
        .args(lab.node_args())
        .args(["--cert", &d.0.join("c.pem").display().to_string()])
        .args(["--key", &d.0.join("k.pem").display().to_string()])
        .arg("https:8443")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("holds no certificate") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn nginx_proxies_to_tapir_over_http_and_https() {
    if !interop_allowed() {
        return;
    }
    let site = http_site();
    let certs = TempDir::new("proxy-tls");
    let lab = tapir_apps::lab::Lab::up("proxy").expect("lab up");
    let ip = lab.node.address().to_string();
    let (cert, key) = make_cert(&certs.0, &ip);
    let http = format!("http:8080={}", site.0.display());
    let https = format!("https:8443={}", site.0.display());
    let s = serve_in(
        lab,
        &[
            "--cert",
            &cert.display().to_string(),
            "--key",
            &key.display().to_string(),
        ],
        &[&http, &https],
    );
    // Upstream keep-alive over HTTP/1.1, the TLS upstream verified against the test's CA.
    let _nginx = nginx_with(
        &s.lab,
        &format!(
            "  upstream plain {{ server {ip}:8080; keepalive 4; }}\n\
  upstream tls {{ server {ip}:8443; keepalive 4; }}\n\
  server {{\n    listen 10.7.0.1:8081;\n\
    proxy_http_version 1.1;\n    proxy_set_header Connection \"\";\n\
    location /plain/ {{ proxy_pass http://plain/; }}\n\
    location /tls/ {{ proxy_pass https://tls/; proxy_ssl_verify on; proxy_ssl_name {ip};\n\
      proxy_ssl_trusted_certificate {c}; proxy_ssl_session_reuse on; }}\n\
  }}\n",
            c = cert.display()
        ),
    );
    let big = random_bytes(3 << 20, 11);
    for via in ["plain", "tls"] {
        let got = certs.0.join(format!("{via}.bin"));
        for _ in 0..3 {
            let out = curl(
                &s.lab,
                &[
                    "-o",
                    &got.display().to_string(),
                    "-w",
                    "%{http_code}",
                    &format!("http://10.7.0.1:8081/{via}/big.bin"),
                ],
            );
            assert_eq!(text(&out.stdout), "200", "{via}");
            assert!(
                std::fs::read(&got).unwrap() == big,
                "{via}: the file came whole"
            );
        }
        let out = curl(
            &s.lab,
            &[
                "-r",
                "2-3",
                "-D",
                "-",
                &format!("http://10.7.0.1:8081/{via}/digits.txt"),
            ],
        );
        let (head, body) = split_head(&out.stdout);
        assert!(head.starts_with("HTTP/1.1 206 "), "{via}: {head}");
        assert_eq!(text(&body), "23", "{via}");
    }
}
