//! The services `tapir serve` runs: echo, daytime, discard, chargen (RFC 862, 867, 863, 864) on
//! TCP and UDP, and HTTP.

mod daytime;
mod http;
pub mod login;
mod simple;

use std::path::PathBuf;
use std::str::FromStr;
use std::thread;

use anyhow::{Context, Result};
use engine::Node;

pub use daytime::daytime_string;
pub use http::LogTarget;

/// Which service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Echo,
    Daytime,
    Discard,
    Chargen,
    Http,
    Https,
    Login,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Echo => "echo",
            Kind::Daytime => "daytime",
            Kind::Discard => "discard",
            Kind::Chargen => "chargen",
            Kind::Http => "http",
            Kind::Https => "https",
            Kind::Login => "login",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Kind::Echo => 7,
            Kind::Daytime => 13,
            Kind::Discard => 9,
            Kind::Chargen => 19,
            Kind::Http => 80,
            Kind::Https => 443,
            Kind::Login => 513,
        }
    }
}

/// One service name the command line accepts. [`ServiceSpec`]'s parser reads this table, and
/// `tapir serve --help` lists it ([`help`]), so the help names every service there is.
#[derive(Debug, Clone, Copy)]
pub struct Form {
    /// The name as written, before any `:PORT` or `=ARG`.
    pub name: &'static str,
    pub kind: Kind,
    /// How it is written, e.g. `http[=DIR]`.
    pub form: &'static str,
    /// What it serves.
    pub what: &'static str,
}

/// Every service name, in the order `--help` lists them.
pub const FORMS: &[Form] = &[
    Form {
        name: "echo",
        kind: Kind::Echo,
        form: "echo",
        what: "RFC 862 echo, TCP and UDP, port 7",
    },
    Form {
        name: "daytime",
        kind: Kind::Daytime,
        form: "daytime",
        what: "RFC 867 daytime, TCP and UDP, port 13",
    },
    Form {
        name: "discard",
        kind: Kind::Discard,
        form: "discard",
        what: "RFC 863 discard, TCP and UDP, port 9",
    },
    Form {
        name: "chargen",
        kind: Kind::Chargen,
        form: "chargen",
        what: "RFC 864 character generator, TCP and UDP, port 19",
    },
    Form {
        name: "http",
        kind: Kind::Http,
        form: "http[=DIR]",
        what: "HTTP/1.1 on TCP port 80: the files under DIR, or a built-in page without it",
    },
    Form {
        name: "http.log",
        kind: Kind::Http,
        form: "http.log[=DIR]",
        what: "http with an access log line per request on stdout",
    },
    Form {
        name: "https",
        kind: Kind::Https,
        form: "https[=DIR]",
        what:
            "http over TLS 1.3/1.2 (ALPN http/1.1) on TCP port 443, with the certificate and key \
               of --cert FILE --key FILE (PEM)",
    },
    Form {
        name: "login",
        kind: Kind::Login,
        form: "login=FILE",
        what: "rlogin (RFC 1282) on TCP port 513, a password asked for every session; FILE has \
               one user:HASH line per user, HASH a SHA-512 crypt string (openssl passwd -6), and \
               the user's shell, uid and home come from /etc/passwd",
    },
];

/// The services part of `tapir serve --help`: every entry of [`FORMS`].
pub fn help() -> String {
    let mut s =
        String::from("Services (each NAME[:PORT][=ARG]; :PORT moves it off its default port):\n");
    for f in FORMS {
        // Wrapped at 100 columns, continuation lines under the description.
        let mut line = format!("  {:<16}", f.form);
        for word in f.what.split_whitespace() {
            if line.len() + 1 + word.len() > 100 {
                s.push_str(&line);
                s.push('\n');
                line = " ".repeat(18);
            }
            line.push(' ');
            line.push_str(word);
        }
        s.push_str(&line);
        s.push('\n');
    }
    s
}

/// A service to run, as written on the command line: `NAME[:PORT][=ARG]`, e.g. `echo`,
/// `echo:7007`, `http=/srv/www`, `http:8080=/srv/www`; `http.log` is http with its access log on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub kind: Kind,
    pub port: u16,
    /// For http: the directory to serve; for login: the credentials file.
    pub dir: Option<PathBuf>,
    /// For http: where the access log goes (None: no access log).
    pub access_log: Option<LogTarget>,
    /// For http: connections served at once.
    pub max_conns: usize,
    /// For http: idle keep-alive connections are closed after this long.
    pub idle: std::time::Duration,
    /// For http: the Cache-Control value of successful answers.
    pub cache_control: Option<String>,
    /// For https: the certificate chain and private key files (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// A bad service spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError(pub String);

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ServiceSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let (head, arg) = match s.split_once('=') {
            Some((h, a)) => (h, Some(a)),
            None => (s, None),
        };
        let (name, port) = match head.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (head, None),
        };
        let Some(form) = FORMS.iter().find(|f| f.name == name) else {
            let forms: Vec<&str> = FORMS.iter().map(|f| f.form).collect();
            return Err(SpecError(format!(
                "unknown service '{name}': choose from {} (NAME[:PORT][=ARG])",
                forms.join(", ")
            )));
        };
        let kind = form.kind;
        let port = match port {
            None => kind.default_port(),
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| SpecError(format!("bad port '{p}' in '{s}': use 1-65535")))?,
        };
        let dir = match (kind, arg) {
            (Kind::Http | Kind::Https | Kind::Login, Some(d)) => Some(PathBuf::from(d)),
            (Kind::Login, None) => {
                return Err(SpecError(
                    "login needs its credentials file: login=FILE (lines of user:$6$... SHA-512 crypt hashes)".into(),
                ))
            }
            (_, None) => None,
            (_, Some(_)) => {
                return Err(SpecError(format!(
                    "service '{name}' takes no argument (only http=DIR, https=DIR and login=FILE do)"
                )))
            }
        };
        Ok(ServiceSpec {
            kind,
            port,
            dir,
            access_log: (name == "http.log").then_some(LogTarget::Stdout),
            max_conns: http::DEFAULT_MAX_CONNS,
            idle: http::IDLE,
            cache_control: None,
            tls: None,
        })
    }
}

/// How a running service is stopped.
enum Stopper {
    /// Threads on the blocking API: close what they listen on.
    Sockets(Vec<engine::SocketCloser>),
    /// Apps on the workers.
    Http(http::Service),
}

/// A service that runs: what listens, and how to stop it.
pub struct Running {
    pub kind: Kind,
    pub port: u16,
    /// What listens, e.g. `echo/tcp:7`.
    pub labels: Vec<String>,
    stopper: Stopper,
}

impl Running {
    /// Begins a graceful stop: HTTP stops listening and lets its connections finish the
    /// responses they have begun; the other services just stop listening (their connections
    /// finish on their own threads).
    pub fn begin_drain(&self) {
        match &self.stopper {
            Stopper::Sockets(closers) => closers.iter().for_each(engine::SocketCloser::close),
            Stopper::Http(service) => service.begin_drain(),
        }
    }

    /// Waits until a service that began draining has nothing left in flight, or `deadline`;
    /// true when nothing is.
    pub fn wait_drained(&self, deadline: std::time::Instant) -> bool {
        match &self.stopper {
            Stopper::Sockets(_) => true,
            Stopper::Http(service) => service.wait_drained(deadline),
        }
    }

    /// Opens the access log file again (SIGHUP, after logrotate moved it away).
    pub fn reopen_log(&self) {
        if let Stopper::Http(service) = &self.stopper {
            service.reopen_log();
        }
    }

    /// Stops listening. HTTP closes its connections too (it runs on the workers, and nothing
    /// would serve them); the other services' connections finish on their own.
    pub fn stop(&self) {
        match &self.stopper {
            Stopper::Sockets(closers) => closers.iter().for_each(engine::SocketCloser::close),
            Stopper::Http(service) => service.stop(),
        }
    }
}

/// Starts `spec` on `node`.
pub fn start(node: &Node, spec: &ServiceSpec) -> Result<Running> {
    let name = spec.kind.name();
    let port = spec.port;
    let mut labels = vec![format!("{name}/tcp:{port}")];
    if matches!(spec.kind, Kind::Http | Kind::Https) {
        let root = match &spec.dir {
            Some(d) => Some(
                d.canonicalize()
                    .with_context(|| format!("http={}: no such directory", d.display()))?,
            ),
            None => None,
        };
        let mut config = http::Config::new(root, spec.access_log.clone(), spec.max_conns);
        config.idle = spec.idle;
        config.cache_control = spec.cache_control.clone();
        if spec.kind == Kind::Https {
            let Some((cert, key)) = &spec.tls else {
                anyhow::bail!("https needs its certificate and key: --cert FILE --key FILE (PEM)");
            };
            config.tls = Some(http::server_config(cert, key)?);
        }
        let service = http::start(node, port, config)
            .with_context(|| format!("cannot listen on TCP port {port} for {name}"))?;
        return Ok(Running {
            kind: spec.kind,
            port,
            labels,
            stopper: Stopper::Http(service),
        });
    }
    let listener = engine::TcpListener::bind(node, port)
        .with_context(|| format!("cannot listen on TCP port {port} for {name}"))?;
    let mut closers = vec![listener.closer()];
    match spec.kind {
        Kind::Login => {
            let file = spec.dir.clone().unwrap_or_default();
            std::fs::metadata(&file).with_context(|| {
                format!("login={}: cannot read the credentials file", file.display())
            })?;
            let server = login::Server::new(file);
            spawn(name, move || server.run(listener));
        }
        kind => {
            let udp = engine::UdpSocket::bind(node, port)
                .with_context(|| format!("cannot bind UDP port {port} for {name}"))?;
            labels.push(format!("{name}/udp:{port}"));
            let (handles, closer) = udp.into_worker_handles();
            closers.push(closer);
            for (w, h) in handles.into_iter().enumerate() {
                if let Err(e) = node.spawn_app(w, Box::new(simple::UdpApp::new(kind, h))) {
                    closers.iter().for_each(engine::SocketCloser::close);
                    return Err(e).with_context(|| format!("cannot start {name} on worker {w}"));
                }
            }
            spawn(name, move || simple::run_tcp(kind, listener));
        }
    }
    Ok(Running {
        kind: spec.kind,
        port,
        labels,
        stopper: Stopper::Sockets(closers),
    })
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    let _ = thread::Builder::new().name(format!("svc-{name}")).spawn(f);
}

impl std::error::Error for SpecError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_ports_and_dirs() {
        assert_eq!(
            "echo".parse::<ServiceSpec>().unwrap(),
            ServiceSpec {
                kind: Kind::Echo,
                port: 7,
                dir: None,
                access_log: None,
                max_conns: http::DEFAULT_MAX_CONNS,
                idle: http::IDLE,
                cache_control: None,
                tls: None,
            }
        );
        assert_eq!("daytime:1313".parse::<ServiceSpec>().unwrap().port, 1313);
        let h: ServiceSpec = "http:8080=/tmp".parse().unwrap();
        assert_eq!(
            (h.kind, h.port, h.dir),
            (Kind::Http, 8080, Some(PathBuf::from("/tmp")))
        );
        let e = "gopher".parse::<ServiceSpec>().unwrap_err();
        assert!(e.0.contains("unknown service 'gopher'"), "{e}");
        assert!("echo:0".parse::<ServiceSpec>().is_err());
        assert!("echo:99999".parse::<ServiceSpec>().is_err());
        assert!("echo=x".parse::<ServiceSpec>().is_err());
        assert_eq!("chargen".parse::<ServiceSpec>().unwrap().port, 19);
        let l: ServiceSpec = "http.log=/tmp".parse().unwrap();
        assert!(l.access_log == Some(LogTarget::Stdout) && l.kind == Kind::Http);
    }
}
