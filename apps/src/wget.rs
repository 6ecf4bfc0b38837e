//! `tapir wget`: fetch a URL over HTTP/1.1 with tapir's TCP. Follows redirects, decodes chunked
//! and Content-Length bodies (or reads to the close), writes to a file (`-O`), and draws a
//! progress bar only when stderr is a terminal.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use engine::{Node, TcpStream};

use crate::resolve::{Resolver, ResolverConfig};

#[derive(Debug, Clone, Args)]
pub struct WgetOpts {
    /// URL to fetch: http://HOST[:PORT]/PATH (HOST a name, resolved through --dns, or an IPv4
    /// address).
    pub url: String,
    /// Write the body to FILE ('-' for standard output); default: the URL's last path segment,
    /// or index.html.
    #[arg(short = 'O', value_name = "FILE")]
    pub output: Option<String>,
    /// Say nothing on stderr.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Most redirects to follow.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub max_redirect: u32,
    /// Seconds to wait for a connection or for data before giving up.
    #[arg(
        short = 'T',
        long = "timeout",
        default_value_t = 30,
        value_name = "SECS"
    )]
    pub timeout: u64,
}

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with '/'.
    pub path: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url> {
        let rest = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => bail!("{s}: only http:// URLs are supported (not {scheme}://)"),
            None => s,
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = path.split('#').next().unwrap_or("/");
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| anyhow!("{s}: bad port '{p}'"))?,
            ),
            None => (authority, 80),
        };
        if host.is_empty() {
            bail!("{s}: no host in the URL");
        }
        Ok(Url {
            host: host.to_string(),
            port,
            path,
        })
    }

    /// Where a `Location` header points, relative to this URL.
    pub fn join(&self, location: &str) -> Result<Url> {
        if location.contains("://") {
            return Url::parse(location);
        }
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("http://{rest}"));
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            let dir = match self.path.split('?').next().unwrap_or("/").rfind('/') {
                Some(i) => &self.path[..=i],
                None => "/",
            };
            format!("{dir}{location}")
        };
        Ok(Url {
            host: self.host.clone(),
            port: self.port,
            path,
        })
    }

    /// The address to connect to: the host itself when it is an IPv4 address, else its first
    /// address from DNS.
    pub fn addr(&self, resolver: &Resolver) -> Result<SocketAddrV4> {
        resolver.socket_addr(&self.host, self.port)
    }

    /// The Host header's value: the host, and the port unless it is 80.
    pub fn host_header(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The file name wget would save to.
    pub fn file_name(&self) -> String {
        let p = self.path.split('?').next().unwrap_or("");
        match p.rsplit('/').next() {
            Some(n) if !n.is_empty() && n != "." && n != ".." => n.to_string(),
            _ => "index.html".into(),
        }
    }
}

/// A response head.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a response head (status line and headers) from `r`.
pub fn read_head(r: &mut impl BufRead) -> Result<Head> {
    let mut raw = Vec::new();
    loop {
        let n = r.read_until(b'\n', &mut raw)?;
        if n == 0 {
            bail!("the server closed the connection before a complete response head");
        }
        if raw.ends_with(b"\r\n\r\n") || raw.ends_with(b"\n\n") {
            break;
        }
        if raw.len() > 64 * 1024 {
            bail!("the response head is larger than 64 KiB");
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&raw) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => bail!("incomplete response head"),
        Err(e) => bail!("malformed response head: {e}"),
    }
    Ok(Head {
        status: resp.code.unwrap_or(0),
        reason: resp.reason.unwrap_or("").to_string(),
        headers: resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).trim().to_string(),
                )
            })
            .collect(),
    })
}

/// A `Read` over a chunked body (RFC 9112 §7.1): yields the chunks' data, ends after the last
/// chunk and its trailers.
pub struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    pub fn new(inner: R) -> Self {
        Chunked {
            inner,
            left: 0,
            done: false,
        }
    }

    fn line(&mut self) -> io::Result<String> {
        let mut l = Vec::new();
        (&mut self.inner).take(4096).read_until(b'\n', &mut l)?;
        if !l.ends_with(b"\n") {
            return Err(bad("a chunk line is cut short or longer than 4 KiB"));
        }
        Ok(String::from_utf8_lossy(&l).trim_end().to_string())
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let line = self.line()?;
            let size = line.split(';').next().unwrap_or("").trim();
            self.left = u64::from_str_radix(size, 16)
                .map_err(|_| bad("a chunk size is not a hex number"))?;
            if self.left == 0 {
                // Trailers, up to the empty line.
                while !self.line()?.is_empty() {}
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed inside a chunk",
            ));
        }
        self.left -= n as u64;
        if self.left == 0 && !self.line()?.is_empty() {
            return Err(bad("a chunk is not followed by CRLF"));
        }
        Ok(n)
    }
}

/// What a fetch did.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub url: Url,
    pub status: u16,
    pub bytes: u64,
    pub redirects: u32,
}

fn say(opts: &WgetOpts, msg: std::fmt::Arguments<'_>) {
    if !opts.quiet {
        let _ = writeln!(io::stderr(), "{msg}");
    }
}

/// Fetches `opts.url` over `node`, following redirects, and saves the body.
pub fn run(node: &Node, opts: &WgetOpts, dns: &[Ipv4Addr]) -> Result<Fetched> {
    let timeout = Duration::from_secs(opts.timeout.max(1));
    let resolver = Resolver::new(node, ResolverConfig::new(dns.to_vec()));
    let mut url = Url::parse(&opts.url)?;
    let mut redirects = 0;
    loop {
        let addr = url.addr(&resolver)?;
        say(opts, format_args!("Connecting to {addr}... "));
        let mut stream = TcpStream::connect_timeout(node, addr, Some(timeout))
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_read_timeout(Some(timeout));
        stream.set_write_timeout(Some(timeout));
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tapir-wget/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            url.path,
            url.host_header(),
            env!("CARGO_PKG_VERSION")
        );
        (&stream).write_all(req.as_bytes())?;
        say(
            opts,
            format_args!("HTTP request sent, awaiting response... "),
        );
        let mut reader = BufReader::with_capacity(64 * 1024, &stream);
        let head = read_head(&mut reader)?;
        say(opts, format_args!("{} {}", head.status, head.reason));
        if matches!(head.status, 301 | 302 | 303 | 307 | 308) {
            let loc = head
                .header("location")
                .ok_or_else(|| anyhow!("{} redirect without a Location", head.status))?;
            redirects += 1;
            if redirects > opts.max_redirect {
                bail!("more than {} redirects: giving up", opts.max_redirect);
            }
            url = url.join(loc)?;
            say(opts, format_args!("Location: {loc} [following]"));
            drop(reader);
            let _ = stream.shutdown(std::net::Shutdown::Both);
            continue;
        }
        if !(200..300).contains(&head.status) {
            bail!(
                "http://{}{}: the server answered {} {}",
                url.host_header(),
                url.path,
                head.status,
                head.reason
            );
        }
        let chunked = head
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length: Option<u64> = if chunked {
            None
        } else {
            head.header("content-length").and_then(|v| v.parse().ok())
        };
        let ctype = head.header("content-type").unwrap_or("");
        match length {
            Some(n) => say(opts, format_args!("Length: {n} [{ctype}]")),
            None => say(opts, format_args!("Length: unspecified [{ctype}]")),
        }
        let out_name = opts.output.clone().unwrap_or_else(|| url.file_name());
        let mut sink: Box<dyn Write> = if out_name == "-" {
            Box::new(io::stdout().lock())
        } else {
            say(opts, format_args!("Saving to: '{out_name}'"));
            Box::new(
                File::create(PathBuf::from(&out_name))
                    .with_context(|| format!("cannot create {out_name}"))?,
            )
        };
        let body: Box<dyn Read + '_> = if chunked {
            Box::new(Chunked::new(reader))
        } else if let Some(n) = length {
            Box::new(reader.take(n))
        } else {
            Box::new(reader)
        };
        let bytes = copy_with_progress(body, &mut sink, length, opts.quiet)?;
        sink.flush()?;
        if let Some(n) = length {
            if bytes != n {
                bail!("the connection closed after {bytes} of {n} bytes");
            }
        }
        if out_name != "-" {
            say(opts, format_args!("'{out_name}' saved [{bytes}]"));
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return Ok(Fetched {
            url,
            status: head.status,
            bytes,
            redirects,
        });
    }
}

fn copy_with_progress(
    mut body: impl Read,
    out: &mut dyn Write,
    length: Option<u64>,
    quiet: bool,
) -> Result<u64> {
    let bar = if !quiet && io::stderr().is_terminal() {
        let bar = match length {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
        let style = indicatif::ProgressStyle::with_template(
            "{wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        Some(bar)
    } else {
        None
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading the body"),
        };
        out.write_all(&buf[..n])?;
        total += n as u64;
        if let Some(b) = &bar {
            b.set_position(total);
        }
    }
    if let Some(b) = bar {
        b.finish();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_join() {
        let u = Url::parse("http://10.0.0.1:8080/a/b.txt?x=1#frag").unwrap();
        assert_eq!(
            u,
            Url {
                host: "10.0.0.1".into(),
                port: 8080,
                path: "/a/b.txt?x=1".into()
            }
        );
        assert_eq!(u.file_name(), "b.txt");
        assert_eq!(Url::parse("10.0.0.1").unwrap().path, "/");
        assert_eq!(
            Url::parse("http://10.0.0.1/").unwrap().file_name(),
            "index.html"
        );
        assert!(Url::parse("https://x/").is_err());
        assert!(Url::parse("http://x:0/").is_err());
        assert_eq!(u.join("c.txt").unwrap().path, "/a/c.txt");
        assert_eq!(u.join("/top").unwrap().path, "/top");
        let other = u.join("http://10.0.0.2/z").unwrap();
        assert_eq!((other.host.as_str(), other.port), ("10.0.0.2", 80));
    }

    #[test]
    fn chunked_bodies_decode() {
        let wire =
            b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let mut r = io::Cursor::new(&wire[..]);
        let mut body = String::new();
        Chunked::new(&mut r).read_to_string(&mut body).unwrap();
        assert_eq!(body, "Wikipedia in \r\n\r\nchunks.");
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "NEXT", "nothing after the trailers is consumed");
        let mut s = String::new();
        assert!(Chunked::new(&b"zz\r\n"[..]).read_to_string(&mut s).is_err());
        assert!(Chunked::new(&b"5\r\nab"[..])
            .read_to_string(&mut s)
            .is_err());
    }

    #[test]
    fn heads_parse() {
        let mut r = io::Cursor::new(
            &b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\nrest"[..],
        );
        let h = read_head(&mut r).unwrap();
        assert_eq!((h.status, h.reason.as_str()), (302, "Found"));
        assert_eq!(h.header("location"), Some("/x"));
    }
}
