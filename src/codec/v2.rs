//! v2: fixed 29-byte frames, Python `struct` format `!BLL20s` (lab exercise 4).
//!
//! The byte ranges come from [`crate::spec::V2`]; [`LEN`] is the end of the
//! last field, never typed twice.

use super::{Frame, FrameRef, HeaderLayout, Parse};
use crate::spec;

const LAYOUT: HeaderLayout = HeaderLayout::of(&spec::V2);

/// The message field's range, from the spec.
const MESSAGE: std::ops::Range<usize> = MESSAGE_FIELD.range();

/// The padding byte, from the spec's message field (`-` in the lab).
pub const PAD: u8 = match MESSAGE_FIELD.kind {
    spec::FieldKind::FixedBytes { pad, .. } => pad,
    _ => panic!("the v2 message field must be fixed bytes with a pad"),
};

#[expect(
    clippy::indexing_slicing,
    reason = "const evaluation of the static spec: a bad index fails the build"
)]
const MESSAGE_FIELD: spec::Field = spec::V2.fields[3];

/// Length of every v2 frame: 29.
pub const LEN: usize = spec::V2.fixed_len();

/// Appends `frame` as 29 bytes: header, then message and padding, filled
/// with `-` or cut so the field is exactly 20 bytes.
pub(super) fn encode(frame: &Frame, out: &mut Vec<u8>) {
    let start = out.len();
    LAYOUT.write(out, frame.version, frame.order, frame.size);
    let width = MESSAGE.len();
    let field = frame
        .message
        .iter()
        .chain(frame.padding.iter())
        .chain(std::iter::repeat(&PAD))
        .take(width);
    out.extend(field);
    debug_assert_eq!(out.len().wrapping_sub(start), LEN);
}

/// Parses one v2 frame at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parse<'_> {
    match buf.get(..LEN) {
        Some(raw) => match view(raw) {
            Some(f) => Parse::Frame(f),
            None => Parse::Incomplete { need: LEN as u64 },
        },
        None => Parse::Incomplete { need: LEN as u64 },
    }
}

/// Reads a frame from exactly the first 29 bytes of `raw`; `None` when
/// it is shorter.
pub fn view(raw: &[u8]) -> Option<FrameRef<'_>> {
    let raw = raw.get(..LEN)?;
    let (version, order, size) = LAYOUT.read(raw)?;
    let field = raw.get(MESSAGE)?;
    // The decoded message is the first min(size, 20) bytes (PROTOCOL.md §4).
    let keep = usize::try_from(size).map_or(field.len(), |s| s.min(field.len()));
    let (message, padding) = field.split_at(keep);
    Some(FrameRef {
        version,
        order,
        size,
        message,
        padding,
        raw,
    })
}

/// Builds an owned frame from header values and a 20-byte field.
pub(super) fn from_field(version: u8, order: u32, size: u32, field: &[u8]) -> Frame {
    let mut raw = Vec::with_capacity(LEN);
    LAYOUT.write(&mut raw, version, order, size);
    raw.extend(
        field
            .iter()
            .chain(std::iter::repeat(&0))
            .take(MESSAGE.len()),
    );
    match view(&raw) {
        Some(f) => f.to_frame(),
        None => unreachable!("29 bytes were just written"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::indexing_slicing,
        reason = "a panic in a test is a failed test"
    )]

    use super::*;
    use crate::codec::Framing;

    /// `struct.pack('!BLL20s', 1, 3, 5, 'hello'.ljust(20, '-').encode())`
    static HELLO: [u8; 29] = [
        0x01, // version 1
        0x00, 0x00, 0x00, 0x03, // order 3
        0x00, 0x00, 0x00, 0x05, // size 5
        b'h', b'e', b'l', b'l', b'o', // message
        b'-', b'-', b'-', b'-', b'-', b'-', b'-', b'-', b'-', b'-', // padding
        b'-', b'-', b'-', b'-', b'-', //
    ];

    #[test]
    fn layout_and_padding_come_from_the_spec() {
        assert_eq!(MESSAGE_FIELD.name, "message");
        assert_eq!(MESSAGE, spec::V2.field("message").unwrap().range());
        assert_eq!(PAD, b'-');
        assert_eq!(LEN, 29);
    }

    #[test]
    fn decode_lab_bytes() {
        let f = view(&HELLO).unwrap();
        assert_eq!((f.version, f.order, f.size), (1, 3, 5));
        assert_eq!(f.message, b"hello");
        assert_eq!(f.padding, &[b'-'; 15]);
        assert!(f.padding_ok());
        assert!(!f.is_cut());
        assert_eq!(f.raw, &HELLO);
        assert_eq!(f.describe(Framing::V2), "v2 ver=1 order=3 size=5 \"hello\"");
    }

    #[test]
    fn encode_lab_bytes() {
        let f = Frame::v2(1, 3, b"hello").unwrap();
        assert_eq!(f.to_bytes(Framing::V2), HELLO);
        assert_eq!(Frame::v2_python(1, 3, "hello").unwrap(), f);
    }

    #[test]
    fn long_message_is_cut_and_size_kept() {
        // struct.pack('!BLL20s', 1, 1, 25, 'hello world, how are you'[:20]...)
        let f = Frame::v2(1, 1, b"hello world, how are you").unwrap();
        let b = f.to_bytes(Framing::V2);
        assert_eq!(b.len(), 29);
        assert_eq!(&b[5..9], &24u32.to_be_bytes());
        assert_eq!(&b[9..], b"hello world, how are");
        let d = view(&b).unwrap();
        assert!(d.is_cut());
        assert_eq!(d.message, b"hello world, how are");
        assert_eq!(
            d.describe(Framing::V2),
            "v2 ver=1 order=1 size=24 \"hello world, how are\" (cut)"
        );
        assert_eq!(d.to_frame(), f);
    }

    #[test]
    fn python_non_ascii_is_cut_mid_character_like_struct() {
        // Python: m = 'é'*20 → size 20, m.encode() is 40 bytes, struct keeps 20.
        let f = Frame::v2_python(1, 1, &"é".repeat(20)).unwrap();
        assert_eq!(f.size, 20);
        assert_eq!(f.message, "é".repeat(10).as_bytes());
        // 'aé' → size 2, 'aé' + 18*'-' = 19 chars, 20 bytes: field is exact.
        let f = Frame::v2_python(1, 1, "aé").unwrap();
        assert_eq!(f.size, 2);
        assert_eq!(f.message, b"a\xc3"); // first size=2 bytes: cut inside 'é'
        assert_eq!(f.padding, [&[0xa9][..], &[b'-'; 17]].concat());
        let shown = f.as_ref().describe(Framing::V2);
        assert!(shown.contains("\"a\\xC3\""), "{shown}");
        // Short UTF-8 field is NUL-padded by struct: '€' + 19 '-' = 22 bytes → cut.
        let f = Frame::v2_python(1, 1, "€").unwrap();
        assert_eq!(f.to_bytes(Framing::V2)[9..].len(), 20);
    }

    #[test]
    fn every_truncation_is_incomplete() {
        for len in 0..LEN {
            assert_eq!(
                parse(&HELLO[..len]),
                Parse::Incomplete { need: 29 },
                "len {len}"
            );
        }
    }

    #[test]
    fn odd_padding_and_version_are_flagged_not_rejected() {
        let mut b = HELLO;
        b[0] = 9;
        b[20] = b'x';
        let f = view(&b).unwrap();
        let codes: Vec<_> = f.diagnostics(Framing::V2).map(|d| d.code).collect();
        assert_eq!(codes, ["frame.unexpected_version", "v2.bad_padding"]);
        assert_eq!(f.to_frame().to_bytes(Framing::V2), b);
    }
}
