//! An HTTP/1.1 static file server: GET and HEAD of a built-in page or of files under a directory
//! (byte ranges, several at once as `multipart/byteranges`, a directory index, If-Modified-Since,
//! Content-Type by extension), keep-alive and pipelining answered in order, RFC 9112's request
//! rules (absolute-form targets, Host, one framing per body and chunked bodies read through,
//! `OPTIONS *`, `Expect: 100-continue`), the right status for each bad request, limits on the
//! request head, the URI, bodies and connections, and an access log line per request (nginx's
//! combined format, on stdout or appended to a file) when asked.
//!
//! It runs on the run-to-completion API ([`engine::rtc`]): one [`app::HttpApp`] per worker
//! listens on the port in that worker's stack and serves the connections the worker owns, inside
//! the worker's poll. Requests are parsed by httparse ([`request`]); HTTPS goes through rustls on
//! the same workers ([`tls`]). SIGTERM drains ([`Service::begin_drain`]): the listener goes, the
//! responses in flight finish, and the service reports once every client has acknowledged them.

mod app;
mod chunked;
mod conn;
mod encoded;
mod files;
mod log;
mod open_cache;
mod ranges;
mod request;
mod response;
mod send;
mod tls;
mod validators;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use engine::Node;

use app::{HttpApp, Report};
pub use log::LogTarget;
use open_cache::OpenCache;
use request::Request;
use response::{Body, Response};
pub use tls::server_config;

/// Idle time after which a keep-alive connection is closed.
pub const IDLE: Duration = Duration::from_secs(30);
/// A client that does not read its response for this long is given up on.
const SEND_STALL: Duration = Duration::from_secs(60);
/// How long starting and stopping wait for every worker to answer.
const WORKER_ANSWER: Duration = Duration::from_secs(5);
/// Connections served at once unless told otherwise.
pub const DEFAULT_MAX_CONNS: usize = 1024;

const PAGE: &str =
    "<!doctype html>\n<html><head><title>tapir</title></head>\n<body>\n<h1>tapir</h1>\n\
<p>Served by tapir, a user-space TCP/IP stack on a Linux tap.</p>\n</body></html>\n";

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory served; None serves the built-in page.
    pub root: Option<PathBuf>,
    /// Where the access log goes; None: no access log.
    pub log: Option<LogTarget>,
    /// Connections served at once, over all workers; more are answered 503 and closed.
    pub max_conns: usize,
    /// Idle keep-alive connections are closed after this long.
    pub idle: Duration,
    /// Connections whose client takes nothing of a response for this long are reset.
    pub send_stall: Duration,
    /// The Cache-Control value of every successful GET and HEAD (and of their 304s).
    pub cache_control: Option<String>,
    /// HTTPS: the TLS server the connections go through.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Config {
    pub fn new(root: Option<PathBuf>, log: Option<LogTarget>, max_conns: usize) -> Config {
        Config {
            root,
            log,
            max_conns: max_conns.max(1),
            idle: IDLE,
            send_stall: SEND_STALL,
            cache_control: None,
            tls: None,
        }
    }
}

/// What a request is answered from.
pub struct Site {
    root: Option<files::Root>,
    cache_control: Option<String>,
}

/// What every worker's app shares: the setup, the connection count (one atomic step per
/// connection opened or closed, never per packet) and the stop flag.
struct Shared {
    config: Config,
    site: Site,
    conns: AtomicUsize,
    stop: AtomicBool,
    /// Stop listening and let the connections finish their responses.
    draining: AtomicBool,
    /// Workers whose draining is over.
    drained: AtomicUsize,
    /// Moved on to have every worker open the access log file again.
    log_generation: Arc<AtomicU64>,
}

/// The server running on every worker of a node.
pub struct Service {
    node: Node,
    shared: Arc<Shared>,
    reports: Mutex<Receiver<Report>>,
}

/// Starts the server on `port` of every worker; returns once each listens (or fails, stopping
/// the others).
pub fn start(node: &Node, port: u16, config: Config) -> Result<Service> {
    if let Some(LogTarget::File(path)) = &config.log {
        log::open_append(path)
            .with_context(|| format!("cannot open the access log {}", path.display()))?;
    }
    let site = Site {
        root: config.root.clone().map(files::Root::new),
        cache_control: config.cache_control.clone(),
    };
    let shared = Arc::new(Shared {
        config,
        site,
        conns: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        drained: AtomicUsize::new(0),
        log_generation: Arc::default(),
    });
    let (tx, rx) = mpsc::channel();
    let service = Service {
        node: node.clone(),
        shared: shared.clone(),
        reports: Mutex::new(rx),
    };
    let spawned = (0..node.queues()).try_for_each(|w| {
        let app = HttpApp::new(shared.clone(), port, tx.clone());
        node.spawn_app(w, Box::new(app))
    });
    drop(tx);
    if let Err(e) = spawned {
        service.stop();
        return Err(e.into());
    }
    let mut listening = 0;
    while listening < node.queues() {
        let got = service
            .reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recv_timeout(WORKER_ANSWER);
        match got {
            Ok(Report::Listening(Ok(()))) => listening += 1,
            Ok(Report::Listening(Err(e))) => {
                service.stop();
                return Err(e.into());
            }
            Ok(Report::Stopped | Report::Drained) => {}
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                service.stop();
                bail!("worker did not answer within {WORKER_ANSWER:?}");
            }
        }
    }
    Ok(service)
}

impl Service {
    /// Begins a graceful stop: every worker stops listening (a new connection is refused with
    /// a reset) and lets its connections finish the responses they have begun.
    pub fn begin_drain(&self) {
        self.shared.draining.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    /// Waits until every worker has drained (all its connections closed and acknowledged) or
    /// `deadline` passes; true when drained. [`Service::stop`] then ends what is left.
    pub fn wait_drained(&self, deadline: Instant) -> bool {
        let reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.shared.drained.load(Ordering::SeqCst) >= self.node.queues() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match reports.recv_timeout(left) {
                // Any report: count again.
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return false,
                Err(RecvTimeoutError::Disconnected) => {
                    return self.shared.drained.load(Ordering::SeqCst) >= self.node.queues()
                }
            }
        }
    }

    /// Has every worker open the access log file again (after logrotate moved it).
    pub fn reopen_log(&self) {
        self.shared.log_generation.fetch_add(1, Ordering::SeqCst);
        self.wake_all();
    }

    fn wake_all(&self) {
        for w in 0..self.node.queues() {
            self.node.wake_worker(w);
        }
    }

    /// Stops every worker's server: the port is no longer listened on and every connection is
    /// closed when this returns (or after a bounded wait for a worker that does not answer).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.wake_all();
        let reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        // Every app's sender goes when it stops (or fails to listen, or its worker ends).
        while reports.recv_timeout(WORKER_ANSWER).is_ok() {}
    }
}

/// A worker's way to answer: the site, with the worker's own recent opens under its root.
pub(crate) struct Responder<'a> {
    pub site: &'a Site,
    pub files: &'a mut OpenCache,
}

impl Responder<'_> {
    pub fn respond(&mut self, req: &Request) -> Response {
        self.site.respond(req, self.files)
    }
}

/// The methods this server answers (RFC 9110 §9.3.7: `OPTIONS` says so).
const ALLOW: &str = "GET, HEAD, OPTIONS";

impl Site {
    /// The answer to `req`; `files` is the worker's recent opens under the root.
    pub fn respond(&self, req: &Request, files: &mut OpenCache) -> Response {
        let mut r = self.answer(req, files);
        if let Some(cc) = &self.cache_control {
            if matches!(r.status, 200 | 206 | 304) && req.method != "OPTIONS" {
                r.headers.push(("Cache-Control", cc.clone()));
            }
        }
        r
    }

    fn answer(&self, req: &Request, files: &mut OpenCache) -> Response {
        match req.method.as_str() {
            "GET" | "HEAD" if req.path != "*" => {}
            "OPTIONS" => {
                // For `*` (the server) and every path alike: what can be asked.
                let mut r = Response::new(200, "OK", "");
                r.headers.push(("Allow", ALLOW.into()));
                return r;
            }
            _ => {
                let mut r = Response::error(405, "Method Not Allowed");
                r.headers.push(("Allow", ALLOW.into()));
                return r;
            }
        }
        let Some(root) = &self.root else {
            let path = req.path.split(['?', '#']).next().unwrap_or("/");
            return if path == "/" || path == "/index.html" {
                let mut r = Response::new(200, "OK", "text/html; charset=utf-8");
                r.body = Body::Bytes(PAGE.as_bytes().to_vec());
                r
            } else {
                Response::error(404, "Not Found")
            };
        };
        let ask = files::Ask {
            range: req.range.as_deref(),
            if_range: req.if_range.as_deref(),
            if_match: req.if_match.as_deref(),
            if_unmodified_since: req.if_unmodified_since.as_deref(),
            if_modified_since: req.if_modified_since.as_deref(),
            if_none_match: req.if_none_match.as_deref(),
            accept_encoding: req.accept_encoding.as_deref(),
        };
        files::get(root, &req.path, &ask, files)
    }
}
