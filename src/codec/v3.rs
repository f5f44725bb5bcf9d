//! v3: a 9-byte header `!BLL` followed by exactly `size` message bytes
//! (lab exercise 5).
//!
//! The header is checked before the body is waited for: a `size` above the
//! configured maximum is an error at once, and nothing is reserved for it.

use super::{DecodeError, Frame, FrameRef, HeaderLayout, Parse};
use crate::spec;

const LAYOUT: HeaderLayout = HeaderLayout::of(&spec::V3);

/// Length of the v3 header: 9.
pub const HEADER_LEN: usize = spec::V3.fixed_len();

/// Appends `frame`: the header with `frame.size`, then the message.
pub(super) fn encode(frame: &Frame, out: &mut Vec<u8>) {
    LAYOUT.write(out, frame.version, frame.order, frame.size);
    out.extend_from_slice(&frame.message);
}

/// Parses one v3 frame at the start of `buf`, refusing a header whose
/// `size` exceeds `max_frame`.
pub fn parse(buf: &[u8], max_frame: u32) -> Result<Parse<'_>, DecodeError> {
    let Some((version, order, size)) = LAYOUT.read(buf) else {
        return Ok(Parse::Incomplete {
            need: HEADER_LEN as u64,
        });
    };
    if size > max_frame {
        return Err(DecodeError::SizeOverMax {
            claimed: size,
            max: max_frame,
        });
    }
    // size <= max_frame <= u32::MAX, so this fits a u64 and (on 64-bit and
    // 32-bit targets alike, once checked) a usize.
    let need = (HEADER_LEN as u64).saturating_add(u64::from(size));
    let Some(raw) = usize::try_from(need).ok().and_then(|n| buf.get(..n)) else {
        return Ok(Parse::Incomplete { need });
    };
    let message = raw.get(HEADER_LEN..).unwrap_or_default();
    Ok(Parse::Frame(FrameRef {
        version,
        order,
        size,
        message,
        padding: &[],
        raw,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::indexing_slicing,
        reason = "a panic in a test is a failed test"
    )]

    use super::*;
    use crate::codec::Framing;

    /// `struct.pack('!BLL', 1, 2, 12) + b'hello world!'`
    static HELLO: [u8; 21] = [
        0x01, // version 1
        0x00, 0x00, 0x00, 0x02, // order 2
        0x00, 0x00, 0x00, 0x0c, // size 12
        b'h', b'e', b'l', b'l', b'o', b' ', b'w', b'o', b'r', b'l', b'd', b'!', // message
    ];

    #[test]
    fn decode_and_encode_lab_bytes() {
        let Parse::Frame(f) = parse(&HELLO, 1 << 20).unwrap() else {
            panic!("incomplete")
        };
        assert_eq!((f.version, f.order, f.size), (1, 2, 12));
        assert_eq!(f.message, b"hello world!");
        assert_eq!(f.raw, &HELLO);
        assert_eq!(
            f.describe(Framing::V3),
            "v3 ver=1 order=2 size=12 \"hello world!\""
        );
        assert_eq!(
            Frame::v3(1, 2, b"hello world!")
                .unwrap()
                .to_bytes(Framing::V3),
            HELLO
        );
    }

    #[test]
    fn every_truncation_is_incomplete_with_the_right_need() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                parse(&HELLO[..len], 100).unwrap(),
                Parse::Incomplete { need: 9 }
            );
        }
        for len in HEADER_LEN..HELLO.len() {
            assert_eq!(
                parse(&HELLO[..len], 100).unwrap(),
                Parse::Incomplete { need: 21 }
            );
        }
    }

    #[test]
    fn oversized_claim_is_refused_on_the_header_alone() {
        // struct.pack('!BLL', 1, 1, 4_000_000_000)
        let hdr = [1, 0, 0, 0, 1, 0xEE, 0x6B, 0x28, 0x00];
        let e = parse(&hdr, 1 << 20).unwrap_err();
        assert_eq!(
            e,
            DecodeError::SizeOverMax {
                claimed: 4_000_000_000,
                max: 1 << 20
            }
        );
        assert_eq!(e.diagnostic().code, "v3.size_over_max");
        let text = e.to_string();
        assert!(
            text.contains("4000000000") && text.contains("1048576"),
            "{text}"
        );
        // Exactly at the limit is fine.
        let mut at = vec![1, 0, 0, 0, 1, 0, 0, 0, 4];
        at.extend_from_slice(b"abcd");
        assert!(matches!(parse(&at, 4).unwrap(), Parse::Frame(_)));
        assert!(parse(&at, 3).is_err());
    }

    #[test]
    fn empty_message() {
        let b = Frame::v3(1, 1, b"").unwrap().to_bytes(Framing::V3);
        assert_eq!(b, [1, 0, 0, 0, 1, 0, 0, 0, 0]);
        let Parse::Frame(f) = parse(&b, 0).unwrap() else {
            panic!()
        };
        assert_eq!(f.message, b"");
    }
}
