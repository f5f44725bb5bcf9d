//! Showing bytes as text without ever failing on them.
//!
//! Messages come off the wire: they may be cut inside a UTF-8 character (v2
//! cuts at 20 bytes), or not be text at all. [`escape`] keeps valid UTF-8 as
//! it is and writes everything else so a person can read it and no byte is
//! hidden: `\xFF` for an invalid byte, `\n`, `\t`, `\r`, `\0`, `\\`, `\"`,
//! and `\u{1B}`-style escapes for other control characters.

use std::fmt::Write;

/// A printable, quotable rendering of `bytes`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
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
    out
}

/// Messages longer than this are shown cut by [`preview`].
pub const PREVIEW_BYTES: usize = 64;

/// A quoted, escaped rendering for one-line output: the first
/// [`PREVIEW_BYTES`] bytes, then how many more there were.
pub fn preview(bytes: &[u8]) -> String {
    match bytes.get(..PREVIEW_BYTES) {
        Some(head) if bytes.len() > PREVIEW_BYTES => format!(
            "\"{}\"… (+{} bytes)",
            escape(head),
            bytes.len().saturating_sub(PREVIEW_BYTES)
        ),
        _ => format!("\"{}\"", escape(bytes)),
    }
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
    fn escapes_what_is_not_plain_text() {
        assert_eq!(escape(b"hello"), "hello");
        assert_eq!(escape("olá".as_bytes()), "olá");
        assert_eq!(escape(b"a\xc3"), "a\\xC3");
        assert_eq!(escape(b"\xff\xfe"), "\\xFF\\xFE");
        assert_eq!(escape(b"a\"b\\c\n\0\x1b"), "a\\\"b\\\\c\\n\\0\\u{1B}");
        assert_eq!(hex(b"\x00\xff"), "00ff");
        assert_eq!(preview(b"short"), "\"short\"");
        let long = [b'x'; 70];
        assert_eq!(
            preview(&long),
            format!("\"{}\"… (+6 bytes)", "x".repeat(64))
        );
    }
}
