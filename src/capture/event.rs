//! What the capture pipeline reports, and the [`Sink`] it reports to.
//!
//! Producers (the session tracker) push events; reporters (text lines,
//! JSON lines, the sessions table) implement [`Sink`]. Nothing here knows
//! how events are printed.

use std::net::SocketAddr;

use super::reassembly::ReassemblyStats;
use super::source::Timestamp;
use crate::codec::{FrameRef, Framing};

/// Direction within a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client to server: requests.
    ToServer,
    /// Server to client: echoes.
    ToClient,
}

impl Dir {
    /// `c>s` or `s>c`.
    pub fn arrow(self) -> &'static str {
        match self {
            Dir::ToServer => "c>s",
            Dir::ToClient => "s>c",
        }
    }

    /// Index 0 for to-server, 1 for to-client.
    pub fn index(self) -> usize {
        match self {
            Dir::ToServer => 0,
            Dir::ToClient => 1,
        }
    }
}

/// Where an event belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Where {
    /// Capture time.
    pub ts: Timestamp,
    /// Session number (TCP connection or UDP flow), from 1.
    pub session: u64,
    /// The client (the side that sent the SYN, or not on the server port).
    pub client: SocketAddr,
    /// The server.
    pub server: SocketAddr,
}

/// How an echo compared with its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoMatch {
    /// Equal to the request, `latency_us` after it.
    Ok {
        /// Microseconds between request and echo (capture timestamps).
        latency_us: u64,
    },
    /// Different bytes from the request it answers.
    Mismatch,
    /// No request was waiting for it.
    Unsolicited,
}

/// TCP control events (printed with `--tcp-events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpWhat {
    /// SYN from the client.
    Syn,
    /// SYN-ACK from the server.
    SynAck,
    /// The handshake completed; RTT from SYN to the client's ACK.
    Established {
        /// Microseconds.
        rtt_us: u64,
    },
    /// A FIN in this direction.
    Fin(Dir),
    /// A RST in this direction.
    Rst(Dir),
    /// A segment that repeated bytes already seen.
    Retransmission(Dir),
    /// First packet of a connection whose SYN was not captured.
    PickedUp,
}

/// One event.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A decoded v2/v3 frame.
    Frame {
        /// Where.
        at: Where,
        /// Direction.
        dir: Dir,
        /// Stream offset of its first byte.
        offset: u64,
        /// Framing.
        framing: Framing,
        /// The frame.
        frame: FrameRef<'a>,
        /// For echoes: how it matched its request.
        echo: Option<EchoMatch>,
    },
    /// Text bytes of a TCP text session (one reassembled chunk).
    Text {
        /// Where.
        at: Where,
        /// Direction.
        dir: Dir,
        /// Stream offset.
        offset: u64,
        /// The bytes.
        data: &'a [u8],
        /// For echoes: how it matched.
        echo: Option<EchoMatch>,
    },
    /// A UDP datagram to or from the port.
    Udp {
        /// Where (session = the UDP flow).
        at: Where,
        /// Direction.
        dir: Dir,
        /// Payload.
        data: &'a [u8],
    },
    /// The framing of a session was decided.
    Detected {
        /// Where.
        at: Where,
        /// `v2`, `v3` or `text`.
        framing: &'static str,
        /// Why, or "forced by --proto".
        reason: String,
    },
    /// TCP control (only printed with `--tcp-events`).
    Tcp {
        /// Where.
        at: Where,
        /// What.
        what: TcpWhat,
    },
    /// A problem, under a stable diagnostic code.
    Diagnostic {
        /// Capture time.
        ts: Timestamp,
        /// Session, when about one.
        at: Option<Where>,
        /// Direction, when about one.
        dir: Option<Dir>,
        /// Stable code (`tcp.gap`, `v3.size_over_max`, ...).
        code: &'static str,
        /// The sentence.
        message: String,
    },
}

/// Per-direction counters of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirSummary {
    /// Frames (or text chunks, or datagrams).
    pub messages: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Reassembly counters (TCP).
    pub reassembly: ReassemblyStats,
    /// v2 only: frames the gaps touched (lost whole, or cut): `messages`
    /// plus these are all the frames sent (see
    /// [`crate::capture::decode::StreamDecoder::frames_in_gaps`]).
    pub frames_in_gaps: Option<u64>,
}

/// A session at its end.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    /// Number, from 1.
    pub id: u64,
    /// TCP or UDP.
    pub transport: &'static str,
    /// Client address (its port: the ephemeral port the lab asks about).
    pub client: SocketAddr,
    /// Server address.
    pub server: SocketAddr,
    /// `v2`, `v3`, `text`, `udp`, or `?` when nothing was sent.
    pub framing: &'static str,
    /// First and last packet times.
    pub first: Timestamp,
    /// Last packet time.
    pub last: Timestamp,
    /// Counters: `[to server, to client]`.
    pub dirs: [DirSummary; 2],
    /// SYN to handshake ACK, microseconds.
    pub handshake_rtt_us: Option<u64>,
    /// Median echo latency, microseconds (over the first
    /// `MAX_LATENCY_SAMPLES` echoes).
    pub echo_latency_p50_us: Option<u64>,
    /// Largest echo latency, microseconds.
    pub echo_latency_max_us: Option<u64>,
    /// Echoes equal to their request.
    pub echoes_ok: u64,
    /// Echoes that differed.
    pub echo_mismatches: u64,
    /// Requests never echoed (when the server echoes at all).
    pub echoes_missing: u64,
    /// Zeek-like state: `SF` closed by FIN both ways, `RST` reset, `S0` SYN
    /// only, `EST` still open at the end, `OTH` picked up without a SYN.
    pub state: &'static str,
    /// Diagnostics reported in this session.
    pub anomalies: u64,
}

/// Totals at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Packets read from the source.
    pub packets: u64,
    /// Packets that could not be parsed (reported individually).
    pub unparsed: u64,
    /// Packets that were not TCP/UDP or outside any session.
    pub ignored: u64,
    /// Sessions seen.
    pub sessions: u64,
    /// Frames decoded.
    pub frames: u64,
    /// Text messages (reassembled chunks of text sessions).
    pub text_messages: u64,
    /// UDP datagrams.
    pub datagrams: u64,
    /// Diagnostics reported.
    pub diagnostics: u64,
    /// Live only: (received, dropped by kernel, dropped by interface).
    pub kernel: Option<(u32, u32, u32)>,
}

/// Receives events as they happen.
pub trait Sink {
    /// Reassembled bytes (or a gap) of one direction of a TCP session, in
    /// stream order, before any decoding: what `--follow` and
    /// `--dump-streams` show. Most sinks ignore it.
    fn stream(&mut self, _at: &Where, _dir: Dir, _chunk: &super::reassembly::Chunk<'_>) {}
    /// One event.
    fn event(&mut self, ev: &Event<'_>);
    /// A session ended (at FIN/RST, expiry, or end of input).
    fn session_end(&mut self, s: &SessionSummary);
    /// The run ended.
    fn finish(&mut self, totals: &Totals);
}

/// Two sinks fed the same events (e.g. the printer and `--dump-streams`).
pub struct Tee<'a>(pub &'a mut dyn Sink, pub &'a mut dyn Sink);

impl Sink for Tee<'_> {
    fn stream(&mut self, at: &Where, dir: Dir, chunk: &super::reassembly::Chunk<'_>) {
        self.0.stream(at, dir, chunk);
        self.1.stream(at, dir, chunk);
    }
    fn event(&mut self, ev: &Event<'_>) {
        self.0.event(ev);
        self.1.event(ev);
    }
    fn session_end(&mut self, s: &SessionSummary) {
        self.0.session_end(s);
        self.1.session_end(s);
    }
    fn finish(&mut self, totals: &Totals) {
        self.0.finish(totals);
        self.1.finish(totals);
    }
}
