//! The iperf3 control protocol (esnet/iperf `src/iperf.h`, `src/iperf_api.c`), as far as TCP and
//! UDP tests need it.
//!
//! A test runs over one control connection to port 5201:
//! 1. the client sends a 37-byte cookie (36 printable characters and a NUL);
//! 2. the server sends one signed state byte at a time: `PARAM_EXCHANGE`, after which the client
//!    sends its parameters as JSON; `CREATE_STREAMS`, after which the client opens the data
//!    connections, each starting with the same cookie; `TEST_START`, `TEST_RUNNING`;
//! 3. the client sends `TEST_END` when its timer fires;
//! 4. the server sends `EXCHANGE_RESULTS`: the client sends its results as JSON, then the
//!    server sends its own; then `DISPLAY_RESULTS`, and the client answers `IPERF_DONE`.
//!
//! JSON travels as a 4-byte big-endian length followed by that many bytes (no NUL).
//! Stream ids follow iperf3's `iperf_add_stream`: 1 for the first stream, then 3, 4, 5, ...

use std::io::{self, Read, Write};

use serde_json::Value;

pub const DEFAULT_PORT: u16 = 5201;
/// 36 characters and a NUL (iperf.h `COOKIE_SIZE`).
pub const COOKIE_SIZE: usize = 37;
/// iperf3's default TCP block size (`DEFAULT_TCP_BLKSIZE`, 128 KiB).
pub const DEFAULT_LEN: usize = 128 * 1024;
/// The congestion control tapir's TCP runs by default, by Linux's name for it.
pub const CONGESTION: &str = "cubic";
/// The largest JSON message we accept: a parameter or result object is a few KiB.
const MAX_JSON: u32 = 1 << 20;

/// The control states (iperf_api.h). Values are what goes on the wire as one signed byte.
pub mod state {
    pub const TEST_START: i8 = 1;
    pub const TEST_RUNNING: i8 = 2;
    pub const TEST_END: i8 = 4;
    pub const PARAM_EXCHANGE: i8 = 9;
    pub const CREATE_STREAMS: i8 = 10;
    pub const SERVER_TERMINATE: i8 = 11;
    pub const CLIENT_TERMINATE: i8 = 12;
    pub const EXCHANGE_RESULTS: i8 = 13;
    pub const DISPLAY_RESULTS: i8 = 14;
    pub const IPERF_DONE: i8 = 16;
    pub const ACCESS_DENIED: i8 = -1;
    pub const SERVER_ERROR: i8 = -2;
}

/// A fresh cookie: 36 characters of iperf3's alphabet (`make_cookie`) and a NUL.
pub fn make_cookie(mut seed: u64) -> [u8; COOKIE_SIZE] {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut c = [0u8; COOKIE_SIZE];
    for b in c.iter_mut().take(COOKIE_SIZE - 1) {
        // xorshift64*: the cookie only has to differ between concurrent tests.
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        let r = seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
        *b = ALPHABET[(r >> 59) as usize];
    }
    c
}

pub fn read_state(r: &mut impl Read) -> io::Result<i8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0] as i8)
}

pub fn write_state(w: &mut impl Write, s: i8) -> io::Result<()> {
    w.write_all(&[s as u8])
}

/// iperf3's `i_errno` values that tapir sends or names (iperf_api.h).
pub mod ierr {
    /// "an option you are trying to set is not implemented yet".
    pub const UNIMP: i32 = 13;
    /// "the server is busy running a test. try again later".
    pub const ACCESS_DENIED: i32 = 121;
}

/// SERVER_ERROR as iperf3's client reads it: the state byte, then `i_errno` and `errno` as two
/// 32-bit integers in network order (without them the client reads garbage and prints
/// "int_errno=<random>: Unknown error").
pub fn write_server_error(w: &mut impl Write, i_errno: i32, errno: i32) -> io::Result<()> {
    let mut msg = [0u8; 9];
    msg[0] = state::SERVER_ERROR as u8;
    msg[1..5].copy_from_slice(&i_errno.to_be_bytes());
    msg[5..].copy_from_slice(&errno.to_be_bytes());
    w.write_all(&msg)
}

/// The two codes after a SERVER_ERROR state byte: (`i_errno`, `errno`).
pub fn read_server_error(r: &mut impl Read) -> io::Result<(i32, i32)> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    let i_errno = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let errno = i32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    Ok((i_errno, errno))
}

pub fn write_json(w: &mut impl Write, v: &Value) -> io::Result<()> {
    let text = serde_json::to_vec(v).map_err(io::Error::other)?;
    let len = u32::try_from(text.len()).map_err(|_| io::Error::other("JSON too long"))?;
    let mut msg = Vec::with_capacity(4 + text.len());
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(&text);
    w.write_all(&msg)
}

pub fn read_json(r: &mut impl Read) -> io::Result<Value> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len);
    if len > MAX_JSON {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("peer announced a {len}-byte JSON message"),
        ));
    }
    let mut text = vec![0u8; len as usize];
    r.read_exact(&mut text)?;
    serde_json::from_slice(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// iperf3's id for the `i`-th stream (0-based).
pub fn stream_id(i: usize) -> u64 {
    if i == 0 {
        1
    } else {
        i as u64 + 2
    }
}

/// The test parameters a client sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub time: u64,
    /// Seconds at the start of the test left out of the figures (iperf3's -O/--omit).
    pub omit: u64,
    pub parallel: usize,
    pub len: usize,
    pub reverse: bool,
    /// A UDP test (`-u`): datagrams of `len` bytes at `bandwidth` bits per second (0: no limit).
    pub udp: bool,
    pub bandwidth: u64,
    /// The client asked for 64-bit packet counters in the UDP header ("udp_counters_64bit").
    pub udp_counters_64bit: bool,
    /// `--bidir`: `parallel` streams each way, the client's sending ones first.
    pub bidir: bool,
    /// `-n` bytes / `-k` blocks to send instead of a time (0: none).
    pub num: u64,
    pub blockcount: u64,
    /// `--get-server-output`: the server's own report comes back with its results.
    pub get_server_output: bool,
}

impl Params {
    /// How many data streams the client opens: `parallel`, each way with `--bidir`.
    pub fn streams(&self) -> usize {
        self.parallel * if self.bidir { 2 } else { 1 }
    }

    /// Whether the client sends on its `i`-th stream: with `--bidir` it opens its sending
    /// streams first (iperf3's `iperf_create_streams(test, 1)`, then 0), and the server takes
    /// them in that order.
    pub fn client_sends(&self, i: usize) -> bool {
        if self.bidir {
            i < self.parallel
        } else {
            !self.reverse
        }
    }

    /// The bytes to send in all, when `-n` or `-k` asked for a size instead of a time.
    pub fn limit(&self) -> Option<u64> {
        if self.num > 0 {
            Some(self.num)
        } else if self.blockcount > 0 {
            Some(self.blockcount.saturating_mul(self.len as u64))
        } else {
            None
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({
            "omit": self.omit,
            "time": self.time,
            "num": self.num,
            "blockcount": self.blockcount,
            "parallel": self.parallel,
            "len": self.len,
            "pacing_timer": 1000,
            "client_version": "3.12",
        });
        v[if self.udp { "udp" } else { "tcp" }] = Value::Bool(true);
        if self.reverse {
            v["reverse"] = Value::Bool(true);
        }
        if self.bidir {
            v["bidirectional"] = Value::Bool(true);
        }
        if self.get_server_output {
            v["get_server_output"] = 1.into();
        }
        if self.bandwidth > 0 {
            v["bandwidth"] = self.bandwidth.into();
        }
        if self.udp_counters_64bit {
            v["udp_counters_64bit"] = 1.into();
        }
        v
    }

    /// Reads what a client sent. TCP and UDP tests are supported, not SCTP.
    pub fn from_json(v: &Value) -> Result<Params, String> {
        if v.get("sctp").is_some() {
            return Err("only TCP and UDP tests are supported".into());
        }
        let num = |k: &str, d: u64| v.get(k).and_then(Value::as_u64).unwrap_or(d);
        let parallel = num("parallel", 1).clamp(1, 128) as usize;
        let len = (num("len", DEFAULT_LEN as u64) as usize).clamp(1, 1 << 24);
        let flag = |k: &str| {
            v.get(k)
                .map(|r| r.as_bool().unwrap_or(r.as_u64().unwrap_or(0) != 0))
                .unwrap_or(false)
        };
        let reverse = flag("reverse");
        let udp = flag("udp");
        Ok(Params {
            time: num("time", 10),
            omit: num("omit", 0).min(3600),
            parallel,
            len,
            reverse,
            udp,
            bandwidth: num("bandwidth", 0),
            udp_counters_64bit: flag("udp_counters_64bit"),
            bidir: flag("bidirectional"),
            num: num("num", 0),
            blockcount: num("blockcount", 0),
            get_server_output: flag("get_server_output"),
        })
    }
}

/// One stream's line in a results message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamResult {
    pub id: u64,
    /// This side sends on the stream (ours only: a peer's results do not say).
    pub sender: bool,
    pub bytes: u64,
    pub retransmits: u64,
    pub seconds: f64,
    /// UDP: the receiver's jitter in seconds, lost datagrams and the highest sequence number
    /// seen (a sender: datagrams sent), and what of these the omitted seconds held.
    pub jitter: f64,
    pub errors: u64,
    pub omitted_errors: u64,
    pub packets: u64,
    pub omitted_packets: u64,
}

/// A results message (`send_results`): CPU figures we do not measure are sent as 0.
pub fn results_json(streams: &[StreamResult]) -> Value {
    let sender = streams.iter().any(|s| s.sender);
    let streams: Vec<Value> = streams
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id,
                "bytes": s.bytes,
                "retransmits": if s.sender { s.retransmits as i64 } else { -1 },
                "jitter": s.jitter,
                "errors": s.errors,
                "omitted_errors": s.omitted_errors,
                "packets": s.packets,
                "omitted_packets": s.omitted_packets,
                "start_time": 0,
                "end_time": s.seconds,
            })
        })
        .collect();
    serde_json::json!({
        "cpu_util_total": 0,
        "cpu_util_user": 0,
        "cpu_util_system": 0,
        "sender_has_retransmits": i32::from(sender),
        "congestion_used": CONGESTION,
        "streams": streams,
    })
}

/// Reads the peer's per-stream results: (id, bytes, seconds).
pub fn parse_results(v: &Value) -> Result<Vec<StreamResult>, String> {
    let streams = v
        .get("streams")
        .and_then(Value::as_array)
        .ok_or("results without streams")?;
    streams
        .iter()
        .map(|s| {
            let id = s
                .get("id")
                .and_then(Value::as_u64)
                .ok_or("stream without id")?;
            let bytes = s
                .get("bytes")
                .and_then(Value::as_u64)
                .ok_or("stream without bytes")?;
            let retransmits = s.get("retransmits").and_then(Value::as_u64).unwrap_or(0);
            let start = s.get("start_time").and_then(Value::as_f64).unwrap_or(0.0);
            let end = s.get("end_time").and_then(Value::as_f64).unwrap_or(0.0);
            let count = |k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(0);
            Ok(StreamResult {
                id,
                // Not in the message; the report takes the direction from our own streams.
                sender: false,
                bytes,
                retransmits,
                seconds: end - start,
                jitter: s.get("jitter").and_then(Value::as_f64).unwrap_or(0.0),
                errors: count("errors"),
                omitted_errors: count("omitted_errors"),
                packets: count("packets"),
                omitted_packets: count("omitted_packets"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_carries_both_codes_in_network_order() {
        let mut wire = Vec::new();
        write_server_error(&mut wire, ierr::UNIMP, 0).unwrap();
        assert_eq!(wire, [0xfe, 0, 0, 0, 13, 0, 0, 0, 0]);
        let mut r = &wire[..];
        assert_eq!(read_state(&mut r).unwrap(), state::SERVER_ERROR);
        assert_eq!(read_server_error(&mut r).unwrap(), (ierr::UNIMP, 0));
    }

    #[test]
    fn json_round_trips_with_length_prefix() {
        let p = Params {
            time: 3,
            omit: 1,
            parallel: 4,
            len: 1000,
            reverse: true,
            udp: false,
            bandwidth: 0,
            udp_counters_64bit: false,
            bidir: true,
            num: 0,
            blockcount: 40,
            get_server_output: true,
        };
        let mut wire = Vec::new();
        write_json(&mut wire, &p.to_json()).unwrap();
        let len = u32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]) as usize;
        assert_eq!(len, wire.len() - 4);
        let back = read_json(&mut &wire[..]).unwrap();
        assert_eq!(Params::from_json(&back).unwrap(), p);
        // What tapir's client sends for `-u -b 200M --udp-counters-64bit` reads back the same.
        let u = Params {
            udp: true,
            bandwidth: 200_000_000,
            udp_counters_64bit: true,
            len: 1460,
            ..p
        };
        let v = u.to_json();
        assert!(v.get("tcp").is_none(), "{v}");
        assert_eq!(Params::from_json(&v).unwrap(), u);
    }

    #[test]
    fn stock_client_parameters_are_understood() {
        let v: Value = serde_json::from_str(
            r#"{"tcp":true,"omit":0,"time":2,"num":0,"blockcount":0,"parallel":2,"len":131072,"pacing_timer":1000,"client_version":"3.12"}"#,
        )
        .unwrap();
        let p = Params::from_json(&v).unwrap();
        assert_eq!(
            (p.time, p.parallel, p.len, p.reverse),
            (2, 2, 131072, false)
        );
        let udp: Value = serde_json::from_str(
            r#"{"udp":true,"time":2,"len":1448,"bandwidth":50000000,"udp_counters_64bit":1}"#,
        )
        .unwrap();
        let p = Params::from_json(&udp).unwrap();
        assert!(p.udp && p.udp_counters_64bit);
        assert_eq!((p.len, p.bandwidth), (1448, 50_000_000));
        let sctp: Value = serde_json::from_str(r#"{"sctp":true}"#).unwrap();
        assert!(Params::from_json(&sctp).is_err());
    }

    #[test]
    fn results_carry_what_get_results_requires() {
        let r = results_json(&[StreamResult {
            id: 1,
            sender: true,
            bytes: 42,
            retransmits: 0,
            seconds: 2.0,
            ..Default::default()
        }]);
        for k in [
            "cpu_util_total",
            "cpu_util_user",
            "cpu_util_system",
            "sender_has_retransmits",
        ] {
            assert!(r.get(k).is_some(), "{k}");
        }
        let s = &r["streams"][0];
        for k in ["id", "bytes", "retransmits", "jitter", "errors", "packets"] {
            assert!(s.get(k).is_some(), "{k}");
        }
        let back = parse_results(&r).unwrap();
        assert_eq!((back[0].id, back[0].bytes), (1, 42));
    }

    #[test]
    fn cookies_are_36_characters_and_a_nul() {
        let c = make_cookie(7);
        assert_eq!(c[36], 0);
        assert!(c[..36].iter().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(c, make_cookie(8));
        assert_eq!([stream_id(0), stream_id(1), stream_id(2)], [1, 3, 4]);
    }
}
