//! [`FrameReader`]: frames out of a byte stream, whatever its chunking.
//!
//! TCP has no message boundaries: one `recv()` may return part of a frame,
//! or several frames at once. The lab's v2 server does `recv(29)` and unpacks
//! whatever came, which breaks as soon as TCP splits or packs frames. This
//! reader keeps the bytes that do not yet make a whole frame and yields each
//! frame once it is complete, so feeding it one byte at a time or a megabyte
//! at a time gives the same frames. Servers, clients, capture and flood all
//! read through it.
//!
//! Memory: the buffer holds at most one incomplete frame plus what the
//! caller pushed and has not yet pulled out. A v3 header is checked against
//! `max_frame` before its body is waited for, so a hostile `size` cannot
//! make the reader reserve anything.

use std::io::{self, Read};

use super::{DecodeError, FrameRef, Framing, Parse, parse};

/// The most [`FrameReader::read_from`] asks the OS for per call (outside
/// the rest of a large frame).
pub const READ_CHUNK: usize = 64 * 1024;

/// What a reader asks for at first: a connection that trickles bytes (or
/// sends a few small messages) never holds more. Each read that fills what
/// was asked makes the next ask four times larger, up to [`READ_CHUNK`].
pub const FIRST_READ: usize = 4 * 1024;

/// An empty buffer larger than this (grown by a large frame) is freed.
pub const SHRINK_ABOVE: usize = 4 * READ_CHUNK;

/// The next read size after a read of `n` bytes into room for `asked`:
/// larger when the read filled a room of at least half the current size.
pub fn next_read_size(current: usize, n: usize, asked: usize) -> usize {
    if n >= asked && asked >= current / 2 && current < READ_CHUNK {
        current.saturating_mul(4).min(READ_CHUNK)
    } else {
        current
    }
}

/// The most one read asks for (the rest of a large frame).
const MAX_READ: usize = 4 << 20;

/// A streaming v2/v3 decoder.
#[derive(Debug)]
pub struct FrameReader {
    framing: Framing,
    max_frame: u32,
    /// Storage; `buf[start..end]` are the bytes not yet consumed.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Set after an error that leaves the stream unsynchronised.
    failed: Option<DecodeError>,
    /// Bytes consumed by whole frames so far (the stream offset of `start`).
    consumed: u64,
    /// How much the next read asks for (see [`FIRST_READ`]).
    read_size: usize,
}

impl FrameReader {
    /// A reader for `framing` that refuses v3 messages over `max_frame` bytes.
    pub fn new(framing: Framing, max_frame: u32) -> FrameReader {
        FrameReader {
            framing,
            max_frame,
            buf: Vec::new(),
            start: 0,
            end: 0,
            failed: None,
            consumed: 0,
            read_size: FIRST_READ,
        }
    }

    /// The framing this reader decodes.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Bytes received but not yet part of a whole frame.
    pub fn buffered(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Bytes of memory the buffer holds (for tests and memory checks).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Stream offset of the first byte not yet consumed by a whole frame.
    pub fn offset(&self) -> u64 {
        self.consumed
    }

    /// Appends bytes from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.release_if_large();
        self.reserve(data.len());
        let end = self.end.saturating_add(data.len());
        if let Some(dst) = self.buf.get_mut(self.end..end) {
            dst.copy_from_slice(data);
            self.end = end;
        }
    }

    /// Reads once from `r` straight into the buffer (no extra copy).
    /// Returns what `read` returned: `Ok(0)` is end of stream.
    pub fn read_from<R: Read + ?Sized>(&mut self, r: &mut R) -> io::Result<usize> {
        self.release_if_large();
        // How much the buffer should hold after this read: `read_size`, or
        // for a large frame whose header is in (its size already checked
        // against the maximum) up to the whole frame, but never more than
        // twice the bytes that did arrive: a header alone reserves
        // nothing, and a large frame's buffer doubles as its bytes come in,
        // up to the frame's size.
        let target = match self.pending() {
            (have, Some(need)) => usize::try_from(need)
                .unwrap_or(usize::MAX)
                .min(have.saturating_add(MAX_READ))
                .min(have.saturating_mul(2))
                .max(self.read_size),
            _ => self.read_size,
        };
        // Counting what is buffered: a partial frame does not grow it.
        let room = target.saturating_sub(self.buffered()).max(1);
        self.reserve(room);
        let spare = self.buf.get_mut(self.end..).unwrap_or_default();
        let asked = spare.len();
        let n = r.read(spare)?;
        self.read_size = next_read_size(self.read_size, n, asked);
        self.end = self.end.saturating_add(n).min(self.buf.len());
        Ok(n)
    }

    /// Frees a buffer that a large frame grew, once it is empty: a
    /// connection keeps at most [`SHRINK_ABOVE`] between large frames.
    /// (The few bytes of a next frame already in are moved to a new,
    /// small buffer.)
    fn release_if_large(&mut self) {
        if self.buf.len() > SHRINK_ABOVE && self.buffered() <= READ_CHUNK {
            let held = self.buf.get(self.start..self.end).unwrap_or_default();
            let mut small = Vec::with_capacity(self.read_size.max(held.len()));
            small.extend_from_slice(held);
            small.resize(small.capacity(), 0);
            self.end = held.len();
            self.start = 0;
            self.buf = small;
        }
    }

    /// Makes room for `n` more bytes after `end`: first by moving the
    /// unconsumed bytes to the front, then by growing.
    fn reserve(&mut self, n: usize) {
        if self.buf.len().saturating_sub(self.end) >= n {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end = self.end.saturating_sub(self.start);
            self.start = 0;
            if self.buf.len().saturating_sub(self.end) >= n {
                return;
            }
        }
        // Double, but never past the whole of a large frame in progress
        // (its size is known and checked): a 1 MiB frame fits in 1 MiB.
        let cap = match self.pending() {
            (_, Some(need)) => usize::try_from(need).unwrap_or(usize::MAX),
            _ => usize::MAX,
        };
        let want = self
            .end
            .saturating_add(n)
            .max(self.buf.len().saturating_mul(2).min(cap));
        // Exactly: `Vec`'s own growth would double the capacity again.
        self.buf.reserve_exact(want.saturating_sub(self.buf.len()));
        self.buf.resize(want, 0);
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed.
    ///
    /// After an error the stream is unsynchronised (a v3 size cannot be
    /// trusted, so neither can anything after it): every later call returns
    /// the same error.
    pub fn next_frame(&mut self) -> Result<Option<FrameRef<'_>>, DecodeError> {
        self.next(false).map(|f| f.map(|(f, _)| f))
    }

    /// [`FrameReader::next_frame`], but a frame of a framing file whose
    /// only fault is a wrong checksum is given with that error beside it,
    /// and the stream stays in step after it (its length is trusted; see
    /// [`super::parse_lenient`]): what a capture shows. Servers use
    /// [`FrameReader::next_frame`].
    pub fn next_frame_lenient(
        &mut self,
    ) -> Result<Option<(FrameRef<'_>, Option<DecodeError>)>, DecodeError> {
        // Only a framing file has checksums to be lenient about: v2 and v3
        // keep the plain parse (the capture's hot path).
        let lenient = matches!(self.framing, Framing::Custom(_));
        self.next(lenient)
    }

    fn next(
        &mut self,
        lenient: bool,
    ) -> Result<Option<(FrameRef<'_>, Option<DecodeError>)>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let data = self.buf.get(self.start..self.end).unwrap_or_default();
        let parsed = if lenient {
            super::parse_lenient(self.framing, data, self.max_frame)
        } else {
            parse(self.framing, data, self.max_frame).map(|p| (p, None))
        };
        match parsed {
            Ok((Parse::Frame(f), bad)) => {
                let len = f.raw.len();
                self.start = self.start.saturating_add(len);
                self.consumed = self.consumed.saturating_add(len as u64);
                if self.start == self.end {
                    // Nothing left: reuse the buffer from its start (cheap,
                    // and keeps the common case free of copies).
                    self.start = 0;
                    self.end = 0;
                }
                Ok(Some((f, bad)))
            }
            Ok((Parse::Incomplete { .. }, _)) => Ok(None),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// The incomplete frame buffered now: `(bytes held, bytes it needs in
    /// all)`; the need is `None` while even the header is incomplete for v3
    /// (then it is at least the header). `(0, None)` when nothing is held.
    pub fn pending(&self) -> (usize, Option<u64>) {
        let have = self.buffered();
        if have == 0 {
            return (0, None);
        }
        let data = self.buf.get(self.start..self.end).unwrap_or_default();
        let header = self.framing.spec().fixed_len();
        match parse(self.framing, data, self.max_frame) {
            Ok(Parse::Incomplete { need }) if have >= header => (have, Some(need)),
            Ok(Parse::Incomplete { need }) if self.framing == Framing::V2 => (have, Some(need)),
            _ => (have, None),
        }
    }

    /// Drops every buffered byte and any error: the caller knows the
    /// stream resumes at a frame boundary (after a capture gap). Returns
    /// how many bytes were dropped.
    pub fn reset(&mut self) -> usize {
        let dropped = self.buffered();
        self.consumed = self.consumed.saturating_add(dropped as u64);
        self.start = 0;
        self.end = 0;
        self.failed = None;
        dropped
    }

    /// Call at end of stream: an error if a frame was cut short.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let have = self.buffered();
        if have == 0 {
            return Ok(());
        }
        let data = self.buf.get(self.start..self.end).unwrap_or_default();
        let need = match parse(self.framing, data, self.max_frame) {
            Ok(Parse::Incomplete { need }) => need,
            // A whole frame still buffered is not truncation; a header
            // error would have been returned by next_frame already.
            Ok(Parse::Frame(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        Err(DecodeError::Truncated {
            framing: self.framing,
            have,
            need,
        })
    }
}
