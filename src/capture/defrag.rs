//! IP reassembly: fragments of IPv4 and IPv6 datagrams put back together,
//! bounded in memory and time as Linux bounds its own
//! (`net.ipv4.ipfrag_high_thresh`, 4 MiB; `ipfrag_time`, 30 s).
//!
//! A UDP message longer than the path MTU (the UDP lab with a long line,
//! over `eth0`) crosses the wire as fragments; only the first carries the
//! UDP header. The fragments of one datagram share (source, destination,
//! protocol, identification); each says where its bytes go and whether more
//! follow. Once every byte from 0 to the end of the last fragment is in,
//! the datagram is handed on as if it had arrived whole, dated by the
//! fragment that completed it (as Wireshark shows it on that packet).
//!
//! # Policy
//!
//! * A fragment that repeats bytes already held, identically (a capture on
//!   `-i any` can see a packet twice), is counted and dropped.
//! * Overlapping fragments whose bytes differ make the datagram ambiguous:
//!   *first data wins*, as in rc1's TCP reassembly and in Wireshark, and
//!   the overlap is reported with its range (`ip.fragment_overlap`). (A
//!   receiver that follows RFC 5722, as Linux does for IPv4 too, drops such
//!   a datagram: the message says so.)
//! * A datagram over 65,535 bytes is dropped (`ip.fragment_too_long`).
//! * A datagram still incomplete [`TIMEOUT_US`] after its first fragment,
//!   when the memory bound forces the oldest out, or at the end of the
//!   capture, is reported with what was captured of it
//!   (`ip.fragment_incomplete`); never silently dropped.

#![warn(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

use super::packet::{Encap, Fragment};
use super::source::Timestamp;

/// Bytes of fragments held at most (each fragment also costs
/// [`PIECE_OVERHEAD`]): Linux's `ipfrag_high_thresh`.
pub const MAX_HELD: usize = 4 << 20;

/// Capture time a datagram may wait for its fragments: Linux's
/// `ipfrag_time`, 30 s.
pub const TIMEOUT_US: u64 = 30_000_000;

/// Bytes counted per held fragment beyond its data.
pub const PIECE_OVERHEAD: usize = 64;

/// Largest datagram payload (IPv4's 16-bit total length).
pub const MAX_DATAGRAM: u32 = 65_535;

/// Completed datagrams remembered, so a late duplicate fragment of one is
/// not taken for the start of a new datagram.
const RECENT: usize = 1024;

/// Fragments remembered per completed datagram (to tell a late copy of
/// one from a new datagram that reuses the identification).
const MAX_PRINTS: usize = 64;

/// A fragment's place, length and a hash of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Print(u32, u32, u64);

impl Print {
    fn of(f: &Fragment<'_>) -> Print {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        f.data.hash(&mut h);
        Print(
            f.offset,
            u32::try_from(f.data.len()).unwrap_or(u32::MAX),
            h.finish(),
        )
    }
}

/// Which datagram a fragment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    protocol: u8,
}

#[derive(Debug)]
struct Set {
    /// Pieces held, non-overlapping, by offset.
    pieces: BTreeMap<u32, Vec<u8>>,
    /// End of the payload, once the last fragment (no "more") is in.
    end: Option<u32>,
    first: Timestamp,
    fragments: u32,
    held: usize,
    encap: Encap,
    /// A fragment was cut by the snap length: the datagram can never be
    /// whole.
    snapped: bool,
    /// When the fragment at offset 0 came.
    head_ts: Option<Timestamp>,
    /// Payload bytes held (the pieces do not overlap).
    covered: u64,
    /// Each fragment's place and bytes, to know a late copy of one.
    prints: Vec<Print>,
    /// Payload bytes `[from, to)` where fragments overlapped with
    /// different bytes (the first copy is kept).
    conflict: Option<(u32, u32)>,
}

/// Why a datagram was not reassembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Two fragments overlap with different bytes at `[from, to)`.
    Overlap {
        /// First byte of the overlap (offset in the datagram payload).
        from: u32,
        /// Just past its last byte.
        to: u32,
    },
    /// The fragments describe more than 65,535 bytes.
    TooLong {
        /// The end they claim.
        end: u64,
    },
    /// Not all fragments came in time.
    Timeout,
    /// Dropped to keep within [`MAX_HELD`].
    Memory,
    /// The capture ended first.
    End,
}

/// A datagram given up on, with what is known of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Why.
    pub failure: Failure,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP identification.
    pub id: u32,
    /// IP protocol of the datagram.
    pub protocol: u8,
    /// Fragments captured (their packets are counted as dropped).
    pub fragments: u32,
    /// Payload bytes captured.
    pub captured: u64,
    /// Payload length, if the last fragment was seen.
    pub total: Option<u32>,
    /// A fragment was cut by the snap length.
    pub snapped: bool,
    /// When it was given up (capture time).
    pub ts: Timestamp,
    /// When its first fragment came.
    pub began: Timestamp,
    /// The bytes captured from its start on, when its first fragment was
    /// captured (with that fragment's time): the part of the datagram
    /// that can still be shown, as tshark shows it, cut short.
    pub head: Option<(Timestamp, Vec<u8>)>,
    /// The layers its first fragment came through.
    pub encap: Encap,
}

impl Problem {
    /// The sentence for the diagnostic.
    pub fn message(&self) -> String {
        let of = |n: u32| format!("{} fragment(s)", n);
        let what = format!(
            "IP datagram {} -> {} (id {:#x}, protocol {})",
            self.src, self.dst, self.id, self.protocol
        );
        match self.failure {
            Failure::Overlap { from, to } => format!(
                "{what}: fragments overlap with different bytes at payload bytes {from}..{to}; \
                 the first copy was kept (a receiver following RFC 5722, as Linux does, drops \
                 such a datagram)"
            ),
            Failure::TooLong { end } => {
                format!("{what}: fragments reach byte {end}, over the 65535-byte maximum; dropped")
            }
            Failure::Timeout | Failure::Memory | Failure::End => {
                let total = self.total.map_or(
                    "of an unknown length (its last fragment never came)".into(),
                    |t| format!("of {t}"),
                );
                let why = match self.failure {
                    Failure::Timeout => "no more fragments came within 30 s",
                    Failure::Memory => "dropped to keep fragment memory within 4 MiB",
                    _ => "the capture ended",
                };
                let snapped = if self.snapped {
                    "; a fragment was cut by the snap length"
                } else {
                    ""
                };
                format!(
                    "{what}: incomplete, {} byte(s) {total} captured in {}: {why}{snapped}",
                    self.captured,
                    of(self.fragments)
                )
            }
        }
    }
}

/// What one fragment did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Held until the rest comes.
    Held,
    /// A late copy of a fragment of a datagram already complete (a copy
    /// of bytes still held is [`Step::Held`], counted with its datagram).
    Duplicate,
    /// The datagram is whole: its payload is in [`Defrag::datagram`];
    /// `fragments` packets made it (this one included).
    Complete {
        /// The datagram's IP protocol.
        protocol: u8,
        /// Fragments it took.
        fragments: u32,
        /// The layers its first fragment came through.
        encap: Encap,
        /// Fragments overlapped with different bytes (the first copy was
        /// kept): to report.
        conflict: Option<Problem>,
    },
    /// The datagram was dropped.
    Dropped(Problem),
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Fragments seen.
    pub fragments: u64,
    /// Datagrams reassembled.
    pub datagrams: u64,
    /// Duplicate fragments dropped.
    pub duplicates: u64,
}

/// The fragments of every datagram in progress.
#[derive(Debug)]
pub struct Defrag {
    sets: HashMap<Key, Set>,
    held: usize,
    max_held: usize,
    recent: VecDeque<(Key, Timestamp, Vec<Print>)>,
    /// Datagrams in the order they began, for eviction.
    order: VecDeque<(Key, Timestamp)>,
    out: Vec<u8>,
    /// Counters so far.
    pub stats: DefragStats,
}

impl Default for Defrag {
    fn default() -> Defrag {
        Defrag::new(MAX_HELD)
    }
}

impl Defrag {
    /// A defragmenter holding at most `max_held` bytes.
    pub fn new(max_held: usize) -> Defrag {
        Defrag {
            sets: HashMap::new(),
            held: 0,
            max_held,
            recent: VecDeque::new(),
            order: VecDeque::new(),
            out: Vec::new(),
            stats: DefragStats::default(),
        }
    }

    /// The payload of the datagram the last [`Step::Complete`] finished.
    pub fn datagram(&self) -> &[u8] {
        &self.out
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held
    }

    /// One fragment, captured at `ts`. Problems of other datagrams that
    /// the memory bound forced out go to `evicted`.
    pub fn fragment(
        &mut self,
        ts: Timestamp,
        f: &Fragment<'_>,
        evicted: &mut Vec<Problem>,
    ) -> Step {
        self.stats.fragments = self.stats.fragments.saturating_add(1);
        let key = Key {
            src: f.src,
            dst: f.dst,
            id: f.id,
            protocol: f.protocol,
        };
        // A late copy of a fragment of a datagram just completed: the same
        // place and the same bytes. A fragment with the same identification
        // but other bytes is a new datagram (identifications wrap).
        let print = Print::of(f);
        if !self.sets.contains_key(&key)
            && self.recent.iter().any(|(k, t, prints)| {
                *k == key && ts.micros_since(*t) <= TIMEOUT_US && prints.contains(&print)
            })
        {
            self.stats.duplicates = self.stats.duplicates.saturating_add(1);
            return Step::Duplicate;
        }
        let len = u32::try_from(f.data.len()).unwrap_or(u32::MAX);
        let end64 = u64::from(f.offset).saturating_add(u64::from(len));
        if !self.sets.contains_key(&key) {
            self.order.push_back((key, ts));
            // Entries of datagrams long gone do not pile up.
            if self.order.len() > self.sets.len().saturating_mul(2).saturating_add(64) {
                let sets = &self.sets;
                self.order
                    .retain(|(k, t)| *k == key || sets.get(k).is_some_and(|s| s.first == *t));
            }
        }
        let set = self.sets.entry(key).or_insert_with(|| Set {
            pieces: BTreeMap::new(),
            end: None,
            first: ts,
            fragments: 0,
            held: 0,
            encap: f.encap,
            snapped: false,
            conflict: None,
            head_ts: None,
            covered: 0,
            prints: Vec::new(),
        });
        set.fragments = set.fragments.saturating_add(1);
        set.snapped |= f.truncated;
        if set.prints.len() < MAX_PRINTS {
            set.prints.push(print);
        }
        if f.offset == 0 {
            set.encap = f.encap;
            set.head_ts.get_or_insert(ts);
        }
        if end64 > u64::from(MAX_DATAGRAM) {
            return self.drop_set(key, ts, Failure::TooLong { end: end64 });
        }
        let end = u32::try_from(end64).unwrap_or(MAX_DATAGRAM);
        // The first end wins too: bytes past it are a conflict.
        let mut end = end;
        if !f.more && !f.truncated && set.end.is_none() {
            set.end = Some(end);
        }
        if let Some(e) = set.end
            && (end > e || (!f.more && end != e))
        {
            widen(&mut set.conflict, e.min(end), e.max(end));
            end = end.min(e);
        }
        // Keep only the new parts; identical overlaps are duplicates,
        // different ones a conflict (the first copy stays).
        let mut fresh: Vec<(u32, &[u8])> = Vec::new();
        let mut cur = f.offset.min(end);
        let mut dup = false;
        // Only the pieces this fragment can overlap: held pieces do not
        // overlap one another, so those ending after its start are the last
        // ones before its end.
        let start = cur;
        let near: Vec<(u32, &Vec<u8>)> = set
            .pieces
            .range(..end)
            .rev()
            .take_while(|(k, v)| {
                k.saturating_add(u32::try_from(v.len()).unwrap_or(u32::MAX)) > start
            })
            .map(|(k, v)| (*k, v))
            .collect();
        for (k, v) in near.into_iter().rev() {
            let kend = k.saturating_add(u32::try_from(v.len()).unwrap_or(u32::MAX));
            if kend <= cur {
                continue;
            }
            if k > cur {
                fresh.push((cur, sub(f.data, f.offset, cur, k)));
            }
            let (lo, hi) = (k.max(cur), kend.min(end));
            if hi > lo {
                let (mine, theirs) = (sub(f.data, f.offset, lo, hi), sub(v, k, lo, hi));
                if let Some((a, b)) = differing(mine, theirs) {
                    widen(
                        &mut set.conflict,
                        lo.saturating_add(a),
                        lo.saturating_add(b),
                    );
                }
                dup = true;
            }
            cur = cur.max(kend);
        }
        if cur < end {
            fresh.push((cur, sub(f.data, f.offset, cur, end)));
        }
        let mut added = 0usize;
        for (off, bytes) in fresh {
            if bytes.is_empty() {
                continue;
            }
            let cost = bytes.len().saturating_add(PIECE_OVERHEAD);
            added = added.saturating_add(cost);
            set.held = set.held.saturating_add(cost);
            set.covered = set.covered.saturating_add(bytes.len() as u64);
            set.pieces.insert(off, bytes.to_vec());
        }
        self.held = self.held.saturating_add(added);
        if dup && added == 0 {
            self.stats.duplicates = self.stats.duplicates.saturating_add(1);
        }
        if let Some(step) = self.try_complete(key, ts) {
            return step;
        }
        // Over the bound: the oldest other datagrams go first (in the
        // order they began; entries of datagrams already gone are skipped).
        let mut keep = Vec::new();
        while self.held > self.max_held {
            let Some((oldest, began)) = self.order.pop_front() else {
                break;
            };
            if oldest == key {
                keep.push((oldest, began));
                continue;
            }
            if self.sets.get(&oldest).is_some_and(|s| s.first == began)
                && let Step::Dropped(p) = self.drop_set(oldest, ts, Failure::Memory)
            {
                evicted.push(p);
            }
        }
        for k in keep.into_iter().rev() {
            self.order.push_front(k);
        }
        if self.held > self.max_held {
            return self.drop_set(key, ts, Failure::Memory);
        }
        Step::Held
    }

    /// Completes the datagram if every byte is in.
    fn try_complete(&mut self, key: Key, ts: Timestamp) -> Option<Step> {
        let set = self.sets.get(&key)?;
        let end = set.end?;
        // Pieces never overlap and never pass the end: whole when they
        // cover every byte.
        if set.snapped || set.covered != u64::from(end) {
            return None;
        }
        let set = self.sets.remove(&key)?;
        self.held = self.held.saturating_sub(set.held);
        let conflict = set.conflict.map(|(from, to)| {
            let mut p = problem(key, &set, Failure::Overlap { from, to }, ts);
            p.head = None; // the datagram itself is delivered
            p
        });
        self.out.clear();
        for v in set.pieces.values() {
            self.out.extend_from_slice(v);
        }
        self.stats.datagrams = self.stats.datagrams.saturating_add(1);
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((key, set.first, set.prints));
        Some(Step::Complete {
            protocol: key.protocol,
            fragments: set.fragments,
            encap: set.encap,
            conflict,
        })
    }

    fn drop_set(&mut self, key: Key, ts: Timestamp, failure: Failure) -> Step {
        let Some(set) = self.sets.remove(&key) else {
            return Step::Held; // not reached: callers pass a held key
        };
        self.held = self.held.saturating_sub(set.held);
        Step::Dropped(problem(key, &set, failure, ts))
    }

    /// Datagrams waiting longer than [`TIMEOUT_US`] at `now`.
    pub fn expire(&mut self, now: Timestamp) -> Vec<Problem> {
        let old: Vec<Key> = self
            .sets
            .iter()
            .filter(|(_, s)| now.micros_since(s.first) > TIMEOUT_US)
            .map(|(k, _)| *k)
            .collect();
        self.recent
            .retain(|(_, t, _)| now.micros_since(*t) <= TIMEOUT_US);
        self.take(old, now, Failure::Timeout)
    }

    /// End of the capture: every datagram still waiting.
    pub fn finish(&mut self, now: Timestamp) -> Vec<Problem> {
        let all: Vec<Key> = self.sets.keys().copied().collect();
        self.take(all, now, Failure::End)
    }

    fn take(&mut self, keys: Vec<Key>, now: Timestamp, failure: Failure) -> Vec<Problem> {
        let mut out: Vec<Problem> = keys
            .into_iter()
            .filter_map(|k| match self.drop_set(k, now, failure) {
                Step::Dropped(p) => Some(p),
                _ => None,
            })
            .collect();
        // Deterministic order (not the hash map's): by when each began,
        // then by addresses and identification.
        out.sort_by_key(|p| (p.began, p.src, p.dst, p.id, p.protocol));
        out
    }
}

fn problem(key: Key, set: &Set, failure: Failure, ts: Timestamp) -> Problem {
    // The contiguous bytes from offset 0, if the first fragment came.
    let head = set.head_ts.and_then(|t| {
        let mut out = Vec::new();
        let mut next = 0u32;
        for (&k, v) in &set.pieces {
            if k != next {
                break;
            }
            out.extend_from_slice(v);
            next = k.saturating_add(u32::try_from(v.len()).unwrap_or(u32::MAX));
        }
        (!out.is_empty()).then_some((t, out))
    });
    Problem {
        head,
        began: set.first,
        encap: set.encap,
        failure,
        src: key.src,
        dst: key.dst,
        id: key.id,
        protocol: key.protocol,
        fragments: set.fragments,
        captured: set.pieces.values().map(|v| v.len() as u64).sum(),
        total: set.end,
        snapped: set.snapped,
        ts,
    }
}

/// `range` grown to cover `[lo, hi)`.
fn widen(range: &mut Option<(u32, u32)>, lo: u32, hi: u32) {
    *range = Some(match *range {
        Some((a, b)) => (a.min(lo), b.max(hi)),
        None => (lo, hi),
    });
}

/// The span `[first, last + 1)` of the positions where `a` and `b` differ.
fn differing(a: &[u8], b: &[u8]) -> Option<(u32, u32)> {
    let first = a.iter().zip(b).position(|(x, y)| x != y)?;
    let last = a.iter().zip(b).rposition(|(x, y)| x != y)?;
    Some((
        u32::try_from(first).unwrap_or(u32::MAX),
        u32::try_from(last.saturating_add(1)).unwrap_or(u32::MAX),
    ))
}

/// The bytes of `data` (which starts at offset `base`) from `lo` to `hi`.
fn sub(data: &[u8], base: u32, lo: u32, hi: u32) -> &[u8] {
    let a = usize::try_from(lo.saturating_sub(base)).unwrap_or(usize::MAX);
    let b = usize::try_from(hi.saturating_sub(base)).unwrap_or(usize::MAX);
    data.get(a..b.min(data.len())).unwrap_or_default()
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

    fn frag(offset: u32, more: bool, data: &[u8]) -> Fragment<'_> {
        Fragment {
            src: IpAddr::from([10, 0, 0, 1]),
            dst: IpAddr::from([10, 0, 0, 2]),
            id: 7,
            protocol: 17,
            offset,
            more,
            data,
            truncated: false,
            encap: Encap::default(),
        }
    }

    fn ts(s: i64) -> Timestamp {
        Timestamp { sec: s, usec: 0 }
    }

    #[test]
    fn fragments_in_any_order_make_the_datagram() {
        let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let parts = [
            (0, &payload[..1480]),
            (1480, &payload[1480..2960]),
            (2960, &payload[2960..]),
        ];
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let mut d = Defrag::default();
            let mut ev = Vec::new();
            let mut last = Step::Held;
            for (n, &i) in order.iter().enumerate() {
                let (off, data) = parts[i];
                last = d.fragment(ts(n as i64), &frag(off, i != 2, data), &mut ev);
                if n < 2 {
                    assert_eq!(last, Step::Held);
                }
            }
            assert!(
                matches!(
                    last,
                    Step::Complete {
                        protocol: 17,
                        fragments: 3,
                        ..
                    }
                ),
                "{last:?}"
            );
            assert_eq!(d.datagram(), &payload[..]);
            assert_eq!(d.held(), 0);
            assert!(ev.is_empty());
        }
    }

    #[test]
    fn duplicates_are_dropped_and_conflicts_reported() {
        let mut d = Defrag::default();
        let mut ev = Vec::new();
        assert_eq!(
            d.fragment(ts(0), &frag(0, true, b"abcdefgh"), &mut ev),
            Step::Held
        );
        assert_eq!(
            d.fragment(ts(0), &frag(0, true, b"abcdefgh"), &mut ev),
            Step::Held
        );
        assert_eq!(d.stats.duplicates, 1);
        assert!(matches!(
            d.fragment(ts(0), &frag(8, false, b"ijkl"), &mut ev),
            Step::Complete { fragments: 3, .. }
        ));
        assert_eq!(d.datagram(), b"abcdefghijkl");
        // The same identification, other bytes: a new datagram.
        assert_eq!(
            d.fragment(ts(2), &frag(0, true, b"ABCDEFGH"), &mut ev),
            Step::Held
        );
        assert!(matches!(
            d.fragment(ts(2), &frag(8, false, b"IJKL"), &mut ev),
            Step::Complete { fragments: 2, .. }
        ));
        assert_eq!(d.datagram(), b"ABCDEFGHIJKL");
        // A late copy of a fragment of a completed datagram.
        assert_eq!(
            d.fragment(ts(1), &frag(8, false, b"ijkl"), &mut ev),
            Step::Duplicate
        );
        // Overlap with different bytes: the first copy wins, the range is
        // reported.
        let mut d = Defrag::default();
        d.fragment(ts(0), &frag(0, true, b"abcdefgh"), &mut ev);
        let Step::Complete {
            conflict: Some(p), ..
        } = d.fragment(ts(0), &frag(4, false, b"EfGHijkl"), &mut ev)
        else {
            panic!()
        };
        assert_eq!(p.failure, Failure::Overlap { from: 4, to: 8 });
        assert_eq!(p.fragments, 2);
        assert!(
            p.message().contains("payload bytes 4..8"),
            "{}",
            p.message()
        );
        assert_eq!(d.datagram(), b"abcdefghijkl");
        // Overlap with the same bytes is fine.
        let mut d = Defrag::default();
        d.fragment(ts(0), &frag(0, true, b"abcdefgh"), &mut ev);
        assert!(matches!(
            d.fragment(ts(0), &frag(4, false, b"efghijkl"), &mut ev),
            Step::Complete { conflict: None, .. }
        ));
        assert_eq!(d.datagram(), b"abcdefghijkl");
    }

    #[test]
    fn datagrams_given_up_together_come_out_in_the_order_they_began() {
        let mut ev = Vec::new();
        for _ in 0..5 {
            let mut d = Defrag::default();
            for (i, last) in [9u8, 3, 7, 1, 5].iter().enumerate() {
                let mut f = frag(0, true, b"abcdefgh");
                f.src = IpAddr::from([10, 0, 0, *last]);
                d.fragment(ts(i as i64), &f, &mut ev);
            }
            let order: Vec<IpAddr> = d.finish(ts(9)).iter().map(|p| p.src).collect();
            let want: Vec<IpAddr> = [9u8, 3, 7, 1, 5]
                .iter()
                .map(|l| IpAddr::from([10, 0, 0, *l]))
                .collect();
            assert_eq!(order, want);
        }
    }

    #[test]
    fn hostile_fragment_floods_stay_bounded() {
        // One datagram of 8-byte fragments, last first: every insertion
        // looks only at its neighbours.
        let payload: Vec<u8> = (0..65_528u32).map(|i| (i % 251) as u8).collect();
        let mut d = Defrag::default();
        let mut ev = Vec::new();
        let n = payload.len() / 8;
        let mut last = Step::Held;
        for i in (0..n).rev() {
            let off = (i * 8) as u32;
            last = d.fragment(
                ts(0),
                &frag(off, i + 1 != n, &payload[i * 8..i * 8 + 8]),
                &mut ev,
            );
        }
        assert!(matches!(last, Step::Complete { .. }), "{last:?}");
        assert_eq!(d.datagram(), &payload[..]);
        // 100,000 datagrams that never complete: memory stays within its
        // bound, the oldest go first, each reported.
        let mut d = Defrag::new(1 << 20);
        let mut reported = 0usize;
        for id in 0..100_000u32 {
            let mut f = frag(0, true, &[7u8; 100]);
            f.id = id;
            let _ = d.fragment(ts(0), &f, &mut ev);
            assert!(d.held() <= 1 << 20);
            reported += ev.len();
            ev.clear();
        }
        let left = d.finish(ts(1)).len();
        assert_eq!(reported + left, 100_000, "every datagram is reported once");
    }

    #[test]
    fn incomplete_datagrams_are_reported_by_time_memory_and_end() {
        let mut d = Defrag::default();
        let mut ev = Vec::new();
        d.fragment(ts(0), &frag(0, true, b"abcdefgh"), &mut ev);
        assert!(d.expire(ts(10)).is_empty());
        let p = d.expire(ts(31));
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].failure, p[0].captured, p[0].total),
            (Failure::Timeout, 8, None)
        );
        assert_eq!(d.held(), 0);
        // Memory: 4 datagrams of 1000 bytes in a 3000-byte pool.
        let mut d = Defrag::new(3000);
        for id in 0..4u32 {
            let mut f = frag(0, true, &[1u8; 1000]);
            f.id = id;
            assert_eq!(d.fragment(ts(i64::from(id)), &f, &mut ev), Step::Held);
            assert!(d.held() <= 3000);
        }
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(ev.iter().all(|p| p.failure == Failure::Memory));
        assert_eq!((ev[0].id, ev[1].id), (0, 1), "oldest first");
        let end = d.finish(ts(5));
        assert_eq!(end.len(), 2);
        assert!(end.iter().all(|p| p.failure == Failure::End));
        // Past 65535 bytes.
        let mut d = Defrag::default();
        let Step::Dropped(p) = d.fragment(ts(0), &frag(65_528, false, &[0u8; 100]), &mut ev) else {
            panic!()
        };
        assert!(matches!(p.failure, Failure::TooLong { end: 65_628 }));
    }
}
