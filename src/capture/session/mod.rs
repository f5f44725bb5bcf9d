//! Sessions: the TCP connections and UDP flows, each with its handshake,
//! reassembly per direction, framing, and echo matching. The [`Tracker`]
//! takes parsed packets in capture order and pushes [`Event`]s to a
//! [`Sink`].
//!
//! Here is the flow table ([`Tracker`]: finding a packet's session,
//! making, expiring and ending sessions); `conn` is one connection's
//! state (handshake, close, reassembly, framing detection, decoding),
//! [`echo`] its echo matching, `summary` what it comes to at the end.
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
use std::net::SocketAddr;

use crate::capture::decode::Carries;
use crate::capture::event::{Dir, Event, Sink, TcpWhat, Totals, Where};
use crate::capture::event::{Fact, Facts};
use crate::capture::packet::{Encap, Packet, Tcp, Transport};
use crate::capture::reassembly::{Chunk, Reassembler};
use crate::capture::source::Timestamp;
use crate::codec::detect::Stage;
use crate::spec;

use conn::{Half, Session};
use echo::Echoes;
pub use echo::{MAX_LATENCY_SAMPLES, MAX_PENDING};

/// The flow table's hasher: foldhash, seeded per process (keys come off
/// the wire, so the seed keeps a crafted capture from choosing
/// collisions), and several times cheaper than SipHash on a packet's two
/// socket addresses.
type FlowHasher = foldhash::fast::RandomState;

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
    /// Framing files given (`--framing`), in order: with `--proto auto`
    /// each is tried before the built-in rules
    /// ([`crate::codec::detect::detect_with`]); their ports are lab ports
    /// too (echoes are checked there).
    pub framings: &'static [crate::codec::Framing],
}

mod conn;
pub mod echo;
mod summary;

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
            // Only the lab's servers echo: a session on another port (with
            // `-f`) has no echoes to check.
            echo: Echoes::new(
                server.port() == self.opts.port
                    || self
                        .opts
                        .framings
                        .iter()
                        .any(|f| f.def().is_some_and(|d| d.port == server.port())),
            ),
            customs: self.opts.framings,
            gap_seen: [false; 2],
            fed_ts: [Timestamp::default(); 2],
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
            if s.echo.untracked > 0 {
                s.report(
                    ts,
                    Dir::ToServer,
                    spec::ECHO_UNTRACKED.code,
                    format!(
                        "{} request(s) waited so long for an echo that they were no longer tracked (at most {MAX_PENDING} are)",
                        s.echo.untracked
                    ),
                    vec![("requests", Fact::Num(s.echo.untracked))],
                    &mut self.totals,
                    sink,
                );
            }
            let missing = s.echo.waiting_units();
            if missing > 0 && s.echo.server_echoed {
                let what = if s.echo.is_text() {
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
                        if s.echo.is_text() {
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

/// `v2`, `v3` or `text`.
pub fn carries_name(c: Carries) -> &'static str {
    match c {
        Carries::Framed(f) => f.name(),
        Carries::Text => "text",
    }
}
