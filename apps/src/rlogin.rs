//! `tapir rlogin`: the remote login client of RFC 1282 over tapir's TCP.
//!
//! From a reserved source port (1023 down to 512, as `rresvport` picks them: rlogind trusts
//! nothing else), it sends `\0 local-user \0 remote-user \0 terminal/speed \0`, waits for the
//! server's `\0`, then copies the terminal both ways. Standard input goes raw while the session
//! runs when it is a terminal (restored on every way out); `~.` at the start of a line
//! disconnects. The server's control bytes come as TCP urgent data: the byte at the urgent
//! mark is read as control, never printed. 0x80 asks for window sizes (`\xff\xff ss` + rows,
//! columns, x and y pixels, sent then and on every SIGWINCH), 0x02 discards output the terminal
//! has not shown yet, 0x10 / 0x20 turn local ^S/^Q flow control off / on.
//!
//! When standard input is not a terminal it works as a pipe: each line feed is sent as the
//! carriage return a terminal's Enter key would send, and the session ends when the server
//! closes it (end of input only stops sending).

use std::io::{self, IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use engine::{Node, TcpStream};
use rustix::termios::{self, InputModes, OptionalActions, QueueSelector, Termios};

use crate::resolve::{Resolver, ResolverConfig};

/// RFC 1282's port (`login`).
pub const RLOGIN_PORT: u16 = 513;

/// Reserved ports a client may bind (BSD `rresvport`: 1023 down to 512).
const RESERVED_PORTS: std::ops::RangeInclusive<u16> = 512..=1023;

/// How often the session loops look at their flags (signals, the other side's end).
const TICK: Duration = Duration::from_millis(100);

/// Longest user or terminal name the servers take (BSD rlogind reads 16 / 64; rsh-redone
/// 1024): more is refused here rather than cut.
const MAX_FIELD: usize = 256;

/// TIOCPKT bits the server sends as urgent data (BSD `<sys/ttycom.h>`).
const TIOCPKT_FLUSHWRITE: u8 = 0x02;
const TIOCPKT_NOSTOP: u8 = 0x10;
const TIOCPKT_DOSTOP: u8 = 0x20;
const TIOCPKT_WINDOW: u8 = 0x80;

#[derive(Debug, Clone, Args)]
pub struct RloginOpts {
    /// Host to log in to: an IPv4 address, or a name resolved through --dns.
    pub host: String,
    /// User to log in as on the host (default: the local user).
    #[arg(short = 'l', value_name = "USER")]
    pub user: Option<String>,
    /// The server's port.
    #[arg(short = 'p', long, default_value_t = RLOGIN_PORT, value_name = "PORT")]
    pub port: u16,
    /// Seconds to wait for the connection and the server's greeting.
    #[arg(
        short = 'T',
        long = "timeout",
        default_value_t = 30,
        value_name = "SECS"
    )]
    pub timeout: u64,
}

impl RloginOpts {
    /// Checks what clap cannot: exit 2 on an error here.
    pub fn check(&self) -> Result<()> {
        if let Some(u) = &self.user {
            check_field("-l USER", u)?;
        }
        if self.port == 0 {
            bail!("-p 0: give the server's port (rlogin is {RLOGIN_PORT})");
        }
        Ok(())
    }
}

fn check_field(what: &str, v: &str) -> Result<()> {
    if v.is_empty() || v.len() > MAX_FIELD || v.bytes().any(|b| b == 0) {
        bail!("{what} '{v}': give a non-empty name of at most {MAX_FIELD} bytes");
    }
    Ok(())
}

/// The client's opening message (RFC 1282 "Connection Establishment").
pub fn greeting(local_user: &str, remote_user: &str, terminal: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(4 + local_user.len() + remote_user.len() + terminal.len());
    m.push(0);
    for field in [local_user, remote_user, terminal] {
        m.extend_from_slice(field.as_bytes());
        m.push(0);
    }
    m
}

/// The window-size message (RFC 1282 "Screen Size"): two 0xff bytes, "ss", then rows,
/// columns, x pixels and y pixels in network order.
pub fn window_message(rows: u16, cols: u16, xpixel: u16, ypixel: u16) -> [u8; 12] {
    let mut m = [0xff, 0xff, b's', b's', 0, 0, 0, 0, 0, 0, 0, 0];
    for (i, v) in [rows, cols, xpixel, ypixel].into_iter().enumerate() {
        m[4 + 2 * i..6 + 2 * i].copy_from_slice(&v.to_be_bytes());
    }
    m
}

/// What the client does about a control byte from the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Control {
    /// Start sending window sizes.
    pub send_window: bool,
    /// Discard output the terminal has not shown.
    pub flush_output: bool,
    /// `Some(true)`: local ^S/^Q flow control on; `Some(false)`: off (pass them through).
    pub local_flow: Option<bool>,
}

impl Control {
    pub fn parse(byte: u8) -> Control {
        Control {
            send_window: byte & TIOCPKT_WINDOW != 0,
            flush_output: byte & TIOCPKT_FLUSHWRITE != 0,
            local_flow: if byte & TIOCPKT_DOSTOP != 0 {
                Some(true)
            } else if byte & TIOCPKT_NOSTOP != 0 {
                Some(false)
            } else {
                None
            },
        }
    }
}

/// The `~.` escape: a `~` at the start of a line is held until the next byte says what it is.
/// `~.` disconnects, `~~` sends one `~`, anything else sends both.
#[derive(Debug, Clone)]
pub struct Escape {
    at_line_start: bool,
    held_tilde: bool,
}

impl Default for Escape {
    fn default() -> Self {
        Escape {
            at_line_start: true,
            held_tilde: false,
        }
    }
}

impl Escape {
    /// Appends to `out` what `input` sends; true when `~.` asked to disconnect (the rest of
    /// `input` is dropped).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &b in input {
            if self.held_tilde {
                self.held_tilde = false;
                match b {
                    b'.' => return true,
                    b'~' => {
                        out.push(b'~');
                        self.at_line_start = false;
                        continue;
                    }
                    _ => out.push(b'~'),
                }
            } else if self.at_line_start && b == b'~' {
                self.held_tilde = true;
                continue;
            }
            out.push(b);
            // Enter is \r on a raw terminal, \n from a pipe; ^C, ^D and ^U also start a line.
            self.at_line_start = matches!(b, b'\r' | b'\n' | 0x03 | 0x04 | 0x15);
        }
        false
    }
}

/// How the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The server closed the connection.
    ServerClosed,
    /// `~.` typed.
    Disconnected,
    /// SIGINT, SIGTERM or SIGHUP.
    Signalled,
}

/// Logs in to `opts.host` and runs the session on standard input and `out` until it ends.
pub fn run(node: &Node, opts: &RloginOpts, dns: &[Ipv4Addr], out: &mut dyn Write) -> Result<Ended> {
    opts.check()?;
    let timeout = Duration::from_secs(opts.timeout.max(1));
    let addr = Resolver::new(node, ResolverConfig::new(dns.to_vec()))
        .socket_addr(&opts.host, opts.port)?;
    let local_user = local_user();
    let remote_user = opts.user.clone().unwrap_or_else(|| local_user.clone());
    let stdin = io::stdin();
    let tty = stdin.is_terminal();
    let saved = if tty {
        Some(termios::tcgetattr(&stdin).context("cannot read the terminal's settings")?)
    } else {
        None
    };
    let terminal = terminal_type(saved.as_ref());
    check_field("terminal type", &terminal)?;

    let mut stream = connect_reserved(node, addr, timeout)?;
    stream.set_read_timeout(Some(timeout));
    stream.set_write_timeout(Some(timeout));
    let _ = stream.set_nodelay(true);
    (&stream)
        .write_all(&greeting(&local_user, &remote_user, &terminal))
        .with_context(|| format!("cannot send the greeting to {addr}"))?;
    let mut first = [0u8; 1];
    let n = stream
        .read_marked(&mut first)
        .with_context(|| format!("no greeting from {addr}"))?
        .0;
    if n == 0 {
        bail!("{addr} closed the connection before the session started");
    }
    if first[0] != 0 {
        // BSD rlogind answers \1 and a message when it refuses.
        let mut msg = vec![first[0]];
        let mut buf = [0u8; 512];
        while let Ok((n, _)) = stream.read_marked(&mut buf) {
            if n == 0 {
                break;
            }
            msg.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(msg.strip_prefix(&[1]).unwrap_or(&msg)).into_owned();
        bail!("{addr} refused the session: {}", text.trim());
    }
    stream.set_read_timeout(Some(TICK));
    stream.set_write_timeout(Some(TICK));

    let raw = saved.as_ref().map(RawTerminal::enter).transpose()?;
    let signals = Signals::register()?;
    let ended = session(&stream, &signals, raw.as_ref(), out);
    drop(raw);
    drop(signals);
    let ended = ended?;
    match ended {
        Ended::Disconnected => {
            // Our FIN tells the server; its own close follows.
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let _ = stream.wait_closed(Some(Duration::from_secs(2)));
            eprintln!("\ntapir rlogin: disconnected from {}", opts.host);
        }
        Ended::ServerClosed => eprintln!("\ntapir rlogin: connection to {} closed", opts.host),
        Ended::Signalled => eprintln!("\ntapir rlogin: interrupted"),
    }
    Ok(ended)
}

/// Connects from the highest free reserved port.
fn connect_reserved(node: &Node, addr: SocketAddrV4, timeout: Duration) -> Result<TcpStream> {
    for port in RESERVED_PORTS.rev() {
        match TcpStream::connect_from_port(node, port, addr, Some(timeout)) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot connect to {addr}")),
        }
    }
    bail!(
        "cannot connect to {addr}: every reserved port ({}-{}) is in use towards it",
        RESERVED_PORTS.start(),
        RESERVED_PORTS.end()
    )
}

/// The local user's name: $USER, $LOGNAME, else the passwd entry of our uid.
fn local_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(u) = std::env::var(var) {
            if check_field(var, &u).is_ok() {
                return u;
            }
        }
    }
    let uid = rustix::process::getuid().as_raw();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
        })
        .filter(|u| check_field("user", u).is_ok())
        .unwrap_or_else(|| uid.to_string())
}

/// `$TERM/speed` (RFC 1282): the terminal's output speed, 38400 when not a terminal.
fn terminal_type(tio: Option<&Termios>) -> String {
    let term = std::env::var("TERM")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "network".into());
    let speed = tio.map_or(38400, |t| t.output_speed());
    format!("{term}/{speed}")
}

/// Standard input in raw mode; the saved settings come back on drop.
struct RawTerminal {
    saved: Termios,
    raw: Mutex<Termios>,
}

impl RawTerminal {
    fn enter(saved: &Termios) -> Result<RawTerminal> {
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(io::stdin(), OptionalActions::Flush, &raw)
            .context("cannot put the terminal in raw mode")?;
        Ok(RawTerminal {
            saved: saved.clone(),
            raw: Mutex::new(raw),
        })
    }

    /// Local ^S/^Q flow control on or off (TIOCPKT_DOSTOP / NOSTOP).
    fn set_local_flow(&self, on: bool) {
        let Ok(mut raw) = self.raw.lock() else { return };
        raw.input_modes.set(InputModes::IXON, on);
        let _ = termios::tcsetattr(io::stdin(), OptionalActions::Now, &raw);
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// Signal flags, registered once per process (signal-hook cannot give a signal back its
/// default action race-free, so the handlers stay): SIGWINCH sets `winch`; SIGINT, SIGTERM and
/// SIGHUP end a running session (`quit`, so the terminal is restored) and otherwise terminate
/// the process as before (exit status 128 + signal).
struct SignalFlags {
    winch: Arc<AtomicBool>,
    quit: Arc<AtomicBool>,
    /// No session runs: a termination signal terminates.
    idle: Arc<AtomicBool>,
}

static SIGNALS: std::sync::OnceLock<Option<SignalFlags>> = std::sync::OnceLock::new();

fn signal_flags() -> Result<&'static SignalFlags> {
    SIGNALS
        .get_or_init(|| {
            use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGWINCH};
            let f = SignalFlags {
                winch: Arc::new(AtomicBool::new(false)),
                quit: Arc::new(AtomicBool::new(false)),
                idle: Arc::new(AtomicBool::new(true)),
            };
            signal_hook::flag::register(SIGWINCH, f.winch.clone()).ok()?;
            for sig in [SIGINT, SIGTERM, SIGHUP] {
                // The shutdown goes first: it must see `idle` before a session ends.
                signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, f.idle.clone())
                    .ok()?;
                signal_hook::flag::register(sig, f.quit.clone()).ok()?;
            }
            Some(f)
        })
        .as_ref()
        .ok_or_else(|| anyhow!("cannot install the signal handlers"))
}

/// The signal flags while a session runs; back to idle on drop.
struct Signals {
    flags: &'static SignalFlags,
}

impl Signals {
    fn register() -> Result<Signals> {
        let flags = signal_flags()?;
        flags.quit.store(false, Ordering::Release);
        flags.winch.store(false, Ordering::Release);
        flags.idle.store(false, Ordering::Release);
        Ok(Signals { flags })
    }
}

impl std::ops::Deref for Signals {
    type Target = SignalFlags;
    fn deref(&self) -> &SignalFlags {
        self.flags
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.flags.idle.store(true, Ordering::Release);
    }
}

/// State the two directions share.
struct Shared<'a> {
    stream: &'a TcpStream,
    /// Serialises writes, so a window message never lands inside another write.
    send_lock: Mutex<()>,
    /// The server asked for window sizes.
    windows: AtomicBool,
    /// Either side is done.
    done: AtomicBool,
    disconnect: AtomicBool,
    signals: &'a Signals,
}

impl Shared<'_> {
    /// Sends all of `data`, giving up when the session ends.
    fn send(&self, data: &[u8]) -> io::Result<()> {
        let _held = self.send_lock.lock().map_err(|_| io::ErrorKind::Other)?;
        let mut rest = data;
        while !rest.is_empty() {
            let mut w = self.stream;
            match w.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.done.load(Ordering::Relaxed) {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends the terminal's size when the server wants sizes and it changed (or `force`).
    fn send_window(&self, force: bool) -> io::Result<()> {
        let changed = self.signals.winch.swap(false, Ordering::AcqRel);
        if !(force || changed) || !self.windows.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(ws) = window_size() else {
            return Ok(());
        };
        self.send(&window_message(
            ws.ws_row,
            ws.ws_col,
            ws.ws_xpixel,
            ws.ws_ypixel,
        ))
    }

    fn stopping(&self) -> bool {
        self.done.load(Ordering::Relaxed) || self.signals.quit.load(Ordering::Relaxed)
    }
}

/// The terminal's size, from standard input or output.
fn window_size() -> Option<termios::Winsize> {
    termios::tcgetwinsize(io::stdin())
        .or_else(|_| termios::tcgetwinsize(io::stdout()))
        .ok()
}

/// Copies the terminal both ways until one side ends.
fn session(
    stream: &TcpStream,
    signals: &Signals,
    raw: Option<&RawTerminal>,
    out: &mut dyn Write,
) -> Result<Ended> {
    let shared = Shared {
        stream,
        send_lock: Mutex::new(()),
        windows: AtomicBool::new(false),
        done: AtomicBool::new(false),
        disconnect: AtomicBool::new(false),
        signals,
    };
    let tty = raw.is_some();
    std::thread::scope(|scope| {
        // The keyboard's end (end of input, or a failed send the screen side will see too)
        // does not end the session: the server's close, `~.` or a signal does.
        let input = scope.spawn(|| keyboard(&shared, tty));
        let r = screen(&shared, raw, out);
        shared.done.store(true, Ordering::Release);
        let _ = input.join();
        r
    })
}

/// Server to terminal: data to `out`, the byte at the urgent mark to [`Control`].
fn screen(shared: &Shared<'_>, raw: Option<&RawTerminal>, out: &mut dyn Write) -> Result<Ended> {
    let mut buf = [0u8; 4096];
    loop {
        if shared.disconnect.load(Ordering::Acquire) {
            return Ok(Ended::Disconnected);
        }
        if shared.signals.quit.load(Ordering::Relaxed) {
            return Ok(Ended::Signalled);
        }
        shared.send_window(false).ok();
        let (n, at_mark) = match shared.stream.read_marked(&mut buf) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) if shared.disconnect.load(Ordering::Acquire) => {
                return Ok(Ended::Disconnected);
            }
            Err(e) => return Err(e).context("the connection failed"),
        };
        if n == 0 {
            return Ok(Ended::ServerClosed);
        }
        let data = if at_mark {
            let c = Control::parse(buf[0]);
            if c.flush_output && io::stdout().is_terminal() {
                let _ = termios::tcflush(io::stdout(), QueueSelector::OFlush);
            }
            if let (Some(on), Some(raw)) = (c.local_flow, raw) {
                raw.set_local_flow(on);
            }
            if c.send_window {
                shared.windows.store(true, Ordering::Release);
                shared.send_window(true).ok();
            }
            &buf[1..n]
        } else {
            &buf[..n]
        };
        out.write_all(data)
            .context("cannot write the session's output")?;
        out.flush().context("cannot write the session's output")?;
    }
}

/// Terminal to server, through the `~.` escape; on a pipe, line feeds become carriage returns.
fn keyboard(shared: &Shared<'_>, tty: bool) -> io::Result<()> {
    let stdin = io::stdin();
    let mut escape = Escape::default();
    let mut buf = [0u8; 1024];
    let mut send = Vec::with_capacity(buf.len() + 1);
    let tick = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: TICK.as_nanos() as i64,
    };
    while !shared.stopping() {
        let mut fds = [rustix::event::PollFd::new(
            &stdin,
            rustix::event::PollFlags::IN,
        )];
        match rustix::event::poll(&mut fds, Some(&tick)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let n = match rustix::io::read(stdin.as_fd(), &mut buf) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            // End of input: stop sending; the server ends the session.
            return Ok(());
        }
        send.clear();
        let quit = escape.feed(&buf[..n], &mut send);
        if !tty {
            for b in &mut send {
                if *b == b'\n' {
                    *b = b'\r';
                }
            }
        }
        // A resize just before this input reaches the server first.
        shared.send_window(false)?;
        shared.send(&send)?;
        if quit {
            shared.disconnect.store(true, Ordering::Release);
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_is_four_nul_terminated_fields() {
        assert_eq!(
            greeting("alice", "bob", "xterm/38400"),
            b"\0alice\0bob\0xterm/38400\0"
        );
    }

    #[test]
    fn window_message_is_big_endian_after_the_magic() {
        assert_eq!(
            window_message(33, 101, 640, 0x1234),
            [0xff, 0xff, b's', b's', 0, 33, 0, 101, 2, 128, 0x12, 0x34]
        );
    }

    #[test]
    fn control_bits() {
        assert_eq!(
            Control::parse(0x80),
            Control {
                send_window: true,
                ..Control::default()
            }
        );
        assert_eq!(
            Control::parse(0x82),
            Control {
                send_window: true,
                flush_output: true,
                local_flow: None
            }
        );
        assert_eq!(Control::parse(0x10).local_flow, Some(false));
        assert_eq!(Control::parse(0x20).local_flow, Some(true));
        assert_eq!(Control::parse(0x01), Control::default());
    }

    fn feed(e: &mut Escape, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let quit = e.feed(input, &mut out);
        (out, quit)
    }

    #[test]
    fn tilde_dot_at_a_line_start_disconnects() {
        let mut e = Escape::default();
        assert_eq!(feed(&mut e, b"~."), (vec![], true));
        let mut e = Escape::default();
        assert_eq!(feed(&mut e, b"ls\r~.junk"), (b"ls\r".to_vec(), true));
        // Split across reads.
        let mut e = Escape::default();
        assert_eq!(feed(&mut e, b"ls\n~"), (b"ls\n".to_vec(), false));
        assert_eq!(feed(&mut e, b"."), (vec![], true));
    }

    #[test]
    fn other_tildes_pass_through() {
        let mut e = Escape::default();
        // Not at a line start.
        assert_eq!(feed(&mut e, b"a~.\r"), (b"a~.\r".to_vec(), false));
        // ~~ sends one tilde, and the line no longer starts there.
        assert_eq!(feed(&mut e, b"~~."), (b"~.".to_vec(), false));
        let mut e = Escape::default();
        assert_eq!(feed(&mut e, b"~x"), (b"~x".to_vec(), false));
        let mut e = Escape::default();
        assert_eq!(feed(&mut e, b"\x03~."), (b"\x03".to_vec(), true));
    }

    #[test]
    fn bad_names_are_usage_errors() {
        let opts = |user: &str| RloginOpts {
            host: "10.0.0.1".into(),
            user: Some(user.into()),
            port: RLOGIN_PORT,
            timeout: 1,
        };
        assert!(opts("alice").check().is_ok());
        assert!(opts("").check().is_err());
        assert!(opts(&"x".repeat(MAX_FIELD + 1)).check().is_err());
        assert!(opts("a\0b").check().is_err());
    }
}
