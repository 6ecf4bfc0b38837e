//! A streaming decoder for `Transfer-Encoding: chunked` bodies (RFC 9112 §7.1) that only skips:
//! the load generator counts responses and never keeps a body. It is fed whatever a read
//! returned, keeps a few integers between reads, and bounds every line it must see through.

/// Longest chunk-size line (with extensions) or trailer line accepted.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size (`digits` of them so far).
    Size,
    /// After the size: extensions, up to CR.
    Ext,
    SizeLf,
    Data(usize),
    DataCr,
    DataLf,
    /// After the last chunk: at the start of a trailer line (or of the final CRLF).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
}

/// What [`Chunked::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Every byte was used; the body goes on.
    More,
    /// The body ended after this many bytes of the input.
    Done(usize),
    /// Not a chunked body.
    Bad,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunked {
    state: State,
    size: usize,
    digits: usize,
    line: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: State::Size,
            size: 0,
            digits: 0,
            line: 0,
        }
    }
}

impl Chunked {
    pub fn feed(&mut self, data: &[u8]) -> Progress {
        let mut i = 0;
        while i < data.len() {
            if let State::Data(left) = self.state {
                let take = left.min(data.len() - i);
                i += take;
                self.state = if take == left {
                    State::DataCr
                } else {
                    State::Data(left - take)
                };
                continue;
            }
            let b = data[i];
            i += 1;
            self.line += 1;
            if self.line > MAX_LINE {
                return Progress::Bad;
            }
            self.state = match (self.state, b) {
                (State::Size, _) if (b as char).is_ascii_hexdigit() => {
                    let d = (b as char).to_digit(16).unwrap_or(0) as usize;
                    match self.size.checked_mul(16).and_then(|s| s.checked_add(d)) {
                        Some(s) => self.size = s,
                        None => return Progress::Bad,
                    }
                    self.digits += 1;
                    State::Size
                }
                (State::Size, b'\r') if self.digits > 0 => State::SizeLf,
                (State::Size, b';' | b' ' | b'\t') if self.digits > 0 => State::Ext,
                (State::Ext, b'\r') => State::SizeLf,
                (State::Ext, _) => State::Ext,
                (State::SizeLf, b'\n') => {
                    self.line = 0;
                    if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data(self.size)
                    }
                }
                (State::DataCr, b'\r') => State::DataLf,
                (State::DataLf, b'\n') => {
                    self.size = 0;
                    self.digits = 0;
                    self.line = 0;
                    State::Size
                }
                (State::TrailerStart, b'\r') => State::FinalLf,
                (State::TrailerLine, b'\r') => State::TrailerLf,
                (State::TrailerStart | State::TrailerLine, _) => State::TrailerLine,
                (State::TrailerLf, b'\n') => {
                    self.line = 0;
                    State::TrailerStart
                }
                (State::FinalLf, b'\n') => {
                    *self = Chunked::default();
                    return Progress::Done(i);
                }
                _ => return Progress::Bad,
            };
        }
        Progress::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        b"5\r\nhello\r\n1a;name=value\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n";

    #[test]
    fn a_body_split_anywhere_ends_exactly_where_it_ends() {
        let mut input = BODY.to_vec();
        input.extend_from_slice(b"HTTP/1.1 200 OK");
        for cut in 0..input.len() {
            let mut c = Chunked::default();
            let (a, b) = input.split_at(cut);
            let end = match c.feed(a) {
                Progress::Done(n) => n,
                Progress::More => match c.feed(b) {
                    Progress::Done(n) => cut + n,
                    p => panic!("cut {cut}: {p:?}"),
                },
                Progress::Bad => panic!("cut {cut}: bad"),
            };
            assert_eq!(end, BODY.len(), "cut {cut}");
        }
    }

    #[test]
    fn an_empty_body_without_trailers() {
        assert_eq!(Chunked::default().feed(b"0\r\n\r\n"), Progress::Done(5));
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"5\r\nhelloXX",
            b"5\n",
            b"ffffffffffffffffffff\r\n",
        ] {
            assert_eq!(Chunked::default().feed(bad), Progress::Bad, "{bad:?}");
        }
        // An endless extension is cut off.
        let mut long = b"1;".to_vec();
        long.resize(MAX_LINE + 10, b'x');
        assert_eq!(Chunked::default().feed(&long), Progress::Bad);
    }
}
