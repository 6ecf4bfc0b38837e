//! A chunked request body (RFC 9112 §7.1) read and thrown away: the decoder follows the chunk
//! framing across reads so that the request after it on the connection starts where the body
//! ends, and refuses framing that another parser could read differently.

use super::request::{MAX_BODY, MAX_HEAD};

/// Longest chunk-size line (size and extensions) accepted.
const MAX_LINE: usize = 4096;

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("malformed chunked framing")]
    Malformed,
    #[error("chunked body larger than the server takes")]
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a chunk-size line.
    Size,
    /// In a chunk's data: this many bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// In the trailer section, after the last chunk.
    Trailer,
    Done,
}

#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    /// The line being read (chunk-size or trailer field), without its CRLF.
    line: Vec<u8>,
    /// Data bytes so far.
    total: u64,
    /// Trailer bytes so far.
    trailer: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            state: State::Size,
            line: Vec::new(),
            total: 0,
            trailer: 0,
        }
    }
}

impl Decoder {
    /// Consumes body bytes from the front of `input`: how many it took, and whether the body
    /// has ended (the bytes after it belong to the next request).
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, bool), ChunkError> {
        let mut at = 0;
        while at < input.len() {
            match self.state {
                State::Done => break,
                State::Data(left) => {
                    let n = (input.len() - at).min(usize::try_from(left).unwrap_or(usize::MAX));
                    at += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::Size | State::DataEnd | State::Trailer => {
                    let rest = &input[at..];
                    let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
                        self.take_line(rest)?;
                        at = input.len();
                        break;
                    };
                    self.take_line(&rest[..lf])?;
                    at += lf + 1;
                    self.end_line()?;
                }
            }
        }
        Ok((at, self.state == State::Done))
    }

    fn take_line(&mut self, part: &[u8]) -> Result<(), ChunkError> {
        self.line.extend_from_slice(part);
        if self.line.len() > MAX_LINE {
            return Err(ChunkError::Malformed);
        }
        Ok(())
    }

    /// A whole line (up to its LF) is in `line`.
    fn end_line(&mut self) -> Result<(), ChunkError> {
        // RFC 9112 §7.1: lines end in CRLF; a bare LF is refused rather than guessed at.
        let line = self.line.strip_suffix(b"\r").ok_or(ChunkError::Malformed)?;
        self.state = match self.state {
            State::Size => match chunk_size(line)? {
                0 => State::Trailer,
                n => {
                    self.total = self.total.saturating_add(n);
                    if self.total > MAX_BODY {
                        return Err(ChunkError::TooLarge);
                    }
                    State::Data(n)
                }
            },
            State::DataEnd if line.is_empty() => State::Size,
            State::DataEnd => return Err(ChunkError::Malformed),
            State::Trailer if line.is_empty() => State::Done,
            State::Trailer => {
                // A trailer field: kept within the head's limit, never a folded line.
                self.trailer += line.len() + 2;
                if self.trailer > MAX_HEAD || line[0] == b' ' || line[0] == b'\t' {
                    return Err(ChunkError::Malformed);
                }
                State::Trailer
            }
            s => s,
        };
        self.line.clear();
        Ok(())
    }
}

/// `chunk-size [ chunk-ext ]`: hex digits, then nothing or `;` extensions (ignored).
fn chunk_size(line: &[u8]) -> Result<u64, ChunkError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    let ext_ok = rest.is_empty() || {
        let after_ws = rest.iter().skip_while(|&&b| b == b' ' || b == b'\t');
        after_ws.clone().next() == Some(&b';')
    };
    if digits == 0 || digits > 15 || !ext_ok {
        return Err(ChunkError::Malformed);
    }
    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| ChunkError::Malformed)?;
    u64::from_str_radix(hex, 16).map_err(|_| ChunkError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `raw` in pieces of `step` bytes: the bytes taken when the body ended.
    fn run(raw: &[u8], step: usize) -> Result<Option<usize>, ChunkError> {
        let mut d = Decoder::default();
        let mut at = 0;
        for piece in raw.chunks(step) {
            let (n, done) = d.feed(piece)?;
            at += n;
            if done {
                return Ok(Some(at));
            }
            assert_eq!(n, piece.len(), "an unfinished body takes all it is given");
        }
        Ok(None)
    }

    #[test]
    fn a_body_ends_where_its_framing_says_in_any_pieces() {
        let body = b"5\r\nhello\r\n1A;name=v\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n";
        let mut raw = body.to_vec();
        raw.extend_from_slice(b"GET / HTTP/1.1\r\n");
        for step in 1..=raw.len() {
            assert_eq!(run(&raw, step), Ok(Some(body.len())), "step {step}");
        }
        assert_eq!(run(b"0\r\n\r\n", 100), Ok(Some(5)));
        assert_eq!(run(b"5\r\nhel", 100), Ok(None));
    }

    #[test]
    fn bad_framing_is_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"5\nhello\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"-5\r\n",
            b"5 x\r\n",
            b"ffffffffffffffff\r\n",
            b"0\r\n folded\r\n\r\n",
        ] {
            assert_eq!(
                run(bad, 100),
                Err(ChunkError::Malformed),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let big = format!("{:x}\r\n", MAX_BODY + 1);
        assert_eq!(run(big.as_bytes(), 100), Err(ChunkError::TooLarge));
        let long = format!("1;{}\r\n", "e".repeat(MAX_LINE));
        assert_eq!(run(long.as_bytes(), 100), Err(ChunkError::Malformed));
    }

    #[test]
    fn any_chunking_of_any_body_read_in_any_pieces_ends_where_it_should() {
        for seed in 1..300u32 {
            let r = crate::lab::pseudo_random_bytes(64, seed);
            let body = crate::lab::pseudo_random_bytes(usize::from(r[0]) * 40, seed);
            let mut enc = Vec::new();
            let mut at = 0;
            let mut i = 1;
            while at < body.len() {
                let n = (usize::from(r[i % 64]) + 1).min(body.len() - at);
                let ext = if r[(i + 7) % 64].is_multiple_of(3) {
                    ";a=b"
                } else {
                    ""
                };
                enc.extend_from_slice(format!("{n:X}{ext}\r\n").as_bytes());
                enc.extend_from_slice(&body[at..at + n]);
                enc.extend_from_slice(b"\r\n");
                at += n;
                i += 1;
            }
            enc.extend_from_slice(b"0\r\n");
            if r[63].is_multiple_of(2) {
                enc.extend_from_slice(b"X-Sum: 1\r\n");
            }
            enc.extend_from_slice(b"\r\n");
            let end = enc.len();
            enc.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            let step = usize::from(r[5]) % 97 + 1;
            assert_eq!(run(&enc, step), Ok(Some(end)), "seed {seed} step {step}");
        }
    }
}
