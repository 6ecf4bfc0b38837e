//! Checked byte access for the wire views: every read of a field that is not there reads 0 (or
//! an empty slice) and every write to one is skipped, so that no accessor can panic, even on a
//! view made with `new_unchecked` over a short buffer. A view built with `new_checked` never
//! takes those branches: the lengths were validated once.

use core::slice::SliceIndex;

/// `b[r]`, or an empty slice when `r` is out of range.
pub(crate) fn get<I: SliceIndex<[u8], Output = [u8]>>(b: &[u8], r: I) -> &[u8] {
    b.get(r).unwrap_or_default()
}

/// `&mut b[r]`, or an empty slice when `r` is out of range.
pub(crate) fn get_mut<I: SliceIndex<[u8], Output = [u8]>>(b: &mut [u8], r: I) -> &mut [u8] {
    b.get_mut(r).unwrap_or_default()
}

/// `b[i]`, or 0.
pub(crate) fn u8_at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// `b[i] = v`, when `i` is in range.
pub(crate) fn set_u8(b: &mut [u8], i: usize, v: u8) {
    if let Some(x) = b.get_mut(i) {
        *x = v;
    }
}

/// The first two bytes of `d`, big-endian, or 0.
pub(crate) fn be16(d: &[u8]) -> u16 {
    match d {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

/// The first four bytes of `d`, big-endian, or 0.
pub(crate) fn be32(d: &[u8]) -> u32 {
    match d {
        [a, b, c, e, ..] => u32::from_be_bytes([*a, *b, *c, *e]),
        _ => 0,
    }
}

/// The first `N` bytes of `d`, zero-padded.
pub(crate) fn array<const N: usize>(d: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    copy(&mut out, d);
    out
}

/// Copies as much of `src` into `dst` as both hold.
pub(crate) fn copy(dst: &mut [u8], src: &[u8]) {
    let n = dst.len().min(src.len());
    if let (Some(d), Some(s)) = (dst.get_mut(..n), src.get(..n)) {
        d.copy_from_slice(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_reads_zero_and_writes_nothing() {
        let mut b = [1u8, 2, 3];
        assert_eq!(get(&b, 2..5), &[] as &[u8]);
        assert_eq!(get(&b, 1..3), &[2, 3]);
        assert_eq!(u8_at(&b, 3), 0);
        assert_eq!(be16(&b[2..]), 0);
        assert_eq!(be16(&b), 0x0102);
        assert_eq!(be32(&b), 0);
        set_u8(&mut b, 9, 7);
        copy(get_mut(&mut b, 1..9), &[9, 9]);
        assert_eq!(b, [1, 2, 3]);
        copy(get_mut(&mut b, 1..3), &[9, 9]);
        assert_eq!(b, [1, 9, 9]);
        assert_eq!(array::<4>(&b), [1, 9, 9, 0]);
    }
}
