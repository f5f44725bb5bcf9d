//! Where packets come from: a live interface or a saved file, through
//! libpcap. This is the only module that uses pcap; everything after it sees
//! the same [`RawPacket`]s whether they are live or read from a file, so live
//! and offline decoding agree by construction.
//!
//! Live captures use libpcap's block mode, not immediate mode: packets are
//! packed into the kernel ring's blocks (TPACKET_V3), so the default 32 MiB
//! holds hundreds of thousands of small packets; with immediate mode each
//! packet takes a whole snap-length slot and the ring holds a few hundred,
//! which a short stall overruns. A block is handed over when full or after
//! the read timeout (100 ms), which bounds the delay of a line
//! and lets a stop request be noticed. Offline reads accept pcap and pcapng.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use pcap::{Active, Capture, Device, Offline};

use super::packet::{linktype_name, linktype_supported};

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
    Live(Capture<Active>),
    File(Capture<Offline>),
}

/// An open capture.
pub struct Source {
    handle: Handle,
    linktype: i32,
    /// What was opened, for messages.
    pub name: String,
    file: Option<PathBuf>,
    packets: u64,
    /// Bytes of the file consumed so far (pcap: header + records), for
    /// progress and for saying where a cut file ends.
    pub bytes_read: u64,
    /// The file's size, if a file.
    pub file_size: Option<u64>,
    /// `-w`: every packet read is also written here.
    savefile: Option<pcap::Savefile>,
    filter: String,
}

/// Why reading stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file ends inside a record.
    #[error(
        "{file}: cut short after packet {packets} (about byte {offset} of {size}): {reason}; \
         everything before the cut was decoded"
    )]
    Truncated {
        /// The file.
        file: String,
        /// Packets read before the cut.
        packets: u64,
        /// Approximate byte offset of the cut record.
        offset: u64,
        /// File size.
        size: u64,
        /// libpcap's words.
        reason: String,
    },
    /// Any other libpcap error.
    #[error("{0}")]
    Pcap(String),
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

/// `rc1 capture -D`: the interfaces, numbered like `tshark -D`.
pub fn list_interfaces() -> Result<String> {
    let devices = Device::list().map_err(|e| anyhow!("cannot list interfaces: {e}"))?;
    let mut out = String::new();
    for (i, d) in devices.iter().enumerate() {
        let desc = d
            .desc
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
        let s = Source {
            linktype: cap.get_datalink().0,
            handle: Handle::Live(cap),
            name: iface.to_string(),
            file: None,
            packets: 0,
            bytes_read: 0,
            file_size: None,
            savefile: None,
            filter: String::new(),
        };
        s.check_linktype()?;
        Ok(s)
    }

    /// Opens a pcap or pcapng file (set a filter with [`Source::set_filter`]).
    pub fn file(path: &Path) -> Result<Source> {
        let size = std::fs::metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        let cap = Capture::from_file(path).map_err(|e| {
            anyhow!(
                "{}: not a capture file libpcap can read ({e}); rc1 reads pcap and pcapng",
                path.display()
            )
        })?;
        let s = Source {
            linktype: cap.get_datalink().0,
            handle: Handle::File(cap),
            name: path.display().to_string(),
            file: Some(path.to_path_buf()),
            packets: 0,
            // The pcap global header.
            bytes_read: 24,
            file_size: Some(size),
            savefile: None,
            filter: String::new(),
        };
        s.check_linktype()?;
        Ok(s)
    }

    fn check_linktype(&self) -> Result<()> {
        if linktype_supported(self.linktype) {
            return Ok(());
        }
        Err(anyhow!(
            "{}: link type {} ({}) is not supported; rc1 reads Ethernet, Linux SLL/SLL2, BSD NULL/LOOP and raw IP",
            self.name,
            self.linktype,
            linktype_name(self.linktype)
        ))
    }

    /// The BPF filter in force ("" for none).
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Applies a BPF filter (tcpdump syntax); libpcap's message on error.
    pub fn set_filter(&mut self, filter: &str) -> Result<()> {
        self.filter = filter.to_string();
        if filter.is_empty() {
            return Ok(());
        }
        let r = match &mut self.handle {
            Handle::Live(c) => c.filter(filter, true),
            Handle::File(c) => c.filter(filter, true),
        };
        r.map_err(|e| anyhow!("invalid capture filter {filter:?}: {e}"))
    }

    /// The link type of every packet.
    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    /// For a live capture: a handle that makes a blocked read return at once
    /// (libpcap's `pcap_breakloop`), for a stop request to call.
    pub fn break_handle(&mut self) -> Option<pcap::BreakLoop> {
        match &mut self.handle {
            Handle::Live(c) => Some(c.breakloop_handle()),
            Handle::File(_) => None,
        }
    }

    /// Whether this is a live capture.
    pub fn is_live(&self) -> bool {
        matches!(self.handle, Handle::Live(_))
    }

    /// Packets read so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Reads once: a packet, [`Next::Idle`] when a live read timed out (so
    /// the caller can look at its stop flag), or [`Next::End`].
    pub fn read(&mut self) -> Result<Next<'_>, ReadError> {
        let r = match &mut self.handle {
            Handle::Live(c) => c.next_packet(),
            Handle::File(c) => c.next_packet(),
        };
        match r {
            Ok(p) => {
                if let Some(out) = &mut self.savefile {
                    out.write(&p);
                }
                self.packets = self.packets.saturating_add(1);
                self.bytes_read = self
                    .bytes_read
                    .saturating_add(16)
                    .saturating_add(u64::from(p.header.caplen));
                let ts = Timestamp {
                    sec: p.header.ts.tv_sec,
                    usec: u32::try_from(p.header.ts.tv_usec).unwrap_or(0),
                };
                Ok(Next::Packet(RawPacket {
                    ts,
                    len: p.header.len,
                    data: p.data,
                }))
            }
            Err(pcap::Error::TimeoutExpired) => Ok(Next::Idle),
            Err(pcap::Error::NoMorePackets) => Ok(Next::End),
            Err(e) => {
                let reason = e.to_string();
                match &self.file {
                    Some(file) if reason.contains("truncated") => Err(ReadError::Truncated {
                        file: file.display().to_string(),
                        packets: self.packets,
                        offset: self.bytes_read,
                        size: self.file_size.unwrap_or(0),
                        reason,
                    }),
                    _ => Err(ReadError::Pcap(format!("{}: {reason}", self.name))),
                }
            }
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
            Handle::File(_) => None,
        }
    }

    /// `-w`: also write every packet read to a pcap file (this capture's
    /// link type), flushed by [`Source::finish_writing`] and when dropped.
    pub fn write_to(&mut self, path: &Path) -> Result<()> {
        let r = match &self.handle {
            Handle::Live(c) => c.savefile(path),
            Handle::File(c) => c.savefile(path),
        };
        self.savefile = Some(r.map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?);
        Ok(())
    }

    /// Flushes the `-w` file.
    pub fn finish_writing(&mut self) -> Result<()> {
        if let Some(out) = &mut self.savefile {
            out.flush()
                .map_err(|e| anyhow!("cannot finish writing the capture file: {e}"))?;
        }
        Ok(())
    }
}
