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
    /// A segment that arrived ahead of a hole in the stream (Wireshark's
    /// `[TCP Out-Of-Order]` or `[TCP Previous segment not captured]`): held
    /// until the hole fills, or reported as a gap.
    OutOfOrder(Dir),
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
        /// The datagram is longer than what was captured (the snap
        /// length, or IP fragments that never all came).
        truncated: bool,
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
        /// The numbers in the sentence, as fields (`offset`, `length`, ...),
        /// so a script never parses English.
        facts: Facts,
    },
}

/// One fact of a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// A number.
    Num(u64),
    /// A text (an address, a name).
    Text(String),
}

/// A diagnostic's facts, by name (names never `type`, `time`, `session`,
/// `dir`, `code` or `message`).
pub type Facts = Vec<(&'static str, Fact)>;

/// Per-direction counters of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirSummary {
    /// Packets (Zeek's `orig_pkts` / `resp_pkts`).
    pub packets: u64,
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
    /// The capture began after the connection did: no handshake seen.
    pub picked_up: bool,
    /// Diagnostics reported in this session, plus retransmitted,
    /// out-of-order and snapped segments.
    pub anomalies: u64,
    /// The same, by code, in code order.
    pub anomaly_counts: Vec<(&'static str, u64)>,
    /// VLAN tags, labels and tunnels its first packet came through, if any.
    pub via: Option<String>,
}

/// Totals at the end of a run. Every packet read is either in a session or
/// counted under exactly one cause: `packets` equals `in_sessions` plus
/// [`Totals::not_in_sessions`].
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Packets read from the source (that the BPF filter let through).
    pub packets: u64,
    /// Packets a file's BPF filter rejected (not in `packets`).
    pub filtered: u64,
    /// Packets counted in a session.
    pub in_sessions: u64,
    /// Frames with no IP in them (ARP, STP, LLDP, 802.11 management, ...).
    pub not_ip: u64,
    /// Frames encrypted below IP or TCP/UDP (802.11 protected, MACsec, ESP).
    pub encrypted: u64,
    /// IP packets of another protocol (ICMP, OSPF, ...).
    pub not_tcp_udp: u64,
    /// Packets that could not be parsed (reported one by one).
    pub unparsed: u64,
    /// Packets of a pcapng interface whose link type rc1 does not read.
    pub unsupported_link: u64,
    /// TCP/UDP packets on neither side of `--port` (only when no `-f`
    /// filter is given: `-f` selects instead).
    pub other_port: u64,
    /// IP fragments that went into a reassembled datagram (the fragment
    /// that completed it is counted where the datagram went), and
    /// duplicate fragments.
    pub fragments: u64,
    /// Fragments of datagrams that could not be reassembled (reported).
    pub fragments_dropped: u64,
    /// TCP packets of a session that had already ended (a late
    /// retransmission or ACK after FIN or RST).
    pub after_session: u64,
    /// Sessions seen.
    pub sessions: u64,
    /// Frames decoded.
    pub frames: u64,
    /// Text messages (reassembled chunks of text sessions).
    pub text_messages: u64,
    /// UDP datagrams.
    pub datagrams: u64,
    /// Datagrams reassembled from IP fragments.
    pub reassembled: u64,
    /// Diagnostics reported.
    pub diagnostics: u64,
    /// Live only: (received, dropped by kernel, dropped by interface).
    pub kernel: Option<(u32, u32, u32)>,
}

impl Totals {
    /// Packets not in any session, by cause, in a fixed order (the JSON
    /// keys of `not_in_sessions`).
    pub fn causes(&self) -> [(&'static str, u64); 9] {
        [
            ("not_ip", self.not_ip),
            ("encrypted", self.encrypted),
            ("not_tcp_udp", self.not_tcp_udp),
            ("unparsed", self.unparsed),
            ("unsupported_link", self.unsupported_link),
            ("other_port", self.other_port),
            ("fragments", self.fragments),
            ("fragments_dropped", self.fragments_dropped),
            ("after_session", self.after_session),
        ]
    }

    /// Packets read that are in no session.
    pub fn not_in_sessions(&self) -> u64 {
        self.causes().iter().map(|(_, n)| n).sum()
    }
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
