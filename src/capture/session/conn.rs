//! One connection (or UDP flow): its handshake and close, each
//! direction's reassembly, the framing decision, decoding, and the events
//! and anomalies it reports. The flow table ([`super::Tracker`]) owns the
//! sessions and feeds them packets.

use std::net::SocketAddr;

use super::echo::Echoes;
use super::{DETECT_LIMIT, Step, carries_name};
use crate::capture::decode::{Carries, Decoded, StreamDecoder};
use crate::capture::event::{Dir, EchoMatch, Event, Fact, Facts, Sink, Totals, Where};
use crate::capture::packet::Encap;
use crate::capture::reassembly::{Chunk, Reassembler};
use crate::capture::source::Timestamp;
use crate::codec::detect::{Aligned, Detected, Stage, detect_midstream_with, detect_with};
use crate::codec::escape::escape;
use crate::spec;

/// A chunk held before the framing is known, with its capture time.
pub(super) enum Held {
    Data(u64, Vec<u8>, Timestamp),
    Gap(u64, u64, Timestamp),
}

pub(super) struct Half {
    /// Boxed, so [`Session::reassemble`] can lend it out by moving a pointer.
    pub(super) reasm: Box<Reassembler>,
    pub(super) held: Vec<Held>,
    pub(super) held_bytes: usize,
    pub(super) messages: u64,
    pub(super) bytes: u64,
}

impl Half {
    pub(super) fn new(max_buffered: usize) -> Half {
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
    pub(super) fn prefix(&self) -> Vec<u8> {
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

pub(super) struct Session {
    /// Takes a direction's reassembler's place while it is lent out.
    pub(super) stand_in: Option<Box<Reassembler>>,
    pub(super) id: u64,
    pub(super) udp: bool,
    pub(super) client: SocketAddr,
    pub(super) server: SocketAddr,
    pub(super) first: Timestamp,
    pub(super) last: Timestamp,
    pub(super) syn: Option<Timestamp>,
    pub(super) synack: bool,
    pub(super) established: bool,
    pub(super) rtt_us: Option<u64>,
    pub(super) picked_up: bool,
    pub(super) fin: [bool; 2],
    pub(super) rst: bool,
    pub(super) halves: [Half; 2],
    pub(super) decoders: Option<Box<[StreamDecoder; 2]>>,
    pub(super) framing: Option<Carries>,
    /// Requests waiting for echoes, and what the echoes were.
    pub(super) echo: Echoes,
    /// Time of the last data fed to each direction.
    pub(super) fed_ts: [Timestamp; 2],
    /// A gap was seen in each direction.
    pub(super) gap_seen: [bool; 2],
    /// Packets per direction.
    pub(super) packets: [u64; 2],
    /// Anomalies by code (few kinds: a short list).
    pub(super) codes: Vec<(&'static str, u64)>,
    /// Sequence number of each direction's FIN, once seen.
    pub(super) fin_seq: [Option<u32>; 2],
    /// Each direction's FIN was acknowledged by the other side.
    pub(super) fin_acked: [bool; 2],
    /// Closed (both FINs in and delivered) but waiting for the last ACK,
    /// which belongs to the session: since when.
    pub(super) closing: Option<Timestamp>,
    /// The layers its first packet came through.
    pub(super) encap: Encap,
    /// Each direction's sequence number of stream offset 0, once known
    /// (the reassembler's, kept here while it is lent out).
    pub(super) origin: [Option<u32>; 2],
    /// Picked up mid-stream: held bytes at which to judge the framing
    /// again while they stream in.
    pub(super) next_judgement: usize,
    /// Framing files to try first (`--framing`).
    pub(super) customs: &'static [crate::codec::Framing],
}

impl Session {
    /// The direction of a packet sent by `src`.
    pub(super) fn dir_of(&self, src: SocketAddr) -> Dir {
        if src == self.client {
            Dir::ToServer
        } else {
            Dir::ToClient
        }
    }

    /// Whether a SYN with `isn` from the client starts a new connection on
    /// these addresses: the old one ended, or it already had another ISN.
    pub(super) fn is_over_or_new_isn(&self, isn: u32) -> bool {
        let ended = self.rst || self.fin[0] || self.fin[1];
        let other_isn = self.halves[0]
            .reasm
            .origin()
            .is_some_and(|o| o != isn.wrapping_add(1));
        ended || other_isn
    }

    pub(super) fn at(&self, ts: Timestamp) -> Where {
        Where {
            ts,
            session: self.id,
            client: self.client,
            server: self.server,
        }
    }

    /// Counts an anomaly under `code` (no event of its own).
    pub(super) fn count(&mut self, code: &'static str) {
        match self.codes.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n = n.saturating_add(1),
            None => self.codes.push((code, 1)),
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "a diagnostic's parts, then where it goes"
    )]
    pub(super) fn report(
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
    pub(super) fn decide(
        &mut self,
        carries: Carries,
        reason: String,
        max_frame: u32,
        sink: &mut dyn Sink,
    ) {
        self.framing = Some(carries);
        // Picked up mid-stream, each direction finds its own first frame
        // boundary.
        let new = if self.picked_up {
            StreamDecoder::midstream
        } else {
            StreamDecoder::new
        };
        self.decoders = Some(Box::new([new(carries, max_frame), new(carries, max_frame)]));
        self.echo.carries(carries);
        sink.event(&Event::Detected {
            at: self.at(self.last),
            framing: carries_name(carries),
            reason,
        });
    }

    /// Tries to decide the framing from the held client bytes (the
    /// server's when the client sent nothing yet). A session picked up
    /// mid-stream is judged at every alignment, in both directions.
    pub(super) fn detect(&mut self, stage: Stage, max_frame: u32, sink: &mut dyn Sink) -> bool {
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
        let Some(d) = detect_with(self.customs, &sample, stage, max_frame) else {
            return false;
        };
        let carries = match d.detected {
            Detected::Framed(f) => Carries::Framed(f),
            Detected::Text => Carries::Text,
        };
        self.decide(carries, d.reason, max_frame, sink);
        true
    }

    pub(super) fn detect_midstream(
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
        let customs = self.customs;
        let judge = |b: &[u8]| {
            (!b.is_empty())
                .then(|| detect_midstream_with(customs, b, stage_of(b), max_frame))
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
    pub(super) fn replay(&mut self, totals: &mut Totals, sink: &mut dyn Sink) {
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
    pub(super) fn reassemble(
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
    pub(super) fn feed_one(
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

    pub(super) fn feed(
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

    pub(super) fn decode(
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

    pub(super) fn emit(
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
                let echo = self.echo.frame(dir, frame.order, frame.raw, ts);
                for diag in frame.diagnostics(framing) {
                    if diag.code == spec::V2_SIZE_OVER_20.code {
                        continue; // shown as "(cut)" on the frame line itself
                    }
                    if diag.code == spec::FRAMING_UNEXPECTED_VALUE.code
                        && let Some(def) = framing.def()
                        && let Ok(values) = def.spec.read(frame.raw, u64::MAX)
                    {
                        // Which field, what it holds, what the file expects.
                        for note in crate::framing::codec::notes(def, &values) {
                            self.report(
                                ts,
                                dir,
                                diag.code,
                                format!(
                                    "{} is {}, the framing file expects {} (expect); the frame is still decoded (frame at offset {offset})",
                                    note.field, note.got, note.want
                                ),
                                vec![
                                    ("offset", Fact::Num(offset)),
                                    ("order", Fact::Num(frame.order.into())),
                                ],
                                totals,
                                sink,
                            );
                        }
                        continue;
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
                let echo = self.echo.text(dir, data, ts);
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
            Decoded::Faulty {
                offset,
                framing,
                frame,
                error,
            } => {
                // Said first, then the frame itself with its fields (the
                // JSON line names the checksum field that fails).
                let mut facts = vec![
                    ("offset", Fact::Num(offset)),
                    ("length", Fact::Num(frame.raw.len() as u64)),
                ];
                if framing.def().is_some_and(|d| d.echo_key.is_some()) {
                    facts.push(("order", Fact::Num(frame.order.into())));
                }
                self.report(
                    ts,
                    dir,
                    error.diagnostic().code,
                    format!(
                        "at offset {offset}: {error}; its lengths and constants hold, so the frame is shown and decoding goes on after its {} byte(s)",
                        frame.raw.len()
                    ),
                    facts,
                    totals,
                    sink,
                );
                self.emit(
                    dir,
                    Decoded::Frame {
                        offset,
                        framing,
                        frame,
                    },
                    ts,
                    totals,
                    sink,
                );
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
}
