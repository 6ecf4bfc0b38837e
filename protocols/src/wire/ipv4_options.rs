//! IPv4 options as a host meets them. [`check_received`] judges a received packet's options
//! as Linux does by default: a malformed area is answered by a parameter problem (RFC 1122
//! §3.2.2.5) and dropped, and a source-routed packet is dropped (Linux's
//! `accept_source_route` is off: a host that honoured the route would let any sender pass
//! itself off as a trusted address). [`echo_reply`] gives an echo request's record route and
//! timestamp options back in the echo reply, updated to include this host (RFC 1122
//! §3.2.2.6, RFC 791 §3.1); any other option is left out of the reply.

use core::net::Ipv4Addr;

use super::bytes::{copy, get, get_mut, set_u8, u8_at};

/// Most bytes of options an IPv4 header holds.
pub const MAX_LEN: usize = 40;

const EOL: u8 = 0;
const NOP: u8 = 1;
/// Record route (RFC 791): type 7, length, pointer, then room for addresses.
const RR: u8 = 7;
/// Loose and strict source and record route (RFC 791).
const LSRR: u8 = 131;
const SSRR: u8 = 137;
/// Internet timestamp (RFC 791): type 68, length, pointer, overflow and flags, then room.
const TS: u8 = 68;
/// Timestamp flags: timestamps only; address and timestamp pairs; timestamps at prespecified
/// addresses.
const TS_ONLY: u8 = 0;
const TS_AND_ADDR: u8 = 1;
const TS_PRESPEC: u8 = 3;

/// Options to send: at most [`MAX_LEN`] bytes, a multiple of 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    buf: [u8; MAX_LEN],
    len: usize,
}

impl Options {
    pub const EMPTY: Options = Options {
        buf: [0; MAX_LEN],
        len: 0,
    };

    pub fn as_bytes(&self) -> &[u8] {
        get(&self.buf, ..self.len)
    }

    fn push(&mut self, option: &[u8]) {
        copy(get_mut(&mut self.buf, self.len..), option);
        self.len = (self.len + option.len()).min(MAX_LEN);
    }
}

/// What a received packet's options say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    Fine,
    /// A loose or strict source route: dropped, unanswered.
    SourceRouted,
    /// Malformed: the parameter problem's pointer is this offset into the IPv4 header.
    Malformed {
        pointer: u8,
    },
}

/// The options of an area in order, each as (its offset, its type, its bytes), end-of-options
/// and no-ops passed over; `Err(offset)` where an option's length byte is wrong (shorter than
/// 2, or running past the area), and nothing after it.
fn walk(area: &[u8]) -> impl Iterator<Item = Result<(usize, u8, &[u8]), usize>> {
    let mut i = 0;
    core::iter::from_fn(move || loop {
        let kind = *area.get(i)?;
        match kind {
            EOL => return None,
            NOP => i += 1,
            _ => {
                let at = i;
                let len = usize::from(u8_at(area, i + 1));
                let Some(bytes) = area.get(at..at + len).filter(|_| len >= 2) else {
                    i = area.len();
                    return Some(Err(at));
                };
                i += len;
                return Some(Ok((at, kind, bytes)));
            }
        }
    })
}

/// Judges the options area of a received header (the bytes after the fixed 20), with the
/// checks Linux makes (`ip_options_compile`): lengths that fit, record route and timestamp
/// pointers at a slot boundary, known timestamp flags, no timestamp overflow count at 15 with
/// the option full. Options it does not know pass.
pub fn check_received(options: &[u8]) -> Received {
    let malformed = |at: usize| Received::Malformed {
        pointer: u8::try_from(super::ipv4::HEADER_LEN + at).unwrap_or(u8::MAX),
    };
    let mut routed = false;
    for option in walk(options) {
        let (i, kind, o) = match option {
            Ok(option) => option,
            Err(at) => return malformed(at + 1),
        };
        let (len, ptr) = (o.len(), usize::from(u8_at(o, 2)));
        match kind {
            RR | LSRR | SSRR => {
                if len < 3 {
                    return malformed(i + 1);
                }
                if ptr < 4 || (ptr <= len && ptr + 3 > len) {
                    return malformed(i + 2);
                }
                routed |= kind != RR;
            }
            TS => {
                if len < 4 {
                    return malformed(i + 1);
                }
                if ptr < 5 {
                    return malformed(i + 2);
                }
                let (overflow, flags) = (u8_at(o, 3) >> 4, u8_at(o, 3) & 0x0f);
                let entry = match flags {
                    TS_ONLY => 4,
                    TS_AND_ADDR | TS_PRESPEC => 8,
                    _ => return malformed(i + 3),
                };
                if ptr <= len && ptr + entry - 1 > len {
                    return malformed(i + 2);
                }
                if ptr > len && overflow == 15 {
                    return malformed(i + 3);
                }
            }
            _ => {}
        }
    }
    if routed {
        Received::SourceRouted
    } else {
        Received::Fine
    }
}

/// The options an echo reply carries for a request whose header held `received` (the bytes
/// after the fixed 20): its record route with `me` added where there is room, and its
/// timestamp option with `ts` (and `me`, as its flags ask). `ts` is milliseconds since midnight
/// UT, or any time with its high bit set (RFC 791).
pub fn echo_reply(received: &[u8], me: Ipv4Addr, ts: u32) -> Options {
    // A header holds 40 bytes of options: what the reply copies fits as well.
    let received = received.get(..MAX_LEN).unwrap_or(received);
    let mut out = Options::EMPTY;
    let (mut rr, mut ts_seen) = (false, false);
    for option in walk(received) {
        let Ok((_, kind, option)) = option else {
            return Options::EMPTY;
        };
        let mut buf = [0u8; MAX_LEN];
        let o = get_mut(&mut buf, ..option.len());
        copy(o, option);
        let valid = match kind {
            RR if !rr => {
                rr = true;
                record_route(o, me)
            }
            TS if !ts_seen => {
                ts_seen = true;
                timestamp(o, me, ts)
            }
            // Another option, or a second one of a kind: not answered.
            _ => continue,
        };
        if !valid {
            return Options::EMPTY;
        }
        // An option of an odd size (a pointer Linux takes in, at a slot that does not fit
        // whole once we used the one before) would come back malformed: left out.
        if matches!(check_received(o), Received::Malformed { .. }) {
            continue;
        }
        out.push(o);
    }
    // Padded with end-of-options to a multiple of 4.
    out.len = out.len.next_multiple_of(4);
    out
}

/// The options of a request asking for the route (`ping -R`): a no-op, then a record route
/// with room for nine addresses, the first of them ours (the sender records itself, as Linux
/// does).
pub fn record_route_request(me: Ipv4Addr) -> Options {
    let mut out = Options::EMPTY;
    let mut rr = [0u8; MAX_LEN - 1];
    rr[..3].copy_from_slice(&[RR, (MAX_LEN - 1) as u8, 4]);
    record_route(&mut rr, me);
    out.push(&[NOP]);
    out.push(&rr);
    out
}

/// The addresses a received record route option holds (those before its pointer), in order;
/// empty without one.
pub fn recorded_route(options: &[u8]) -> Vec<Ipv4Addr> {
    let Some((_, _, o)) = walk(options).flatten().find(|&(_, kind, _)| kind == RR) else {
        return Vec::new();
    };
    let end = usize::from(u8_at(o, 2)).saturating_sub(1).min(o.len());
    get(o, 3..end.max(3))
        .chunks_exact(4)
        .map(|a| Ipv4Addr::new(u8_at(a, 0), u8_at(a, 1), u8_at(a, 2), u8_at(a, 3)))
        .collect()
}

/// Adds `me` to a record route option if there is room; false if the option is malformed.
fn record_route(o: &mut [u8], me: Ipv4Addr) -> bool {
    let ptr = usize::from(u8_at(o, 2));
    if o.len() < 3 || ptr < 4 {
        return false;
    }
    if let Some(slot) = o.get_mut(ptr - 1..ptr + 3) {
        slot.copy_from_slice(&me.octets());
        set_u8(o, 2, u8_at(o, 2).saturating_add(4));
    }
    true
}

/// Adds `ts` (and `me`) to a timestamp option as its flags ask, or counts an overflow when it
/// is full; false if the option is malformed.
fn timestamp(o: &mut [u8], me: Ipv4Addr, ts: u32) -> bool {
    let (ptr, oflw_flags) = (usize::from(u8_at(o, 2)), u8_at(o, 3));
    let (overflow, flags) = (oflw_flags >> 4, oflw_flags & 0x0f);
    let entry = match flags {
        TS_ONLY => 4,
        TS_AND_ADDR | TS_PRESPEC => 8,
        _ => return false,
    };
    if o.len() < 4 || ptr < 5 {
        return false;
    }
    let Some(slot) = o.get_mut(ptr - 1..ptr - 1 + entry) else {
        // Full: the overflow count goes up (it stays at 15 at most).
        if flags != TS_PRESPEC {
            set_u8(o, 3, (overflow.saturating_add(1).min(15) << 4) | flags);
        }
        return true;
    };
    let (addr, stamp) = slot.split_at_mut(entry - 4);
    match flags {
        TS_ONLY => {}
        TS_AND_ADDR => addr.copy_from_slice(&me.octets()),
        // Prespecified: only where the next address named is ours.
        _ if *addr == me.octets() => {}
        _ => return true,
    }
    stamp.copy_from_slice(&ts.to_be_bytes());
    set_u8(o, 2, u8_at(o, 2).saturating_add(entry as u8));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_options_area_gives_a_well_formed_reply(
            b in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let r = echo_reply(&b, ME, 1);
            prop_assert!(r.as_bytes().len() <= MAX_LEN && r.as_bytes().len().is_multiple_of(4));
        }
    }

    const ME: Ipv4Addr = Ipv4Addr::new(10, 7, 0, 2);
    const PEER: [u8; 4] = [10, 7, 0, 1];

    /// What `ping -R` sends from 10.7.0.1: NOP, then record route with 9 slots and the first
    /// filled by the sender's kernel.
    fn ping_rr() -> Vec<u8> {
        let mut o = vec![NOP, RR, 39, 8];
        o.extend_from_slice(&PEER);
        o.resize(40, 0);
        o
    }

    #[test]
    fn received_options_are_judged_as_linux_judges_them() {
        assert_eq!(check_received(&[]), Received::Fine);
        assert_eq!(check_received(&ping_rr()), Received::Fine);
        assert_eq!(
            check_received(&[TS, 12, 5, TS_ONLY, 0, 0, 0, 0, 0, 0, 0, 0]),
            Received::Fine
        );
        // A full timestamp option still counting overflows, and an option nobody knows.
        assert_eq!(
            check_received(&[TS, 8, 9, 0x10, 0, 0, 0, 1]),
            Received::Fine
        );
        assert_eq!(check_received(&[148, 4, 0, 0]), Received::Fine);
        // Source routes, loose and strict.
        for kind in [LSRR, SSRR] {
            let o = [NOP, kind, 7, 4, 10, 0, 0, 9];
            assert_eq!(check_received(&o), Received::SourceRouted);
        }
        // Malformed, with the pointer at the bad byte (offsets from the IPv4 header).
        let bad = |pointer| Received::Malformed { pointer };
        assert_eq!(check_received(&[RR, 1, 4, 0]), bad(21));
        assert_eq!(check_received(&[NOP, RR, 40, 4]), bad(22));
        assert_eq!(check_received(&[RR, 7, 3, 0, 0, 0, 0, 0]), bad(22));
        assert_eq!(check_received(&[RR, 7, 5, 0, 0, 0, 0, 0]), bad(22));
        assert_eq!(check_received(&[TS, 8, 5, 2, 0, 0, 0, 0]), bad(23));
        assert_eq!(
            check_received(&[TS, 8, 5, TS_AND_ADDR, 0, 0, 0, 0]),
            bad(22)
        );
        assert_eq!(check_received(&[TS, 8, 9, 0xf0, 0, 0, 0, 1]), bad(23));
        assert_eq!(check_received(&[TS, 3, 5, 0]), bad(21));
    }

    #[test]
    fn a_route_request_records_us_first_and_reads_back_what_was_recorded() {
        let req = record_route_request(ME);
        let b = req.as_bytes();
        assert_eq!((b.len(), &b[..4]), (40, &[NOP, RR, 39, 8][..]));
        assert_eq!(check_received(b), Received::Fine);
        assert_eq!(recorded_route(b), [ME]);
        // The peer adds itself on the way back.
        let peer = Ipv4Addr::from(PEER);
        let reply = echo_reply(b, peer, 0);
        assert_eq!(recorded_route(reply.as_bytes()), [ME, peer]);
        assert!(recorded_route(&[TS, 8, 5, 0, 0, 0, 0, 0]).is_empty());
        assert!(recorded_route(&[]).is_empty());
    }

    #[test]
    fn record_route_gets_our_address_in_the_next_slot() {
        let r = echo_reply(&ping_rr(), ME, 0);
        let b = r.as_bytes();
        assert_eq!(b.len(), 40);
        assert_eq!(&b[..4], &[RR, 39, 12, 10]);
        assert_eq!(&b[3..7], &PEER);
        assert_eq!(&b[7..11], &ME.octets());
        assert!(b[11..].iter().all(|&x| x == 0));
    }

    #[test]
    fn a_full_record_route_goes_back_unchanged() {
        let mut o = vec![RR, 7, 8, 1, 2, 3, 4, NOP];
        let r = echo_reply(&o, ME, 0);
        o.truncate(7);
        o.push(EOL);
        assert_eq!(r.as_bytes(), &o[..]);
    }

    #[test]
    fn timestamps_are_added_as_the_flags_ask() {
        // Timestamps only: 9 slots, one used.
        let mut o = vec![TS, 40, 9, TS_ONLY, 0, 0, 0, 7];
        o.resize(40, 0);
        let r = echo_reply(&o, ME, 0x0102_0304);
        assert_eq!(r.as_bytes()[2], 13);
        assert_eq!(&r.as_bytes()[8..12], &[1, 2, 3, 4]);
        // Address and timestamp pairs.
        let mut o = vec![TS, 36, 5, TS_AND_ADDR];
        o.resize(36, 0);
        let r = echo_reply(&o, ME, 9);
        assert_eq!(r.as_bytes()[2], 13);
        assert_eq!(&r.as_bytes()[4..12], &[10, 7, 0, 2, 0, 0, 0, 9]);
        // Prespecified: stamped where our address is next, passed over where it is not.
        let mut o = vec![TS, 20, 5, TS_PRESPEC, 10, 7, 0, 2, 0, 0, 0, 0];
        o.extend_from_slice(&[10, 7, 0, 1, 0, 0, 0, 0]);
        let r = echo_reply(&o, ME, 9);
        assert_eq!(r.as_bytes()[2], 13);
        assert_eq!(&r.as_bytes()[8..12], &[0, 0, 0, 9]);
        let r2 = echo_reply(r.as_bytes(), ME, 10);
        assert_eq!(r2.as_bytes(), r.as_bytes(), "the next address is not ours");
    }

    #[test]
    fn an_option_our_entry_would_leave_malformed_is_left_out_of_the_reply() {
        // Found by the wire fuzzer: record route of 10 bytes, pointer 5 (Linux takes it in);
        // with our address at 5..8 the pointer would be 9, a slot that does not fit.
        let o = [RR, 10, 5, 7, 10, 10, 10, 7, 7, 71, NOP, NOP];
        assert_eq!(check_received(&o), Received::Fine);
        let r = echo_reply(&o, ME, 0);
        assert_eq!(r, Options::EMPTY);
    }

    #[test]
    fn a_full_timestamp_option_counts_an_overflow() {
        let o = [TS, 8, 9, TS_ONLY, 0, 0, 0, 1];
        let r = echo_reply(&o, ME, 5);
        assert_eq!(r.as_bytes()[3], 1 << 4);
        // A count at 15 with no room is malformed (a parameter problem on the way in, as in
        // Linux): never answered with options.
        let saturated = [TS, 8, 9, 0xf0, 0, 0, 0, 1];
        assert!(matches!(
            check_received(&saturated),
            Received::Malformed { .. }
        ));
        assert_eq!(echo_reply(&saturated, ME, 5), Options::EMPTY);
    }

    #[test]
    fn other_options_are_left_out_and_malformed_areas_give_none() {
        // A router alert (type 148) and a security option are not answered.
        let o = [148, 4, 0, 0, RR, 7, 4, 0, 0, 0, 0, EOL];
        let r = echo_reply(&o, ME, 0);
        assert_eq!(r.as_bytes(), &[RR, 7, 8, 10, 7, 0, 2, EOL]);
        for bad in [
            &[RR][..],
            &[RR, 1, 4],
            &[RR, 12, 4, 0],
            &[RR, 7, 2, 0, 0, 0, 0, 0],
            &[TS, 3, 5],
            &[TS, 8, 4, 0, 0, 0, 0, 0],
            &[TS, 8, 5, 2, 0, 0, 0, 0],
        ] {
            assert_eq!(echo_reply(bad, ME, 0), Options::EMPTY, "{bad:?}");
        }
        assert_eq!(echo_reply(&[NOP, NOP, NOP, EOL], ME, 0).as_bytes(), &[]);
    }
}
