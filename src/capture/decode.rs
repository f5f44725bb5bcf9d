//! Frames out of one reassembled direction, across gaps.
//!
//! A [`StreamDecoder`] takes the reassembler's [`Chunk`]s in order and gives
//! [`Decoded`] items: frames (through [`FrameReader`], the same reader the
//! servers use), text messages, and the damage a gap did. A gap is never
//! papered over:
//!
//! * a frame the gap cuts is reported **damaged** with its offset, never
//!   decoded from wrong bytes;
//! * **v2** resumes at the next 29-byte boundary of the stream (frames sit
//!   at multiples of 29 from the first byte);
//! * **v3** resumes only where a header can be trusted: if the gap fell
//!   inside a frame whose header was seen, decoding resumes right after that
//!   frame; otherwise the rest of the direction is reported
//!   **unsynchronised**, with its byte count at the end;
//! * **text** just notes the gap and goes on.
//!
//! A direction picked up mid-stream (the capture began after the
//! connection did) may begin inside a frame: [`StreamDecoder::midstream`]
//! holds its first bytes until [`crate::codec::detect::align`] finds where
//! whole frames begin, reports the bytes before as a [`Decoded::Partial`]
//! frame, and decodes from there (v2's boundaries are then that offset plus
//! multiples of 29).

#![warn(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use super::reassembly::Chunk;
use crate::codec::detect::{MIDSTREAM_SEARCH, align};
use crate::codec::{self, DecodeError, FrameReader, FrameRef, Framing, Parse, v2};

/// What one direction carries, once known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carries {
    /// v2 or v3 frames.
    Framed(Framing),
    /// Text.
    Text,
}

/// One thing decoded from a direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole frame starting at stream offset `offset`.
    Frame {
        /// Stream offset of its first byte.
        offset: u64,
        /// Its framing.
        framing: Framing,
        /// The frame.
        frame: FrameRef<'a>,
    },
    /// Text bytes (one reassembled chunk).
    Text {
        /// Stream offset.
        offset: u64,
        /// The bytes.
        data: &'a [u8],
    },
    /// Bytes never captured.
    Gap {
        /// Stream offset.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// Bytes of a frame a gap cut: not decoded.
    Damaged {
        /// Stream offset of the frame (or of the bytes skipped).
        offset: u64,
        /// Bytes of it that were captured and dropped.
        captured: u64,
        /// Why.
        reason: String,
    },
    /// A whole frame of a framing file whose lengths and constants hold
    /// but whose checksum does not (`error`, `framing.checksum`): shown
    /// with its fields; its length is trusted and decoding goes on after
    /// it.
    Faulty {
        /// Stream offset of its first byte.
        offset: u64,
        /// Its framing.
        framing: Framing,
        /// The frame, as its bytes came.
        frame: FrameRef<'a>,
        /// The check it fails.
        error: DecodeError,
    },
    /// A decode error (e.g. `v3.size_over_max`); the direction is
    /// unsynchronised after it.
    Error {
        /// Stream offset of the frame.
        offset: u64,
        /// The error.
        error: DecodeError,
    },
    /// End of the direction: `bytes` after the last trusted frame were not
    /// decoded because no header could be trusted.
    Unsynchronised {
        /// Stream offset where decoding stopped.
        offset: u64,
        /// Bytes not decoded.
        bytes: u64,
    },
    /// The stream ended inside a frame.
    Truncated {
        /// Stream offset of the frame.
        offset: u64,
        /// The error, with counts.
        error: DecodeError,
    },
    /// The first bytes of a direction picked up mid-stream: the end of a
    /// frame sent before the capture began; decoding starts after them.
    Partial {
        /// Stream offset (where the capture's bytes begin).
        offset: u64,
        /// Bytes before the first whole frame.
        len: u64,
    },
}

/// Decoder state of one direction.
#[derive(Debug)]
pub struct StreamDecoder {
    carries: Carries,
    reader: Option<FrameReader>,
    /// Skip captured bytes until this stream offset (resynchronising).
    skip_until: Option<u64>,
    /// Start of the frame those skipped bytes belong to.
    skip_frame: u64,
    /// Since this offset nothing can be decoded (v3 without a trusted header).
    unsync_from: Option<u64>,
    unsync_bytes: u64,
    /// Stream offset of the next byte expected.
    next: u64,
    /// Offset where the reader's buffer starts.
    reader_base: u64,
    /// v2: frames (29-byte slots of the stream) a gap touched, lost whole
    /// or damaged; each counted once.
    frames_in_gaps: u64,
    /// v2: slots below this index are counted already.
    counted_to: u64,
    /// Offset of the first frame boundary: v2 frames sit at this plus
    /// multiples of 29 (0 unless picked up mid-stream).
    phase: u64,
    /// Picked up mid-stream: bytes held (from offset `.0`) until a frame
    /// boundary is found.
    aligning: Option<(u64, Vec<u8>)>,
    max_frame: u32,
}

impl StreamDecoder {
    /// A decoder for `carries`.
    pub fn new(carries: Carries, max_frame: u32) -> StreamDecoder {
        StreamDecoder {
            carries,
            reader: match carries {
                Carries::Framed(f) => Some(FrameReader::new(f, max_frame)),
                Carries::Text => None,
            },
            skip_until: None,
            skip_frame: 0,
            unsync_from: None,
            unsync_bytes: 0,
            next: 0,
            reader_base: 0,
            frames_in_gaps: 0,
            counted_to: 0,
            phase: 0,
            aligning: None,
            max_frame,
        }
    }

    /// A decoder for a direction picked up mid-stream: it looks for the
    /// first frame boundary before decoding (text needs none).
    pub fn midstream(carries: Carries, max_frame: u32) -> StreamDecoder {
        let mut d = StreamDecoder::new(carries, max_frame);
        if matches!(carries, Carries::Framed(_)) {
            d.aligning = Some((0, Vec::new()));
        }
        d
    }

    /// v2 only: how many frames the gaps so far touched (lost whole, or
    /// cut and so not decoded). v2 frames sit at multiples of 29 bytes, so
    /// this is exact: frames decoded plus these are all the frames of the
    /// stream. `None` for v3 (a lost header hides where frames were) and
    /// text.
    pub fn frames_in_gaps(&self) -> Option<u64> {
        (self.carries == Carries::Framed(Framing::V2)).then_some(self.frames_in_gaps)
    }

    /// What this direction carries.
    pub fn carries(&self) -> Carries {
        self.carries
    }

    /// Feeds one chunk; each decoded item goes to `out`.
    pub fn chunk(&mut self, chunk: Chunk<'_>, out: &mut dyn FnMut(Decoded<'_>)) {
        match chunk {
            Chunk::Data { offset, bytes } => self.data(offset, bytes, out),
            Chunk::Gap { offset, len } => self.gap(offset, len, out),
        }
    }

    /// Picked up mid-stream: holds bytes until a frame boundary is found
    /// (`complete`: no more will come), then decodes from it.
    fn align_data(
        &mut self,
        offset: u64,
        bytes: &[u8],
        complete: bool,
        out: &mut dyn FnMut(Decoded<'_>),
    ) {
        let Some((base, mut buf)) = self.aligning.take() else {
            return;
        };
        let Carries::Framed(framing) = self.carries else {
            return;
        };
        let base = if buf.is_empty() { offset } else { base };
        buf.extend_from_slice(bytes);
        match align(framing, &buf, complete, self.max_frame) {
            Some(skip) => {
                let skip64 = skip as u64;
                if skip > 0 {
                    out(Decoded::Partial {
                        offset: base,
                        len: skip64,
                    });
                }
                self.phase = base.saturating_add(skip64);
                let start = base.saturating_add(skip64);
                self.data(start, buf.get(skip..).unwrap_or_default(), out);
            }
            None if complete || buf.len() > MIDSTREAM_SEARCH => {
                // No boundary: nothing here can be trusted.
                self.next = base.saturating_add(buf.len() as u64);
                self.unsync_from = Some(base);
                self.unsync_bytes = buf.len() as u64;
            }
            None => self.aligning = Some((base, buf)),
        }
    }

    fn data(&mut self, offset: u64, bytes: &[u8], out: &mut dyn FnMut(Decoded<'_>)) {
        if self.aligning.is_some() {
            self.align_data(offset, bytes, false, out);
            return;
        }
        self.next = offset.saturating_add(bytes.len() as u64);
        if self.unsync_from.is_some() {
            self.unsync_bytes = self.unsync_bytes.saturating_add(bytes.len() as u64);
            return;
        }
        let (offset, bytes) = match self.skip_until {
            Some(until) if until > offset => {
                let skip = usize::try_from(until.saturating_sub(offset))
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                // These bytes finish a frame the gap cut: say so, never
                // decode them.
                out(Decoded::Damaged {
                    offset,
                    captured: skip as u64,
                    reason: format!(
                        "the end of the frame at offset {} that a gap cut; decoding resumes at offset {until}",
                        self.skip_frame
                    ),
                });
                let rest = bytes.get(skip..).unwrap_or_default();
                if until > self.next {
                    return;
                }
                self.skip_until = None;
                (offset.saturating_add(skip as u64), rest)
            }
            _ => {
                self.skip_until = None;
                (offset, bytes)
            }
        };
        let Some(reader) = &mut self.reader else {
            if !bytes.is_empty() {
                out(Decoded::Text {
                    offset,
                    data: bytes,
                });
            }
            return;
        };
        let framing = reader.framing();
        let mut bytes = bytes;
        if reader.buffered() == 0 {
            // Nothing held: frames come straight out of the chunk, and only
            // an incomplete last one is copied into the reader (a 64 kB
            // segment of 2,000 v2 frames is not copied at all).
            let mut at = offset;
            loop {
                match codec::parse_lenient(framing, bytes, self.max_frame) {
                    // (A frame is never empty: it has a header.)
                    Ok((Parse::Frame(frame), bad)) if !frame.raw.is_empty() => {
                        let len = frame.raw.len();
                        out(match bad {
                            None => Decoded::Frame {
                                offset: at,
                                framing,
                                frame,
                            },
                            Some(error) => Decoded::Faulty {
                                offset: at,
                                framing,
                                frame,
                                error,
                            },
                        });
                        at = at.saturating_add(len as u64);
                        bytes = bytes.get(len..).unwrap_or_default();
                    }
                    Ok(_) => break,
                    Err(error) => {
                        out(Decoded::Error { offset: at, error });
                        self.unsync_from = Some(at);
                        self.unsync_bytes = bytes.len() as u64;
                        return;
                    }
                }
            }
            self.reader_base = at;
        }
        reader.push(bytes);
        loop {
            let at = self.reader_base;
            match reader.next_frame_lenient() {
                Ok(Some((frame, bad))) => {
                    self.reader_base = at.saturating_add(frame.raw.len() as u64);
                    out(match bad {
                        None => Decoded::Frame {
                            offset: at,
                            framing,
                            frame,
                        },
                        Some(error) => Decoded::Faulty {
                            offset: at,
                            framing,
                            frame,
                            error,
                        },
                    });
                }
                Ok(None) => break,
                Err(error) => {
                    let held = reader.reset() as u64;
                    out(Decoded::Error { offset: at, error });
                    self.unsync_from = Some(at);
                    self.unsync_bytes = held;
                    break;
                }
            }
        }
    }

    fn gap(&mut self, offset: u64, len: u64, out: &mut dyn FnMut(Decoded<'_>)) {
        out(Decoded::Gap { offset, len });
        let gap_end = offset.saturating_add(len);
        if let Some((base, buf)) = self.aligning.take() {
            // Bytes held while looking for a boundary, then a hole: they
            // cannot be aligned now; look again after the hole.
            if !buf.is_empty() {
                out(Decoded::Damaged {
                    offset: base,
                    captured: buf.len() as u64,
                    reason: "before a gap, and no frame boundary found in them".into(),
                });
            }
            self.next = gap_end;
            self.aligning = Some((gap_end, Vec::new()));
            return;
        }
        if self.carries == Carries::Framed(Framing::V2) && len > 0 && self.aligning.is_none() {
            let len2 = v2::LEN as u64;
            let (o, e) = (
                offset.saturating_sub(self.phase),
                gap_end.saturating_sub(self.phase),
            );
            let first = o.checked_div(len2).unwrap_or(0).max(self.counted_to);
            let end = e.div_ceil(len2);
            self.frames_in_gaps = self
                .frames_in_gaps
                .saturating_add(end.saturating_sub(first));
            self.counted_to = self.counted_to.max(end);
        }
        self.next = gap_end;
        if self.unsync_from.is_some() {
            return;
        }
        let Some(reader) = &mut self.reader else {
            return;
        };
        let framing = reader.framing();
        let (have, need) = reader.pending();
        let frame_start = self.reader_base;
        reader.reset();
        // Where the next trusted frame starts.
        // Fixed-size frames (v2, or a framing file without a length) resume
        // on the frame grid; others only after a header that was seen.
        let fixed = match framing {
            Framing::V2 => Some(v2::LEN as u64),
            Framing::Custom(d) if d.is_fixed() => Some(d.spec.fixed_len() as u64),
            Framing::V3 | Framing::Custom(_) => None,
        };
        let resume = match fixed {
            Some(len2) => {
                let phase = self.phase.min(gap_end);
                phase.saturating_add(
                    gap_end
                        .saturating_sub(phase)
                        .div_ceil(len2)
                        .saturating_mul(len2),
                )
            }
            None => match need {
                // The cut frame's header was seen: skip to its end, if the
                // gap ends inside it.
                Some(need) if frame_start.saturating_add(need) >= gap_end && have > 0 => {
                    frame_start.saturating_add(need)
                }
                _ if have == 0 && self.skip_until.is_none() => {
                    // The gap began at a frame boundary; if it swallowed a
                    // header we cannot know where frames start again.
                    self.unsync_from = Some(offset);
                    return;
                }
                _ => {
                    self.unsync_from = Some(offset);
                    if have > 0 {
                        out(Decoded::Damaged {
                            offset: frame_start,
                            captured: have as u64,
                            reason: "its header is cut by the gap".into(),
                        });
                    }
                    return;
                }
            },
        };
        if have > 0 {
            out(Decoded::Damaged {
                offset: frame_start,
                captured: have as u64,
                reason: format!("cut by the {len}-byte gap at offset {offset}; not decoded"),
            });
        }
        if resume > gap_end {
            self.skip_until = Some(resume);
            self.skip_frame = match fixed {
                Some(len2) => resume.saturating_sub(len2),
                None => frame_start,
            };
        }
        self.reader_base = resume;
    }

    /// End of the direction.
    pub fn finish(&mut self, out: &mut dyn FnMut(Decoded<'_>)) {
        if self.aligning.as_ref().is_some_and(|(_, b)| !b.is_empty()) {
            self.align_data(self.next, &[], true, out);
        }
        if let Some(offset) = self.unsync_from {
            if self.unsync_bytes > 0 || self.next > offset {
                out(Decoded::Unsynchronised {
                    offset,
                    bytes: self.unsync_bytes,
                });
            }
            return;
        }
        if let Some(reader) = &self.reader
            && let Err(error) = reader.finish()
        {
            out(Decoded::Truncated {
                offset: self.reader_base,
                error,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::cast_possible_truncation,
        reason = "tests"
    )]

    use super::*;
    use crate::codec::Frame;

    fn frames(framing: Framing, msgs: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let o = i as u32 + 1;
            let f = match framing {
                Framing::V2 => Frame::v2(1, o, m),
                Framing::V3 => Frame::v3(1, o, m),
                Framing::Custom(_) => panic!("a test of v2 and v3 only"),
            };
            f.unwrap().encode(framing, &mut out);
        }
        out
    }

    /// Runs chunks through a decoder; returns a compact trace.
    fn run(carries: Carries, chunks: &[Chunk<'_>]) -> Vec<String> {
        let mut d = StreamDecoder::new(carries, 1 << 20);
        let mut trace = Vec::new();
        let mut push = |x: Decoded<'_>| {
            trace.push(match x {
                Decoded::Frame { offset, frame, .. } => {
                    format!("frame@{offset} order={}", frame.order)
                }
                Decoded::Text { offset, data } => {
                    format!("text@{offset} {}", String::from_utf8_lossy(data))
                }
                Decoded::Gap { offset, len } => format!("gap@{offset}+{len}"),
                Decoded::Damaged {
                    offset, captured, ..
                } => format!("damaged@{offset} {captured}"),
                Decoded::Error { offset, error } => {
                    format!("error@{offset} {}", error.diagnostic().code)
                }
                Decoded::Unsynchronised { offset, bytes } => format!("unsync@{offset} {bytes}"),
                Decoded::Truncated { offset, .. } => format!("truncated@{offset}"),
                Decoded::Partial { offset, len } => format!("partial@{offset} {len}"),
                Decoded::Faulty { offset, error, .. } => {
                    format!("faulty@{offset} {}", error.diagnostic().code)
                }
            })
        };
        for c in chunks {
            d.chunk(c.clone(), &mut push);
        }
        d.finish(&mut push);
        trace
    }

    /// Runs chunks through a decoder for a direction picked up mid-stream.
    fn run_midstream(carries: Carries, chunks: &[Chunk<'_>]) -> Vec<String> {
        let mut d = StreamDecoder::midstream(carries, 1 << 20);
        let mut trace = Vec::new();
        let mut push = |x: Decoded<'_>| {
            trace.push(match x {
                Decoded::Frame { offset, frame, .. } => {
                    format!("frame@{offset} order={}", frame.order)
                }
                Decoded::Partial { offset, len } => format!("partial@{offset} {len}"),
                Decoded::Gap { offset, len } => format!("gap@{offset}+{len}"),
                Decoded::Damaged {
                    offset, captured, ..
                } => format!("damaged@{offset} {captured}"),
                other => format!("{other:?}"),
            })
        };
        for c in chunks {
            d.chunk(c.clone(), &mut push);
        }
        d.finish(&mut push);
        trace
    }

    #[test]
    fn midstream_v2_aligns_and_resumes_on_its_own_boundaries() {
        let s = frames(Framing::V2, &[b"zero", b"one", b"two", b"three", b"four"]);
        // The capture starts 12 bytes before the end of frame 1 (offset 0
        // here is byte 17 of the real stream); frame 3 loses 10 bytes.
        let s = &s[17..];
        let t = run_midstream(
            Carries::Framed(Framing::V2),
            &[
                Chunk::Data {
                    offset: 0,
                    bytes: &s[..70],
                },
                Chunk::Gap {
                    offset: 70,
                    len: 10,
                },
                Chunk::Data {
                    offset: 80,
                    bytes: &s[80..],
                },
            ],
        );
        assert_eq!(
            t,
            [
                "partial@0 12",
                "frame@12 order=2",
                "frame@41 order=3",
                "gap@70+10",
                "damaged@80 19",
                "frame@99 order=5"
            ]
        );
    }

    #[test]
    fn v2_resumes_at_the_next_29_byte_boundary() {
        let s = frames(Framing::V2, &[b"one", b"two", b"three", b"four"]);
        // Bytes 40..50 are lost: frame 2 (29..58) is damaged, 3 and 4 decode.
        let t = run(
            Carries::Framed(Framing::V2),
            &[
                Chunk::Data {
                    offset: 0,
                    bytes: &s[..40],
                },
                Chunk::Gap {
                    offset: 40,
                    len: 10,
                },
                Chunk::Data {
                    offset: 50,
                    bytes: &s[50..],
                },
            ],
        );
        assert_eq!(
            t,
            [
                "frame@0 order=1",
                "gap@40+10",
                "damaged@29 11",
                "damaged@50 8",
                "frame@58 order=3",
                "frame@87 order=4"
            ]
        );
    }

    #[test]
    fn v3_resumes_after_a_frame_whose_header_was_seen() {
        let s = frames(Framing::V3, &[b"hello world", b"0123456789abcdef", b"bye"]);
        // Frame 2 is 9+16 bytes at 20..45; lose 30..35 (inside its body).
        let t = run(
            Carries::Framed(Framing::V3),
            &[
                Chunk::Data {
                    offset: 0,
                    bytes: &s[..30],
                },
                Chunk::Gap { offset: 30, len: 5 },
                Chunk::Data {
                    offset: 35,
                    bytes: &s[35..],
                },
            ],
        );
        assert_eq!(
            t,
            [
                "frame@0 order=1",
                "gap@30+5",
                "damaged@20 10",
                "damaged@35 10",
                "frame@45 order=3"
            ]
        );
    }

    #[test]
    fn v2_gap_on_a_frame_boundary_damages_the_frame_it_ends_in() {
        // gap.pcap's case: frame 2 lost whole, frame 3 missing its first 11 bytes.
        let s = frames(Framing::V2, &[b"one", b"two", b"three", b"four"]);
        let t = run(
            Carries::Framed(Framing::V2),
            &[
                Chunk::Data {
                    offset: 0,
                    bytes: &s[..29],
                },
                Chunk::Gap {
                    offset: 29,
                    len: 40,
                },
                Chunk::Data {
                    offset: 69,
                    bytes: &s[69..],
                },
            ],
        );
        assert_eq!(
            t,
            [
                "frame@0 order=1",
                "gap@29+40",
                "damaged@69 18",
                "frame@87 order=4"
            ]
        );
    }

    proptest::proptest! {
        /// Frames, their offsets and any error come out the same however
        /// the stream is cut into chunks: frames decoded straight out of a
        /// chunk, or out of the reader's buffer once a frame spans chunks.
        /// (v3 streams may end in a header claiming more than --max-frame,
        /// or in an incomplete frame.)
        #[test]
        fn the_same_frames_whatever_the_chunking(
            v3 in proptest::bool::ANY,
            sizes in proptest::collection::vec(0usize..60, 1..30),
            cuts in proptest::collection::vec(0usize..2000, 0..20),
            tail in 0u8..3,
        ) {
            let framing = if v3 { Framing::V3 } else { Framing::V2 };
            let msgs: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![b'x'; n.min(20)]).collect();
            let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
            let mut s = frames(framing, &refs);
            match (v3, tail) {
                // A header claiming 4 GB, then some bytes.
                (true, 1) => s.extend_from_slice(&[1, 0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff, b'a']),
                // The start of a frame.
                (_, 2) => s.extend_from_slice(&[1, 0, 0]),
                _ => {}
            }
            let whole = run(Carries::Framed(framing), &[Chunk::Data { offset: 0, bytes: &s }]);
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (s.len() + 1)).collect();
            points.push(0);
            points.push(s.len());
            points.sort_unstable();
            points.dedup();
            let pieces: Vec<Chunk<'_>> = points
                .windows(2)
                .map(|w| Chunk::Data { offset: w[0] as u64, bytes: &s[w[0]..w[1]] })
                .collect();
            let cut = run(Carries::Framed(framing), &pieces);
            proptest::prop_assert_eq!(
                whole.iter().filter(|l| l.starts_with("frame@")).count(),
                sizes.len()
            );
            proptest::prop_assert_eq!(cut, whole);
        }

        /// v2: frames decoded plus frames the gaps touched are every frame
        /// of the stream, wherever the gaps fall (the accounting a capture
        /// with kernel drops relies on).
        #[test]
        fn v2_frames_decoded_plus_frames_in_gaps_are_all_frames(
            n in 1usize..40,
            cuts in proptest::collection::vec((0u64..1200, proptest::bool::ANY), 0..12),
        ) {
            let msgs: Vec<Vec<u8>> = (0..n).map(|i| format!("m{i}").into_bytes()).collect();
            let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
            let s = frames(Framing::V2, &refs);
            let total = s.len() as u64;
            // Cut the stream at the given points; each piece is data or a gap.
            let mut points: Vec<u64> = cuts.iter().map(|(p, _)| p % total).collect();
            points.push(0);
            points.push(total);
            points.sort_unstable();
            points.dedup();
            let mut d = StreamDecoder::new(Carries::Framed(Framing::V2), 1 << 20);
            let mut decoded = 0u64;
            let mut count = |x: Decoded<'_>| {
                if matches!(x, Decoded::Frame { .. }) {
                    decoded += 1;
                }
            };
            for (i, w) in points.windows(2).enumerate() {
                let (a, b) = (w[0], w[1]);
                let lost = cuts.get(i).is_some_and(|c| c.1);
                let chunk = if lost {
                    Chunk::Gap { offset: a, len: b - a }
                } else {
                    Chunk::Data { offset: a, bytes: &s[a as usize..b as usize] }
                };
                d.chunk(chunk, &mut count);
            }
            d.finish(&mut count);
            proptest::prop_assert_eq!(decoded + d.frames_in_gaps().unwrap(), n as u64);
        }
    }

    #[test]
    fn v3_without_a_trusted_header_is_unsynchronised_to_the_end() {
        let s = frames(Framing::V3, &[b"hello world", b"0123456789abcdef", b"bye"]);
        // Lose 18..25: the end of frame 1 and the header of frame 2.
        let t = run(
            Carries::Framed(Framing::V3),
            &[
                Chunk::Data {
                    offset: 0,
                    bytes: &s[..18],
                },
                Chunk::Gap { offset: 18, len: 7 },
                Chunk::Data {
                    offset: 25,
                    bytes: &s[25..],
                },
            ],
        );
        assert_eq!(t, ["gap@18+7", "damaged@0 18", "unsync@18 32"]);
    }

    #[test]
    fn oversized_claim_then_nothing_more_is_decoded() {
        let mut s = vec![1, 0, 0, 0, 1, 0xEE, 0x6B, 0x28, 0x00];
        s.extend_from_slice(&frames(Framing::V3, &[b"x"]));
        let t = run(
            Carries::Framed(Framing::V3),
            &[Chunk::Data {
                offset: 0,
                bytes: &s,
            }],
        );
        assert_eq!(t, ["error@0 v3.size_over_max", "unsync@0 19"]);
    }

    #[test]
    fn a_bad_checksum_is_reported_and_decoding_goes_on_after_the_frame() {
        let crc = Framing::Custom(Box::leak(Box::new(
            crate::framing::parse(
                include_str!("../../fixtures/framings/crc-trailer.toml"),
                "crc-trailer.toml",
            )
            .unwrap(),
        )));
        let mut s = Vec::new();
        let mut ends = Vec::new();
        for (k, m) in [(1, &b"good"[..]), (2, b"bad crc"), (3, b"good again")] {
            Frame::v3(1, k, m).unwrap().try_encode(crc, &mut s).unwrap();
            ends.push(s.len());
        }
        // Frame 2's CRC is wrong (its last byte).
        s[ends[1] - 1] ^= 0x55;
        let want = [
            "frame@0 order=1".to_string(),
            format!("faulty@{} framing.checksum", ends[0]),
            format!("frame@{} order=3", ends[1]),
        ];
        let whole = run(
            Carries::Framed(crc),
            &[Chunk::Data {
                offset: 0,
                bytes: &s,
            }],
        );
        assert_eq!(whole, want);
        // The same when the bad frame comes out of the reader's buffer.
        let cut = ends[0] + 3;
        let t = run(
            Carries::Framed(crc),
            &[
                Chunk::Data {
                    offset: 0,
                    bytes: &s[..cut],
                },
                Chunk::Data {
                    offset: cut as u64,
                    bytes: &s[cut..],
                },
            ],
        );
        assert_eq!(t, want);
        // A wrong constant still desynchronises (typed: version = 3).
        let typed = Framing::Custom(Box::leak(Box::new(
            crate::framing::parse(
                include_str!("../../fixtures/framings/typed.toml"),
                "typed.toml",
            )
            .unwrap(),
        )));
        let mut s = Vec::new();
        Frame::v3(1, 1, b"one")
            .unwrap()
            .try_encode(typed, &mut s)
            .unwrap();
        let first = s.len();
        Frame::v3(1, 2, b"two")
            .unwrap()
            .try_encode(typed, &mut s)
            .unwrap();
        s[first] = 9;
        let t = run(
            Carries::Framed(typed),
            &[Chunk::Data {
                offset: 0,
                bytes: &s,
            }],
        );
        assert_eq!(
            t,
            [
                "frame@0 order=1".to_string(),
                format!("error@{first} framing.constant"),
                format!("unsync@{first} {}", s.len() - first),
            ]
        );
    }

    #[test]
    fn truncated_stream_and_text() {
        let s = frames(Framing::V2, &[b"one"]);
        let t = run(
            Carries::Framed(Framing::V2),
            &[Chunk::Data {
                offset: 0,
                bytes: &s[..20],
            }],
        );
        assert_eq!(t, ["truncated@0"]);
        let t = run(
            Carries::Text,
            &[
                Chunk::Data {
                    offset: 0,
                    bytes: b"hi",
                },
                Chunk::Gap { offset: 2, len: 3 },
                Chunk::Data {
                    offset: 5,
                    bytes: b"there",
                },
            ],
        );
        assert_eq!(t, ["text@0 hi", "gap@2+3", "text@5 there"]);
    }
}
