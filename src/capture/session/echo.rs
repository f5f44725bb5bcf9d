//! Echo matching: the requests of one session waiting for their echoes,
//! and what each echo was found to be.
//!
//! Frames are matched by `order`: each server frame with the waiting
//! request of the same order, then by its bytes. Text is a byte stream:
//! each echoed byte is compared with the oldest client byte not echoed
//! yet. Everything here is bounded: [`MAX_PENDING`] requests wait at
//! most, [`MAX_LATENCY_SAMPLES`] latencies are kept for the median.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};

use crate::capture::decode::Carries;
use crate::capture::event::{Dir, EchoMatch};
use crate::capture::source::Timestamp;

/// Echo latencies kept per session for the median (the maximum is tracked
/// apart): enough for any lab session, bounded for a flood.
pub const MAX_LATENCY_SAMPLES: usize = 10_000;

/// Most requests remembered per session while waiting for echoes.
pub const MAX_PENDING: usize = 4096;

/// Requests waiting for their echo: `(order, fingerprint, time)` for
/// frames, `(bytes, time)` for text. Bounded by [`MAX_PENDING`] entries: a
/// server that never echoes must not make memory grow with the capture.
enum Pending {
    Frames(Box<Frames>),
    Text(VecDeque<(Vec<u8>, Timestamp)>),
}

/// Frame requests waiting, in arrival order, each found by its `order`
/// without a search along them.
///
/// When echoes fall in a capture gap their requests stay here (up to
/// [`MAX_PENDING`]); a search along a queue of them for every later echo
/// was what made a dropping live capture fall further behind. The requests
/// sit in `slots` in the order they came (an answered one leaves a hole
/// until it reaches the front). While each order is greater than the one
/// before (what a lab client sends), the slots are sorted by order and a
/// request is found by bisection; at the first order that is not, an index
/// from order to positions is built and kept from then on.
#[derive(Default)]
struct Frames {
    /// Requests by arrival; `slots[0]` has id `base`.
    slots: VecDeque<Slot>,
    base: u64,
    /// Once orders stopped rising: per order, the ids of its waiting
    /// requests, oldest first (the first inline).
    index: Option<HashMap<u32, (u64, VecDeque<u64>), foldhash::fast::RandomState>>,
    last_order: Option<u32>,
    waiting: usize,
    /// Where the next echo's request probably is (just after the last
    /// one's): echoes come in order, also past requests that wait for
    /// echoes lost in a gap.
    hint: usize,
}

#[derive(Clone, Copy)]
struct Slot {
    order: u32,
    /// `None` once answered (or forgotten).
    request: Option<(Fingerprint, Timestamp)>,
}

impl Frames {
    fn push(&mut self, order: u32, fp: Fingerprint, ts: Timestamp, untracked: &mut u64) {
        if self.waiting >= MAX_PENDING {
            // The oldest request still waiting (the front: holes there are
            // cleared) is forgotten.
            if let Some(s) = self.slots.front().copied()
                && s.request.is_some()
            {
                self.take(s.order);
                *untracked = untracked.saturating_add(1);
            }
        }
        if self.slots.len() >= 4 * MAX_PENDING {
            self.compact();
        }
        if self.index.is_none() && self.last_order.is_some_and(|last| order <= last) {
            self.index = Some(HashMap::default());
            self.reindex();
        }
        self.last_order = Some(order);
        let id = self.base.wrapping_add(self.slots.len() as u64);
        self.slots.push_back(Slot {
            order,
            request: Some((fp, ts)),
        });
        if let Some(index) = &mut self.index {
            add(index, order, id);
        }
        self.waiting = self.waiting.saturating_add(1);
    }

    /// The oldest request of `order`, taken out.
    fn take(&mut self, order: u32) -> Option<(Fingerprint, Timestamp)> {
        let at = match &mut self.index {
            // Sorted by order, each order at most once; the lab's servers
            // echo in order, so it is nearly always the oldest.
            None if self.slots.front().is_some_and(|s| s.order == order) => 0,
            None if self.slots.get(self.hint).is_some_and(|s| s.order == order) => self.hint,
            None => self.slots.partition_point(|s| s.order < order),
            Some(index) => {
                let e = index.get_mut(&order)?;
                let id = match e.1.pop_front() {
                    Some(next) => std::mem::replace(&mut e.0, next),
                    None => index.remove(&order)?.0,
                };
                usize::try_from(id.wrapping_sub(self.base)).ok()?
            }
        };
        let slot = self.slots.get_mut(at).filter(|s| s.order == order)?;
        let r = slot.request.take()?;
        self.waiting = self.waiting.saturating_sub(1);
        self.hint = at.saturating_add(1);
        while self.slots.front().is_some_and(|s| s.request.is_none()) {
            self.slots.pop_front();
            self.base = self.base.wrapping_add(1);
            self.hint = self.hint.saturating_sub(1);
        }
        Some(r)
    }

    /// An old request that waits holds answered ones behind it: the holes
    /// are closed up (rarely: once the slots are four times the most that
    /// may wait).
    fn compact(&mut self) {
        self.base = self.base.wrapping_add(self.slots.len() as u64);
        self.slots.retain(|s| s.request.is_some());
        self.hint = 0;
        self.reindex();
    }

    /// The index made anew from the slots.
    fn reindex(&mut self) {
        let Some(index) = &mut self.index else {
            return;
        };
        index.clear();
        for (i, s) in self.slots.iter().enumerate() {
            if s.request.is_some() {
                add(index, s.order, self.base.wrapping_add(i as u64));
            }
        }
    }
}

fn add(
    index: &mut HashMap<u32, (u64, VecDeque<u64>), foldhash::fast::RandomState>,
    order: u32,
    id: u64,
) {
    match index.entry(order) {
        Entry::Occupied(mut e) => e.get_mut().1.push_back(id),
        Entry::Vacant(e) => {
            e.insert((id, VecDeque::new()));
        }
    }
}

/// What an echo is compared with: the frame's length and 64-bit XXH3
/// hash, so a waiting request costs 16 bytes whatever its size (a
/// differing echo that collides is a 2^-64 event; XXH3 hashes a 29-byte v2
/// frame in a few nanoseconds, cheaper than copying and comparing it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    len: usize,
    hash: u64,
}

impl Fingerprint {
    fn of(raw: &[u8]) -> Fingerprint {
        Fingerprint {
            len: raw.len(),
            hash: xxhash_rust::xxh3::xxh3_64(raw),
        }
    }
}

/// Queues text awaiting its echo; past [`MAX_PENDING`] the oldest is
/// forgotten and counted in `untracked`.
fn push_bounded<T>(q: &mut VecDeque<T>, item: T, untracked: &mut u64) {
    if q.len() >= MAX_PENDING {
        q.pop_front();
        *untracked = untracked.saturating_add(1);
    }
    q.push_back(item);
}

/// One session's echo book.
pub struct Echoes {
    /// The server is on the lab's port: its bytes are echoes to check.
    enabled: bool,
    pending: Pending,
    latencies: Vec<u64>,
    latency_max: u64,
    /// Echoes equal to their request.
    pub ok: u64,
    /// Echoes that differ from their request.
    pub mismatches: u64,
    /// The server sent anything the book looked at.
    pub server_echoed: bool,
    /// Requests forgotten because too many waited for echoes.
    pub untracked: u64,
}

impl Echoes {
    /// A book for a session; `enabled` when its server is the lab's.
    pub fn new(enabled: bool) -> Echoes {
        Echoes {
            enabled,
            pending: Pending::Frames(Box::default()),
            latencies: Vec::new(),
            latency_max: 0,
            ok: 0,
            mismatches: 0,
            server_echoed: false,
            untracked: 0,
        }
    }

    /// The session's framing is known: requests are frames or text.
    pub fn carries(&mut self, c: Carries) {
        self.pending = match c {
            Carries::Text => Pending::Text(VecDeque::new()),
            Carries::Framed(_) => Pending::Frames(Box::default()),
        };
    }

    /// A frame going `dir`: a request is queued (`None`), an echo matched.
    pub fn frame(&mut self, dir: Dir, order: u32, raw: &[u8], ts: Timestamp) -> Option<EchoMatch> {
        let Pending::Frames(q) = &mut self.pending else {
            return None;
        };
        if !self.enabled {
            return None;
        }
        if dir == Dir::ToServer {
            q.push(order, Fingerprint::of(raw), ts, &mut self.untracked);
            return None;
        }
        self.server_echoed = true;
        // The request with the same order; the lab's servers echo in
        // order, so it is normally the oldest one. No request with its
        // order: it may sit in a capture gap not reported yet (a hole is
        // known only once ACKed), so comparing with another request would
        // report a false mismatch. Unmatched requests are counted as
        // missing echoes at the end.
        Some(match q.take(order) {
            Some((req, t0)) if req == Fingerprint::of(raw) => {
                let l = ts.micros_since(t0);
                self.latency(l);
                self.ok = self.ok.saturating_add(1);
                EchoMatch::Ok { latency_us: l }
            }
            Some(_) => {
                self.mismatches = self.mismatches.saturating_add(1);
                EchoMatch::Mismatch
            }
            None => EchoMatch::Unsolicited,
        })
    }

    /// Text bytes going `dir`: the client's are queued, the server's
    /// compared with them.
    pub fn text(&mut self, dir: Dir, data: &[u8], ts: Timestamp) -> Option<EchoMatch> {
        let Pending::Text(q) = &mut self.pending else {
            return None;
        };
        if !self.enabled {
            return None;
        }
        if dir == Dir::ToServer {
            push_bounded(q, (data.to_vec(), ts), &mut self.untracked);
            return None;
        }
        self.server_echoed = true;
        let m = match_text(q, data, ts);
        match m {
            EchoMatch::Ok { latency_us } => {
                self.latency(latency_us);
                self.ok = self.ok.saturating_add(1);
            }
            EchoMatch::Mismatch => self.mismatches = self.mismatches.saturating_add(1),
            EchoMatch::Unsolicited => {}
        }
        Some(m)
    }

    /// Whether requests are text.
    pub fn is_text(&self) -> bool {
        matches!(self.pending, Pending::Text(_))
    }

    /// Requests still waiting (frames), or their bytes (text).
    pub fn waiting_units(&self) -> u64 {
        match &self.pending {
            Pending::Frames(q) => q.waiting as u64,
            Pending::Text(q) => q.iter().map(|(b, _)| b.len() as u64).sum(),
        }
    }

    /// Requests still waiting (text: client writes not wholly echoed).
    pub fn waiting(&self) -> u64 {
        match &self.pending {
            Pending::Frames(q) => q.waiting as u64,
            Pending::Text(q) => q.len() as u64,
        }
    }

    /// Records an echo latency (bounded sample; the maximum always kept).
    fn latency(&mut self, us: u64) {
        self.latency_max = self.latency_max.max(us);
        if self.latencies.len() < MAX_LATENCY_SAMPLES {
            self.latencies.push(us);
        }
    }

    /// The median latency (the lower one for an even count).
    pub fn p50(&self) -> Option<u64> {
        let mut v = self.latencies.clone();
        v.sort_unstable();
        v.get(v.len().checked_sub(1)? / 2).copied()
    }

    /// The largest latency.
    pub fn max(&self) -> Option<u64> {
        (!self.latencies.is_empty()).then_some(self.latency_max)
    }
}

/// Compares a text echo with the oldest unanswered client bytes.
fn match_text(q: &mut VecDeque<(Vec<u8>, Timestamp)>, data: &[u8], ts: Timestamp) -> EchoMatch {
    let mut rest = data;
    let mut first_t0 = None;
    while !rest.is_empty() {
        let Some((front, t0)) = q.front_mut() else {
            return if first_t0.is_some() {
                EchoMatch::Mismatch
            } else {
                EchoMatch::Unsolicited
            };
        };
        first_t0.get_or_insert(*t0);
        let n = front.len().min(rest.len());
        if front.get(..n) != rest.get(..n) {
            q.pop_front();
            return EchoMatch::Mismatch;
        }
        front.drain(..n);
        if front.is_empty() {
            q.pop_front();
        }
        rest = rest.get(n..).unwrap_or_default();
    }
    let l = first_t0.map_or(0, |t0| ts.micros_since(t0));
    EchoMatch::Ok { latency_us: l }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Framing;

    fn t(us: u32) -> Timestamp {
        Timestamp { sec: 0, usec: us }
    }

    #[test]
    fn frames_match_by_order_then_bytes() {
        let mut e = Echoes::new(true);
        e.carries(Carries::Framed(Framing::V3));
        let long = vec![7u8; 100];
        assert_eq!(e.frame(Dir::ToServer, 1, b"a", t(0)), None);
        assert_eq!(e.frame(Dir::ToServer, 2, &long, t(1)), None);
        assert_eq!(
            e.frame(Dir::ToClient, 2, &long, t(11)),
            Some(EchoMatch::Ok { latency_us: 10 })
        );
        assert_eq!(
            e.frame(Dir::ToClient, 1, b"b", t(12)),
            Some(EchoMatch::Mismatch)
        );
        assert_eq!(
            e.frame(Dir::ToClient, 9, b"a", t(13)),
            Some(EchoMatch::Unsolicited)
        );
        assert_eq!((e.ok, e.mismatches, e.waiting()), (1, 1, 0));
        assert_eq!((e.p50(), e.max()), (Some(10), Some(10)));
    }

    /// The book against the plainest model of it: a queue searched from
    /// the oldest request, as the book was first written.
    #[test]
    fn frames_agree_with_a_queue_searched_from_the_front() {
        use rand::{Rng, SeedableRng};
        for seed in 0..10u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut e = Echoes::new(true);
            e.carries(Carries::Framed(Framing::V2));
            let mut model: VecDeque<(u32, u8, u32)> = VecDeque::new();
            let mut model_untracked = 0u64;
            // Rising orders first (bisection), then, for half the seeds,
            // repeated and falling ones too (the index).
            let mut next = 0u32;
            for step in 0..60_000u32 {
                let rising = seed % 2 == 0 || step < 5_000;
                if rng.random_bool(0.55) {
                    let order = if rising {
                        next += rng.random_range(1..3);
                        next
                    } else {
                        rng.random_range(0..50)
                    };
                    let byte = rng.random::<u8>();
                    e.frame(Dir::ToServer, order, &[byte], t(step));
                    if model.len() >= MAX_PENDING {
                        model.pop_front();
                        model_untracked += 1;
                    }
                    model.push_back((order, byte, step));
                } else {
                    // An echo of a waiting request (its bytes or others),
                    // or of an order nobody sent.
                    let (order, byte) = match model.get(rng.random_range(0..model.len().max(1))) {
                        Some(&(o, b, _)) if rng.random_bool(0.9) => {
                            (o, b ^ u8::from(rng.random_bool(0.1)))
                        }
                        _ => (rng.random_range(0..100_000), 0),
                    };
                    let want = match model.iter().position(|m| m.0 == order) {
                        Some(p) => {
                            let (_, b, t0) = model.remove(p).unwrap();
                            if b == byte {
                                EchoMatch::Ok {
                                    latency_us: u64::from(step - t0),
                                }
                            } else {
                                EchoMatch::Mismatch
                            }
                        }
                        None => EchoMatch::Unsolicited,
                    };
                    assert_eq!(
                        e.frame(Dir::ToClient, order, &[byte], t(step)),
                        Some(want),
                        "seed {seed} step {step}"
                    );
                }
                assert_eq!(e.waiting(), model.len() as u64, "seed {seed} step {step}");
            }
            assert_eq!(e.untracked, model_untracked, "seed {seed}");
            assert!(
                model_untracked > 0,
                "seed {seed}: the bound was never reached"
            );
        }
    }

    #[test]
    fn an_old_request_that_waits_does_not_hold_memory_or_lose_its_match() {
        // Order 5 is never echoed until the end and order 3 comes after it
        // (so orders fell: the index is in use); 40,000 pairs behind them
        // push the slots past the point where holes are closed up, several
        // times.
        for falling in [false, true] {
            let mut e = Echoes::new(true);
            e.carries(Carries::Framed(Framing::V2));
            e.frame(Dir::ToServer, 5, b"five", t(1));
            if falling {
                e.frame(Dir::ToServer, 3, b"three", t(2));
            }
            for i in 0..40_000u32 {
                let msg = i.to_be_bytes();
                e.frame(Dir::ToServer, 1000 + i, &msg, t(10));
                assert_eq!(
                    e.frame(Dir::ToClient, 1000 + i, &msg, t(12)),
                    Some(EchoMatch::Ok { latency_us: 2 }),
                    "pair {i}"
                );
                let Pending::Frames(q) = &e.pending else {
                    panic!()
                };
                assert!(q.slots.len() <= 4 * MAX_PENDING);
            }
            assert_eq!(
                e.frame(Dir::ToClient, 5, b"five", t(21)),
                Some(EchoMatch::Ok { latency_us: 20 })
            );
            if falling {
                assert_eq!(
                    e.frame(Dir::ToClient, 3, b"three", t(22)),
                    Some(EchoMatch::Ok { latency_us: 20 })
                );
            }
            assert_eq!((e.waiting(), e.untracked), (0, 0));
        }
    }

    #[test]
    fn text_echoes_are_a_byte_stream() {
        let mut e = Echoes::new(true);
        e.carries(Carries::Text);
        e.text(Dir::ToServer, b"hello ", t(0));
        e.text(Dir::ToServer, b"world", t(5));
        assert_eq!(
            e.text(Dir::ToClient, b"hel", t(7)),
            Some(EchoMatch::Ok { latency_us: 7 })
        );
        assert_eq!(e.waiting_units(), 8);
        assert_eq!(
            e.text(Dir::ToClient, b"lo wX", t(9)),
            Some(EchoMatch::Mismatch)
        );
    }

    #[test]
    fn a_session_off_the_lab_port_checks_nothing_and_requests_are_bounded() {
        let mut off = Echoes::new(false);
        off.carries(Carries::Framed(Framing::V2));
        assert_eq!(off.frame(Dir::ToClient, 1, b"x", t(0)), None);
        let mut e = Echoes::new(true);
        e.carries(Carries::Framed(Framing::V2));
        for i in 0..(MAX_PENDING as u32 + 10) {
            e.frame(Dir::ToServer, i, b"x", t(0));
        }
        assert_eq!((e.waiting(), e.untracked), (MAX_PENDING as u64, 10));
        // The oldest were forgotten: orders 0..10 find nothing.
        assert_eq!(
            e.frame(Dir::ToClient, 3, b"x", t(1)),
            Some(EchoMatch::Unsolicited)
        );
        assert_eq!(
            e.frame(Dir::ToClient, 10, b"x", t(1)),
            Some(EchoMatch::Ok { latency_us: 1 })
        );
    }

    #[test]
    fn requests_whose_echoes_were_lost_stay_waiting_and_do_not_pile_up_the_book() {
        // Every third echo is lost (in a capture gap): those requests wait,
        // the others match, and the orders repeat (a client counting mod
        // 1000), as a long lab session's do.
        let mut e = Echoes::new(true);
        e.carries(Carries::Framed(Framing::V2));
        let mut lost = 0u64;
        for i in 0..200_000u32 {
            let order = i % 1000;
            let msg = i.to_be_bytes();
            e.frame(Dir::ToServer, order, &msg, t(0));
            if i % 3 == 0 {
                lost += 1;
                continue;
            }
            let got = e.frame(Dir::ToClient, order, &msg, t(1));
            // The oldest request of this order is an unanswered one when
            // an earlier echo of the same order was lost.
            assert!(matches!(
                got,
                Some(EchoMatch::Ok { .. }) | Some(EchoMatch::Mismatch)
            ));
        }
        assert!(e.waiting() <= MAX_PENDING as u64);
        let Pending::Frames(q) = &e.pending else {
            panic!()
        };
        assert!(q.slots.len() <= 4 * MAX_PENDING, "{}", q.slots.len());
        assert!(q.index.as_ref().is_some_and(|i| i.len() <= MAX_PENDING));
        // Every echo took a request; the lost ones' requests wait or were
        // forgotten, none is lost from the count.
        assert_eq!(e.ok + e.mismatches, 200_000 - lost);
        assert_eq!(e.waiting() + e.untracked, lost);
    }
}
