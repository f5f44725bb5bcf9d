//! Sessions: the TCP connections and UDP flows, each with its handshake,
//! reassembly per direction, framing, and echo matching. The [`Tracker`]
//! takes parsed packets in capture order and pushes [`Event`]s to a
//! [`Sink`].
//!
//! * The **client** is the side that sent the SYN; without a SYN, the side
//!   not on the server port (`--port`), else the higher port.
//! * Every TCP packet belongs to a session: one seen only through its
//!   ACKs, its FINs or one RST is a session too (as Zeek makes a
//!   connection record of each), picked up mid-stream. Only a late packet
//!   of a session that already ended (within [`ENDED_MEMORY_US`]) is not,
//!   and is counted as such.
//! * **Framing** is decided once per session, from the client's first bytes
//!   ([`crate::codec::detect`]), unless forced with `--proto`; both
//!   directions are held back until then (bounded by [`DETECT_LIMIT`]). A
//!   session picked up mid-stream is judged at every alignment, in both
//!   directions, and each direction is decoded from its first frame
//!   boundary.
//! * **Echoes** (on the lab's port only) are matched in order: each server
//!   frame is compared with the request of the same `order` (and bytes);
//!   text echoes are compared byte for byte with what the client sent.
//! * A session ends at RST; once both FINs are in, both directions are
//!   delivered and the last FIN is acknowledged (that final ACK belongs to
//!   it; [`LINGER_US`] at most without it); when idle for
//!   [`IDLE_EXPIRY_US`]; or at end of input. Its memory is freed then.

use std::collections::{HashMap, VecDeque};

/// The flow table's hasher: foldhash, seeded per process (keys come off
/// the wire, so the seed keeps a crafted capture from choosing
/// collisions), and several times cheaper than SipHash on a packet's two
/// socket addresses.
type FlowHasher = foldhash::fast::RandomState;
use std::net::SocketAddr;

use super::decode::{Carries, Decoded, StreamDecoder};
use super::event::{
    Dir, DirSummary, EchoMatch, Event, SessionSummary, Sink, TcpWhat, Totals, Where,
};
use super::event::{Fact, Facts};
use super::packet::{Encap, Packet, Tcp, Transport};
use super::reassembly::{Chunk, Reassembler};
use super::source::Timestamp;
use crate::codec::detect::{Aligned, Detected, Stage, detect, detect_midstream};
use crate::codec::{Framing, escape::escape};
use crate::spec;

/// Client bytes held while the framing is undecided.
pub const DETECT_LIMIT: usize = 64 * 1024;

/// Open sessions at most; past it the least recently active are ended
/// early (a SYN flood must not exhaust memory).
pub const MAX_SESSIONS: usize = 100_000;

/// Sessions idle this long (capture time) are ended: 5 minutes.
pub const IDLE_EXPIRY_US: u64 = 300_000_000;

/// What `--proto` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoChoice {
    /// Detect per session.
    Auto,
    /// Force one.
    Force(Carries),
}

/// Tracker settings.
#[derive(Debug, Clone, Copy)]
pub struct TrackerOptions {
    /// The server port (`--port`).
    pub port: u16,
    /// `--proto`.
    pub proto: ProtoChoice,
    /// `--max-frame`.
    pub max_frame: u32,
    /// Out-of-order bytes held per direction.
    pub max_buffered: usize,
}

/// A chunk held before the framing is known, with its capture time.
enum Held {
    Data(u64, Vec<u8>, Timestamp),
    Gap(u64, u64, Timestamp),
}

struct Half {
    /// Boxed, so [`Session::reassemble`] can lend it out by moving a pointer.
    reasm: Box<Reassembler>,
    held: Vec<Held>,
    held_bytes: usize,
    messages: u64,
    bytes: u64,
}

impl Half {
    fn new(max_buffered: usize) -> Half {
        Half {
            reasm: Box::new(Reassembler::new(max_buffered)),
            held: Vec::new(),
            held_bytes: 0,
            messages: 0,
            bytes: 0,
        }
    }

    /// The first contiguous run of held bytes (after a leading gap, if
    /// the stream starts with one).
    fn prefix(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut next = None;
        for h in &self.held {
            match h {
                Held::Data(o, b, _) if next.is_none_or(|n| n == *o) => {
                    out.extend_from_slice(b);
                    next = Some(o.saturating_add(b.len() as u64));
                }
                Held::Gap(..) if next.is_none() => {}
                _ => break,
            }
        }
        out
    }
}

/// Requests waiting for their echo: `(order, fingerprint, time)` for
/// frames, `(bytes, time)` for text. Bounded by [`MAX_PENDING`] entries: a
/// server that never echoes must not make memory grow with the capture.
enum Pending {
    Frames(VecDeque<(u32, Fingerprint, Timestamp)>),
    Text(VecDeque<(Vec<u8>, Timestamp)>),
}

/// What an echo is compared with: a short frame's bytes themselves (the
/// lab's v2 frames are 29 bytes), a longer one's length and 64-bit hash, so
/// a waiting request of 1 MiB costs a few bytes, not 1 MiB. (XXH3, 64 bits:
/// a differing echo that collides is a 2^-64 event, and it hashes at memory
/// speed, where SipHash took a fifth of a v3 capture's decode time.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fingerprint {
    Bytes(u8, [u8; FINGERPRINT_INLINE]),
    Hash(usize, u64),
}

/// Frames up to this many bytes are compared byte for byte.
const FINGERPRINT_INLINE: usize = 40;

impl Fingerprint {
    fn of(raw: &[u8]) -> Fingerprint {
        let mut inline = [0u8; FINGERPRINT_INLINE];
        if let (Some(dst), Ok(n)) = (inline.get_mut(..raw.len()), u8::try_from(raw.len())) {
            dst.copy_from_slice(raw);
            return Fingerprint::Bytes(n, inline);
        }
        Fingerprint::Hash(raw.len(), xxhash_rust::xxh3::xxh3_64(raw))
    }
}

/// Queues a request awaiting its echo; past [`MAX_PENDING`] the oldest is
/// forgotten and counted in `untracked`.
fn push_bounded<T>(q: &mut VecDeque<T>, item: T, untracked: &mut u64) {
    if q.len() >= MAX_PENDING {
        q.pop_front();
        *untracked = untracked.saturating_add(1);
    }
    q.push_back(item);
}

/// Echo latencies kept per session for the median (the maximum is tracked
/// apart): enough for any lab session, bounded for a flood.
pub const MAX_LATENCY_SAMPLES: usize = 10_000;

/// Most requests remembered per session while waiting for echoes.
pub const MAX_PENDING: usize = 4096;

struct Session {
    /// Takes a direction's reassembler's place while it is lent out.
    stand_in: Option<Box<Reassembler>>,
    id: u64,
    udp: bool,
    client: SocketAddr,
    server: SocketAddr,
    first: Timestamp,
    last: Timestamp,
    syn: Option<Timestamp>,
    synack: bool,
    established: bool,
    rtt_us: Option<u64>,
    picked_up: bool,
    fin: [bool; 2],
    rst: bool,
    halves: [Half; 2],
    decoders: Option<Box<[StreamDecoder; 2]>>,
    framing: Option<Carries>,
    pending: Pending,
    latencies: Vec<u64>,
    latency_max: u64,
    echoes_ok: u64,
    mismatches: u64,
    server_echoed: bool,
    /// Requests forgotten because too many waited for echoes.
    untracked: u64,
    /// Time of the last data fed to each direction.
    fed_ts: [Timestamp; 2],
    /// A gap was seen in each direction.
    gap_seen: [bool; 2],
    /// Packets per direction.
    packets: [u64; 2],
    /// Anomalies by code (few kinds: a short list).
    codes: Vec<(&'static str, u64)>,
    /// Sequence number of each direction's FIN, once seen.
    fin_seq: [Option<u32>; 2],
    /// Each direction's FIN was acknowledged by the other side.
    fin_acked: [bool; 2],
    /// Closed (both FINs in and delivered) but waiting for the last ACK,
    /// which belongs to the session: since when.
    closing: Option<Timestamp>,
    /// The layers its first packet came through.
    encap: Encap,
    /// Each direction's sequence number of stream offset 0, once known
    /// (the reassembler's, kept here while it is lent out).
    origin: [Option<u32>; 2],
    /// Picked up mid-stream: held bytes at which to judge the framing
    /// again while they stream in.
    next_judgement: usize,
    /// The server is on the lab's port: its bytes are echoes to check.
    echoes: bool,
}

/// Follows every session of a capture.
pub struct Tracker {
    opts: TrackerOptions,
    /// Boxed: a session is about 1 KiB, and the map moves its values as
    /// it grows.
    sessions: HashMap<Key, Box<Session>, FlowHasher>,
    next_id: u64,
    /// Totals so far.
    pub totals: Totals,
    /// Whether TCP control events are wanted (they are built only then).
    pub tcp_events: bool,
    last_sweep: Timestamp,
    /// TCP sessions that ended recently, with when: their late packets
    /// (a retransmitted FIN, an ACK after a RST) are counted, not taken
    /// for new connections.
    ended: HashMap<Key, Timestamp, FlowHasher>,
    ended_order: VecDeque<(Key, Timestamp)>,
}

/// A closed session waits this long (capture time) for the ACK of the
/// last FIN before it ends anyway.
pub const LINGER_US: u64 = 2_000_000;

/// An ended TCP session's packets are recognised this long after its end.
pub const ENDED_MEMORY_US: u64 = 60_000_000;

/// Ended sessions remembered at most.
pub const MAX_ENDED: usize = 65_536;

/// One call on a reassembler, given where its chunks go.
type Step<'a> = dyn FnMut(&mut Reassembler, &mut dyn FnMut(Chunk<'_>, u64)) + 'a;

/// A session's two endpoints, lower first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key(SocketAddr, SocketAddr);

/// Hashed as three integers, not field by field: this lookup runs for
/// every packet. (Equality still compares the addresses whole.)
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        fn ip(a: SocketAddr) -> u128 {
            match a.ip() {
                std::net::IpAddr::V4(v) => u128::from(v.to_bits()),
                std::net::IpAddr::V6(v) => v.to_bits(),
            }
        }
        state.write_u128(ip(self.0));
        state.write_u128(ip(self.1));
        state.write_u32(u32::from(self.0.port()) << 16 | u32::from(self.1.port()));
    }
}

fn key(a: SocketAddr, b: SocketAddr) -> Key {
    if a <= b { Key(a, b) } else { Key(b, a) }
}

impl Tracker {
    /// A tracker with no sessions.
    pub fn new(opts: TrackerOptions) -> Tracker {
        Tracker {
            opts,
            sessions: HashMap::default(),
            next_id: 0,
            totals: Totals::default(),
            tcp_events: false,
            last_sweep: Timestamp::default(),
            ended: HashMap::default(),
            ended_order: VecDeque::new(),
        }
    }

    /// Sessions open now.
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// A packet that could not be parsed: counted and reported.
    pub fn unparsed(&mut self, ts: Timestamp, number: u64, why: &str, sink: &mut dyn Sink) {
        self.totals.unparsed = self.totals.unparsed.saturating_add(1);
        self.diag(
            ts,
            spec::PACKET_UNPARSED.code,
            format!("packet {number}: {why}"),
            vec![("packet", Fact::Num(number))],
            sink,
        );
    }

    /// A diagnostic about no session (a packet, the capture).
    pub fn diag(
        &mut self,
        ts: Timestamp,
        code: &'static str,
        message: String,
        facts: Facts,
        sink: &mut dyn Sink,
    ) {
        self.totals.diagnostics = self.totals.diagnostics.saturating_add(1);
        sink.event(&Event::Diagnostic {
            ts,
            at: None,
            dir: None,
            code,
            message,
            facts,
        });
    }

    /// Runs the periodic sweeps at capture time `now` (a live capture
    /// calls it when idle, so sessions end on time without traffic).
    pub fn tick(&mut self, now: Timestamp, sink: &mut dyn Sink) {
        if now.micros_since(self.last_sweep) > 1_000_000 {
            self.expire(now, sink);
            self.last_sweep = now;
        }
    }

    /// One parsed packet.
    pub fn packet(&mut self, ts: Timestamp, p: &Packet<'_>, sink: &mut dyn Sink) {
        self.tick(ts, sink);
        match p.transport {
            Transport::Udp {
                src_port,
                dst_port,
                payload,
            } => {
                let src = SocketAddr::new(p.src, src_port);
                let dst = SocketAddr::new(p.dst, dst_port);
                self.udp(ts, src, dst, payload, p, sink);
            }
            Transport::Tcp(t) => {
                let src = SocketAddr::new(p.src, t.src_port);
                let dst = SocketAddr::new(p.dst, t.dst_port);
                self.tcp(ts, src, dst, &t, p, sink);
            }
        }
    }

    /// Makes room for one more session: ends the least recently active
    /// sixteenth when [`MAX_SESSIONS`] are open, and says so.
    fn make_room(&mut self, ts: Timestamp, sink: &mut dyn Sink) {
        if self.sessions.len() < MAX_SESSIONS {
            return;
        }
        let mut by_age: Vec<_> = self.sessions.iter().map(|(k, s)| (s.last, *k)).collect();
        by_age.sort_unstable();
        let n = MAX_SESSIONS / 16;
        self.diag(
            ts,
            spec::SESSION_EVICTED.code,
            format!("{MAX_SESSIONS} sessions open: ending the {n} least recently active early"),
            vec![("ended", Fact::Num(n as u64))],
            sink,
        );
        for (_, k) in by_age.into_iter().take(n) {
            if let Some(s) = self.sessions.remove(&k) {
                self.end(s, ts, sink);
            }
        }
    }

    fn new_session(
        &mut self,
        udp: bool,
        client: SocketAddr,
        server: SocketAddr,
        ts: Timestamp,
        encap: Encap,
    ) -> Session {
        self.next_id = self.next_id.saturating_add(1);
        self.totals.sessions = self.totals.sessions.saturating_add(1);
        let mb = self.opts.max_buffered;
        Session {
            id: self.next_id,
            udp,
            client,
            server,
            first: ts,
            last: ts,
            syn: None,
            synack: false,
            established: false,
            rtt_us: None,
            picked_up: false,
            fin: [false; 2],
            rst: false,
            halves: [Half::new(mb), Half::new(mb)],
            stand_in: Some(Box::new(Reassembler::new(0))),
            decoders: None,
            framing: None,
            pending: Pending::Frames(VecDeque::new()),
            latencies: Vec::new(),
            latency_max: 0,
            echoes_ok: 0,
            mismatches: 0,
            server_echoed: false,
            // Only the lab's servers echo: a session on another port (with
            // `-f`) has no echoes to check.
            echoes: server.port() == self.opts.port,
            gap_seen: [false; 2],
            fed_ts: [Timestamp::default(); 2],
            untracked: 0,
            packets: [0; 2],
            codes: Vec::new(),
            fin_seq: [None; 2],
            fin_acked: [false; 2],
            closing: None,
            encap,
            origin: [None; 2],
            next_judgement: 0,
        }
    }

    /// Which side is the server when no SYN says so.
    fn guess_server(&self, src: SocketAddr, dst: SocketAddr) -> bool {
        // true: dst is the server.
        if dst.port() == self.opts.port {
            true
        } else if src.port() == self.opts.port {
            false
        } else {
            dst.port() < src.port()
        }
    }

    fn udp(
        &mut self,
        ts: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        data: &[u8],
        p: &Packet<'_>,
        sink: &mut dyn Sink,
    ) {
        let encap = p.encap;
        let k = key(src, dst);
        if !self.sessions.contains_key(&k) {
            let (client, server) = if self.guess_server(src, dst) {
                (src, dst)
            } else {
                (dst, src)
            };
            self.make_room(ts, sink);
            let s = self.new_session(true, client, server, ts, encap);
            self.sessions.insert(k, Box::new(s));
        }
        let Some(s) = self.sessions.get_mut(&k) else {
            return;
        };
        s.last = ts;
        let dir = s.dir_of(src);
        s.packets[dir.index()] = s.packets[dir.index()].saturating_add(1);
        self.totals.in_sessions = self.totals.in_sessions.saturating_add(1);
        let h = &mut s.halves[dir.index()];
        h.messages = h.messages.saturating_add(1);
        h.bytes = h.bytes.saturating_add(data.len() as u64);
        self.totals.datagrams = self.totals.datagrams.saturating_add(1);
        let at = Where {
            ts,
            session: s.id,
            client: s.client,
            server: s.server,
        };
        sink.event(&Event::Udp {
            at,
            dir,
            data,
            truncated: p.truncated,
        });
        if p.truncated && !p.incomplete {
            s.report(
                ts,
                dir,
                spec::PACKET_SNAPPED.code,
                format!(
                    "datagram cut by the snap length: {} byte(s) of it captured",
                    data.len()
                ),
                vec![("captured", Fact::Num(data.len() as u64))],
                &mut self.totals,
                sink,
            );
        }
    }

    fn tcp(
        &mut self,
        ts: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        t: &Tcp<'_>,
        p: &Packet<'_>,
        sink: &mut dyn Sink,
    ) {
        // The start of an incomplete datagram is reported as such already.
        let (truncated, encap) = (p.truncated && !p.incomplete, p.encap);
        let k = key(src, dst);
        let tcp_events = self.tcp_events;
        let pure_syn = t.syn && !t.ack;
        // A new SYN on the addresses of a session that already carried data
        // or closed is a new connection (the client reused its port).
        if t.syn
            && !t.ack
            && let Some(old) = self.sessions.get(&k)
            && old.is_over_or_new_isn(t.seq)
            && let Some(old) = self.sessions.remove(&k)
        {
            self.end(old, ts, sink);
        }
        if !self.sessions.contains_key(&k) {
            // A late packet of a session that ended (a retransmitted FIN,
            // an ACK after a RST): counted, not a new connection. A SYN is
            // one.
            if let Some(&ended) = self.ended.get(&k) {
                if !pure_syn && ts.micros_since(ended) <= ENDED_MEMORY_US {
                    self.totals.after_session = self.totals.after_session.saturating_add(1);
                    return;
                }
                self.ended.remove(&k);
            }
            // Anything else starts a session, even a lone ACK, FIN or RST
            // (as Zeek makes a connection record of each).
            let dst_is_server = if t.syn {
                !t.ack
            } else {
                self.guess_server(src, dst)
            };
            let (client, server) = if dst_is_server {
                (src, dst)
            } else {
                (dst, src)
            };
            self.make_room(ts, sink);
            let mut s = self.new_session(false, client, server, ts, encap);
            if !pure_syn {
                s.picked_up = true;
                if tcp_events {
                    sink.event(&Event::Tcp {
                        at: s.at(ts),
                        what: TcpWhat::PickedUp,
                    });
                }
            }
            if let Some(forced) = match self.opts.proto {
                ProtoChoice::Force(c) => Some(c),
                ProtoChoice::Auto => None,
            } {
                s.decide(
                    forced,
                    "forced by --proto".into(),
                    self.opts.max_frame,
                    sink,
                );
            }
            self.sessions.insert(k, Box::new(s));
        }
        let max_frame = self.opts.max_frame;
        let Some(s) = self.sessions.get_mut(&k) else {
            return;
        };
        s.last = ts;
        let dir = s.dir_of(src);
        s.packets[dir.index()] = s.packets[dir.index()].saturating_add(1);
        self.totals.in_sessions = self.totals.in_sessions.saturating_add(1);
        let at = s.at(ts);
        if t.ack {
            // The other side's FIN acknowledged: the close is complete.
            let other = 1 - dir.index();
            if let Some(f) = s.fin_seq[other]
                && t.ack_no.wrapping_sub(f.wrapping_add(1)) as i32 >= 0
            {
                s.fin_acked[other] = true;
            }
        }
        if s.closing.is_some() {
            // The last ACK (or a repeat of the close): part of the session.
            if s.fin_acked[0]
                && s.fin_acked[1]
                && let Some(s) = self.sessions.remove(&k)
            {
                self.end(s, ts, sink);
            }
            return;
        }
        // Handshake.
        if t.syn {
            s.halves[dir.index()].reasm.syn(t.seq);
            if !t.ack && dir == Dir::ToServer && s.syn.is_none() {
                s.syn = Some(ts);
                if tcp_events {
                    sink.event(&Event::Tcp {
                        at,
                        what: TcpWhat::Syn,
                    });
                }
            } else if t.ack && dir == Dir::ToClient && !s.synack {
                s.synack = true;
                if tcp_events {
                    sink.event(&Event::Tcp {
                        at,
                        what: TcpWhat::SynAck,
                    });
                }
            }
        } else if t.ack && dir == Dir::ToServer && s.synack && !s.established {
            s.established = true;
            if let Some(syn) = s.syn {
                let rtt = ts.micros_since(syn);
                s.rtt_us = Some(rtt);
                if tcp_events {
                    sink.event(&Event::Tcp {
                        at,
                        what: TcpWhat::Established { rtt_us: rtt },
                    });
                }
            }
        }
        if t.ack {
            // An ACK may turn a hole in the other direction into a gap.
            let other = if dir == Dir::ToServer {
                Dir::ToClient
            } else {
                Dir::ToServer
            };
            s.reassemble(other, max_frame, &mut self.totals, sink, &mut |r, out| {
                r.ack_at(t.ack_no, ts.tag(), out)
            });
        }
        if truncated {
            s.report(
                ts,
                dir,
                spec::PACKET_SNAPPED.code,
                "segment cut by the snap length: its missing bytes will show as a gap".into(),
                vec![
                    ("seq", Fact::Num(t.seq.into())),
                    ("captured", Fact::Num(t.payload.len() as u64)),
                ],
                &mut self.totals,
                sink,
            );
        }
        // Payload through reassembly.
        let before = s.halves[dir.index()].reasm.stats();
        if !t.syn || !t.payload.is_empty() {
            // Data carried by a SYN starts after the SYN's own number.
            let seq = if t.syn { t.seq.wrapping_add(1) } else { t.seq };
            s.reassemble(dir, max_frame, &mut self.totals, sink, &mut |r, out| {
                r.segment_at(seq, t.fin, t.payload, ts.tag(), out)
            });
        }
        let after = s.halves[dir.index()].reasm.stats();
        if after.retransmitted_segments > before.retransmitted_segments {
            s.count(spec::TCP_RETRANSMISSION.code);
            if tcp_events {
                sink.event(&Event::Tcp {
                    at,
                    what: TcpWhat::Retransmission(dir),
                });
            }
        }
        if after.out_of_order_segments > before.out_of_order_segments {
            s.count(spec::TCP_OUT_OF_ORDER.code);
            if tcp_events {
                sink.event(&Event::Tcp {
                    at,
                    what: TcpWhat::OutOfOrder(dir),
                });
            }
        }
        if after.overlap_conflicts > before.overlap_conflicts {
            let n = after
                .conflicting_bytes
                .saturating_sub(before.conflicting_bytes);
            let (from, to) = s.halves[dir.index()]
                .reasm
                .last_conflict()
                .unwrap_or((0, 0));
            s.report(ts, dir, spec::TCP_OVERLAP_CONFLICT.code, format!(
                "a retransmitted segment (seq {}) carries {n} byte(s) different from the first copy, at stream offsets {from}..{to}; the first copy was kept",
                t.seq
            ), vec![
                ("seq", Fact::Num(t.seq.into())),
                ("bytes", Fact::Num(n)),
                ("from", Fact::Num(from)),
                ("to", Fact::Num(to)),
            ], &mut self.totals, sink);
        }
        // Control.
        if t.fin && !s.fin[dir.index()] {
            s.fin[dir.index()] = true;
            let len = u32::try_from(t.payload.len()).unwrap_or(0);
            let start = if t.syn { t.seq.wrapping_add(1) } else { t.seq };
            s.fin_seq[dir.index()] = Some(start.wrapping_add(len));
            if tcp_events {
                sink.event(&Event::Tcp {
                    at,
                    what: TcpWhat::Fin(dir),
                });
            }
        }
        if t.rst {
            s.rst = true;
            if tcp_events {
                sink.event(&Event::Tcp {
                    at,
                    what: TcpWhat::Rst(dir),
                });
            }
        }
        let closed = s.fin[0]
            && s.fin[1]
            && s.halves[0].reasm.is_finished()
            && s.halves[1].reasm.is_finished();
        if closed && !(s.fin_acked[0] && s.fin_acked[1]) && !s.rst {
            // Wait (briefly) for the last ACK: it belongs to the session.
            s.closing = Some(ts);
            return;
        }
        if (s.rst || closed)
            && let Some(s) = self.sessions.remove(&k)
        {
            self.end(s, ts, sink);
        }
    }

    /// Ends sessions idle for [`IDLE_EXPIRY_US`], and closed ones whose
    /// last ACK did not come within [`LINGER_US`].
    fn expire(&mut self, now: Timestamp, sink: &mut dyn Sink) {
        let mut old: Vec<_> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                let idle = now.micros_since(s.last);
                idle > IDLE_EXPIRY_US || (s.closing.is_some() && idle > LINGER_US)
            })
            .map(|(k, s)| (s.id, *k))
            .collect();
        old.sort_unstable();
        let old: Vec<Key> = old.into_iter().map(|(_, k)| k).collect();
        while let Some(&(k, t)) = self.ended_order.front() {
            if now.micros_since(t) <= ENDED_MEMORY_US && self.ended_order.len() <= MAX_ENDED {
                break;
            }
            self.ended_order.pop_front();
            if self.ended.get(&k) == Some(&t) {
                self.ended.remove(&k);
            }
        }
        for k in old {
            if let Some(s) = self.sessions.remove(&k) {
                self.end(s, now, sink);
            }
        }
    }

    /// End of input: every open session ends, in number order.
    pub fn finish(&mut self, sink: &mut dyn Sink) {
        let mut all: Vec<Box<Session>> = self.sessions.drain().map(|(_, s)| s).collect();
        all.sort_by_key(|s| s.id);
        for s in all {
            let last = s.last;
            self.end(s, last, sink);
        }
        sink.finish(&self.totals);
    }

    fn end(&mut self, mut s: Box<Session>, ts: Timestamp, sink: &mut dyn Sink) {
        let max_frame = self.opts.max_frame;
        if !s.udp {
            let k = key(s.client, s.server);
            self.ended.insert(k, ts);
            self.ended_order.push_back((k, ts));
            // Bounded however fast sessions end (a storm of SYN, RST).
            while self.ended_order.len() > MAX_ENDED {
                if let Some((old, t)) = self.ended_order.pop_front()
                    && self.ended.get(&old) == Some(&t)
                {
                    self.ended.remove(&old);
                }
            }
            for dir in [Dir::ToServer, Dir::ToClient] {
                s.reassemble(dir, max_frame, &mut self.totals, sink, &mut |r, out| {
                    r.flush_at(ts.tag(), out)
                });
            }
            if s.decoders.is_none() && s.detect(Stage::Ended, max_frame, sink) {
                s.replay(&mut self.totals, sink);
            }
            if let Some(mut decs) = s.decoders.take() {
                for dir in [Dir::ToServer, Dir::ToClient] {
                    let totals = &mut self.totals;
                    decs[dir.index()].finish(&mut |d| s.emit(dir, d, ts, totals, sink));
                }
                s.decoders = Some(decs);
            }
            for dir in [Dir::ToServer, Dir::ToClient] {
                let st = s.halves[dir.index()].reasm.stats();
                if st.out_of_window_segments > 0 || st.implausible_acks > 0 {
                    s.report(
                        ts,
                        dir,
                        spec::TCP_OUT_OF_WINDOW.code,
                        format!(
                            "{} segment(s) starting over 256 MiB ahead and {} ACK(s) for over 16 MiB more than was seen were ignored",
                            st.out_of_window_segments, st.implausible_acks
                        ),
                        vec![
                            ("segments", Fact::Num(st.out_of_window_segments)),
                            ("acks", Fact::Num(st.implausible_acks)),
                        ],
                        &mut self.totals,
                        sink,
                    );
                }
            }
            if s.untracked > 0 {
                s.report(
                    ts,
                    Dir::ToServer,
                    spec::ECHO_UNTRACKED.code,
                    format!(
                        "{} request(s) waited so long for an echo that they were no longer tracked (at most {MAX_PENDING} are)",
                        s.untracked
                    ),
                    vec![("requests", Fact::Num(s.untracked))],
                    &mut self.totals,
                    sink,
                );
            }
            let missing = match &s.pending {
                Pending::Frames(q) => q.len() as u64,
                Pending::Text(q) => q.iter().map(|(b, _)| b.len() as u64).sum(),
            };
            if missing > 0 && s.server_echoed {
                let what = if matches!(s.pending, Pending::Text(_)) {
                    "byte(s)"
                } else {
                    "request(s)"
                };
                s.report(
                    ts,
                    Dir::ToServer,
                    spec::ECHO_MISSING.code,
                    format!("{missing} {what} never echoed"),
                    vec![(
                        if matches!(s.pending, Pending::Text(_)) {
                            "bytes"
                        } else {
                            "requests"
                        },
                        Fact::Num(missing),
                    )],
                    &mut self.totals,
                    sink,
                );
            }
        }
        let summary = s.summary();
        sink.session_end(&summary);
    }
}

impl Session {
    /// The direction of a packet sent by `src`.
    fn dir_of(&self, src: SocketAddr) -> Dir {
        if src == self.client {
            Dir::ToServer
        } else {
            Dir::ToClient
        }
    }

    /// Records an echo latency (bounded sample; the maximum always kept).
    fn latency(&mut self, us: u64) {
        self.latency_max = self.latency_max.max(us);
        if self.latencies.len() < MAX_LATENCY_SAMPLES {
            self.latencies.push(us);
        }
    }

    /// Whether a SYN with `isn` from the client starts a new connection on
    /// these addresses: the old one ended, or it already had another ISN.
    fn is_over_or_new_isn(&self, isn: u32) -> bool {
        let ended = self.rst || self.fin[0] || self.fin[1];
        let other_isn = self.halves[0]
            .reasm
            .origin()
            .is_some_and(|o| o != isn.wrapping_add(1));
        ended || other_isn
    }

    fn at(&self, ts: Timestamp) -> Where {
        Where {
            ts,
            session: self.id,
            client: self.client,
            server: self.server,
        }
    }

    /// Counts an anomaly under `code` (no event of its own).
    fn count(&mut self, code: &'static str) {
        match self.codes.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n = n.saturating_add(1),
            None => self.codes.push((code, 1)),
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "a diagnostic's parts, then where it goes"
    )]
    fn report(
        &mut self,
        ts: Timestamp,
        dir: Dir,
        code: &'static str,
        message: String,
        facts: Facts,
        totals: &mut Totals,
        sink: &mut dyn Sink,
    ) {
        self.count(code);
        totals.diagnostics = totals.diagnostics.saturating_add(1);
        sink.event(&Event::Diagnostic {
            ts,
            at: Some(self.at(ts)),
            dir: Some(dir),
            code,
            message,
            facts,
        });
    }

    /// Sets the framing and replays what was held.
    fn decide(&mut self, carries: Carries, reason: String, max_frame: u32, sink: &mut dyn Sink) {
        self.framing = Some(carries);
        // Picked up mid-stream, each direction finds its own first frame
        // boundary.
        let new = if self.picked_up {
            StreamDecoder::midstream
        } else {
            StreamDecoder::new
        };
        self.decoders = Some(Box::new([new(carries, max_frame), new(carries, max_frame)]));
        self.pending = match carries {
            Carries::Text => Pending::Text(VecDeque::new()),
            Carries::Framed(_) => Pending::Frames(VecDeque::new()),
        };
        sink.event(&Event::Detected {
            at: self.at(self.last),
            framing: carries_name(carries),
            reason,
        });
    }

    /// Tries to decide the framing from the held client bytes (the
    /// server's when the client sent nothing yet). A session picked up
    /// mid-stream is judged at every alignment, in both directions.
    fn detect(&mut self, stage: Stage, max_frame: u32, sink: &mut dyn Sink) -> bool {
        let client = self.halves[0].prefix();
        if self.picked_up {
            return self.detect_midstream(client, stage, max_frame, sink);
        }
        let sample = if client.is_empty() {
            self.halves[1].prefix()
        } else {
            client
        };
        if sample.is_empty() {
            return false;
        }
        let stage = if sample.len() >= DETECT_LIMIT {
            Stage::Ended
        } else {
            stage
        };
        let Some(d) = detect(&sample, stage, max_frame) else {
            return false;
        };
        let carries = match d.detected {
            Detected::Framed(f) => Carries::Framed(f),
            Detected::Text => Carries::Text,
        };
        self.decide(carries, d.reason, max_frame, sink);
        true
    }

    fn detect_midstream(
        &mut self,
        client: Vec<u8>,
        stage: Stage,
        max_frame: u32,
        sink: &mut dyn Sink,
    ) -> bool {
        let server = self.halves[1].prefix();
        if client.is_empty() && server.is_empty() {
            return false;
        }
        // While the bytes stream in, judge again only as they double: each
        // judgement tries every offset.
        let held = client.len().saturating_add(server.len());
        if stage == Stage::Streaming && held < self.next_judgement {
            return false;
        }
        self.next_judgement = held.saturating_mul(2).max(64);
        let stage_of = |b: &[u8]| {
            if b.len() >= DETECT_LIMIT {
                Stage::Ended
            } else {
                stage
            }
        };
        let judge = |b: &[u8]| {
            (!b.is_empty())
                .then(|| detect_midstream(b, stage_of(b), max_frame))
                .flatten()
        };
        let (c, s) = (judge(&client), judge(&server));
        let framed = |a: &Option<Aligned>| {
            a.as_ref()
                .is_some_and(|a| a.detection.detected != Detected::Text)
        };
        let pick = if framed(&c) {
            c
        } else if framed(&s) {
            s.map(|mut a| {
                a.detection.reason = format!("from the server's bytes: {}", a.detection.reason);
                a
            })
        } else if (client.is_empty() || c.is_some()) && (server.is_empty() || s.is_some()) {
            // Both directions (that have bytes) are text for sure.
            c.or(s)
        } else {
            None
        };
        let Some(a) = pick else {
            return false;
        };
        let carries = match a.detection.detected {
            Detected::Framed(f) => Carries::Framed(f),
            Detected::Text => Carries::Text,
        };
        self.decide(carries, a.detection.reason, max_frame, sink);
        true
    }

    /// Decodes what was held back while the framing was unknown, each
    /// chunk with its own capture time.
    fn replay(&mut self, totals: &mut Totals, sink: &mut dyn Sink) {
        for d in [Dir::ToServer, Dir::ToClient] {
            let held = std::mem::take(&mut self.halves[d.index()].held);
            self.halves[d.index()].held_bytes = 0;
            for h in held {
                match h {
                    Held::Data(o, b, ts) => self.decode(
                        d,
                        Chunk::Data {
                            offset: o,
                            bytes: &b,
                        },
                        ts,
                        totals,
                        sink,
                    ),
                    Held::Gap(o, l, ts) => {
                        self.decode(d, Chunk::Gap { offset: o, len: l }, ts, totals, sink)
                    }
                }
            }
        }
    }

    /// Runs `step` on the reassembler of `dir` and feeds each chunk it
    /// delivers straight to the decoder, its bytes borrowed, not copied.
    /// (The reassembler is taken out for the call: feeding never touches
    /// it.)
    fn reassemble(
        &mut self,
        dir: Dir,
        max_frame: u32,
        totals: &mut Totals,
        sink: &mut dyn Sink,
        step: &mut Step<'_>,
    ) {
        let Some(stand_in) = self.stand_in.take() else {
            return; // not reached: calls do not nest
        };
        let mut r = std::mem::replace(&mut self.halves[dir.index()].reasm, stand_in);
        // Known before any gap can be declared (a gap follows the first
        // segment, which sets it).
        self.origin[dir.index()] = r.origin();
        step(&mut r, &mut |chunk, tag| {
            self.feed_one(
                dir,
                chunk,
                Timestamp::from_tag(tag),
                max_frame,
                totals,
                sink,
            )
        });
        self.origin[dir.index()] = r.origin();
        self.stand_in = Some(std::mem::replace(&mut self.halves[dir.index()].reasm, r));
    }

    /// One chunk from the reassembler, captured at `captured`.
    fn feed_one(
        &mut self,
        dir: Dir,
        chunk: Chunk<'_>,
        captured: Timestamp,
        max_frame: u32,
        totals: &mut Totals,
        sink: &mut dyn Sink,
    ) {
        // Data is dated when its last byte was captured: the later of its
        // own segment's time and that of the bytes before it (a frame
        // completed by a late segment is complete only then). Buffered
        // bytes are released later than they arrived, so the release time
        // would be wrong.
        let ts = match chunk {
            Chunk::Data { .. } => {
                let ts = captured.max(self.fed_ts[dir.index()]);
                self.fed_ts[dir.index()] = ts;
                ts
            }
            Chunk::Gap { .. } => captured,
        };
        sink.stream(&self.at(ts), dir, &chunk);
        self.feed(dir, chunk, ts, max_frame, totals, sink);
    }

    fn feed(
        &mut self,
        dir: Dir,
        chunk: Chunk<'_>,
        ts: Timestamp,
        max_frame: u32,
        totals: &mut Totals,
        sink: &mut dyn Sink,
    ) {
        if let Chunk::Gap { offset, len } = chunk {
            self.gap_seen[dir.index()] = true;
            let seq = self.origin[dir.index()].map(|o| o.wrapping_add(offset as u32));
            let mut facts = vec![("offset", Fact::Num(offset)), ("length", Fact::Num(len))];
            if let Some(seq) = seq {
                facts.push(("seq", Fact::Num(seq.into())));
            }
            self.report(ts, dir, spec::TCP_GAP.code, format!(
                "{len} byte(s) at stream offset {offset} were never captured (lost, or dropped by the capture); not zero-filled"
            ), facts, totals, sink);
        }
        if self.decoders.is_none() {
            let h = &mut self.halves[dir.index()];
            match chunk {
                Chunk::Data { offset, bytes } => {
                    h.held_bytes = h.held_bytes.saturating_add(bytes.len());
                    h.held.push(Held::Data(offset, bytes.to_vec(), ts));
                }
                Chunk::Gap { offset, len } => h.held.push(Held::Gap(offset, len, ts)),
            }
            // The server answering means the client's request is complete.
            let stage = if h.held_bytes >= DETECT_LIMIT {
                Stage::Ended
            } else if dir == Dir::ToClient {
                Stage::Answered
            } else {
                Stage::Streaming
            };
            if self.detect(stage, max_frame, sink) {
                self.replay(totals, sink);
            }
            return;
        }
        self.decode(dir, chunk, ts, totals, sink);
    }

    fn decode(
        &mut self,
        dir: Dir,
        chunk: Chunk<'_>,
        ts: Timestamp,
        totals: &mut Totals,
        sink: &mut dyn Sink,
    ) {
        // The decoders are taken out for the call, so each decoded frame
        // can go straight to `emit` (which needs the whole session) while
        // still borrowed from the decoder: no copy per frame.
        let Some(mut decs) = self.decoders.take() else {
            return;
        };
        decs[dir.index()].chunk(chunk, &mut |d| self.emit(dir, d, ts, totals, sink));
        self.decoders = Some(decs);
    }

    fn emit(
        &mut self,
        dir: Dir,
        d: Decoded<'_>,
        ts: Timestamp,
        totals: &mut Totals,
        sink: &mut dyn Sink,
    ) {
        let at = self.at(ts);
        match d {
            Decoded::Frame {
                offset,
                framing,
                frame,
            } => {
                totals.frames = totals.frames.saturating_add(1);
                let h = &mut self.halves[dir.index()];
                h.messages = h.messages.saturating_add(1);
                h.bytes = h.bytes.saturating_add(frame.raw.len() as u64);
                let echo = match (dir, &mut self.pending) {
                    _ if !self.echoes => None,
                    (Dir::ToServer, Pending::Frames(q)) => {
                        let item = (frame.order, Fingerprint::of(frame.raw), ts);
                        push_bounded(q, item, &mut self.untracked);
                        None
                    }
                    (Dir::ToClient, Pending::Frames(q)) => {
                        self.server_echoed = true;
                        // The request with the same order; the lab's servers
                        // echo in order, so it is normally the oldest one.
                        let found = q.iter().position(|(order, _, _)| *order == frame.order);
                        // No request with its order: it may sit in a capture
                        // gap not reported yet (a hole is known only once
                        // ACKed), so comparing with another request would
                        // report a false mismatch. Unmatched requests are
                        // counted as missing echoes at the end.
                        let pick = found.and_then(|p| q.remove(p));
                        Some(match pick {
                            Some((_, req, t0)) if req == Fingerprint::of(frame.raw) => {
                                let l = ts.micros_since(t0);
                                self.latency(l);
                                self.echoes_ok = self.echoes_ok.saturating_add(1);
                                EchoMatch::Ok { latency_us: l }
                            }
                            Some(_) => {
                                self.mismatches = self.mismatches.saturating_add(1);
                                EchoMatch::Mismatch
                            }
                            None => EchoMatch::Unsolicited,
                        })
                    }
                    _ => None,
                };
                for diag in frame.diagnostics(framing) {
                    if diag.code == spec::V2_SIZE_OVER_20.code {
                        continue; // shown as "(cut)" on the frame line itself
                    }
                    self.report(
                        ts,
                        dir,
                        diag.code,
                        format!("{} (frame at offset {offset})", diag.summary),
                        vec![
                            ("offset", Fact::Num(offset)),
                            ("order", Fact::Num(frame.order.into())),
                        ],
                        totals,
                        sink,
                    );
                }
                sink.event(&Event::Frame {
                    at,
                    dir,
                    offset,
                    framing,
                    frame,
                    echo,
                });
                if echo == Some(EchoMatch::Mismatch) {
                    self.report(
                        ts,
                        dir,
                        spec::ECHO_MISMATCH.code,
                        format!(
                            "echo order={} differs from the request it answers",
                            frame.order
                        ),
                        vec![
                            ("offset", Fact::Num(offset)),
                            ("order", Fact::Num(frame.order.into())),
                        ],
                        totals,
                        sink,
                    );
                }
            }
            Decoded::Text { offset, data } => {
                totals.text_messages = totals.text_messages.saturating_add(1);
                let h = &mut self.halves[dir.index()];
                h.messages = h.messages.saturating_add(1);
                h.bytes = h.bytes.saturating_add(data.len() as u64);
                let echo = match (dir, &mut self.pending) {
                    _ if !self.echoes => None,
                    (Dir::ToServer, Pending::Text(q)) => {
                        push_bounded(q, (data.to_vec(), ts), &mut self.untracked);
                        None
                    }
                    (Dir::ToClient, Pending::Text(q)) => {
                        self.server_echoed = true;
                        let m = match_text(q, data, ts);
                        if let EchoMatch::Ok { latency_us } = m {
                            self.latency(latency_us);
                        }
                        Some(m)
                    }
                    _ => None,
                };
                match echo {
                    Some(EchoMatch::Ok { .. }) => self.echoes_ok = self.echoes_ok.saturating_add(1),
                    Some(EchoMatch::Mismatch) => {
                        self.mismatches = self.mismatches.saturating_add(1)
                    }
                    _ => {}
                }
                sink.event(&Event::Text {
                    at,
                    dir,
                    offset,
                    data,
                    echo,
                });
                if echo == Some(EchoMatch::Mismatch) {
                    self.report(
                        ts,
                        dir,
                        spec::ECHO_MISMATCH.code,
                        format!(
                            "text echo \"{}\" differs from what the client sent",
                            escape(data)
                        ),
                        vec![
                            ("offset", Fact::Num(offset)),
                            ("length", Fact::Num(data.len() as u64)),
                        ],
                        totals,
                        sink,
                    );
                }
            }
            Decoded::Gap { .. } => {}
            Decoded::Partial { offset, len } => {
                self.report(ts, dir, spec::FRAME_PARTIAL.code, format!(
                    "the first {len} byte(s) captured (from offset {offset}) end a frame sent before the capture began; decoding starts at offset {}",
                    offset.saturating_add(len)
                ), vec![
                    ("offset", Fact::Num(offset)),
                    ("length", Fact::Num(len)),
                ], totals, sink);
            }
            Decoded::Damaged {
                offset,
                captured,
                reason,
            } => {
                self.report(ts, dir, spec::FRAME_DAMAGED.code, format!(
                    "frame at offset {offset}: {captured} captured byte(s) not decoded: {reason}"
                ), vec![
                    ("offset", Fact::Num(offset)),
                    ("length", Fact::Num(captured)),
                ], totals, sink);
            }
            Decoded::Error { offset, error } | Decoded::Truncated { offset, error } => {
                self.report(
                    ts,
                    dir,
                    error.diagnostic().code,
                    format!("at offset {offset}: {error}"),
                    vec![("offset", Fact::Num(offset))],
                    totals,
                    sink,
                );
            }
            Decoded::Unsynchronised { offset, bytes } => {
                self.report(ts, dir, spec::FRAME_UNSYNCHRONISED.code, format!(
                    "from offset {offset}, {bytes} byte(s) not decoded: no frame header could be trusted after the problem above"
                ), vec![
                    ("offset", Fact::Num(offset)),
                    ("length", Fact::Num(bytes)),
                ], totals, sink);
            }
        }
    }

    fn summary(&self) -> SessionSummary {
        let state = if self.udp {
            "UDP"
        } else if self.rst {
            "RST"
        } else if self.fin[0] && self.fin[1] {
            "SF"
        } else if self.picked_up {
            "OTH"
        } else if !self.established && self.halves.iter().all(|h| h.bytes == 0) {
            "S0"
        } else {
            "EST"
        };
        let framing = if self.udp {
            "udp"
        } else {
            self.framing.map_or("?", carries_name)
        };
        let missing = match &self.pending {
            Pending::Frames(q) => q.len() as u64,
            Pending::Text(q) => q.len() as u64,
        };
        SessionSummary {
            id: self.id,
            transport: if self.udp { "udp" } else { "tcp" },
            client: self.client,
            server: self.server,
            framing,
            first: self.first,
            last: self.last,
            dirs: [0, 1].map(|i| DirSummary {
                packets: self.packets[i],
                messages: self.halves[i].messages,
                bytes: self.halves[i].bytes,
                reassembly: self.halves[i].reasm.stats(),
                // Not for a session picked up mid-stream: what came before
                // its first captured byte is unknown.
                frames_in_gaps: self
                    .decoders
                    .as_ref()
                    .filter(|_| !self.picked_up)
                    .and_then(|d| d.get(i))
                    .and_then(StreamDecoder::frames_in_gaps),
            }),
            handshake_rtt_us: self.rtt_us,
            echo_latency_p50_us: median(&self.latencies),
            echo_latency_max_us: (!self.latencies.is_empty()).then_some(self.latency_max),
            echoes_ok: self.echoes_ok,
            echo_mismatches: self.mismatches,
            echoes_missing: if self.server_echoed { missing } else { 0 },
            state,
            picked_up: self.picked_up,
            anomalies: self.codes.iter().map(|(_, n)| n).sum(),
            anomaly_counts: {
                let mut c = self.codes.clone();
                c.sort_unstable();
                c
            },
            via: (!self.encap.is_empty()).then(|| self.encap.to_string()),
        }
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

/// The median (the lower one for an even count).
fn median(v: &[u64]) -> Option<u64> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len().checked_sub(1)? / 2).copied()
}

/// `v2`, `v3` or `text`.
pub fn carries_name(c: Carries) -> &'static str {
    match c {
        Carries::Framed(Framing::V2) => "v2",
        Carries::Framed(Framing::V3) => "v3",
        Carries::Text => "text",
    }
}
