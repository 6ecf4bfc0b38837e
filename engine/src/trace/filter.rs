//! `--trace EXPR`: which frames to trace.
//!
//! Grammar (lowest precedence first; `and` binds tighter than `or`, `not` tighter than both;
//! two primaries side by side mean `and`, as in tcpdump's `tcp port 80`):
//! ```text
//! expr    := and ( ("or" | "||") and )*
//! and     := unary ( ("and" | "&&")? unary )*
//! unary   := ("not" | "!") unary | primary
//! primary := "(" expr ")" | "arp" | "ip" | "icmp" | "udp" | "tcp" | "in" | "out"
//!          | ["src" | "dst"] "host" A.B.C.D | ["src" | "dst"] "port" N
//! ```
//! `host` matches an IPv4 source or destination, and an ARP sender or target; `port` matches a
//! TCP or UDP port (of the first fragment only: later fragments carry no ports).
//!
//! Parsing allocates (once); [`Filter::matches`] does not: it reads the headers it needs from
//! the frame's bytes in place and walks the expression tree.

use core::fmt;
use core::net::Ipv4Addr;

use protocols::wire::{ArpPacket, ArpRepr, EtherType, EthernetFrame, IpProtocol, Ipv4Packet};

use super::Direction;

/// A protocol a filter can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Arp,
    Ip,
    Icmp,
    Udp,
    Tcp,
}

/// Which address or port a primitive looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Src,
    Dst,
    Either,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prim {
    Proto(Proto),
    Host(Side, Ipv4Addr),
    Port(Side, u16),
    Dir(Direction),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    And(usize, usize),
    Or(usize, usize),
    Not(usize),
    Prim(Prim),
}

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    nodes: Vec<Node>,
    root: usize,
}

/// What the parser wanted and did not find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterErrorKind {
    /// `expected a port number after 'port'`.
    ExpectedPort { after: &'static str },
    /// `expected an IPv4 address after 'host'`.
    ExpectedAddress { after: &'static str },
    /// `expected 'host' or 'port' after 'src'`.
    ExpectedHostOrPort { after: &'static str },
    /// `expected an expression`: end of input, `)`, `and`/`or` where a primary belongs.
    ExpectedExpression { found: String },
    /// `expected ')'`.
    ExpectedCloseParen { found: String },
    /// A word that is not part of the language.
    UnknownWord { word: String },
}

impl fmt::Display for FilterErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterErrorKind::ExpectedPort { after } => {
                write!(f, "expected a port number (0-65535) after '{after}'")
            }
            FilterErrorKind::ExpectedAddress { after } => {
                write!(f, "expected an IPv4 address (A.B.C.D) after '{after}'")
            }
            FilterErrorKind::ExpectedHostOrPort { after } => {
                write!(f, "expected 'host' or 'port' after '{after}'")
            }
            FilterErrorKind::ExpectedExpression { found } => write!(
                f,
                "expected a protocol, host, port, in, out, not or '(' but found {found}"
            ),
            FilterErrorKind::ExpectedCloseParen { found } => {
                write!(f, "expected ')' but found {found}")
            }
            FilterErrorKind::UnknownWord { word } => write!(
                f,
                "unknown word '{word}' (known: arp ip icmp udp tcp host port src dst in out and or not)"
            ),
        }
    }
}

/// A filter that does not parse: where (1-based column) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trace filter: {kind} at column {column}")]
pub struct FilterError {
    pub column: usize,
    pub kind: FilterErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    Word(&'a str),
    Open,
    Close,
    Not,
    And,
    Or,
    End,
}

impl Tok<'_> {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("'{w}'"),
            Tok::Open => "'('".into(),
            Tok::Close => "')'".into(),
            Tok::Not => "'!'".into(),
            Tok::And => "'&&'".into(),
            Tok::Or => "'||'".into(),
            Tok::End => "the end of the expression".into(),
        }
    }
}

fn tokenize(src: &str) -> Vec<(usize, Tok<'_>)> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let col = src[..i].chars().count() + 1;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push((col, Tok::Open));
                i += 1;
            }
            b')' => {
                out.push((col, Tok::Close));
                i += 1;
            }
            b'!' => {
                out.push((col, Tok::Not));
                i += 1;
            }
            b'&' | b'|' if bytes.get(i + 1) == Some(&c) => {
                out.push((col, if c == b'&' { Tok::And } else { Tok::Or }));
                i += 2;
            }
            _ => {
                let start = i;
                while i < bytes.len() && !b" \t\n\r()!".contains(&bytes[i]) {
                    if (bytes[i] == b'&' || bytes[i] == b'|') && bytes.get(i + 1) == Some(&bytes[i])
                    {
                        break;
                    }
                    i += 1;
                }
                if i == start {
                    // A lone '&' or '|': take it as a word so the parser names it.
                    i += src[i..].chars().next().map_or(1, char::len_utf8);
                }
                let word = &src[start..i];
                let tok = match word {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    w => Tok::Word(w),
                };
                out.push((col, tok));
            }
        }
    }
    out.push((src.chars().count() + 1, Tok::End));
    out
}

struct Parser<'a> {
    toks: Vec<(usize, Tok<'a>)>,
    at: usize,
    nodes: Vec<Node>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> (usize, Tok<'a>) {
        self.toks[self.at.min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> (usize, Tok<'a>) {
        let t = self.peek();
        if self.at < self.toks.len() - 1 {
            self.at += 1;
        }
        t
    }

    fn push(&mut self, n: Node) -> usize {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    fn or(&mut self) -> Result<usize, FilterError> {
        let mut left = self.and()?;
        while self.peek().1 == Tok::Or {
            self.next();
            let right = self.and()?;
            left = self.push(Node::Or(left, right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<usize, FilterError> {
        let mut left = self.unary()?;
        loop {
            match self.peek().1 {
                Tok::And => {
                    self.next();
                }
                // Juxtaposition: `tcp port 80`.
                Tok::Word(_) | Tok::Not | Tok::Open => {}
                _ => return Ok(left),
            }
            let right = self.unary()?;
            left = self.push(Node::And(left, right));
        }
    }

    fn unary(&mut self) -> Result<usize, FilterError> {
        if self.peek().1 == Tok::Not {
            self.next();
            let inner = self.unary()?;
            return Ok(self.push(Node::Not(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<usize, FilterError> {
        let (col, tok) = self.next();
        let word = match tok {
            Tok::Open => {
                let inner = self.or()?;
                let (col, t) = self.next();
                if t != Tok::Close {
                    return Err(FilterError {
                        column: col,
                        kind: FilterErrorKind::ExpectedCloseParen {
                            found: t.describe(),
                        },
                    });
                }
                return Ok(inner);
            }
            Tok::Word(w) => w,
            other => {
                return Err(FilterError {
                    column: col,
                    kind: FilterErrorKind::ExpectedExpression {
                        found: other.describe(),
                    },
                })
            }
        };
        let prim = match word {
            "arp" => Prim::Proto(Proto::Arp),
            "ip" => Prim::Proto(Proto::Ip),
            "icmp" => Prim::Proto(Proto::Icmp),
            "udp" => Prim::Proto(Proto::Udp),
            "tcp" => Prim::Proto(Proto::Tcp),
            "in" => Prim::Dir(Direction::In),
            "out" => Prim::Dir(Direction::Out),
            "host" => self.host(Side::Either, "host")?,
            "port" => self.port(Side::Either, "port")?,
            "src" | "dst" => {
                let side = if word == "src" { Side::Src } else { Side::Dst };
                let after = if word == "src" { "src" } else { "dst" };
                let (col, t) = self.next();
                match t {
                    Tok::Word("host") => self.host(
                        side,
                        if side == Side::Src {
                            "src host"
                        } else {
                            "dst host"
                        },
                    )?,
                    Tok::Word("port") => self.port(
                        side,
                        if side == Side::Src {
                            "src port"
                        } else {
                            "dst port"
                        },
                    )?,
                    _ => {
                        return Err(FilterError {
                            column: col,
                            kind: FilterErrorKind::ExpectedHostOrPort { after },
                        })
                    }
                }
            }
            w => {
                return Err(FilterError {
                    column: col,
                    kind: FilterErrorKind::UnknownWord { word: w.into() },
                })
            }
        };
        Ok(self.push(Node::Prim(prim)))
    }

    fn host(&mut self, side: Side, after: &'static str) -> Result<Prim, FilterError> {
        let (col, t) = self.next();
        match t {
            Tok::Word(w) => match w.parse::<Ipv4Addr>() {
                Ok(a) => Ok(Prim::Host(side, a)),
                Err(_) => Err(FilterError {
                    column: col,
                    kind: FilterErrorKind::ExpectedAddress { after },
                }),
            },
            _ => Err(FilterError {
                column: col,
                kind: FilterErrorKind::ExpectedAddress { after },
            }),
        }
    }

    fn port(&mut self, side: Side, after: &'static str) -> Result<Prim, FilterError> {
        let (col, t) = self.next();
        match t {
            Tok::Word(w) => match w.parse::<u16>() {
                Ok(p) => Ok(Prim::Port(side, p)),
                Err(_) => Err(FilterError {
                    column: col,
                    kind: FilterErrorKind::ExpectedPort { after },
                }),
            },
            _ => Err(FilterError {
                column: col,
                kind: FilterErrorKind::ExpectedPort { after },
            }),
        }
    }
}

/// The headers a filter looks at, read in place from a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Summary {
    dir: Direction,
    arp: bool,
    /// IPv4 protocol number, when the frame is IPv4.
    ip_proto: Option<u8>,
    /// IPv4 source/destination or ARP sender/target.
    addrs: Option<(Ipv4Addr, Ipv4Addr)>,
    ports: Option<(u16, u16)>,
}

impl Summary {
    fn of(dir: Direction, frame: &[u8]) -> Summary {
        let mut s = Summary {
            dir,
            arp: false,
            ip_proto: None,
            addrs: None,
            ports: None,
        };
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return s;
        };
        match eth.ethertype() {
            EtherType::Arp => {
                s.arp = true;
                if let Ok(repr) =
                    ArpPacket::new_checked(eth.payload()).and_then(|p| ArpRepr::parse(&p))
                {
                    s.addrs = Some((repr.source_protocol_addr, repr.target_protocol_addr));
                }
            }
            EtherType::Ipv4 => {
                let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                    return s;
                };
                let proto = ip.protocol();
                s.ip_proto = Some(u8::from(proto));
                s.addrs = Some((ip.src_addr(), ip.dst_addr()));
                let p = ip.payload();
                if ip.frag_offset() == 0
                    && matches!(proto, IpProtocol::Tcp | IpProtocol::Udp)
                    && p.len() >= 4
                {
                    s.ports = Some((
                        u16::from_be_bytes([p[0], p[1]]),
                        u16::from_be_bytes([p[2], p[3]]),
                    ));
                }
            }
            _ => {}
        }
        s
    }
}

fn side_match<T: PartialEq>(pair: Option<(T, T)>, side: Side, want: T) -> bool {
    match (pair, side) {
        (None, _) => false,
        (Some((a, _)), Side::Src) => a == want,
        (Some((_, b)), Side::Dst) => b == want,
        (Some((a, b)), Side::Either) => a == want || b == want,
    }
}

impl Filter {
    /// Parses an expression (see the module docs for the grammar).
    pub fn parse(src: &str) -> Result<Filter, FilterError> {
        let mut p = Parser {
            toks: tokenize(src),
            at: 0,
            nodes: Vec::new(),
        };
        let root = p.or()?;
        let (col, t) = p.next();
        if t != Tok::End {
            let kind = if t == Tok::Close {
                FilterErrorKind::ExpectedExpression {
                    found: "an unmatched ')'".into(),
                }
            } else {
                FilterErrorKind::ExpectedExpression {
                    found: t.describe(),
                }
            };
            return Err(FilterError { column: col, kind });
        }
        Ok(Filter {
            nodes: p.nodes,
            root,
        })
    }

    /// Whether the frame (an Ethernet frame going `dir`) passes. Never allocates or panics.
    pub fn matches(&self, dir: Direction, frame: &[u8]) -> bool {
        let s = Summary::of(dir, frame);
        self.eval(self.root, &s)
    }

    fn eval(&self, node: usize, s: &Summary) -> bool {
        match self.nodes[node] {
            Node::And(a, b) => self.eval(a, s) && self.eval(b, s),
            Node::Or(a, b) => self.eval(a, s) || self.eval(b, s),
            Node::Not(a) => !self.eval(a, s),
            Node::Prim(p) => match p {
                Prim::Proto(Proto::Arp) => s.arp,
                Prim::Proto(Proto::Ip) => s.ip_proto.is_some(),
                Prim::Proto(Proto::Icmp) => s.ip_proto == Some(1),
                Prim::Proto(Proto::Tcp) => s.ip_proto == Some(6),
                Prim::Proto(Proto::Udp) => s.ip_proto == Some(17),
                Prim::Dir(d) => s.dir == d,
                Prim::Host(side, a) => side_match(s.addrs, side, a),
                Prim::Port(side, p) => side_match(s.ports, side, p),
            },
        }
    }
}

impl core::str::FromStr for Filter {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Filter, FilterError> {
        Filter::parse(s)
    }
}

#[cfg(test)]
mod tests;
