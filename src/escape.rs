//! Showing bytes as text without ever failing on them.
//!
//! Messages come off the wire: they may be cut inside a UTF-8 character (v2
//! cuts at 20 bytes), or not be text at all. [`escape`] keeps valid UTF-8 as
//! it is and writes everything else so a person can read it and no byte is
//! hidden: `\xFF` for an invalid byte, `\n`, `\t`, `\r`, `\0`, `\\`, `\"`,
//! and `\u{1B}`-style escapes for other control characters.

#![warn(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use std::fmt::Write;

/// A printable, quotable rendering of `bytes`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    escape_into(&mut out, bytes);
    out
}

/// Whether `b` is shown as itself by [`escape`].
fn plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'\\' && b != b'"'
}

/// [`escape`], appended to `out` (no allocation when `out` has room).
pub fn escape_into(out: &mut String, bytes: &[u8]) {
    // Most messages are plain printable ASCII: copied as they are.
    if bytes.iter().all(|&b| plain(b))
        && let Ok(s) = std::str::from_utf8(bytes)
    {
        out.push_str(s);
        return;
    }
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\0' => out.push_str("\\0"),
                c if c.is_control() => {
                    let _ = write!(out, "\\u{{{:X}}}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
}

/// Messages longer than this are shown cut by [`preview`].
pub const PREVIEW_BYTES: usize = 64;

/// A quoted, escaped rendering for one-line output: the first
/// [`PREVIEW_BYTES`] bytes, then how many more there were.
pub fn preview(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().min(PREVIEW_BYTES).saturating_add(24));
    preview_into(&mut out, bytes);
    out
}

/// [`preview`], appended to `out`.
pub fn preview_into(out: &mut String, bytes: &[u8]) {
    out.push('"');
    match bytes.get(..PREVIEW_BYTES) {
        Some(head) if bytes.len() > PREVIEW_BYTES => {
            escape_into(out, head);
            let _ = write!(
                out,
                "\"… (+{} bytes)",
                bytes.len().saturating_sub(PREVIEW_BYTES)
            );
        }
        _ => {
            escape_into(out, bytes);
            out.push('"');
        }
    }
}

/// Appends `n` in decimal: what `write!(out, "{n}")` does, several times
/// faster (capture output prints several numbers per frame).
pub fn push_u64(out: &mut String, n: u64) {
    let mut buf = [0u8; 20];
    for &d in u64_digits(n, &mut buf) {
        out.push(char::from(d));
    }
}

/// Every number below 100 as two ASCII digits, one after the other.
const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819202122232425262728293031323334353637383940414243444546474849\
5051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";

/// The two digits of `v` (below 100).
#[inline]
fn digit_pair(v: u64) -> [u8; 2] {
    let i = usize::try_from(v).unwrap_or(0).saturating_mul(2);
    match DIGIT_PAIRS.get(i..i.saturating_add(2)) {
        Some(&[a, b]) => [a, b],
        _ => *b"00", // not reached: v < 100
    }
}

/// The decimal digits of `n`, written into the end of `buf` (two digits
/// a division: every JSON frame line has half a dozen numbers).
pub fn u64_digits(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    // (20 digits hold u64::MAX: `start` never reaches 0 early.)
    while n >= 100 {
        let pair = digit_pair(n % 100);
        n /= 100;
        start = start.saturating_sub(2);
        if let Some(d) = buf.get_mut(start..start.saturating_add(2)) {
            d.copy_from_slice(&pair);
        }
    }
    if n >= 10 {
        start = start.saturating_sub(2);
        if let Some(d) = buf.get_mut(start..start.saturating_add(2)) {
            d.copy_from_slice(&digit_pair(n));
        }
    } else {
        start = start.saturating_sub(1);
        if let Some(d) = buf.get_mut(start) {
            *d = b'0'.wrapping_add(u8::try_from(n).unwrap_or(0));
        }
    }
    buf.get(start..).unwrap_or_default()
}

/// Lowercase hex of `bytes`, for machine output of non-UTF-8 data.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().saturating_mul(2));
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_what_display_writes() {
        // Each side of every power of ten (odd and even digit counts),
        // then a spread of values by a fixed LCG.
        let mut cases = vec![0u64, u64::MAX];
        let mut p = 1u64;
        while let Some(next) = p.checked_mul(10) {
            cases.extend([p - 1, p, p + 1, next - 1]);
            p = next;
        }
        cases.extend([p - 1, p, p + 1]); // 10^19: twenty digits
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..100_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            cases.push(x >> (x % 64));
        }
        let mut buf = [0u8; 20];
        for n in cases {
            assert_eq!(u64_digits(n, &mut buf), n.to_string().as_bytes(), "{n}");
        }
    }

    #[test]
    fn escapes_what_is_not_plain_text() {
        assert_eq!(escape(b"hello"), "hello");
        assert_eq!(escape("olá".as_bytes()), "olá");
        assert_eq!(escape(b"a\xc3"), "a\\xC3");
        assert_eq!(escape(b"\xff\xfe"), "\\xFF\\xFE");
        assert_eq!(escape(b"a\"b\\c\n\0\x1b"), "a\\\"b\\\\c\\n\\0\\u{1B}");
        assert_eq!(hex(b"\x00\xff"), "00ff");
        for n in [
            0,
            7,
            10,
            99,
            100,
            65_535,
            1_000_000,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut s = String::from("x");
            push_u64(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
        assert_eq!(preview(b"short"), "\"short\"");
        let long = [b'x'; 70];
        assert_eq!(
            preview(&long),
            format!("\"{}\"… (+6 bytes)", "x".repeat(64))
        );
    }
}
