//! What the printer keeps for `--hex`: per session and direction, where
//! recent TCP segments' bytes begin and the last few KiB of the stream
//! (with its gaps), so a frame's pane can mark its segments and a damaged
//! frame's pane can show the bytes around the gap. Nothing is kept
//! without `--hex`; a session's record is freed at its end.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;

use super::hex;
use crate::capture::event::{Dir, Event, Fact, Facts};
use crate::capture::reassembly::Chunk;
use crate::codec::Framing;
use crate::spec::{self, FieldKind, FramingSpec};

/// Segment starts kept per direction (a 1 MiB v3 frame in 1,448-byte
/// segments has 725).
const MAX_STARTS: usize = 4096;

/// Stream bytes kept per direction, and per piece of a chunk (a larger
/// chunk keeps its first and last this many).
const KEEP: usize = 8 * 1024;
const PIECE: usize = 4 * 1024;

/// Pieces (data or gaps) kept per direction.
const MAX_PIECES: usize = 256;

/// A damaged frame larger than this gets a note, not a pane.
pub const MAX_DAMAGED_PANE: u64 = 4096;

enum Piece {
    Data(u64, Vec<u8>),
    Gap(u64, u64),
}

#[derive(Default)]
struct DirBytes {
    starts: VecDeque<u64>,
    pieces: VecDeque<Piece>,
    kept: usize,
    /// The frame `[start, end)` the last gap cut (its head was reported).
    last_cut: Option<(u64, u64)>,
}

/// One byte of the kept stream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Byte(u8),
    Missing,
    /// Captured, but no longer kept.
    Unknown,
}

impl DirBytes {
    fn push(&mut self, p: Piece) {
        if let Piece::Data(_, b) = &p {
            self.kept = self.kept.saturating_add(b.len());
        }
        self.pieces.push_back(p);
        while self.pieces.len() > 1 && (self.kept > KEEP || self.pieces.len() > MAX_PIECES) {
            if let Some(Piece::Data(_, b)) = self.pieces.pop_front() {
                self.kept = self.kept.saturating_sub(b.len());
            }
        }
    }

    fn chunk(&mut self, c: &Chunk<'_>) {
        match *c {
            Chunk::Data { offset, bytes } => {
                self.starts.push_back(offset);
                if self.starts.len() > MAX_STARTS {
                    self.starts.pop_front();
                }
                if bytes.len() <= 2 * PIECE {
                    self.push(Piece::Data(offset, bytes.to_vec()));
                } else {
                    let tail = bytes.len() - PIECE;
                    self.push(Piece::Data(offset, bytes[..PIECE].to_vec()));
                    self.push(Piece::Data(offset + tail as u64, bytes[tail..].to_vec()));
                }
            }
            Chunk::Gap { offset, len } => self.push(Piece::Gap(offset, len)),
        }
    }

    fn at(&self, off: u64) -> Slot {
        if off >= self.end() {
            return Slot::Missing; // never came: the stream ended first
        }
        for p in self.pieces.iter().rev() {
            match p {
                Piece::Data(o, b) if *o <= off && off - o < b.len() as u64 => {
                    return b
                        .get(usize::try_from(off - o).unwrap_or(usize::MAX))
                        .map_or(Slot::Unknown, |&x| Slot::Byte(x));
                }
                Piece::Gap(o, l) if *o <= off && off - o < *l => return Slot::Missing,
                _ => {}
            }
        }
        Slot::Unknown
    }

    /// End of what was seen (data or gap).
    fn end(&self) -> u64 {
        self.pieces.back().map_or(0, |p| match p {
            Piece::Data(o, b) => o.saturating_add(b.len() as u64),
            Piece::Gap(o, l) => o.saturating_add(*l),
        })
    }

    fn gap_starting_at(&self, off: u64) -> Option<(u64, u64)> {
        self.pieces.iter().rev().find_map(|p| match p {
            Piece::Gap(o, l) if *o == off => Some((*o, *l)),
            _ => None,
        })
    }

    fn gap_ending_at(&self, off: u64) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Gap(o, l) if o.saturating_add(*l) == off))
    }

    /// `[from, to)` as the pane's bytes, or `None` if some captured byte
    /// was not kept.
    fn range(&self, from: u64, to: u64) -> Option<Vec<Option<u8>>> {
        let mut v = Vec::with_capacity(usize::try_from(to.saturating_sub(from)).ok()?);
        for off in from..to {
            match self.at(off) {
                Slot::Byte(b) => v.push(Some(b)),
                Slot::Missing => v.push(None),
                Slot::Unknown => return None,
            }
        }
        Some(v)
    }
}

#[derive(Default)]
struct SessionBytes {
    spec: Option<&'static FramingSpec>,
    dirs: [DirBytes; 2],
}

/// The `--hex` record of every live session.
#[derive(Default)]
pub struct HexBytes {
    sessions: HashMap<u64, SessionBytes>,
}

/// The spec of a framing.
pub fn spec_of(f: Framing) -> &'static FramingSpec {
    f.spec()
}

fn num(facts: &Facts, name: &str) -> Option<u64> {
    facts.iter().find_map(|(n, f)| match f {
        Fact::Num(x) if *n == name => Some(*x),
        _ => None,
    })
}

impl HexBytes {
    /// A chunk of a session's direction, as the tracker delivered it.
    pub fn stream(&mut self, session: u64, dir: Dir, c: &Chunk<'_>) {
        self.sessions.entry(session).or_default().dirs[dir.index()].chunk(c);
    }

    /// The session's framing was decided (`v2`, `v3`, `text`).
    pub fn detected(&mut self, session: u64, framing: &str) {
        let s = self.sessions.entry(session).or_default();
        s.spec = match framing {
            "v2" => Some(&spec::V2),
            "v3" => Some(&spec::V3),
            _ => None,
        };
    }

    /// The session ended: its record is freed.
    pub fn end(&mut self, session: u64) {
        self.sessions.remove(&session);
    }

    /// Frame-relative offsets where segments begin inside the frame at
    /// stream offset `offset`, `len` bytes long; forgets starts before its
    /// end.
    pub fn segment_starts(
        &mut self,
        session: u64,
        dir: Dir,
        offset: u64,
        len: usize,
    ) -> Vec<usize> {
        let Some(s) = self.sessions.get_mut(&session) else {
            return Vec::new();
        };
        let d = &mut s.dirs[dir.index()];
        let end = offset.saturating_add(len as u64);
        let v = d
            .starts
            .iter()
            .filter(|&&o| o > offset && o < end)
            .map(|&o| usize::try_from(o - offset).unwrap_or(usize::MAX))
            .collect();
        while d.starts.front().is_some_and(|&o| o < end) {
            d.starts.pop_front();
        }
        v
    }

    /// The pane of a diagnostic about a frame's bytes (`frame.damaged`,
    /// `frame.partial`, `frame.truncated`), appended to `out`; nothing for
    /// other codes.
    pub fn diagnostic_pane(&mut self, out: &mut String, ev: &Event<'_>, width: usize) {
        let Event::Diagnostic {
            at: Some(at),
            dir: Some(dir),
            code,
            message,
            facts,
            ..
        } = ev
        else {
            return;
        };
        let (session, dir, code) = (at.session, *dir, *code);
        let damaged = code == spec::FRAME_DAMAGED.code;
        let partial = code == spec::FRAME_PARTIAL.code;
        let truncated = code == spec::FRAME_TRUNCATED.code;
        if !(damaged || partial || truncated) {
            return;
        }
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        let spec = s.spec;
        let d = &mut s.dirs[dir.index()];
        let Some(o) = num(facts, "offset") else {
            return;
        };
        let seen_end = d.end();
        let l = num(facts, "length").unwrap_or(seen_end.saturating_sub(o));
        let framed = spec.filter(|_| !partial && !message.contains("no frame boundary"));
        let (start, end) = match framed {
            None => (o, o.saturating_add(l)),
            Some(spec) if damaged && d.gap_ending_at(o) => {
                // The end of a frame a gap cut.
                let cut_end = o.saturating_add(l);
                match d.last_cut {
                    Some((s, e)) if e == cut_end => (s, e),
                    _ if !spec
                        .fields
                        .iter()
                        .any(|f| matches!(f.kind, FieldKind::SizedBy(_))) =>
                    {
                        (cut_end.saturating_sub(spec.fixed_len() as u64), cut_end)
                    }
                    _ => (o, cut_end),
                }
            }
            Some(spec) => {
                // A frame from `o`: as long as its header says, shown up
                // to the end of the gap after it (what follows is not in
                // yet).
                let head = d.range(o, o.saturating_add(l.min(64))).unwrap_or_default();
                let flen = hex::frame_len(spec, &head).unwrap_or(l);
                let frame_end = o.saturating_add(flen);
                let end = match d.gap_starting_at(o.saturating_add(l)) {
                    Some((g, gl)) => {
                        if damaged {
                            d.last_cut = Some((o, frame_end));
                        }
                        frame_end.min(g.saturating_add(gl))
                    }
                    None if truncated => frame_end,
                    None => frame_end.min(seen_end.max(o.saturating_add(l))),
                };
                (o, end.max(o.saturating_add(l)))
            }
        };
        if end.saturating_sub(start) > MAX_DAMAGED_PANE {
            let _ = writeln!(
                out,
                "      (no bytes pane: {} bytes, more than --hex keeps around a gap)",
                end.saturating_sub(start)
            );
            return;
        }
        let Some(bytes) = d.range(start, end) else {
            let _ = writeln!(out, "      (no bytes pane: these bytes are no longer kept)");
            return;
        };
        let _ = writeln!(out, "      stream offsets {start}..{end}:");
        match framed {
            Some(spec) => hex::frame_pane(out, spec, &bytes, &[], width),
            None => hex::plain_pane_gaps(out, &bytes, width),
        }
    }
}
