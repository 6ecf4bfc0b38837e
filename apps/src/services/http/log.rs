//! The access log: a line per request in the combined format nginx writes by default, so that
//! log tools made for nginx read it. Lines are gathered in memory while a worker serves and
//! written once per poll, so a request costs no system call. With a file, every worker appends
//! through its own handle (O_APPEND keeps each write whole) and opens the file again when the
//! shared generation moves on (SIGHUP, after logrotate moved the old file away).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::request::Request;

/// Where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stdout,
    /// Appended to this file (created when missing).
    File(PathBuf),
}

/// Opens `path` for appending, as every worker does.
pub fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// What one access log line says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    line: String,
    status: u16,
    bytes: u64,
    referer: Option<String>,
    user_agent: Option<String>,
}

impl Logged {
    pub fn of(req: &Request, status: u16, bytes: u64) -> Logged {
        Logged {
            line: req.line(),
            status,
            bytes,
            referer: req.referer.clone(),
            user_agent: req.user_agent.clone(),
        }
    }

    /// A request known only by its first line (it was refused before its headers were read).
    pub fn bare(line: &str, status: u16, bytes: u64) -> Logged {
        Logged {
            line: line.to_string(),
            status,
            bytes,
            referer: None,
            user_agent: None,
        }
    }
}

pub struct AccessLog {
    target: Option<LogTarget>,
    /// The file's handle, once opened.
    file: Option<File>,
    /// The generation `file` was opened in; `reopen` holds the current one.
    opened: u64,
    reopen: Arc<AtomicU64>,
    buf: Vec<u8>,
}

impl AccessLog {
    /// A log to `target` (None: off), opened again whenever `reopen` is incremented.
    pub fn new(target: Option<LogTarget>, reopen: Arc<AtomicU64>) -> AccessLog {
        AccessLog {
            target,
            file: None,
            opened: 0,
            reopen,
            buf: Vec::new(),
        }
    }

    /// Records a request: who asked, and what [`Logged`] says.
    pub fn line(&mut self, peer: SocketAddrV4, l: &Logged) {
        if self.target.is_none() {
            return;
        }
        // log_format combined: '$remote_addr - $remote_user [$time_local] "$request" $status
        // $body_bytes_sent "$http_referer" "$http_user_agent"'.
        let _ = write!(
            self.buf,
            "{} - - [{}] \"",
            peer.ip(),
            clf_time(SystemTime::now())
        );
        escape_into(&mut self.buf, &l.line);
        let _ = write!(self.buf, "\" {} {} \"", l.status, l.bytes);
        escape_into(&mut self.buf, l.referer.as_deref().unwrap_or("-"));
        self.buf.extend_from_slice(b"\" \"");
        escape_into(&mut self.buf, l.user_agent.as_deref().unwrap_or("-"));
        self.buf.extend_from_slice(b"\"\n");
    }

    /// Writes what was gathered. A closed stdout or a full disk must not stop the server:
    /// what cannot be written is dropped.
    pub fn flush(&mut self) {
        let generation = self.reopen.load(Ordering::Relaxed);
        if let Some(LogTarget::File(path)) = &self.target {
            if self.file.is_none() || generation != self.opened {
                match open_append(path) {
                    Ok(f) => self.file = Some(f),
                    Err(e) => {
                        // Keep the old handle, if any: lines still go somewhere.
                        eprintln!(
                            "tapir http: cannot open the access log {}: {e}",
                            path.display()
                        );
                    }
                }
                self.opened = generation;
            }
        }
        if self.buf.is_empty() {
            return;
        }
        match (&self.target, &mut self.file) {
            (Some(LogTarget::File(_)), Some(f)) => {
                let _ = f.write_all(&self.buf);
            }
            (Some(LogTarget::Stdout), _) => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&self.buf).and_then(|()| out.flush());
            }
            _ => {}
        }
        self.buf.clear();
    }
}

/// nginx's default log escaping: `"`, `\`, control bytes and bytes past ASCII as `\xHH`.
fn escape_into(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(b);
        }
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
    fn lines_are_nginx_combined_gather_until_flushed_and_only_when_on() {
        let peer = "10.7.0.1:5000".parse().unwrap();
        let mut log = AccessLog::new(Some(LogTarget::Stdout), Arc::default());
        let mut l = Logged::bare("GET /a\"b\\ HTTP/1.1", 200, 7);
        l.user_agent = Some("curl/8.0 \u{e9}".into());
        log.line(peer, &l);
        let t = String::from_utf8(log.buf.clone()).unwrap();
        assert!(t.starts_with("10.7.0.1 - - ["), "{t}");
        assert!(
            t.ends_with("] \"GET /a\\x22b\\x5C HTTP/1.1\" 200 7 \"-\" \"curl/8.0 \\xC3\\xA9\"\n"),
            "{t}"
        );
        let mut off = AccessLog::new(None, Arc::default());
        off.line(peer, &l);
        assert!(off.buf.is_empty());
    }
}
