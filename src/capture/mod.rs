//! Capture and offline analysis: one pipeline for live and saved traffic.
//!
//! ```text
//! source (pcap -i / -r) -> packet (link, IP, TCP/UDP) -> session (flows,
//! handshake, reassembly, framing, echoes) -> decode (frames across gaps)
//! -> event::Sink (report: text lines, JSON lines, sessions table)
//! ```
//!
//! Live and offline differ only in [`source`]: everything after it sees
//! the same packets, so the same packets give the same output.

pub mod decode;
pub mod event;
pub mod packet;
pub mod reassembly;
pub mod session;
pub mod source;
pub mod streams;

use std::path::PathBuf;

use anyhow::Result;

use crate::stop::Stop;
use event::Sink;
use packet::PacketError;
use session::{Tracker, TrackerOptions};
use source::{Next, ReadError, Source};

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
    /// BPF filter; `None`: the lab's port, TCP and UDP, VLAN-tagged too.
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
    let filter = match &opts.filter {
        Some(f) => f.clone(),
        None => default_filter(source.linktype(), opts.tracker.port),
    };
    source.set_filter(&filter)?;
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

/// `port P`, and on Ethernet also `vlan and port P`: a plain `port` filter
/// does not look past an 802.1Q tag.
pub fn default_filter(linktype: i32, port: u16) -> String {
    if linktype == packet::linktype::ETHERNET {
        format!("port {port} or (vlan and port {port})")
    } else {
        format!("port {port}")
    }
}

/// Reads every packet from `source` (until the end, `-c`, or `stop`) and
/// pushes events to `sink`.
pub fn run(
    opts: &CaptureOptions,
    mut source: Source,
    stop: &Stop,
    sink: &mut dyn Sink,
) -> Result<Outcome> {
    let mut tracker = Tracker::new(opts.tracker);
    tracker.tcp_events = opts.tcp_events;
    let linktype = source.linktype();
    let bar = progress_bar(opts, &source);
    let mut truncated = None;
    loop {
        if stop.is_stopped() || opts.count.is_some_and(|c| source.packets() >= c) {
            break;
        }
        let number = source.packets().saturating_add(1);
        if number % 4096 == 0
            && let Some(b) = &bar
        {
            b.set_position(source.bytes_read);
        }
        match source.read() {
            Ok(Next::Packet(raw)) => match packet::parse(linktype, raw.data) {
                Ok(p) => tracker.packet(raw.ts, &p, sink),
                Err(PacketError::NotIp | PacketError::NotTcpUdp(_)) => tracker.ignored(),
                Err(e) => tracker.unparsed(raw.ts, number, &e.to_string(), sink),
            },
            Ok(Next::Idle) => continue,
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
    source.finish_writing()?;
    tracker.totals.packets = source.packets();
    tracker.totals.kernel = source.stats();
    tracker.finish(sink);
    Ok(Outcome {
        packets: source.packets(),
        truncated,
    })
}
