//! TCP reassembly of one direction of one connection (RFC 9293 sequence
//! space), with bounded memory and explicit gaps.
//!
//! # Model
//!
//! Sequence numbers are 32-bit and wrap. Each direction's numbers are
//! *unwrapped* into a `u64` byte offset from the first payload byte (the
//! byte after the SYN, or the first byte seen when the SYN was not
//! captured); after that, arithmetic is plain. A segment's offset is the
//! unwrapped value closest to the next expected byte, so a stream can cross
//! 2^32 any number of times.
//!
//! # Delivery
//!
//! [`Chunk`]s come out in stream order: `Data` for bytes, `Gap` for bytes
//! that never arrived. A gap is never zero-filled (tcpflow and scapy fill
//! holes with zeros, and users then decode garbage): the consumer is told
//! its exact offset and length and must resynchronise after it.
//!
//! # Policy on overlaps
//!
//! *First data wins*, as in Wireshark: bytes already delivered or already
//! buffered are kept, later copies of the same offsets are dropped. A copy
//! whose bytes are identical is a retransmission (counted); a copy whose
//! bytes differ is an overlap conflict (counted separately and reported with
//! `tcp.overlap_conflict`), since the two ends may have seen different data.
//! Delivered bytes are compared against the last [`HISTORY`] bytes kept.
//!
//! # Bounds
//!
//! Out-of-order bytes are held only up to `max_buffered` per direction
//! (each segment also costs [`SEGMENT_OVERHEAD`] bytes against it).
//! Over that, the oldest hole is declared a gap and the data after it is
//! delivered: memory depends on the cap and the number of live
//! connections, never on the length of the capture. At end of input, FIN
//! or RST, [`Reassembler::flush`] declares every remaining hole a gap, and a
//! tail the peer acknowledged (or a FIN covered) but the capture never saw
//! becomes a final gap too.

#![warn(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use std::collections::{BTreeMap, VecDeque};

/// How many delivered bytes are kept to check retransmissions against.
pub const HISTORY: usize = 64 * 1024;

/// Default cap on out-of-order bytes held per direction.
pub const DEFAULT_MAX_BUFFERED: usize = 4 << 20;

/// A piece of the reassembled stream, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// Bytes starting at stream offset `offset`.
    Data {
        /// Stream offset of the first byte.
        offset: u64,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// `len` bytes at `offset` that were never captured.
    Gap {
        /// Stream offset of the first missing byte.
        offset: u64,
        /// How many bytes are missing.
        len: u64,
    },
}

/// Counters in the spirit of Zeek's conn.log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Segments carrying payload.
    pub segments: u64,
    /// Payload bytes delivered.
    pub delivered_bytes: u64,
    /// Segments wholly or partly duplicating earlier bytes.
    pub retransmitted_segments: u64,
    /// Duplicate bytes dropped (equal to what was kept).
    pub retransmitted_bytes: u64,
    /// Segments that overlapped earlier data with *different* bytes.
    pub overlap_conflicts: u64,
    /// Bytes that differed in those overlaps.
    pub conflicting_bytes: u64,
    /// Segments that arrived ahead of a hole and were buffered.
    pub out_of_order_segments: u64,
    /// Gaps declared.
    pub gaps: u64,
    /// Bytes inside gaps (Zeek's `missed_bytes`).
    pub missed_bytes: u64,
    /// Payload bytes that lay before the start of the stream as first seen
    /// (a connection picked up without its SYN, then an older segment).
    pub before_start_bytes: u64,
    /// Segments starting implausibly far ahead ([`WINDOW_LIMIT`]): ignored.
    pub out_of_window_segments: u64,
    /// ACKs for far more than was ever sent ([`ACK_SLACK`]): ignored.
    pub implausible_acks: u64,
}

/// A segment starting this far past the next expected byte is not believed
/// (TCP's largest window is 1 GiB; the lab's are far smaller): 256 MiB.
pub const WINDOW_LIMIT: u64 = 256 << 20;

/// An ACK this far past the last byte seen is not believed: 16 MiB (more
/// than a capture plausibly loses in one stretch).
pub const ACK_SLACK: u64 = 16 << 20;

/// One direction's reassembler.
#[derive(Debug)]
pub struct Reassembler {
    /// Sequence number of stream offset 0, once known.
    origin: Option<u32>,
    /// Next offset to deliver.
    next: u64,
    /// Out-of-order bytes, non-overlapping, keyed by offset, each with the
    /// tag (capture time) of the segment that brought it.
    pending: BTreeMap<u64, (Vec<u8>, u64)>,
    pending_bytes: usize,
    max_buffered: usize,
    /// The last delivered bytes, ending at `next`.
    history: VecDeque<u8>,
    /// Offset just past a FIN, if one was seen.
    fin_at: Option<u64>,
    /// Highest offset the other side acknowledged.
    acked: Option<u64>,
    /// End of the highest segment seen.
    seen_end: u64,
    stats: ReassemblyStats,
    /// Stream offsets `[from, to)` of the differing bytes of the last
    /// overlap conflict.
    last_conflict: Option<(u64, u64)>,
}

impl Reassembler {
    /// A reassembler holding at most `max_buffered` out-of-order bytes.
    pub fn new(max_buffered: usize) -> Reassembler {
        Reassembler {
            origin: None,
            next: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            max_buffered,
            history: VecDeque::new(),
            fin_at: None,
            acked: None,
            seen_end: 0,
            stats: ReassemblyStats::default(),
            last_conflict: None,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> ReassemblyStats {
        self.stats
    }

    /// Stream offsets `[from, to)` spanning the differing bytes of the last
    /// overlap conflict.
    pub fn last_conflict(&self) -> Option<(u64, u64)> {
        self.last_conflict
    }

    /// Next stream offset to be delivered.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// Out-of-order bytes held now, plus [`SEGMENT_OVERHEAD`] per segment.
    pub fn buffered(&self) -> usize {
        self.pending_bytes
    }

    /// Whether a FIN was seen and every byte before it delivered.
    pub fn is_finished(&self) -> bool {
        self.fin_at.is_some_and(|f| self.next >= f)
    }

    /// The sequence number of offset 0, once known.
    pub fn origin(&self) -> Option<u32> {
        self.origin
    }

    /// Unwraps `seq` to the offset closest to the next expected byte.
    fn offset_of(&self, origin: u32, seq: u32) -> i128 {
        let rel = seq.wrapping_sub(origin);
        // The 32-bit image of `next`, and the signed distance from it.
        #[expect(
            clippy::cast_possible_truncation,
            reason = "taking the low 32 bits is the point"
        )]
        let next32 = self.next as u32;
        let delta = i128::from(rel.wrapping_sub(next32) as i32);
        i128::from(self.next).saturating_add(delta)
    }

    /// A SYN (or SYN-ACK) with sequence number `seq`: payload starts at
    /// `seq + 1`. Ignored once the origin is known.
    pub fn syn(&mut self, seq: u32) {
        if self.origin.is_none() {
            self.origin = Some(seq.wrapping_add(1));
        }
    }

    /// The other side acknowledged up to sequence number `ack` (exclusive).
    ///
    /// A hole *before buffered data* that the receiver has acknowledged will
    /// never be retransmitted: the receiver got those bytes and the capture
    /// did not. It becomes a gap at once (so later requests are not held
    /// back behind it), and the data after it is delivered to `out`.
    pub fn ack(&mut self, ack: u32, out: &mut dyn FnMut(Chunk<'_>)) {
        self.ack_at(ack, 0, &mut |c, _| out(c));
    }

    /// [`Reassembler::ack`], with `tag` (e.g. the capture time) given to
    /// each chunk it releases: the tag of the segment that brought the
    /// bytes, or `tag` for a gap.
    pub fn ack_at(&mut self, ack: u32, tag: u64, out: &mut dyn FnMut(Chunk<'_>, u64)) {
        let Some(origin) = self.origin else { return };
        let off = self.offset_of(origin, ack);
        let Ok(off) = u64::try_from(off) else { return };
        // A FIN consumes one sequence number: an ACK of it is not data.
        let off = match self.fin_at {
            Some(f) => off.min(f),
            None => off,
        };
        if off > self.seen_end.max(self.next).saturating_add(ACK_SLACK) {
            self.stats.implausible_acks = self.stats.implausible_acks.saturating_add(1);
            return;
        }
        let acked = self.acked.map_or(off, |a| a.max(off));
        self.acked = Some(acked);
        while let Some((&first, _)) = self.pending.iter().next() {
            if first > acked || first <= self.next {
                break;
            }
            self.skip_hole(tag, out);
        }
    }

    /// A segment: `seq`, optional FIN, payload. Delivers what became
    /// contiguous, and gaps forced by the buffer cap, to `out`.
    pub fn segment(&mut self, seq: u32, fin: bool, payload: &[u8], out: &mut dyn FnMut(Chunk<'_>)) {
        self.segment_at(seq, fin, payload, 0, &mut |c, _| out(c));
    }

    /// [`Reassembler::segment`] with a `tag` (e.g. the capture time) kept
    /// with the bytes and handed out with them when they are delivered.
    pub fn segment_at(
        &mut self,
        seq: u32,
        fin: bool,
        payload: &[u8],
        tag: u64,
        out: &mut dyn FnMut(Chunk<'_>, u64),
    ) {
        let origin = *self.origin.get_or_insert(seq);
        let start = self.offset_of(origin, seq);
        let len = payload.len();
        if fin {
            let end = start.saturating_add(len as i128);
            if let Ok(end) = u64::try_from(end) {
                self.fin_at = Some(self.fin_at.map_or(end, |f| f.min(end)));
            }
        }
        if len == 0 {
            return;
        }
        self.stats.segments = self.stats.segments.saturating_add(1);
        // Drop what lies before offset 0 (counted, never silently).
        let (start, payload) = if start < 0 {
            let skip = usize::try_from(start.unsigned_abs())
                .unwrap_or(usize::MAX)
                .min(len);
            self.stats.before_start_bytes =
                self.stats.before_start_bytes.saturating_add(skip as u64);
            (0u64, payload.get(skip..).unwrap_or_default())
        } else {
            (u64::try_from(start).unwrap_or(u64::MAX), payload)
        };
        if payload.is_empty() {
            return;
        }
        if start > self.next.saturating_add(WINDOW_LIMIT) {
            self.stats.out_of_window_segments = self.stats.out_of_window_segments.saturating_add(1);
            return;
        }
        self.seen_end = self
            .seen_end
            .max(start.saturating_add(payload.len() as u64));
        let mut dup = 0u64;
        let mut conflict = 0u64;
        let mut range: Option<(u64, u64)> = None;
        // 1. The part before `next` duplicates delivered bytes.
        let (start, payload) = if start < self.next {
            let old = usize::try_from(self.next.saturating_sub(start))
                .unwrap_or(usize::MAX)
                .min(payload.len());
            let (before, after) = payload.split_at(old);
            let diff = self.compare_history(start, before, &mut range);
            dup = dup.saturating_add(before.len() as u64);
            conflict = conflict.saturating_add(diff);
            (self.next, after)
        } else {
            (start, payload)
        };
        // 2. Against buffered data: first data wins; keep only the new parts.
        // (Nothing buffered, the common case: the whole rest is new.)
        let mut fresh: Vec<(u64, &[u8])> = Vec::new();
        let mut all_new = None;
        if self.pending.is_empty() {
            all_new = Some((start, payload));
        } else {
            let mut cur = start;
            let end = start.saturating_add(payload.len() as u64);
            let overlapping: Vec<(u64, u64)> = self
                .pending
                .range(..end)
                .rev()
                .take_while(|(k, (v, _))| k.saturating_add(v.len() as u64) > start)
                .map(|(k, (v, _))| (*k, k.saturating_add(v.len() as u64)))
                .collect();
            for (k, kend) in overlapping.into_iter().rev() {
                if k > cur {
                    fresh.push((cur, slice(payload, start, cur, k)));
                }
                let lo = k.max(cur);
                let hi = kend.min(end);
                if hi > lo {
                    let mine = slice(payload, start, lo, hi);
                    let theirs = self
                        .pending
                        .get(&k)
                        .map(|(v, _)| slice(v, k, lo, hi))
                        .unwrap_or_default();
                    dup = dup.saturating_add(mine.len() as u64);
                    conflict = conflict.saturating_add(count_diff(mine, theirs, lo, &mut range));
                }
                cur = cur.max(kend);
            }
            if cur < end {
                fresh.push((cur, slice(payload, start, cur, end)));
            }
        }
        if dup > 0 {
            self.stats.retransmitted_segments = self.stats.retransmitted_segments.saturating_add(1);
            self.stats.retransmitted_bytes = self
                .stats
                .retransmitted_bytes
                .saturating_add(dup.saturating_sub(conflict));
        }
        if conflict > 0 {
            self.last_conflict = range;
            self.stats.overlap_conflicts = self.stats.overlap_conflicts.saturating_add(1);
            self.stats.conflicting_bytes = self.stats.conflicting_bytes.saturating_add(conflict);
        }
        let mut ahead = false;
        for (off, bytes) in all_new.into_iter().chain(fresh) {
            if bytes.is_empty() {
                continue;
            }
            if off == self.next {
                self.deliver(off, bytes, tag, out);
            } else {
                ahead = true;
                self.pending_bytes = self.pending_bytes.saturating_add(held_cost(bytes.len()));
                self.pending.insert(off, (bytes.to_vec(), tag));
            }
        }
        if ahead {
            self.stats.out_of_order_segments = self.stats.out_of_order_segments.saturating_add(1);
        }
        self.drain(out);
        while self.pending_bytes > self.max_buffered {
            self.skip_hole(tag, out);
        }
    }

    /// End of input, RST or expiry: every hole becomes a gap, all buffered
    /// data is delivered, and an acknowledged or FIN-covered tail that was
    /// never captured is a last gap.
    pub fn flush(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        self.flush_at(0, &mut |c, _| out(c));
    }

    /// [`Reassembler::flush`]; gaps get `tag`, data the tag it came with.
    pub fn flush_at(&mut self, tag: u64, out: &mut dyn FnMut(Chunk<'_>, u64)) {
        while !self.pending.is_empty() {
            self.skip_hole(tag, out);
        }
        let tail = self.fin_at.into_iter().chain(self.acked).max();
        if let Some(end) = tail
            && end > self.next
        {
            self.gap(end.saturating_sub(self.next), tag, out);
        }
    }

    /// Declares the hole before the first buffered segment a gap, then
    /// delivers what follows it.
    fn skip_hole(&mut self, tag: u64, out: &mut dyn FnMut(Chunk<'_>, u64)) {
        let Some((&first, _)) = self.pending.iter().next() else {
            return;
        };
        if first > self.next {
            self.gap(first.saturating_sub(self.next), tag, out);
        }
        self.drain(out);
    }

    fn gap(&mut self, len: u64, tag: u64, out: &mut dyn FnMut(Chunk<'_>, u64)) {
        out(
            Chunk::Gap {
                offset: self.next,
                len,
            },
            tag,
        );
        self.stats.gaps = self.stats.gaps.saturating_add(1);
        self.stats.missed_bytes = self.stats.missed_bytes.saturating_add(len);
        self.next = self.next.saturating_add(len);
        self.history.clear();
    }

    /// Delivers buffered segments that start at `next`.
    fn drain(&mut self, out: &mut dyn FnMut(Chunk<'_>, u64)) {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.next {
                break;
            }
            let (bytes, tag) = entry.remove();
            self.pending_bytes = self.pending_bytes.saturating_sub(held_cost(bytes.len()));
            let off = self.next;
            self.deliver(off, &bytes, tag, out);
        }
    }

    fn deliver(
        &mut self,
        offset: u64,
        bytes: &[u8],
        tag: u64,
        out: &mut dyn FnMut(Chunk<'_>, u64),
    ) {
        out(Chunk::Data { offset, bytes }, tag);
        self.next = self.next.saturating_add(bytes.len() as u64);
        self.stats.delivered_bytes = self
            .stats
            .delivered_bytes
            .saturating_add(bytes.len() as u64);
        let keep = bytes.len().min(HISTORY);
        let tail = bytes
            .get(bytes.len().saturating_sub(keep)..)
            .unwrap_or_default();
        self.history.extend(tail);
        let excess = self.history.len().saturating_sub(HISTORY);
        if excess > 0 {
            self.history.drain(..excess);
        }
    }

    /// Number of bytes of `old` (at stream offset `start`, all before
    /// `next`) that differ from the delivered history; bytes older than the
    /// history cannot be checked and count as equal.
    fn compare_history(&self, start: u64, old: &[u8], range: &mut Option<(u64, u64)>) -> u64 {
        let hist_start = self.next.saturating_sub(self.history.len() as u64);
        let mut diff = 0u64;
        for (i, b) in old.iter().enumerate() {
            let off = start.saturating_add(i as u64);
            if off < hist_start {
                continue;
            }
            let idx = usize::try_from(off.saturating_sub(hist_start)).unwrap_or(usize::MAX);
            if self.history.get(idx).is_some_and(|h| h != b) {
                diff = diff.saturating_add(1);
                widen(range, off);
            }
        }
        diff
    }
}

/// What a buffered segment costs against the cap: its bytes plus the
/// bookkeeping of one map entry, so a flood of 1-byte segments is bounded
/// too.
fn held_cost(len: usize) -> usize {
    len.saturating_add(SEGMENT_OVERHEAD)
}

/// Bytes charged per buffered segment besides its payload.
pub const SEGMENT_OVERHEAD: usize = 64;

/// `bytes` covers offsets from `base`; returns the part covering `lo..hi`.
fn slice(bytes: &[u8], base: u64, lo: u64, hi: u64) -> &[u8] {
    let a = usize::try_from(lo.saturating_sub(base)).unwrap_or(usize::MAX);
    let b = usize::try_from(hi.saturating_sub(base)).unwrap_or(usize::MAX);
    bytes.get(a..b.min(bytes.len())).unwrap_or_default()
}

/// Bytes that differ between `a` and `b` (both at stream offset `base`),
/// widening `range` to cover them.
fn count_diff(a: &[u8], b: &[u8], base: u64, range: &mut Option<(u64, u64)>) -> u64 {
    let mut n = 0u64;
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            n = n.saturating_add(1);
            widen(range, base.saturating_add(i as u64));
        }
    }
    n
}

/// `range` grown to cover offset `off`.
fn widen(range: &mut Option<(u64, u64)>, off: u64) {
    let end = off.saturating_add(1);
    *range = Some(match *range {
        Some((a, b)) => (a.min(off), b.max(end)),
        None => (off, end),
    });
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

    /// What came out, flattened: data as bytes, gaps as `(offset, len)`.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct Got {
        bytes: Vec<u8>,
        gaps: Vec<(u64, u64)>,
        /// Offsets were contiguous across data and gaps.
        next: u64,
    }

    impl Got {
        fn take(&mut self, c: Chunk<'_>) {
            match c {
                Chunk::Data { offset, bytes } => {
                    assert_eq!(offset, self.next, "data out of order");
                    self.bytes.extend_from_slice(bytes);
                    self.next += bytes.len() as u64;
                }
                Chunk::Gap { offset, len } => {
                    assert_eq!(offset, self.next, "gap out of order");
                    assert!(len > 0);
                    self.gaps.push((offset, len));
                    self.next += len;
                }
            }
        }
    }

    fn feed(r: &mut Reassembler, got: &mut Got, seq: u32, data: &[u8]) {
        r.segment(seq, false, data, &mut |c| got.take(c));
    }

    #[test]
    fn in_order_after_syn() {
        let (mut r, mut g) = (Reassembler::new(1 << 20), Got::default());
        r.syn(1000);
        feed(&mut r, &mut g, 1001, b"hello ");
        feed(&mut r, &mut g, 1007, b"world");
        assert_eq!(g.bytes, b"hello world");
        assert_eq!(r.stats().delivered_bytes, 11);
    }

    #[test]
    fn out_of_order_is_buffered_then_delivered() {
        let (mut r, mut g) = (Reassembler::new(1 << 20), Got::default());
        r.syn(0);
        feed(&mut r, &mut g, 7, b"world");
        assert!(g.bytes.is_empty());
        assert_eq!(r.buffered(), 5 + SEGMENT_OVERHEAD);
        feed(&mut r, &mut g, 1, b"hello ");
        assert_eq!(g.bytes, b"hello world");
        assert_eq!(r.buffered(), 0);
        assert_eq!(r.stats().out_of_order_segments, 1);
    }

    #[test]
    fn retransmissions_are_dropped_and_counted() {
        let (mut r, mut g) = (Reassembler::new(1 << 20), Got::default());
        r.syn(0);
        feed(&mut r, &mut g, 1, b"abcdef");
        feed(&mut r, &mut g, 1, b"abcdef");
        feed(&mut r, &mut g, 4, b"defgh"); // partial overlap, same bytes
        assert_eq!(g.bytes, b"abcdefgh");
        let s = r.stats();
        assert_eq!((s.retransmitted_segments, s.retransmitted_bytes), (2, 9));
        assert_eq!(s.overlap_conflicts, 0);
    }

    #[test]
    fn conflicting_overlap_keeps_the_first_data_and_is_flagged() {
        let (mut r, mut g) = (Reassembler::new(1 << 20), Got::default());
        r.syn(0);
        feed(&mut r, &mut g, 1, b"abcdef");
        feed(&mut r, &mut g, 4, b"XYZgh"); // d,e,f differ; g,h new
        // Against buffered data, too.
        feed(&mut r, &mut g, 20, b"0123");
        feed(&mut r, &mut g, 18, b"..0X23");
        assert_eq!(&g.bytes[..8], b"abcdefgh");
        let s = r.stats();
        assert_eq!(s.overlap_conflicts, 2);
        assert_eq!(s.conflicting_bytes, 4);
        let mut rest = Got {
            next: g.next,
            ..Got::default()
        };
        r.flush(&mut |c| rest.take(c));
        assert_eq!(rest.gaps, vec![(8, 9)]);
        assert_eq!(rest.bytes, b"..0123");
    }

    #[test]
    fn sequence_numbers_wrap_around_2_pow_32() {
        let (mut r, mut g) = (Reassembler::new(1 << 20), Got::default());
        r.syn(u32::MAX - 3);
        let mut seq = u32::MAX - 2;
        let mut want = Vec::new();
        for i in 0..10u8 {
            let chunk = [i; 3];
            feed(&mut r, &mut g, seq, &chunk);
            want.extend_from_slice(&chunk);
            seq = seq.wrapping_add(3);
        }
        assert_eq!(g.bytes, want);
        assert!(g.gaps.is_empty());
        // Out of order across the wrap as well.
        feed(&mut r, &mut g, seq.wrapping_add(3), b"bbb");
        feed(&mut r, &mut g, seq, b"aaa");
        assert!(g.bytes.ends_with(b"aaabbb"));
    }

    #[test]
    fn a_permanent_gap_is_reported_exactly_at_flush() {
        let (mut r, mut g) = (Reassembler::new(1 << 20), Got::default());
        r.syn(0);
        feed(&mut r, &mut g, 1, b"aaaa");
        feed(&mut r, &mut g, 11, b"cccc"); // bytes 4..10 never come
        r.flush(&mut |c| g.take(c));
        assert_eq!(g.bytes, b"aaaacccc");
        assert_eq!(g.gaps, vec![(4, 6)]);
        assert_eq!(r.stats().missed_bytes, 6);
    }

    #[test]
    fn the_buffer_cap_forces_a_gap_early() {
        let (mut r, mut g) = (Reassembler::new(10 + SEGMENT_OVERHEAD), Got::default());
        r.syn(0);
        feed(&mut r, &mut g, 1, b"ab");
        feed(&mut r, &mut g, 6, b"0123456789"); // 10 bytes + one segment: at the cap
        assert_eq!(g.gaps, vec![]);
        feed(&mut r, &mut g, 16, b"X"); // a second segment: over the cap, the hole 2..5 is given up
        assert_eq!(g.gaps, vec![(2, 3)]);
        assert_eq!(g.bytes, b"ab0123456789X");
        assert_eq!(r.buffered(), 0);
        // The late bytes of the hole now count as old data, never re-delivered.
        feed(&mut r, &mut g, 3, b"cde");
        assert_eq!(g.bytes, b"ab0123456789X");
    }

    #[test]
    fn buffered_bytes_keep_the_tag_of_the_segment_that_brought_them() {
        let mut r = Reassembler::new(1 << 20);
        r.syn(0);
        let mut got = Vec::new();
        r.segment_at(11, false, b"late", 100, &mut |c, t| {
            got.push((format!("{c:?}"), t))
        });
        r.segment_at(1, false, b"0123456789", 200, &mut |c, t| {
            got.push((format!("{c:?}"), t))
        });
        let tags: Vec<u64> = got.iter().map(|(_, t)| *t).collect();
        assert_eq!(tags, [200, 100], "{got:?}");
    }

    #[test]
    fn wild_sequence_and_ack_numbers_are_not_believed() {
        let (mut r, mut g) = (Reassembler::new(1 << 20), Got::default());
        r.syn(0);
        feed(&mut r, &mut g, 1, b"abc");
        feed(&mut r, &mut g, 1 << 31, b"far away");
        r.ack(1 << 31, &mut |c| g.take(c));
        r.flush(&mut |c| g.take(c));
        assert_eq!(g.bytes, b"abc");
        assert!(g.gaps.is_empty(), "{:?}", g.gaps);
        let s = r.stats();
        assert_eq!((s.out_of_window_segments, s.implausible_acks), (1, 1));
    }

    #[test]
    fn a_flood_of_tiny_segments_is_bounded_by_the_cap() {
        let cap = 64 * 1024;
        let (mut r, mut g) = (Reassembler::new(cap), Got::default());
        r.syn(0);
        // 100,000 one-byte segments in reverse order, never in order.
        for i in (2..100_002u32).rev() {
            feed(&mut r, &mut g, i + 1, b"z");
            assert!(r.buffered() <= cap, "segment {i}");
        }
        r.flush(&mut |c| g.take(c));
        assert_eq!(
            g.bytes.len() as u64 + g.gaps.iter().map(|g| g.1).sum::<u64>(),
            100_002
        );
    }

    #[test]
    fn no_syn_starts_at_the_first_byte_seen() {
        let (mut r, mut g) = (Reassembler::new(1 << 20), Got::default());
        feed(&mut r, &mut g, 5000, b"mid-stream");
        assert_eq!(g.bytes, b"mid-stream");
        feed(&mut r, &mut g, 4990, b"0123456789mid-s");
        assert_eq!(r.stats().before_start_bytes, 10);
        assert_eq!(r.stats().retransmitted_bytes, 5);
    }

    #[test]
    fn tail_acked_but_never_captured_is_a_gap() {
        let (mut r, mut g) = (Reassembler::new(1 << 20), Got::default());
        r.syn(0);
        feed(&mut r, &mut g, 1, b"abc");
        r.ack(1 + 3 + 50, &mut |c| g.take(c)); // the peer got 50 more bytes we never saw
        assert_eq!(g.gaps, vec![], "no buffered data after it: only at flush");
        r.flush(&mut |c| g.take(c));
        assert_eq!(g.gaps, vec![(3, 50)]);
        // FIN: the tail up to the FIN is a gap too; the FIN itself is not data.
        let (mut r, mut g) = (Reassembler::new(1 << 20), Got::default());
        r.syn(0);
        feed(&mut r, &mut g, 1, b"abc");
        r.segment(9, true, b"", &mut |c| g.take(c));
        r.ack(10, &mut |c| g.take(c)); // acks the FIN
        r.flush(&mut |c| g.take(c));
        assert_eq!(g.gaps, vec![(3, 5)]);
        assert!(r.is_finished());
    }

    #[test]
    fn an_acknowledged_hole_becomes_a_gap_at_once() {
        let (mut r, mut g) = (Reassembler::new(1 << 20), Got::default());
        r.syn(0);
        feed(&mut r, &mut g, 1, b"aaaa");
        feed(&mut r, &mut g, 11, b"cccc"); // bytes 4..10 missing
        r.ack(5, &mut |c| g.take(c)); // acks only part of the hole: wait
        assert!(g.gaps.is_empty());
        r.ack(15, &mut |c| g.take(c)); // the receiver has everything
        assert_eq!(g.gaps, vec![(4, 6)]);
        assert_eq!(g.bytes, b"aaaacccc");
    }

    /// The model: a per-byte map of what was sent, first copy wins. Random
    /// segments (reordered, duplicated, overlapping, wrapping) must deliver
    /// exactly the model's bytes, and gaps exactly its holes.
    #[test]
    fn random_segments_match_a_per_byte_model() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for round in 0..300 {
            let isn = (rnd(1 << 32)) as u32;
            let total = 1 + rnd(3000);
            let stream: Vec<u8> = (0..total).map(|i| (i * 7 + round) as u8).collect();
            let cap = if round % 3 == 0 { 64 } else { 1 << 20 };
            let (mut r, mut g) = (Reassembler::new(cap), Got::default());
            r.syn(isn);
            let mut model: BTreeMap<u64, u8> = BTreeMap::new();
            for _ in 0..(1 + rnd(40)) {
                let a = rnd(total);
                let b = (a + 1 + rnd(200)).min(total);
                let seq = isn.wrapping_add(1).wrapping_add(a as u32);
                feed(&mut r, &mut g, seq, &stream[a as usize..b as usize]);
                for o in a..b {
                    model.entry(o).or_insert(stream[o as usize]);
                }
            }
            r.flush(&mut |c| g.take(c));
            // Every delivered byte is the stream's byte at its offset.
            let mut off = 0u64;
            let mut gi = 0;
            let mut bi = 0usize;
            while bi < g.bytes.len() || gi < g.gaps.len() {
                if gi < g.gaps.len() && g.gaps[gi].0 == off {
                    for o in off..off + g.gaps[gi].1 {
                        // With a small cap, bytes may arrive after their hole
                        // was given up; otherwise a gap byte was never sent.
                        if cap > 64 {
                            assert!(
                                !model.contains_key(&o),
                                "round {round}: gap over sent byte {o}"
                            );
                        }
                    }
                    off += g.gaps[gi].1;
                    gi += 1;
                } else {
                    assert_eq!(
                        g.bytes[bi], stream[off as usize],
                        "round {round} offset {off}"
                    );
                    assert!(model.contains_key(&off));
                    bi += 1;
                    off += 1;
                }
            }
            let last = model.keys().next_back().map_or(0, |k| k + 1);
            assert_eq!(
                off, last,
                "round {round}: everything up to the last byte sent is accounted for"
            );
            if cap > 64 {
                assert_eq!(g.bytes.len(), model.len(), "round {round}");
            }
        }
    }
}
