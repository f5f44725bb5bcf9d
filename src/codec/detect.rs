//! Which framing does a stream carry? The one set of rules behind
//! `--proto auto` (and, stated again in its header, the Lua dissector's
//! auto mode).
//!
//! Looking at the first bytes a client sent:
//!
//! 1. **v2** when they are whole 29-byte frames (`len % 29 == 0`; once the
//!    bytes are complete, at least one whole frame and a partial one after
//!    it) that agree with each other: the same version byte, `order` going up
//!    by one, and every byte after the first `min(size, 20)` of the message
//!    field being the lab's `-` padding.
//! 2. **v3** when they are a chain of `!BLL` headers each followed by exactly
//!    `size` bytes (`size` within `--max-frame`), ending exactly where the
//!    bytes end, with the same version byte and `order` going up by one.
//! 3. **text** otherwise — including fewer than 9 bytes, which cannot hold a
//!    v2 or v3 header.
//!
//! v2 is tried first: a v2 frame read as v3 points its next header into the
//! `-` padding, whose `order` is then nonsense, so the two do not collide in
//! practice. Until the bytes are *complete* (the server answered, or the
//! stream ended), a decision is made only when it is certain; otherwise the
//! caller waits for more.

use super::{Framing, Parse, parse, v2, v3};

/// What a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// A binary framing.
    Framed(Framing),
    /// Raw text (no framing).
    Text,
}

/// A decision and the reason for it, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// What was found.
    pub detected: Detected,
    /// Why, for the user.
    pub reason: String,
}

/// Decides from `first`, the first bytes of the client's stream.
/// `complete`: no more bytes are coming before an answer (the server
/// replied, or the stream ended). Returns `None` when it is too early.
pub fn detect(first: &[u8], complete: bool, max_frame: u32) -> Option<Detection> {
    if let Some(reason) = v2_chain(first, complete) {
        return Some(Detection {
            detected: Detected::Framed(Framing::V2),
            reason,
        });
    }
    if let Some(reason) = v3_chain(first, max_frame, complete) {
        return Some(Detection {
            detected: Detected::Framed(Framing::V3),
            reason,
        });
    }
    if !complete {
        return None;
    }
    let reason = if first.len() < v3::HEADER_LEN {
        format!(
            "{} bytes before the first answer: too short for a v2/v3 header",
            first.len()
        )
    } else if std::str::from_utf8(first).is_ok() {
        "printable text with no consistent v2/v3 header".to_string()
    } else {
        "no consistent v2/v3 header; shown as raw text".to_string()
    };
    Some(Detection {
        detected: Detected::Text,
        reason,
    })
}

fn v2_chain(b: &[u8], complete: bool) -> Option<String> {
    let whole = b.len() / v2::LEN;
    // Until the bytes are complete, only an exact multiple is certain; once
    // complete (the server already answered), a client that pipelines may
    // have sent part of its next frame: judge the whole frames.
    if whole == 0 || (!complete && b.len() % v2::LEN != 0) {
        return None;
    }
    let mut first: Option<(u8, u32)> = None;
    let mut n: u32 = 0;
    for chunk in b.chunks_exact(v2::LEN) {
        let f = v2::view(chunk)?;
        if !f.padding_ok() {
            return None;
        }
        match first {
            None => first = Some((f.version, f.order)),
            Some((v, o)) => {
                if f.version != v || f.order != o.wrapping_add(n) {
                    return None;
                }
            }
        }
        n = n.saturating_add(1);
    }
    let (v, o) = first?;
    Some(format!(
        "{n} whole 29-byte frame(s), version {v}, order {o}..{}, '-' padding",
        o.wrapping_add(n.saturating_sub(1))
    ))
}

fn v3_chain(b: &[u8], max_frame: u32, complete: bool) -> Option<String> {
    // The lab's first frame: version 1, order 1. A size over the limit is
    // still v3 (so the oversized claim gets reported as such).
    if let Some(h) = b.get(..v3::HEADER_LEN)
        && let Err(e) = parse(Framing::V3, h, max_frame)
        && h.get(..5) == Some(&[1, 0, 0, 0, 1])
    {
        return Some(format!(
            "a v3 header (version 1, order 1) whose size is over the limit: {e}"
        ));
    }
    let mut at = 0usize;
    let mut first: Option<(u8, u32)> = None;
    let mut n: u32 = 0;
    while at < b.len() {
        let rest = b.get(at..)?;
        let f = match parse(Framing::V3, rest, max_frame) {
            Ok(Parse::Frame(f)) => f,
            // A sane header whose message is still coming: v3, cut short,
            // once nothing more is expected and earlier frames agreed.
            Ok(Parse::Incomplete { .. }) if complete && rest.len() >= v3::HEADER_LEN => {
                let (v, o) = first.unwrap_or((rest.first().copied()?, 0));
                let ok = rest.first() == Some(&v)
                    && (first.is_none() || read_order(rest) == Some(o.wrapping_add(n)));
                if !ok {
                    return None;
                }
                return Some(format!(
                    "{} header(s) whose size matches the bytes that follow, the last one cut short",
                    n.saturating_add(1)
                ));
            }
            _ => return None,
        };
        match first {
            None => first = Some((f.version, f.order)),
            Some((v, o)) => {
                if f.version != v || f.order != o.wrapping_add(n) {
                    return None;
                }
            }
        }
        n = n.saturating_add(1);
        at = at.saturating_add(f.raw.len());
    }
    let (v, o) = first?;
    Some(format!(
        "{n} header(s) whose size matches the bytes that follow exactly, version {v}, order {o}..{}",
        o.wrapping_add(n.saturating_sub(1))
    ))
}

fn read_order(h: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(h.get(1..5)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        reason = "a panic in a test is a failed test"
    )]

    use super::*;
    use crate::codec::Frame;

    fn stream(framing: Framing, msgs: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let o = u32::try_from(i).unwrap() + 1;
            let f = match framing {
                Framing::V2 => Frame::v2(1, o, m.as_bytes()),
                Framing::V3 => Frame::v3(1, o, m.as_bytes()),
            };
            f.unwrap().encode(framing, &mut out);
        }
        out
    }

    #[test]
    fn v2_v3_and_text_are_told_apart() {
        let b = stream(Framing::V2, &["hello", "a much longer message than 20"]);
        let d = detect(&b, false, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(Framing::V2));
        assert!(d.reason.contains("order 1..2"), "{}", d.reason);

        // A v3 frame of exactly 29 bytes (size 20) is not mistaken for v2
        // unless its bytes look like v2 padding.
        let b = stream(Framing::V3, &["hello world!", "", "twenty characters!!!"]);
        let d = detect(&b, false, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(Framing::V3));

        assert_eq!(detect(b"hello", false, 1 << 20), None);
        let d = detect(b"hello", true, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Text);
        let d = detect(b"hello world, this is text", true, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Text);
    }

    #[test]
    fn pipelined_v2_is_judged_on_its_whole_frames_once_answered() {
        // overlap.pcap's case: 29 bytes + 15 of the next frame when the
        // server answers the first.
        let b = stream(Framing::V2, &["first", "hello, world"]);
        assert_eq!(detect(&b[..44], false, 1 << 20), None);
        let d = detect(&b[..44], true, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(Framing::V2));
    }

    #[test]
    fn an_incomplete_frame_waits_then_falls_back_to_text() {
        let b = stream(Framing::V3, &["hello world!"]);
        assert_eq!(detect(&b[..15], false, 1 << 20), None);
        // Complete but cut: still v3 (its header is sane), so the decoder
        // can report the truncated frame.
        assert_eq!(
            detect(&b[..15], true, 1 << 20).unwrap().detected,
            Detected::Framed(Framing::V3)
        );
        assert_eq!(
            detect(&b[..7], true, 1 << 20).unwrap().detected,
            Detected::Text
        );
    }

    #[test]
    fn an_oversized_first_v3_header_is_still_v3() {
        // struct.pack('!BLL', 1, 1, 4_000_000_000) + b'xx'
        let mut b = vec![1, 0, 0, 0, 1, 0xEE, 0x6B, 0x28, 0x00];
        b.extend_from_slice(b"xx");
        let d = detect(&b, false, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(Framing::V3));
        assert!(d.reason.contains("4000000000"), "{}", d.reason);
        // Another version or order: not the lab's first frame, so text.
        b[4] = 9;
        assert_eq!(detect(&b, true, 1 << 20).unwrap().detected, Detected::Text);
    }
}
