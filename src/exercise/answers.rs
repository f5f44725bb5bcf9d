//! The exercise's questions answered from what a run measured: every number
//! in an answer comes from the run's capture, its server's log or its
//! clients' sockets; the words around them explain the lab.

use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;

use serde_json::{Map, Value, json};

use super::observe::{SeenFrame, Segment};
use super::script::{SPLIT_ORDER, V3_LARGE};
use super::{Exercise, LogLine, Run, Wire};
use crate::capture::event::{Dir, EchoMatch, SessionSummary};
use crate::capture::output::hex;
use crate::capture::source::Timestamp;
use crate::codec::escape::escape;
use crate::spec::{self, FieldKind, FramingSpec};
use crate::units::micros;

/// One question of the exercise, answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `4.2`.
    pub question: String,
    /// What the guide asks, in short.
    pub asks: &'static str,
    /// The answer, a paragraph a line (hex panes included).
    pub lines: Vec<String>,
    /// The measured facts behind it.
    pub facts: Map<String, Value>,
}

impl Answer {
    fn new(ex: Exercise, part: u8, asks: &'static str) -> Answer {
        Answer {
            question: format!("{}.{part}", ex.number),
            asks,
            lines: Vec::new(),
            facts: Map::new(),
        }
    }

    fn say(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    fn fact(&mut self, key: &str, v: Value) {
        self.facts.insert(key.to_string(), v);
    }
}

/// Seconds from `t0` to `t`, as the ladder's time column shows them.
fn rel(t: Timestamp, t0: Timestamp) -> String {
    let us = (t.sec - t0.sec) * 1_000_000 + i64::from(t.usec) - i64::from(t0.usec);
    format!("+{:.6} s", us as f64 / 1e6)
}

fn us_between(a: Timestamp, b: Timestamp) -> u64 {
    let us = (b.sec - a.sec) * 1_000_000 + i64::from(b.usec) - i64::from(a.usec);
    u64::try_from(us).unwrap_or(0)
}

fn secs(t: Timestamp) -> f64 {
    t.as_secs_f64()
}

/// The text a frame's message shows (escaped, cut to `max` characters).
fn shown(b: &[u8], max: usize) -> String {
    let s = escape(b);
    if s.chars().count() > max {
        let mut c: String = s.chars().take(max).collect();
        c.push('…');
        c
    } else {
        s
    }
}

/// A field's place, from the spec: `bytes 9-28  message  20s  ...`.
fn layout(spec: &FramingSpec) -> Vec<String> {
    spec.fields
        .iter()
        .map(|f| {
            let (code, what) = match f.kind {
                FieldKind::U8 => ("B".to_string(), "unsigned char".to_string()),
                FieldKind::U32Be => ("L".to_string(), "unsigned 32 bits, big-endian".to_string()),
                FieldKind::FixedBytes { pad, len_by } => (
                    format!("{}s", f.width),
                    format!(
                        "first min({len_by}, {}) bytes, then '{}' pad",
                        f.width,
                        char::from(pad)
                    ),
                ),
                FieldKind::SizedBy(by) => ("-".to_string(), format!("exactly `{by}` bytes")),
                FieldKind::Int {
                    width,
                    signed,
                    big_endian,
                } => (
                    format!("{}{}", if signed { "i" } else { "u" }, u32::from(width) * 8),
                    format!(
                        "{} {} bits, {}",
                        if signed { "signed" } else { "unsigned" },
                        u32::from(width) * 8,
                        if big_endian {
                            "big-endian"
                        } else {
                            "little-endian"
                        }
                    ),
                ),
                FieldKind::Bytes { pad } => (
                    format!("{}s", f.width),
                    format!("bytes, trailing {pad:#04x} stripped"),
                ),
            };
            let at = match f.width {
                0 => format!("from byte {}", f.offset),
                1 => format!("byte {}", f.offset),
                w => format!("bytes {}-{}", f.offset, f.offset + w - 1),
            };
            format!("    {at:<11} {:<8} {code:<4} {what}", f.name)
        })
        .collect()
}

/// The bytes pane of a frame that was seen, with where its segments began.
fn pane(run: &Run, f: &SeenFrame, spec: &FramingSpec, width: usize) -> String {
    let segs = run
        .observed
        .segments_of(f.at.session, f.dir, f.offset, f.len);
    let starts: Vec<usize> = segs
        .iter()
        .filter(|s| s.offset > 0)
        .filter_map(|s| usize::try_from(s.offset).ok())
        .filter(|&s| s < f.raw.len())
        .collect();
    let bytes: Vec<Option<u8>> = f.raw.iter().copied().map(Some).collect();
    let mut pane = String::new();
    hex::frame_pane(&mut pane, spec, &bytes, &starts, width.saturating_sub(2));
    // Indented as the answer's text.
    let mut out = String::new();
    for l in pane.lines() {
        let _ = writeln!(out, "  {l}");
    }
    if (f.raw.len() as u64) < f.len {
        let _ = writeln!(out, "  (the first {} of its {} bytes)", f.raw.len(), f.len);
    }
    out
}

fn port_range_text(run: &Run) -> String {
    match run.port_range {
        Some((lo, hi)) => format!(
            "{lo}–{hi} (this machine's /proc/sys/net/ipv4/ip_local_port_range; IANA's is 49152–65535)"
        ),
        None => "the ephemeral range (Linux: /proc/sys/net/ipv4/ip_local_port_range)".to_string(),
    }
}

fn in_range(run: &Run, port: u16) -> Option<bool> {
    run.port_range.map(|(lo, hi)| (lo..=hi).contains(&port))
}

/// Sessions in order of their first packet.
fn sessions(run: &Run) -> Vec<&SessionSummary> {
    let mut s: Vec<&SessionSummary> = run.observed.sessions.iter().collect();
    s.sort_by_key(|s| (s.first, s.id));
    s
}

fn t0(run: &Run) -> Timestamp {
    sessions(run)
        .first()
        .map_or_else(Timestamp::default, |s| s.first)
}

/// Where the wire facts come from, said on every answer that uses them.
fn wire_note(run: &Run) -> Option<String> {
    match &run.wire {
        Wire::Live { .. } => None,
        Wire::Fixture { name, .. } => Some(format!(
            "(The packets, sessions, echoes and segments in this answer are from the shipped \
             {name}, an earlier run of this exercise, not from this run, which could not \
             capture: their ports, times and counts differ from this run's. The server's log \
             and the clients' ports are this run's.)"
        )),
    }
}

fn clients_facts(run: &Run) -> Value {
    Value::Array(
        run.exchange
            .clients
            .iter()
            .map(|c| {
                json!({
                    "local": c.local.to_string(),
                    "port": c.local.port(),
                    "in_ephemeral_range": in_range(run, c.local.port()),
                    "sent": c.sent,
                    "echoes_ok": c.echoes_ok,
                })
            })
            .collect(),
    )
}

/// The source ports: the clients' own sockets, and on the wire.
fn ports(run: &Run, a: &mut Answer, when: &str) {
    let mut ports = Vec::new();
    for (i, c) in run.exchange.clients.iter().enumerate() {
        ports.push(format!("client {} got {}", i + 1, c.local));
    }
    a.say(format!(
        "Source ports: {}. The OS chose them {when}: the lab's client never calls bind(), \
         so the kernel takes a free port from {}.",
        ports.join(", "),
        port_range_text(run)
    ));
    let all_in = run
        .exchange
        .clients
        .iter()
        .all(|c| in_range(run, c.local.port()).unwrap_or(true));
    if !all_in {
        a.say("Note: a port is outside the range: something bound it explicitly.");
    }
    let wire: Vec<String> = sessions(run)
        .iter()
        .map(|s| format!("#{} {}", s.id, s.client))
        .collect();
    if !wire.is_empty() {
        a.say(match run.wire {
            Wire::Live { .. } => format!(
                "On the wire the same ports are the source of every packet a client sends \
                 (sessions: {}), and the destination of whatever the server sends back.",
                wire.join(", ")
            ),
            Wire::Fixture { name, .. } => format!(
                "In the shipped {name} the clients had other ports (sessions: {}): a new \
                 run, a new choice.",
                wire.join(", ")
            ),
        });
    }
    a.say(format!(
        "The server's port is fixed ({}) because a client must know where to reach it \
         before anything is exchanged; the client's need not be: the server learns it from \
         each packet (recvfrom()/accept() return (ip, port)). Random ports also let many \
         clients on one machine talk to the same server without clashing.",
        run.server.port()
    ));
    a.fact("clients", clients_facts(run));
    a.fact("server_port", json!(run.server.port()));
    a.fact(
        "ephemeral_range",
        run.port_range
            .map_or(Value::Null, |(lo, hi)| json!([lo, hi])),
    );
}

/// Handshakes, RTTs and ends of the TCP sessions.
fn handshakes(run: &Run, a: &mut Answer) {
    let ss = sessions(run);
    let t0 = t0(run);
    let mut parts = Vec::new();
    let mut facts = Vec::new();
    for s in &ss {
        let rtt = s.handshake_rtt_us.map_or("not seen".to_string(), micros);
        parts.push(format!(
            "#{} from port {} at {} (SYN → SYN-ACK → ACK in {rtt}), ended {}",
            s.id,
            s.client.port(),
            rel(s.first, t0),
            match s.state {
                "SF" => "by FIN both ways",
                "RST" => "by a RST",
                "EST" => "still open when the capture stopped",
                _ => "without a full close",
            }
        ));
        facts.push(json!({
            "session": s.id,
            "client": s.client.to_string(),
            "server": s.server.to_string(),
            "handshake_rtt_us": s.handshake_rtt_us,
            "state": s.state,
            "first": secs(s.first),
            "last": secs(s.last),
            "messages_to_server": s.dirs[0].messages,
            "messages_to_client": s.dirs[1].messages,
            "echo_p50_us": s.echo_latency_p50_us,
        }));
    }
    if !parts.is_empty() {
        a.say(format!(
            "Sessions: each client's connect() is one TCP session, the 4-tuple \
             (client ip, client port, server ip, server port) — same server port, a \
             different client port each, so the kernel (and Wireshark's tcp.stream) keeps \
             them apart. Each begins with the three-way handshake: {}.",
            parts.join("; ")
        ));
    }
    a.fact("sessions", Value::Array(facts));
}

/// When every session was open at once, if ever.
fn overlap(run: &Run) -> Option<(Timestamp, Timestamp)> {
    let ss = sessions(run);
    if ss.len() < 2 {
        return None;
    }
    let from = ss.iter().map(|s| s.first).max()?;
    let to = ss.iter().map(|s| s.last).min()?;
    (from < to).then_some((from, to))
}

/// The order messages crossed the wire, by client: `1 2 1 2`.
fn interleaving(run: &Run) -> String {
    let mut ids: Vec<(Timestamp, u64)> = run
        .observed
        .texts
        .iter()
        .filter(|m| m.dir == Dir::ToServer)
        .map(|m| (m.at.ts, m.at.session))
        .chain(
            run.observed
                .frames
                .iter()
                .filter(|f| f.dir == Dir::ToServer)
                .map(|f| (f.at.ts, f.at.session)),
        )
        .collect();
    ids.sort();
    ids.iter()
        .map(|(_, s)| format!("#{s}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn echo_line(run: &Run, a: &mut Answer) {
    let ss = sessions(run);
    let ok: u64 = ss.iter().map(|s| s.echoes_ok).sum();
    let bad: u64 = ss.iter().map(|s| s.echo_mismatches).sum();
    let missing: u64 = ss.iter().map(|s| s.echoes_missing).sum();
    let p50: Vec<String> = ss
        .iter()
        .filter_map(|s| {
            s.echo_latency_p50_us
                .map(|p| format!("#{} {}", s.id, micros(p)))
        })
        .collect();
    let (wire, clients) = match run.wire {
        Wire::Live { .. } => (
            "Echoes on the wire".to_string(),
            "The clients checked them too",
        ),
        Wire::Fixture { name, .. } => (
            format!("Echoes in the shipped {name}"),
            "This run's clients checked theirs",
        ),
    };
    a.say(format!(
        "{wire}: {ok} equal to their request, {bad} different, {missing} missing; echo \
         time p50 by session: {}. {clients}: {} of {} echoes equal to what was sent.",
        if p50.is_empty() {
            "none".to_string()
        } else {
            p50.join(", ")
        },
        run.exchange
            .clients
            .iter()
            .map(|c| c.echoes_ok)
            .sum::<usize>(),
        run.exchange.clients.iter().map(|c| c.sent).sum::<usize>(),
    ));
    a.fact("echoes_ok", json!(ok));
    a.fact("echo_mismatches", json!(bad));
    a.fact("echoes_missing", json!(missing));
}

fn log_of<'a>(run: &'a Run, event: &'a str) -> impl Iterator<Item = &'a LogLine> + 'a {
    run.log.iter().filter(move |l| l.event() == event)
}

fn accepted(run: &Run, a: &mut Answer, what: &str) {
    let acc: Vec<String> = log_of(run, "accept")
        .map(|l| {
            let token = l
                .num("token")
                .map(|t| format!(", selector token {t}"))
                .unwrap_or_default();
            format!(
                "#{} from {} ({} open{token})",
                l.num("conn").unwrap_or(0),
                l.str("peer").unwrap_or("?"),
                l.num("active").unwrap_or(0)
            )
        })
        .collect();
    let listening = log_of(run, "listening")
        .next()
        .and_then(|l| l.str("addr").map(str::to_string))
        .unwrap_or_else(|| run.server.to_string());
    a.say(format!(
        "The server (rc1's, in place of {}) listened on {listening} (the lab's binds \
         0.0.0.0:5005: every IPv4 address of the machine; this run keeps to loopback) and \
         accepted {} connection(s): {}; {what}",
        run.exercise.python_server(),
        acc.len(),
        acc.join(", ")
    ));
    a.fact("accepted", json!(acc.len()));
}

fn udp_answers(run: &Run, out: &mut Vec<Answer>) {
    let ex = run.exercise;
    let t0 = t0(run);
    if ex.wants(1) {
        let mut a = Answer::new(ex, 1, "the UDP server prints every datagram");
        let dgrams: Vec<String> = log_of(run, "datagram")
            .map(|l| {
                format!(
                    "{} \"{}\"",
                    l.str("peer").unwrap_or("?"),
                    l.str("message").unwrap_or("")
                )
            })
            .collect();
        a.say(format!(
            "The server bound {} (the lab's binds 0.0.0.0:5005) and printed {} datagram(s), \
             each with its sender's ip:port, as recvfrom() returns them: {}. It never \
             answers: the lab's server has no sendto().",
            run.server,
            dgrams.len(),
            dgrams.join(", ")
        ));
        a.fact("datagrams_printed", json!(dgrams.len()));
        out.push(a);
    }
    if ex.wants(2) {
        let mut a = Answer::new(ex, 2, "explain the clients' source UDP ports");
        ports(run, &mut a, "at each client's first sendto()");
        let d = &run.observed.datagrams;
        let to_server = d.iter().filter(|m| m.dir == Dir::ToServer).count();
        let back = d.len() - to_server;
        let mut per: Vec<String> = Vec::new();
        for s in sessions(run) {
            let n = d
                .iter()
                .filter(|m| m.at.session == s.id && m.dir == Dir::ToServer)
                .count();
            let sizes: Vec<String> = d
                .iter()
                .filter(|m| m.at.session == s.id && m.dir == Dir::ToServer)
                .map(|m| m.len.to_string())
                .collect();
            per.push(format!(
                "port {} sent {n} ({} bytes, first at {})",
                s.client.port(),
                sizes.join(", "),
                rel(s.first, t0)
            ));
        }
        a.say(format!(
            "No connection and no handshake: each client's first packet already carries its \
             message (no SYN in the ladder). One sendto() is one datagram, UDP length = \
             message + 8 header bytes: {to_server} datagram(s) to the server — {} — and \
             {back} back{}.",
            per.join("; "),
            if back > 0 {
                " (from a server that answers: rc1 server --proto udp --echo; the lab's does not)"
            } else {
                ""
            }
        ));
        a.fact("datagrams_to_server", json!(to_server));
        a.fact("datagrams_to_client", json!(back));
        out.push(a);
    }
}

fn text_answers(run: &Run, out: &mut Vec<Answer>) {
    let ex = run.exercise;
    let sel = ex.number == 3;
    let t0 = t0(run);
    if ex.wants(1) {
        let mut a = Answer::new(
            ex,
            1,
            if sel {
                "a selector server prints every message and echoes it"
            } else {
                "a thread-per-client server prints every message and echoes it"
            },
        );
        let reads = log_of(run, "text").count();
        accepted(
            run,
            &mut a,
            &format!(
                "it printed {reads} recv() result(s) and sent each one back unchanged (the ECHO)."
            ),
        );
        a.fact("reads", json!(reads));
        echo_line(run, &mut a);
        out.push(a);
    }
    if ex.wants(2) {
        let mut a = Answer::new(
            ex,
            2,
            if sel {
                "how the selector server handles several clients (selectors, keys)"
            } else {
                "source ports, how sessions are created, one thread per client"
            },
        );
        ports(run, &mut a, "at connect()");
        handshakes(run, &mut a);
        let order = interleaving(run);
        match overlap(run) {
            Some((from, to)) => {
                let n = sessions(run).len();
                a.say(format!(
                    "Concurrency: {} were open at once from {} to {} ({} ms; the ladder's \
                     rows between those times), and their messages crossed the wire \
                     interleaved, session by session: {order}.",
                    if n == 2 {
                        "both sessions".to_string()
                    } else {
                        format!("all {n} sessions")
                    },
                    rel(from, t0),
                    rel(to, t0),
                    us_between(from, to) / 1000
                ));
                a.fact(
                    "all_open",
                    json!({"from": secs(from), "to": secs(to), "us": us_between(from, to)}),
                );
            }
            None => a.say("The sessions did not overlap in this capture."),
        }
        a.fact("message_order", json!(order));
        if sel {
            let mut regs = Vec::new();
            for l in log_of(run, "accept") {
                regs.push(format!(
                    "token {} ← {}",
                    l.num("token").map_or("?".to_string(), |t| t.to_string()),
                    l.str("peer").unwrap_or("?")
                ));
            }
            let wakes = log_of(run, "text").count();
            let closes = log_of(run, "close").count();
            a.say(format!(
                "One thread, one selector: the server registered the listening socket, then \
                 each accepted socket with its own key ({}). Each time a key's socket became \
                 readable the selector woke the one thread, which read that socket only: {wakes} \
                 wake-ups with data and {closes} with recv() = b'' (the client closed: \
                 unregister, close). No socket blocks: a slow client cannot hold up the others, \
                 and no thread per client is created.",
                regs.join(", ")
            ));
            a.fact("selector_keys", json!(regs));
            a.fact("selector_wakeups_with_data", json!(wakes));
            a.fact("closes", json!(closes));
        } else {
            let threads: Vec<String> = log_of(run, "accept")
                .map(|l| {
                    format!(
                        "#{} for {}",
                        l.num("conn").unwrap_or(0),
                        l.str("peer").unwrap_or("?")
                    )
                })
                .collect();
            a.say(format!(
                "One thread per client: accept() returned a new socket for each connection and \
                 the server started a thread for it ({}); each thread loops on its own \
                 recv()/send() until its client closes, so one client waiting to type never \
                 blocks the other. The listening socket keeps accepting in the main thread.",
                threads.join(", ")
            ));
            a.fact("threads", json!(threads.len()));
        }
        let reads = log_of(run, "text").count();
        a.say(format!(
            "Message boundaries: the server's {reads} recv() call(s) each returned one whole \
             message here, because each send() was one small segment on an idle loopback; TCP \
             does not promise it (a recv() may return part of a message, or two)."
        ));
        out.push(a);
    }
}

fn split_frames(run: &Run) -> Vec<(&SeenFrame, Vec<Segment>)> {
    run.observed
        .frames
        .iter()
        .filter(|f| f.dir == Dir::ToServer)
        .map(|f| {
            (
                f,
                run.observed
                    .segments_of(f.at.session, f.dir, f.offset, f.len),
            )
        })
        .filter(|(_, s)| s.len() > 1)
        .collect()
}

fn segment_list(segs: &[Segment]) -> String {
    let t = segs.first().map(|s| s.ts);
    segs.iter()
        .map(|s| {
            let after = t.map(|t| us_between(t, s.ts)).unwrap_or(0);
            if after == 0 {
                format!("{} B", s.len)
            } else {
                format!("{} B {} later", s.len, micros(after))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn framed_answers(run: &Run, out: &mut Vec<Answer>, width: usize) {
    let ex = run.exercise;
    let v2 = ex.number == 4;
    let spec: &FramingSpec = if v2 { &spec::V2 } else { &spec::V3 };
    let requests: Vec<&SeenFrame> = run
        .observed
        .frames
        .iter()
        .filter(|f| f.dir == Dir::ToServer)
        .collect();
    if ex.wants(1) {
        let mut a = Answer::new(
            ex,
            1,
            if v2 {
                "the server reads fixed-size binary frames (!BLL20s)"
            } else {
                "the server reads variable-size binary frames (!BLL + size bytes)"
            },
        );
        let frames: Vec<String> = log_of(run, "frame")
            .map(|l| {
                format!(
                    "order={} size={}",
                    l.num("order").unwrap_or(0),
                    l.num("size").unwrap_or(0)
                )
            })
            .collect();
        accepted(
            run,
            &mut a,
            &format!(
                "it read {} whole frame(s) ({}) and printed version, order, size and message of \
                 each.",
                frames.len(),
                frames.join(", ")
            ),
        );
        a.fact("frames_read", json!(frames.len()));
        out.push(a);
    }
    if ex.wants(2) {
        let mut a = Answer::new(ex, 2, "how the data is sent and decoded");
        a.say(format!(
            "The client packs each message with struct.pack('{}'{}): '!' is network byte \
             order (big-endian) with standard sizes, so L is 4 bytes. Field by field (from \
             rc1's field spec, the same that generates the Wireshark dissector):",
            spec.python_format,
            if v2 { "" } else { " + message" }
        ));
        for l in layout(spec) {
            a.say(l);
        }
        if v2 {
            a.say(format!(
                "Every frame is {} bytes, whatever was typed.",
                spec.fixed_len()
            ));
        } else {
            a.say(format!(
                "The header is {} bytes; the frame is 9 + size bytes, so the reader must read \
                 the header first to know how much follows.",
                spec.fixed_len()
            ));
        }
        let lens: Vec<Value> = requests
            .iter()
            .map(|f| json!({"order": f.order, "size": f.size, "bytes": f.len, "cut": f.cut}))
            .collect();
        a.fact("frames", Value::Array(lens));
        // The example: a short message, as the lab's students type them.
        let example = requests
            .iter()
            .find(|f| f.size > 0 && f.size as usize <= spec::V2_MESSAGE_WIDTH)
            .or(requests.first());
        if let Some(f) = example {
            a.say(format!(
                "Frame order={} as it crossed the wire (size={}: the message is its first {} \
                 byte(s){}):",
                f.order,
                f.size,
                f.message.len().min(f.size as usize),
                if v2 && (f.size as usize) < spec::V2_MESSAGE_WIDTH {
                    ", the rest of the 20 is the '-' padding the client adds before packing"
                } else {
                    ""
                }
            ));
            a.say(pane(run, f, spec, width));
        }
        if v2 {
            if let Some(f) = requests.iter().find(|f| f.cut) {
                a.say(format!(
                    "Frame order={}: {} characters were typed, so size={} but the 20-byte field \
                     holds only \"{}\": the receiver sees size > 20 and knows the message was cut.",
                    f.order,
                    f.size,
                    f.size,
                    shown(&f.message, 20)
                ));
            }
        } else {
            let each: Vec<String> = requests
                .iter()
                .map(|f| format!("size={} → {} bytes", f.size, f.len))
                .collect();
            a.say(format!("On the wire: {}.", each.join(", ")));
        }
        let split = split_frames(run);
        match split.first() {
            Some((f, segs)) => {
                let first = segs.first().map_or(0, |s| s.len);
                let why = if v2 && f.order == SPLIT_ORDER && matches!(run.wire, Wire::Live { .. }) {
                    " (this run's client wrote it in two parts, as any sender may: TCP keeps no \
                     message boundaries)"
                } else if !v2 && f.size as usize >= V3_LARGE {
                    " (no one segment carries it all: TCP cut it where the segment size and the \
                     sender's buffer allowed)"
                } else {
                    ""
                };
                a.say(format!(
                    "Frame order={} ({} bytes) arrived in {} segments: {}{why}.",
                    f.order,
                    f.len,
                    segs.len(),
                    segment_list(segs)
                ));
                if v2 {
                    let got = &f.raw[..usize::try_from(first).unwrap_or(0).min(f.raw.len())];
                    let python = python_unpack(spec.python_format, got);
                    let error = python.clone().unwrap_or_else(|| {
                        "struct.error: unpack requires a buffer of 29 bytes".to_string()
                    });
                    a.say(format!(
                        "The lab's serverTCPv2.py calls recv(29) once per frame: when the first \
                         segment came it would have returned those {first} bytes, and \
                         struct.unpack('{}', …) on them {} \"{error}\"; had it gone on, the \
                         next recv(29) would start in the middle of the frame and every later \
                         frame would be read shifted. rc1's server loops until it has 29 \
                         bytes: its log shows order={} read whole.",
                        spec.python_format,
                        if python.is_some() {
                            "raises (python3 here, given those very bytes, says)"
                        } else {
                            "raises"
                        },
                        f.order
                    ));
                    a.fact("python_says", python.map_or(Value::Null, Value::String));
                } else {
                    a.say(format!(
                        "The lab's serverTCPv3.py reads the 9-byte header, then recv(size): one \
                         recv({}) returns only what has arrived, which can be as little as {} \
                         bytes here (the first segment less the header), so it must loop until \
                         size bytes are there — rc1's server does.",
                        f.size,
                        first.saturating_sub(9)
                    ));
                }
                a.say(pane(run, f, spec, width));
                a.fact(
                    "split_frame",
                    json!({
                        "order": f.order,
                        "bytes": f.len,
                        "segments": segs.iter().map(|s| json!({"at": s.offset, "len": s.len, "time": secs(s.ts)})).collect::<Vec<_>>(),
                    }),
                );
            }
            None => {
                a.say(
                    "No frame of this capture arrived split across segments; TCP may still split \
                     any frame (or pack several in one segment), so a reader must loop until it \
                     has a whole frame.",
                );
                a.fact("split_frame", Value::Null);
            }
        }
        out.push(a);
    }
    if ex.wants(3) {
        let mut a = Answer::new(ex, 3, "add a server ECHO");
        a.say(format!(
            "rc1's server sends each frame back byte for byte once it has read it whole ({}): \
             the echo is the same {} bytes, and the client reads a whole frame back before \
             sending the next.",
            if v2 { "29 bytes" } else { "9 + size bytes" },
            if v2 { "29" } else { "9 + size" }
        ));
        echo_line(run, &mut a);
        let lat: Vec<String> = run
            .observed
            .frames
            .iter()
            .filter_map(|f| match f.echo {
                Some(EchoMatch::Ok { latency_us }) => Some(format!(
                    "#{} order={} {}",
                    f.at.session,
                    f.order,
                    micros(latency_us)
                )),
                _ => None,
            })
            .collect();
        if !lat.is_empty() {
            a.say(format!("Each echo after its request: {}.", lat.join(", ")));
        }
        out.push(a);
    }
}

/// What Python's `struct.unpack(format, bytes)` says of `bytes`: its
/// exception's last line, `ok` when it unpacks, or `None` without python3.
fn python_unpack(format: &str, bytes: &[u8]) -> Option<String> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let o = std::process::Command::new("python3")
        .args([
            "-c",
            "import struct, sys; struct.unpack(sys.argv[1], bytes.fromhex(sys.argv[2]))",
            format,
            &hex,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    if o.status.success() {
        return Some("ok".to_string());
    }
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}

/// The exercise's questions, answered. Without a capture of this run,
/// every answer ends saying which of its facts are the fixture's.
pub fn answer(run: &Run, width: usize) -> Vec<Answer> {
    let mut out = Vec::new();
    match run.exercise.number {
        1 => udp_answers(run, &mut out),
        2 | 3 => text_answers(run, &mut out),
        _ => framed_answers(run, &mut out, width),
    }
    if let Some(w) = wire_note(run) {
        for a in &mut out {
            a.say(w.clone());
        }
    }
    out
}

/// A line of the server's log as a note on the ladder: what the server
/// did for that client (the thread, the selector key), or nothing.
pub fn server_note(ex: Exercise, l: &LogLine) -> Option<String> {
    let conn = l.num("conn").unwrap_or(0);
    let token = l.num("token").map_or("?".to_string(), |t| t.to_string());
    let port = l.peer().map_or(0, |p| p.port());
    let len = l.num("len").unwrap_or(0);
    let sel = ex.number == 3;
    Some(match (l.event(), sel) {
        ("accept", true) => format!("accept #{conn} (:{port}): selector registers token {token}"),
        ("accept", false) => format!("accept #{conn} (:{port}): starts a thread for it"),
        ("text", true) => format!("selector wakes: token {token} readable, recv {len} B"),
        ("text", false) => format!("thread #{conn}: recv {len} B, echo"),
        ("frame", _) => format!(
            "thread #{conn}: order={} read whole, echo",
            l.num("order").unwrap_or(0)
        ),
        ("close", true) => format!("selector: token {token} closed, unregistered"),
        ("close", false) => format!("thread #{conn} ends"),
        ("datagram", _) => format!("recvfrom {len} B from :{port}"),
        _ => return None,
    })
}

/// The same exercise by hand: the lab's scripts and Wireshark, each a
/// command and what it is for.
pub fn by_hand(ex: Exercise, port: u16) -> Vec<(String, String)> {
    let l4 = if ex.number == 1 { "udp" } else { "tcp" };
    let framed = ex.number >= 4;
    // rc1's dissector registers on the lab's port; another port needs
    // Wireshark's "Decode As".
    let decode_as = if framed && port != 5005 {
        format!(" -d tcp.port=={port},rc1")
    } else {
        String::new()
    };
    let both = if ex.number == 2 || ex.number == 3 {
        " (two or three at once, in their own terminals)"
    } else {
        ""
    };
    vec![
        (
            format!("python3 {}", ex.python_server()),
            format!(
                "the lab's server; or: rc1 server --proto {}",
                ex.server().name()
            ),
        ),
        (
            format!("python3 {}", ex.python_client()),
            format!(
                "the lab's client{both}; or: rc1 client --proto {} -m hello",
                ex.client_proto()
            ),
        ),
        (
            format!("wireshark -k -i lo -f '{l4} port {port}'{decode_as}"),
            format!(
                "display filter {l4}.port == {port}{}; Statistics > Flow Graph draws this ladder",
                if framed {
                    " or rc1 (after `rc1 dissector --install`)"
                } else {
                    ""
                }
            ),
        ),
        (
            format!(
                "sudo tshark -i lo -f '{l4} port {port}'{decode_as} -Y '{}'",
                if framed {
                    "rc1".to_string()
                } else {
                    format!("{l4}.port == {port}")
                }
            ),
            "the same packets in a terminal".to_string(),
        ),
        (
            format!("sudo rc1 capture -i lo --port {port} --ladder"),
            "this ladder, live, while you run the scripts".to_string(),
        ),
    ]
}

/// Prints the run as text: the ladder, what to look at, by hand.
pub fn print_text(
    run: &Run,
    width: usize,
    ladder: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let ex = run.exercise;
    for w in wrap(&format!("Exercise {ex}: {}", title(ex)), width + 2) {
        writeln!(out, "{w}")?;
    }
    let said = match &run.wire {
        Wire::Live { iface } => vec![format!(
            "Ran on loopback: rc1's server in place of {} on {}, the exercise's client(s) \
             against it, captured on {iface}.",
            ex.python_server(),
            run.server
        )],
        Wire::Fixture { name, why } => vec![
            format!("Ran on loopback without capturing: {why}."),
            format!(
                "The ladder and the wire facts are from the shipped {name} instead (an \
                 earlier run of the same exercise)."
            ),
        ],
    };
    for s in said {
        for w in wrap(&s, width + 2) {
            writeln!(out, "{w}")?;
        }
    }
    if ladder {
        writeln!(out)?;
        run.ladder.render(out)?;
    }
    writeln!(out)?;
    writeln!(out, "What to look at")?;
    for a in answer(run, width) {
        writeln!(out)?;
        for w in wrap(&format!("{} — {}", a.question, a.asks), width + 2) {
            writeln!(out, "{w}")?;
        }
        for l in &a.lines {
            if l.contains('\n') || l.starts_with("  ") {
                write!(out, "{l}")?;
                if !l.ends_with('\n') {
                    writeln!(out)?;
                }
            } else {
                for w in wrap(l, width.max(40)) {
                    writeln!(out, "  {w}")?;
                }
            }
        }
    }
    writeln!(out)?;
    writeln!(out, "By hand")?;
    // The lab's scripts listen on 5005, whatever port this run took.
    for (cmd, what) in by_hand(ex, 5005) {
        writeln!(out, "  {cmd}")?;
        for w in wrap(&what, width.saturating_sub(6).max(40)) {
            writeln!(out, "      # {w}")?;
        }
    }
    for k in &run.kept {
        writeln!(out, "kept {}", k.display())?;
    }
    Ok(())
}

/// The exercise's title.
pub fn title(ex: Exercise) -> &'static str {
    match ex.number {
        1 => "UDP sockets (serverUDP.py, clientUDP.py)",
        2 => "TCP text, a thread per client (serverTCP.py, clientTCP.py)",
        3 => "TCP text with a selector (serverTCPsel.py, clientTCP.py)",
        4 => "TCP, fixed-size frames !BLL20s (serverTCPv2.py, clientTCPv2.py)",
        _ => "TCP, variable-size frames !BLL + size (serverTCPv3.py, clientTCPv3.py)",
    }
}

/// Words of `s` in lines of at most `width - 2` characters.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let max = width.saturating_sub(2).max(20);
    let mut lines = Vec::new();
    let mut line = String::new();
    for w in s.split(' ') {
        let len = line.chars().count();
        if len > 0 && len + 1 + w.chars().count() > max {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The run as one JSON object.
pub fn json(run: &Run, width: usize) -> Value {
    let ex = run.exercise;
    let wire = match &run.wire {
        Wire::Live { iface } => json!({"source": "live", "interface": iface}),
        Wire::Fixture { name, why } => json!({"source": "fixture", "file": name, "why": why}),
    };
    let mut mermaid = Vec::new();
    let _ = run.mermaid.render(&mut mermaid);
    let (drawn, left_out) = run.ladder.counts();
    json!({
        "type": "lab",
        "exercise": ex.to_string(),
        "title": title(ex),
        "server": run.server.to_string(),
        "wire": wire,
        "ephemeral_range": run.port_range.map_or(Value::Null, |(lo, hi)| json!([lo, hi])),
        "clients": clients_facts(run),
        "sessions": sessions(run).iter().map(|s| json!({
            "session": s.id,
            "transport": s.transport,
            "client": s.client.to_string(),
            "server": s.server.to_string(),
            "framing": s.framing,
            "first": secs(s.first),
            "last": secs(s.last),
            "handshake_rtt_us": s.handshake_rtt_us,
            "state": s.state,
            "messages": [s.dirs[0].messages, s.dirs[1].messages],
            "bytes": [s.dirs[0].bytes, s.dirs[1].bytes],
            "echoes_ok": s.echoes_ok,
            "echo_mismatches": s.echo_mismatches,
            "anomalies": s.anomalies,
        })).collect::<Vec<_>>(),
        "answers": answer(run, width).into_iter().map(|a| json!({
            "question": a.question,
            "asks": a.asks,
            "answer": a.lines,
            "facts": a.facts,
        })).collect::<Vec<_>>(),
        "ladder_events": drawn,
        "ladder_left_out": left_out,
        "mermaid": String::from_utf8_lossy(&mermaid),
        "by_hand": by_hand(ex, 5005).into_iter().map(|(command, what)| json!({"command": command, "what": what})).collect::<Vec<_>>(),
        "kept": run.kept.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    })
}

/// A client's address as the ladder names it.
pub fn name(a: SocketAddr) -> String {
    a.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_comes_from_the_spec() {
        let l = layout(&spec::V2);
        assert_eq!(l.len(), 4);
        assert!(l[0].contains("byte 0") && l[0].contains("version"));
        assert!(l[1].contains("bytes 1-4") && l[1].contains("order"));
        assert!(l[3].contains("bytes 9-28") && l[3].contains("20s"));
        assert!(l.iter().all(|l| l.chars().count() <= 72), "{l:?}");
        let l = layout(&spec::V3);
        assert!(l[3].contains("from byte 9") && l[3].contains("size"));
    }

    #[test]
    fn wrapping_keeps_every_word_within_the_width() {
        let s = "one two three four five six seven eight nine ten eleven twelve thirteen";
        let w = wrap(s, 24);
        assert!(w.iter().all(|l| l.chars().count() <= 22), "{w:?}");
        assert_eq!(w.join(" "), s);
    }

    #[test]
    fn relative_times_are_from_the_first_packet() {
        let a = Timestamp {
            sec: 10,
            usec: 999_000,
        };
        let b = Timestamp {
            sec: 11,
            usec: 1_000,
        };
        assert_eq!(rel(b, a), "+0.002000 s");
        assert_eq!(us_between(a, b), 2_000);
        assert_eq!(us_between(b, a), 0);
    }
}
