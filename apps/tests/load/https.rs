//! HTTPS against nginx with a certificate the test makes (its own CA, the server's address
//! in the certificate): no errors with keep-alive and with a handshake per request (sessions
//! resumed, or not with --no-resume), and a certificate from an unknown CA refused unless
//! --insecure.

use super::*;

/// A CA and a server certificate for 10.7.0.1 signed by it, made with openssl in `dir`.
fn make_certs(dir: &std::path::Path) {
    need("openssl");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let d = |f: &str| dir.join(f).display().to_string();
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .args([
                "-keyout",
                &d("ca.key"),
                "-out",
                &d("ca.pem"),
                "-days",
                "2",
                "-subj",
                "/CN=tapir test CA",
            ]),
    );
    run_ok(Command::new("openssl").arg("req").args(ec).args([
        "-keyout",
        &d("server.key"),
        "-out",
        &d("server.csr"),
        "-subj",
        "/CN=10.7.0.1",
    ]));
    std::fs::write(dir.join("ext"), "subjectAltName=IP:10.7.0.1\n").unwrap();
    run_ok(Command::new("openssl").args([
        "x509",
        "-req",
        "-in",
        &d("server.csr"),
        "-CA",
        &d("ca.pem"),
        "-CAkey",
        &d("ca.key"),
        "-CAcreateserial",
        "-out",
        &d("server.pem"),
        "-days",
        "2",
        "-extfile",
        &d("ext"),
    ]));
}

/// nginx on 10.7.0.1:443 (TLS, the certificate of `make_certs`) as well as :80.
fn nginx_tls(lab: &Lab, certs: &TempDir) -> Nginx {
    make_certs(&certs.0);
    let www = certs.0.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "x".repeat(600)).unwrap();
    let server = format!(
        "keepalive_requests 1000000;\n  server {{ listen 10.7.0.1:443 ssl; root {}; \
ssl_certificate {}; ssl_certificate_key {}; }}",
        www.display(),
        certs.0.join("server.pem").display(),
        certs.0.join("server.key").display()
    );
    let n = Nginx::start_with(lab, 64, &server);
    wait_listening(lab, "10.7.0.1:443");
    n
}

#[test]
fn https_keep_alive_and_a_handshake_per_request_give_no_errors() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("load-tls").expect("lab");
    let certs = TempDir::new("load-tls");
    let nginx = nginx_tls(&lab, &certs);
    let ca = certs.0.join("ca.pem").display().to_string();
    let url = "https://10.7.0.1/index.html";
    let mut total = 0;
    for extra in [&[][..], &["--close"], &["--close", "--no-resume"]] {
        let mut args = vec![url, "--cacert", &ca, "-c", "8", "-d", "2"];
        args.extend_from_slice(extra);
        let r = load(&lab, &args, Duration::from_secs(30));
        let ours = count(&r, "requests");
        total += ours;
        let log = nginx.log_of(total, Duration::from_secs(5));
        eprintln!(
            "{extra:?}: tapir counted {ours}, nginx logged {} in all: {r}",
            log.len()
        );
        assert_eq!(errors(&r), 0, "{extra:?}: {r}");
        assert!(ours > 50, "{r}");
        assert_eq!(log.len() as u64, total, "{extra:?}: {r}");
        let (handshakes, resumed) = (count(&r, "tls_handshakes"), count(&r, "tls_resumed"));
        if extra.is_empty() {
            // One handshake per connection held.
            assert_eq!(handshakes, 8, "{r}");
        } else {
            // One per request (and one per connection open at the end).
            assert!(handshakes >= ours && handshakes <= ours + 8, "{r}");
            if extra.contains(&"--no-resume") {
                assert_eq!(resumed, 0, "{r}");
            } else {
                assert!(resumed * 2 > handshakes, "most sessions resumed: {r}");
            }
        }
    }
}

#[test]
fn https_refuses_an_unknown_ca_unless_insecure() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("load-tlsbad").expect("lab");
    let certs = TempDir::new("load-tlsbad");
    let _nginx = nginx_tls(&lab, &certs);
    let url = "https://10.7.0.1/index.html";
    // No --cacert: the test CA is not among the Mozilla roots.
    let out = Command::new(TAPIR)
        .arg("load")
        .args(lab.node_args())
        .args([url, "-c", "2", "-d", "1", "--json"])
        .output()
        .expect("run tapir load");
    let r: Value = serde_json::from_str(text(&out.stdout).trim()).expect("JSON");
    assert_eq!(out.status.code(), Some(1), "{r}");
    assert_eq!(count(&r, "requests"), 0, "{r}");
    assert!(r["errors"]["tls"].as_u64() > Some(0), "{r}");
    let r = load(
        &lab,
        &[url, "--insecure", "-c", "2", "-d", "1"],
        Duration::from_secs(30),
    );
    assert_eq!(errors(&r), 0, "{r}");
    assert!(count(&r, "requests") > 50, "{r}");
}
