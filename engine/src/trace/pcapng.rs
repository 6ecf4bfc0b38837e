//! pcapng (draft-ietf-opsawg-pcapng): a writer for captures that Wireshark and tshark open,
//! and a reader for `tapir trace FILE`.
//!
//! A capture is one section: a Section Header Block, one Interface Description Block per tap
//! queue (link type Ethernet, `if_name` "tapir-qN", `if_tsresol` microseconds), then one
//! Enhanced Packet Block per frame, whose `epb_flags` say inbound or outbound and whose
//! `opt_comment`s carry the stack events the frame caused ("dropped: REASON" for a dropped
//! frame). When the capture closes, an Interface Statistics Block per interface says how many
//! frames the queue saw (`isb_ifrecv`), how many passed the filter (`isb_filteraccept`) and
//! how many the trace ring had no room for (`isb_ifdrop`). Everything is written in the host's
//! byte order, as the format allows.

use std::io::{self, Write};

use super::Direction;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const SPB: u32 = 0x0000_0003;
const ISB: u32 = 0x0000_0005;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const LINKTYPE_ETHERNET: u16 = 1;

const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const OPT_SHB_USERAPPL: u16 = 4;
const OPT_IF_NAME: u16 = 2;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_EPB_FLAGS: u16 = 2;
const OPT_ISB_IFRECV: u16 = 4;
const OPT_ISB_IFDROP: u16 = 5;
const OPT_ISB_FILTERACCEPT: u16 = 6;

/// `epb_flags` bits 0-1: direction.
const FLAG_INBOUND: u32 = 0b01;
const FLAG_OUTBOUND: u32 = 0b10;

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// Appends an option (code, length, value, padding) to a block body.
fn put_option(body: &mut Vec<u8>, code: u16, value: &[u8]) {
    // An option's length field is 16 bits; longer values are cut (comments only).
    let value = &value[..value.len().min(0xfff0)];
    body.extend_from_slice(&code.to_ne_bytes());
    body.extend_from_slice(&(value.len() as u16).to_ne_bytes());
    body.extend_from_slice(value);
    body.resize(pad4(body.len()), 0);
}

fn end_options(body: &mut Vec<u8>) {
    body.extend_from_slice(&OPT_END.to_ne_bytes());
    body.extend_from_slice(&0u16.to_ne_bytes());
}

/// One frame to write.
#[derive(Debug, Clone, Copy)]
pub struct EpbRecord<'a> {
    /// The interface (tap queue) index.
    pub interface: u32,
    /// Microseconds since the Unix epoch.
    pub ts_micros: u64,
    pub dir: Option<Direction>,
    /// The captured bytes (possibly cut to the snap length).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub orig_len: usize,
}

/// One interface's counters, written as an Interface Statistics Block when a capture closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsbRecord {
    pub interface: u32,
    /// Microseconds since the Unix epoch: when the counts were taken.
    pub ts_micros: u64,
    /// Frames the interface (tap queue) saw: `isb_ifrecv`.
    pub ifrecv: u64,
    /// Frames lost before they were written (the trace ring was full): `isb_ifdrop`.
    pub ifdrop: u64,
    /// Frames that passed the capture filter: `isb_filteraccept`.
    pub filter_accept: u64,
}

/// Writes a pcapng section. Reuses one scratch buffer, so a steady stream of packets does not
/// allocate.
pub struct PcapngWriter<W: Write> {
    out: W,
    interfaces: u32,
    scratch: Vec<u8>,
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the section header and one interface per queue (`tapir-q0`, `tapir-q1`, ...).
    pub fn new(out: W, queues: u16, snaplen: u32) -> io::Result<PcapngWriter<W>> {
        let mut w = PcapngWriter {
            out,
            interfaces: u32::from(queues.max(1)),
            scratch: Vec::with_capacity(2048),
        };
        let mut body = Vec::new();
        body.extend_from_slice(&BYTE_ORDER_MAGIC.to_ne_bytes());
        body.extend_from_slice(&1u16.to_ne_bytes());
        body.extend_from_slice(&0u16.to_ne_bytes());
        body.extend_from_slice(&u64::MAX.to_ne_bytes()); // section length: unknown
        put_option(&mut body, OPT_SHB_USERAPPL, b"tapir");
        end_options(&mut body);
        w.block(SHB, &body)?;
        for q in 0..w.interfaces {
            let mut body = Vec::new();
            body.extend_from_slice(&LINKTYPE_ETHERNET.to_ne_bytes());
            body.extend_from_slice(&0u16.to_ne_bytes());
            body.extend_from_slice(&snaplen.to_ne_bytes());
            put_option(&mut body, OPT_IF_NAME, format!("tapir-q{q}").as_bytes());
            put_option(&mut body, OPT_IF_TSRESOL, &[6]);
            end_options(&mut body);
            w.block(IDB, &body)?;
        }
        Ok(w)
    }

    fn block(&mut self, ty: u32, body: &[u8]) -> io::Result<()> {
        let total = (12 + body.len()) as u32;
        self.out.write_all(&ty.to_ne_bytes())?;
        self.out.write_all(&total.to_ne_bytes())?;
        self.out.write_all(body)?;
        self.out.write_all(&total.to_ne_bytes())
    }

    /// Writes one Enhanced Packet Block with a comment option per entry of `comments`. A frame
    /// for an interface this section does not have is written on interface 0.
    pub fn write_packet(&mut self, rec: &EpbRecord<'_>, comments: &[&str]) -> io::Result<()> {
        let mut body = std::mem::take(&mut self.scratch);
        body.clear();
        let iface = if rec.interface < self.interfaces {
            rec.interface
        } else {
            0
        };
        body.extend_from_slice(&iface.to_ne_bytes());
        body.extend_from_slice(&((rec.ts_micros >> 32) as u32).to_ne_bytes());
        body.extend_from_slice(&(rec.ts_micros as u32).to_ne_bytes());
        body.extend_from_slice(&(rec.data.len() as u32).to_ne_bytes());
        body.extend_from_slice(&(rec.orig_len.max(rec.data.len()) as u32).to_ne_bytes());
        body.extend_from_slice(rec.data);
        body.resize(pad4(body.len()), 0);
        for c in comments {
            put_option(&mut body, OPT_COMMENT, c.as_bytes());
        }
        if let Some(dir) = rec.dir {
            let flags = match dir {
                Direction::In => FLAG_INBOUND,
                Direction::Out => FLAG_OUTBOUND,
            };
            put_option(&mut body, OPT_EPB_FLAGS, &flags.to_ne_bytes());
        }
        if !comments.is_empty() || rec.dir.is_some() {
            end_options(&mut body);
        }
        let r = self.block(EPB, &body);
        self.scratch = body;
        r
    }

    /// Writes an Interface Statistics Block.
    pub fn write_stats(&mut self, isb: &IsbRecord) -> io::Result<()> {
        let mut body = Vec::with_capacity(64);
        body.extend_from_slice(&isb.interface.to_ne_bytes());
        body.extend_from_slice(&((isb.ts_micros >> 32) as u32).to_ne_bytes());
        body.extend_from_slice(&(isb.ts_micros as u32).to_ne_bytes());
        put_option(&mut body, OPT_ISB_IFRECV, &isb.ifrecv.to_ne_bytes());
        put_option(&mut body, OPT_ISB_IFDROP, &isb.ifdrop.to_ne_bytes());
        put_option(
            &mut body,
            OPT_ISB_FILTERACCEPT,
            &isb.filter_accept.to_ne_bytes(),
        );
        end_options(&mut body);
        self.block(ISB, &body)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// An interface of a capture being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub link_type: u16,
    pub name: Option<String>,
    /// Timestamp units per second.
    units_per_sec: u64,
}

/// One packet read from a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub interface: u32,
    /// The interface's `if_name`, when it has one.
    pub if_name: Option<String>,
    pub link_type: u16,
    /// Microseconds since the Unix epoch.
    pub ts_micros: u64,
    pub dir: Option<Direction>,
    pub data: Vec<u8>,
    pub orig_len: u32,
    pub comments: Vec<String>,
}

impl Packet {
    /// The queue index: from an `if_name` of the form `tapir-qN`, else the interface index.
    pub fn queue(&self) -> u16 {
        self.if_name
            .as_deref()
            .and_then(|n| n.strip_prefix("tapir-q"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(self.interface as u16)
    }
}

/// An Interface Statistics Block read from a capture (counters it lacks are `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceStats {
    pub interface: u32,
    pub ts_micros: u64,
    pub ifrecv: Option<u64>,
    pub ifdrop: Option<u64>,
    pub filter_accept: Option<u64>,
}

/// Everything read from a capture: its packets and its interface statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    pub packets: Vec<Packet>,
    pub stats: Vec<InterfaceStats>,
}

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PcapngError {
    #[error("not a pcapng file (it does not start with a Section Header Block)")]
    NotPcapng,
    #[error("truncated block at byte {offset}")]
    Truncated { offset: usize },
    #[error("bad block length at byte {offset}")]
    BadLength { offset: usize },
    #[error(
        "packet at byte {offset} names interface {interface}, which the section does not describe"
    )]
    UnknownInterface { offset: usize, interface: u32 },
}

#[derive(Clone, Copy)]
struct Endian {
    big: bool,
}

impl Endian {
    fn u16(self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        if self.big {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }
    }
    fn u32(self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if self.big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }
}

/// Options of a block body, as (code, value) pairs; stops at the end option or a bad length.
fn options(e: Endian, mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    core::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let code = e.u16(b);
        let len = usize::from(e.u16(&b[2..]));
        if code == OPT_END || 4 + len > b.len() {
            return None;
        }
        let value = &b[4..4 + len];
        b = &b[(4 + pad4(len)).min(b.len())..];
        Some((code, value))
    })
}

/// Reads every packet of every section of a pcapng capture. Unknown block types are skipped.
pub fn read(bytes: &[u8]) -> Result<Vec<Packet>, PcapngError> {
    read_capture(bytes).map(|c| c.packets)
}

/// Reads every packet and every Interface Statistics Block of every section of a capture.
pub fn read_capture(bytes: &[u8]) -> Result<Capture, PcapngError> {
    if bytes.len() < 12 || bytes[..4] != SHB.to_le_bytes() {
        return Err(PcapngError::NotPcapng);
    }
    let mut packets = Vec::new();
    let mut stats = Vec::new();
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut e = Endian { big: false };
    let mut at = 0;
    while at < bytes.len() {
        let head = bytes
            .get(at..at + 12)
            .ok_or(PcapngError::Truncated { offset: at })?;
        // The SHB's type reads the same in both orders; its magic fixes the order.
        if head[..4] == SHB.to_le_bytes() {
            let magic = &head[8..12];
            e = if magic == BYTE_ORDER_MAGIC.to_le_bytes() {
                Endian { big: false }
            } else if magic == BYTE_ORDER_MAGIC.to_be_bytes() {
                Endian { big: true }
            } else {
                return Err(PcapngError::NotPcapng);
            };
            interfaces.clear();
        }
        let ty = e.u32(head);
        let len = e.u32(&head[4..]) as usize;
        if len < 12 || len & 3 != 0 {
            return Err(PcapngError::BadLength { offset: at });
        }
        let block = bytes
            .get(at..at + len)
            .ok_or(PcapngError::Truncated { offset: at })?;
        let body = &block[8..len - 4];
        match ty {
            IDB if body.len() >= 8 => {
                let mut iface = Interface {
                    link_type: e.u16(body),
                    name: None,
                    units_per_sec: 1_000_000,
                };
                for (code, v) in options(e, &body[8..]) {
                    match code {
                        OPT_IF_NAME => iface.name = Some(String::from_utf8_lossy(v).into_owned()),
                        OPT_IF_TSRESOL if !v.is_empty() => {
                            let r = u32::from(v[0] & 0x7f);
                            iface.units_per_sec = if v[0] & 0x80 != 0 {
                                1u64.checked_shl(r).unwrap_or(1)
                            } else {
                                10u64.checked_pow(r).unwrap_or(1)
                            }
                            .max(1);
                        }
                        _ => {}
                    }
                }
                interfaces.push(iface);
            }
            EPB if body.len() >= 20 => {
                let id = e.u32(body);
                let iface = interfaces
                    .get(id as usize)
                    .ok_or(PcapngError::UnknownInterface {
                        offset: at,
                        interface: id,
                    })?;
                let ts = (u64::from(e.u32(&body[4..])) << 32) | u64::from(e.u32(&body[8..]));
                let cap = e.u32(&body[12..]) as usize;
                let orig_len = e.u32(&body[16..]);
                let data = body
                    .get(20..20 + cap)
                    .ok_or(PcapngError::BadLength { offset: at })?;
                let mut p = Packet {
                    interface: id,
                    if_name: iface.name.clone(),
                    link_type: iface.link_type,
                    ts_micros: (u128::from(ts) * 1_000_000 / u128::from(iface.units_per_sec))
                        as u64,
                    dir: None,
                    data: data.to_vec(),
                    orig_len,
                    comments: Vec::new(),
                };
                let opts = body.get(20 + pad4(cap)..).unwrap_or(&[]);
                for (code, v) in options(e, opts) {
                    match code {
                        OPT_COMMENT => p.comments.push(String::from_utf8_lossy(v).into_owned()),
                        OPT_EPB_FLAGS if v.len() == 4 => {
                            p.dir = match e.u32(v) & 0b11 {
                                FLAG_INBOUND => Some(Direction::In),
                                FLAG_OUTBOUND => Some(Direction::Out),
                                _ => None,
                            }
                        }
                        _ => {}
                    }
                }
                packets.push(p);
            }
            SPB if body.len() >= 4 => {
                let iface = interfaces.first().ok_or(PcapngError::UnknownInterface {
                    offset: at,
                    interface: 0,
                })?;
                let orig_len = e.u32(body);
                let data = &body[4..];
                let data = &data[..(orig_len as usize).min(data.len())];
                packets.push(Packet {
                    interface: 0,
                    if_name: iface.name.clone(),
                    link_type: iface.link_type,
                    ts_micros: 0,
                    dir: None,
                    data: data.to_vec(),
                    orig_len,
                    comments: Vec::new(),
                });
            }
            ISB if body.len() >= 12 => {
                let interface = e.u32(body);
                let iface =
                    interfaces
                        .get(interface as usize)
                        .ok_or(PcapngError::UnknownInterface {
                            offset: at,
                            interface,
                        })?;
                let ts = (u64::from(e.u32(&body[4..])) << 32) | u64::from(e.u32(&body[8..]));
                let mut st = InterfaceStats {
                    interface,
                    ts_micros: (u128::from(ts) * 1_000_000 / u128::from(iface.units_per_sec))
                        as u64,
                    ifrecv: None,
                    ifdrop: None,
                    filter_accept: None,
                };
                for (code, v) in options(e, &body[12..]) {
                    let Ok(v8) = <[u8; 8]>::try_from(v) else {
                        continue;
                    };
                    let n = if e.big {
                        u64::from_be_bytes(v8)
                    } else {
                        u64::from_le_bytes(v8)
                    };
                    match code {
                        OPT_ISB_IFRECV => st.ifrecv = Some(n),
                        OPT_ISB_IFDROP => st.ifdrop = Some(n),
                        OPT_ISB_FILTERACCEPT => st.filter_accept = Some(n),
                        _ => {}
                    }
                }
                stats.push(st);
            }
            _ => {}
        }
        at += len;
    }
    Ok(Capture { packets, stats })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips() {
        let mut w = PcapngWriter::new(Vec::new(), 2, 65535).unwrap();
        let frame: Vec<u8> = (0..61u8).collect();
        w.write_packet(
            &EpbRecord {
                interface: 1,
                ts_micros: 1_700_000_000_123_456,
                dir: Some(Direction::Out),
                data: &frame,
                orig_len: 61,
            },
            &["dropped: tx_too_big", "second"],
        )
        .unwrap();
        w.write_packet(
            &EpbRecord {
                interface: 0,
                ts_micros: 5,
                dir: Some(Direction::In),
                data: &frame[..3],
                orig_len: 61,
            },
            &[],
        )
        .unwrap();
        let bytes = w.into_inner();
        assert_eq!(bytes.len() % 4, 0);
        let p = read(&bytes).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].queue(), 1);
        assert_eq!(p[0].if_name.as_deref(), Some("tapir-q1"));
        assert_eq!(p[0].ts_micros, 1_700_000_000_123_456);
        assert_eq!(p[0].dir, Some(Direction::Out));
        assert_eq!(p[0].data, frame);
        assert_eq!(p[0].comments, vec!["dropped: tx_too_big", "second"]);
        assert_eq!(p[1].queue(), 0);
        assert_eq!(p[1].dir, Some(Direction::In));
        assert_eq!(p[1].data, &frame[..3]);
        assert_eq!(p[1].orig_len, 61);
        assert!(p[1].comments.is_empty());
    }

    #[test]
    fn reader_never_panics_on_cut_or_garbled_files() {
        let mut w = PcapngWriter::new(Vec::new(), 1, 65535).unwrap();
        w.write_packet(
            &EpbRecord {
                interface: 0,
                ts_micros: 1,
                dir: Some(Direction::In),
                data: &[1, 2, 3, 4, 5],
                orig_len: 5,
            },
            &["c"],
        )
        .unwrap();
        let bytes = w.into_inner();
        for n in 0..bytes.len() {
            let _ = read(&bytes[..n]);
        }
        let mut seed = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut b = bytes.clone();
            for _ in 0..3 {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let i = (seed >> 8) as usize % b.len();
                b[i] = (seed >> 24) as u8;
            }
            let _ = read(&b);
        }
        assert!(matches!(read(b"hello world!"), Err(PcapngError::NotPcapng)));
    }
}
