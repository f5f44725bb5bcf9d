//! What `rc1 lab` keeps of a capture: a [`Sink`] that records the facts the
//! answers are built from (sessions, frames with their segments, datagrams,
//! handshakes, diagnostics), bounded so a long run cannot grow it.

use std::collections::HashMap;

use crate::capture::event::{Dir, EchoMatch, Event, SessionSummary, Sink, TcpWhat, Totals, Where};
use crate::capture::reassembly::Chunk;
use crate::capture::source::Timestamp;
use crate::codec::Framing;

/// Items of each kind kept at most (a lab exercise sends a handful).
pub const MAX_KEPT: usize = 4096;

/// Bytes of a frame or message kept (the bytes pane shows no more).
pub const MAX_BYTES: usize = 512;

/// The first this many frames are kept whole (up to [`MAX_WHOLE`] bytes
/// each), so their bytes panes count every byte and mark every segment.
pub const WHOLE_FRAMES: usize = 64;

/// Largest frame kept whole.
pub const MAX_WHOLE: usize = 1 << 20;

/// A decoded frame.
#[derive(Debug, Clone)]
pub struct SeenFrame {
    /// Where and when.
    pub at: Where,
    /// Direction.
    pub dir: Dir,
    /// Stream offset of its first byte.
    pub offset: u64,
    /// Its length on the wire.
    pub len: u64,
    /// v2 or v3.
    pub framing: Framing,
    /// `order`.
    pub order: u32,
    /// `size`.
    pub size: u32,
    /// The message (its first [`MAX_BYTES`]).
    pub message: Vec<u8>,
    /// The frame's bytes as on the wire: whole for the first
    /// [`WHOLE_FRAMES`], else the first [`MAX_BYTES`].
    pub raw: Vec<u8>,
    /// v2: the message was longer than 20 and was cut.
    pub cut: bool,
    /// For echoes: how it matched.
    pub echo: Option<EchoMatch>,
}

/// A text message or a UDP datagram.
#[derive(Debug, Clone)]
pub struct SeenMessage {
    /// Where and when.
    pub at: Where,
    /// Direction.
    pub dir: Dir,
    /// Its length.
    pub len: usize,
    /// Its first [`MAX_BYTES`] bytes.
    pub data: Vec<u8>,
    /// For TCP echoes: how it matched.
    pub echo: Option<EchoMatch>,
}

/// A run of stream bytes as it was delivered in order: on a live loopback
/// capture, one TCP segment's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Stream offset of its first byte.
    pub offset: u64,
    /// Payload bytes.
    pub len: u64,
    /// Capture time.
    pub ts: Timestamp,
}

/// Everything kept.
#[derive(Debug, Default)]
pub struct Observed {
    /// Sessions, as they ended.
    pub sessions: Vec<SessionSummary>,
    /// Frames.
    pub frames: Vec<SeenFrame>,
    /// Text messages (TCP).
    pub texts: Vec<SeenMessage>,
    /// UDP datagrams.
    pub datagrams: Vec<SeenMessage>,
    /// TCP control events.
    pub tcp: Vec<(Where, TcpWhat)>,
    /// Segments by (session, direction index), in stream order.
    pub segments: HashMap<(u64, usize), Vec<Segment>>,
    /// Diagnostics: code and sentence.
    pub diagnostics: Vec<(&'static str, String)>,
    /// Items not kept because a list was full.
    pub not_kept: u64,
    /// The run's totals.
    pub totals: Option<Totals>,
}

impl Observed {
    /// The segments that carried bytes `offset..offset + len` of a
    /// direction, as (frame-relative start, length, time), in order.
    pub fn segments_of(&self, session: u64, dir: Dir, offset: u64, len: u64) -> Vec<Segment> {
        let end = offset.saturating_add(len);
        self.segments
            .get(&(session, dir.index()))
            .map(|segs| {
                segs.iter()
                    .filter(|s| s.offset < end && s.offset.saturating_add(s.len) > offset)
                    .map(|s| {
                        let from = s.offset.max(offset);
                        let to = s.offset.saturating_add(s.len).min(end);
                        Segment {
                            offset: from - offset,
                            len: to - from,
                            ts: s.ts,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The summary of session `id`, once it ended.
    pub fn session(&self, id: u64) -> Option<&SessionSummary> {
        self.sessions.iter().find(|s| s.id == id)
    }

    fn keep<T>(list: &mut Vec<T>, not_kept: &mut u64, item: impl FnOnce() -> T) {
        if list.len() < MAX_KEPT {
            list.push(item());
        } else {
            *not_kept += 1;
        }
    }
}

fn head(b: &[u8]) -> Vec<u8> {
    b[..b.len().min(MAX_BYTES)].to_vec()
}

impl Sink for Observed {
    fn stream(&mut self, at: &Where, dir: Dir, chunk: &Chunk<'_>) {
        if let Chunk::Data { offset, bytes } = chunk {
            let total: usize = self.segments.values().map(Vec::len).sum();
            if total >= MAX_KEPT {
                self.not_kept += 1;
                return;
            }
            self.segments
                .entry((at.session, dir.index()))
                .or_default()
                .push(Segment {
                    offset: *offset,
                    len: bytes.len() as u64,
                    ts: at.ts,
                });
        }
    }

    fn event(&mut self, ev: &Event<'_>) {
        let n_frames = self.frames.len();
        let n = &mut self.not_kept;
        match ev {
            Event::Frame {
                at,
                dir,
                offset,
                framing,
                frame,
                echo,
            } => Observed::keep(&mut self.frames, n, || SeenFrame {
                at: *at,
                dir: *dir,
                offset: *offset,
                len: frame.raw.len() as u64,
                framing: *framing,
                order: frame.order,
                size: frame.size,
                message: head(frame.message),
                raw: if n_frames < WHOLE_FRAMES && frame.raw.len() <= MAX_WHOLE {
                    frame.raw.to_vec()
                } else {
                    head(frame.raw)
                },
                cut: *framing == Framing::V2 && frame.is_cut(),
                echo: *echo,
            }),
            Event::Text {
                at,
                dir,
                data,
                echo,
                ..
            } => Observed::keep(&mut self.texts, n, || SeenMessage {
                at: *at,
                dir: *dir,
                len: data.len(),
                data: head(data),
                echo: *echo,
            }),
            Event::Udp { at, dir, data, .. } => {
                Observed::keep(&mut self.datagrams, n, || SeenMessage {
                    at: *at,
                    dir: *dir,
                    len: data.len(),
                    data: head(data),
                    echo: None,
                })
            }
            Event::Tcp { at, what } => Observed::keep(&mut self.tcp, n, || (*at, *what)),
            Event::Diagnostic { code, message, .. } => {
                Observed::keep(&mut self.diagnostics, n, || (*code, message.clone()))
            }
            Event::Detected { .. } => {}
        }
    }

    fn session_end(&mut self, s: &SessionSummary) {
        Observed::keep(&mut self.sessions, &mut self.not_kept, || s.clone());
    }

    fn finish(&mut self, totals: &Totals) {
        self.totals = Some(totals.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_s_segments_are_cut_to_the_frame() {
        let mut o = Observed::default();
        let ts = Timestamp { sec: 1, usec: 0 };
        o.segments.insert(
            (1, 0),
            vec![
                Segment {
                    offset: 0,
                    len: 29,
                    ts,
                },
                Segment {
                    offset: 29,
                    len: 9,
                    ts,
                },
                Segment {
                    offset: 38,
                    len: 20,
                    ts,
                },
                Segment {
                    offset: 58,
                    len: 29,
                    ts,
                },
            ],
        );
        let segs = o.segments_of(1, Dir::ToServer, 29, 29);
        assert_eq!(
            segs.iter().map(|s| (s.offset, s.len)).collect::<Vec<_>>(),
            vec![(0, 9), (9, 20)]
        );
        assert!(o.segments_of(1, Dir::ToClient, 0, 29).is_empty());
        assert_eq!(o.segments_of(1, Dir::ToServer, 0, 29).len(), 1);
    }
}
