//! login: the rlogin protocol (RFC 1282) on TCP port 513, with a password for every session.
//!
//! Unlike PyIP's (and unlike `.rhosts` trust), no session starts unauthenticated: after the
//! client's `\0 client-user \0 server-user \0 terminal/speed \0` the server asks for a password
//! over the connection and checks it against a credentials file; only then does it start the
//! user's login shell on a pty, as that user (uid, gid, home, shell from /etc/passwd).
//!
//! Credentials file (`tapir serve login=FILE`): one `user:hash` per line, `#` comments and blank
//! lines ignored; `hash` is a SHA-512 crypt string (`$6$salt$...`, as made by
//! `openssl passwd -6` or `mkpasswd -m sha-512`), checked with the `sha-crypt` crate. The file is
//! read again for every login, so edits take effect at once.
//!
//! The pty comes from the `pty-process` crate: it opens the pty, makes the child a session
//! leader with the pty as its controlling terminal, and resizes it, behind a safe API (apps
//! forbids `unsafe`). Window-size changes arrive in-band as `ff ff 's' 's'` + rows, cols,
//! xpixels, ypixels (RFC 1282 "Window Size"), and are applied to the pty.
//!
//! Teardown: when the shell exits, the pty reads EOF (EIO) and the connection is closed at once;
//! when the client closes, the shell is sent SIGHUP through the pty's close and killed if it
//! lingers. Failed logins are logged on stderr and rate-limited per client address.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use engine::{TcpListener, TcpStream};

/// Failed logins from one address within [`FAIL_WINDOW`] after which it is refused outright.
const MAX_FAILS: usize = 5;
const FAIL_WINDOW: Duration = Duration::from_secs(60);
/// Pause before saying "Login incorrect", to slow down guessing.
const FAIL_DELAY: Duration = Duration::from_secs(1);
/// Time allowed for the handshake and the password.
const AUTH_TIMEOUT: Duration = Duration::from_secs(60);

/// A user's entry in /etc/passwd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub shell: PathBuf,
}

/// Looks `user` up in a passwd-format file.
pub fn account(passwd: &str, user: &str) -> Option<Account> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 || f[0] != user {
            return None;
        }
        Some(Account {
            name: f[0].to_string(),
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: PathBuf::from(f[5]),
            shell: PathBuf::from(if f[6].is_empty() { "/bin/sh" } else { f[6] }),
        })
    })
}

/// Whether `password` is `user`'s according to the credentials file text.
pub fn check_password(credentials: &str, user: &str, password: &str) -> bool {
    credentials
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .find(|(u, _)| *u == user)
        .is_some_and(|(_, hash)| sha_crypt::sha512_check(password, hash.trim()).is_ok())
}

/// The rlogin window-size escape: `ff ff 's' 's'` then four big-endian u16s.
const WINDOW_MAGIC: [u8; 4] = [0xff, 0xff, b's', b's'];

/// Splits client bytes into terminal input and window-size changes (rows, cols); bytes of an
/// escape cut short stay in `pending` for the next call.
pub fn split_window_sizes(
    pending: &mut Vec<u8>,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Vec<(u16, u16)> {
    pending.extend_from_slice(input);
    let mut sizes = Vec::new();
    let mut i = 0;
    while i < pending.len() {
        if pending[i] == 0xff {
            let rest = &pending[i..];
            let n = rest.len().min(4);
            if rest[..n] == WINDOW_MAGIC[..n] {
                if rest.len() < 12 {
                    break; // wait for the rest of the escape
                }
                let u = |k: usize| u16::from_be_bytes([rest[k], rest[k + 1]]);
                sizes.push((u(4), u(6)));
                i += 12;
                continue;
            }
        }
        out.push(pending[i]);
        i += 1;
    }
    pending.drain(..i);
    sizes
}

#[derive(Clone)]
pub struct Server {
    credentials: PathBuf,
    fails: Arc<Mutex<HashMap<Ipv4Addr, Vec<Instant>>>>,
}

impl Server {
    pub fn new(credentials: PathBuf) -> Self {
        Server {
            credentials,
            fails: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn run(self, listener: TcpListener) {
        while let Ok((stream, peer)) = listener.accept() {
            let me = self.clone();
            let _ = thread::Builder::new()
                .name("login-conn".into())
                .spawn(move || {
                    if let Err(e) = me.session(stream, *peer.ip()) {
                        eprintln!("login: session from {peer} ended: {e}");
                    }
                });
        }
    }

    fn recent_fails(&self, ip: Ipv4Addr) -> usize {
        let mut f = self.fails.lock().unwrap_or_else(|e| e.into_inner());
        let list = f.entry(ip).or_default();
        list.retain(|t| t.elapsed() < FAIL_WINDOW);
        list.len()
    }

    fn note_fail(&self, ip: Ipv4Addr) {
        let mut f = self.fails.lock().unwrap_or_else(|e| e.into_inner());
        f.entry(ip).or_default().push(Instant::now());
    }

    fn session(&self, mut stream: TcpStream, ip: Ipv4Addr) -> io::Result<()> {
        stream.set_read_timeout(Some(AUTH_TIMEOUT));
        stream.set_write_timeout(Some(AUTH_TIMEOUT));
        let mut rd = Reader {
            stream: &stream,
            buf: Vec::new(),
        };
        // RFC 1282: \0, then three NUL-terminated strings.
        if rd.field(1)? != b"" {
            return close(&stream, "protocol error: no leading NUL");
        }
        let _client_user = rd.field(16)?;
        let server_user = String::from_utf8_lossy(&rd.field(16)?).into_owned();
        let term = String::from_utf8_lossy(&rd.field(64)?).into_owned();
        (&stream).write_all(b"\0")?;
        if self.recent_fails(ip) >= MAX_FAILS {
            eprintln!("login: refused {server_user} from {ip}: too many failed logins");
            (&stream).write_all(b"Too many failed logins; try again later.\r\n")?;
            return close(&stream, "rate limited");
        }
        (&stream).write_all(b"Password: ")?;
        let password = rd.line(256)?;
        (&stream).write_all(b"\r\n")?;
        let creds = std::fs::read_to_string(&self.credentials).unwrap_or_default();
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let acct = account(&passwd, &server_user);
        if !check_password(&creds, &server_user, &password) || acct.is_none() {
            self.note_fail(ip);
            eprintln!("login: FAILED login for {server_user:?} from {ip}");
            thread::sleep(FAIL_DELAY);
            (&stream).write_all(b"Login incorrect\r\n")?;
            return close(&stream, "login incorrect");
        }
        let Some(acct) = acct else {
            return Ok(());
        };
        eprintln!("login: {} logged in from {ip}", acct.name);
        let leftover = std::mem::take(&mut rd.buf);
        stream.set_read_timeout(None);
        stream.set_write_timeout(None);
        run_shell(stream, &acct, &term, leftover)
    }
}

fn close(stream: &TcpStream, why: &str) -> io::Result<()> {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.wait_closed(Some(Duration::from_secs(5)));
    Err(io::Error::other(why.to_string()))
}

/// Reads the handshake's fields and the password line.
struct Reader<'a> {
    stream: &'a TcpStream,
    buf: Vec<u8>,
}

impl Reader<'_> {
    fn fill(&mut self) -> io::Result<()> {
        let mut b = [0u8; 512];
        let n = self.stream.read(&mut b)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client left"));
        }
        self.buf.extend_from_slice(&b[..n]);
        Ok(())
    }

    /// Bytes up to the next NUL (at most `max`).
    fn field(&mut self, max: usize) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == 0) {
                let f = self.buf[..i].to_vec();
                self.buf.drain(..=i);
                return Ok(f);
            }
            if self.buf.len() > max {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "field too long"));
            }
            self.fill()?;
        }
    }

    /// A line ended by CR or LF (a following LF or NUL is eaten), window escapes skipped.
    fn line(&mut self, max: usize) -> io::Result<String> {
        loop {
            let mut plain = Vec::new();
            let mut pending = Vec::new();
            split_window_sizes(&mut pending, &self.buf, &mut plain);
            if let Some(i) = plain.iter().position(|&b| b == b'\r' || b == b'\n') {
                let line = String::from_utf8_lossy(&plain[..i]).into_owned();
                let mut rest = plain[i + 1..].to_vec();
                if matches!(rest.first(), Some(b'\n' | 0)) {
                    rest.remove(0);
                }
                rest.extend_from_slice(&pending);
                self.buf = rest;
                return Ok(line);
            }
            if self.buf.len() > max {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            self.fill()?;
        }
    }
}

/// Runs `acct`'s login shell on a pty and relays between it and the connection until either
/// side ends.
fn run_shell(stream: TcpStream, acct: &Account, term: &str, early: Vec<u8>) -> io::Result<()> {
    let (pty, pts) = pty_process::blocking::open().map_err(io::Error::other)?;
    let _ = pty.resize(pty_process::Size::new(24, 80));
    let term_name = term.split('/').next().unwrap_or("network");
    let shell = acct.shell.display().to_string();
    let arg0 = format!(
        "-{}",
        Path::new(&shell)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("sh")
    );
    let mut child = pty_process::blocking::Command::new(&acct.shell)
        .arg0(arg0)
        .env_clear()
        .env("HOME", &acct.home)
        .env("USER", &acct.name)
        .env("LOGNAME", &acct.name)
        .env("SHELL", &shell)
        .env(
            "TERM",
            if term_name.is_empty() {
                "network"
            } else {
                term_name
            },
        )
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir(if acct.home.is_dir() {
            acct.home.as_path()
        } else {
            Path::new("/")
        })
        .uid(acct.uid)
        .gid(acct.gid)
        .spawn(pts)
        .map_err(io::Error::other)?;
    let pty = Arc::new(pty);
    let stream = Arc::new(stream);
    // Client -> shell, applying window-size escapes.
    let input = {
        let (pty, stream) = (pty.clone(), stream.clone());
        thread::spawn(move || {
            let mut pending = Vec::new();
            let mut first = Some(early);
            let mut b = [0u8; 4096];
            loop {
                let data: Vec<u8> = match first.take() {
                    Some(e) if !e.is_empty() => e,
                    _ => match (&*stream).read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => b[..n].to_vec(),
                    },
                };
                let mut plain = Vec::new();
                for (rows, cols) in split_window_sizes(&mut pending, &data, &mut plain) {
                    let _ = pty.resize(pty_process::Size::new(rows, cols));
                }
                if (&*pty).write_all(&plain).is_err() {
                    break;
                }
            }
        })
    };
    // Shell -> client, until the shell's side of the pty is gone (EIO on Linux).
    let mut b = [0u8; 4096];
    loop {
        match (&*pty).read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if (&*stream).write_all(&b[..n]).is_err() {
                    break;
                }
            }
        }
        if input.is_finished() {
            break;
        }
    }
    // Whichever side ended first, end the other: the shell goes, the connection closes.
    let _ = child.kill();
    let _ = child.wait();
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.wait_closed(Some(Duration::from_secs(5)));
    drop(pty);
    let _ = input.join();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_escapes_are_split_out_even_when_cut() {
        let mut pending = Vec::new();
        let mut out = Vec::new();
        let esc = [0xff, 0xff, b's', b's', 0, 50, 0, 132, 0, 0, 0, 0];
        let mut input = b"ab".to_vec();
        input.extend_from_slice(&esc[..6]);
        assert!(split_window_sizes(&mut pending, &input, &mut out).is_empty());
        assert_eq!(out, b"ab");
        let mut rest = esc[6..].to_vec();
        rest.extend_from_slice(b"c\xffd");
        let sizes = split_window_sizes(&mut pending, &rest, &mut out);
        assert_eq!(sizes, [(50, 132)]);
        assert_eq!(out, b"abc\xffd");
        assert!(pending.is_empty());
    }

    #[test]
    fn passwords_and_accounts() {
        let params = sha_crypt::Sha512Params::new(5000).unwrap();
        let hash = sha_crypt::sha512_simple("secret", &params).unwrap();
        let creds = format!("# users\n\nalice:{hash}\nbob:*\n");
        assert!(check_password(&creds, "alice", "secret"));
        assert!(!check_password(&creds, "alice", "Secret"));
        assert!(!check_password(&creds, "bob", ""));
        assert!(!check_password(&creds, "carol", "secret"));
        let passwd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1001:1002::/home/alice:\n";
        let a = account(passwd, "alice").unwrap();
        assert_eq!((a.uid, a.gid), (1001, 1002));
        assert_eq!(a.shell, PathBuf::from("/bin/sh"));
        assert!(account(passwd, "nobody").is_none());
    }
}
