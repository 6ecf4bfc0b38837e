//! What must hold against stock servers as they come: no error the server did not make, and
//! exactly as many requests counted as the server logged. nginx with its default keep-alive
//! limits (it closes a connection after 1000 requests, saying `Connection: close`), with
//! `keepalive_requests 10`, with `keepalive_timeout 1` and connections left idle about that
//! long, answering chunked; and python3's http.server (HTTP/1.0, a connection per response).

use super::*;

/// Runs `tapir load` with `args` against nginx configured with `keepalive`; asserts no
/// errors, every logged request a 200, and nginx's log count equal to tapir's. The report.
fn nginx_agrees(tag: &str, keepalive: &str, args: &[&str]) -> Value {
    let lab = Lab::up(tag).expect("lab");
    let nginx = Nginx::start_with(&lab, 256, keepalive);
    let r = load(&lab, args, Duration::from_secs(40));
    let ours = r["requests"].as_u64().unwrap();
    let log = nginx.log_of(ours, Duration::from_secs(5));
    eprintln!("tapir counted {ours}, nginx logged {}: {r}", log.len());
    assert_eq!(errors(&r), 0, "{r}");
    assert!(ours > 0, "{r}");
    assert!(log.iter().all(|l| l.ends_with(" 200")), "{log:?}");
    assert_eq!(
        log.len() as u64,
        ours,
        "nginx's log against tapir's count: {r}"
    );
    r
}

#[test]
fn nginx_default_keepalive_requests_give_no_errors() {
    if !interop_allowed() {
        return;
    }
    let r = nginx_agrees(
        "load-ka",
        "",
        &["http://10.7.0.1/index.html", "-c", "20", "-d", "3"],
    );
    // nginx closed every connection after 1000 requests: they were replaced.
    let (ours, opened) = (count(&r, "requests"), count(&r, "conns_opened"));
    assert!(ours > 20 * 1000, "too few requests to reach the limit: {r}");
    assert!(
        opened * 1000 >= ours,
        "{opened} connections for {ours}: {r}"
    );
}

#[test]
fn nginx_keepalive_requests_10_gives_no_errors() {
    if !interop_allowed() {
        return;
    }
    let r = nginx_agrees(
        "load-ka10",
        "keepalive_requests 10;",
        &["http://10.7.0.1/index.html", "-c", "16", "-d", "2"],
    );
    let (ours, opened) = (count(&r, "requests"), count(&r, "conns_opened"));
    assert!(ours > 1000, "{r}");
    assert!(opened * 10 >= ours, "{opened} connections for {ours}: {r}");
}

#[test]
fn nginx_closing_idle_connections_gives_no_errors() {
    if !interop_allowed() {
        return;
    }
    // 12 connections taking 12 requests a second in turn: each sits idle about a second
    // between requests, when nginx closes it (keepalive_timeout 1), so some requests go out
    // as the server closes.
    let r = nginx_agrees(
        "load-kat",
        "keepalive_timeout 1;",
        &[
            "http://10.7.0.1/index.html",
            "-c",
            "12",
            "--rate",
            "11.99",
            "-d",
            "6",
        ],
    );
    // nginx closed idle connections, and they were replaced.
    assert!(count(&r, "conns_opened") > 12, "{r}");
    assert!(count(&r, "requests") >= 60, "{r}");
}

#[test]
fn nginx_chunked_with_default_limits_gives_no_errors() {
    if !interop_allowed() {
        return;
    }
    nginx_agrees(
        "load-kac",
        "",
        &["http://10.7.0.1/chunked.html", "-c", "8", "-d", "3"],
    );
}

/// python3 -m http.server in the lab on 10.7.0.1:8000, its request log (stderr) in a file.
struct PyServer {
    _proc: Proc,
    dir: TempDir,
}

impl PyServer {
    fn start(lab: &Lab) -> PyServer {
        need("python3");
        let dir = TempDir::new("load-py");
        let www = dir.0.join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), "x".repeat(600)).unwrap();
        let log = std::fs::File::create(dir.0.join("requests.log")).unwrap();
        let child = lab
            .command("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "8000",
                "--bind",
                "10.7.0.1",
                "--directory",
            ])
            .arg(&www)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn python3 -m http.server");
        let p = PyServer {
            _proc: Proc(child),
            dir,
        };
        wait_listening(lab, "10.7.0.1:8000");
        p
    }

    /// The requests logged ("GET /index.html HTTP/1.1" 200) once there are `n`, or after
    /// `limit`.
    fn requests(&self, n: u64, limit: Duration) -> Vec<String> {
        lines_once(n, limit, || {
            std::fs::read_to_string(self.dir.0.join("requests.log"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("\"GET "))
                .map(String::from)
                .collect()
        })
    }
}

/// The lab kernel's count of SYNs dropped for a full listen queue.
fn listen_drops(lab: &Lab) -> u64 {
    let out = lab
        .command("nstat")
        .args(["-az", "TcpExtListenDrops"])
        .output()
        .expect("nstat");
    text(&out.stdout)
        .lines()
        .find(|l| l.starts_with("TcpExtListenDrops"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn python_http_server_http_1_0_gives_no_errors() {
    if !interop_allowed() {
        return;
    }
    let lab = Lab::up("load-py").expect("lab");
    let py = PyServer::start(&lab);
    let url = "http://10.7.0.1:8000/index.html";
    // Its listen queue holds 5: 16 connections at once overflow it, and the SYNs the kernel
    // drops are sent again within the request timeout. Then two requests at a time on each
    // connection: the server answers one and closes, and the other goes on a new connection.
    let mut total = 0;
    for pipeline in ["1", "2"] {
        let r = load(
            &lab,
            &[url, "-c", "16", "-d", "2", "--pipeline", pipeline],
            Duration::from_secs(40),
        );
        let ours = count(&r, "requests");
        total += ours;
        let log = py.requests(total, Duration::from_secs(5));
        eprintln!(
            "pipeline {pipeline}: tapir counted {ours} ({total} in all), python logged {}, \
SYNs dropped by a full listen queue so far {}: {r}",
            log.len(),
            listen_drops(&lab)
        );
        assert_eq!(errors(&r), 0, "{r}");
        assert!(ours > 50, "{r}");
        assert!(log.iter().all(|l| l.contains("\" 200 ")), "{log:?}");
        assert_eq!(
            log.len() as u64,
            total,
            "python's log against tapir's count: {r}"
        );
        // HTTP/1.0 closes after every response: a connection per request.
        assert!(count(&r, "conns_opened") >= ours, "{r}");
    }
}
