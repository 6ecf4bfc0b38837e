//! The hostile tests' packet tool: an AF_PACKET socket on the kernel side of the lab's tap
//! (opened inside the lab namespace, so nothing it sends can leave it), frame builders that
//! can get every field wrong on purpose, and a seeded generator of random and mutated frames.
#![allow(dead_code)]

use std::io;
use std::net::Ipv4Addr;
use std::time::Instant;

use engine::sys::netns::run_in_netns;

/// An AF_PACKET socket bound to one interface of a lab namespace: writes go to tapir (the tap's
/// reader), reads see both directions.
pub struct RawSocket {
    fd: i32,
}

impl RawSocket {
    pub fn open(ns: &str, ifname: &str) -> io::Result<RawSocket> {
        let ifname = ifname.to_string();
        let fd = run_in_netns(ns, move || open_bound(&ifname))
            .map_err(|e| io::Error::other(e.to_string()))??;
        Ok(RawSocket { fd })
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: fd is an open socket owned by self; frame is valid for frame.len() bytes.
        let n = unsafe { libc::send(self.fd, frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Grows the socket's receive buffer past the system's limit (SO_RCVBUFFORCE, root), so
    /// that a capture keeps up with bursts of 64 KiB offloaded frames.
    pub fn set_recv_buffer(&self, bytes: usize) -> io::Result<()> {
        let v = libc::c_int::try_from(bytes).map_err(io::Error::other)?;
        // SAFETY: fd is open; the pointer and length describe `v`.
        let rc = unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Every frame read from now on starts with a 10-byte `virtio_net_hdr` (PACKET_VNET_HDR)
    /// that says how an offloaded frame is to be cut: its `gso_size` is the payload of each
    /// segment.
    pub fn enable_vnet_header(&self) -> io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: fd is open; the pointer and length describe `on`.
        let rc = unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_PACKET,
                libc::PACKET_VNET_HDR,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One frame, or None after the socket's 50 ms receive timeout.
    pub fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        // SAFETY: fd is open; buf is valid for buf.len() bytes.
        let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return None;
        }
        buf.truncate(n as usize);
        Some(buf)
    }

    /// Frames read until `deadline` for which `keep` holds.
    pub fn collect_until(&self, deadline: Instant, keep: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while Instant::now() < deadline {
            if let Some(f) = self.recv() {
                if keep(&f) {
                    out.push(f);
                }
            }
        }
        out
    }
}

impl Drop for RawSocket {
    fn drop(&mut self) {
        // SAFETY: fd is open and closed exactly once, here.
        unsafe { libc::close(self.fd) };
    }
}

fn open_bound(ifname: &str) -> io::Result<i32> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let name = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
    // SAFETY: name is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    // SAFETY: sockaddr_ll is plain old data; zeroed is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index as i32;
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 50_000,
    };
    // SAFETY: fd is open; the pointers and lengths describe live values of the right types.
    let ok = index != 0
        && unsafe {
            libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            ) == 0
                && libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as u32,
                ) == 0
        };
    if !ok {
        let e = io::Error::last_os_error();
        // SAFETY: fd is open and not used after this.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    Ok(fd)
}

/// The MAC of `ifname` inside namespace `ns` (`ip -n NS link show`: /sys is the host's view).
pub fn mac_of(ns: &str, ifname: &str) -> [u8; 6] {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-o", "link", "show", ifname])
        .output()
        .expect("ip link show");
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .split("link/ether ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("link/ether in ip link output");
    let mut mac = [0u8; 6];
    for (m, part) in mac.iter_mut().zip(hex.split(':')) {
        *m = u8::from_str_radix(part, 16).expect("MAC byte");
    }
    mac
}

/// RFC 1071 checksum of `data` with an initial sum.
pub fn checksum(init: u32, data: &[u8]) -> u16 {
    let mut sum = init;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(proto)
        + len as u32
}

/// An Ethernet frame.
pub fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// IPv4 header fields a test may set (or get wrong).
#[derive(Clone, Copy, Debug)]
pub struct Ip {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub ident: u16,
    pub more_frags: bool,
    pub dont_frag: bool,
    /// In bytes (a multiple of 8).
    pub frag_offset: usize,
    pub ttl: u8,
}

impl Ip {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Ip {
        Ip {
            src,
            dst,
            proto,
            ident: 1,
            more_frags: false,
            dont_frag: false,
            frag_offset: 0,
            ttl: 64,
        }
    }

    /// A 20-byte header and `payload`, checksum filled.
    pub fn packet(&self, payload: &[u8]) -> Vec<u8> {
        let total = 20 + payload.len();
        let mut h = vec![0u8; 20];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        h[4..6].copy_from_slice(&self.ident.to_be_bytes());
        let flags = (u16::from(self.dont_frag) << 14) | (u16::from(self.more_frags) << 13);
        let off = flags | ((self.frag_offset / 8) as u16 & 0x1fff);
        h[6..8].copy_from_slice(&off.to_be_bytes());
        h[8] = self.ttl;
        h[9] = self.proto;
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
        let c = checksum(0, &h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }
}

/// A TCP segment (header with `options`, then `payload`), checksum filled.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let opt_len = options.len().div_ceil(4) * 4;
    let hl = 20 + opt_len;
    let mut s = vec![0u8; hl];
    s[0..2].copy_from_slice(&sport.to_be_bytes());
    s[2..4].copy_from_slice(&dport.to_be_bytes());
    s[4..8].copy_from_slice(&seq.to_be_bytes());
    s[8..12].copy_from_slice(&ack.to_be_bytes());
    s[12] = ((hl / 4) as u8) << 4;
    s[13] = flags;
    s[14..16].copy_from_slice(&window.to_be_bytes());
    s[20..20 + options.len()].copy_from_slice(options);
    s.extend_from_slice(payload);
    let c = checksum(pseudo(src, dst, 6, s.len()), &s);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

/// A UDP datagram, checksum filled.
pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; 8];
    d[0..2].copy_from_slice(&sport.to_be_bytes());
    d[2..4].copy_from_slice(&dport.to_be_bytes());
    d[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    d.extend_from_slice(payload);
    let mut c = checksum(pseudo(src, dst, 17, d.len()), &d);
    if c == 0 {
        c = 0xffff;
    }
    d[6..8].copy_from_slice(&c.to_be_bytes());
    d
}

/// The TCP fields of an Ethernet/IPv4/TCP frame: (src, dst, sport, dport, seq, ack, flags,
/// payload length).
#[derive(Debug, Clone, Copy)]
pub struct TcpSeen {
    pub src_mac: [u8; 6],
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub len: usize,
}

pub fn parse_tcp(f: &[u8]) -> Option<TcpSeen> {
    if f.get(12..14)? != [0x08, 0x00] || *f.get(23)? != 6 {
        return None;
    }
    let ihl = usize::from(f.get(14)? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*f.get(16)?, *f.get(17)?]));
    let t = f.get(14 + ihl..14 + total)?;
    let doff = usize::from(t.get(12)? >> 4) * 4;
    let be32 = |o: usize| Some(u32::from_be_bytes(t.get(o..o + 4)?.try_into().ok()?));
    let ip = |o: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = f.get(o..o + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    Some(TcpSeen {
        src_mac: f.get(6..12)?.try_into().ok()?,
        src: ip(26)?,
        dst: ip(30)?,
        sport: u16::from_be_bytes([*t.first()?, *t.get(1)?]),
        dport: u16::from_be_bytes([*t.get(2)?, *t.get(3)?]),
        seq: be32(4)?,
        ack: be32(8)?,
        flags: *t.get(13)?,
        len: t.len().checked_sub(doff)?,
    })
}

/// xorshift64*: the frame generator's seeded randomness.
pub struct Rand(u64);

impl Rand {
    pub fn new(seed: u64) -> Rand {
        Rand(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Where the generated frames go and what they may claim to be.
pub struct Target {
    pub node_mac: [u8; 6],
    pub node_ip: Ipv4Addr,
    pub host_mac: [u8; 6],
    pub host_ip: Ipv4Addr,
    /// A port that must not be hit by random segments (the live transfer's kernel port).
    pub avoid_port: u16,
}

/// A random source: the kernel's address, a lab neighbour, tapir's own, or anywhere.
fn source(r: &mut Rand, t: &Target) -> Ipv4Addr {
    match r.below(4) {
        0 => t.host_ip,
        1 => Ipv4Addr::new(10, 7, 0, 3 + r.below(250) as u8),
        2 => t.node_ip,
        _ => Ipv4Addr::from(r.next() as u32),
    }
}

/// Frame `i` of a hostile stream: random bytes, truncations, bad lengths, bad header lengths,
/// bad checksums, bad TCP options, every TCP flag combination (i cycles through all 256),
/// UDP with lying lengths, random ICMP, ARP garbage (never claiming the kernel's address, which
/// RFC 826 would let any request rewrite), IPv4 options and fragments.
pub fn hostile_frame(i: usize, r: &mut Rand, t: &Target) -> Vec<u8> {
    let src = source(r, t);
    let dst = t.node_ip;
    let mut sport = r.below(65536) as u16;
    if sport == t.avoid_port {
        sport ^= 1;
    }
    let dport = [7, 9, 13, 80, 1, r.below(65536) as u16][r.below(6) as usize];
    let good_tcp = |r: &mut Rand, opts: &[u8], payload: &[u8]| {
        let seg = tcp(
            src,
            dst,
            sport,
            dport,
            r.next() as u32,
            r.next() as u32,
            ((i / 12) % 256) as u8,
            r.next() as u16,
            opts,
            payload,
        );
        Ip::new(src, dst, 6).packet(&seg)
    };
    let ip = match i % 12 {
        // Every flag combination, plain.
        0 => good_tcp(r, &[], &[]),
        // Bad options: random bytes in the option area.
        1 => {
            let n = r.below(40) as usize;
            let opts = r.bytes(n);
            let n = r.below(64) as usize;
            let body = r.bytes(n);
            good_tcp(r, &opts, &body)
        }
        // Truncated somewhere.
        2 => {
            let mut p = good_tcp(r, &[2, 4, 5, 180], b"data");
            let cut = r.below(p.len() as u64) as usize;
            p.truncate(cut);
            p
        }
        // Lying IPv4 total length.
        3 => {
            let body = r.bytes(20);
            let mut p = good_tcp(r, &[], &body);
            let lie = r.next() as u16;
            p[2..4].copy_from_slice(&lie.to_be_bytes());
            p
        }
        // Bad version / header length (checksum refilled so the length is what is judged).
        4 => {
            let mut p = good_tcp(r, &[], &[]);
            p[0] = r.next() as u8;
            p[10..12].copy_from_slice(&[0, 0]);
            let c = checksum(0, &p[..20]);
            p[10..12].copy_from_slice(&c.to_be_bytes());
            p
        }
        // A flipped bit anywhere (bad checksums mostly).
        5 => {
            let body = r.bytes(32);
            let mut p = good_tcp(r, &[1, 1, 8, 10], &body);
            let at = r.below(p.len() as u64) as usize;
            p[at] ^= 1 << r.below(8);
            p
        }
        // UDP with a lying length field.
        6 => {
            let n = r.below(100) as usize;
            let body = r.bytes(n);
            let mut d = udp(src, dst, sport, dport, &body);
            let lie = r.next() as u16;
            d[4..6].copy_from_slice(&lie.to_be_bytes());
            Ip::new(src, dst, 17).packet(&d)
        }
        // Random ICMP type, code and body.
        7 => {
            let n = 4 + r.below(80) as usize;
            let mut m = r.bytes(n);
            m[2] = 0;
            m[3] = 0;
            let c = checksum(0, &m);
            m[2..4].copy_from_slice(&c.to_be_bytes());
            Ip::new(src, dst, 1).packet(&m)
        }
        // A random IPv4 protocol number with a random body.
        8 => {
            let proto = r.next() as u8;
            let n = r.below(64) as usize;
            Ip::new(src, dst, proto).packet(&r.bytes(n))
        }
        // Fragments with random offsets and flags.
        9 => {
            let mut ip = Ip::new(src, dst, [1, 6, 17][r.below(3) as usize]);
            ip.ident = r.next() as u16;
            ip.more_frags = r.below(2) == 0;
            ip.frag_offset = (r.below(8192) * 8) as usize;
            let n = 8 * r.below(30) as usize;
            ip.packet(&r.bytes(n))
        }
        // ARP garbage (no IP header).
        10 => {
            let mut a = r.bytes(28);
            if r.below(2) == 0 {
                a[0..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
            }
            let sender = Ipv4Addr::new(10, 7, 0, 2 + r.below(253) as u8);
            a[14..18].copy_from_slice(&sender.octets());
            let dst_mac = if r.below(2) == 0 {
                [0xff; 6]
            } else {
                t.node_mac
            };
            let len = 28.min(r.below(40) as usize);
            return eth(dst_mac, t.host_mac, 0x0806, &a[..len]);
        }
        // Pure noise, any EtherType.
        _ => {
            let n = r.below(1500) as usize;
            let body = r.bytes(n);
            return eth(t.node_mac, t.host_mac, r.next() as u16, &body);
        }
    };
    eth(t.node_mac, t.host_mac, 0x0800, &ip)
}
