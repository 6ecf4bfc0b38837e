//! A capture on one interface of a lab namespace, from a thread (an AF_PACKET socket: the
//! hostile tests' [`super::raw::RawSocket`]), and the options of captured TCP segments.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::raw::RawSocket;

/// The capture socket's receive buffer: a few hundred 64 KiB frames, so that a capture thread
/// descheduled for a moment during a bulk transfer misses nothing.
const CAPTURE_BUFFER: usize = 32 << 20;
/// `struct virtio_net_hdr`: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
/// (native endian).
const VNET_HDR: usize = 10;

/// Frames seen on one interface (both directions) until [`Capture::stop`], each kept as `map`
/// makes it (None: not kept).
pub struct Capture<T> {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<T>>,
}

impl Capture<Vec<u8>> {
    /// Keeps whole frames.
    pub fn open(ns: &str, ifname: &str) -> Capture<Vec<u8>> {
        Capture::open_map(ns, ifname, |f| Some(f.to_vec()))
    }
}

impl<T: Send + 'static> Capture<T> {
    /// The socket is open (inside `ns`) when this returns: nothing sent after it is missed
    /// unless the socket's buffer overflows.
    pub fn open_map(
        ns: &str,
        ifname: &str,
        mut map: impl FnMut(&[u8]) -> Option<T> + Send + 'static,
    ) -> Capture<T> {
        Capture::open_inner(ns, ifname, false, move |f| map(f))
    }

    /// Like [`Capture::open_map`], `map` also given each frame's GSO size: the payload of each
    /// segment an offloaded frame stands for (0: the frame is one segment).
    pub fn open_map_gso(
        ns: &str,
        ifname: &str,
        mut map: impl FnMut(u16, &[u8]) -> Option<T> + Send + 'static,
    ) -> Capture<T> {
        Capture::open_inner(ns, ifname, true, move |f| {
            let hdr = f.get(..VNET_HDR)?;
            map(u16::from_le_bytes([hdr[4], hdr[5]]), &f[VNET_HDR..])
        })
    }

    fn open_inner(
        ns: &str,
        ifname: &str,
        vnet: bool,
        mut map: impl FnMut(&[u8]) -> Option<T> + Send + 'static,
    ) -> Capture<T> {
        let sock = RawSocket::open(ns, ifname).expect("AF_PACKET socket in the lab");
        sock.set_recv_buffer(CAPTURE_BUFFER)
            .expect("capture buffer");
        if vnet {
            sock.enable_vnet_header().expect("PACKET_VNET_HDR");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut kept = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                if let Some(f) = sock.recv() {
                    kept.extend(map(&f));
                }
            }
            kept
        });
        Capture { stop, thread }
    }

    /// What was kept; frames still in flight have 200 ms to arrive.
    pub fn stop(self) -> Vec<T> {
        std::thread::sleep(Duration::from_millis(200));
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("capture thread")
    }
}

/// The flags and SYN-relevant options of a TCP segment.
#[derive(Debug, Default, Clone)]
pub struct SynOptions {
    pub syn: bool,
    pub ack: bool,
    /// ECN-Echo and Congestion Window Reduced (RFC 3168).
    pub ece: bool,
    pub cwr: bool,
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamps: bool,
}

/// The flags and options of a TCP segment in an Ethernet/IPv4 frame.
pub fn tcp_options(f: &[u8]) -> Option<SynOptions> {
    if f.len() < 54 || f[12..14] != [0x08, 0x00] || f[23] != 6 {
        return None;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let tcp = f.get(14 + ihl..)?;
    let doff = usize::from(tcp.get(12)? >> 4) * 4;
    let flags = *tcp.get(13)?;
    let mut o = SynOptions {
        syn: flags & 0x02 != 0,
        ack: flags & 0x10 != 0,
        ece: flags & 0x40 != 0,
        cwr: flags & 0x80 != 0,
        ..SynOptions::default()
    };
    let mut opts = tcp.get(20..doff)?;
    while let Some(&kind) = opts.first() {
        match kind {
            0 => break,
            1 => {
                opts = &opts[1..];
                continue;
            }
            _ => {}
        }
        let len = usize::from(*opts.get(1)?);
        let body = opts.get(2..len.max(2))?;
        match (kind, body.len()) {
            (2, 2) => o.mss = Some(u16::from_be_bytes([body[0], body[1]])),
            (3, 1) => o.window_scale = Some(body[0]),
            (4, 0) => o.sack_permitted = true,
            (8, 8) => o.timestamps = true,
            _ => {}
        }
        opts = opts.get(len.max(2)..)?;
    }
    Some(o)
}
