//! The v2/v3 codec: frames, their byte layout (from [`crate::spec`]), and the
//! streaming [`FrameReader`] every part of rc1 reads TCP bytes through.
//!
//! Contract: nothing here panics on input bytes. A parse either returns a
//! frame borrowed from the input, says how many more bytes it needs
//! ([`Parse::Incomplete`], not an error: TCP may simply not have delivered
//! them yet), or returns a [`DecodeError`] with the numbers a person needs.
//! This module knows nothing of sockets or pcap.

#![warn(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

pub mod detect;
/// Showing bytes as text (now [`crate::escape`], beneath the codec and
/// the framing files alike).
pub use crate::escape;
pub mod stream;
pub mod v2;
pub mod v3;

use std::fmt;

pub use stream::FrameReader;

use crate::framing::FramingDef;
use crate::spec;

/// Which binary framing a stream carries.
#[derive(Debug, Clone, Copy)]
pub enum Framing {
    /// Fixed 29-byte frames, `!BLL20s` (lab exercise 4).
    V2,
    /// 9-byte header plus `size` bytes, `!BLL` (lab exercise 5).
    V3,
    /// A framing loaded from a file (`--framing FILE`, see
    /// [`crate::framing`]): decoded by the generic codec.
    Custom(&'static FramingDef),
}

/// Two custom framings are the same when they are the same loaded file
/// (each file is loaded once, so by address), or carry the same name and
/// fields.
impl PartialEq for Framing {
    fn eq(&self, other: &Framing) -> bool {
        match (self, other) {
            (Framing::V2, Framing::V2) | (Framing::V3, Framing::V3) => true,
            (Framing::Custom(a), Framing::Custom(b)) => {
                std::ptr::eq(*a, *b) || (a.spec.name == b.spec.name && a.spec == b.spec)
            }
            _ => false,
        }
    }
}

impl Eq for Framing {}

impl std::hash::Hash for Framing {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl Framing {
    /// The spec of this framing.
    pub fn spec(self) -> &'static spec::FramingSpec {
        match self {
            Framing::V2 => &spec::V2,
            Framing::V3 => &spec::V3,
            Framing::Custom(d) => &d.spec,
        }
    }

    /// `v2`, `v3`, or the framing file's `name`.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The framing file behind a custom framing.
    pub fn def(self) -> Option<&'static FramingDef> {
        match self {
            Framing::Custom(d) => Some(d),
            _ => None,
        }
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An owned frame.
///
/// For v2, `message` is the first `min(size, 20)` bytes of the 20-byte field
/// and `padding` the rest of it as it was on the wire (normally `-`s), so
/// that re-encoding a decoded frame gives back the same 29 bytes. For v3,
/// `message` is exactly `size` bytes and `padding` is empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Version byte (the lab sends 1).
    pub version: u8,
    /// Message counter, 1 for the first message of a connection.
    pub order: u32,
    /// The `size` field as sent (for v2 it may exceed 20).
    pub size: u32,
    /// The message bytes.
    pub message: Vec<u8>,
    /// v2 only: the bytes of the 20-byte field after the message.
    pub padding: Vec<u8>,
}

/// Errors building a frame to send.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// A v3 message longer than its 32-bit `size` field can say.
    #[error("message of {len} bytes does not fit a 32-bit size field")]
    TooLong {
        /// The message length.
        len: usize,
    },
    /// A frame a framing file cannot carry.
    #[error("this frame does not fit framing {framing}: {why}")]
    Framing {
        /// The framing's name.
        framing: &'static str,
        /// Why.
        why: String,
    },
    /// A message longer than the configured maximum frame size.
    #[error("message of {len} bytes is larger than the maximum frame size {max} (--max-frame)")]
    OverMax {
        /// The message length.
        len: usize,
        /// The configured maximum.
        max: u32,
    },
}

impl Frame {
    /// A v2 frame carrying `message` bytes: `size` is their count, the field
    /// holds the first 20 of them padded with `-`.
    pub fn v2(version: u8, order: u32, message: &[u8]) -> Result<Frame, EncodeError> {
        let size = u32::try_from(message.len())
            .map_err(|_| EncodeError::TooLong { len: message.len() })?;
        let kept = message.get(..spec::V2_MESSAGE_WIDTH).unwrap_or(message);
        let padding = vec![v2::PAD; spec::V2_MESSAGE_WIDTH.saturating_sub(kept.len())];
        Ok(Frame {
            version,
            order,
            size,
            message: kept.to_vec(),
            padding,
        })
    }

    /// A v2 frame built exactly as the lab's Python client builds it from a
    /// typed string: `size = len(text)` counts characters, the text is padded
    /// with `-` to 20 *characters*, encoded to UTF-8, and `struct` cuts that
    /// to 20 bytes or pads it with NUL bytes. For ASCII this equals
    /// [`Frame::v2`]; for other text the 20-byte field may end inside a
    /// character, exactly as the lab's bytes do.
    pub fn v2_python(version: u8, order: u32, text: &str) -> Result<Frame, EncodeError> {
        let chars = text.chars().count();
        let size = u32::try_from(chars).map_err(|_| EncodeError::TooLong { len: chars })?;
        let mut padded = text.to_string();
        for _ in chars..spec::V2_MESSAGE_WIDTH {
            padded.push(char::from(v2::PAD));
        }
        let mut field = padded.into_bytes();
        field.resize(spec::V2_MESSAGE_WIDTH, 0);
        Ok(v2::from_field(version, order, size, &field))
    }

    /// A v3 frame: `size` is the number of message bytes.
    pub fn v3(version: u8, order: u32, message: &[u8]) -> Result<Frame, EncodeError> {
        let size = u32::try_from(message.len())
            .map_err(|_| EncodeError::TooLong { len: message.len() })?;
        Ok(Frame {
            version,
            order,
            size,
            message: message.to_vec(),
            padding: Vec::new(),
        })
    }

    /// Appends this frame's bytes in `framing` to `out`.
    ///
    /// v2 writes the message then the padding, filled with `-` or cut to 20
    /// bytes. v3 writes the `size` field as stored and then the message: a
    /// frame from [`Frame::v3`] is always consistent.
    ///
    /// A custom framing (see [`Frame::try_encode`]) writes nothing when the
    /// frame does not fit it (a message over its `max_body`, an `order`
    /// wider than its echo key): use `try_encode` to be told.
    pub fn encode(&self, framing: Framing, out: &mut Vec<u8>) {
        match framing {
            Framing::V2 => v2::encode(self, out),
            Framing::V3 => v3::encode(self, out),
            Framing::Custom(_) => {
                let _ = self.try_encode(framing, out);
            }
        }
    }

    /// Appends this frame's bytes in `framing` to `out`, or says why it
    /// does not fit. For a custom framing: the field called `version` gets
    /// `version`, the echo key gets `order`, the body (or the first byte
    /// field) gets `message`; lengths, checksums and constants are
    /// computed; any other integer field is 0.
    pub fn try_encode(&self, framing: Framing, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.try_encode_with(framing, &[], out)
    }

    /// [`Frame::try_encode`], with some fields of a custom framing given
    /// by name (`rc1 client --field NAME=VALUE`): a given value replaces
    /// the one the lab's shape would put there; a length, checksum or
    /// constant given must be the right one, and an unknown name is an
    /// error. v2 and v3 ignore `fields`.
    pub fn try_encode_with(
        &self,
        framing: Framing,
        fields: &[(&str, spec::Value<'_>)],
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let Framing::Custom(def) = framing else {
            self.encode(framing, out);
            return Ok(());
        };
        let message_field = message_field(def);
        // A message with nowhere to go is refused, not dropped.
        if message_field.is_none() && !self.message.is_empty() {
            return Err(EncodeError::Framing {
                framing: def.spec.name,
                why: format!(
                    "it has no body and no byte field to carry a message of {} bytes (send \
                     empty messages, or add a body to the file)",
                    self.message.len()
                ),
            });
        }
        let mut values: Vec<(&str, spec::Value<'_>)> = Vec::with_capacity(def.spec.fields.len());
        values.extend_from_slice(fields);
        for f in def.spec.fields {
            if fields.iter().any(|(n, _)| *n == f.name) {
                continue;
            }
            let derived = def.checks.iter().any(|c| match *c {
                spec::Check::Equals { field, .. } | spec::Check::Checksum { field, .. } => {
                    field == f.name
                }
                spec::Check::Expect { .. } => false,
            }) || def.spec.fields.iter().any(|g| match g.kind {
                spec::FieldKind::SizedBy(by) | spec::FieldKind::FixedBytes { len_by: by, .. } => {
                    by == f.name
                }
                _ => false,
            });
            if derived || f.name.starts_with("_pad") {
                continue;
            }
            let v = if Some(f.name) == message_field {
                spec::Value::Bytes {
                    content: &self.message,
                    padding: &[],
                }
            } else if f.kind.int_shape().is_none() {
                spec::Value::Bytes {
                    content: &[],
                    padding: &[],
                }
            } else if Some(f.name) == def.echo_key {
                spec::Value::Uint(self.order.into())
            } else if f.name == "version" {
                spec::Value::Uint(self.version.into())
            } else {
                spec::Value::Uint(0)
            };
            values.push((f.name, v));
        }
        let bytes =
            crate::framing::codec::encode(def, &values).map_err(|e| EncodeError::Framing {
                framing: def.spec.name,
                why: e.to_string(),
            })?;
        out.extend_from_slice(&bytes);
        Ok(())
    }

    /// This frame's bytes in `framing`.
    pub fn to_bytes(&self, framing: Framing) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(framing, &mut out);
        out
    }

    /// A borrowed view of this frame (its `raw` is empty: not from a wire).
    pub fn as_ref(&self) -> FrameRef<'_> {
        FrameRef {
            version: self.version,
            order: self.order,
            size: self.size,
            message: &self.message,
            padding: &self.padding,
            raw: &[],
        }
    }
}

/// A frame borrowed from a buffer, as the decoder yields it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// Version byte.
    pub version: u8,
    /// Message counter.
    pub order: u32,
    /// The `size` field as sent.
    pub size: u32,
    /// The message bytes (v2: the first `min(size, 20)` of the field).
    pub message: &'a [u8],
    /// v2: the rest of the 20-byte field; v3: empty.
    pub padding: &'a [u8],
    /// The whole frame as it was on the wire (what an echo sends back).
    pub raw: &'a [u8],
}

impl FrameRef<'_> {
    /// An owned copy.
    pub fn to_frame(&self) -> Frame {
        Frame {
            version: self.version,
            order: self.order,
            size: self.size,
            message: self.message.to_vec(),
            padding: self.padding.to_vec(),
        }
    }

    /// v2: the user's message was longer than 20 and was cut.
    pub fn is_cut(&self) -> bool {
        usize::try_from(self.size).map_or(true, |s| s > self.message.len())
    }

    /// v2: padding is all `-` (what the lab client sends).
    pub fn padding_ok(&self) -> bool {
        self.padding.iter().all(|&b| b == v2::PAD)
    }

    /// Diagnostics this frame carries (not errors: the frame decoded).
    /// (A set of bits, nothing allocated: this runs for every decoded
    /// frame, and almost every frame has none.)
    #[inline]
    pub fn diagnostics(&self, framing: Framing) -> Diagnostics {
        let mut set = 0u8;
        match framing.def() {
            // A custom framing's soft checks (`expect`) are its own.
            Some(def) => {
                if def
                    .spec
                    .read(self.raw, u64::MAX)
                    .is_ok_and(|v| !crate::framing::codec::notes(def, &v).is_empty())
                {
                    set |= 1 << 1;
                }
            }
            None => {
                if self.version != spec::LAB_VERSION {
                    set |= 1 << 0;
                }
            }
        }
        if framing == Framing::V2 {
            if self.is_cut() {
                set |= 1 << 2;
            }
            if !self.padding_ok() {
                set |= 1 << 3;
            }
        }
        Diagnostics(set)
    }

    /// One line like tcpdump's: `v2 ver=1 order=3 size=25 "hello world, how are " (cut)`.
    pub fn describe(&self, framing: Framing) -> String {
        let mut s = String::with_capacity(64);
        self.describe_into(&mut s, framing);
        s
    }

    /// [`FrameRef::describe`], appended to `out`.
    pub fn describe_into(&self, out: &mut String, framing: Framing) {
        if let Framing::Custom(def) = framing {
            out.push_str(def.spec.name);
            out.push(' ');
            match def.spec.read(self.raw, u64::MAX) {
                Ok(values) => out.push_str(&def.show_line(&values)),
                // Not from a wire (no raw bytes): the lab's shape.
                Err(_) => {
                    out.push_str("order=");
                    escape::push_u64(out, self.order.into());
                    out.push(' ');
                    escape::preview_into(out, self.message);
                }
            }
            return;
        }
        out.push_str(framing.name());
        out.push_str(" ver=");
        escape::push_u64(out, self.version.into());
        out.push_str(" order=");
        escape::push_u64(out, self.order.into());
        out.push_str(" size=");
        escape::push_u64(out, self.size.into());
        out.push(' ');
        escape::preview_into(out, self.message);
        if framing == Framing::V2 {
            if self.is_cut() {
                out.push_str(" (cut)");
            }
            if !self.padding_ok() {
                out.push_str(" (padding not '-': \"");
                escape::escape_into(out, self.padding);
                out.push_str("\")");
            }
        }
    }
}

/// What went wrong decoding a stream. Each variant names its diagnostic code.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// A v3 header claimed more than the maximum; nothing was reserved.
    #[error(
        "v3 frame header claims a message of {claimed} bytes, more than the limit of {max} bytes \
         (raise it with --max-frame); the rest of this stream cannot be trusted"
    )]
    SizeOverMax {
        /// What the header said.
        claimed: u32,
        /// The configured maximum.
        max: u32,
    },
    /// A frame that breaks a framing file's rules: a lying length, a wrong
    /// constant, a bad checksum.
    #[error(transparent)]
    Framing(crate::framing::codec::DecodeError),
    /// The stream ended inside a frame.
    #[error("stream ended inside a {framing} frame: {have} of {need} bytes")]
    Truncated {
        /// Framing of the cut frame.
        framing: Framing,
        /// Bytes received of it.
        have: usize,
        /// Bytes it needed in all (header + message), as far as known.
        need: u64,
    },
}

impl DecodeError {
    /// The diagnostic this error is reported under.
    pub fn diagnostic(&self) -> &'static spec::Diagnostic {
        match self {
            DecodeError::SizeOverMax { .. } => &spec::V3_SIZE_OVER_MAX,
            DecodeError::Truncated { .. } => &spec::FRAME_TRUNCATED,
            DecodeError::Framing(e) => e.diagnostic(),
        }
    }
}

/// The result of trying to parse one frame at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse<'a> {
    /// A whole frame, `raw.len()` bytes long.
    Frame(FrameRef<'a>),
    /// Not enough bytes yet: the frame needs `need` bytes in all (header
    /// plus message, once the header is known).
    Incomplete {
        /// Total length the frame needs, as far as known.
        need: u64,
    },
}

/// Parses one frame at the start of `buf`.
#[inline]
pub fn parse(framing: Framing, buf: &[u8], max_frame: u32) -> Result<Parse<'_>, DecodeError> {
    match framing {
        Framing::V2 => Ok(v2::parse(buf)),
        Framing::V3 => v3::parse(buf, max_frame),
        // The file's max_body is its limit (--max-frame is v3's).
        Framing::Custom(def) => match crate::framing::codec::parse(def, buf, def.max_body) {
            crate::framing::codec::Parse::Frame { len, values } => {
                Ok(Parse::Frame(custom_ref(def, buf, len, &values)))
            }
            crate::framing::codec::Parse::Incomplete { need } => Ok(Parse::Incomplete { need }),
            crate::framing::codec::Parse::Error(e) => Err(DecodeError::Framing(e)),
        },
    }
}

/// [`parse`], but a frame of a framing file whose only fault is a wrong
/// checksum (its lengths chain, within `max_body`, and every `equals`
/// holds) is still given, with that error beside it: its length is
/// trusted, so the capture reports the bad checksum (`framing.checksum`)
/// and decodes on from the next frame. Any other error is returned as
/// [`parse`] returns it. (The servers use [`parse`]: a bad checksum
/// closes the connection there.)
#[inline]
pub fn parse_lenient(
    framing: Framing,
    buf: &[u8],
    max_frame: u32,
) -> Result<(Parse<'_>, Option<DecodeError>), DecodeError> {
    match framing {
        // v2 and v3 have no checksum: the plain parse, inlined (the
        // capture's hot path).
        Framing::V2 => Ok((v2::parse(buf), None)),
        Framing::V3 => v3::parse(buf, max_frame).map(|p| (p, None)),
        Framing::Custom(_) => parse_lenient_custom(framing, buf, max_frame),
    }
}

/// [`parse_lenient`] of a framing file.
fn parse_lenient_custom(
    framing: Framing,
    buf: &[u8],
    max_frame: u32,
) -> Result<(Parse<'_>, Option<DecodeError>), DecodeError> {
    match parse(framing, buf, max_frame) {
        Ok(p) => Ok((p, None)),
        Err(e @ DecodeError::Framing(crate::framing::codec::DecodeError::Checksum { .. })) => {
            let Framing::Custom(def) = framing else {
                return Err(e);
            };
            let Ok(values) = def.spec.read(buf, def.max_body) else {
                return Err(e);
            };
            // The checks are run in the file's order: an `equals` after the
            // failed checksum was not looked at yet.
            if let Some(broken) = def.checks.iter().find_map(|c| match *c {
                spec::Check::Equals { field, value } => {
                    let got = values.int(field);
                    (got != Some(value)).then_some(crate::framing::codec::DecodeError::Constant {
                        field,
                        want: value,
                        got: got.unwrap_or_default(),
                    })
                }
                _ => None,
            }) {
                return Err(DecodeError::Framing(broken));
            }
            let frame = custom_ref(def, buf, values.len, &values);
            Ok((Parse::Frame(frame), Some(e)))
        }
        Err(e) => Err(e),
    }
}

/// The field a custom framing's message is: its body, else its first
/// byte field.
fn message_field(def: &FramingDef) -> Option<&'static str> {
    def.spec.body().map(|b| b.name).or_else(|| {
        def.spec
            .fields
            .iter()
            .find(|f| f.kind.int_shape().is_none() && !f.name.starts_with("_pad"))
            .map(|f| f.name)
    })
}

/// A custom framing's frame in the lab's shape: `version` from a field of
/// that name, `order` from the echo key, `size` from the message's length
/// field, `message` the body (or first byte field).
fn custom_ref<'a>(
    def: &'static FramingDef,
    buf: &'a [u8],
    len: usize,
    values: &spec::FieldValues<'a>,
) -> FrameRef<'a> {
    let message = message_field(def)
        .and_then(|m| values.bytes(m))
        .unwrap_or_default();
    let size_field = def.spec.fields.iter().find_map(|f| match f.kind {
        spec::FieldKind::SizedBy(by) | spec::FieldKind::FixedBytes { len_by: by, .. } => Some(by),
        _ => None,
    });
    let size = size_field
        .and_then(|s| values.uint(s))
        .unwrap_or(message.len() as u64);
    FrameRef {
        version: values
            .uint("version")
            .and_then(|v| u8::try_from(v).ok())
            .unwrap_or(0),
        order: def
            .echo_key
            .and_then(|k| values.uint(k))
            .map_or(0, |o| u32::try_from(o).unwrap_or(u32::MAX)),
        size: u32::try_from(size).unwrap_or(u32::MAX),
        message,
        padding: &[],
        raw: buf.get(..len).unwrap_or(buf),
    }
}

/// Byte ranges of the three header fields of a framing, from the spec.
#[derive(Debug, Clone)]
struct HeaderLayout {
    version: std::ops::Range<usize>,
    order: std::ops::Range<usize>,
    size: std::ops::Range<usize>,
    /// Length of the header (or of the whole v2 frame's fixed part).
    len: usize,
}

impl HeaderLayout {
    /// The layout of `framing`'s header fields; a spec test proves the
    /// names exist.
    #[expect(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        reason = "const evaluation of the static spec: a bad index fails the build, not a run"
    )]
    const fn of(spec: &spec::FramingSpec) -> HeaderLayout {
        // Fields 0..3 are version, order, size in both framings; the test
        // `header_layout_follows_spec` checks the names.
        HeaderLayout {
            version: spec.fields[0].range(),
            order: spec.fields[1].range(),
            size: spec.fields[2].range(),
            len: spec.fields[2].offset + spec.fields[2].width,
        }
    }

    /// Reads version, order and size; `None` when `buf` is shorter than the header.
    fn read(&self, buf: &[u8]) -> Option<(u8, u32, u32)> {
        let v = *buf.get(self.version.clone())?.first()?;
        let o = u32::from_be_bytes(buf.get(self.order.clone())?.try_into().ok()?);
        let s = u32::from_be_bytes(buf.get(self.size.clone())?.try_into().ok()?);
        Some((v, o, s))
    }

    /// Appends a header with these values, each at its spec offset.
    fn write(&self, out: &mut Vec<u8>, version: u8, order: u32, size: u32) {
        let start = out.len();
        out.resize(start.saturating_add(self.len), 0);
        let Some(h) = out.get_mut(start..) else {
            return;
        };
        if let Some(b) = h.get_mut(self.version.clone()) {
            b.copy_from_slice(&[version]);
        }
        if let Some(b) = h.get_mut(self.order.clone()) {
            b.copy_from_slice(&order.to_be_bytes());
        }
        if let Some(b) = h.get_mut(self.size.clone()) {
            b.copy_from_slice(&size.to_be_bytes());
        }
    }
}

/// The diagnostics of one frame ([`FrameRef::diagnostics`]), in a fixed
/// order: unexpected version, a framing file's unexpected value, v2 size
/// over 20, v2 padding.
#[derive(Debug, Clone, Copy)]
pub struct Diagnostics(u8);

impl Iterator for Diagnostics {
    type Item = &'static spec::Diagnostic;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros();
        self.0 &= self.0.wrapping_sub(1);
        Some(match bit {
            0 => &spec::FRAME_UNEXPECTED_VERSION,
            1 => &spec::FRAMING_UNEXPECTED_VALUE,
            2 => &spec::V2_SIZE_OVER_20,
            _ => &spec::V2_BAD_PADDING,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::indexing_slicing,
        reason = "a panic in a test is a failed test"
    )]

    use super::*;

    #[test]
    fn header_layout_follows_spec() {
        for s in spec::FRAMINGS {
            let names: Vec<_> = s.fields.iter().take(3).map(|f| f.name).collect();
            assert_eq!(names, ["version", "order", "size"], "{}", s.name);
            let l = HeaderLayout::of(s);
            assert_eq!(l.len, 9);
            assert_eq!(s.field("size").unwrap().range(), l.size);
        }
    }

    #[test]
    fn header_bytes_sit_where_the_spec_says() {
        let mut out = Vec::new();
        HeaderLayout::of(&spec::V3).write(&mut out, 7, 0x0102_0304, 0x0A0B_0C0D);
        for (name, want) in [
            ("version", &[7u8][..]),
            ("order", &[1, 2, 3, 4]),
            ("size", &[0x0A, 0x0B, 0x0C, 0x0D]),
        ] {
            let r = spec::V3.field(name).unwrap().range();
            assert_eq!(&out[r], want, "{name}");
        }
    }

    /// The three framings of fixtures/framings, loaded.
    fn customs() -> Vec<Framing> {
        [
            (
                "le16.toml",
                include_str!("../../fixtures/framings/le16.toml"),
            ),
            (
                "crc-trailer.toml",
                include_str!("../../fixtures/framings/crc-trailer.toml"),
            ),
            (
                "typed.toml",
                include_str!("../../fixtures/framings/typed.toml"),
            ),
        ]
        .into_iter()
        .map(|(name, text)| {
            let def: &'static FramingDef =
                Box::leak(Box::new(crate::framing::parse(text, name).unwrap()));
            Framing::Custom(def)
        })
        .collect()
    }

    #[test]
    fn a_custom_framing_goes_through_the_same_reader_in_any_chunking() {
        for framing in customs() {
            let mut wire = Vec::new();
            for (order, m) in [(1u32, &b"hello"[..]), (2, b""), (3, &[0xC3; 300])] {
                let f = Frame {
                    version: 0,
                    order,
                    size: u32::try_from(m.len()).unwrap(),
                    message: m.to_vec(),
                    padding: Vec::new(),
                };
                f.try_encode(framing, &mut wire).unwrap();
            }
            for chunk in [1, 2, 7, 64, wire.len()] {
                let mut r = FrameReader::new(framing, 1 << 20);
                let mut got = Vec::new();
                for piece in wire.chunks(chunk) {
                    r.push(piece);
                    while let Some(f) = r.next_frame().unwrap() {
                        got.push((f.message.to_vec(), f.raw.len()));
                    }
                }
                r.finish().unwrap();
                let messages: Vec<usize> = got.iter().map(|(m, _)| m.len()).collect();
                assert_eq!(
                    messages,
                    vec![5, 0, 300],
                    "{} in chunks of {chunk}",
                    framing.name()
                );
                assert_eq!(got.iter().map(|(_, l)| l).sum::<usize>(), wire.len());
            }
            // The line shows the file's own fields.
            let Ok(Parse::Frame(f)) = parse(framing, &wire, 1 << 20) else {
                panic!("{}", framing.name())
            };
            let line = f.describe(framing);
            assert!(line.starts_with(framing.name()), "{line}");
            assert!(line.contains("hello"), "{line}");
        }
    }

    #[test]
    fn a_custom_framing_s_broken_checks_are_decode_errors_with_their_codes() {
        let framings = customs();
        let crc = framings[1];
        let mut wire = Vec::new();
        Frame {
            version: 1,
            order: 7,
            size: 3,
            message: b"abc".to_vec(),
            padding: Vec::new(),
        }
        .try_encode(crc, &mut wire)
        .unwrap();
        let last = wire.len() - 1;
        wire[last] ^= 0xFF;
        let e = parse(crc, &wire, 1 << 20).unwrap_err();
        assert_eq!(e.diagnostic().code, "framing.checksum", "{e}");
        // typed: version must be 3.
        let typed = framings[2];
        let mut wire = Vec::new();
        Frame {
            version: 0,
            order: 1,
            size: 1,
            message: b"x".to_vec(),
            padding: Vec::new(),
        }
        .try_encode(typed, &mut wire)
        .unwrap();
        wire[0] = 9;
        let e = parse(typed, &wire, 1 << 20).unwrap_err();
        assert_eq!(e.diagnostic().code, "framing.constant", "{e}");
    }

    #[test]
    fn a_message_a_framing_cannot_carry_is_refused_not_dropped() {
        let def: &'static FramingDef = Box::leak(Box::new(
            crate::framing::parse("name = \"plain\"\nstruct = \"!HH\"\n", "plain.toml").unwrap(),
        ));
        let framing = Framing::Custom(def);
        let frame = |m: &[u8]| Frame {
            version: 1,
            order: 1,
            size: 0,
            message: m.to_vec(),
            padding: Vec::new(),
        };
        let mut out = Vec::new();
        frame(b"").try_encode(framing, &mut out).unwrap();
        assert_eq!(out.len(), 4);
        let e = frame(b"ignored?")
            .try_encode(framing, &mut out)
            .unwrap_err();
        assert!(e.to_string().contains("no body and no byte field"), "{e}");
        assert_eq!(out.len(), 4, "nothing written for the refused frame");
    }
}
