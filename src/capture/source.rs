//! Where packets come from: a live interface through libpcap, or a saved
//! file. This is the only module that uses pcap; everything after it sees
//! the same [`RawPacket`]s whether they are live or read from a file, so live
//! and offline decoding agree by construction.
//!
//! Live captures use libpcap's block mode, not immediate mode: packets are
//! packed into the kernel ring's blocks (TPACKET_V3), so the default 32 MiB
//! holds hundreds of thousands of small packets; with immediate mode each
//! packet takes a whole snap-length slot and the ring holds a few hundred,
//! which a short stall overruns. A block is handed over when full or after
//! the read timeout (100 ms), which bounds the delay of a line
//! and lets a stop request be noticed.
//!
//! Files are read by [`super::savefile`] (pcap and pcapng, every interface
//! with its own link type), and filtered here packet by packet with the
//! BPF filter compiled for that packet's link type.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use pcap::{Active, BpfProgram, Capture, Device};

use super::ahead::{Ahead, End, Got};
use super::live::{self, LiveAhead};
pub(super) use super::packet::linktype_name;
use super::packet::linktype_supported;
use super::savefile::{FileError, Interface, Reader, Writer};

/// Snap length for live captures: whole packets.
pub const SNAPLEN: i32 = 65_535;

/// The kernel's capture buffer for live captures unless `-B` says
/// otherwise (libpcap's default is 2 MiB): room for bursts while the
/// decoder or its output is busy, as `tcpdump -B 32768` gives.
pub const LIVE_BUFFER: u32 = 32 << 20;

/// How long a live read waits before checking for a stop, in ms.
const READ_TIMEOUT_MS: i32 = 100;

/// A capture timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub sec: i64,
    /// Microseconds.
    pub usec: u32,
}

impl Timestamp {
    /// Seconds as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.sec as f64 + f64::from(self.usec) / 1e6
    }

    /// Microseconds since the epoch, as a tag the reassembler carries with
    /// buffered bytes.
    pub fn tag(self) -> u64 {
        u64::try_from(self.sec)
            .unwrap_or(0)
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(self.usec))
    }

    /// The timestamp back from [`Timestamp::tag`].
    pub fn from_tag(tag: u64) -> Timestamp {
        Timestamp {
            sec: i64::try_from(tag / 1_000_000).unwrap_or(i64::MAX),
            usec: u32::try_from(tag % 1_000_000).unwrap_or(0),
        }
    }

    /// Microseconds since `earlier` (0 if it is not earlier).
    pub fn micros_since(self, earlier: Timestamp) -> u64 {
        let a = i128::from(self.sec) * 1_000_000 + i128::from(self.usec);
        let b = i128::from(earlier.sec) * 1_000_000 + i128::from(earlier.usec);
        u64::try_from(a.saturating_sub(b)).unwrap_or(0)
    }
}

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct RawPacket<'a> {
    /// When it was captured.
    pub ts: Timestamp,
    /// Length on the wire (may exceed `data.len()` when the snap length cut it).
    pub len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
    /// Its link type (`LINKTYPE_*`): a pcapng file may mix several.
    pub linktype: i32,
    /// The interface it was captured on (pcapng: numbered from 0 across
    /// the file; pcap and live: 0).
    pub interface: u32,
}

/// What one read gave.
#[derive(Debug)]
pub enum Next<'a> {
    /// A packet.
    Packet(RawPacket<'a>),
    /// A live read timed out with nothing: check for a stop, read again.
    Idle,
    /// End of the file.
    End,
}

enum Handle {
    Live(Box<Capture<Active>>),
    /// A file not read yet.
    File(Box<Reader>),
    /// A file being read (on its own thread).
    Ahead(Box<Ahead>),
    /// A live capture being read (its ring drained on its own thread).
    LiveAhead(Box<LiveAhead>),
    /// Between the two.
    Gone,
}

/// An open capture.
pub struct Source {
    handle: Handle,
    linktype: i32,
    /// What was opened, for messages.
    pub name: String,
    packets: u64,
    /// Packets of a file that the BPF filter rejected (a live capture's
    /// kernel filters them before rc1 can count them).
    pub filtered: u64,
    /// Bytes of the file consumed so far, for progress.
    pub bytes_read: u64,
    /// The file's size, if a file.
    pub file_size: Option<u64>,
    /// `-w`: every packet read is also written here.
    writer: Option<Writer>,
    /// Where `-w` writes, for messages.
    write_path: Option<PathBuf>,
    /// Live: set by a [`live::StopHandle`]; the ring thread stops on it.
    stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Live: when the `-w` file was last flushed (it is flushed at least
    /// every [`LIVE_FLUSH`], so it can be opened while rc1 runs).
    flushed: std::time::Instant,
    filter: String,
}

/// Why reading stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file stops making sense here.
    #[error("{file}: {error}")]
    File {
        /// The file.
        file: String,
        /// What is wrong, where.
        error: FileError,
    },
    /// Any other error (libpcap's, a filter that cannot apply, -w).
    #[error("{0}")]
    Other(String),
}

fn permission_hint(iface: &str) -> String {
    format!(
        "cannot capture on {iface}: permission denied; run as root, or once: \
         sudo setcap cap_net_raw,cap_net_admin=eip \"$(command -v rc1)\""
    )
}

/// Names of the interfaces libpcap can open, for messages.
pub fn interface_names() -> Vec<String> {
    Device::list()
        .map(|d| d.into_iter().map(|d| d.name).collect())
        .unwrap_or_default()
}

/// An interface a live capture can use, as `rc1 capture -D` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveInterface {
    /// The name to give `-i`.
    pub name: String,
    /// libpcap's description, if any.
    pub description: Option<String>,
    /// Its IP addresses.
    pub addresses: Vec<std::net::IpAddr>,
    /// A loopback interface (`lo`: where the lab's traffic is).
    pub loopback: bool,
    /// Up.
    pub up: bool,
    /// Running (up, with a link).
    pub running: bool,
}

/// The interfaces a live capture can use, in libpcap's order.
pub fn interfaces() -> Result<Vec<LiveInterface>> {
    let devices = Device::list().map_err(|e| anyhow!("cannot list interfaces: {e}"))?;
    Ok(devices
        .into_iter()
        .map(|d| LiveInterface {
            addresses: d.addresses.iter().map(|a| a.addr).collect(),
            loopback: d.flags.is_loopback(),
            up: d.flags.is_up(),
            running: d.flags.is_running(),
            name: d.name,
            description: d.desc,
        })
        .collect())
}

/// `rc1 capture -D`: the interfaces, numbered like `tshark -D`.
pub fn list_interfaces() -> Result<String> {
    let mut out = String::new();
    for (i, d) in interfaces()?.iter().enumerate() {
        let desc = d
            .description
            .as_deref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        out.push_str(&format!("{}. {}{desc}\n", i + 1, d.name));
    }
    Ok(out)
}

impl Source {
    /// Opens interface `iface` live with a kernel buffer of `buffer` bytes
    /// (set a filter with [`Source::set_filter`]).
    pub fn live(iface: &str, buffer: u32) -> Result<Source> {
        let names = interface_names();
        if !names.is_empty() && !names.iter().any(|n| n == iface) {
            return Err(anyhow!(
                "no interface called {iface:?}; this machine has: {} (see `rc1 capture -D`)",
                names.join(", ")
            ));
        }
        let cap = Capture::from_device(iface)
            .and_then(|c| {
                c.immediate_mode(false)
                    .snaplen(SNAPLEN)
                    .timeout(READ_TIMEOUT_MS)
                    .buffer_size(i32::try_from(buffer).unwrap_or(i32::MAX))
                    .open()
            })
            .map_err(|e| {
                let text = e.to_string();
                if text.contains("permission") || text.contains("not permitted") {
                    anyhow!(permission_hint(iface))
                } else if text.contains("No such device") {
                    anyhow!(
                        "no interface called {iface:?}; this machine has: {} (see `rc1 capture -D`)",
                        names.join(", ")
                    )
                } else {
                    anyhow!("cannot capture on {iface}: {text}")
                }
            })?;
        let linktype = dlt_to_linktype(cap.get_datalink().0);
        let s = Source {
            linktype,
            handle: Handle::Live(Box::new(cap)),
            name: iface.to_string(),
            packets: 0,
            filtered: 0,
            bytes_read: 0,
            file_size: None,
            writer: None,
            write_path: None,
            flushed: std::time::Instant::now(),
            filter: String::new(),
            stopping: std::sync::Arc::default(),
        };
        if !linktype_supported(linktype) {
            return Err(anyhow!("{}: {}", s.name, unsupported(linktype)));
        }
        Ok(s)
    }

    /// Opens a pcap or pcapng file (set a filter with [`Source::set_filter`]).
    pub fn file(path: &Path) -> Result<Source> {
        let size = std::fs::metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        let reader = Reader::open(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        // pcap: the file's one link type; pcapng: each interface has its
        // own, checked per packet.
        let linktype = reader.interfaces().first().map_or(-1, |i| i.linktype);
        let pcapng = reader.is_pcapng();
        let s = Source {
            linktype,
            handle: Handle::File(Box::new(reader)),
            name: path.display().to_string(),
            packets: 0,
            filtered: 0,
            bytes_read: 0,
            file_size: Some(size),
            writer: None,
            write_path: None,
            flushed: std::time::Instant::now(),
            filter: String::new(),
            stopping: std::sync::Arc::default(),
        };
        if !pcapng && !linktype_supported(linktype) {
            return Err(anyhow!("{}: {}", s.name, unsupported(linktype)));
        }
        Ok(s)
    }

    /// The BPF filter in force ("" for none).
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Applies a BPF filter (tcpdump syntax); libpcap's message on error.
    /// A live capture filters in the kernel; a file is filtered here,
    /// packet by packet, with the filter compiled for each packet's link
    /// type (`pcap_offline_filter`), so rejected packets are counted.
    pub fn set_filter(&mut self, filter: &str) -> Result<()> {
        self.filter = filter.to_string();
        if filter.is_empty() {
            return Ok(());
        }
        match &mut self.handle {
            Handle::Live(c) => c
                .filter(filter, true)
                .map_err(|e| anyhow!("invalid capture filter {filter:?}: {e}")),
            _ => {
                // Checked now against the file's first link type (pcapng:
                // Ethernet, until its interfaces are read), so a typo is
                // reported before anything is decoded.
                let lt = if self.linktype >= 0 {
                    self.linktype
                } else {
                    super::packet::linktype::ETHERNET
                };
                compile(filter, lt)
                    .map_err(|e| anyhow!("invalid capture filter {filter:?}: {e}"))?;
                Ok(())
            }
        }
    }

    /// The link type of a live capture or pcap file (a pcapng file's first
    /// interface's, -1 before it is known).
    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    /// For a live capture: a handle that stops it (what was taken from the
    /// ring is still decoded), for a stop request to call.
    pub fn break_handle(&mut self) -> Option<live::StopHandle> {
        match &mut self.handle {
            Handle::Live(_) => Some(live::StopHandle::new(std::sync::Arc::clone(&self.stopping))),
            _ => None,
        }
    }

    /// Whether this is a live capture.
    pub fn is_live(&self) -> bool {
        matches!(self.handle, Handle::Live(_) | Handle::LiveAhead(_))
    }

    /// Packets read so far (those the filter let through).
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Reads once: a packet, [`Next::Idle`] when a live read timed out (so
    /// the caller can look at its stop flag), or [`Next::End`].
    pub fn read(&mut self) -> Result<Next<'_>, ReadError> {
        if matches!(self.handle, Handle::File(_) | Handle::Live(_)) {
            self.start_ahead()?;
        }
        match &mut self.handle {
            Handle::LiveAhead(a) => match a.next_packet() {
                live::Got::Packet(raw) => {
                    self.packets = self.packets.saturating_add(1);
                    write(&mut self.writer, &self.write_path, &raw)?;
                    if self.flushed.elapsed() > LIVE_FLUSH {
                        flush(&mut self.writer, &self.write_path, &mut self.flushed)?;
                    }
                    Ok(Next::Packet(raw))
                }
                live::Got::Idle => {
                    flush(&mut self.writer, &self.write_path, &mut self.flushed)?;
                    Ok(Next::Idle)
                }
                live::Got::End => Ok(Next::End),
                live::Got::Error(e) => Err(ReadError::Other(format!("{}: {e}", self.name))),
            },
            Handle::Ahead(a) => match a.next_packet() {
                Got::Packet(raw, end, filtered) => {
                    self.bytes_read = end;
                    self.filtered = filtered;
                    self.packets = self.packets.saturating_add(1);
                    write(&mut self.writer, &self.write_path, &raw)?;
                    Ok(Next::Packet(raw))
                }
                Got::End(end, filtered) => {
                    self.filtered = filtered;
                    match end {
                        End::Eof => {
                            self.bytes_read = self.file_size.unwrap_or(self.bytes_read);
                            Ok(Next::End)
                        }
                        End::File(error) => Err(ReadError::File {
                            file: self.name.clone(),
                            error,
                        }),
                        End::Other(f) => Err(ReadError::Other(format!("{}: {f}", self.name))),
                    }
                }
            },
            // (Files and live captures are handed to their threads above.)
            Handle::File(_) | Handle::Live(_) | Handle::Gone => Ok(Next::End),
        }
    }

    /// Hands the file to a reading thread (at the first read, once the
    /// filter is set).
    fn start_ahead(&mut self) -> Result<(), ReadError> {
        let cannot = |e: std::io::Error| {
            ReadError::Other(format!("{}: cannot start reading: {e}", self.name))
        };
        match std::mem::replace(&mut self.handle, Handle::Gone) {
            Handle::File(r) => {
                let a = Ahead::start(*r, self.filter.clone()).map_err(cannot)?;
                self.handle = Handle::Ahead(Box::new(a));
            }
            Handle::Live(c) => {
                let a = LiveAhead::start(*c, self.linktype, std::sync::Arc::clone(&self.stopping))
                    .map_err(cannot)?;
                self.handle = Handle::LiveAhead(Box::new(a));
            }
            other => self.handle = other,
        }
        Ok(())
    }

    /// The interfaces a pcapng file described so far (name, link type,
    /// snap length), for messages; empty for live captures.
    pub fn interfaces(&self) -> &[Interface] {
        match &self.handle {
            Handle::File(r) => r.interfaces(),
            Handle::Ahead(a) => a.interfaces(),
            Handle::Live(_) | Handle::LiveAhead(_) | Handle::Gone => &[],
        }
    }

    /// Kernel counters of a live capture: (received, dropped by the kernel,
    /// dropped by the interface).
    pub fn stats(&mut self) -> Option<(u32, u32, u32)> {
        match &mut self.handle {
            Handle::Live(c) => c
                .stats()
                .ok()
                .map(|s| (s.received, s.dropped, s.if_dropped)),
            Handle::LiveAhead(a) => a.stats(),
            _ => None,
        }
    }

    /// `-w`: also write every packet read to a capture file (pcapng if its
    /// name ends in `.pcapng`, else pcap), flushed by
    /// [`Source::finish_writing`].
    pub fn write_to(&mut self, path: &Path) -> Result<()> {
        let hint = (self.linktype >= 0).then_some(self.linktype);
        let w = Writer::create(path, hint)
            .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
        self.writer = Some(w);
        self.write_path = Some(path.to_path_buf());
        Ok(())
    }

    /// Flushes the `-w` file; says how many packets a pcap file could not
    /// hold (another link type).
    pub fn finish_writing(&mut self) -> Result<Option<String>> {
        let (Some(w), Some(path)) = (&mut self.writer, &self.write_path) else {
            return Ok(None);
        };
        w.flush()
            .map_err(|e| anyhow!("cannot finish writing {}: {e}", path.display()))?;
        Ok((w.skipped > 0).then(|| {
            format!(
                "{} packet(s) of another link type were not written to {}: a pcap file holds \
                 one link type; name it .pcapng to keep them all",
                w.skipped,
                path.display()
            )
        }))
    }
}

/// How often a live capture's `-w` file is flushed at least.
pub const LIVE_FLUSH: std::time::Duration = std::time::Duration::from_millis(200);

/// Flushes the `-w` file (live captures, now and then).
fn flush(
    writer: &mut Option<Writer>,
    path: &Option<PathBuf>,
    at: &mut std::time::Instant,
) -> Result<(), ReadError> {
    *at = std::time::Instant::now();
    if let Some(w) = writer {
        w.flush().map_err(|e| {
            let path = path.as_deref().unwrap_or(Path::new("-w file"));
            ReadError::Other(format!("cannot write {}: {e}", path.display()))
        })?;
    }
    Ok(())
}

/// `-w` for one packet.
fn write(
    writer: &mut Option<Writer>,
    path: &Option<PathBuf>,
    p: &RawPacket<'_>,
) -> Result<(), ReadError> {
    if let Some(w) = writer {
        w.write(p.ts, p.len, p.data, p.linktype).map_err(|e| {
            let path = path.as_deref().unwrap_or(Path::new("-w file"));
            ReadError::Other(format!("cannot write {}: {e}", path.display()))
        })?;
    }
    Ok(())
}

/// Compiles a BPF filter for packets of `linktype`.
pub(super) fn compile(filter: &str, linktype: i32) -> Result<BpfProgram, pcap::Error> {
    Capture::dead(pcap::Linktype(linktype_to_dlt(linktype)))?.compile(filter, true)
}

/// `LINKTYPE_*` (what files say) to `DLT_*` (what libpcap's API takes),
/// where they differ on Linux (libpcap's `linktype_to_dlt`).
pub fn linktype_to_dlt(lt: i32) -> i32 {
    match lt {
        100 => 11, // ATM_RFC1483
        101 => 12, // RAW
        102 => 15, // SLIP_BSDOS
        103 => 16, // PPP_BSDOS
        106 => 19, // ATM_CLIP
        _ => lt,
    }
}

/// `DLT_*` (what a live handle says) to `LINKTYPE_*`.
pub fn dlt_to_linktype(dlt: i32) -> i32 {
    match dlt {
        11 => 100,
        12 | 14 => 101,
        15 => 102,
        16 => 103,
        19 => 106,
        _ => dlt,
    }
}

/// The sentence for a link type rc1 does not read.
pub fn unsupported(linktype: i32) -> String {
    format!(
        "link type {linktype} ({}) is not supported; rc1 reads {}",
        linktype_name(linktype),
        super::packet::SUPPORTED
    )
}
