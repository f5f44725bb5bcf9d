//! The field spec: the one description of the lab's binary framings.
//!
//! Everything that knows where a field sits reads it from here: the codec's
//! byte ranges and padding byte ([`crate::codec::v2`], [`crate::codec::v3`]),
//! the diagnostics printed by servers, clients and capture, and (next) the Lua
//! dissector generator. Change a field here and the tests in this module and
//! in the codec fail until everything agrees.
//!
//! # The protocols (from the lab guide, exercises 4 and 5)
//!
//! The lab's Python clients build frames with `struct.pack`. `!` means network
//! byte order (big-endian) and *standard* sizes, so `L` is 4 bytes, not the
//! platform's 8 (the guide's "2x32 bytes" means 32 bits each).
//!
//! * **v2** (`serverTCPv2.py`, format `!BLL20s`, 29 bytes): version, order,
//!   size, then the message padded with `-` to 20 characters or cut to its
//!   first 20. `size` is the length the user typed *before* padding or cutting,
//!   so it may exceed 20 (the message was cut) and a trailing `-` typed by the
//!   user cannot be told from padding: the decoded message is the first
//!   `min(size, 20)` bytes of the 20-byte field.
//! * **v3** (`serverTCPv3.py`, format `!BLL` + `size` bytes): the same 9-byte
//!   header, then exactly `size` message bytes. A reader must not trust `size`
//!   blindly: a hostile header can claim 4 GiB, so it is checked against a
//!   maximum before anything is read or reserved.

use std::ops::Range;

/// How a field's bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// One unsigned byte (`struct` code `B`).
    U8,
    /// An unsigned 32-bit integer in network byte order (`!L`).
    U32Be,
    /// A fixed number of bytes, padded with `pad` when the content is shorter
    /// (`struct` code `20s`; the lab pads with `-` before packing).
    FixedBytes {
        /// The padding byte the lab's client uses.
        pad: u8,
        /// The integer field giving the content's length before padding or
        /// cutting: the content is its first `min(that, width)` bytes.
        len_by: &'static str,
    },
    /// As many bytes as the named integer field says (v3's message).
    SizedBy(&'static str),
}

/// One field of a framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Short name, as the lab's Python variables call it.
    pub name: &'static str,
    /// Wireshark display-filter name, e.g. `rc1.order`.
    pub filter: &'static str,
    /// Layout of the bytes.
    pub kind: FieldKind,
    /// Offset from the start of the frame.
    pub offset: usize,
    /// Width in bytes; `0` for a field sized by another field.
    pub width: usize,
    /// One-line description, shown in `--help` and in Wireshark.
    pub description: &'static str,
}

impl Field {
    /// The byte range of a fixed-width field.
    pub const fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.width
    }
}

/// A framing: a name and its fields in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramingSpec {
    /// `v2` or `v3`.
    pub name: &'static str,
    /// The Python `struct` format the lab uses.
    pub python_format: &'static str,
    /// Fields in wire order.
    pub fields: &'static [Field],
}

impl FramingSpec {
    /// Length of the fixed part: the end of the last fixed-width field.
    pub const fn fixed_len(&self) -> usize {
        let mut end = 0;
        let mut i = 0;
        while i < self.fields.len() {
            let f = &self.fields[i];
            if f.width > 0 {
                end = f.offset + f.width;
            }
            i += 1;
        }
        end
    }

    /// The field called `name`, if any.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

const VERSION: Field = Field {
    name: "version",
    filter: "rc1.version",
    kind: FieldKind::U8,
    offset: 0,
    width: 1,
    description: "Protocol version (the lab client sends 1)",
};
const ORDER: Field = Field {
    name: "order",
    filter: "rc1.order",
    kind: FieldKind::U32Be,
    offset: 1,
    width: 4,
    description: "Message counter: 1 for the first message of a connection, +1 each",
};
const SIZE: Field = Field {
    name: "size",
    filter: "rc1.size",
    kind: FieldKind::U32Be,
    offset: 5,
    width: 4,
    description: "Length of the message the user typed, before padding or cutting",
};

/// Maximum message bytes a v2 frame carries.
pub const V2_MESSAGE_WIDTH: usize = 20;

/// v2: `!BLL20s`, 29 bytes.
pub const V2: FramingSpec = FramingSpec {
    name: "v2",
    python_format: "!BLL20s",
    fields: &[
        VERSION,
        ORDER,
        SIZE,
        Field {
            name: "message",
            filter: "rc1.message",
            kind: FieldKind::FixedBytes {
                pad: b'-',
                len_by: "size",
            },
            offset: 9,
            width: V2_MESSAGE_WIDTH,
            description: "Message padded with '-' to 20 bytes, or its first 20 bytes",
        },
    ],
};

/// v3: `!BLL` followed by `size` message bytes.
pub const V3: FramingSpec = FramingSpec {
    name: "v3",
    python_format: "!BLL",
    fields: &[
        VERSION,
        ORDER,
        SIZE,
        Field {
            name: "message",
            filter: "rc1.message",
            kind: FieldKind::SizedBy("size"),
            offset: 9,
            width: 0,
            description: "Message: exactly `size` bytes",
        },
    ],
};

/// A field's value, as [`FramingSpec::decode`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// An integer field.
    Uint(u64),
    /// A byte field: its content, and (fixed-width fields) the padding
    /// after it.
    Bytes {
        /// The content.
        content: &'a [u8],
        /// Bytes of the field after the content.
        padding: &'a [u8],
    },
}

/// A frame decoded field by field, straight from the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldValues<'a> {
    /// Every field of the framing, in wire order, with its value.
    pub fields: Vec<(&'static Field, Value<'a>)>,
    /// Bytes the frame takes.
    pub len: usize,
}

impl<'a> FieldValues<'a> {
    /// The value of the field called `name`.
    pub fn get(&self, name: &str) -> Option<Value<'a>> {
        self.fields
            .iter()
            .find(|(f, _)| f.name == name)
            .map(|(_, v)| *v)
    }

    /// The integer value of the field called `name`.
    pub fn uint(&self, name: &str) -> Option<u64> {
        match self.get(name)? {
            Value::Uint(n) => Some(n),
            Value::Bytes { .. } => None,
        }
    }
}

impl FramingSpec {
    /// Decodes one frame at the start of `b` by walking the field table:
    /// the reference reading of the spec, which the codec is tested
    /// against and which the generated Lua dissector mirrors. `None` when
    /// `b` holds less than a whole frame, or a field sized by another is
    /// larger than `max_sized` (checked before any use of it).
    pub fn decode<'a>(&'static self, b: &'a [u8], max_sized: u64) -> Option<FieldValues<'a>> {
        let mut fields: Vec<(&'static Field, Value<'a>)> = Vec::with_capacity(self.fields.len());
        let mut end = 0usize;
        for f in self.fields {
            let uint_of = |name: &str, fields: &[(&'static Field, Value<'a>)]| {
                fields.iter().find_map(|(g, v)| match v {
                    Value::Uint(n) if g.name == name => Some(*n),
                    _ => None,
                })
            };
            let value = match f.kind {
                FieldKind::U8 => Value::Uint(u64::from(*b.get(f.offset)?)),
                FieldKind::U32Be => {
                    let bytes: [u8; 4] = b.get(f.range())?.try_into().ok()?;
                    Value::Uint(u64::from(u32::from_be_bytes(bytes)))
                }
                FieldKind::FixedBytes { len_by, .. } => {
                    let field = b.get(f.range())?;
                    let n = uint_of(len_by, &fields)?;
                    let cut = usize::try_from(n).unwrap_or(usize::MAX).min(f.width);
                    let (content, padding) = field.split_at(cut);
                    Value::Bytes { content, padding }
                }
                FieldKind::SizedBy(by) => {
                    let n = uint_of(by, &fields)?;
                    if n > max_sized {
                        return None;
                    }
                    let n = usize::try_from(n).ok()?;
                    let content = b.get(f.offset..f.offset.checked_add(n)?)?;
                    Value::Bytes {
                        content,
                        padding: &[],
                    }
                }
            };
            let f_end = match value {
                Value::Bytes { content, .. } if f.width == 0 => {
                    f.offset.checked_add(content.len())?
                }
                _ => f.offset.checked_add(f.width)?,
            };
            end = end.max(f_end);
            fields.push((f, value));
        }
        Some(FieldValues { fields, len: end })
    }
}

/// Every framing, for generators that walk them all.
pub const FRAMINGS: &[FramingSpec] = &[V2, V3];

/// The rules of automatic framing detection (`--proto auto`, and the Lua
/// dissector's "auto" preference), in words. [`crate::codec::detect`]
/// implements them; the generated dissector carries this text above its
/// port of that code.
pub const AUTO_RULES: &str = include_str!("auto-rules.md");

/// Default largest v3 message accepted (`--max-frame`): 1 MiB.
pub const DEFAULT_MAX_FRAME: u32 = 1 << 20;

/// The version byte the lab's clients send.
pub const LAB_VERSION: u8 = 1;

/// A diagnostic: a stable code that every part of rc1 (and the Lua
/// dissector) reports the same problem under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable, greppable code, e.g. `v3.size_over_max`.
    pub code: &'static str,
    /// One-line meaning.
    pub summary: &'static str,
}

/// v3 header claims more message bytes than the configured maximum.
pub const V3_SIZE_OVER_MAX: Diagnostic = Diagnostic {
    code: "v3.size_over_max",
    summary: "v3 header claims a message larger than the maximum frame size",
};
/// v2 `size` above 20: the message was cut to its first 20 bytes.
pub const V2_SIZE_OVER_20: Diagnostic = Diagnostic {
    code: "v2.size_over_20",
    summary: "v2 size is above 20: the message was cut to 20 bytes",
};
/// v2 padding bytes that are not `-`.
pub const V2_BAD_PADDING: Diagnostic = Diagnostic {
    code: "v2.bad_padding",
    summary: "v2 padding after the message is not '-'",
};
/// A version byte other than the lab's 1.
pub const FRAME_UNEXPECTED_VERSION: Diagnostic = Diagnostic {
    code: "frame.unexpected_version",
    summary: "version byte is not 1, the lab's version",
};
/// The stream ended inside a frame.
pub const FRAME_TRUNCATED: Diagnostic = Diagnostic {
    code: "frame.truncated",
    summary: "the stream ended inside a frame",
};
/// An echo that differs from its request.
pub const ECHO_MISMATCH: Diagnostic = Diagnostic {
    code: "echo.mismatch",
    summary: "the echo differs from the request it answers",
};
/// A request whose echo never came.
pub const ECHO_MISSING: Diagnostic = Diagnostic {
    code: "echo.missing",
    summary: "no echo came for a request",
};

/// Bytes of a TCP stream that were never captured.
pub const TCP_GAP: Diagnostic = Diagnostic {
    code: "tcp.gap",
    summary: "bytes of the TCP stream were never captured (lost, or dropped by the capture)",
};
/// A retransmission whose bytes differ from the first copy.
pub const TCP_OVERLAP_CONFLICT: Diagnostic = Diagnostic {
    code: "tcp.overlap_conflict",
    summary: "overlapping TCP data differs from the first copy (the first copy is kept)",
};
/// A frame cut by a gap: not decoded.
pub const FRAME_DAMAGED: Diagnostic = Diagnostic {
    code: "frame.damaged",
    summary: "a frame cut by a capture gap was not decoded",
};
/// No frame header can be trusted any more in this direction.
pub const FRAME_UNSYNCHRONISED: Diagnostic = Diagnostic {
    code: "frame.unsynchronised",
    summary: "no frame header can be trusted after a problem; the rest of the direction is not decoded",
};
/// A packet that could not be parsed.
pub const PACKET_UNPARSED: Diagnostic = Diagnostic {
    code: "packet.unparsed",
    summary: "a captured packet could not be parsed",
};
/// A packet cut by the snap length.
pub const PACKET_SNAPPED: Diagnostic = Diagnostic {
    code: "packet.snapped",
    summary: "a packet was cut by the capture's snap length",
};
/// Requests no longer tracked while waiting for echoes.
pub const ECHO_UNTRACKED: Diagnostic = Diagnostic {
    code: "echo.untracked",
    summary: "too many requests waited for echoes; the oldest were no longer tracked",
};

/// Too many open sessions: the least recently active were ended early.
pub const SESSION_EVICTED: Diagnostic = Diagnostic {
    code: "session.evicted",
    summary: "too many sessions open at once; the least recently active were ended early",
};

/// Segments or ACKs whose numbers are implausible: ignored.
pub const TCP_OUT_OF_WINDOW: Diagnostic = Diagnostic {
    code: "tcp.out_of_window",
    summary: "segments or ACKs with implausible sequence numbers were ignored",
};

/// A TCP segment that repeats bytes already seen (Wireshark's
/// `[TCP Retransmission]`).
pub const TCP_RETRANSMISSION: Diagnostic = Diagnostic {
    code: "tcp.retransmission",
    summary: "a TCP segment repeated bytes already seen",
};

/// A TCP segment that arrived ahead of a hole (Wireshark's
/// `[TCP Out-Of-Order]` / `[TCP Previous segment not captured]`).
pub const TCP_OUT_OF_ORDER: Diagnostic = Diagnostic {
    code: "tcp.out_of_order",
    summary: "a TCP segment arrived ahead of bytes not yet seen",
};

/// IP fragments that overlap with different bytes.
pub const IP_FRAGMENT_OVERLAP: Diagnostic = Diagnostic {
    code: "ip.fragment_overlap",
    summary: "IP fragments overlap with different bytes; the datagram was dropped",
};

/// An IP datagram whose fragments did not all come.
pub const IP_FRAGMENT_INCOMPLETE: Diagnostic = Diagnostic {
    code: "ip.fragment_incomplete",
    summary: "an IP datagram's fragments did not all come; what came is reported",
};

/// IP fragments describing more than 65,535 bytes.
pub const IP_FRAGMENT_TOO_LONG: Diagnostic = Diagnostic {
    code: "ip.fragment_too_long",
    summary: "IP fragments describe a datagram over 65,535 bytes; dropped",
};

/// Packets of an interface whose link type rc1 does not read.
pub const LINK_UNSUPPORTED: Diagnostic = Diagnostic {
    code: "link.unsupported",
    summary: "packets of a link type rc1 does not read were counted, not decoded",
};

/// A session picked up mid-stream began inside a frame.
pub const FRAME_PARTIAL: Diagnostic = Diagnostic {
    code: "frame.partial",
    summary: "the first captured bytes are the end of a frame sent before the capture began",
};

/// Every diagnostic code, in one place.
pub const DIAGNOSTICS: &[Diagnostic] = &[
    TCP_OUT_OF_WINDOW,
    TCP_RETRANSMISSION,
    TCP_OUT_OF_ORDER,
    IP_FRAGMENT_OVERLAP,
    IP_FRAGMENT_INCOMPLETE,
    IP_FRAGMENT_TOO_LONG,
    LINK_UNSUPPORTED,
    FRAME_PARTIAL,
    SESSION_EVICTED,
    TCP_GAP,
    TCP_OVERLAP_CONFLICT,
    FRAME_DAMAGED,
    FRAME_UNSYNCHRONISED,
    PACKET_UNPARSED,
    PACKET_SNAPPED,
    ECHO_UNTRACKED,
    V3_SIZE_OVER_MAX,
    V2_SIZE_OVER_20,
    V2_BAD_PADDING,
    FRAME_UNEXPECTED_VERSION,
    FRAME_TRUNCATED,
    ECHO_MISMATCH,
    ECHO_MISSING,
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn fixed_fields_are_contiguous_from_zero() {
        for framing in FRAMINGS {
            let mut next = 0;
            for f in framing.fields {
                assert_eq!(f.offset, next, "{}.{} offset", framing.name, f.name);
                match f.kind {
                    FieldKind::U8 => assert_eq!(f.width, 1),
                    FieldKind::U32Be => assert_eq!(f.width, 4),
                    FieldKind::FixedBytes { .. } => assert!(f.width > 0),
                    FieldKind::SizedBy(by) => {
                        assert_eq!(f.width, 0);
                        let sizer = framing.field(by).expect("sizing field exists");
                        assert_eq!(sizer.kind, FieldKind::U32Be);
                    }
                }
                next += f.width;
            }
        }
    }

    #[test]
    fn lengths_match_the_python_formats() {
        // struct.calcsize('!BLL20s') == 29, struct.calcsize('!BLL') == 9
        assert_eq!(V2.fixed_len(), 29);
        assert_eq!(V3.fixed_len(), 9);
        assert_eq!(V2.python_format, "!BLL20s");
        assert_eq!(V3.python_format, "!BLL");
    }

    #[test]
    fn filter_names_are_unique_per_framing_and_prefixed() {
        for framing in FRAMINGS {
            let mut seen = HashSet::new();
            for f in framing.fields {
                assert!(f.filter.starts_with("rc1."), "{}", f.filter);
                assert_eq!(f.filter, format!("rc1.{}", f.name));
                assert!(seen.insert(f.filter), "duplicate {}", f.filter);
            }
        }
    }

    proptest::proptest! {
        /// The table-driven reading of the spec and the codec agree on
        /// every frame (fields, message, padding, length).
        #[test]
        fn decoding_by_the_table_agrees_with_the_codec(
            v3 in proptest::bool::ANY,
            version in 0u8..=255,
            order in 0u32..=u32::MAX,
            msg in proptest::collection::vec(0u8..=255, 0..80),
            extra in proptest::collection::vec(0u8..=255, 0..40),
        ) {
            use crate::codec::{Frame, Framing, Parse, parse};
            let (framing, spec) = if v3 { (Framing::V3, &V3) } else { (Framing::V2, &V2) };
            let f = match framing {
                Framing::V2 => Frame::v2(version, order, &msg).unwrap(),
                Framing::V3 => Frame::v3(version, order, &msg).unwrap(),
            };
            let mut wire = Vec::new();
            f.encode(framing, &mut wire);
            let frame_len = wire.len();
            wire.extend_from_slice(&extra);
            let Ok(Parse::Frame(c)) = parse(framing, &wire, DEFAULT_MAX_FRAME) else {
                panic!("codec did not decode its own frame");
            };
            let t = spec.decode(&wire, u64::from(DEFAULT_MAX_FRAME)).expect("table decode");
            proptest::prop_assert_eq!(t.len, frame_len);
            proptest::prop_assert_eq!(t.uint("version"), Some(u64::from(c.version)));
            proptest::prop_assert_eq!(t.uint("order"), Some(u64::from(c.order)));
            proptest::prop_assert_eq!(t.uint("size"), Some(u64::from(c.size)));
            proptest::prop_assert_eq!(
                t.get("message"),
                Some(Value::Bytes { content: c.message, padding: c.padding })
            );
            // One byte short of the frame is not a frame.
            proptest::prop_assert_eq!(spec.decode(&wire[..frame_len - 1], u64::MAX), None);
        }
    }

    #[test]
    fn a_sized_field_over_the_limit_is_refused_before_use() {
        let mut h = vec![1, 0, 0, 0, 1];
        h.extend_from_slice(&4_000_000_000u32.to_be_bytes());
        assert_eq!(V3.decode(&h, u64::from(DEFAULT_MAX_FRAME)), None);
    }

    #[test]
    fn diagnostic_codes_are_unique_and_dotted() {
        let mut seen = HashSet::new();
        for d in DIAGNOSTICS {
            assert!(d.code.contains('.'), "{}", d.code);
            assert!(seen.insert(d.code), "duplicate {}", d.code);
        }
    }
}
