//! Interop for issue 17's static-server behaviour: strong ETags and If-None-Match, If-Range,
//! precompressed FILE.gz/FILE.br with Vary, --cache-control, the access log in nginx's combined
//! format, and usage errors for bad flag values; driven by curl from the lab namespace. Needs
//! root and /dev/net/tun; every namespace is made by the test (names start with `tapir`) and
//! removed on every path by a Drop guard; every process a test starts is killed by its pid.

mod common;
use common::http::{curl, header, http_site, serve, split_head, Served};
use common::{interop_allowed, text, wait_until, TempDir};

/// `curl -D -` of `url` with `args` first: the head and the body.
fn fetch(s: &Served, args: &[&str], url: &str) -> (String, Vec<u8>) {
    let mut a = args.to_vec();
    a.extend(["-D", "-", url]);
    split_head(&curl(&s.lab, &a).stdout)
}

#[test]
fn http_validators_precompressed_files_cache_control_and_the_access_log() {
    if !interop_allowed() {
        return;
    }
    common::need("gzip");
    let site = http_site();
    let page = "a page worth compressing\n".repeat(200);
    std::fs::write(site.0.join("page.txt"), &page).unwrap();
    common::run_ok(
        std::process::Command::new("gzip")
            .args(["-k", "-9"])
            .arg(site.0.join("page.txt")),
    );
    let gz = std::fs::read(site.0.join("page.txt.gz")).unwrap();
    // tapir does not decode a variant, so any bytes stand for brotli's.
    std::fs::write(site.0.join("br.txt"), "plain\n").unwrap();
    std::fs::write(site.0.join("br.txt.br"), b"\x0bbrotli bytes").unwrap();
    let logdir = TempDir::new("alog");
    let log = logdir.0.join("access.log");
    let spec = format!("http:8080={}", site.0.display());
    let s = serve(
        &[
            "--cache-control",
            "max-age=60",
            "--access-log",
            &log.display().to_string(),
        ],
        &[&spec],
    );
    let base = format!("http://{}:8080", s.lab.node.address());
    let digits = format!("{base}/digits.txt");

    // A strong ETag; If-None-Match (weak comparison) answers 304 without a body.
    let (head, body) = fetch(&s, &[], &digits);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(text(&body), "0123456789");
    assert_eq!(header(&head, "cache-control"), Some("max-age=60"));
    let etag = header(&head, "etag").expect("an ETag").to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong: {etag}"
    );
    let last_modified = header(&head, "last-modified").unwrap().to_string();
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".into(),
    ] {
        let (head, body) = fetch(&s, &["-H", &format!("If-None-Match: {inm}")], &digits);
        assert!(
            head.starts_with("HTTP/1.1 304 Not Modified\r\n"),
            "{inm}: {head}"
        );
        assert!(
            body.is_empty() && header(&head, "content-length").is_none(),
            "{head}"
        );
        assert_eq!(header(&head, "etag"), Some(etag.as_str()));
        assert_eq!(header(&head, "cache-control"), Some("max-age=60"));
    }
    let (head, _) = fetch(&s, &["-H", "If-None-Match: \"other\""], &digits);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");

    // If-Match (strong) and If-Unmodified-Since: 412 when they fail, the file when they hold;
    // If-Match decides alone when both are sent (RFC 9110 §13.2.2).
    let long_ago = "Sun, 06 Nov 1994 08:49:37 GMT";
    for (extra, status) in [
        (vec![format!("If-Match: {etag}")], 200),
        (vec!["If-Match: *".to_string()], 200),
        (vec![format!("If-Match: \"other\", {etag}")], 200),
        (vec![format!("If-Match: W/{etag}")], 412),
        (vec!["If-Match: \"other\"".to_string()], 412),
        (vec![format!("If-Unmodified-Since: {last_modified}")], 200),
        (vec![format!("If-Unmodified-Since: {long_ago}")], 412),
        (
            vec![
                format!("If-Match: {etag}"),
                format!("If-Unmodified-Since: {long_ago}"),
            ],
            200,
        ),
    ] {
        let mut args = Vec::new();
        for h in &extra {
            args.extend(["-H", h.as_str()]);
        }
        let (head, body) = fetch(&s, &args, &digits);
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{extra:?}: {head}"
        );
        if status == 200 {
            assert_eq!(text(&body), "0123456789", "{extra:?}");
        } else {
            assert_eq!(header(&head, "etag"), Some(etag.as_str()), "{head}");
        }
    }

    // If-Range: the range only while the validator matches (strongly), else the whole file.
    for (validator, status, want) in [
        (etag.clone(), 206, "23"),
        (last_modified.clone(), 206, "23"),
        ("\"other\"".to_string(), 200, "0123456789"),
        (format!("W/{etag}"), 200, "0123456789"),
    ] {
        let (head, body) = fetch(
            &s,
            &["-r", "2-3", "-H", &format!("If-Range: {validator}")],
            &digits,
        );
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{validator}: {head}"
        );
        assert_eq!(text(&body), want, "{validator}");
    }
    // Several ranges with a matching If-Range: multipart/byteranges.
    let (head, _) = fetch(
        &s,
        &["-r", "0-1,5-6", "-H", &format!("If-Range: {etag}")],
        &digits,
    );
    assert!(head.starts_with("HTTP/1.1 206 "), "{head}");
    assert!(header(&head, "content-type")
        .unwrap()
        .starts_with("multipart/byteranges; boundary="));

    // FILE.gz for a client that takes gzip: curl --compressed decodes it back to the file.
    let url = format!("{base}/page.txt");
    let (head, body) = fetch(&s, &["--compressed"], &url);
    assert_eq!(header(&head, "content-encoding"), Some("gzip"), "{head}");
    assert_eq!(header(&head, "vary"), Some("Accept-Encoding"));
    assert_eq!(
        header(&head, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        header(&head, "content-length"),
        Some(gz.len().to_string().as_str())
    );
    assert_eq!(text(&body), page);
    let (head, body) = fetch(&s, &["-H", "Accept-Encoding: gzip"], &url);
    assert!(body == gz, "the .gz bytes as they are: {head}");
    for identity in [&[][..], &["-H", "Accept-Encoding: gzip;q=0, br"][..]] {
        let (head, body) = fetch(&s, identity, &url);
        assert!(header(&head, "content-encoding").is_none(), "{head}");
        assert_eq!(header(&head, "vary"), Some("Accept-Encoding"));
        assert_eq!(text(&body), page);
    }
    let br = format!("{base}/br.txt");
    let (head, body) = fetch(&s, &["-H", "Accept-Encoding: gzip, br"], &br);
    assert_eq!(header(&head, "content-encoding"), Some("br"), "{head}");
    assert_eq!(body, b"\x0bbrotli bytes");
    let (head, _) = fetch(&s, &[], &digits);
    assert!(
        header(&head, "vary").is_none(),
        "no variant, no Vary: {head}"
    );

    // The access log: nginx's combined format, one line per request.
    let out = curl(
        &s.lab,
        &[
            "-o",
            "/dev/null",
            "-A",
            "tapir-test/1 \"q\"",
            "-e",
            "http://ref.test/",
            &digits,
        ],
    );
    assert!(out.status.success());
    let want =
        "\"GET /digits.txt HTTP/1.1\" 200 10 \"http://ref.test/\" \"tapir-test/1 \\x22q\\x22\"";
    let lines = wait_for_line(&log, want);
    let line = lines.lines().find(|l| l.ends_with(want)).unwrap();
    let (ip, rest) = line.split_once(" - - [").expect(line);
    assert_eq!(ip, "10.7.0.1");
    let (time, _) = rest.split_once("] ").expect(line);
    assert!(httpdate_like(time), "{time}");
    assert_eq!(lines.lines().count(), 26, "one line per request: {lines}");
}

/// The log file once a line ends with `want` (a bounded wait: lines are written at the end of
/// the worker's poll that answered).
fn wait_for_line(log: &std::path::Path, want: &str) -> String {
    let read = || std::fs::read_to_string(log).unwrap_or_default();
    let found = wait_until(5, || read().lines().any(|l| l.ends_with(want)));
    assert!(found, "no line ending {want} in {}", read());
    read()
}

/// `10/Oct/2000:13:55:36 +0000`.
fn httpdate_like(t: &str) -> bool {
    let b = t.as_bytes();
    t.len() == 26 && b[2] == b'/' && b[6] == b'/' && b[11] == b':' && t.ends_with(" +0000")
}

#[test]
fn http_flags_with_bad_values_are_usage_errors() {
    for args in [
        &["--cache-control", "a\r\nb"][..],
        &["--cache-control", ""][..],
    ] {
        let out = std::process::Command::new(common::http::TAPIR)
            .arg("serve")
            .args(args)
            .arg("http")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains("visible ASCII"),
            "{}",
            text(&out.stderr)
        );
    }
}
