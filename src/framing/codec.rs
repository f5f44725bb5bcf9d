//! The codec of any [`FramingDef`]: [`encode`] field values to a frame
//! (lengths and checksums computed), [`parse`] a frame at the start of a
//! buffer (lengths checked against `max_body` before anything is waited
//! for or reserved, then every check of the file).
//!
//! Contract, as for [`crate::codec`]: nothing here panics on input bytes;
//! a parse is a frame borrowed from the buffer, a count of the bytes it
//! needs, or a typed [`DecodeError`] with a stable diagnostic code.

#![warn(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use crate::spec::{self, Check, ChecksumKind, FieldKind, FieldValues, ReadError, Value};

use super::FramingDef;

/// Why a frame was refused. Each variant names its diagnostic code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body's length field claims more than `max_body`; nothing was
    /// reserved (`framing.length_over_max`).
    #[error(
        "{field} claims a body of {claimed} bytes, more than the limit of {max} (max_body); \
         the rest of this stream cannot be trusted"
    )]
    LengthOverMax {
        /// The length field.
        field: &'static str,
        /// What it said.
        claimed: u64,
        /// The limit.
        max: u64,
    },
    /// A field with `equals` holds another value (`framing.constant`).
    #[error("{field} is {got}, but the framing says it must be {want} (equals)")]
    Constant {
        /// The field.
        field: &'static str,
        /// The constant.
        want: i128,
        /// What the frame holds.
        got: i128,
    },
    /// A checksum field differs from the checksum of the bytes it covers
    /// (`framing.checksum`).
    #[error(
        "{field} is {got:#x}, but the {algorithm} checksum of the fields it covers is {want:#x}"
    )]
    Checksum {
        /// The checksum field.
        field: &'static str,
        /// The algorithm's name (`crc32`, `internet`).
        algorithm: &'static str,
        /// The checksum of the bytes as they came.
        want: u64,
        /// What the frame holds.
        got: u64,
    },
}

impl DecodeError {
    /// The diagnostic this error is reported under.
    pub fn diagnostic(&self) -> &'static spec::Diagnostic {
        match self {
            DecodeError::LengthOverMax { .. } => &spec::FRAMING_LENGTH_OVER_MAX,
            DecodeError::Constant { .. } => &spec::FRAMING_CONSTANT,
            DecodeError::Checksum { .. } => &spec::FRAMING_CHECKSUM,
        }
    }
}

/// The result of trying to parse one frame at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse<'a> {
    /// A whole frame of `len` bytes, its fields by name.
    Frame {
        /// Bytes the frame takes.
        len: usize,
        /// Every field's value, in wire order.
        values: FieldValues<'a>,
    },
    /// Not enough bytes yet: the frame needs `need` bytes in all, as far
    /// as known (not an error: TCP may not have delivered them yet).
    Incomplete {
        /// Total length the frame needs, as far as known.
        need: u64,
    },
    /// A frame that breaks the framing: a lying length, a wrong
    /// constant, a bad checksum.
    Error(DecodeError),
}

/// Parses one frame of `def` at the start of `buf`, believing bodies of
/// at most `max_body` bytes (usually [`FramingDef::max_body`]).
///
/// A header field with `equals` is checked as soon as its bytes are in: a
/// header that breaks it is refused then, not waited on for the bytes its
/// length claims (nor its length believed).
pub fn parse<'a>(def: &'static FramingDef, buf: &'a [u8], max_body: u64) -> Parse<'a> {
    let values = match def.spec.read(buf, max_body) {
        Ok(v) => v,
        Err(_) if let Some(broken) = header_constant(def, buf) => return Parse::Error(broken),
        Err(ReadError::Incomplete { need }) => return Parse::Incomplete { need },
        Err(ReadError::OverMax { body, claimed, max }) => {
            let field = match body.kind {
                FieldKind::SizedBy(by) => by,
                _ => body.name,
            };
            return Parse::Error(DecodeError::LengthOverMax {
                field,
                claimed,
                max,
            });
        }
    };
    for c in def.checks {
        match *c {
            Check::Equals { field, value } => {
                let got = values.int(field);
                if got != Some(value) {
                    return Parse::Error(DecodeError::Constant {
                        field,
                        want: value,
                        got: got.unwrap_or_default(),
                    });
                }
            }
            Check::Expect { .. } => {}
            Check::Checksum {
                field,
                algorithm,
                over,
            } => {
                let want = checksum_of(def, &values, buf, algorithm, over);
                let got = values.uint(field).unwrap_or_default();
                if want != got {
                    return Parse::Error(DecodeError::Checksum {
                        field,
                        algorithm: algorithm.name(),
                        want,
                        got,
                    });
                }
            }
        }
    }
    Parse::Frame {
        len: values.len,
        values,
    }
}

/// The first `equals` check that a header field (one before the body)
/// breaks, its bytes being at the start of `buf`.
fn header_constant(def: &FramingDef, buf: &[u8]) -> Option<DecodeError> {
    let header = def
        .spec
        .fields
        .iter()
        .take_while(|f| !matches!(f.kind, FieldKind::SizedBy(_)));
    let fields: Vec<_> = header.collect();
    def.checks.iter().find_map(|c| {
        let Check::Equals { field, value } = *c else {
            return None;
        };
        let f = fields.iter().find(|f| f.name == field)?;
        let got = match f.kind.read_int(buf.get(f.range())?)? {
            Value::Uint(n) => i128::from(n),
            Value::Int(n) => i128::from(n),
            Value::Bytes { .. } => return None,
        };
        (got != value).then_some(DecodeError::Constant {
            field,
            want: value,
            got,
        })
    })
}

/// A finding on a frame that decoded (not an error): an `expect` field
/// with another value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The diagnostic it is reported under.
    pub diagnostic: &'static spec::Diagnostic,
    /// The field.
    pub field: &'static str,
    /// What the frame holds.
    pub got: i128,
    /// What the file expects.
    pub want: i128,
}

/// The findings of the soft checks (`expect`) on a decoded frame.
pub fn notes(def: &FramingDef, values: &FieldValues<'_>) -> Vec<Note> {
    def.checks
        .iter()
        .filter_map(|c| match *c {
            Check::Expect { field, value } => {
                let got = values.int(field)?;
                (got != value).then_some(Note {
                    diagnostic: &spec::FRAMING_UNEXPECTED_VALUE,
                    field,
                    got,
                    want: value,
                })
            }
            _ => None,
        })
        .collect()
}

/// The wire bytes of the field `name` of a decoded frame in `buf`.
fn wire_bytes<'a>(
    def: &FramingDef,
    values: &FieldValues<'a>,
    buf: &'a [u8],
    name: &str,
) -> &'a [u8] {
    let mut base = 0usize;
    for (f, v) in &values.fields {
        let start = base.saturating_add(f.offset);
        let bytes = match (f.kind, v) {
            (FieldKind::SizedBy(_), Value::Bytes { content, .. }) => {
                base = start.saturating_add(content.len());
                content
            }
            _ => buf
                .get(start..start.saturating_add(f.width))
                .unwrap_or_default(),
        };
        if f.name == name {
            return bytes;
        }
    }
    let _ = def;
    &[]
}

fn checksum_of(
    def: &FramingDef,
    values: &FieldValues<'_>,
    buf: &[u8],
    algorithm: ChecksumKind,
    over: &[&str],
) -> u64 {
    let parts = over.iter().map(|n| wire_bytes(def, values, buf, n));
    checksum(algorithm, parts)
}

/// The checksum of the concatenation of `parts`.
pub fn checksum<'a>(algorithm: ChecksumKind, parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    match algorithm {
        ChecksumKind::Crc32 => {
            let mut c = Crc32::new();
            for p in parts {
                c.update(p);
            }
            u64::from(c.finish())
        }
        ChecksumKind::Internet => {
            let mut sum: u64 = 0;
            let mut odd: Option<u8> = None;
            for p in parts {
                for &b in p {
                    match odd.take() {
                        Some(hi) => sum = sum.wrapping_add(u64::from(u16::from_be_bytes([hi, b]))),
                        None => odd = Some(b),
                    }
                }
            }
            if let Some(hi) = odd {
                sum = sum.wrapping_add(u64::from(u16::from_be_bytes([hi, 0])));
            }
            while sum >> 16 != 0 {
                sum = (sum & 0xFFFF).wrapping_add(sum >> 16);
            }
            u64::from(!(sum as u16))
        }
    }
}

/// CRC-32 (IEEE, reflected), as Python's `zlib.crc32`.
struct Crc32(u32);

#[expect(
    clippy::indexing_slicing,
    reason = "const evaluation, i < 256: a bad index fails the build"
)]
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

impl Crc32 {
    fn new() -> Crc32 {
        Crc32(0xFFFF_FFFF)
    }
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let i = usize::from((self.0 as u8) ^ b);
            self.0 = CRC_TABLE.get(i).copied().unwrap_or_default() ^ (self.0 >> 8);
        }
    }
    fn finish(&self) -> u32 {
        !self.0
    }
}

/// Why [`encode`] could not build a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A field without a value, and none to compute or default.
    #[error("no value for field {0} (give it one)")]
    Missing(&'static str),
    /// A value given for no field of the framing.
    #[error("{0} is no field of this framing")]
    Unknown(String),
    /// An integer value for a byte field, or bytes for an integer one.
    #[error(
        "field {0} has the wrong type of value (integers for B H I L Q b h i l q, bytes for s and body)"
    )]
    WrongType(&'static str),
    /// An integer that does not fit its field.
    #[error("{value} does not fit field {field} ({min}..={max})")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value.
        value: i128,
        /// Smallest allowed.
        min: i128,
        /// Largest allowed.
        max: i128,
    },
    /// Bytes longer than a fixed field without a length.
    #[error("{len} bytes do not fit field {field} of {width} bytes")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The bytes given.
        len: usize,
        /// The field's width.
        width: usize,
    },
    /// A value that the frame's own parse would refuse: a constant, a
    /// checksum or a length that disagrees with the bytes.
    #[error("field {field} = {got} would make an invalid frame: it must be {want}")]
    Inconsistent {
        /// The field.
        field: &'static str,
        /// The value given.
        got: i128,
        /// The value the frame needs.
        want: i128,
    },
    /// A body larger than `max_body`.
    #[error("body of {len} bytes is larger than max_body {max}")]
    OverMax {
        /// The body's length.
        len: usize,
        /// The limit.
        max: u64,
    },
}

/// Encodes one frame of `def` from `(field name, value)` pairs.
///
/// Values may be left out for: `x` pad bytes (zeros), length fields (the
/// length of the bytes they measure: a body's length, or an `Ns` field's
/// content length before cutting, as the lab's `size`), `equals` and
/// `expect` fields (their constant), checksum fields (computed). Any
/// value given must be one the frame's own [`parse`] accepts: a length
/// equal to its body's, a constant equal to `equals`, a checksum equal to
/// the computed one. An `Ns` field's content is cut to its width (as
/// Python's `struct` does) then its padding bytes, then the pad byte.
pub fn encode(
    def: &'static FramingDef,
    values: &[(&str, Value<'_>)],
) -> Result<Vec<u8>, EncodeError> {
    let spec = &def.spec;
    for (n, _) in values {
        if spec.field(n).is_none() {
            return Err(EncodeError::Unknown((*n).to_string()));
        }
    }
    let given = |name: &str| values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let bytes_of = |name: &'static str| match given(name) {
        Some(Value::Bytes { content, padding }) => Ok(Some((content, padding))),
        Some(_) => Err(EncodeError::WrongType(name)),
        None => Ok(None),
    };
    // Integers: given, else computed (a length), else a constant.
    let mut ints: Vec<(&'static str, i128)> = Vec::new();
    for f in spec.fields {
        if f.kind.int_shape().is_none() {
            continue;
        }
        let measured = spec.fields.iter().find_map(|g| match g.kind {
            FieldKind::SizedBy(by) if by == f.name => Some((g.name, true)),
            FieldKind::FixedBytes { len_by, .. } if len_by == f.name => Some((g.name, false)),
            _ => None,
        });
        let constant = def.checks.iter().find_map(|c| match *c {
            Check::Equals { field, value } | Check::Expect { field, value } if field == f.name => {
                Some(value)
            }
            _ => None,
        });
        let v = match given(f.name) {
            Some(Value::Uint(n)) => Some(i128::from(n)),
            Some(Value::Int(n)) => Some(i128::from(n)),
            Some(Value::Bytes { .. }) => return Err(EncodeError::WrongType(f.name)),
            None => None,
        };
        let v = match (v, measured) {
            (Some(v), Some((body, true))) => {
                let len = bytes_of(spec.field(body).map_or(body, |g| g.name))?
                    .map_or(0, |(c, _)| c.len());
                if v != len as i128 {
                    return Err(EncodeError::Inconsistent {
                        field: f.name,
                        got: v,
                        want: len as i128,
                    });
                }
                v
            }
            (Some(v), _) => v,
            (None, Some((by, _))) => {
                let g = spec.field(by).map_or(by, |g| g.name);
                bytes_of(g)?.map_or(0, |(c, _)| c.len()) as i128
            }
            (None, None) => match constant {
                Some(c) => c,
                None if f.name.starts_with("_pad") => 0,
                None if def
                    .checks
                    .iter()
                    .any(|c| matches!(c, Check::Checksum { field, .. } if *field == f.name)) =>
                {
                    0
                }
                None => return Err(EncodeError::Missing(f.name)),
            },
        };
        let (min, max) = f.kind.int_range().unwrap_or((0, 0));
        if v < min || v > max {
            return Err(EncodeError::OutOfRange {
                field: f.name,
                value: v,
                min,
                max,
            });
        }
        if let Some(Check::Equals { value, .. }) = def
            .checks
            .iter()
            .find(|c| matches!(c, Check::Equals { field, .. } if *field == f.name))
            && *value != v
        {
            return Err(EncodeError::Inconsistent {
                field: f.name,
                got: v,
                want: *value,
            });
        }
        ints.push((f.name, v));
    }
    let int = |name: &str| ints.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v);

    let mut out = Vec::with_capacity(spec.fixed_len().saturating_add(64));
    for f in spec.fields {
        match f.kind {
            FieldKind::U8 | FieldKind::U32Be | FieldKind::Int { .. } => {
                out.extend(f.kind.write_int(int(f.name)).unwrap_or_default());
            }
            FieldKind::FixedBytes { pad, .. } | FieldKind::Bytes { pad } => {
                let (content, padding) = match bytes_of(f.name)? {
                    Some(b) => b,
                    None if f.name.starts_with("_pad") => (&[][..], &[][..]),
                    None => return Err(EncodeError::Missing(f.name)),
                };
                if matches!(f.kind, FieldKind::Bytes { .. }) && content.len() > f.width {
                    return Err(EncodeError::TooLong {
                        field: f.name,
                        len: content.len(),
                        width: f.width,
                    });
                }
                out.extend(
                    content
                        .iter()
                        .chain(padding)
                        .chain(std::iter::repeat(&pad))
                        .take(f.width),
                );
            }
            FieldKind::SizedBy(_) => {
                let content = bytes_of(f.name)?.map_or(&[][..], |(c, _)| c);
                if content.len() as u64 > def.max_body {
                    return Err(EncodeError::OverMax {
                        len: content.len(),
                        max: def.max_body,
                    });
                }
                out.extend_from_slice(content);
            }
        }
    }
    // Checksums: over the bytes just written, then into their field.
    for c in def.checks {
        let Check::Checksum { field, .. } = *c else {
            continue;
        };
        let Parse::Error(DecodeError::Checksum {
            field: failed,
            want,
            got,
            ..
        }) = parse(def, &out, u64::MAX)
        else {
            continue;
        };
        if failed != field {
            continue;
        }
        debug_assert_eq!(got, int(field) as u64);
        if given(field).is_some() {
            return Err(EncodeError::Inconsistent {
                field,
                got: i128::from(got),
                want: i128::from(want),
            });
        }
        let Some(f) = spec.field(field) else { continue };
        let start = field_start(def, &out, field).unwrap_or(0);
        let bytes = f.kind.write_int(i128::from(want)).unwrap_or_default();
        if let Some(slot) = out.get_mut(start..start.saturating_add(f.width)) {
            slot.copy_from_slice(&bytes);
        }
    }
    Ok(out)
}

/// The offset of field `name` in the frame `buf`.
fn field_start(def: &FramingDef, buf: &[u8], name: &str) -> Option<usize> {
    let mut base = 0usize;
    let values = def.spec.fields;
    let len_of = |by: &str| -> Option<usize> {
        let g = def.spec.field(by)?;
        let v = g.kind.read_int(buf.get(g.range())?)?;
        match v {
            Value::Uint(n) => usize::try_from(n).ok(),
            _ => None,
        }
    };
    for f in values {
        let start = base.checked_add(f.offset)?;
        if f.name == name {
            return Some(start);
        }
        if let FieldKind::SizedBy(by) = f.kind {
            base = start.checked_add(len_of(by)?)?;
        }
    }
    None
}
