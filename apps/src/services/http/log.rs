//! The access log: a line per request in common log format, gathered in memory while a worker
//! serves and written to stdout once per poll, so a request costs no write system call.

use std::io::Write;
use std::net::SocketAddrV4;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct AccessLog {
    on: bool,
    buf: Vec<u8>,
}

impl AccessLog {
    pub fn new(on: bool) -> AccessLog {
        AccessLog {
            on,
            buf: Vec::new(),
        }
    }

    /// Records a request: who asked, its request line, the status and the body bytes sent.
    pub fn line(&mut self, peer: SocketAddrV4, request_line: &str, status: u16, bytes: u64) {
        if !self.on {
            return;
        }
        let _ = writeln!(
            self.buf,
            "{} - - [{}] \"{}\" {} {}",
            peer.ip(),
            clf_time(SystemTime::now()),
            request_line.escape_default(),
            status,
            bytes
        );
    }

    /// Writes what was gathered. A closed stdout must not stop the server: what cannot be
    /// written is dropped.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&self.buf).and_then(|()| out.flush());
        self.buf.clear();
    }
}

/// The common log format's time, e.g. `10/Oct/2000:13:55:36 +0000` (in UTC).
fn clf_time(t: SystemTime) -> String {
    // httpdate's IMF-fixdate is "Tue, 10 Oct 2000 13:55:36 GMT": rearrange its fields.
    let s = httpdate::fmt_http_date(t);
    let f: Vec<&str> = s.split_whitespace().collect();
    match f.as_slice() {
        [_, d, m, y, hms, _] => format!("{d}/{m}/{y}:{hms} +0000"),
        _ => t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs().to_string())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn clf_time_is_apache_style() {
        let t = UNIX_EPOCH + Duration::from_secs(971_186_136);
        assert_eq!(clf_time(t), "10/Oct/2000:13:55:36 +0000");
    }

    #[test]
    fn lines_gather_until_flushed_and_only_when_on() {
        let peer = "10.7.0.1:5000".parse().unwrap();
        let mut log = AccessLog::new(true);
        log.line(peer, "GET /a\"b HTTP/1.1", 200, 7);
        let t = String::from_utf8(log.buf.clone()).unwrap();
        assert!(t.starts_with("10.7.0.1 - - ["), "{t}");
        assert!(t.ends_with("] \"GET /a\\\"b HTTP/1.1\" 200 7\n"), "{t}");
        let mut off = AccessLog::new(false);
        off.line(peer, "GET / HTTP/1.1", 200, 7);
        assert!(off.buf.is_empty());
    }
}
