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
    /// As many bytes as the named integer field says (v3's message): the
    /// body. A framing has at most one; fields after it form a fixed
    /// trailer whose offsets count from the body's end.
    SizedBy(&'static str),
    /// An integer of another shape than [`FieldKind::U8`] and
    /// [`FieldKind::U32Be`] (which stay the canonical kinds of `B` and of a
    /// big-endian unsigned 32-bit field): `struct` codes `b H h I i L l Q
    /// q` in either byte order. Build it with [`FieldKind::int`], which
    /// picks the canonical kind.
    Int {
        /// Bytes: 1, 2, 4 or 8.
        width: u8,
        /// Two's complement (`b h i l q`) rather than unsigned.
        signed: bool,
        /// Network byte order (`!`, `>`) rather than little-endian (`<`).
        big_endian: bool,
    },
    /// A fixed number of bytes (`struct` code `Ns`) with no length field:
    /// the content is the field without its trailing `pad` bytes (Python's
    /// `struct` pads with NUL, the default), the padding is those bytes.
    Bytes {
        /// The padding byte written after shorter content.
        pad: u8,
    },
}

impl FieldKind {
    /// The kind of an integer of `width` bytes (1, 2, 4 or 8): `U8` for an
    /// unsigned byte, `U32Be` for an unsigned big-endian 32-bit integer,
    /// [`FieldKind::Int`] otherwise (a 1-byte `Int` is always marked
    /// big-endian, since byte order means nothing for it).
    pub const fn int(width: u8, signed: bool, big_endian: bool) -> FieldKind {
        match (width, signed, big_endian) {
            (1, false, _) => FieldKind::U8,
            (4, false, true) => FieldKind::U32Be,
            (1, true, _) => FieldKind::Int {
                width: 1,
                signed: true,
                big_endian: true,
            },
            _ => FieldKind::Int {
                width,
                signed,
                big_endian,
            },
        }
    }

    /// For an integer kind, `(width, signed, big_endian)`; `None` for
    /// byte fields (and for an `Int` whose width is not 1, 2, 4 or 8). Readers of integers use this rather than matching the
    /// three integer variants.
    pub const fn int_shape(self) -> Option<(u8, bool, bool)> {
        match self {
            FieldKind::U8 => Some((1, false, true)),
            FieldKind::U32Be => Some((4, false, true)),
            FieldKind::Int {
                width: width @ (1 | 2 | 4 | 8),
                signed,
                big_endian,
            } => Some((width, signed, big_endian)),
            // Not a width a field can have: read as no integer at all.
            FieldKind::Int { .. } => None,
            FieldKind::FixedBytes { .. } | FieldKind::SizedBy(_) | FieldKind::Bytes { .. } => None,
        }
    }

    /// Reads an integer of this kind from exactly its `width` bytes:
    /// unsigned values as [`Value::Uint`], signed as [`Value::Int`].
    /// `None` for a byte kind or a slice of another length.
    pub fn read_int(self, b: &[u8]) -> Option<Value<'static>> {
        let (width, signed, big_endian) = self.int_shape()?;
        if b.len() != usize::from(width) {
            return None;
        }
        let mut raw = [0u8; 8];
        let n = b.len();
        if big_endian {
            raw.get_mut(8 - n..)?.copy_from_slice(b);
        } else {
            for (i, byte) in b.iter().enumerate() {
                *raw.get_mut(7 - i)? = *byte;
            }
        }
        let u = u64::from_be_bytes(raw);
        if signed {
            let shift = 64 - 8 * u32::from(width);
            // Sign-extend: move the sign bit to bit 63, then shift back.
            Some(Value::Int(((u << shift) as i64) >> shift))
        } else {
            Some(Value::Uint(u))
        }
    }

    /// Writes `v` (reduced to the field's width: the low bytes of its
    /// two's complement) in this integer kind's byte order; `None` for a
    /// byte kind.
    pub fn write_int(self, v: i128) -> Option<Vec<u8>> {
        let (width, _, big_endian) = self.int_shape()?;
        let all = (v as u64).to_be_bytes();
        let mut b = all.get(8 - usize::from(width)..)?.to_vec();
        if !big_endian {
            b.reverse();
        }
        Some(b)
    }

    /// The smallest and largest value this integer kind holds.
    pub fn int_range(self) -> Option<(i128, i128)> {
        let (width, signed, _) = self.int_shape()?;
        let bits = 8 * u32::from(width);
        Some(if signed {
            (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
        } else {
            (0, (1i128 << bits) - 1)
        })
    }
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
    /// Offset from the start of the frame; for a field after the body (a
    /// trailer field), from the end of the body.
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
    /// Length of the fixed part: every fixed-width field, header and
    /// trailer (for a framing without a body, the frame's length).
    pub const fn fixed_len(&self) -> usize {
        let mut len = 0;
        let mut i = 0;
        while i < self.fields.len() {
            len += self.fields[i].width;
            i += 1;
        }
        len
    }

    /// Length of the header: the fields before the body (all of them when
    /// there is no body).
    pub const fn header_len(&self) -> usize {
        let mut len = 0;
        let mut i = 0;
        while i < self.fields.len() {
            if let FieldKind::SizedBy(_) = self.fields[i].kind {
                break;
            }
            len += self.fields[i].width;
            i += 1;
        }
        len
    }

    /// Length of the trailer: the fixed fields after the body (0 without
    /// a body).
    pub const fn trailer_len(&self) -> usize {
        self.fixed_len() - self.header_len()
    }

    /// The body (the field sized by another), if the framing has one.
    pub fn body(&self) -> Option<&'static Field> {
        self.fields
            .iter()
            .find(|f| matches!(f.kind, FieldKind::SizedBy(_)))
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
    /// An unsigned integer field.
    Uint(u64),
    /// A signed integer field (`struct` codes `b h i l q`).
    Int(i64),
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

    /// The value of the unsigned integer field called `name`.
    pub fn uint(&self, name: &str) -> Option<u64> {
        match self.get(name)? {
            Value::Uint(n) => Some(n),
            Value::Int(_) | Value::Bytes { .. } => None,
        }
    }

    /// The value of the integer field called `name`, signed or not.
    pub fn int(&self, name: &str) -> Option<i128> {
        match self.get(name)? {
            Value::Uint(n) => Some(i128::from(n)),
            Value::Int(n) => Some(i128::from(n)),
            Value::Bytes { .. } => None,
        }
    }

    /// The content of the byte field called `name` (without padding).
    pub fn bytes(&self, name: &str) -> Option<&'a [u8]> {
        match self.get(name)? {
            Value::Bytes { content, .. } => Some(content),
            Value::Uint(_) | Value::Int(_) => None,
        }
    }
}

/// Why [`FramingSpec::read`] found no frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// Not enough bytes yet: the frame needs `need` bytes in all, as far
    /// as known (the header and trailer until the body's length is read).
    Incomplete {
        /// Total length the frame needs, as far as known.
        need: u64,
    },
    /// The body's length field claims more than the maximum; nothing was
    /// read or reserved for it.
    OverMax {
        /// The body.
        body: &'static Field,
        /// The length field's value.
        claimed: u64,
        /// The maximum it was checked against.
        max: u64,
    },
}

impl FramingSpec {
    /// Decodes one frame at the start of `b` by walking the field table:
    /// the reference reading of the spec, which the codec is tested
    /// against and which the generated Lua dissector mirrors. `None` when
    /// `b` holds less than a whole frame, or a field sized by another is
    /// larger than `max_sized` (checked before any use of it).
    pub fn decode<'a>(&'static self, b: &'a [u8], max_sized: u64) -> Option<FieldValues<'a>> {
        self.read(b, max_sized).ok()
    }

    /// [`FramingSpec::decode`], saying why there is no frame: how many
    /// bytes it needs, or that the body's length is over `max_body`. The
    /// length is checked before the body is waited for or reserved.
    pub fn read<'a>(
        &'static self,
        b: &'a [u8],
        max_body: u64,
    ) -> Result<FieldValues<'a>, ReadError> {
        let head = self.header_len();
        let trail = self.trailer_len();
        let short = |need: u64| ReadError::Incomplete { need };
        let mut total = head.saturating_add(trail) as u64;
        if b.len() < head {
            return Err(short(total));
        }
        let mut fields: Vec<(&'static Field, Value<'a>)> = Vec::with_capacity(self.fields.len());
        let mut base = 0usize;
        for f in self.fields {
            let uint_of = |name: &str, fields: &[(&'static Field, Value<'a>)]| {
                fields.iter().find_map(|(g, v)| match v {
                    Value::Uint(n) if g.name == name => Some(*n),
                    _ => None,
                })
            };
            let start = base.saturating_add(f.offset);
            let fixed = || b.get(start..start.saturating_add(f.width));
            let value = match f.kind {
                FieldKind::U8 | FieldKind::U32Be | FieldKind::Int { .. } => f
                    .kind
                    .read_int(fixed().ok_or(short(total))?)
                    .ok_or(short(total))?,
                FieldKind::FixedBytes { len_by, .. } => {
                    let field = fixed().ok_or(short(total))?;
                    let n = uint_of(len_by, &fields).ok_or(short(total))?;
                    let cut = usize::try_from(n).unwrap_or(usize::MAX).min(f.width);
                    let (content, padding) = field.split_at(cut);
                    Value::Bytes { content, padding }
                }
                FieldKind::Bytes { pad } => {
                    let field = fixed().ok_or(short(total))?;
                    let keep = field.iter().rposition(|&c| c != pad).map_or(0, |i| i + 1);
                    let (content, padding) = field.split_at(keep);
                    Value::Bytes { content, padding }
                }
                FieldKind::SizedBy(by) => {
                    let n = uint_of(by, &fields).ok_or(short(total))?;
                    if n > max_body {
                        return Err(ReadError::OverMax {
                            body: f,
                            claimed: n,
                            max: max_body,
                        });
                    }
                    total = total.saturating_add(n);
                    let n = usize::try_from(n).map_err(|_| short(total))?;
                    let end = start.checked_add(n).ok_or(short(total))?;
                    if (b.len() as u64) < total {
                        return Err(short(total));
                    }
                    let content = b.get(start..end).ok_or(short(total))?;
                    base = end;
                    Value::Bytes {
                        content,
                        padding: &[],
                    }
                }
            };
            fields.push((f, value));
        }
        let len = usize::try_from(total).map_err(|_| short(total))?;
        if b.len() < len {
            return Err(short(total));
        }
        Ok(FieldValues { fields, len })
    }
}

/// A check a framing file adds to a field (`equals`, `expect`,
/// `checksum`): what [`crate::framing::codec`] verifies on each frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The integer field `field` must equal `value`, or the frame is
    /// invalid ([`FRAMING_CONSTANT`]; `equals = 1` in the file).
    Equals {
        /// The field.
        field: &'static str,
        /// The value it must have.
        value: i128,
    },
    /// The integer field `field` is expected to be `value`; another value
    /// is reported ([`FRAMING_UNEXPECTED_VALUE`]) but the frame is decoded
    /// (`expect = 1`; v2's and v3's version byte).
    Expect {
        /// The field.
        field: &'static str,
        /// The value the lab sends.
        value: i128,
    },
    /// The integer field `field` holds a checksum of the bytes of the
    /// fields `over`, concatenated in the order listed
    /// ([`FRAMING_CHECKSUM`] when it differs; the frame is invalid).
    Checksum {
        /// The field holding the checksum.
        field: &'static str,
        /// The algorithm.
        algorithm: ChecksumKind,
        /// The fields it covers, in the order they are summed.
        over: &'static [&'static str],
    },
}

impl Check {
    /// The field the check is on.
    pub fn field(&self) -> &'static str {
        match self {
            Check::Equals { field, .. }
            | Check::Expect { field, .. }
            | Check::Checksum { field, .. } => field,
        }
    }
}

/// A checksum algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumKind {
    /// CRC-32 as Python's `zlib.crc32` (IEEE 802.3, reflected, init and
    /// final XOR `0xFFFFFFFF`): a 4-byte unsigned field.
    Crc32,
    /// The Internet checksum (RFC 1071): the 16-bit ones' complement of
    /// the ones' complement sum of big-endian 16-bit words, an odd last
    /// byte padded with zero: a 2-byte unsigned field.
    Internet,
}

impl ChecksumKind {
    /// The name a framing file writes: `crc32` or `internet`.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumKind::Crc32 => "crc32",
            ChecksumKind::Internet => "internet",
        }
    }

    /// The width in bytes of the field that holds it.
    pub fn width(self) -> usize {
        match self {
            ChecksumKind::Crc32 => 4,
            ChecksumKind::Internet => 2,
        }
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

/// A field with an `equals` check holds another value: the frame is invalid.
pub const FRAMING_CONSTANT: Diagnostic = Diagnostic {
    code: "framing.constant",
    summary: "a field that must hold a constant (equals in the framing file) holds another value",
};
/// A checksum field that does not match the bytes it covers.
pub const FRAMING_CHECKSUM: Diagnostic = Diagnostic {
    code: "framing.checksum",
    summary: "a checksum field does not match the bytes it covers",
};
/// A body length above the framing's `max_body`.
pub const FRAMING_LENGTH_OVER_MAX: Diagnostic = Diagnostic {
    code: "framing.length_over_max",
    summary: "a length field claims a body larger than the framing's max_body",
};
/// A field with an `expect` check holds another value (reported only).
pub const FRAMING_UNEXPECTED_VALUE: Diagnostic = Diagnostic {
    code: "framing.unexpected_value",
    summary: "a field holds another value than the framing file expects (expect); the frame is still decoded",
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
    FRAMING_CONSTANT,
    FRAMING_CHECKSUM,
    FRAMING_LENGTH_OVER_MAX,
    FRAMING_UNEXPECTED_VALUE,
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
                    FieldKind::Int { width, .. } => assert_eq!(f.width, usize::from(width)),
                    FieldKind::Bytes { .. } => assert!(f.width > 0),
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
                Framing::Custom(_) => panic!("a test of v2 and v3 only"),
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
