//! Capture and offline analysis: one pipeline for live and saved traffic.
//!
//! ```text
//! source (pcap -i / savefile -r) -> packet (link, tunnels, IP, TCP/UDP)
//! -> defrag (IP fragments) -> session (flows, handshake, reassembly,
//! framing, echoes) -> decode (frames across gaps) -> event::Sink (report:
//! text lines, JSON lines, sessions table)
//! ```
//!
//! Live and offline differ only in [`source`]: everything after it sees
//! the same packets, so the same packets give the same output. The
//! [`Pipeline`] is everything after the source, in one place: every
//! packet ends in a session or under a named cause in [`event::Totals`].

pub mod ahead;
pub mod decode;
pub mod defrag;
pub mod event;
pub mod live;
pub mod output;
pub mod packet;
pub mod reassembly;
pub mod savefile;
pub mod session;
pub mod source;
pub mod streams;

use std::path::PathBuf;

use anyhow::Result;

use crate::spec;
use crate::stop::Stop;
use defrag::{Defrag, Failure, Problem, Step};
use event::{Fact, Sink, Totals};
use packet::{Packet, PacketError, Parsed};
use session::{Tracker, TrackerOptions};
use source::{Next, RawPacket, ReadError, Source, Timestamp};

/// Where packets come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A live interface.
    Live(String),
    /// A pcap or pcapng file.
    File(PathBuf),
}

/// Everything `rc1 capture` needs.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// The source.
    pub input: Input,
    /// BPF filter (`-f`); `None`: sessions on the lab's port only, chosen
    /// after tunnels are opened and fragments put together (a live capture
    /// also has the kernel keep only what may be that: see
    /// [`default_filter`]).
    pub filter: Option<String>,
    /// Session tracking settings.
    pub tracker: TrackerOptions,
    /// Stop after this many packets.
    pub count: Option<u64>,
    /// Emit TCP control events.
    pub tcp_events: bool,
    /// `-w`: write the packets read to this pcap file.
    pub write: Option<PathBuf>,
    /// Kernel capture buffer of a live capture, in bytes.
    pub buffer: u32,
    /// Show a progress bar on stderr while reading a file (only when stderr
    /// is a terminal).
    pub progress: bool,
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// Packets read.
    pub packets: u64,
    /// Reading stopped on an error (a file cut short, or a record libpcap
    /// rejects); everything before it was decoded and summarised.
    pub truncated: Option<ReadError>,
}

/// Opens the source; errors are the user-facing messages.
pub fn open(opts: &CaptureOptions) -> Result<Source> {
    let mut source = match &opts.input {
        Input::Live(iface) => Source::live(iface, opts.buffer)?,
        Input::File(path) => Source::file(path)?,
    };
    let filter = match (&opts.filter, &opts.input) {
        (Some(f), _) => f.clone(),
        (None, Input::Live(_)) => default_filter(source.linktype(), opts.tracker.port),
        // A file: every packet is read and rc1 chooses (so fragments and
        // tunnels are seen, and what is left out is counted).
        (None, Input::File(_)) => String::new(),
    };
    if let Err(e) = source.set_filter(&filter) {
        // libpcap cannot filter some link types at all (NFLOG): without
        // `-f`, read every packet and let rc1 choose.
        if opts.filter.is_some() || filter.is_empty() {
            return Err(e);
        }
        eprintln!("rc1: {e:#}; reading every packet (rc1 keeps the sessions on the port itself)");
        source.set_filter("")?;
    }
    if let Some(path) = &opts.write {
        source.write_to(path)?;
    }
    Ok(source)
}

/// A bytes-read bar for a file (bytes read of total, rate, ETA), shown on
/// stderr when it is a terminal and stdout is not (`rc1 capture -r big.pcap
/// --json > out.jsonl`); `--quiet` hides it.
fn progress_bar(opts: &CaptureOptions, source: &Source) -> Option<indicatif::ProgressBar> {
    let size = source.file_size?;
    // Only while the output goes elsewhere: a bar redrawn between lines
    // printed on the same terminal would garble both.
    if !opts.progress
        || !std::io::IsTerminal::is_terminal(&std::io::stderr())
        || std::io::IsTerminal::is_terminal(&std::io::stdout())
    {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(size),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

/// The kernel filter of a live capture without `-f`: the lab's port, and
/// what may hide it from a port filter: IP fragments (only the first has
/// ports), IPv6 extension headers, and the tunnels rc1 opens; on Ethernet
/// also MPLS, PPPoE and 802.3 frames, and all of it behind one, two or
/// three VLAN tags (BPF's `vlan` moves every later offset by 4, so each
/// alternative repeats the whole test). rc1
/// then keeps the sessions on the port itself.
pub fn default_filter(linktype: i32, port: u16) -> String {
    let x = format!(
        "(port {port} or (ip[6:2] & 0x3fff != 0) or (ip6 and (ip6[6] == 0 or ip6[6] == 43 \
         or ip6[6] == 44 or ip6[6] == 60)) or udp port 4789 or udp port 6081 \
         or ip proto 47 or ip proto 4 or ip proto 41 or ip proto 103 \
         or ip6 proto 47 or ip6 proto 4 or ip6 proto 41)"
    );
    if linktype == packet::linktype::ETHERNET {
        // MPLS, PPPoE sessions and 802.3 frames (LLC/SNAP) by their
        // EtherType, before any `vlan` moves the offsets.
        format!(
            "{x} or ether[12:2] == 0x8847 or ether[12:2] == 0x8848 or ether[12:2] == 0x8864 \
             or ether[12:2] <= 1500 or (vlan and {x}) or (vlan and {x}) or (vlan and {x})"
        )
    } else {
        x
    }
}

/// Everything after the source: parsing, IP reassembly, choosing the
/// sessions, and the tracker. One packet in, events out; every packet is
/// counted once, in a session or under a cause.
pub struct Pipeline {
    tracker: Tracker,
    defrag: Defrag,
    /// Without `-f`: only sessions on this port.
    select: Option<u16>,
    /// Interfaces whose link type was reported as not read.
    unsupported: Vec<u32>,
    problems: Vec<Problem>,
    last_ts: Timestamp,
    last_sweep: Timestamp,
}

impl Pipeline {
    /// A pipeline; `select`: keep only sessions on this port.
    pub fn new(opts: TrackerOptions, tcp_events: bool, select: Option<u16>) -> Pipeline {
        let mut tracker = Tracker::new(opts);
        tracker.tcp_events = tcp_events;
        Pipeline {
            tracker,
            defrag: Defrag::default(),
            select,
            unsupported: Vec::new(),
            problems: Vec::new(),
            last_ts: Timestamp::default(),
            last_sweep: Timestamp::default(),
        }
    }

    /// Totals so far.
    pub fn totals(&self) -> &Totals {
        &self.tracker.totals
    }

    /// One captured packet, the `number`th read.
    pub fn packet(&mut self, raw: &RawPacket<'_>, number: u64, sink: &mut dyn Sink) {
        let ts = raw.ts;
        self.last_ts = ts;
        if ts.micros_since(self.last_sweep) > 1_000_000 {
            self.sweep(ts, sink);
        }
        match packet::parse(raw.linktype, raw.data) {
            Ok(Parsed::Packet(p)) => accept(&mut self.tracker, self.select, ts, &p, sink),
            Ok(Parsed::Fragment(f)) => {
                let mut evicted = std::mem::take(&mut self.problems);
                let step = self.defrag.fragment(ts, &f, &mut evicted);
                for p in evicted.drain(..) {
                    problem(&mut self.tracker, self.select, &p, sink);
                }
                self.problems = evicted;
                let t = &mut self.tracker.totals;
                match step {
                    Step::Held => {}
                    Step::Duplicate => t.fragments = t.fragments.saturating_add(1),
                    Step::Dropped(p) => problem(&mut self.tracker, self.select, &p, sink),
                    Step::Complete {
                        protocol,
                        fragments,
                        encap,
                        conflict,
                    } => {
                        t.fragments = t
                            .fragments
                            .saturating_add(u64::from(fragments).saturating_sub(1));
                        t.reassembled = t.reassembled.saturating_add(1);
                        if let Some(c) = conflict {
                            report_problem(&mut self.tracker, &c, sink);
                        }
                        let data = self.defrag.datagram();
                        match packet::reassembled(protocol, data, f.src, f.dst, false, encap) {
                            Ok(Parsed::Packet(p)) => {
                                accept(&mut self.tracker, self.select, ts, &p, sink)
                            }
                            Ok(Parsed::Fragment(_)) => self.tracker.unparsed(
                                ts,
                                number,
                                "a fragment inside a reassembled datagram (nested fragmentation is not reassembled)",
                                sink,
                            ),
                            Err(e) => self.cause(ts, number, raw.interface, e, sink),
                        }
                    }
                }
            }
            Err(e) => self.cause(ts, number, raw.interface, e, sink),
        }
    }

    /// A packet that is not TCP/UDP: counted under its cause.
    fn cause(
        &mut self,
        ts: Timestamp,
        number: u64,
        interface: u32,
        e: PacketError,
        sink: &mut dyn Sink,
    ) {
        let t = &mut self.tracker.totals;
        match e {
            PacketError::NotIp => t.not_ip = t.not_ip.saturating_add(1),
            PacketError::Encrypted(_) => t.encrypted = t.encrypted.saturating_add(1),
            PacketError::NotTcpUdp(_) => t.not_tcp_udp = t.not_tcp_udp.saturating_add(1),
            PacketError::UnsupportedLinktype(lt) => {
                t.unsupported_link = t.unsupported_link.saturating_add(1);
                if !self.unsupported.contains(&interface) {
                    self.unsupported.push(interface);
                    self.tracker.diag(
                        ts,
                        spec::LINK_UNSUPPORTED.code,
                        format!(
                            "packet {number}: interface {interface}: {}; its packets are counted, not decoded",
                            source::unsupported(lt)
                        ),
                        vec![
                            ("interface", Fact::Num(interface.into())),
                            ("linktype", Fact::Num(u64::try_from(lt).unwrap_or(0))),
                        ],
                        sink,
                    );
                }
            }
            PacketError::Malformed { .. } => {
                self.tracker.unparsed(ts, number, &e.to_string(), sink)
            }
        }
    }

    fn sweep(&mut self, now: Timestamp, sink: &mut dyn Sink) {
        self.last_sweep = now;
        for p in self.defrag.expire(now) {
            problem(&mut self.tracker, self.select, &p, sink);
        }
        self.tracker.tick(now, sink);
    }

    /// A live capture with nothing to read: time still passes, so sessions
    /// and fragments that waited too long are ended.
    pub fn idle(&mut self, sink: &mut dyn Sink) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let now = Timestamp {
            sec: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
            usec: now.subsec_micros(),
        };
        if now.micros_since(self.last_sweep) > 1_000_000 {
            self.sweep(now, sink);
        }
    }

    /// End of input: datagrams still in pieces are reported, every session
    /// ends, and the totals go to the sink.
    pub fn finish(
        mut self,
        packets: u64,
        filtered: u64,
        kernel: Option<(u32, u32, u32)>,
        sink: &mut dyn Sink,
    ) -> Totals {
        for p in self.defrag.finish(self.last_ts) {
            problem(&mut self.tracker, self.select, &p, sink);
        }
        self.tracker.totals.packets = packets;
        self.tracker.totals.filtered = filtered;
        self.tracker.totals.kernel = kernel;
        self.tracker.finish(sink);
        self.tracker.totals
    }
}

/// A TCP/UDP packet: to the tracker, or counted when not on the port.
fn accept(
    tracker: &mut Tracker,
    select: Option<u16>,
    ts: Timestamp,
    p: &Packet<'_>,
    sink: &mut dyn Sink,
) {
    if let Some(port) = select {
        let (a, b) = p.transport.ports();
        if a != port && b != port {
            tracker.totals.other_port = tracker.totals.other_port.saturating_add(1);
            return;
        }
    }
    tracker.packet(ts, p, sink);
}

/// A datagram given up on: the reason reported, and what was captured of
/// its start decoded, cut short (its first fragment counts there, the
/// others as dropped).
fn problem(tracker: &mut Tracker, select: Option<u16>, p: &Problem, sink: &mut dyn Sink) {
    report_problem(tracker, p, sink);
    let mut dropped = u64::from(p.fragments);
    if let Some((ts, head)) = &p.head {
        match packet::reassembled(p.protocol, head, p.src, p.dst, true, p.encap) {
            Ok(Parsed::Packet(mut pk)) => {
                dropped = dropped.saturating_sub(1);
                pk.incomplete = true;
                accept(tracker, select, *ts, &pk, sink);
            }
            Ok(Parsed::Fragment(_)) => {}
            // Not TCP/UDP, or too little of it: the fragments stay dropped.
            Err(_) => {}
        }
    }
    let t = &mut tracker.totals;
    t.fragments_dropped = t.fragments_dropped.saturating_add(dropped);
}

/// The diagnostic of a fragment problem.
fn report_problem(tracker: &mut Tracker, p: &Problem, sink: &mut dyn Sink) {
    let code = match p.failure {
        Failure::Overlap { .. } => spec::IP_FRAGMENT_OVERLAP.code,
        Failure::TooLong { .. } => spec::IP_FRAGMENT_TOO_LONG.code,
        _ => spec::IP_FRAGMENT_INCOMPLETE.code,
    };
    let mut facts = vec![
        ("src", Fact::Text(p.src.to_string())),
        ("dst", Fact::Text(p.dst.to_string())),
        ("ip_id", Fact::Num(p.id.into())),
        ("protocol", Fact::Num(p.protocol.into())),
        ("fragments", Fact::Num(p.fragments.into())),
        ("captured", Fact::Num(p.captured)),
    ];
    if let Some(total) = p.total {
        facts.push(("total", Fact::Num(total.into())));
    }
    if let Failure::Overlap { from, to } = p.failure {
        facts.push(("from", Fact::Num(from.into())));
        facts.push(("to", Fact::Num(to.into())));
    }
    tracker.diag(p.ts, code, p.message(), facts, sink);
}

/// Reads every packet from `source` (until the end, `-c`, or `stop`) and
/// pushes events to `sink`.
pub fn run(
    opts: &CaptureOptions,
    mut source: Source,
    stop: &Stop,
    sink: &mut dyn Sink,
) -> Result<Outcome> {
    let select = opts.filter.is_none().then_some(opts.tracker.port);
    let mut pipeline = Pipeline::new(opts.tracker, opts.tcp_events, select);
    let bar = progress_bar(opts, &source);
    let mut truncated = None;
    // A live capture stops when its reading thread has handed over what it
    // took from the ring before the stop (the stop sets its flag; it then
    // ends with `Next::End`); a file stops at once.
    let live = source.is_live();
    loop {
        if (stop.is_stopped() && !live) || opts.count.is_some_and(|c| source.packets() >= c) {
            break;
        }
        let number = source.packets().saturating_add(1);
        if number % 4096 == 0
            && let Some(b) = &bar
        {
            b.set_position(source.bytes_read);
        }
        match source.read() {
            Ok(Next::Packet(raw)) => pipeline.packet(&raw, number, sink),
            Ok(Next::Idle) => pipeline.idle(sink),
            Ok(Next::End) => break,
            // The file stops making sense here: report everything decoded
            // before it (summary included), then the error.
            Err(e) => {
                truncated = Some(e);
                break;
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let note = source.finish_writing()?;
    let kernel = source.stats();
    let totals = pipeline.finish(source.packets(), source.filtered, kernel, sink);
    if let Some(note) = note {
        eprintln!("rc1: {note}");
    }
    // A file whose packets are all of link types rc1 does not read is an
    // error, as a pcap file of one such link type is.
    if truncated.is_none() && totals.packets > 0 && totals.unsupported_link == totals.packets {
        let lts: Vec<String> = source
            .interfaces()
            .iter()
            .map(|i| source::unsupported(i.linktype))
            .collect();
        truncated = Some(ReadError::Other(format!(
            "{}: no packet could be decoded: {}",
            source.name,
            lts.first().cloned().unwrap_or_default()
        )));
    }
    Ok(Outcome {
        packets: totals.packets,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_live_filter_compiles_for_every_link_type_read_live() {
        // Ethernet (lo, eth0), Linux cooked v1 and v2 (`any`), raw IP
        // (tun), BSD loopback (macOS lo0).
        for lt in [1, 113, 276, 101, 0] {
            let f = default_filter(lt, 5005);
            let dead = pcap::Capture::dead(pcap::Linktype(source::linktype_to_dlt(lt))).unwrap();
            assert!(dead.compile(&f, true).is_ok(), "link type {lt}: {f}");
        }
        assert_eq!(default_filter(1, 5005).matches("vlan and").count(), 3);
    }
}
