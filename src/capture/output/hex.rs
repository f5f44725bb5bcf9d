//! The bytes pane of `rc1 capture --hex`: a frame's bytes as a hex dump
//! with its fields marked, as Wireshark highlights the bytes of the field
//! clicked in its packet details.
//!
//! ```text
//!   0000  01 | 00 00 00 03 | 00 00 00 05 | 68 65 6c 6c 6f 2d 2d  ........hello--
//!         ver  order         size          message
//! ```
//!
//! Field boundaries come only from the field spec ([`crate::spec`]): a
//! field's offset and width, a [`FieldKind::SizedBy`] field's length read
//! from the frame's own integer field, and a [`FieldKind::FixedBytes`]
//! field split into its content (`min(size, width)` bytes) and `padding`.
//! A new framing added to the spec renders with no change here.
//!
//! * Bytes never captured are `..` (a run of at least two lines of them
//!   is one line: `.. ×40000`).
//! * A `▸` before a byte marks where a new TCP segment's bytes begin, and
//!   a line under the pane says `segment 2 begins at frame byte 14`.
//! * A pane has at most [`MAX_LINES`] lines of bytes; the rest is counted
//!   (`… 69991 more bytes`).

#![warn(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use std::fmt::Write as _;

use crate::spec::{FieldKind, FramingSpec};

/// Lines of bytes a pane shows at most; the rest is counted.
pub const MAX_LINES: usize = 8;

/// Segment-start lines under a pane at most; the rest is counted.
pub const MAX_SEGMENT_LINES: usize = 8;

/// Bytes per line at most (fewer when the width asks).
const PER_LINE: usize = 16;

/// The width the capture prints panes at.
pub const DEFAULT_WIDTH: usize = 80;

/// The bytes a pane shows: captured, or not.
trait ByteSource {
    fn len(&self) -> usize;
    fn get(&self, i: usize) -> Option<u8>;
}

/// Some bytes never captured (`None`).
struct Holey<'a>(&'a [Option<u8>]);

impl ByteSource for Holey<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn get(&self, i: usize) -> Option<u8> {
        self.0.get(i).copied().flatten()
    }
}

/// All bytes captured.
struct Whole<'a>(&'a [u8]);

impl ByteSource for Whole<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn get(&self, i: usize) -> Option<u8> {
        self.0.get(i).copied()
    }
}

/// Bytes marked by one field of a framing: `start..end` of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// The field's name (`padding` for a fixed field's bytes after its
    /// content).
    pub name: &'static str,
}

/// The integer value of field `name` read from the frame's bytes, if its
/// bytes were captured.
fn uint_field(spec: &FramingSpec, bytes: &dyn ByteSource, name: &str) -> Option<u64> {
    let f = spec.field(name)?;
    let (_, false, big_endian) = f.kind.int_shape()? else {
        return None;
    };
    let mut v = 0u64;
    let mut take = |i: usize| -> Option<()> {
        v = v.checked_mul(256)?.checked_add(u64::from(bytes.get(i)?))?;
        Some(())
    };
    if big_endian {
        f.range().try_for_each(&mut take)?;
    } else {
        f.range().rev().try_for_each(&mut take)?;
    }
    Some(v)
}

/// The fields of `spec` over a frame of `len` bytes, in wire order, clipped
/// to the bytes there are; bytes after the last field are `…`.
fn spans_of(spec: &FramingSpec, bytes: &dyn ByteSource) -> Vec<Span> {
    let len = bytes.len();
    let mut out: Vec<Span> = Vec::with_capacity(spec.fields.len().saturating_add(2));
    let mut push = |start: usize, end: usize, name: &'static str| {
        let (start, end) = (start.min(len), end.min(len));
        if end > start {
            out.push(Span { start, end, name });
        }
    };
    // Fields after the body (a trailer) count their offsets from its end.
    let mut base = 0usize;
    for f in spec.fields {
        let start = base.saturating_add(f.offset);
        let end = start.saturating_add(f.width);
        match f.kind {
            FieldKind::U8 | FieldKind::U32Be | FieldKind::Int { .. } | FieldKind::Bytes { .. } => {
                push(start, end, f.name)
            }
            FieldKind::FixedBytes { len_by, .. } => match uint_field(spec, bytes, len_by) {
                Some(n) => {
                    let cut = usize::try_from(n).unwrap_or(usize::MAX).min(f.width);
                    let mid = start.saturating_add(cut);
                    push(start, mid, f.name);
                    push(mid, end, "padding");
                }
                None => push(start, end, f.name),
            },
            FieldKind::SizedBy(by) => {
                let n = uint_field(spec, bytes, by)
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(usize::MAX);
                base = start.saturating_add(n);
                push(start, base, f.name);
            }
        }
    }
    let last = out.last().map_or(0, |s| s.end);
    if last < len {
        out.push(Span {
            start: last,
            end: len,
            name: "…",
        });
    }
    out
}

/// The field spans of a frame's bytes, from the spec: what the pane
/// marks. Bytes not captured count as unknown (a `size` field among them
/// leaves its message running to the end of `bytes`).
pub fn field_spans(spec: &FramingSpec, bytes: &[Option<u8>]) -> Vec<Span> {
    spans_of(spec, &Holey(bytes))
}

/// The length of the frame at the start of `bytes` as the spec says
/// (fixed part plus any sized field), if the fields it depends on were
/// captured; not checked against any maximum (the caller bounds it).
pub fn frame_len(spec: &FramingSpec, bytes: &[Option<u8>]) -> Option<u64> {
    let mut end = spec.fixed_len() as u64;
    if let Some(FieldKind::SizedBy(by)) = spec.body().map(|b| b.kind) {
        // Header, body, trailer.
        end = end.saturating_add(uint_field(spec, &Holey(bytes), by)?);
    }
    Some(end)
}

/// Writes the bytes pane of one frame: `bytes[i]` is None where the byte
/// was never captured; `segment_starts` are frame-relative offsets
/// (ascending, excluding 0) where a new TCP segment's bytes begin; `width`
/// the max line width in chars.
pub fn frame_pane(
    out: &mut String,
    spec: &crate::spec::FramingSpec,
    bytes: &[Option<u8>],
    segment_starts: &[usize],
    width: usize,
) {
    let src = Holey(bytes);
    let spans = spans_of(spec, &src);
    pane(out, &src, &spans, segment_starts, width);
}

/// [`frame_pane`] of a frame whose every byte was captured (no copy).
pub fn frame_pane_whole(
    out: &mut String,
    spec: &FramingSpec,
    bytes: &[u8],
    segment_starts: &[usize],
    width: usize,
) {
    let src = Whole(bytes);
    let spans = spans_of(spec, &src);
    pane(out, &src, &spans, segment_starts, width);
}

/// A plain hex + ASCII dump (text messages, datagrams).
pub fn plain_pane(out: &mut String, bytes: &[u8], width: usize) {
    pane(out, &Whole(bytes), &[], &[], width);
}

/// [`plain_pane`] of bytes some of which were never captured (`None`).
pub fn plain_pane_gaps(out: &mut String, bytes: &[Option<u8>], width: usize) {
    pane(out, &Holey(bytes), &[], &[], width);
}

/// Hex digits of the offset column: 4, or more for large frames.
fn offset_digits(len: usize) -> usize {
    let mut d: usize = 4;
    while d < 16 && (len >> d.saturating_mul(4)) > 0 {
        d = d.saturating_add(1);
    }
    d
}

/// Columns of a line of `n` bytes with `seps` field separators, offset
/// column and ASCII included.
fn line_cols(digits: usize, n: usize, seps: usize) -> usize {
    // "OOOO  " + "hh" * n + " " * (n-1) + 2 more per separator
    // + "  " + n ASCII chars.
    digits
        .saturating_add(2)
        .saturating_add(n.saturating_mul(3).saturating_sub(1))
        .saturating_add(seps.saturating_mul(2))
        .saturating_add(2)
        .saturating_add(n)
}

fn push_hex(out: &mut String, b: u8) {
    let digit = |d: u8| char::from_digit(u32::from(d), 16).unwrap_or('?');
    out.push(digit(b >> 4));
    out.push(digit(b & 15));
}

fn push_offset(out: &mut String, off: usize, digits: usize) {
    let _ = write!(out, "{off:0digits$x}");
}

/// `n` spaces.
fn spaces(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(' ');
    }
}

/// Chars in `s` (every char here is one column).
fn cols(s: &str) -> usize {
    s.chars().count()
}

/// Index of the span holding byte `i`.
fn span_at(spans: &[Span], i: usize) -> Option<usize> {
    spans.iter().position(|s| s.start <= i && i < s.end)
}

fn pane(
    out: &mut String,
    bytes: &dyn ByteSource,
    spans: &[Span],
    segment_starts: &[usize],
    width: usize,
) {
    let len = bytes.len();
    let digits = offset_digits(len);
    // Columns before a line's first byte: "OOOO  ".
    let base = digits.saturating_add(2);
    if len == 0 {
        spaces(out, base);
        out.push_str("(no bytes)\n");
        return;
    }
    // Bytes per line: as many as fit with every separator a line may hold.
    let seps = spans
        .len()
        .saturating_sub(1)
        .min(PER_LINE.saturating_sub(1));
    let mut n = PER_LINE;
    while n > 1 && line_cols(digits, n, seps.min(n.saturating_sub(1))) > width {
        n = n.saturating_sub(1);
    }
    let hex_cols = n
        .saturating_mul(3)
        .saturating_sub(1)
        .saturating_add(seps.min(n.saturating_sub(1)).saturating_mul(2));
    let mut i = 0usize;
    let mut lines = 0usize;
    let mut seg = segment_starts.iter().copied().peekable();
    let mut line = String::with_capacity(width.saturating_add(8));
    let mut names = String::with_capacity(width.saturating_add(8));
    while i < len {
        if lines >= MAX_LINES {
            spaces(out, base);
            let _ = writeln!(out, "… {} more bytes", len.saturating_sub(i));
            break;
        }
        // A long run of missing bytes from a line start: one line.
        let mut run = 0usize;
        while i.saturating_add(run) < len
            && bytes.get(i.saturating_add(run)).is_none()
            && run < n.saturating_mul(2)
        {
            run = run.saturating_add(1);
        }
        if run >= n.saturating_mul(2) {
            let mut end = i.saturating_add(run);
            while end < len && bytes.get(end).is_none() {
                end = end.saturating_add(1);
            }
            push_offset(out, i, digits);
            let _ = writeln!(out, "  .. ×{} (never captured)", end.saturating_sub(i));
            while seg.next_if(|&s| s < end).is_some() {}
            i = end;
            lines = lines.saturating_add(1);
            continue;
        }
        let end = i.saturating_add(n).min(len);
        line.clear();
        names.clear();
        push_offset(&mut line, i, digits);
        line.push(' ');
        let mut name_col = 0usize; // where the next name may start
        let mut prev_span = None;
        for j in i..end {
            let here = span_at(spans, j);
            if j > i && here != prev_span {
                line.push_str(" |");
            }
            // The char before the byte: a segment mark, or a space.
            let marked = seg.next_if(|&s| s <= j).is_some_and(|s| s == j && j > 0);
            while seg.next_if(|&s| s <= j).is_some() {}
            line.push(if marked { '▸' } else { ' ' });
            let col = cols(&line).saturating_sub(base);
            if let Some(k) = here
                && (j == i || here != prev_span)
                && let Some(s) = spans.get(k)
            {
                // The name under the field's first byte on this line, cut
                // to the columns before the next field begins.
                let next_start = spans
                    .get(k.saturating_add(1))
                    .map(|t| t.start)
                    .filter(|&t| t < end);
                let avail = match next_start {
                    Some(t) => {
                        // Columns from this byte to the next field's byte.
                        let bytes_between = t.saturating_sub(j);
                        bytes_between.saturating_mul(3).saturating_add(2)
                    }
                    None => usize::MAX,
                };
                let full = cols(s.name);
                let take = if full < avail {
                    full
                } else {
                    avail.saturating_sub(2).max(1)
                };
                while name_col < col {
                    names.push(' ');
                    name_col = name_col.saturating_add(1);
                }
                if name_col == col {
                    names.extend(s.name.chars().take(take));
                    name_col = name_col.saturating_add(take.min(full));
                }
            }
            prev_span = here;
            match bytes.get(j) {
                Some(b) => push_hex(&mut line, b),
                None => line.push_str(".."),
            }
        }
        // The ASCII column, aligned across lines.
        let used = cols(&line).saturating_sub(base);
        for _ in used..hex_cols {
            line.push(' ');
        }
        line.push_str("  ");
        for j in i..end {
            line.push(match bytes.get(j) {
                Some(b) if b.is_ascii_graphic() || b == b' ' => char::from(b),
                Some(_) => '.',
                None => ' ',
            });
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if !spans.is_empty() {
            spaces(out, base);
            out.push_str(names.trim_end());
            out.push('\n');
        }
        i = end;
        lines = lines.saturating_add(1);
    }
    let mut k = 0usize;
    let total = segment_starts.iter().filter(|&&s| s > 0 && s < len).count();
    for (idx, s) in segment_starts
        .iter()
        .copied()
        .filter(|&s| s > 0 && s < len)
        .enumerate()
    {
        spaces(out, base);
        if k >= MAX_SEGMENT_LINES {
            let _ = writeln!(out, "… {} more segments", total.saturating_sub(k));
            break;
        }
        let n = idx.saturating_add(2);
        let long = format!("segment {n} begins at frame byte {s}");
        // A narrow pane gets the short form: every line fits its width.
        if base.saturating_add(long.len()) <= width {
            out.push_str(&long);
        } else {
            let _ = write!(out, "seg {n} at byte {s}");
        }
        out.push('\n');
        k = k.saturating_add(1);
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
    use crate::codec::{Frame, Framing};
    use crate::spec::{V2, V3};

    fn encode(framing: Framing, order: u32, msg: &[u8]) -> Vec<u8> {
        let f = match framing {
            Framing::V2 => Frame::v2(1, order, msg),
            Framing::V3 => Frame::v3(1, order, msg),
            Framing::Custom(_) => panic!("a test of v2 and v3 only"),
        };
        let mut out = Vec::new();
        f.unwrap().encode(framing, &mut out);
        out
    }

    fn all(b: &[u8]) -> Vec<Option<u8>> {
        b.iter().map(|&x| Some(x)).collect()
    }

    fn render(spec: &FramingSpec, b: &[Option<u8>], segs: &[usize], width: usize) -> String {
        let mut s = String::new();
        frame_pane(&mut s, spec, b, segs, width);
        s
    }

    /// (byte line, names line) pairs of a pane.
    fn pairs(pane: &str) -> Vec<(String, String)> {
        let all: Vec<&str> = pane.lines().collect();
        let mut out = Vec::new();
        let mut k = 0;
        while k + 1 < all.len() {
            let l = all[k];
            if l.trim_start().starts_with(|c: char| c.is_ascii_hexdigit()) && l.len() > 8 {
                out.push((l.to_string(), all[k + 1].to_string()));
                k += 2;
            } else {
                k += 1;
            }
        }
        out
    }

    /// The name written under column `col` of the names line, if one
    /// starts there.
    fn name_at(names: &str, col: usize) -> String {
        let chars: Vec<char> = names.chars().collect();
        if col >= chars.len() || chars[col] == ' ' || (col > 0 && chars[col - 1] != ' ') {
            return String::new();
        }
        chars[col..].iter().take_while(|c| **c != ' ').collect()
    }

    /// The column of the hex of byte `k` (0-based within the line) in a
    /// byte line: the k-th two-char hex or `..` token after the offset.
    fn byte_cols(line: &str) -> Vec<usize> {
        let chars: Vec<char> = line.chars().collect();
        let mut cols = Vec::new();
        let mut c = 2;
        while c < chars.len() && chars[c] != ' ' {
            c += 1; // the offset
        }
        while c + 1 < chars.len() {
            let pair = (chars[c], chars[c + 1]);
            let tok =
                pair.0.is_ascii_hexdigit() && pair.1.is_ascii_hexdigit() || pair == ('.', '.');
            let before_ok = matches!(chars[c - 1], ' ' | '▸');
            if tok && before_ok {
                cols.push(c);
                c += 2;
                // Two spaces end the hex part (the ASCII column follows).
                if c + 1 < chars.len() && chars[c] == ' ' && chars[c + 1] == ' ' {
                    break;
                }
            } else {
                c += 1;
            }
        }
        cols
    }

    #[test]
    fn v2_hello_names_sit_under_their_fields_first_bytes() {
        let b = encode(Framing::V2, 3, b"hello");
        let p = render(&V2, &all(&b), &[], 80);
        let pr = pairs(&p);
        assert_eq!(pr.len(), 2, "{p}");
        let (l0, n0) = &pr[0];
        assert!(
            l0.contains("01 | 00 00 00 03 | 00 00 00 05 | 68 65 6c 6c 6f | 2d 2d"),
            "{p}"
        );
        let c = byte_cols(l0);
        assert_eq!(c.len(), 16, "{p}");
        assert_eq!(name_at(n0, c[0]), "ver");
        assert_eq!(name_at(n0, c[1]), "order");
        assert_eq!(name_at(n0, c[5]), "size");
        assert_eq!(name_at(n0, c[9]), "message");
        assert_eq!(name_at(n0, c[14]), "padding", "{p}");
        for k in [2, 3, 4, 6, 10, 13, 15] {
            assert_eq!(name_at(n0, c[k]), "", "byte {k}: {p}");
        }
        // The second line continues the padding.
        let (l1, n1) = &pr[1];
        assert!(l1.trim_start().starts_with("0010 "), "{p}");
        assert_eq!(name_at(n1, byte_cols(l1)[0]), "padding", "{p}");
        assert_eq!(byte_cols(l1).len(), 13);
        assert!(l0.ends_with("........hello--"), "{p}");
    }

    #[test]
    fn v2_message_cut_at_20_has_no_padding() {
        let msg = b"twenty-five characters!!!";
        let b = encode(Framing::V2, 1, msg);
        let spans = field_spans(&V2, &all(&b));
        assert_eq!(
            spans.iter().map(|s| s.name).collect::<Vec<_>>(),
            ["version", "order", "size", "message"]
        );
        assert_eq!((spans[3].start, spans[3].end), (9, 29));
        let p = render(&V2, &all(&b), &[], 80);
        assert!(!p.contains("padding"), "{p}");
    }

    #[test]
    fn v3_size_0_is_the_header_alone() {
        let b = encode(Framing::V3, 7, b"");
        assert_eq!(b.len(), 9);
        let spans = field_spans(&V3, &all(&b));
        assert_eq!(
            spans.iter().map(|s| s.name).collect::<Vec<_>>(),
            ["version", "order", "size"]
        );
        let p = render(&V3, &all(&b), &[], 80);
        assert!(!p.contains("message"), "{p}");
        assert_eq!(pairs(&p).len(), 1);
    }

    #[test]
    fn a_large_v3_frame_is_cut_with_the_right_count() {
        let msg = vec![b'x'; 70_000];
        let b = encode(Framing::V3, 1, &msg);
        let mut p = String::new();
        frame_pane_whole(&mut p, &V3, &b, &[], 80);
        let shown: usize = pairs(&p).iter().map(|(l, _)| byte_cols(l).len()).sum();
        assert_eq!(shown, MAX_LINES * 16);
        let want = format!("… {} more bytes", b.len() - shown);
        assert!(p.contains(&want), "{p}");
        assert_eq!(p.lines().count(), MAX_LINES * 2 + 1, "{p}");
        // Offsets of a frame over 64 KiB take five digits.
        assert!(p.lines().next().unwrap().starts_with("00000  "), "{p}");
    }

    #[test]
    fn missing_bytes_are_dots_and_long_runs_one_line() {
        let b = encode(Framing::V2, 2, b"hello");
        let mut m = all(&b);
        for x in &mut m[12..20] {
            *x = None;
        }
        let p = render(&V2, &m, &[], 80);
        let (l0, _) = &pairs(&p)[0];
        assert!(l0.contains("68 65 6c .. .."), "{p}");
        // The ASCII column leaves them blank.
        assert!(l0.ends_with("hel"), "{p}");
        // A 40,000-byte hole is one line, and the bytes after it show.
        let mut big: Vec<Option<u8>> = all(&encode(Framing::V3, 1, &vec![b'y'; 40_100]));
        for x in &mut big[20..40_020] {
            *x = None;
        }
        let p = render(&V3, &big, &[], 80);
        // (The line holding its first bytes shows them; the rest is one line.)
        assert!(p.contains("\n0010  79 79 79 79 .. .. .."), "{p}");
        assert!(p.contains("\n0020  .. ×39988 (never captured)\n"), "{p}");
        assert!(
            p.contains("\n9c54 "),
            "the line after the hole starts at 40020: {p}"
        );
        assert!(p.lines().count() < 20, "{p}");
    }

    #[test]
    fn segment_marks_sit_before_the_right_byte() {
        let b = encode(Framing::V2, 1, b"split in three");
        let p = render(&V2, &all(&b), &[7, 16, 20], 80);
        let lines: Vec<&str> = p.lines().collect();
        // Byte 7 (the second byte of size), byte 16 (line start), byte 20.
        let c = byte_cols(lines[0]);
        let chars: Vec<char> = lines[0].chars().collect();
        assert_eq!(chars[c[7] - 1], '▸', "{p}");
        assert_eq!(chars.iter().filter(|&&x| x == '▸').count(), 1, "{p}");
        let l1: Vec<char> = lines[2].chars().collect();
        let c1 = byte_cols(lines[2]);
        assert_eq!(l1[c1[0] - 1], '▸', "{p}");
        assert_eq!(l1[c1[4] - 1], '▸', "{p}");
        assert_eq!(l1.iter().filter(|&&x| x == '▸').count(), 2, "{p}");
        assert!(p.contains("  segment 2 begins at frame byte 7\n"), "{p}");
        assert!(p.contains("  segment 3 begins at frame byte 16\n"), "{p}");
        assert!(p.contains("  segment 4 begins at frame byte 20\n"), "{p}");
    }

    #[test]
    fn every_line_fits_the_width() {
        let v2 = encode(Framing::V2, 1, b"hello");
        let v3 = encode(Framing::V3, 1, &[0xAB; 300]);
        for width in [40, 50, 60, 72, 80, 120] {
            for (spec, b) in [(&V2, &v2), (&V3, &v3)] {
                let segs: Vec<usize> = (1..b.len()).step_by(3).collect();
                let p = render(spec, &all(b), &segs, width);
                let mut q = String::new();
                plain_pane(&mut q, b, width);
                for l in p.lines().chain(q.lines()) {
                    assert!(cols(l) <= width, "{width}: {l:?}");
                }
            }
        }
    }

    #[test]
    fn plain_dump_is_hex_and_ascii_bounded() {
        let mut p = String::new();
        plain_pane(&mut p, b"hello world\n", 80);
        assert_eq!(
            p,
            "0000  68 65 6c 6c 6f 20 77 6f 72 6c 64 0a              hello world.\n"
        );
        let mut p = String::new();
        plain_pane(&mut p, &[0u8; 1000], 80);
        assert!(
            p.ends_with(&format!("      … {} more bytes\n", 1000 - MAX_LINES * 16)),
            "{p}"
        );
    }

    #[test]
    fn frame_len_follows_the_spec() {
        let b = encode(Framing::V3, 1, b"abc");
        assert_eq!(frame_len(&V3, &all(&b)), Some(12));
        assert_eq!(frame_len(&V3, &all(&b[..6])), None);
        assert_eq!(frame_len(&V2, &[]), Some(29));
    }
}
