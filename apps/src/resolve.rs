//! A stub DNS resolver over tapir's own sockets, and `tapir resolve`.
//!
//! Each query goes out from a fresh UDP socket (a random ephemeral port) with a random ID
//! (RFC 5452 §9.2), to each configured server in turn, `attempts` rounds over the list, waiting
//! `timeout` for each; a server that does not answer is skipped for the next. An answer is only
//! taken from the server it was sent to, with the same ID and question. A truncated answer (TC)
//! is asked again over TCP (RFC 7766). CNAME chains are followed, within the answer and by new
//! queries, up to [`MAX_CNAME_HOPS`]. Answers, aliases and negative answers (NXDOMAIN, NODATA;
//! RFC 2308) are cached for their TTL in a bounded cache.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use engine::{Node, TcpStream, UdpSocket};
use protocols::rand::Rng;
use protocols::wire::dns::{DnsPacket, DnsRepr, Name, Rcode, RecordData, Type, PORT};

/// Aliases followed before giving up.
pub const MAX_CNAME_HOPS: usize = 8;
/// Negative answers without an SOA are cached this long (RFC 2308 §5 leaves it to the resolver).
const DEFAULT_NEGATIVE_TTL: u32 = 60;
/// Nothing is cached longer than a day (RFC 2308 §5's suggested maximum for negative answers;
/// the same bound keeps a bogus huge TTL from pinning an entry).
const MAX_TTL: u32 = 86_400;

/// How the resolver asks.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    pub servers: Vec<Ipv4Addr>,
    /// Wait for one answer from one server.
    pub timeout: Duration,
    /// Rounds over the server list.
    pub attempts: usize,
    /// Most cache entries.
    pub cache_size: usize,
}

impl ResolverConfig {
    pub fn new(servers: Vec<Ipv4Addr>) -> Self {
        ResolverConfig {
            servers,
            timeout: Duration::from_secs(2),
            attempts: 2,
            cache_size: 256,
        }
    }
}

/// Why a name did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{name}: no such domain (NXDOMAIN)")]
    NxDomain { name: String },
    #[error("{name}: the name exists but has no IPv4 address (NODATA)")]
    NoData { name: String },
    #[error("{0}: not a valid domain name")]
    BadName(String),
    #[error("no DNS server configured: give one with --dns IP")]
    NoServers,
    #[error("no answer from {servers} (tried {attempts} times each, {timeout:?} per try)")]
    Timeout {
        servers: String,
        attempts: usize,
        timeout: Duration,
    },
    #[error("{name}: server {server} failed: {rcode:?}")]
    ServerFailure {
        name: String,
        server: Ipv4Addr,
        rcode: Rcode,
    },
    #[error("{name}: more than {MAX_CNAME_HOPS} aliases (CNAME loop?)")]
    TooManyAliases { name: String },
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// What a name resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The name asked for.
    pub name: Name,
    /// The aliases followed, in order: `(alias, target)`.
    pub aliases: Vec<(Name, Name)>,
    pub addresses: Vec<Ipv4Addr>,
    /// Some answer came over TCP because the UDP one was truncated.
    pub via_tcp: bool,
}

impl Resolved {
    /// The name the addresses belong to (the end of the alias chain).
    pub fn canonical(&self) -> &Name {
        self.aliases.last().map(|(_, t)| t).unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Cached {
    Addresses(Vec<Ipv4Addr>),
    Alias(Name),
    NxDomain,
    NoData,
}

/// A TTL-honouring cache of A answers, keyed by lower-cased name; evicts expired entries, then
/// the one expiring soonest, when full.
#[derive(Debug)]
struct Cache {
    entries: HashMap<Name, (Instant, Cached)>,
    capacity: usize,
}

impl Cache {
    fn get(&mut self, name: &Name, now: Instant) -> Option<Cached> {
        let key = name.to_lowercase();
        match self.entries.get(&key) {
            Some((exp, c)) if *exp > now => Some(c.clone()),
            Some(_) => {
                self.entries.remove(&key);
                None
            }
            None => None,
        }
    }

    fn put(&mut self, name: &Name, ttl: u32, value: Cached, now: Instant) {
        if ttl == 0 || self.capacity == 0 {
            return;
        }
        let key = name.to_lowercase();
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, (exp, _)| *exp > now);
            if self.entries.len() >= self.capacity {
                if let Some(k) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (exp, _))| *exp)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&k);
                }
            }
        }
        let exp = now + Duration::from_secs(u64::from(ttl.min(MAX_TTL)));
        self.entries.insert(key, (exp, value));
    }
}

/// A stub resolver bound to a node.
pub struct Resolver {
    node: Node,
    config: ResolverConfig,
    cache: Mutex<Cache>,
    rng: Mutex<Rng>,
}

/// Progress along a chain: aliases followed, then where it ends (`None`: ask about the last
/// alias's target).
struct Step {
    aliases: Vec<(Name, Name)>,
    end: Option<Cached>,
}

/// One server's answer to one question, reduced to what the resolver acts on.
struct Answer {
    server: Ipv4Addr,
    repr: DnsRepr,
    via_tcp: bool,
}

impl Resolver {
    pub fn new(node: &Node, config: ResolverConfig) -> Resolver {
        let cache = Cache {
            entries: HashMap::new(),
            capacity: config.cache_size,
        };
        Resolver {
            node: node.clone(),
            config,
            cache: Mutex::new(cache),
            rng: Mutex::new(Rng::new(os_seed())),
        }
    }

    /// The servers this resolver asks, in order.
    pub fn servers(&self) -> &[Ipv4Addr] {
        &self.config.servers
    }

    /// Where a client connects for `host`: the host itself when it is an IPv4 address, else
    /// its first address from DNS (wget, rlogin and load take names this way).
    pub fn socket_addr(&self, host: &str, port: u16) -> anyhow::Result<SocketAddrV4> {
        use anyhow::{anyhow, bail, Context};
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Ok(SocketAddrV4::new(ip, port));
        }
        if self.servers().is_empty() {
            bail!("{host}: a name needs a DNS server: give --dns IP (or use the address)");
        }
        let r = self
            .lookup_ipv4(host)
            .with_context(|| format!("cannot resolve {host}"))?;
        let ip = r
            .addresses
            .first()
            .copied()
            .ok_or_else(|| anyhow!("{host} has no IPv4 address"))?;
        Ok(SocketAddrV4::new(ip, port))
    }

    fn random_u16(&self) -> u16 {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        rng.next_u32() as u16
    }

    /// Resolves `name` to its IPv4 addresses, following aliases. An address literal resolves to
    /// itself.
    pub fn lookup_ipv4(&self, name: &str) -> Result<Resolved, ResolveError> {
        let qname: Name = name
            .parse()
            .map_err(|_| ResolveError::BadName(name.to_string()))?;
        if let Ok(ip) = name.parse::<Ipv4Addr>() {
            return Ok(Resolved {
                name: qname,
                aliases: vec![],
                addresses: vec![ip],
                via_tcp: false,
            });
        }
        let mut result = Resolved {
            name: qname.clone(),
            aliases: vec![],
            addresses: vec![],
            via_tcp: false,
        };
        let mut current = qname;
        loop {
            if result.aliases.len() > MAX_CNAME_HOPS {
                return Err(ResolveError::TooManyAliases {
                    name: result.name.to_string(),
                });
            }
            let step = match self.cache_get(&current) {
                Some(Cached::Alias(target)) => Step {
                    aliases: vec![(current.clone(), target)],
                    end: None,
                },
                Some(end) => Step {
                    aliases: vec![],
                    end: Some(end),
                },
                None => {
                    let answer = self.query(&current)?;
                    result.via_tcp |= answer.via_tcp;
                    self.absorb(&current, answer)?
                }
            };
            if let Some((_, target)) = step.aliases.last() {
                current = target.clone();
            }
            result.aliases.extend(step.aliases);
            match step.end {
                None => continue,
                Some(Cached::Addresses(a)) => {
                    result.addresses = a;
                    return Ok(result);
                }
                Some(Cached::NxDomain) => {
                    return Err(ResolveError::NxDomain {
                        name: current.to_string(),
                    })
                }
                Some(Cached::NoData) | Some(Cached::Alias(_)) => {
                    return Err(ResolveError::NoData {
                        name: current.to_string(),
                    })
                }
            }
        }
    }

    fn cache_get(&self, name: &Name) -> Option<Cached> {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        c.get(name, Instant::now())
    }

    fn cache_put(&self, name: &Name, ttl: u32, v: Cached) {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        c.put(name, ttl, v, Instant::now());
    }

    /// Reads an answer for `qname`: caches every alias and address set it proves, and returns
    /// the aliases it follows from `qname` and, unless the chain leaves the answer, where it ends.
    fn absorb(&self, qname: &Name, answer: Answer) -> Result<Step, ResolveError> {
        let repr = answer.repr;
        match repr.flags.rcode {
            Rcode::NoError | Rcode::NxDomain => {}
            rcode => {
                return Err(ResolveError::ServerFailure {
                    name: qname.to_string(),
                    server: answer.server,
                    rcode,
                })
            }
        }
        // Walk the chain inside the answer section (RFC 1034 §3.6.2: it may hold the whole chain).
        let mut name = qname.clone();
        let mut aliases = Vec::new();
        for _ in 0..=MAX_CNAME_HOPS {
            let alias = repr.answers.iter().find_map(|r| match &r.data {
                RecordData::Cname(t) if r.name.eq_ignore_case(&name) => Some((t.clone(), r.ttl)),
                _ => None,
            });
            if let Some((target, ttl)) = alias {
                self.cache_put(&name, ttl, Cached::Alias(target.clone()));
                aliases.push((name, target.clone()));
                name = target;
                continue;
            }
            let addrs: Vec<(Ipv4Addr, u32)> = repr
                .answers
                .iter()
                .filter(|r| r.name.eq_ignore_case(&name))
                .filter_map(|r| match r.data {
                    RecordData::A(ip) => Some((ip, r.ttl)),
                    _ => None,
                })
                .collect();
            let end = if !addrs.is_empty() {
                let ttl = addrs.iter().map(|&(_, t)| t).min().unwrap_or(0);
                let v = Cached::Addresses(addrs.into_iter().map(|(ip, _)| ip).collect());
                self.cache_put(&name, ttl, v.clone());
                Some(v)
            } else if !aliases.is_empty() && repr.flags.rcode == Rcode::NoError {
                // The chain leaves this answer: the caller asks about its last target.
                None
            } else {
                // Negative (RFC 2308 §2): TTL from the SOA in the authority section.
                let ttl = repr
                    .authorities
                    .iter()
                    .find_map(|r| match &r.data {
                        RecordData::Soa(s) => Some(r.ttl.min(s.minimum)),
                        _ => None,
                    })
                    .unwrap_or(DEFAULT_NEGATIVE_TTL);
                let neg = if repr.flags.rcode == Rcode::NxDomain {
                    Cached::NxDomain
                } else {
                    Cached::NoData
                };
                self.cache_put(&name, ttl, neg.clone());
                Some(neg)
            };
            return Ok(Step { aliases, end });
        }
        Err(ResolveError::TooManyAliases {
            name: qname.to_string(),
        })
    }

    /// Asks the servers about `qname A` until one answers.
    fn query(&self, qname: &Name) -> Result<Answer, ResolveError> {
        if self.config.servers.is_empty() {
            return Err(ResolveError::NoServers);
        }
        let mut last_failure = None;
        for _ in 0..self.config.attempts.max(1) {
            for &server in &self.config.servers {
                match self.query_one(server, qname) {
                    Ok(Some(a)) => match a.repr.flags.rcode {
                        // A server that fails or refuses: try the next (RFC 1035 §7.2).
                        Rcode::NoError | Rcode::NxDomain => return Ok(a),
                        rcode => {
                            last_failure = Some(ResolveError::ServerFailure {
                                name: qname.to_string(),
                                server,
                                rcode,
                            })
                        }
                    },
                    Ok(None) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Err(last_failure.unwrap_or_else(|| ResolveError::Timeout {
            servers: self
                .config
                .servers
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            attempts: self.config.attempts.max(1),
            timeout: self.config.timeout,
        }))
    }

    /// One query to one server over UDP (then TCP if truncated); `None` on timeout.
    fn query_one(&self, server: Ipv4Addr, qname: &Name) -> Result<Option<Answer>, ResolveError> {
        let id = self.random_u16();
        let query = DnsRepr::query(id, qname.clone(), Type::A);
        let bytes = query.to_bytes();
        let mut sock = UdpSocket::bind(&self.node, 0)?;
        let dst = SocketAddrV4::new(server, PORT);
        sock.send_to(&bytes, dst)?;
        let deadline = Instant::now() + self.config.timeout;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            sock.set_read_timeout(Some(left));
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e.into()),
            };
            if from != dst {
                continue; // not from the server asked: ignore (RFC 5452 §9.1)
            }
            let Ok(packet) = DnsPacket::new_checked(&buf[..n]) else {
                continue;
            };
            if packet.id() != id || !packet.flags().response {
                continue;
            }
            if packet.flags().truncated {
                drop(sock);
                return self.query_tcp(server, &query).map(Some);
            }
            let Ok(repr) = DnsRepr::parse(&packet) else {
                continue;
            };
            if !same_question(&repr, qname) {
                continue;
            }
            return Ok(Some(Answer {
                server,
                repr,
                via_tcp: false,
            }));
        }
    }

    /// The same query over TCP, with its two-byte length prefix (RFC 1035 §4.2.2).
    fn query_tcp(&self, server: Ipv4Addr, query: &DnsRepr) -> Result<Answer, ResolveError> {
        let dst = SocketAddrV4::new(server, PORT);
        let mut s = TcpStream::connect_timeout(&self.node, dst, Some(self.config.timeout))?;
        s.set_read_timeout(Some(self.config.timeout));
        s.set_write_timeout(Some(self.config.timeout));
        let body = query.to_bytes();
        let mut msg = (body.len() as u16).to_be_bytes().to_vec();
        msg.extend_from_slice(&body);
        s.write_all(&msg)?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len)?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut reply)?;
        let bad =
            || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad DNS answer over TCP");
        let packet = DnsPacket::new_checked(&reply[..]).map_err(|_| bad())?;
        let repr = DnsRepr::parse(&packet).map_err(|_| bad())?;
        let Some(q) = query.questions.first() else {
            return Err(bad().into());
        };
        if repr.id != query.id || !repr.flags.response || !same_question(&repr, &q.name) {
            return Err(bad().into());
        }
        Ok(Answer {
            server,
            repr,
            via_tcp: true,
        })
    }
}

fn same_question(repr: &DnsRepr, qname: &Name) -> bool {
    matches!(repr.questions.as_slice(), [q] if q.qtype == Type::A && q.name.eq_ignore_case(qname))
}

/// A seed from the OS for query IDs (unpredictable IDs are the point: RFC 5452).
fn os_seed() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        if f.read_exact(&mut b).is_ok() {
            return u64::from_ne_bytes(b);
        }
    }
    // Fallback: std's per-process random hash keys.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// `tapir resolve`'s own options.
#[derive(Debug, Clone, clap::Args)]
pub struct ResolveOpts {
    /// Name to resolve.
    pub name: String,
    /// Seconds to wait for each server's answer.
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    pub timeout: f64,
    /// Rounds over the server list.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=10))]
    pub attempts: u16,
}

/// Resolves and prints, `host`-style: the aliases, then one line per address.
pub fn run(
    node: &Node,
    servers: &[Ipv4Addr],
    opts: &ResolveOpts,
    out: &mut dyn Write,
) -> Result<Resolved, ResolveError> {
    let mut config = ResolverConfig::new(servers.to_vec());
    if opts.timeout.is_finite() && (0.05..=60.0).contains(&opts.timeout) {
        config.timeout = Duration::from_secs_f64(opts.timeout);
    }
    config.attempts = usize::from(opts.attempts);
    let r = Resolver::new(node, config).lookup_ipv4(&opts.name)?;
    if r.via_tcp {
        writeln!(out, ";; answer truncated over UDP, asked again over TCP")?;
    }
    for (alias, target) in &r.aliases {
        writeln!(out, "{alias} is an alias for {target}.")?;
    }
    for a in &r.addresses {
        writeln!(out, "{} has address {a}", r.canonical())?;
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        s.parse().unwrap()
    }

    #[test]
    fn cache_honours_ttl_and_capacity() {
        let mut c = Cache {
            entries: HashMap::new(),
            capacity: 2,
        };
        let t0 = Instant::now();
        let a = Cached::Addresses(vec![Ipv4Addr::new(10, 0, 0, 1)]);
        c.put(&n("A.test"), 10, a.clone(), t0);
        assert_eq!(
            c.get(&n("a.TEST"), t0 + Duration::from_secs(9)),
            Some(a.clone())
        );
        assert_eq!(c.get(&n("a.test"), t0 + Duration::from_secs(10)), None);
        // TTL 0: not cached at all.
        c.put(&n("z.test"), 0, Cached::NoData, t0);
        assert_eq!(c.get(&n("z.test"), t0), None);
        // Full: the entry expiring soonest goes.
        c.put(&n("a.test"), 5, a.clone(), t0);
        c.put(&n("b.test"), 50, Cached::NxDomain, t0);
        c.put(&n("c.test"), 20, Cached::Alias(n("b.test")), t0);
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.get(&n("a.test"), t0), None);
        assert_eq!(c.get(&n("b.test"), t0), Some(Cached::NxDomain));
        assert_eq!(c.get(&n("c.test"), t0), Some(Cached::Alias(n("b.test"))));
    }
}
